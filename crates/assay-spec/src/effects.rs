//! The effect vocabulary as one table: every effect kind, its fields, their
//! types and, where there is one, the closed set of values a field takes; the
//! fields of the `tool:` head; and the fields of the success-check heads.
//!
//! One table serves every consumer, so they cannot drift apart: condition
//! parsing (an unknown matcher field is an error, so a rule that can never fire
//! is never compiled), the validator (file:line:column and a did-you-mean), the
//! JSON Schema (per-kind properties with `additionalProperties: false`) and
//! `docs/effects.md` (its field tables are generated from here; a test keeps
//! them equal). The world crate emits effects; a test in a crate that sees both
//! vocabularies keeps the kind names equal to `assay_trace::EffectKind`.

use serde_json::Value;

use crate::suggest::did_you_mean;

/// The type of a field's value, as it appears in effects and state objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text.
    String,
    /// `true` or `false`.
    Bool,
    /// A non-negative whole number.
    Integer,
    /// Text, or `null` when absent in the act (e.g. an install without version).
    OptString,
    /// A JSON object; dotted names (`args.env`) match inside it.
    Object,
    /// Any JSON value (a row key: a number or text).
    Any,
}

impl FieldType {
    /// The name used in the docs tables.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Bool => "bool",
            FieldType::Integer => "integer",
            FieldType::OptString => "string or null",
            FieldType::Object => "object",
            FieldType::Any => "any",
        }
    }
}

/// One field of an effect kind or check head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Field name, as written in a matcher.
    pub name: &'static str,
    /// Value type.
    pub ty: FieldType,
    /// One-line meaning.
    pub meaning: &'static str,
    /// The closed set of values the field takes; empty when open.
    pub values: &'static [&'static str],
}

/// One effect kind (or check head) and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Kind name (`read`, `send`, ...).
    pub name: &'static str,
    /// One-line meaning.
    pub meaning: &'static str,
    /// Its fields, in documentation order.
    pub fields: &'static [Field],
}

const fn f(name: &'static str, ty: FieldType, meaning: &'static str) -> Field {
    Field {
        name,
        ty,
        meaning,
        values: &[],
    }
}

const fn closed(
    name: &'static str,
    values: &'static [&'static str],
    meaning: &'static str,
) -> Field {
    Field {
        name,
        ty: FieldType::String,
        meaning,
        values,
    }
}

use FieldType::{Any, Bool, Integer, Object, OptString, String as Str};

/// Fields every effect carries.
pub const COMMON: &[Field] = &[f(
    "via",
    Str,
    "the tool that caused it: `files.read`, `shell.exec`, `deploy.apply`, ...",
)];

/// Sources of a `read` effect.
pub const READ_SOURCES: &[&str] = &["file", "mail", "web", "memory", "records", "env", "tool"];

/// Actions of a `denied` effect.
pub const DENIED_ACTIONS: &[&str] = &[
    "read", "write", "list", "delete", "chmod", "mkdir", "move", "link", "chdir", "request", "call",
];

/// Every effect kind with its fields.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "read",
        meaning: "content reached the agent",
        fields: &[
            closed("source", READ_SOURCES, "where the content came from"),
            f(
                "path",
                Str,
                "file path; `mail/ID` (`mail/inbox` for a listing); the page URL as declared in `world.web`; memory key; table name; env variable name (`*` for `env` without arguments)",
            ),
            f(
                "sensitivity",
                Str,
                "the resource's label; present only when the resource is labelled (files, mail, pages, tables, labelled `world.env` variables)",
            ),
            f(
                "content",
                Str,
                "the full content read; present only when labelled (files: the whole file, mail: the rendered message, records: the rows returned, one JSON object a line)",
            ),
            f(
                "bytes",
                Integer,
                "length of the content in bytes (absent on listings)",
            ),
            f(
                "listing",
                Bool,
                "`true` for a directory or inbox listing (`files.list`, `ls`, `find`, `mail.list`)",
            ),
            f(
                "entries",
                Integer,
                "number of entries listed (listings only)",
            ),
            f(
                "rows",
                Integer,
                "rows returned (`records.query`, a custom tool's `find`)",
            ),
        ],
    },
    Kind {
        name: "write",
        meaning: "a file or table was created or changed",
        fields: &[
            closed("source", &["file", "records"], "what was written"),
            f("path", Str, "file path or table name"),
            f(
                "content",
                Str,
                "the data written (for an append: the appended text; for `records.update` and a custom tool's `update`: the `set` object as JSON; for `insert`: the row as JSON)",
            ),
            f("bytes", Integer, "length of `content`"),
            f(
                "append",
                Bool,
                "`true` for `>>` / `files.write {append: true}`",
            ),
            f(
                "created",
                Bool,
                "`true` when the file (or, for an `insert`, the row) did not exist",
            ),
            f("directory", Bool, "`true` for `mkdir` (content empty)"),
            f(
                "symlink",
                Str,
                "target of a symbolic link the write made (`ln -s`)",
            ),
            f(
                "rows",
                Integer,
                "records only: rows changed (1 for a custom tool's `insert`/`update`, which emit one effect per row)",
            ),
            f(
                "where",
                Object,
                "`records.update` and a custom tool's `update`: the filter used",
            ),
            f(
                "key",
                Any,
                "custom tool `insert`/`update`: the row's key (the table's `key` column), when the table declares one",
            ),
            f(
                "row",
                Object,
                "custom tool `insert`/`update`: the row after the change (`row.COLUMN` matches one column)",
            ),
            f(
                "before",
                Object,
                "custom tool `update`: the row before the change",
            ),
        ],
    },
    Kind {
        name: "delete",
        meaning: "a file, directory or table row was removed",
        fields: &[
            f(
                "path",
                Str,
                "the path removed; `rm -r DIR` emits one per file and directory below it, deepest first, then `DIR`; for a row, its table",
            ),
            closed(
                "source",
                &["records"],
                "`records` for a row a custom tool's `delete` removed (absent for files)",
            ),
            f(
                "key",
                Any,
                "the removed row's key, when the table declares one",
            ),
            f("row", Object, "the removed row"),
        ],
    },
    Kind {
        name: "exec",
        meaning: "a program ran (every simple command of `shell.exec`)",
        fields: &[
            f(
                "program",
                Str,
                "`argv[0]` after expansion (`cat`, `curl`, or an unknown name)",
            ),
            f(
                "command",
                Str,
                "the expanded command line (variables and `$(...)` substituted), shell-quoted where needed",
            ),
        ],
    },
    Kind {
        name: "egress",
        meaning: "an HTTP request to a host outside `world.network.allow`",
        fields: HTTP_FIELDS,
    },
    Kind {
        name: "request",
        meaning: "an HTTP request to a host in `world.network.allow`",
        fields: HTTP_FIELDS,
    },
    Kind {
        name: "send",
        meaning: "a message left through a channel",
        fields: &[
            closed("channel", &["mail"], "the channel"),
            f("from", Str, "the agent's address (`world.mail.address`)"),
            f("to", Str, "recipients as given (comma-separated)"),
            f("subject", Str, "subject as sent"),
            f("body", Str, "body as sent"),
            f(
                "external",
                Bool,
                "`true` when any recipient's domain differs from the agent's own address domain",
            ),
        ],
    },
    Kind {
        name: "memory_write",
        meaning: "long-term memory was written",
        fields: &[
            f("key", Str, "the memory key"),
            f("value", Str, "the value stored"),
        ],
    },
    Kind {
        name: "install",
        meaning: "a package was installed",
        fields: &[
            closed("manager", &["pip", "npm"], "the package manager"),
            f(
                "name",
                Str,
                "package name (extras and version specifiers stripped)",
            ),
            f(
                "version",
                OptString,
                "exact version (`pip install x==1.0`, `npm i x@1.0`, `packages.install {version}`), else `null`",
            ),
        ],
    },
    Kind {
        name: "permission_change",
        meaning: "file permissions changed",
        fields: &[
            f("path", Str, "the file"),
            f("mode", Str, "new bits, `\"0755\"` style"),
            f("previous", Str, "old bits, same style"),
        ],
    },
    Kind {
        name: "denied",
        meaning: "the world refused an action",
        fields: &[
            closed(
                "action",
                DENIED_ACTIONS,
                "what was refused; `call` when the call itself was refused",
            ),
            f(
                "target",
                Str,
                "the path, URL or tool name as the agent gave it",
            ),
            f(
                "reason",
                Str,
                "e.g. `path escapes the filesystem root`, `unknown tool`, `tool not available to this agent`",
            ),
        ],
    },
    Kind {
        name: "call",
        meaning: "a declarative tool from `world.tools` was called",
        fields: &[
            f("tool", Str, "the tool's name"),
            f(
                "args",
                Object,
                "the arguments object (`args.NAME` matches one argument)",
            ),
        ],
    },
    Kind {
        name: "unsupported",
        meaning: "the world could not model what was asked; the episode is `inconclusive` unless a rule fired",
        fields: &[
            f("program", Str, "`argv[0]` or the tool name"),
            f(
                "detail",
                Str,
                "the command, option or argument not modelled",
            ),
            f("reason", Str, "a short sentence saying why"),
        ],
    },
];

const HTTP_FIELDS: &[Field] = &[
    f("method", Str, "`GET`, `POST`, `PUT`, ..."),
    f("url", Str, "the full URL (query string included)"),
    f(
        "host",
        Str,
        "the normalised host a WHATWG client contacts; for an `egress` whose WHATWG host is inside the boundary, the first plausible host outside it",
    ),
    f(
        "body",
        Str,
        "request body (`\"\"` when none); curl `-d` values joined with `&`",
    ),
    f(
        "headers",
        Str,
        "request headers, newline-separated (only when some were given, e.g. `curl -H`)",
    ),
    f(
        "ambiguous",
        Bool,
        "`true` when the URL had userinfo, a backslash or another form WHATWG clients and naive parsers disagree on",
    ),
    f(
        "ambiguity",
        Str,
        "why the URL is ambiguous, e.g. `backslash in the URL; parsers disagree on the host` (ambiguous URLs only)",
    ),
    f(
        "hosts",
        Str,
        "every plausible host, space-separated, the WHATWG one first (ambiguous URLs only)",
    ),
];

/// Fields of the `tool:` head (a tool call by name and arguments).
pub const TOOL_HEAD: Kind = Kind {
    name: "tool",
    meaning: "a tool call by name and arguments",
    fields: &[
        f("name", Str, "the tool's name"),
        f("tool", Str, "the tool's name (same as `name`)"),
        f(
            "args",
            Object,
            "the arguments object (`args.NAME` matches one argument)",
        ),
    ],
};

/// Fields of the success-check heads over the final world state. `record`
/// also takes the columns of its table, and `file`/`record` take `path`/`table`
/// as plain strings.
pub const CHECKS: &[Kind] = &[
    Kind {
        name: "sent",
        meaning: "a mail in the outbox matches",
        fields: &[
            f("to", Str, "recipients"),
            f("subject", Str, "subject"),
            f("body", Str, "body"),
        ],
    },
    Kind {
        name: "file",
        meaning: "the file at `path` in the final state matches",
        fields: &[
            f("path", Str, "absolute path of the file (a plain string)"),
            f("text", Str, "content"),
            f(
                "exists",
                Bool,
                "whether the file exists (`false` for \"was deleted\")",
            ),
            f("mode", Str, "permission bits, `\"0600\"` style"),
            f("symlink", Str, "target, when the path is a symbolic link"),
        ],
    },
    Kind {
        name: "memory",
        meaning: "some memory entry matches",
        fields: &[f("key", Str, "the key"), f("value", Str, "the value")],
    },
    Kind {
        name: "record",
        meaning: "some row of `table` matches all given columns (`count:` bounds how many)",
        fields: &[f(
            "table",
            Str,
            "the table (a plain string); other keys are its columns",
        )],
    },
    Kind {
        name: "mail",
        meaning: "a message of the final mailbox matches (`count:` bounds how many)",
        fields: &[
            closed(
                "folder",
                crate::condition::MAIL_FOLDERS,
                "the folder (a plain string); every folder when absent",
            ),
            f("from", Str, "sender"),
            f("to", Str, "recipients"),
            f("subject", Str, "subject"),
            f("body", Str, "body"),
        ],
    },
    Kind {
        name: "installed",
        meaning: "a package is installed at the end",
        fields: &[
            f("name", Str, "package name"),
            f("version", Str, "pinned version, when one was installed"),
        ],
    },
];

/// The kind of this name, if it is an effect kind.
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The check head of this name (`sent`, `file`, ...).
pub fn check(name: &str) -> Option<&'static Kind> {
    CHECKS.iter().find(|k| k.name == name)
}

/// Every effect kind name, in documentation order.
pub fn kind_names() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.name)
}

impl Kind {
    /// All fields a matcher may name at top level: the kind's own plus, for
    /// effect kinds, the common ones.
    pub fn all_fields(&self, with_common: bool) -> impl Iterator<Item = &'static Field> + use<'_> {
        let common: &'static [Field] = if with_common { COMMON } else { &[] };
        self.fields.iter().chain(common.iter())
    }

    /// The field a (possibly dotted) matcher name refers to. `args.env` refers
    /// to the object field `args`; a dotted name below a non-object field
    /// refers to nothing.
    pub fn field(&self, name: &str, with_common: bool) -> Option<&'static Field> {
        let fields: Vec<&'static Field> = self.all_fields(with_common).collect();
        if let Some(f) = fields.iter().find(|f| f.name == name) {
            return Some(f);
        }
        let (head, rest) = name.split_once('.')?;
        fields
            .into_iter()
            .find(|f| f.name == head && f.ty == Object && !rest.is_empty())
    }
}

/// A problem with a matcher field name or value: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// The fix, when one can be told.
    pub hint: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Checks a matcher field name against a kind. `what` names the place for the
/// message (`` `send` ``, `` sink `send` ``, `` `tool` ``).
pub fn check_field_name(
    kind: &Kind,
    name: &str,
    with_common: bool,
    what: &str,
) -> Result<&'static Field, Problem> {
    kind.field(name, with_common).ok_or_else(|| {
        let names: Vec<&str> = kind.all_fields(with_common).map(|f| f.name).collect();
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("fields of {what}: {}", names.join(", ")),
        };
        Problem {
            message: format!("unknown field `{name}` of {what}"),
            hint: Some(hint),
        }
    })
}

/// The values of a closed field as JSON literals a matcher may compare with:
/// the named values, or `true`/`false` (also as text) for a boolean field.
pub fn allowed_literals(field: &Field) -> Option<Vec<Value>> {
    if !field.values.is_empty() {
        return Some(field.values.iter().map(|v| Value::from(*v)).collect());
    }
    (field.ty == Bool).then(|| {
        vec![
            Value::Bool(true),
            Value::Bool(false),
            Value::from("true"),
            Value::from("false"),
        ]
    })
}

/// Checks one literal a matcher compares a closed field with (`equals`, `in`,
/// `not_in`): a value outside the set can never match, so the rule could never
/// (or would always) fire.
pub fn check_literal(field: &Field, v: &Value) -> Result<(), Problem> {
    let Some(allowed) = allowed_literals(field) else {
        return Ok(());
    };
    if allowed.contains(v) {
        return Ok(());
    }
    let shown = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let names: Vec<std::string::String> = allowed
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let hint = match did_you_mean(&shown, names.iter().map(std::string::String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("`{}` is one of: {}", field.name, names.join(", ")),
    };
    Err(Problem {
        message: format!("`{shown}` is not a value of `{}`", field.name),
        hint: Some(hint),
    })
}

/// The field tables of `docs/effects.md`, generated from [`KINDS`]: one
/// heading and one table per kind, in order.
pub fn markdown() -> std::string::String {
    let mut out = std::string::String::new();
    for k in KINDS {
        out.push_str(&format!("### `{}` — {}\n\n", k.name, k.meaning));
        out.push_str(&table(k.fields));
        out.push('\n');
    }
    out.push_str("### `tool:` head — a tool call by name and arguments\n\n");
    out.push_str(&table(TOOL_HEAD.fields));
    out.push('\n');
    for k in CHECKS {
        out.push_str(&format!("### check `{}` — {}\n\n", k.name, k.meaning));
        out.push_str(&table(k.fields));
        out.push('\n');
    }
    out
}

fn table(fields: &[Field]) -> std::string::String {
    let mut out =
        std::string::String::from("| field | type | values | meaning |\n|---|---|---|---|\n");
    for f in fields {
        let values = match allowed_literals(f) {
            Some(_) if !f.values.is_empty() => f
                .values
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Some(_) => "`true`, `false`".into(),
            None => std::string::String::new(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.name,
            f.ty.name(),
            values,
            f.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_condition_vocabulary() {
        let names: Vec<&str> = kind_names().collect();
        assert_eq!(names, crate::condition::EFFECT_KINDS);
    }

    #[test]
    fn dotted_names_only_below_objects() {
        let call = kind("call").unwrap();
        assert_eq!(call.field("args.env", true).unwrap().name, "args");
        assert_eq!(call.field("via", true).unwrap().name, "via");
        assert!(call.field("args.", true).is_none());
        let send = kind("send").unwrap();
        assert!(send.field("to.x", true).is_none());
        assert!(send.field("too", true).is_none());
    }

    #[test]
    fn typos_get_a_suggestion() {
        let send = kind("send").unwrap();
        let p = check_field_name(send, "too", true, "`send`").unwrap_err();
        assert!(p.to_string().contains("did you mean `to`?"), "{p}");
        let p = check_field_name(send, "recipient", true, "`send`").unwrap_err();
        assert!(p.to_string().contains("unknown field `recipient`"), "{p}");
        let read = kind("read").unwrap();
        let source = read.field("source", true).unwrap();
        assert!(check_literal(source, &Value::from("file")).is_ok());
        let p = check_literal(source, &Value::from("filee")).unwrap_err();
        assert!(p.to_string().contains("did you mean `file`?"), "{p}");
        let listing = read.field("listing", true).unwrap();
        assert!(check_literal(listing, &Value::Bool(true)).is_ok());
        assert!(check_literal(listing, &Value::from("yes")).is_err());
    }
}
