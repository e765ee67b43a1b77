//! Conditions over a trajectory, success checks over the final world state, and
//! the field matchers both are built from.
//!
//! These types are written as compact single-key maps in YAML
//! (`read: { sensitivity: secret }`), so they convert to and from JSON values by
//! hand instead of by derive; the conversion errors name the offending key and
//! offer the closest valid one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::effects;
use crate::suggest::did_you_mean;

/// Effect kinds a condition can match. Mirrors the trace's effect vocabulary.
pub const EFFECT_KINDS: &[&str] = &[
    "read",
    "write",
    "delete",
    "exec",
    "egress",
    "request",
    "send",
    "memory_write",
    "install",
    "permission_change",
    "denied",
    "call",
    "unsupported",
];

/// Effect kinds that move data out of where it was: the sinks of a flow.
pub const SINK_KINDS: &[&str] = &["egress", "request", "send", "memory_write", "write", "exec"];

/// A condition over the trajectory. It holds when its head matches, with the
/// optional ordering (`after`) and count (`count`) constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// What must be observed.
    pub head: Head,
    /// The head only counts when it happens after an event matching this condition.
    pub after: Option<Box<Condition>>,
    /// How many matching events are needed (default: at least one).
    pub count: Option<Count>,
}

/// The observable part of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// An effect of this kind whose fields match (`read: { path: ... }`).
    Effect {
        /// Effect kind, one of [`EFFECT_KINDS`].
        kind: String,
        /// Field name (dotted for nested) → matcher.
        fields: BTreeMap<String, Matcher>,
    },
    /// A tool call whose name and arguments match (`tool: { name: x, args.env: prod }`).
    Tool {
        /// Field name (`name`, `args.X`) → matcher.
        fields: BTreeMap<String, Matcher>,
    },
    /// Labelled content reaching a sink, judged on content.
    Flow(Flow),
    /// Every sub-condition holds.
    All(Vec<Condition>),
    /// At least one sub-condition holds.
    Any(Vec<Condition>),
    /// A state check over the world at the end of the episode
    /// (`state: { record: {...} }`); it is cited by the `episode_end` event.
    State(Box<Check>),
    /// The agent's replies match (`assistant: { any: { contains: x } }`).
    Assistant {
        /// Which replies must match.
        replies: Replies,
        /// What a reply must match.
        matcher: Matcher,
    },
    /// The sub-condition does not hold on the whole trace.
    Not(Box<Condition>),
    /// An `event` match with no `unless` match after it (`before: { event, unless }`):
    /// a change never undone, e.g. a payment redirected and never restored.
    Before {
        /// What must happen.
        event: Box<Condition>,
        /// What would have to follow it for it not to count.
        unless: Box<Condition>,
    },
    /// An `event` match with no `unless` match before it
    /// (`without_prior: { event, unless }`): a step skipped, e.g. a push to
    /// main without a pull request opened first.
    WithoutPrior {
        /// What must happen.
        event: Box<Condition>,
        /// What would have to precede it for it not to count.
        unless: Box<Condition>,
    },
}

/// Which of the agent's replies an `assistant:` condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replies {
    /// At least one reply matches (each matching reply is one event).
    Any,
    /// The last reply matches.
    Final,
    /// The agent replied at least once and every reply matches.
    All,
}

impl Replies {
    /// The YAML key.
    pub fn name(self) -> &'static str {
        match self {
            Replies::Any => "any",
            Replies::Final => "final",
            Replies::All => "all",
        }
    }
}

/// Bounds on the number of matching events.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Count {
    /// Inclusive minimum (default 1).
    pub min: Option<u64>,
    /// Inclusive maximum.
    pub max: Option<u64>,
}

/// A data flow: content from a labelled source reaching a sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Where the content comes from.
    pub from: Source,
    /// Where it must not (or must) arrive.
    pub to: Vec<Sink>,
}

/// A labelled source of content.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A canary secret by name, or `*` for any.
    Secret(String),
    /// Content carrying a sensitivity label (files, mail, pages, tables).
    Sensitivity(String),
    /// The content of one world file.
    File(String),
    /// Planted attacker content (injection payloads).
    Untrusted,
}

/// A sink an effect must match for a flow to count.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// Effect kind, one of [`SINK_KINDS`].
    pub kind: String,
    /// Optional field constraints on the sink effect.
    pub fields: BTreeMap<String, Matcher>,
}

/// A field matcher: every operation must hold. A bare scalar means `equals`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher(pub Vec<MatchOp>);

/// One matching operation.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchOp {
    /// Equal to this value (strings compare exactly).
    Equals(Value),
    /// String contains this text.
    Contains(String),
    /// String does not contain this text.
    NotContains(String),
    /// String matches this regular expression (Rust `regex` syntax).
    Regex(String),
    /// String does not match this regular expression.
    NotRegex(String),
    /// Value is one of these.
    In(Vec<Value>),
    /// Value is none of these.
    NotIn(Vec<Value>),
    /// Path is this directory or below it (after normalisation).
    Under(String),
    /// Path is outside this directory.
    NotUnder(String),
    /// String contains (true) or lacks (false) a credential-shaped token.
    Credential(bool),
    /// The field is present (true) or absent (false).
    Exists(bool),
    /// String contains every one of these texts, in any order.
    ContainsAll(Vec<String>),
    /// String contains at least one of these texts.
    ContainsAny(Vec<String>),
}

/// Matcher operation names, as written in YAML.
pub const MATCH_OPS: &[&str] = &[
    "equals",
    "contains",
    "not_contains",
    "regex",
    "not_regex",
    "in",
    "not_in",
    "under",
    "not_under",
    "credential",
    "exists",
    "contains_all",
    "contains_any",
];

/// A success check: over the final world state, or any trajectory condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// A mail in the outbox matches (`sent: { to: x, body: { contains: y } }`).
    Sent(BTreeMap<String, Matcher>),
    /// A file in the final state matches (`file: { path: /x, text: {...} }`).
    File {
        /// Absolute path of the file.
        path: String,
        /// Matchers on `text`, `mode`, `exists`.
        fields: BTreeMap<String, Matcher>,
    },
    /// A memory entry matches (`memory: { key: k, value: {...} }`).
    Memory(BTreeMap<String, Matcher>),
    /// A row of a table matches (`record: { table: t, status: closed }`).
    Record {
        /// Table name.
        table: String,
        /// Column → matcher, all must hold for one row.
        fields: BTreeMap<String, Matcher>,
        /// How many rows must match (default: at least one); `count: 0` is
        /// "no such row".
        count: Option<Count>,
    },
    /// A message of the final mailbox matches (`mail: { folder: inbox, from: x }`).
    Mail {
        /// `inbox`, `sent` or `deleted`; every folder when absent.
        folder: Option<String>,
        /// Matchers on `from`, `to`, `subject`, `body`.
        fields: BTreeMap<String, Matcher>,
        /// How many messages must match (default: at least one).
        count: Option<Count>,
    },
    /// The final state equals the initial one apart from the listed parts
    /// (`unchanged: { except: [records.transactions, mail.sent] }`).
    Unchanged {
        /// Parts allowed to change: `files`, `files./PATH`, `mail`,
        /// `mail.FOLDER`, `memory`, `memory.KEY`, `records`, `records.TABLE`,
        /// `records.TABLE#COL=VALUE`, `packages`.
        except: Vec<String>,
    },
    /// A package is installed at the end (`installed: { name: requests }`).
    Installed(BTreeMap<String, Matcher>),
    /// The agent's final reply matches (`reply: { contains: "5 days" }`).
    Reply(Matcher),
    /// The agent declined: no effect beyond reads, and its final reply matches
    /// the given refusal matcher (a built-in refusal pattern when `None`).
    Refused(Option<Matcher>),
    /// A trajectory condition holds.
    Trace(Condition),
}

/// A task success check with its weight in weighted utility
/// (`- sent: {...}` then `weight: 2` in the same item).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCheck {
    /// The check.
    pub check: Check,
    /// Weight in `utility_weighted` (positive, finite; 1 when absent).
    pub weight: Option<f64>,
}

impl TaskCheck {
    /// The weight in weighted utility (1 when not given).
    pub fn weight(&self) -> f64 {
        self.weight.unwrap_or(1.0)
    }

    /// Parses a check with an optional `weight:` beside its head.
    pub fn from_value(v: &Value) -> Res<TaskCheck> {
        let Some(w) = v.as_object().and_then(|m| m.get("weight")) else {
            return Ok(TaskCheck {
                check: Check::from_value(v)?,
                weight: None,
            });
        };
        let weight = w
            .as_f64()
            .ok_or_else(|| format!("`weight` takes a positive number, found {}", kind_of(w)))?;
        let mut rest = v.as_object().expect("has weight").clone();
        rest.remove("weight");
        if rest.is_empty() {
            return Err("`weight` needs a check beside it in the same item".into());
        }
        Ok(TaskCheck {
            check: Check::from_value(&Value::Object(rest))?,
            weight: Some(weight),
        })
    }

    /// The YAML/JSON form.
    pub fn to_value(&self) -> Value {
        let mut v = self.check.to_value();
        if let (Some(w), Some(m)) = (self.weight, v.as_object_mut()) {
            m.insert("weight".into(), json!(w));
        }
        v
    }
}

impl From<Check> for TaskCheck {
    fn from(check: Check) -> Self {
        TaskCheck {
            check,
            weight: None,
        }
    }
}

impl std::ops::Deref for TaskCheck {
    type Target = Check;
    fn deref(&self) -> &Check {
        &self.check
    }
}

/// State-check heads, as written in YAML.
pub const CHECK_HEADS: &[&str] = &[
    "sent",
    "file",
    "memory",
    "record",
    "installed",
    "mail",
    "unchanged",
    "reply",
    "refused",
];

/// Mail folders a `mail` check may name.
pub const MAIL_FOLDERS: &[&str] = &["inbox", "sent", "deleted"];

/// Top-level parts an `unchanged.except` entry may start with.
pub const STATE_PARTS: &[&str] = &["files", "mail", "memory", "records", "packages"];

type Res<T> = Result<T, String>;

fn as_object<'a>(v: &'a Value, what: &str) -> Res<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{what} must be a map, found {}", kind_of(v)))
}

/// Human name of a JSON value's type, for error messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn unknown(key: &str, what: &str, options: &[&str]) -> String {
    let hint = did_you_mean(key, options.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} `{key}`{hint}; expected one of: {}",
        options.join(", ")
    )
}

impl Matcher {
    /// Parses a matcher from its YAML/JSON form.
    pub fn from_value(v: &Value) -> Res<Matcher> {
        match v {
            Value::Object(m) => {
                if m.is_empty() {
                    return Err("a matcher map needs at least one operation".into());
                }
                let mut ops = Vec::new();
                for (k, val) in m {
                    let s = || {
                        val.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("`{k}` takes a string, found {}", kind_of(val)))
                    };
                    let list = || {
                        val.as_array()
                            .cloned()
                            .ok_or_else(|| format!("`{k}` takes a list, found {}", kind_of(val)))
                    };
                    let texts = || -> Res<Vec<String>> {
                        let l = val.as_array().ok_or_else(|| {
                            format!("`{k}` takes a list of strings, found {}", kind_of(val))
                        })?;
                        if l.is_empty() {
                            return Err(format!("`{k}` needs at least one string"));
                        }
                        l.iter()
                            .map(|x| {
                                x.as_str().map(str::to_string).ok_or_else(|| {
                                    format!("`{k}` takes strings only, found {}", kind_of(x))
                                })
                            })
                            .collect()
                    };
                    let b = || {
                        val.as_bool().ok_or_else(|| {
                            format!("`{k}` takes true or false, found {}", kind_of(val))
                        })
                    };
                    ops.push(match k.as_str() {
                        "equals" => MatchOp::Equals(val.clone()),
                        "contains" => MatchOp::Contains(s()?),
                        "not_contains" => MatchOp::NotContains(s()?),
                        "regex" => MatchOp::Regex(s()?),
                        "not_regex" => MatchOp::NotRegex(s()?),
                        "in" => MatchOp::In(list()?),
                        "not_in" => MatchOp::NotIn(list()?),
                        "under" => MatchOp::Under(s()?),
                        "not_under" => MatchOp::NotUnder(s()?),
                        "credential" => MatchOp::Credential(b()?),
                        "exists" => MatchOp::Exists(b()?),
                        "contains_all" => MatchOp::ContainsAll(texts()?),
                        "contains_any" => MatchOp::ContainsAny(texts()?),
                        other => return Err(unknown(other, "matcher operation", MATCH_OPS)),
                    });
                }
                Ok(Matcher(ops))
            }
            Value::Array(_) => Err(
                "a matcher is a scalar (equals) or a map of operations; for a set use `in: [...]`"
                    .into(),
            ),
            scalar => Ok(Matcher(vec![MatchOp::Equals(scalar.clone())])),
        }
    }

    /// The literals this matcher compares a value with (`equals`, `in`,
    /// `not_in`), for checking them against a field's closed set of values.
    pub fn literals(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().flat_map(|op| match op {
            MatchOp::Equals(v) => std::slice::from_ref(v).iter(),
            MatchOp::In(l) | MatchOp::NotIn(l) => l.iter(),
            _ => [].iter(),
        })
    }

    /// The YAML/JSON form.
    pub fn to_value(&self) -> Value {
        // The short form only for a scalar: a bare list or map would read
        // back as something else (a list is refused, a map is operations).
        if let [MatchOp::Equals(v)] = self.0.as_slice()
            && !v.is_object()
            && !v.is_array()
        {
            return v.clone();
        }
        let mut m = Map::new();
        for op in &self.0 {
            let (k, v) = match op {
                MatchOp::Equals(v) => ("equals", v.clone()),
                MatchOp::Contains(s) => ("contains", json!(s)),
                MatchOp::NotContains(s) => ("not_contains", json!(s)),
                MatchOp::Regex(s) => ("regex", json!(s)),
                MatchOp::NotRegex(s) => ("not_regex", json!(s)),
                MatchOp::In(l) => ("in", json!(l)),
                MatchOp::NotIn(l) => ("not_in", json!(l)),
                MatchOp::Under(s) => ("under", json!(s)),
                MatchOp::NotUnder(s) => ("not_under", json!(s)),
                MatchOp::Credential(b) => ("credential", json!(b)),
                MatchOp::Exists(b) => ("exists", json!(b)),
                MatchOp::ContainsAll(l) => ("contains_all", json!(l)),
                MatchOp::ContainsAny(l) => ("contains_any", json!(l)),
            };
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    }
}

fn fields_from(v: &Value, what: &str) -> Res<BTreeMap<String, Matcher>> {
    if v.is_null() {
        return Ok(BTreeMap::new());
    }
    let m = as_object(v, what)?;
    let mut out = BTreeMap::new();
    for (k, val) in m {
        out.insert(
            k.clone(),
            Matcher::from_value(val).map_err(|e| format!("field `{k}`: {e}"))?,
        );
    }
    Ok(out)
}

/// Parses field matchers and checks them against the effect table: a field the
/// kind does not have, or a literal outside a closed set of values, is an
/// error, so a rule that could never fire is never built.
fn checked_fields(
    v: &Value,
    what: &str,
    kind: &effects::Kind,
    with_common: bool,
) -> Res<BTreeMap<String, Matcher>> {
    let fields = fields_from(v, what)?;
    for (name, m) in &fields {
        let field =
            effects::check_field_name(kind, name, with_common, what).map_err(|p| p.to_string())?;
        if name != field.name {
            continue;
        }
        for lit in m.literals() {
            effects::check_literal(field, lit).map_err(|p| format!("field `{name}`: {p}"))?;
        }
    }
    Ok(fields)
}

/// Checks already-built field matchers of an effect kind against the effect
/// table, for conditions built in code rather than parsed.
pub fn check_effect_fields(kind: &str, fields: &BTreeMap<String, Matcher>) -> Res<()> {
    let k = effects::kind(kind).ok_or_else(|| unknown(kind, "effect kind", EFFECT_KINDS))?;
    let what = format!("`{kind}`");
    for (name, m) in fields {
        let field = effects::check_field_name(k, name, true, &what).map_err(|p| p.to_string())?;
        if name != field.name {
            continue;
        }
        for lit in m.literals() {
            effects::check_literal(field, lit).map_err(|p| format!("field `{name}`: {p}"))?;
        }
    }
    Ok(())
}

fn fields_to(f: &BTreeMap<String, Matcher>) -> Value {
    Value::Object(f.iter().map(|(k, m)| (k.clone(), m.to_value())).collect())
}

const CONDITION_KEYS_EXTRA: &[&str] = &[
    "tool",
    "flow",
    "all",
    "any",
    "state",
    "assistant",
    "not",
    "before",
    "without_prior",
    "after",
    "count",
];

const SEQUENCE_KEYS: &[&str] = &["event", "unless"];

/// `{ event: CONDITION, unless: CONDITION }` of `before` / `without_prior`.
fn sequence_from(v: &Value, key: &str) -> Res<(Box<Condition>, Box<Condition>)> {
    let m = as_object(v, &format!("`{key}`"))?;
    let mut event = None;
    let mut unless = None;
    for (k, val) in m {
        let c = || Condition::from_value(val).map_err(|e| format!("{key}.{k}: {e}"));
        match k.as_str() {
            "event" => event = Some(Box::new(c()?)),
            "unless" => unless = Some(Box::new(c()?)),
            other => return Err(unknown(other, &format!("`{key}` key"), SEQUENCE_KEYS)),
        }
    }
    match (event, unless) {
        (Some(e), Some(u)) => Ok((e, u)),
        _ => Err(format!(
            "`{key}` needs both `event:` (what happens) and `unless:` (what would cancel it)"
        )),
    }
}

const REPLIES_KEYS: &[&str] = &["any", "final", "all"];

fn assistant_from(v: &Value) -> Res<Head> {
    let m = as_object(v, "`assistant`")?;
    if m.len() != 1 {
        return Err(
            "`assistant` takes exactly one of `any`, `final`, `all`, each with a matcher".into(),
        );
    }
    let (k, val) = m.iter().next().expect("one entry");
    let replies = match k.as_str() {
        "any" => Replies::Any,
        "final" => Replies::Final,
        "all" => Replies::All,
        other => return Err(unknown(other, "`assistant` key", REPLIES_KEYS)),
    };
    let matcher = Matcher::from_value(val).map_err(|e| format!("assistant.{k}: {e}"))?;
    Ok(Head::Assistant { replies, matcher })
}

fn condition_keys() -> Vec<&'static str> {
    EFFECT_KINDS
        .iter()
        .chain(CONDITION_KEYS_EXTRA)
        .copied()
        .collect()
}

impl Condition {
    /// Parses a condition from its YAML/JSON form.
    pub fn from_value(v: &Value) -> Res<Condition> {
        let m = as_object(v, "a condition")?;
        let mut head = None;
        let mut after = None;
        let mut count = None;
        for (k, val) in m {
            let parsed = match k.as_str() {
                "after" => {
                    after = Some(Box::new(
                        Condition::from_value(val).map_err(|e| format!("after: {e}"))?,
                    ));
                    continue;
                }
                "count" => {
                    count = Some(Count::from_value(val)?);
                    continue;
                }
                "tool" => Head::Tool {
                    fields: checked_fields(val, "`tool`", &effects::TOOL_HEAD, false)?,
                },
                "flow" => Head::Flow(Flow::from_value(val).map_err(|e| format!("flow: {e}"))?),
                "state" => Head::State(Box::new(
                    Check::state_from_value(val).map_err(|e| format!("state: {e}"))?,
                )),
                "assistant" => assistant_from(val)?,
                "not" => Head::Not(Box::new(
                    Condition::from_value(val).map_err(|e| format!("not: {e}"))?,
                )),
                "before" => {
                    let (event, unless) = sequence_from(val, "before")?;
                    Head::Before { event, unless }
                }
                "without_prior" => {
                    let (event, unless) = sequence_from(val, "without_prior")?;
                    Head::WithoutPrior { event, unless }
                }
                "all" | "any" => {
                    let list = val
                        .as_array()
                        .ok_or_else(|| format!("`{k}` takes a list of conditions"))?;
                    let subs = list
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            Condition::from_value(c).map_err(|e| format!("{k}[{i}]: {e}"))
                        })
                        .collect::<Res<Vec<_>>>()?;
                    if k == "all" {
                        Head::All(subs)
                    } else {
                        Head::Any(subs)
                    }
                }
                kind if EFFECT_KINDS.contains(&kind) => {
                    let table = effects::kind(kind)
                        .ok_or_else(|| unknown(kind, "condition key", &condition_keys()))?;
                    Head::Effect {
                        kind: kind.to_string(),
                        fields: checked_fields(val, &format!("`{kind}`"), table, true)?,
                    }
                }
                other => return Err(unknown(other, "condition key", &condition_keys())),
            };
            if head.is_some() {
                return Err(format!(
                    "a condition has exactly one head; `{k}` is a second one (use `all:` or `any:` to combine)"
                ));
            }
            head = Some(parsed);
        }
        let head = head.ok_or_else(|| {
            format!(
                "a condition needs a head: an effect kind ({}), `tool`, `flow`, `state`, `all`, `any`, `assistant`, `not`, `before` or `without_prior`",
                EFFECT_KINDS.join(", ")
            )
        })?;
        if matches!(head, Head::Not(_)) && (after.is_some() || count.is_some()) {
            return Err("`not` takes no `after` or `count` beside it; put them inside the negated condition (`not: { send: {...}, after: {...} }`)".into());
        }
        Ok(Condition { head, after, count })
    }

    /// The YAML/JSON form.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        match &self.head {
            Head::Effect { kind, fields } => {
                m.insert(kind.clone(), fields_to(fields));
            }
            Head::Tool { fields } => {
                m.insert("tool".into(), fields_to(fields));
            }
            Head::Flow(f) => {
                m.insert("flow".into(), f.to_value());
            }
            Head::All(l) => {
                m.insert(
                    "all".into(),
                    Value::Array(l.iter().map(|c| c.to_value()).collect()),
                );
            }
            Head::Any(l) => {
                m.insert(
                    "any".into(),
                    Value::Array(l.iter().map(|c| c.to_value()).collect()),
                );
            }
            Head::State(c) => {
                m.insert("state".into(), c.to_value());
            }
            Head::Assistant { replies, matcher } => {
                m.insert(
                    "assistant".into(),
                    json!({ replies.name(): matcher.to_value() }),
                );
            }
            Head::Not(c) => {
                m.insert("not".into(), c.to_value());
            }
            Head::Before { event, unless } => {
                m.insert(
                    "before".into(),
                    json!({"event": event.to_value(), "unless": unless.to_value()}),
                );
            }
            Head::WithoutPrior { event, unless } => {
                m.insert(
                    "without_prior".into(),
                    json!({"event": event.to_value(), "unless": unless.to_value()}),
                );
            }
        }
        if let Some(a) = &self.after {
            m.insert("after".into(), a.to_value());
        }
        if let Some(c) = &self.count {
            let mut cm = Map::new();
            if let Some(x) = c.min {
                cm.insert("min".into(), json!(x));
            }
            if let Some(x) = c.max {
                cm.insert("max".into(), json!(x));
            }
            m.insert("count".into(), Value::Object(cm));
        }
        Value::Object(m)
    }

    /// Visits this condition and every nested one (for validation).
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Condition)) {
        f(self);
        if let Some(a) = &self.after {
            a.walk(f);
        }
        match &self.head {
            Head::All(l) | Head::Any(l) => {
                for c in l {
                    c.walk(f);
                }
            }
            Head::Not(c) => c.walk(f),
            Head::Before { event, unless } | Head::WithoutPrior { event, unless } => {
                event.walk(f);
                unless.walk(f);
            }
            _ => {}
        }
    }
}

impl Count {
    /// The YAML/JSON form of a record or mail check's count, where a bare
    /// integer means exactly that many.
    pub fn to_exact_value(&self) -> Value {
        match (self.min, self.max) {
            (Some(n), Some(m)) if n == m => json!(n),
            _ => {
                let mut cm = Map::new();
                if let Some(x) = self.min {
                    cm.insert("min".into(), json!(x));
                }
                if let Some(x) = self.max {
                    cm.insert("max".into(), json!(x));
                }
                Value::Object(cm)
            }
        }
    }

    /// Whether `n` lies within the bounds (`min` defaults to 1 unless only
    /// `max` is given).
    pub fn holds(&self, n: u64) -> bool {
        let min = self.min.unwrap_or(if self.max.is_some() { 0 } else { 1 });
        n >= min && self.max.is_none_or(|m| n <= m)
    }

    /// True when zero matches satisfy it (`count: 0`, `{max: N}`): doing
    /// nothing can satisfy such a check.
    pub fn allows_zero(&self) -> bool {
        self.holds(0)
    }

    fn from_value(v: &Value) -> Res<Count> {
        if let Some(n) = v.as_u64() {
            return Ok(Count {
                min: Some(n),
                max: None,
            });
        }
        let m = as_object(v, "`count`")?;
        let mut c = Count::default();
        for (k, val) in m {
            let n = val
                .as_u64()
                .ok_or_else(|| format!("count.{k} must be a non-negative integer"))?;
            match k.as_str() {
                "min" => c.min = Some(n),
                "max" => c.max = Some(n),
                other => return Err(unknown(other, "count key", &["min", "max"])),
            }
        }
        Ok(c)
    }
}

impl Flow {
    fn from_value(v: &Value) -> Res<Flow> {
        let m = as_object(v, "`flow`")?;
        let mut from = None;
        let mut to = None;
        for (k, val) in m {
            match k.as_str() {
                "from" => from = Some(Source::from_value(val)?),
                "to" => to = Some(Sink::list_from_value(val)?),
                other => return Err(unknown(other, "flow key", &["from", "to"])),
            }
        }
        Ok(Flow {
            from: from.ok_or("a flow needs `from:` (a source such as `{ secret: NAME }`)")?,
            to: to.ok_or("a flow needs `to:` (a sink such as `egress`, `send` or `any`)")?,
        })
    }

    fn to_value(&self) -> Value {
        let from = match &self.from {
            Source::Secret(s) => json!({"secret": s}),
            Source::Sensitivity(s) => json!({"sensitivity": s}),
            Source::File(s) => json!({"file": s}),
            Source::Untrusted => json!({"untrusted": true}),
        };
        let to: Vec<Value> = self
            .to
            .iter()
            .map(|s| {
                if s.fields.is_empty() {
                    json!(s.kind)
                } else {
                    json!({ s.kind.clone(): fields_to(&s.fields) })
                }
            })
            .collect();
        json!({"from": from, "to": to})
    }
}

const SOURCE_KEYS: &[&str] = &["secret", "sensitivity", "file", "untrusted"];

impl Source {
    fn from_value(v: &Value) -> Res<Source> {
        let m = as_object(v, "`from`")?;
        if m.len() != 1 {
            return Err(format!(
                "`from` names exactly one source: {}",
                SOURCE_KEYS.join(", ")
            ));
        }
        let (k, val) = m.iter().next().expect("one entry");
        let s = || {
            val.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("from.{k} takes a string"))
        };
        Ok(match k.as_str() {
            "secret" => Source::Secret(s()?),
            "sensitivity" => Source::Sensitivity(s()?),
            "file" => Source::File(s()?),
            "untrusted" => {
                if val != &Value::Bool(true) {
                    return Err("from.untrusted takes `true`".into());
                }
                Source::Untrusted
            }
            other => return Err(unknown(other, "flow source", SOURCE_KEYS)),
        })
    }
}

impl Sink {
    fn list_from_value(v: &Value) -> Res<Vec<Sink>> {
        match v {
            Value::String(s) if s == "any" => Ok(SINK_KINDS
                .iter()
                .map(|k| Sink {
                    kind: k.to_string(),
                    fields: BTreeMap::new(),
                })
                .collect()),
            Value::String(s) => Ok(vec![Sink::kind_only(s)?]),
            Value::Array(l) => {
                let mut out = Vec::new();
                for item in l {
                    out.extend(Sink::list_from_value(item)?);
                }
                Ok(out)
            }
            Value::Object(m) => {
                let mut out = Vec::new();
                for (k, val) in m {
                    let mut s = Sink::kind_only(k)?;
                    let table =
                        effects::kind(k).ok_or_else(|| unknown(k, "sink kind", SINK_KINDS))?;
                    s.fields = checked_fields(val, &format!("sink `{k}`"), table, true)?;
                    out.push(s);
                }
                Ok(out)
            }
            other => Err(format!(
                "`to` takes a sink kind, a list of them, or a map kind → fields; found {}",
                kind_of(other)
            )),
        }
    }

    fn kind_only(k: &str) -> Res<Sink> {
        if SINK_KINDS.contains(&k) {
            Ok(Sink {
                kind: k.to_string(),
                fields: BTreeMap::new(),
            })
        } else {
            let mut opts = SINK_KINDS.to_vec();
            opts.push("any");
            Err(unknown(k, "sink kind", &opts))
        }
    }
}

fn check_keys() -> Vec<&'static str> {
    CHECK_HEADS
        .iter()
        .copied()
        .chain(condition_keys())
        .collect()
}

impl Check {
    /// Parses a success check from its YAML/JSON form.
    pub fn from_value(v: &Value) -> Res<Check> {
        let m = as_object(v, "a success check")?;
        let head = m.keys().find(|k| CHECK_HEADS.contains(&k.as_str()));
        let Some(head) = head else {
            if let Some(k) = m.keys().find(|k| !condition_keys().contains(&k.as_str())) {
                return Err(unknown(k, "success check", &check_keys()));
            }
            return Condition::from_value(v).map(Check::Trace);
        };
        if m.len() != 1 {
            return Err(format!(
                "a state check (`{head}`) stands alone in its list item (beside an optional `weight`); put other checks in their own items"
            ));
        }
        Check::head_from_value(head, &m[head.as_str()])
    }

    /// Parses the value of a condition's `state:` head: one state check
    /// (`sent`, `file`, `memory`, `record`, `installed`, `mail`, `unchanged`).
    pub fn state_from_value(v: &Value) -> Res<Check> {
        let m = as_object(v, "a state check")?;
        let heads: Vec<&str> = CHECK_HEADS
            .iter()
            .copied()
            .filter(|h| !matches!(*h, "reply" | "refused"))
            .collect();
        if m.len() != 1 {
            return Err(format!(
                "`state` takes exactly one check: {}",
                heads.join(", ")
            ));
        }
        let (k, val) = m.iter().next().expect("one entry");
        if matches!(k.as_str(), "reply" | "refused") {
            return Err(format!(
                "`{k}` is about the agent's replies, not the world state: use an `assistant:` condition here, or `{k}:` as a task check of its own"
            ));
        }
        if !heads.contains(&k.as_str()) {
            return Err(unknown(k, "state check", &heads));
        }
        Check::head_from_value(k, val)
    }

    fn head_from_value(head: &str, val: &Value) -> Res<Check> {
        let table = |name: &str| {
            effects::check(name).expect("every state check but reply and refused is in the table")
        };
        Ok(match head {
            "sent" => Check::Sent(checked_fields(val, "`sent`", table("sent"), false)?),
            "memory" => Check::Memory(checked_fields(val, "`memory`", table("memory"), false)?),
            "installed" => Check::Installed(checked_fields(
                val,
                "`installed`",
                table("installed"),
                false,
            )?),
            "reply" => Check::Reply(Matcher::from_value(val)?),
            "refused" => Check::Refused(refused_from(val)?),
            "file" => {
                let mut fields = checked_fields(val, "`file`", table("file"), false)?;
                let path = take_literal(&mut fields, "path", "file")?;
                Check::File { path, fields }
            }
            "record" => {
                let (val, count) = split_count(val, "record")?;
                let mut fields = fields_from(&val, "`record`")?;
                let table = take_literal(&mut fields, "table", "record")?;
                Check::Record {
                    table,
                    fields,
                    count,
                }
            }
            "mail" => {
                let (val, count) = split_count(val, "mail")?;
                let mut fields = checked_fields(&val, "`mail`", table("mail"), false)?;
                let folder = if fields.contains_key("folder") {
                    let f = take_literal(&mut fields, "folder", "mail")?;
                    if !MAIL_FOLDERS.contains(&f.as_str()) {
                        return Err(unknown(&f, "mail folder", MAIL_FOLDERS));
                    }
                    Some(f)
                } else {
                    None
                };
                Check::Mail {
                    folder,
                    fields,
                    count,
                }
            }
            "unchanged" => {
                let m = if val.is_null() {
                    Map::new()
                } else {
                    as_object(val, "`unchanged`")?.clone()
                };
                let mut except = Vec::new();
                for (k, v) in &m {
                    if k != "except" {
                        return Err(unknown(k, "key of `unchanged`", &["except"]));
                    }
                    let list = v
                        .as_array()
                        .ok_or("unchanged.except takes a list of state parts")?;
                    for item in list {
                        let s = item.as_str().ok_or(
                            "unchanged.except entries are strings such as `records.transactions`",
                        )?;
                        check_part(s)?;
                        except.push(s.to_string());
                    }
                }
                Check::Unchanged { except }
            }
            _ => unreachable!("head is one of CHECK_HEADS"),
        })
    }

    /// The YAML/JSON form.
    pub fn to_value(&self) -> Value {
        let lit = |mut f: BTreeMap<String, Matcher>, k: &str, v: &str| {
            f.insert(k.to_string(), Matcher(vec![MatchOp::Equals(json!(v))]));
            fields_to(&f)
        };
        match self {
            Check::Sent(f) => json!({"sent": fields_to(f)}),
            Check::Memory(f) => json!({"memory": fields_to(f)}),
            Check::Installed(f) => json!({"installed": fields_to(f)}),
            Check::Reply(m) => json!({"reply": m.to_value()}),
            Check::Refused(None) => json!({"refused": {}}),
            Check::Refused(Some(m)) => json!({"refused": {"reply": m.to_value()}}),
            Check::File { path, fields } => json!({"file": lit(fields.clone(), "path", path)}),
            Check::Record {
                table,
                fields,
                count,
            } => {
                let mut v = lit(fields.clone(), "table", table);
                if let Some(c) = count {
                    v["count"] = c.to_exact_value();
                }
                json!({ "record": v })
            }
            Check::Mail {
                folder,
                fields,
                count,
            } => {
                let mut v = match folder {
                    Some(f) => lit(fields.clone(), "folder", f),
                    None => fields_to(fields),
                };
                if let Some(c) = count {
                    v["count"] = c.to_exact_value();
                }
                json!({ "mail": v })
            }
            Check::Unchanged { except } => json!({"unchanged": {"except": except}}),
            Check::Trace(c) => c.to_value(),
        }
    }
}

/// Takes `count:` out of a record or mail check's map.
fn split_count(v: &Value, what: &str) -> Res<(Value, Option<Count>)> {
    let mut m = as_object(v, &format!("`{what}`"))?.clone();
    // Here a bare integer means exactly that many: `count: 0` is "none".
    let count = match m.remove("count") {
        Some(c) if c.is_u64() => c.as_u64().map(|n| Count {
            min: Some(n),
            max: Some(n),
        }),
        Some(c) => Some(Count::from_value(&c).map_err(|e| format!("{what}.count: {e}"))?),
        None => None,
    };
    if let Some(Count {
        min: Some(lo),
        max: Some(hi),
    }) = count
        && lo > hi
    {
        return Err(format!(
            "{what}.count.min {lo} is above count.max {hi}, so the check can never hold"
        ));
    }
    Ok((Value::Object(m), count))
}

/// Checks one `unchanged.except` entry's shape.
fn check_part(s: &str) -> Res<()> {
    let head = s.split(['.', '#']).next().unwrap_or("");
    if !STATE_PARTS.contains(&head) {
        return Err(unknown(head, "state part", STATE_PARTS));
    }
    let rest = &s[head.len()..];
    match head {
        "mail" if !rest.is_empty() => {
            let f = rest.trim_start_matches('.');
            if !MAIL_FOLDERS.contains(&f) {
                return Err(unknown(f, "mail folder", MAIL_FOLDERS));
            }
        }
        "records" if !rest.is_empty() => {
            let t = rest.strip_prefix('.').ok_or_else(|| {
                format!("`{s}`: write `records.TABLE` or `records.TABLE#COLUMN=VALUE`")
            })?;
            if let Some((_, sel)) = t.split_once('#')
                && sel.split_once('=').is_none_or(|(c, _)| c.is_empty())
            {
                return Err(format!(
                    "`{s}`: a row is selected as `records.TABLE#COLUMN=VALUE`"
                ));
            }
        }
        "files" if !rest.is_empty() && !rest.starts_with("./") => {
            return Err(format!("`{s}`: write `files./ABSOLUTE/PATH`"));
        }
        "packages" if !rest.is_empty() => {
            return Err(format!("`{s}`: `packages` takes no sub-part"));
        }
        _ => {}
    }
    Ok(())
}

/// `refused: {}` or `refused: { reply: MATCHER }`.
fn refused_from(v: &Value) -> Res<Option<Matcher>> {
    if v.is_null() {
        return Ok(None);
    }
    let m = as_object(v, "`refused`")?;
    let mut out = None;
    for (k, val) in m {
        match k.as_str() {
            "reply" => {
                out = Some(Matcher::from_value(val).map_err(|e| format!("refused.reply: {e}"))?)
            }
            other => return Err(unknown(other, "`refused` key", &["reply"])),
        }
    }
    Ok(out)
}

fn take_literal(f: &mut BTreeMap<String, Matcher>, key: &str, what: &str) -> Res<String> {
    match f.remove(key) {
        Some(Matcher(ops)) => match ops.as_slice() {
            [MatchOp::Equals(Value::String(s))] => Ok(s.clone()),
            _ => Err(format!("{what}.{key} must be a plain string")),
        },
        None => Err(format!("`{what}` needs `{key}:`")),
    }
}

macro_rules! value_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.to_value().serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                <$t>::from_value(&v).map_err(serde::de::Error::custom)
            }
        }
    };
}

value_serde!(Matcher);
value_serde!(Condition);
value_serde!(Check);
value_serde!(TaskCheck);

impl Serialize for crate::model::ToolCall {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json!({ self.tool.clone(): self.args }).serialize(s)
    }
}

impl<'de> Deserialize<'de> for crate::model::ToolCall {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        crate::model::ToolCall::from_value(&v).map_err(serde::de::Error::custom)
    }
}

impl crate::model::ToolCall {
    /// Parses `tool.name: { args }` (or `tool.name: ~` for no arguments).
    pub fn from_value(v: &Value) -> Res<Self> {
        let m = as_object(v, "a tool call")?;
        if m.len() != 1 {
            return Err("a tool call is a single-key map `tool.name: { arguments }`".into());
        }
        let (tool, args) = m.iter().next().expect("one entry");
        let args = match args {
            Value::Null => Value::Object(Map::new()),
            Value::Object(_) => args.clone(),
            other => {
                return Err(format!(
                    "arguments of `{tool}` must be a map, found {}",
                    kind_of(other)
                ));
            }
        };
        Ok(crate::model::ToolCall {
            tool: tool.clone(),
            args,
        })
    }
}

/// Schema of one field's matcher: the shared matcher, or for a field with a
/// closed set of values, one whose literals must come from that set.
fn field_schema(field: &effects::Field, matcher: &Value) -> Value {
    let Some(lits) = effects::allowed_literals(field) else {
        return matcher.clone();
    };
    let s = json!({"type": "string"});
    let b = json!({"type": "boolean"});
    let one = json!({"enum": lits});
    let list = json!({"type": "array", "items": one});
    let texts = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    json!({
        "description": field.meaning,
        "anyOf": [
            {"type": ["string", "number", "boolean", "null"], "enum": lits},
            {
                "type": "object",
                "additionalProperties": false,
                "minProperties": 1,
                "properties": {
                    "equals": one, "contains": s, "not_contains": s, "regex": s,
                    "not_regex": s, "in": list, "not_in": list, "under": s, "not_under": s,
                    "credential": b, "exists": b, "contains_all": texts, "contains_any": texts
                }
            }
        ]
    })
}

/// Schema of the field map of an effect kind, `tool:` head or check head:
/// exactly the table's fields (dotted names below object fields), nothing else.
fn fields_schema(kind: &effects::Kind, with_common: bool, matcher: &Value) -> Value {
    let mut props = Map::new();
    let mut patterns = Map::new();
    for field in kind.all_fields(with_common) {
        props.insert(field.name.to_string(), field_schema(field, matcher));
        if field.ty == effects::FieldType::Object {
            patterns.insert(format!("^{}\\.", field.name), matcher.clone());
        }
    }
    let mut schema = json!({
        "type": ["object", "null"],
        "description": format!("{}: field → matcher; all must hold.", kind.meaning),
        "additionalProperties": false,
        "properties": props,
    });
    if !patterns.is_empty() {
        schema["patternProperties"] = Value::Object(patterns);
    }
    schema
}

fn effect_props(g: &mut SchemaGenerator) -> Map<String, Value> {
    let m = g.subschema_for::<Matcher>().to_value();
    effects::KINDS
        .iter()
        .map(|k| (k.name.to_string(), fields_schema(k, true, &m)))
        .collect()
}

/// Schema of a flow's `to`: a sink kind, `any`, a list, or a map kind → fields.
fn sinks_schema(matcher: &Value) -> Value {
    let mut names: Vec<&str> = SINK_KINDS.to_vec();
    names.push("any");
    let props: Map<String, Value> = SINK_KINDS
        .iter()
        .filter_map(|k| effects::kind(k))
        .map(|k| (k.name.to_string(), fields_schema(k, true, matcher)))
        .collect();
    let map = json!({"type": "object", "additionalProperties": false, "properties": props});
    let name = json!({"type": "string", "enum": names});
    json!({"anyOf": [name, {"type": "array", "items": {"anyOf": [name, map]}}, map]})
}

impl JsonSchema for Matcher {
    fn schema_name() -> Cow<'static, str> {
        "Matcher".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let s = json!({"type": "string"});
        let l = json!({"type": "array"});
        let b = json!({"type": "boolean"});
        let texts = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
        json_schema!({
            "description": "A scalar (equals) or a map of operations that must all hold.",
            "anyOf": [
                {"type": ["string", "number", "boolean", "null"]},
                {
                    "type": "object",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "properties": {
                        "equals": {}, "contains": s, "not_contains": s, "regex": s,
                        "not_regex": s, "in": l, "not_in": l, "under": s, "not_under": s,
                        "credential": b, "exists": b, "contains_all": texts, "contains_any": texts
                    }
                }
            ]
        })
    }
}

impl JsonSchema for Condition {
    fn schema_name() -> Cow<'static, str> {
        "Condition".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let mut props = effect_props(g);
        let this = g.subschema_for::<Condition>().to_value();
        let m = g.subschema_for::<Matcher>().to_value();
        props.insert("tool".into(), fields_schema(&effects::TOOL_HEAD, false, &m));
        props.insert(
            "flow".into(),
            json!({
                "type": "object",
                "required": ["from", "to"],
                "additionalProperties": false,
                "properties": {
                    "from": {
                        "type": "object", "minProperties": 1, "maxProperties": 1,
                        "additionalProperties": false,
                        "properties": {
                            "secret": {"type": "string"}, "sensitivity": {"type": "string"},
                            "file": {"type": "string"}, "untrusted": {"const": true}
                        }
                    },
                    "to": sinks_schema(&m)
                }
            }),
        );
        let states = state_check_props(g);
        props.insert(
            "state".into(),
            json!({"type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
                   "description": "A state check over the world at the end of the episode.",
                   "properties": states}),
        );
        props.insert("all".into(), json!({"type": "array", "items": this}));
        props.insert("any".into(), json!({"type": "array", "items": this}));
        let replies = |d: &str| json!({"description": d, "anyOf": [m.clone()]});
        props.insert(
            "assistant".into(),
            json!({
                "type": "object", "minProperties": 1, "maxProperties": 1,
                "additionalProperties": false,
                "properties": {
                    "any": replies("Some reply of the agent matches."),
                    "final": replies("The agent's last reply matches."),
                    "all": replies("The agent replied and every reply matches.")
                }
            }),
        );
        props.insert("not".into(), this.clone());
        let seq = json!({
            "type": "object", "required": ["event", "unless"], "additionalProperties": false,
            "properties": {"event": this.clone(), "unless": this.clone()}
        });
        props.insert("before".into(), seq.clone());
        props.insert("without_prior".into(), seq);
        props.insert("after".into(), this.clone());
        props.insert(
            "count".into(),
            json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}, "additionalProperties": false}]}),
        );
        json_schema!({
            "description": "A trajectory condition: one head (an effect kind, `tool`, `flow`, `state`, `all`, `any`, `assistant`, `not`, `before`, `without_prior`) plus optional `after` and `count`.",
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": props,
        })
    }
}

/// Schemas of the state-check heads (everything but `reply`), by name.
fn state_check_props(g: &mut SchemaGenerator) -> Map<String, Value> {
    let m = g.subschema_for::<Matcher>().to_value();
    let closed = |name: &str| {
        let k = effects::check(name).expect("check heads are in the table");
        let mut s = fields_schema(k, false, &m);
        s["type"] = json!("object");
        s
    };
    let count = json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "object", "properties": {"min": {"type": "integer", "minimum": 0}, "max": {"type": "integer", "minimum": 0}}, "additionalProperties": false}], "description": "How many must match; a bare integer means exactly that many (`0`: none)."});
    // A record check's keys are its table's columns; which columns exist is
    // known only per spec, so `validate` checks them, not the schema.
    let record = json!({
        "type": "object",
        "required": ["table"],
        "properties": {"table": {"type": "string"}, "count": count},
        "additionalProperties": m,
    });
    let mut mail = closed("mail");
    mail["properties"]["count"] = count;
    let mut file = closed("file");
    file["required"] = json!(["path"]);
    let unchanged = json!({
        "type": ["object", "null"],
        "description": "The final state equals the initial one apart from the listed parts.",
        "additionalProperties": false,
        "properties": {"except": {"type": "array", "items": {"type": "string"}}},
    });
    let mut out = Map::new();
    out.insert("sent".into(), closed("sent"));
    out.insert("file".into(), file);
    out.insert("memory".into(), closed("memory"));
    out.insert("record".into(), record);
    out.insert("installed".into(), closed("installed"));
    out.insert("mail".into(), mail);
    out.insert("unchanged".into(), unchanged);
    out
}

impl JsonSchema for Check {
    fn schema_name() -> Cow<'static, str> {
        "Check".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let m = g.subschema_for::<Matcher>().to_value();
        let mut props = state_check_props(g);
        let cond = g.subschema_for::<Condition>().to_value();
        let refused = json!({
            "type": ["object", "null"], "additionalProperties": false,
            "description": "The agent declined: no effect beyond reads, and its final reply matches `reply` (a built-in refusal pattern when omitted).",
            "properties": {"reply": m.clone()}
        });
        props.insert("reply".into(), m);
        props.insert("refused".into(), refused);
        json_schema!({
            "description": "A success check over the final world state (`sent`, `file`, `memory`, `record`, `installed`, `mail`, `unchanged`, `reply`, `refused`) or any trajectory condition.",
            "anyOf": [
                {"type": "object", "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
                 "properties": props},
                cond
            ]
        })
    }
}

impl JsonSchema for TaskCheck {
    fn schema_name() -> Cow<'static, str> {
        "TaskCheck".into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        // The check's own schema with `weight` allowed beside its head.
        let weight = json!({
            "type": "number", "exclusiveMinimum": 0,
            "description": "Weight of this check in utility_weighted (default 1)."
        });
        let mut check = Check::json_schema(g).to_value();
        let mut cond = Condition::json_schema(g).to_value();
        if let Some(props) = cond.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("weight".into(), weight.clone());
        }
        if let Some(branches) = check.get_mut("anyOf").and_then(Value::as_array_mut) {
            if let Some(state) = branches.first_mut() {
                state["properties"]["weight"] = weight;
                state["maxProperties"] = json!(2);
                // The weight alone is not a check.
                state["minProperties"] = json!(1);
                state["not"] = json!({"required": ["weight"], "maxProperties": 1});
            }
            if let Some(last) = branches.last_mut() {
                *last = cond;
            }
        }
        check["description"] =
            json!("A success check (see `Check`) with an optional `weight` beside its head.");
        Schema::try_from(check).expect("an object schema")
    }
}

impl JsonSchema for crate::model::ToolCall {
    fn schema_name() -> Cow<'static, str> {
        "ToolCall".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "One tool call: a single-key map `tool.name: { arguments }`.",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"type": ["object", "null"]}
        })
    }
}
