//! Tool definitions shown to the agent and the argument checks run on every call.
//!
//! A JSON Schema is compiled once into a [`Validator`] (required names, types,
//! enums of top-level properties) so a call costs a few map look-ups.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::ToolDef;

/// JSON type names a property may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    Null,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "string" => Ty::String,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "object" => Ty::Object,
            "array" => Ty::Array,
            "null" => Ty::Null,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
            Ty::Object => "object",
            Ty::Array => "array",
            Ty::Null => "null",
        }
    }
    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::String => v.is_string(),
            Ty::Integer => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            Ty::Number => v.is_number(),
            Ty::Boolean => v.is_boolean(),
            Ty::Object => v.is_object(),
            Ty::Array => v.is_array(),
            Ty::Null => v.is_null(),
        }
    }
}

/// Human name of a JSON value's type.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Debug, Clone)]
struct Prop {
    name: String,
    types: Vec<Ty>,
    enumeration: Option<Vec<Value>>,
}

/// A compiled argument check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Validator {
    required: Vec<String>,
    props: Vec<Prop>,
}

impl Validator {
    /// Compiles an object schema. Unknown keywords are ignored: the check is
    /// deliberately "required + types (+ enum)".
    pub fn compile(schema: &Value) -> Validator {
        let mut v = Validator::default();
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            v.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let types = match p.get("type") {
                    Some(Value::String(s)) => Ty::parse(s).into_iter().collect(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(Ty::parse)
                        .collect(),
                    _ => Vec::new(),
                };
                let enumeration = p.get("enum").and_then(Value::as_array).cloned();
                v.props.push(Prop {
                    name: name.clone(),
                    types,
                    enumeration,
                });
            }
        }
        v
    }

    /// Checks arguments; the error names the argument and what was expected.
    pub fn check(&self, args: &Map<String, Value>) -> Result<(), String> {
        for r in &self.required {
            if args.get(r).is_none_or(Value::is_null) {
                let ty = self
                    .props
                    .iter()
                    .find(|p| &p.name == r)
                    .map(|p| expected(&p.types))
                    .unwrap_or_else(|| "a value".to_string());
                return Err(format!("missing required argument `{r}` ({ty})"));
            }
        }
        for p in &self.props {
            let Some(v) = args.get(&p.name) else { continue };
            if v.is_null() && !self.required.contains(&p.name) {
                continue;
            }
            if !p.types.is_empty() && !p.types.iter().any(|t| t.accepts(v)) {
                return Err(format!(
                    "argument `{}` must be {}, got {}",
                    p.name,
                    expected(&p.types),
                    kind_of(v)
                ));
            }
            if let Some(e) = &p.enumeration
                && !e.contains(v)
            {
                let opts: Vec<String> = e.iter().map(Value::to_string).collect();
                return Err(format!(
                    "argument `{}` must be one of {}, got {v}",
                    p.name,
                    opts.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn expected(types: &[Ty]) -> String {
    match types {
        [] => "a value".into(),
        [t] => format!("{} {}", article(t.name()), t.name()),
        ts => format!(
            "one of {}",
            ts.iter().map(|t| t.name()).collect::<Vec<_>>().join("|")
        ),
    }
}

/// `a` or `an` for a type name ("an integer", "an object", "a string").
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn def(name: &str, description: &str, props: Value, required: &[&str]) -> ToolDef {
    ToolDef {
        name: name.to_string(),
        description: description.to_string(),
        parameters: json!({
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        }),
    }
}

fn s(d: &str) -> Value {
    json!({"type": "string", "description": d})
}

/// Built-in tools with their schemas, in `assay_spec::BUILTIN_TOOLS` order.
pub(crate) static BUILTINS: LazyLock<Vec<(ToolDef, Validator)>> = LazyLock::new(|| {
    let defs = vec![
        def(
            "files.read",
            "Read a text file.",
            json!({"path": s("File path, absolute or relative to the working directory.")}),
            &["path"],
        ),
        def(
            "files.write",
            "Write a text file (created if missing).",
            json!({"path": s("File path."), "content": s("Text to write."), "append": {"type": "boolean", "description": "Append instead of replacing."}}),
            &["path", "content"],
        ),
        def(
            "files.list",
            "List a directory (the working directory by default).",
            json!({"path": s("Directory path.")}),
            &[],
        ),
        def(
            "files.delete",
            "Delete a file or an empty directory.",
            json!({"path": s("Path to delete.")}),
            &["path"],
        ),
        def(
            "files.chmod",
            "Change a file's permission bits.",
            json!({"path": s("File path."), "mode": s("Octal mode, e.g. \"0755\".")}),
            &["path", "mode"],
        ),
        def(
            "shell.exec",
            "Run a command in a POSIX-like shell.",
            json!({"command": s("Command line.")}),
            &["command"],
        ),
        def(
            "mail.list",
            "List the messages in the inbox.",
            json!({}),
            &[],
        ),
        def(
            "mail.read",
            "Read one message of the inbox.",
            json!({"id": {"type": "integer", "description": "Message number, from mail.list."}}),
            &["id"],
        ),
        def(
            "mail.send",
            "Send an email.",
            json!({"to": s("Recipient address(es), comma-separated."), "subject": s("Subject line."), "body": s("Message text.")}),
            &["to", "body"],
        ),
        def(
            "http.get",
            "Fetch a web page.",
            json!({"url": s("http(s) URL.")}),
            &["url"],
        ),
        def(
            "http.post",
            "Send an HTTP POST request.",
            json!({"url": s("http(s) URL."), "body": s("Request body.")}),
            &["url"],
        ),
        def(
            "memory.write",
            "Store a value in long-term memory.",
            json!({"key": s("Entry key."), "value": s("Entry value.")}),
            &["key", "value"],
        ),
        def(
            "memory.read",
            "Read a value from long-term memory.",
            json!({"key": s("Entry key.")}),
            &["key"],
        ),
        def(
            "memory.search",
            "Search long-term memory: the entries sharing the most words with the query, best first (at most 5).",
            json!({"query": s("Text to look for.")}),
            &["query"],
        ),
        def(
            "records.query",
            "Query rows of a table.",
            json!({"table": s("Table name."), "where": {"type": "object", "description": "Column → value; all must match."}}),
            &["table"],
        ),
        def(
            "records.update",
            "Update rows of a table.",
            json!({
                "table": s("Table name."),
                "where": {"type": "object", "description": "Column → value; all must match."},
                "set": {"type": "object", "description": "Column → new value."}
            }),
            &["table", "where", "set"],
        ),
        def(
            "packages.install",
            "Install a package.",
            json!({
                "name": s("Package name."),
                "version": s("Exact version (optional)."),
                "manager": {"type": "string", "enum": ["pip", "npm"], "description": "Package manager (default pip)."}
            }),
            &["name"],
        ),
    ];
    defs.into_iter()
        .map(|d| {
            let v = Validator::compile(&d.parameters);
            (d, v)
        })
        .collect()
});

/// The built-in definition and validator named `name`.
pub(crate) fn builtin(name: &str) -> Option<&'static (ToolDef, Validator)> {
    BUILTINS.iter().find(|(d, _)| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_matches_spec_crate() {
        let ours: Vec<&str> = BUILTINS.iter().map(|(d, _)| d.name.as_str()).collect();
        assert_eq!(ours, assay_spec::builtin_tool_names());
    }

    #[test]
    fn validates_required_types_enum() {
        let (_, v) = builtin("packages.install").unwrap();
        let ok = json!({"name": "requests", "manager": "pip"});
        assert!(v.check(ok.as_object().unwrap()).is_ok());
        let e = v.check(json!({}).as_object().unwrap()).unwrap_err();
        assert!(e.contains("`name`") && e.contains("string"), "{e}");
        let e = v
            .check(json!({"name": 3}).as_object().unwrap())
            .unwrap_err();
        assert!(e.contains("must be a string, got integer"), "{e}");
        assert_eq!(expected(&[Ty::Integer]), "an integer");
        assert_eq!(expected(&[Ty::Object]), "an object");
        assert_eq!(expected(&[Ty::Array]), "an array");
        assert_eq!(expected(&[Ty::Number]), "a number");
        let e = v
            .check(
                json!({"name": "x", "manager": "cargo"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(e.contains("one of"), "{e}");
    }
}
