//! YAML → JSON value, remembering where every node came from.
//!
//! Diagnostics must point at a line and column, which ordinary YAML
//! deserialisers forget. This reads the parser's event stream and records the
//! position of each map key and sequence item under its JSON Pointer.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Character index into the source (the parser counts characters, not bytes).
    pub index: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Pos {
        Pos {
            line: m.line(),
            col: m.col() + 1,
            index: m.index(),
        }
    }
}

/// A parsed document with node positions keyed by JSON Pointer.
#[derive(Debug, Default)]
pub struct Located {
    /// The document as JSON.
    pub value: Value,
    /// JSON Pointer → position of the key (for map entries) or node.
    pub positions: HashMap<String, Pos>,
}

impl Located {
    /// Position for a pointer, falling back to the nearest ancestor that has one.
    pub fn pos(&self, pointer: &str) -> Pos {
        let mut p = pointer.to_string();
        loop {
            if let Some(pos) = self.positions.get(&p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => {
                    return Pos {
                        line: 1,
                        col: 1,
                        index: 0,
                    };
                }
            }
        }
    }
}

/// Escapes one JSON Pointer segment.
pub fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Map {
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
    },
}

/// How much YAML aliases may copy into one document, in units of one per
/// node plus one per byte of text (keys and strings). A real spec uses a few
/// hundred; an alias bomb ("billion laughs") of a few hundred bytes would
/// otherwise expand to tens of megabytes and double per level.
pub const ALIAS_BUDGET: usize = 1_000_000;

/// Size of a value in alias-budget units.
fn cost(v: &Value) -> usize {
    match v {
        Value::String(s) => 1 + s.len(),
        Value::Array(a) => a.iter().fold(1, |n, x| n.saturating_add(cost(x))),
        Value::Object(o) => o.iter().fold(1, |n, (k, x)| {
            n.saturating_add(k.len()).saturating_add(cost(x))
        }),
        _ => 1,
    }
}

struct Builder {
    stack: Vec<Frame>,
    /// Pointer of the node currently being built, one entry per open frame.
    ptrs: Vec<String>,
    /// Anchored values with their size in alias-budget units.
    anchors: HashMap<usize, (Value, usize)>,
    /// Alias-budget units still available.
    budget: usize,
    root: Option<Value>,
    positions: HashMap<String, Pos>,
    docs: usize,
    error: Option<(String, Pos)>,
}

impl Builder {
    /// Pointer of the child about to be produced in the innermost frame.
    fn child_ptr(&self) -> String {
        let base = self.ptrs.last().cloned().unwrap_or_default();
        match self.stack.last() {
            Some(Frame::Map { key: Some(k), .. }) => format!("{base}/{}", escape(k)),
            Some(Frame::Seq { items, .. }) => format!("{base}/{}", items.len()),
            _ => base,
        }
    }

    fn push_value(&mut self, v: Value, mark: Marker, anchor: usize) {
        if anchor > 0 && self.error.is_none() {
            let n = cost(&v);
            self.anchors.insert(anchor, (v.clone(), n));
        }
        match self.stack.last_mut() {
            None => {
                self.root = Some(v);
            }
            Some(Frame::Seq { items, .. }) => {
                let ptr = format!(
                    "{}/{}",
                    self.ptrs.last().cloned().unwrap_or_default(),
                    items.len()
                );
                self.positions.entry(ptr).or_insert(mark.into());
                items.push(v);
            }
            Some(Frame::Map { map, key, .. }) => match key.take() {
                None => {
                    let k = match v {
                        Value::String(s) => s,
                        Value::Null => "null".to_string(),
                        other => other.to_string(),
                    };
                    let ptr = format!(
                        "{}/{}",
                        self.ptrs.last().cloned().unwrap_or_default(),
                        escape(&k)
                    );
                    if map.contains_key(&k) && self.error.is_none() {
                        self.error = Some((format!("duplicate key `{k}`"), mark.into()));
                    }
                    self.positions.insert(ptr, mark.into());
                    *key = Some(k);
                }
                Some(k) => {
                    map.insert(k, v);
                }
            },
        }
    }
}

fn scalar(s: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(s);
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = s.parse::<u64>() {
        return Value::Number(u.into());
    }
    if s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::DocumentStart => {
                self.docs += 1;
                if self.docs > 1 && self.error.is_none() {
                    self.error = Some((
                        "more than one YAML document in this file; put one spec per file".into(),
                        mark.into(),
                    ));
                }
            }
            Event::Scalar(s, style, anchor, _tag) => {
                self.push_value(scalar(s, style), mark, anchor)
            }
            Event::Alias(id) => {
                // Copy the anchored value only while the budget lasts; after
                // the first error nothing is copied, so a bomb costs no more
                // than its own text to reject.
                let v = match self.anchors.get(&id) {
                    Some((v, n)) if self.error.is_none() && *n <= self.budget => {
                        self.budget -= n;
                        v.clone()
                    }
                    Some(_) if self.error.is_none() => {
                        self.error = Some((
                            format!(
                                "YAML aliases expand beyond the budget of {ALIAS_BUDGET} nodes and bytes (an alias bomb?); write the repeated content out, or use fewer nested aliases"
                            ),
                            mark.into(),
                        ));
                        Value::Null
                    }
                    _ => Value::Null,
                };
                self.push_value(v, mark, 0);
            }
            Event::SequenceStart(anchor, _) => {
                let ptr = self.child_ptr();
                self.positions.entry(ptr.clone()).or_insert(mark.into());
                self.ptrs.push(ptr);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                });
            }
            Event::MappingStart(anchor, _) => {
                let ptr = self.child_ptr();
                self.positions.entry(ptr.clone()).or_insert(mark.into());
                self.ptrs.push(ptr);
                self.stack.push(Frame::Map {
                    map: Map::new(),
                    key: None,
                    anchor,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.ptrs.pop();
                let (v, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                self.push_value(v, mark, anchor);
            }
            _ => {}
        }
    }
}

/// Parses YAML text. Errors carry a message and position.
pub fn parse(text: &str) -> Result<Located, (String, Pos)> {
    let mut b = Builder {
        stack: Vec::new(),
        ptrs: Vec::new(),
        anchors: HashMap::new(),
        budget: ALIAS_BUDGET,
        root: None,
        positions: HashMap::new(),
        docs: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err((e.info().to_string(), (*m).into()));
    }
    if let Some(err) = b.error {
        return Err(err);
    }
    Ok(Located {
        value: b.root.unwrap_or(Value::Null),
        positions: b.positions,
    })
}

/// Parses YAML text into a JSON value; errors carry a message and a position.
pub fn parse_value(text: &str) -> Result<Value, (String, Pos)> {
    parse(text).map(|l| l.value)
}

/// Writes a JSON value as YAML, block style, multi-line strings as literal
/// blocks. Deterministic: the same value gives the same bytes, and
/// [`parse_value`] reads it back to the same value.
pub fn emit(value: &Value) -> String {
    fn conv(v: &Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(conv).collect()),
            Value::Object(o) => {
                let mut h = yaml_rust2::yaml::Hash::new();
                for (k, v) in o {
                    h.insert(Yaml::String(k.clone()), conv(v));
                }
                Yaml::Hash(h)
            }
        }
    }
    let write = |multiline: bool| {
        let mut out = String::new();
        let mut em = yaml_rust2::YamlEmitter::new(&mut out);
        em.multiline_strings(multiline);
        em.dump(&conv(value))
            .expect("writing to a String cannot fail");
        let body = out.strip_prefix("---\n").unwrap_or(&out);
        format!("{body}\n")
    };
    // Literal blocks read best, but the emitter cannot express every string
    // (e.g. several trailing newlines); fall back to quoted scalars when the
    // text would not read back to the same value.
    if block_safe(value) {
        write(true)
    } else {
        write(false)
    }
}

/// Whether every multi-line string in `v` survives the emitter's literal-block
/// form. Scalars are emitted independently of where they sit, so checking each
/// one alone is enough, and much cheaper than re-reading the whole document.
fn block_safe(v: &Value) -> bool {
    match v {
        Value::String(s) if s.contains('\n') => {
            let mut out = String::new();
            let mut em = yaml_rust2::YamlEmitter::new(&mut out);
            em.multiline_strings(true);
            // Block scalars are only used for mapping values: test it as one.
            let mut h = yaml_rust2::yaml::Hash::new();
            h.insert(
                yaml_rust2::Yaml::String("k".into()),
                yaml_rust2::Yaml::String(s.clone()),
            );
            h.insert(yaml_rust2::Yaml::String("z".into()), yaml_rust2::Yaml::Null);
            em.dump(&yaml_rust2::Yaml::Hash(h))
                .expect("writing to a String cannot fail");
            matches!(parse_value(&out), Ok(v) if v.get("k").and_then(Value::as_str) == Some(s))
        }
        Value::Array(a) => a.iter().all(block_safe),
        Value::Object(o) => o.values().all(block_safe),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_positions() {
        let l = parse("a: 1\nb:\n  - x\n  - 'true'\n  - true\nc: { d: 2.5, e: ~ }\n").unwrap();
        assert_eq!(
            l.value,
            serde_json::json!({"a":1,"b":["x","true",true],"c":{"d":2.5,"e":null}})
        );
        assert_eq!(l.pos("/b/1").line, 4);
        assert_eq!(l.pos("/c/e").line, 6);
        assert_eq!(l.pos("/c/e/zz").line, 6);
    }

    #[test]
    fn emit_round_trips() {
        let v = serde_json::json!({
            "a": "0600", "b": "true", "c": "multi\nline\n", "d": [1, 2.5, null, false],
            "e": {"x": "- dash", "y": "key: value", "z": "\u{200b}zero\u{e0041}tag", "w": ""},
            "f": "  lead", "g": "trailing  \n\n", "h": "#hash", "i": 12345678901i64, "u": u64::MAX
        });
        let text = emit(&v);
        assert_eq!(parse_value(&text).unwrap(), v, "{text}");
        assert_eq!(emit(&v), text);
    }

    #[test]
    fn errors_have_positions() {
        let (msg, pos) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(!msg.is_empty());
        assert!(pos.line >= 1);
        let (msg, _) = parse("a: 1\na: 2\n").unwrap_err();
        assert!(msg.contains("duplicate"));
    }
}
