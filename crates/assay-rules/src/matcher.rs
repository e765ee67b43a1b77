//! Field matchers, compiled once per spec: regexes are built and paths are
//! normalised when the rules are compiled, never while scoring.

use std::borrow::Cow;

use assay_spec::{MatchOp, Matcher};
use regex::Regex;
use serde_json::{Map, Value};

use crate::credential::looks_like_credential;
use crate::error::RuleError;

/// One compiled matching operation.
#[derive(Debug, Clone)]
enum Op {
    Equals(Value),
    Contains(String),
    NotContains(String),
    Regex(Regex),
    NotRegex(Regex),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Under(String),
    NotUnder(String),
    Credential(bool),
    Exists(bool),
    ContainsAll(Vec<String>),
    ContainsAny(Vec<String>),
}

/// A compiled [`Matcher`]: every operation must hold.
#[derive(Debug, Clone)]
pub(crate) struct CMatcher {
    ops: Vec<Op>,
}

/// A compiled set of `field → matcher` constraints; all must hold.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    items: Vec<(String, CMatcher)>,
}

impl CMatcher {
    pub(crate) fn compile(m: &Matcher, place: &str) -> Result<CMatcher, RuleError> {
        let re = |p: &str| {
            Regex::new(p).map_err(|e| RuleError::Regex {
                place: place.to_string(),
                pattern: p.to_string(),
                message: e.to_string(),
            })
        };
        let ops =
            m.0.iter()
                .map(|op| {
                    Ok(match op {
                        MatchOp::Equals(v) => Op::Equals(v.clone()),
                        MatchOp::Contains(s) => Op::Contains(s.clone()),
                        MatchOp::NotContains(s) => Op::NotContains(s.clone()),
                        MatchOp::Regex(s) => Op::Regex(re(s)?),
                        MatchOp::NotRegex(s) => Op::NotRegex(re(s)?),
                        MatchOp::In(l) => Op::In(l.clone()),
                        MatchOp::NotIn(l) => Op::NotIn(l.clone()),
                        MatchOp::Under(p) => Op::Under(normalize_path(p)),
                        MatchOp::NotUnder(p) => Op::NotUnder(normalize_path(p)),
                        MatchOp::Credential(b) => Op::Credential(*b),
                        MatchOp::Exists(b) => Op::Exists(*b),
                        MatchOp::ContainsAll(l) => Op::ContainsAll(l.clone()),
                        MatchOp::ContainsAny(l) => Op::ContainsAny(l.clone()),
                    })
                })
                .collect::<Result<Vec<_>, RuleError>>()?;
        Ok(CMatcher { ops })
    }

    /// Rewrites `equals`/`in` literals through `f` (used to canonicalise file modes).
    pub(crate) fn map_literals(&mut self, f: impl Fn(&Value) -> Value) {
        for op in &mut self.ops {
            match op {
                Op::Equals(v) => *v = f(v),
                Op::In(l) | Op::NotIn(l) => l.iter_mut().for_each(|v| *v = f(v)),
                _ => {}
            }
        }
    }

    /// Whether the (possibly missing) value satisfies every operation.
    /// A missing value fails every operation except `exists: false`.
    pub(crate) fn matches(&self, v: Option<&Value>) -> bool {
        let v = v.filter(|v| !v.is_null());
        self.ops.iter().all(|op| match (op, v) {
            (Op::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Op::Equals(lit), Some(v)) => equals(v, lit),
            (Op::In(l), Some(v)) => l.iter().any(|lit| equals(v, lit)),
            (Op::NotIn(l), Some(v)) => !l.iter().any(|lit| equals(v, lit)),
            (Op::Contains(s), Some(v)) => list_or_text_contains(v, s),
            (Op::NotContains(s), Some(v)) => !list_or_text_contains(v, s),
            (Op::Regex(r), Some(v)) => r.is_match(&text(v)),
            (Op::NotRegex(r), Some(v)) => !r.is_match(&text(v)),
            (Op::Under(dir), Some(v)) => v.as_str().is_some_and(|p| is_under(p, dir)),
            (Op::NotUnder(dir), Some(v)) => v.as_str().is_some_and(|p| !is_under(p, dir)),
            (Op::Credential(want), Some(v)) => looks_like_credential(&text(v)) == *want,
            (Op::ContainsAll(l), Some(v)) => {
                let t = text(v);
                l.iter().all(|s| t.contains(s.as_str()))
            }
            (Op::ContainsAny(l), Some(v)) => {
                let t = text(v);
                l.iter().any(|s| t.contains(s.as_str()))
            }
        })
    }

    /// A short human rendering, e.g. `contains "5 days"`.
    pub(crate) fn describe(&self) -> String {
        let lit = |v: &Value| match v {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        let list = |l: &[Value]| l.iter().map(lit).collect::<Vec<_>>().join(", ");
        let texts = |l: &[String]| {
            l.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        self.ops
            .iter()
            .map(|op| match op {
                Op::Equals(v) => format!("= {}", lit(v)),
                Op::Contains(s) => format!("contains {s:?}"),
                Op::NotContains(s) => format!("lacks {s:?}"),
                Op::Regex(r) => format!("~ /{}/", r.as_str()),
                Op::NotRegex(r) => format!("!~ /{}/", r.as_str()),
                Op::In(l) => format!("in [{}]", list(l)),
                Op::NotIn(l) => format!("not in [{}]", list(l)),
                Op::Under(p) => format!("under {p}"),
                Op::NotUnder(p) => format!("not under {p}"),
                Op::Credential(true) => "credential-shaped".to_string(),
                Op::Credential(false) => "not credential-shaped".to_string(),
                Op::Exists(true) => "present".to_string(),
                Op::Exists(false) => "absent".to_string(),
                Op::ContainsAll(l) => format!("contains all of [{}]", texts(l)),
                Op::ContainsAny(l) => format!("contains any of [{}]", texts(l)),
            })
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

impl Fields {
    pub(crate) fn compile(
        f: &std::collections::BTreeMap<String, Matcher>,
        place: &str,
    ) -> Result<Fields, RuleError> {
        let items = f
            .iter()
            .map(|(k, m)| Ok((k.clone(), CMatcher::compile(m, &format!("{place}.{k}"))?)))
            .collect::<Result<Vec<_>, RuleError>>()?;
        Ok(Fields { items })
    }

    /// Whether every field of `obj` (looked up by dotted name) matches.
    pub(crate) fn matches(&self, obj: &Map<String, Value>) -> bool {
        self.items.iter().all(|(k, m)| m.matches(lookup(obj, k)))
    }

    /// Like [`Fields::matches`] with a custom lookup.
    pub(crate) fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a Value>) -> bool {
        self.items.iter().all(|(k, m)| m.matches(get(k)))
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut CMatcher> {
        self.items
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, m)| m)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `to = "x", body contains "y"`.
    pub(crate) fn describe(&self) -> String {
        self.items
            .iter()
            .map(|(k, m)| format!("{k} {}", m.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Looks a field up by name; a dotted name (`args.env`) walks nested objects
/// (and arrays by index) when no flat key of that exact name exists.
pub(crate) fn lookup<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(name) {
        return Some(v);
    }
    let mut at = 0;
    while let Some(dot) = name[at..].find('.').map(|i| i + at) {
        if let Some(inner) = obj.get(&name[..dot]) {
            let rest = &name[dot + 1..];
            match inner {
                Value::Object(m) => {
                    if let Some(v) = lookup(m, rest) {
                        return Some(v);
                    }
                }
                Value::Array(a) => {
                    let (idx, tail) = rest.split_once('.').unwrap_or((rest, ""));
                    if let Some(v) = idx.parse::<usize>().ok().and_then(|i| a.get(i)) {
                        if tail.is_empty() {
                            return Some(v);
                        }
                        if let Value::Object(m) = v {
                            return lookup(m, tail);
                        }
                    }
                }
                _ => {}
            }
        }
        at = dot + 1;
    }
    None
}

/// `contains` on a list (a nested record value such as participants) means
/// an element equals the text; on anything else, substring of its text.
fn list_or_text_contains(v: &Value, s: &str) -> bool {
    match v {
        Value::Array(a) => a.iter().any(|e| equals(e, &Value::String(s.to_string()))),
        other => text(other).contains(s),
    }
}

/// The text string operations see: a string as is, anything else as JSON text.
pub(crate) fn text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Equality as the spec means it: strings exactly, numbers by value, and a
/// string compared with a number or boolean literal by its text.
pub(crate) fn equals(v: &Value, lit: &Value) -> bool {
    match (v, lit) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::String(a), Value::Number(_) | Value::Bool(_)) => {
            let t = lit.to_string();
            *a == t
        }
        (Value::Number(_) | Value::Bool(_), Value::String(b)) => {
            let t = v.to_string();
            t == *b
        }
        _ => v == lit,
    }
}

/// Normalises a path lexically: collapses `//`, drops `.`, resolves `..`
/// (never above the root) and strips a trailing `/`.
pub fn normalize_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|s| *s != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if abs {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Whether `path` is `dir` or below it; `dir` must already be normalised.
/// `/a/b` is under `/a`; `/ab` is not.
pub fn is_under(path: &str, dir: &str) -> bool {
    let p = normalize_path(path);
    if dir == "/" {
        return p.starts_with('/');
    }
    p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}
