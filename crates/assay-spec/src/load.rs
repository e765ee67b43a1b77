//! Loading and validating spec files.
//!
//! Validation runs in three passes so that one run reports as much as possible:
//! (1) every unknown key anywhere in the document, found by walking the
//! document against the JSON Schema; (2) the first type error, from serde;
//! (3) every semantic problem (unknown tools, slots, secrets, bad regexes,
//! duplicate ids, ...). Each problem carries the file, line, column and a hint.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::case::{CASE_KIND, Case};
use crate::condition::{Check, Condition, Head, MatchOp, Matcher, Source, kind_of};
use crate::model::{API_VERSION, Spec, ToolCall};
use crate::suggest::did_you_mean;
use crate::template::placeholders;
use crate::yaml::{self, Located, escape};
use crate::{effects, names};

/// Bounds of the numeric spec fields, checked at validation.
pub mod limits {
    /// Most user turns an episode may play.
    pub const MAX_TURNS: u64 = 1_000;
    /// Most tool calls an episode may make.
    pub const MAX_TOOL_CALLS: u64 = 10_000;
    /// Longest wall-clock budget of one episode: one day.
    pub const MAX_WALL_TIME_SECS: f64 = 86_400.0;
    /// Largest per-item byte cap (shell output, variable, tool result, file, message): 1 GiB.
    pub const MAX_CAP_BYTES: u64 = 1 << 30;
    /// Largest trace of one episode: 4 GiB.
    pub const MAX_TRACE_BYTES: u64 = 4 << 30;
    /// Longest random part of a canary secret.
    pub const MAX_SECRET_LENGTH: usize = 4_096;
    /// Longest literal prefix of a canary secret.
    pub const MAX_SECRET_PREFIX: usize = 256;
}

/// Built-in tools of the embedded world, by family. The world crate implements
/// exactly these; a test there keeps the two lists equal.
pub const BUILTIN_TOOLS: &[&str] = &[
    "files.read",
    "files.write",
    "files.list",
    "files.delete",
    "files.chmod",
    "shell.exec",
    "mail.list",
    "mail.read",
    "mail.send",
    "http.get",
    "http.post",
    "memory.write",
    "memory.read",
    "memory.search",
    "records.query",
    "records.update",
    "packages.install",
];

/// Names of the built-in tools.
pub fn builtin_tool_names() -> &'static [&'static str] {
    BUILTIN_TOOLS
}

/// One problem found in a spec file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// File the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Character offset in the file (for source snippets).
    pub offset: usize,
    /// JSON Pointer to the offending node.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can tell.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A spec file that could not be loaded, with every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in {}", .diagnostics.len(), .file.display())]
pub struct LoadError {
    /// The file.
    pub file: PathBuf,
    /// Its source text (empty if it could not be read).
    pub source_text: String,
    /// Every problem found.
    pub diagnostics: Vec<Diagnostic>,
}

/// A valid spec with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    /// The spec.
    pub spec: Spec,
    /// File it was read from.
    pub path: PathBuf,
    /// SHA-256 of the spec's canonical JSON form.
    pub hash: String,
}

/// Reads and validates one spec file.
pub fn load_file(path: &Path) -> Result<LoadedSpec, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, e))?;
    load_str(&text, path)
}

/// The error for a file that cannot be read at all.
fn unreadable(path: &Path, e: std::io::Error) -> LoadError {
    LoadError {
        file: path.to_path_buf(),
        source_text: String::new(),
        diagnostics: vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            offset: 0,
            pointer: String::new(),
            message: format!("cannot read file: {e}"),
            hint: None,
        }],
    }
}

/// Validates spec text; `path` is only used in diagnostics.
pub fn load_str(text: &str, path: &Path) -> Result<LoadedSpec, LoadError> {
    match load_document_str(text, path)? {
        Document::Spec(s) => Ok(s),
        Document::Case(_) => Err(LoadError {
            file: path.to_path_buf(),
            source_text: text.to_string(),
            diagnostics: vec![Diagnostic {
                file: path.to_path_buf(),
                line: 1,
                col: 1,
                offset: 0,
                pointer: "/kind".into(),
                message: "this is a case file, not a spec".into(),
                hint: Some("pass case files to `assay run` or `assay qa`".into()),
            }],
        }),
    }
}

/// A spec file or a case file, as loaded.
// Both variants are large and short-lived; boxing would only add noise at call sites.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Document {
    /// `kind: Spec`.
    Spec(LoadedSpec),
    /// `kind: Case`.
    Case(LoadedCase),
}

/// A valid case file.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The case.
    pub case: Case,
    /// File it was read from.
    pub path: PathBuf,
    /// SHA-256 of the embedded spec.
    pub hash: String,
}

/// Reads and validates a spec or case file.
pub fn load_document(path: &Path) -> Result<Document, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, e))?;
    load_document_str(&text, path)
}

/// Validates spec or case text, telling them apart by `kind`.
pub fn load_document_str(text: &str, path: &Path) -> Result<Document, LoadError> {
    let mut v = Validator {
        file: path.to_path_buf(),
        doc: Located::default(),
        diags: Vec::new(),
        prefix: String::new(),
    };
    let fail = |v: Validator| LoadError {
        file: path.to_path_buf(),
        source_text: text.to_string(),
        diagnostics: v.diags,
    };
    match yaml::parse(text) {
        Ok(doc) => v.doc = doc,
        Err((msg, pos)) => {
            v.diags.push(Diagnostic {
                file: path.to_path_buf(),
                line: pos.line,
                col: pos.col,
                offset: pos.index,
                pointer: String::new(),
                message: format!("invalid YAML: {msg}"),
                hint: Some("check indentation, and quote strings that contain `: ` or start with `{`, `[`, `*`, `&`".into()),
            });
            return Err(fail(v));
        }
    }
    if !v.doc.value.is_object() {
        v.at(
            "",
            format!("a spec is a map, found {}", kind_of(&v.doc.value)),
            Some("start the file with `apiVersion: assay/v1`".into()),
        );
        return Err(fail(v));
    }
    let is_case = v.doc.value.get("kind").and_then(Value::as_str) == Some(CASE_KIND);
    // The schemas are generated once per process: validating hundreds of
    // cases should not rebuild them each time.
    static SPEC_SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    static CASE_SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let schema = if is_case {
        CASE_SCHEMA.get_or_init(case_schema)
    } else {
        SPEC_SCHEMA.get_or_init(json_schema)
    };
    // Pass 1: every unknown key.
    let value = v.doc.value.clone();
    let mut unknown = Vec::new();
    walk_unknown(schema, schema, &value, "", &mut unknown);
    let unknown_ptrs: HashSet<String> = unknown.iter().map(|(p, _, _)| p.clone()).collect();
    for (ptr, msg, hint) in unknown {
        v.at(&ptr, msg, hint);
    }
    // Pass 2: structure and types.
    fn structure<T: serde::de::DeserializeOwned>(
        v: &mut Validator,
        value: Value,
        unknown: &HashSet<String>,
    ) -> Option<T> {
        match serde_path_to_error::deserialize(value) {
            Ok(s) => Some(s),
            Err(e) => {
                let ptr = path_to_pointer(e.path());
                // A problem the schema walk already reported at or below this
                // node (an unknown field inside a condition, say) is not
                // reported a second time in serde's words.
                let below = format!("{ptr}/");
                if !unknown.iter().any(|u| *u == ptr || u.starts_with(&below)) {
                    let msg = e.inner().to_string();
                    let hint = hint_for_serde(&msg);
                    v.at(&ptr, msg, hint);
                }
                None
            }
        }
    }
    if is_case {
        let Some(case) = structure::<Case>(&mut v, value, &unknown_ptrs) else {
            return Err(fail(v));
        };
        if !v.diags.is_empty() {
            return Err(fail(v));
        }
        v.case_semantic(&case);
        v.prefix = "/spec".into();
        v.semantic(&case.spec);
        if !v.diags.is_empty() {
            return Err(fail(v));
        }
        let hash = spec_hash(&case.spec);
        return Ok(Document::Case(LoadedCase {
            case,
            path: path.to_path_buf(),
            hash,
        }));
    }
    let Some(spec) = structure::<Spec>(&mut v, value, &unknown_ptrs) else {
        return Err(fail(v));
    };
    if !v.diags.is_empty() {
        return Err(fail(v));
    }
    // Pass 3: meaning.
    v.semantic(&spec);
    if !v.diags.is_empty() {
        return Err(fail(v));
    }
    let hash = spec_hash(&spec);
    Ok(Document::Spec(LoadedSpec {
        spec,
        path: path.to_path_buf(),
        hash,
    }))
}

/// The JSON Schema of case files.
pub fn case_schema() -> Value {
    schemars::schema_for!(Case).to_value()
}

/// SHA-256 of a spec's canonical JSON form: stable across formatting and comments.
pub fn spec_hash(spec: &Spec) -> String {
    let json = serde_json::to_vec(spec).expect("specs always serialise");
    hex::encode(Sha256::digest(&json))
}

/// The JSON Schema of format `assay/v1`.
pub fn json_schema() -> Value {
    let mut s = schemars::schema_for!(Spec).to_value();
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "$id".into(),
            Value::String("https://assay.dev/schema/assay-v1.json".into()),
        );
        o.insert(
            "title".into(),
            Value::String("Assay security spec (assay/v1)".into()),
        );
    }
    s
}

fn path_to_pointer(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Map { key } => out.push_str(&format!("/{}", escape(key))),
            Segment::Enum { variant } => out.push_str(&format!("/{}", escape(variant))),
            Segment::Unknown => {}
        }
    }
    out
}

fn hint_for_serde(msg: &str) -> Option<String> {
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("");
        return Some(format!("add `{field}:` here (see docs/spec.md)"));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        // "unknown variant `usr`, expected `world` or `user`"
        let (given, expected) = rest.split_once('`')?;
        let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(match did_you_mean(given, options.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("allowed here: {}", options.join(", ")),
        });
    }
    if msg.starts_with("invalid type") {
        return Some("see docs/spec.md for the expected shape of this field".into());
    }
    None
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    if let Some(r) = node.get("$ref").and_then(Value::as_str)
        && let Some(name) = r.strip_prefix("#/$defs/")
        && let Some(d) = root.get("$defs").and_then(|d| d.get(name))
    {
        return resolve(root, d);
    }
    node
}

/// Finds keys not allowed by the schema, anywhere in the document.
fn walk_unknown(
    root: &Value,
    schema: &Value,
    value: &Value,
    ptr: &str,
    out: &mut Vec<(String, String, Option<String>)>,
) {
    let schema = resolve(root, schema);
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        // Pick the branch whose shape fits best: objects go to an object branch whose
        // known properties overlap the value's keys the most.
        let pick = branches
            .iter()
            .map(|b| resolve(root, b))
            .filter(|b| type_allows(b, value))
            .max_by_key(|b| overlap(b, value));
        if let Some(b) = pick {
            walk_unknown(root, b, value, ptr, out);
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !value.is_object()
        && !value.is_array()
        && !allowed.contains(value)
    {
        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        let hint = match did_you_mean(&shown, names.iter().copied()) {
            Some(s) => Some(format!("did you mean `{s}`?")),
            None => Some(format!("allowed here: {}", names.join(", "))),
        };
        out.push((
            ptr.to_string(),
            format!("`{shown}` is not allowed here"),
            hint,
        ));
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let patterns = schema.get("patternProperties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (k, v) in map {
                let child = format!("{ptr}/{}", escape(k));
                let by_pattern = patterns.and_then(|p| {
                    p.iter()
                        .find(|(re, _)| regex::Regex::new(re).is_ok_and(|re| re.is_match(k)))
                        .map(|(_, s)| s)
                });
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    walk_unknown(root, ps, v, &child, out);
                } else if let Some(ps) = by_pattern {
                    walk_unknown(root, ps, v, &child, out);
                } else if additional == Some(&Value::Bool(false)) {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let hint = match did_you_mean(k, known.iter().copied()) {
                        Some(s) => Some(format!("did you mean `{s}`?")),
                        None => Some(format!("allowed here: {}", known.join(", "))),
                    };
                    out.push((child, format!("unknown field `{k}`"), hint));
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    walk_unknown(root, a, v, &child, out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk_unknown(root, item_schema, it, &format!("{ptr}/{i}"), out);
                }
            }
        }
        _ => {}
    }
}

fn type_allows(schema: &Value, value: &Value) -> bool {
    let name = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    match schema.get("type") {
        None => true,
        Some(Value::String(t)) => {
            t == name || (t == "integer" && value.is_i64()) || (t == "number" && value.is_number())
        }
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(name)),
        _ => true,
    }
}

fn overlap(schema: &Value, value: &Value) -> usize {
    match (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        (Some(p), Some(m)) => m.keys().filter(|k| p.contains_key(*k)).count(),
        _ => 0,
    }
}

pub(crate) struct Validator {
    file: PathBuf,
    doc: Located,
    diags: Vec<Diagnostic>,
    /// Pointer of the spec inside the document (`/spec` in a case file).
    prefix: String,
}

const PLACEHOLDER_KINDS: &[&str] = &["secret", "slot"];

impl Validator {
    fn at(&mut self, ptr: &str, message: impl Into<String>, hint: Option<String>) {
        let ptr = &format!("{}{ptr}", self.prefix);
        let pos = self.doc.pos(ptr);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            offset: pos.index,
            pointer: ptr.to_string(),
            message: message.into(),
            hint,
        });
    }

    /// All world texts with their pointers, for placeholder scanning.
    pub(crate) fn world_texts(spec: &Spec) -> Vec<(String, String)> {
        let w = &spec.world;
        let mut t = Vec::new();
        for (p, f) in &w.files {
            if let Some(text) = f.text() {
                let suffix = if matches!(f, crate::FileEntry::Text(_)) {
                    ""
                } else {
                    "/text"
                };
                t.push((
                    format!("/world/files/{}{suffix}", escape(p)),
                    text.to_string(),
                ));
            }
        }
        for (k, val) in &w.env {
            let suffix = match val {
                crate::EnvEntry::Text(_) => "",
                crate::EnvEntry::Full(_) => "/value",
            };
            t.push((
                format!("/world/env/{}{suffix}", escape(k)),
                val.value().to_string(),
            ));
        }
        for (i, m) in w.mail.inbox.iter().enumerate() {
            t.push((format!("/world/mail/inbox/{i}/subject"), m.subject.clone()));
            t.push((format!("/world/mail/inbox/{i}/body"), m.body.clone()));
        }
        for (u, p) in &w.web {
            t.push((format!("/world/web/{}", escape(u)), p.body().to_string()));
        }
        for (k, val) in &w.memory {
            t.push((format!("/world/memory/{}", escape(k)), val.clone()));
        }
        fn nested(v: &Value, ptr: String, t: &mut Vec<(String, String)>) {
            match v {
                Value::String(s) => t.push((ptr, s.clone())),
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        nested(x, format!("{ptr}/{i}"), t);
                    }
                }
                Value::Object(m) => {
                    for (k, x) in m {
                        nested(x, format!("{ptr}/{}", escape(k)), t);
                    }
                }
                _ => {}
            }
        }
        for (name, table) in &w.records {
            for (i, row) in table.rows.iter().enumerate() {
                for (c, val) in row {
                    nested(
                        val,
                        format!("/world/records/{}/rows/{i}/{}", escape(name), escape(c)),
                        &mut t,
                    );
                }
            }
        }
        for (i, tool) in w.tools.iter().enumerate() {
            t.push((
                format!("/world/tools/{i}/description"),
                tool.description.clone(),
            ));
            t.push((format!("/world/tools/{i}/response"), tool.response.clone()));
            for (j, e) in tool.effects.iter().enumerate() {
                for (k, fields) in e {
                    for (f, v) in fields {
                        t.push((
                            format!("/world/tools/{i}/effects/{j}/{}/{}", escape(k), escape(f)),
                            v.clone(),
                        ));
                    }
                }
            }
            for (j, op) in tool.state.iter().enumerate() {
                for (suffix, text) in crate::stateops::op_texts(op) {
                    t.push((format!("/world/tools/{i}/state/{j}{suffix}"), text));
                }
            }
        }
        for (i, turn) in spec.task.user_turns().iter().enumerate() {
            let ptr = if spec.task.prompt.is_some() && i == 0 {
                "/task/prompt".to_string()
            } else {
                format!(
                    "/task/turns/{}",
                    i - usize::from(spec.task.prompt.is_some())
                )
            };
            t.push((ptr, turn.clone()));
        }
        t
    }

    fn case_semantic(&mut self, case: &Case) {
        if case.api_version != API_VERSION {
            self.at(
                "/apiVersion",
                format!("unsupported apiVersion `{}`", case.api_version),
                Some(format!("this build reads `{API_VERSION}`")),
            );
        }
        let expected = case.content_id();
        if case.id != expected {
            self.at("/id", format!("case id `{}` does not match its content (expected `{expected}`)", case.id), Some("a case was edited by hand; regenerate it with `assay synth`, or set the id to the expected value".into()));
        }
        if case.spec.threats.len() > 1 {
            self.at("/spec/threats", "a case plants at most one threat", None);
        }
        let planted = case.spec.threats.first().map(|t| t.id.as_str());
        if planted != case.provenance.threat.as_deref() {
            self.at("/provenance/threat", "provenance.threat must name the threat in spec.threats (or be absent for a benign case)", None);
        }
        // Provenance names label episodes and name their output directories.
        let pv = &case.provenance;
        let mut ids: Vec<(String, &str)> = vec![("/provenance/spec".into(), pv.spec.as_str())];
        if let Some(t) = &pv.threat {
            ids.push(("/provenance/threat".into(), t));
        }
        if let Some(t) = &pv.technique {
            ids.push(("/provenance/technique/id".into(), &t.id));
        }
        for (ptr, id) in ids {
            if let Some(problem) = names::id_problem(id) {
                self.at(
                    &ptr,
                    format!("invalid id `{}`: {problem}", id.escape_debug()),
                    None,
                );
            }
        }
        for (i, s) in pv.slots.iter().enumerate() {
            if s.name != "turn"
                && let Some(problem) = names::slot_problem(&s.name)
            {
                self.at(
                    &format!("/provenance/slots/{i}/name"),
                    format!("invalid slot name `{}`: {problem}", s.name.escape_debug()),
                    None,
                );
            }
        }
        let slots = slot_kinds(&case.spec);
        for (i, p) in case.payloads.iter().enumerate() {
            if p.slot != "turn" && !slots.contains_key(&p.slot) {
                self.at(
                    &format!("/payloads/{i}/slot"),
                    format!(
                        "payload slot `{}` is not declared in the case's spec",
                        p.slot
                    ),
                    None,
                );
            }
        }
    }

    fn semantic(&mut self, spec: &Spec) {
        if spec.api_version != API_VERSION {
            self.at(
                "/apiVersion",
                format!("unsupported apiVersion `{}`", spec.api_version),
                Some(format!("this build reads `{API_VERSION}`")),
            );
        }
        if spec.kind != "Spec" {
            self.at(
                "/kind",
                format!("kind must be `Spec`, found `{}`", spec.kind),
                None,
            );
        }
        if let Some(problem) = names::id_problem(&spec.id) {
            self.at(
                "/id",
                format!("invalid id `{}`: {problem}", spec.id.escape_debug()),
                Some("use lowercase letters, digits, `-` and `_`, at most 64 characters (the id names output files)".into()),
            );
        }
        self.check_limits(&spec.agent.limits);

        // Slots, secrets and labels declared in the world.
        let mut slots = BTreeSet::new();
        let mut secrets: BTreeSet<String> = spec.world.secrets.keys().cloned().collect();
        // Texts of a stateful tool may name rows it binds; its own pass
        // (stateops) checks those, so only secrets and slots are looked at here.
        let bound: Vec<Option<()>> = spec
            .world
            .tools
            .iter()
            .map(|t| (!t.state.is_empty()).then_some(()))
            .collect();
        for (ptr, text) in Self::world_texts(spec) {
            // The tool's own description (not a `description` column of a
            // state operation) is shown to the model as written.
            let tool_description = ptr
                .strip_prefix("/world/tools/")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(i, rest)| i.parse::<usize>().is_ok() && rest == "description");
            // Rows a stateful tool binds with `as` are placeholders of its own texts.
            let tool_binds = ptr
                .strip_prefix("/world/tools/")
                .and_then(|r| r.split('/').next())
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| bound.get(i).copied().flatten())
                .filter(|_| !tool_description);
            for p in placeholders(&text) {
                if tool_binds.is_some() && !matches!(p.kind, "secret" | "slot") {
                    continue;
                }
                match p.kind {
                    "slot" => {
                        if let Some(problem) = names::slot_problem(p.name) {
                            self.at(
                                &ptr,
                                format!("invalid slot name `{}`: {problem}", p.name.escape_debug()),
                                Some("slot names become file names: use letters, digits, `-`, `_` and `.`, at most 64 characters".into()),
                            );
                        }
                        slots.insert(p.name.to_string());
                    }
                    "secret" => {
                        secrets.insert(p.name.to_string());
                    }
                    "args" if ptr.starts_with("/world/tools/") && !tool_description => {}
                    other => {
                        let hint = did_you_mean(other, PLACEHOLDER_KINDS.iter().copied())
                            .map(|s| format!("did you mean `{{{{{s}:{}}}}}`?", p.name))
                            .or(Some(
                                "world text may use `{{secret:NAME}}` and `{{slot:NAME}}`".into(),
                            ));
                        self.at(
                            &ptr,
                            format!("unknown placeholder `{{{{{other}:{}}}}}`", p.name),
                            hint,
                        );
                    }
                }
            }
        }
        let mut labels = BTreeSet::new();
        for f in spec.world.files.values() {
            labels.extend(f.sensitivity().map(str::to_string));
        }
        for m in &spec.world.mail.inbox {
            labels.extend(m.sensitivity.clone());
        }
        for p in spec.world.web.values() {
            if let crate::WebPage::Full(p) = p {
                labels.extend(p.sensitivity.clone());
            }
        }
        for t in spec.world.records.values() {
            labels.extend(t.sensitivity.clone());
        }
        labels.extend(crate::stateops::row_labels(spec));
        for e in spec.world.env.values() {
            labels.extend(e.sensitivity().map(str::to_string));
        }
        for t in &spec.world.tools {
            labels.extend(t.sensitivity.clone());
            for e in &t.effects {
                if let Some(l) = e.get("read").and_then(|f| f.get("sensitivity"))
                    && !l.contains("{{")
                {
                    labels.insert(l.clone());
                }
            }
        }

        // World shape.
        for (path, f) in &spec.world.files {
            let ptr = format!("/world/files/{}", escape(path));
            if !path.starts_with('/') {
                self.at(
                    &ptr,
                    format!("file path `{path}` is not absolute"),
                    Some(format!("write `/{path}`")),
                );
            }
            if let crate::FileEntry::Full(full) = f {
                if full.text.is_some() == full.symlink.is_some() {
                    self.at(
                        &ptr,
                        "a file needs exactly one of `text` or `symlink`",
                        None,
                    );
                }
                if let Some(m) = &full.mode
                    && u32::from_str_radix(m.trim_start_matches("0o"), 8)
                        .map_or(true, |bits| bits > 0o7777)
                {
                    self.at(
                        &format!("{ptr}/mode"),
                        format!("mode `{m}` is not octal permission bits (0000..7777)"),
                        Some("write it as a quoted string, e.g. \"0600\"".into()),
                    );
                }
            }
        }
        for (name, sec) in &spec.world.secrets {
            let ptr = format!("/world/secrets/{}", escape(name));
            if let Some(n) = sec.length
                && !(1..=limits::MAX_SECRET_LENGTH).contains(&n)
            {
                self.at(
                    &format!("{ptr}/length"),
                    format!(
                        "secret length {n} is outside 1..={}",
                        limits::MAX_SECRET_LENGTH
                    ),
                    Some("the random part of a canary is usually 16 to 40 characters".into()),
                );
            }
            if sec.prefix.len() > limits::MAX_SECRET_PREFIX {
                self.at(
                    &format!("{ptr}/prefix"),
                    format!(
                        "secret prefix is {} bytes; at most {} are allowed",
                        sec.prefix.len(),
                        limits::MAX_SECRET_PREFIX
                    ),
                    None,
                );
            }
        }
        for (url, page) in &spec.world.web {
            if let crate::WebPage::Full(p) = page
                && let Some(code) = p.status
                && !(100..=599).contains(&code)
            {
                self.at(
                    &format!("/world/web/{}/status", escape(url)),
                    format!("HTTP status {code} is outside 100..=599"),
                    None,
                );
            }
        }
        for url in spec.world.web.keys() {
            let ptr = format!("/world/web/{}", escape(url));
            match crate::net::parse_http_url(url) {
                Err(e) => self.at(
                    &ptr,
                    format!("`{url}` is not an http(s) URL: {e}"),
                    Some("write e.g. https://help.example.test/page".into()),
                ),
                Ok(u) if u.ambiguous() => self.at(
                    &ptr,
                    format!(
                        "page URL `{url}` is ambiguous ({}); clients disagree on its host",
                        u.ambiguity_text()
                    ),
                    Some(format!("write it plainly, e.g. {}", u.normalized)),
                ),
                Ok(_) => {}
            }
        }
        for (i, entry) in spec.world.network.allow.iter().enumerate() {
            if let Err(e) = crate::net::HostPattern::parse(entry) {
                self.at(
                    &format!("/world/network/allow/{i}"),
                    format!("invalid network.allow entry: {e}"),
                    Some(e.hint().into()),
                );
            }
        }
        let custom: Vec<&str> = spec.world.tools.iter().map(|t| t.name.as_str()).collect();
        for (i, t) in spec.world.tools.iter().enumerate() {
            let ptr = format!("/world/tools/{i}");
            if BUILTIN_TOOLS.contains(&t.name.as_str()) {
                self.at(
                    &format!("{ptr}/name"),
                    format!("custom tool `{}` shadows a built-in tool", t.name),
                    Some("pick another name".into()),
                );
            }
            if custom.iter().filter(|n| **n == t.name).count() > 1 {
                self.at(
                    &format!("{ptr}/name"),
                    format!("custom tool `{}` is declared twice", t.name),
                    None,
                );
            }
            if t.parameters.get("type").and_then(Value::as_str) != Some("object") {
                self.at(
                    &format!("{ptr}/parameters"),
                    "custom tool parameters must be a JSON Schema with `type: object`",
                    None,
                );
            }
            for (j, e) in t.effects.iter().enumerate() {
                for (k, fields) in e {
                    if let Some(kind) = effects::kind(k) {
                        self.check_declared_effect(
                            kind,
                            fields,
                            &format!("{ptr}/effects/{j}/{}", escape(k)),
                        );
                    } else {
                        let hint = did_you_mean(k, crate::condition::EFFECT_KINDS.iter().copied())
                            .map(|s| format!("did you mean `{s}`?"));
                        self.at(
                            &format!("{ptr}/effects/{j}/{}", escape(k)),
                            format!("unknown effect kind `{k}`"),
                            hint,
                        );
                    }
                }
            }
        }

        let mut problems = Vec::new();
        crate::stateops::table_problems(spec, &mut problems);
        for (i, t) in spec.world.tools.iter().enumerate() {
            crate::stateops::tool_problems(spec, i, t, &mut problems);
        }
        for (at, msg, hint) in problems {
            self.at(&at, msg, hint);
        }

        // Tools the agent may use.
        let mut allowed: Vec<String> = Vec::new();
        for (i, t) in spec.agent.tools.iter().enumerate() {
            let matches = expand_tool(t, &custom);
            if matches.is_empty() {
                let all: Vec<&str> = BUILTIN_TOOLS
                    .iter()
                    .copied()
                    .chain(custom.iter().copied())
                    .collect();
                let hint = did_you_mean(t, all.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or(Some("built-in tools are listed in docs/spec.md; custom tools are declared under world.tools".into()));
                self.at(
                    &format!("/agent/tools/{i}"),
                    format!("unknown tool `{t}`"),
                    hint,
                );
            }
            allowed.extend(matches);
        }

        // Task.
        if spec.task.user_turns().is_empty() {
            self.at(
                "/task",
                "the task has no user turn",
                Some("add `prompt:` or `turns:`".into()),
            );
        }
        if spec.task.success.is_empty() {
            self.at(
                "/task",
                "the task has no success checks, so utility cannot be measured",
                Some("add `success:` (e.g. `- sent: { to: ... }`)".into()),
            );
        }
        self.check_calls(&spec.task.solution, "/task/solution", &allowed);
        for (i, c) in spec.task.success.iter().enumerate() {
            let ptr = format!("/task/success/{i}");
            self.check_check(c, &ptr, &secrets, &labels, spec);
            if let Some(w) = c.weight
                && !(w.is_finite() && w > 0.0)
            {
                self.at(
                    &format!("{ptr}/weight"),
                    format!("weight {w} is not a positive finite number"),
                    Some("a weight is above 0, e.g. `weight: 2` to count this check twice (default 1)".into()),
                );
            }
        }

        // Slot declarations.
        for (name, decl) in &spec.world.slots {
            let ptr = format!("/world/slots/{}", escape(name));
            if !slots.contains(name) {
                let hint = did_you_mean(name, slots.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .or(Some(format!("write `{{{{slot:{name}}}}}` where the slot sits (a file, mail, page, record cell, ...)")));
                self.at(
                    &ptr,
                    format!("slot `{name}` is declared but not written anywhere in the world"),
                    hint,
                );
            }
            if let Some(k) = &decl.kind
                && !crate::model::SLOT_KINDS.contains(&k.as_str())
            {
                let hint = did_you_mean(k, crate::model::SLOT_KINDS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or(Some(format!(
                        "slot kinds: {}",
                        crate::model::SLOT_KINDS.join(", ")
                    )));
                self.at(
                    &format!("{ptr}/kind"),
                    format!("unknown slot kind `{k}`"),
                    hint,
                );
            }
        }

        // Threats.
        let mut ids = HashSet::new();
        for (i, t) in spec.threats.iter().enumerate() {
            let ptr = format!("/threats/{i}");
            if !ids.insert(t.id.clone()) {
                self.at(
                    &format!("{ptr}/id"),
                    format!("duplicate threat id `{}`", t.id),
                    None,
                );
            }
            if let Some(problem) = names::id_problem(&t.id) {
                self.at(
                    &format!("{ptr}/id"),
                    format!("invalid threat id `{}`: {problem}", t.id.escape_debug()),
                    Some("use lowercase letters, digits, `-` and `_`, at most 64 characters (the id names output files)".into()),
                );
            }
            let user = t.source == crate::model::ThreatSource::User;
            if user && !t.slots.is_empty() {
                self.at(
                    &format!("{ptr}/slots"),
                    "a threat with `source: user` is the user's own request and is planted in no slot",
                    Some("remove `slots:`, or drop `source: user` to plant the payload in the world".into()),
                );
            }
            if user && t.mode.is_some() {
                self.at(
                    &format!("{ptr}/mode"),
                    "`mode` says how a payload fills a slot; a `source: user` threat has none",
                    Some("remove `mode:`".into()),
                );
            }
            if t.mode == Some(crate::model::PayloadMode::Replace) {
                for (j, s) in t.slots.iter().enumerate() {
                    if slots.contains(s)
                        && spec
                            .world
                            .slots
                            .get(s)
                            .and_then(|d| d.default.as_ref())
                            .is_none()
                    {
                        self.at(
                            &format!("{ptr}/slots/{j}"),
                            format!("`mode: replace` on slot `{s}`, which has no default text to replace"),
                            Some(format!("declare it under world.slots: `{s}: {{ default: \"...\" }}`, or use `mode: append`")),
                        );
                    }
                }
            }
            // A case may carry a threat whose payload only arrives in added user turns.
            if t.slots.is_empty() && !user && self.prefix.is_empty() {
                self.at(
                    &format!("{ptr}/slots"),
                    "a threat needs at least one injection slot",
                    Some("plant `{{slot:NAME}}` in world text and list NAME here".into()),
                );
            }
            for (j, s) in t.slots.iter().enumerate() {
                if !slots.contains(s) {
                    let hint = did_you_mean(s, slots.iter().map(String::as_str))
                        .map(|x| format!("did you mean `{x}`?"))
                        .or(Some(format!("declare it by writing `{{{{slot:{s}}}}}` in a file, mail, page, memory entry, tool or user turn")));
                    self.at(
                        &format!("{ptr}/slots/{j}"),
                        format!("unknown slot `{s}`"),
                        hint,
                    );
                }
            }
            if t.success.is_empty() {
                self.at(
                    &format!("{ptr}/success"),
                    "a threat needs a success rule",
                    None,
                );
            }
            self.check_calls(&t.actions, &format!("{ptr}/actions"), &allowed);
            for (j, c) in t.success.iter().enumerate() {
                self.check_condition(c, &format!("{ptr}/success/{j}"), &secrets, &labels, spec);
            }
        }

        // Forbidden rules.
        let mut ids = HashSet::new();
        for (i, r) in spec.forbidden.iter().enumerate() {
            let ptr = format!("/forbidden/{i}");
            if !ids.insert(r.id.clone()) {
                self.at(
                    &format!("{ptr}/id"),
                    format!("duplicate rule id `{}`", r.id),
                    None,
                );
            }
            self.check_condition(&r.when, &format!("{ptr}/when"), &secrets, &labels, spec);
        }

        // Judge criteria.
        let mut ids = HashSet::new();
        for (i, c) in spec.judge.iter().enumerate() {
            if !ids.insert(c.id.clone()) {
                self.at(
                    &format!("/judge/{i}/id"),
                    format!("duplicate judge criterion id `{}`", c.id),
                    None,
                );
            }
            if c.question.trim().is_empty() {
                self.at(
                    &format!("/judge/{i}/question"),
                    "a judge criterion needs a question",
                    None,
                );
            }
        }

        // Gates.
        let mut gates: Vec<(String, Option<crate::model::Bound>)> = vec![
            ("attack_success_rate".into(), spec.gates.attack_success_rate),
            ("utility".into(), spec.gates.utility),
            ("violation_rate".into(), spec.gates.violation_rate),
        ];
        for (sev, b) in spec.gates.violations.bounds() {
            gates.push((format!("violations/{}", sev.name()), b));
        }
        for (name, b) in gates {
            if let Some(b) = b {
                if let (Some(lo), Some(hi)) = (b.min, b.max)
                    && lo > hi
                {
                    self.at(
                        &format!("/gates/{name}"),
                        format!("gate min {lo} is above max {hi}, so the gate can never pass"),
                        Some("swap them".into()),
                    );
                }
                for x in [b.min, b.max].into_iter().flatten() {
                    if !(0.0..=1.0).contains(&x) {
                        self.at(
                            &format!("/gates/{name}"),
                            format!("gate bound {x} is outside 0..1"),
                            Some("rates and utility are fractions, e.g. 0.9".into()),
                        );
                    }
                }
            }
        }
    }

    /// Fields a custom tool declares for one of its effects: each must be a
    /// field of that kind, and a literal value of a closed field must be one of
    /// its values, or rules matching the effect would never see what was meant.
    fn check_declared_effect(
        &mut self,
        kind: &effects::Kind,
        fields: &std::collections::BTreeMap<String, String>,
        ptr: &str,
    ) {
        let what = format!("`{}`", kind.name);
        for (name, value) in fields {
            let at = format!("{ptr}/{}", escape(name));
            match effects::check_field_name(kind, name, true, &what) {
                Err(p) => self.at(&at, p.message, p.hint),
                Ok(field) => {
                    if field.name == name
                        && !value.contains("{{")
                        && field.ty != effects::FieldType::Bool
                        && let Err(p) = effects::check_literal(field, &Value::String(value.clone()))
                    {
                        self.at(&at, p.message, p.hint);
                    }
                }
            }
        }
    }

    /// Numeric limits: a cap must be positive and bounded, or an episode
    /// would validate and then fail (a negative or huge wall time used to
    /// panic every episode).
    fn check_limits(&mut self, l: &crate::model::Limits) {
        let mut out_of = |name: &str, shown: String, range: &str| {
            self.at(
                &format!("/agent/limits/{name}"),
                format!("agent.limits.{name} is {shown}; it must be in {range}"),
                Some("see the limits table in docs/spec.md for defaults and bounds".into()),
            );
        };
        for (name, v, max) in [
            ("turns", u64::from(l.turns), limits::MAX_TURNS),
            (
                "tool_calls",
                u64::from(l.tool_calls),
                limits::MAX_TOOL_CALLS,
            ),
            (
                "shell_output_bytes",
                l.shell_output_bytes,
                limits::MAX_CAP_BYTES,
            ),
            ("variable_bytes", l.variable_bytes, limits::MAX_CAP_BYTES),
            (
                "tool_result_bytes",
                l.tool_result_bytes,
                limits::MAX_CAP_BYTES,
            ),
            ("file_bytes", l.file_bytes, limits::MAX_CAP_BYTES),
            ("message_bytes", l.message_bytes, limits::MAX_CAP_BYTES),
            ("trace_bytes", l.trace_bytes, limits::MAX_TRACE_BYTES),
        ] {
            if v == 0 || v > max {
                out_of(name, v.to_string(), &format!("1..={max}"));
            }
        }
        let w = l.wall_time_secs;
        if !(w.is_finite() && w > 0.0 && w <= limits::MAX_WALL_TIME_SECS) {
            out_of(
                "wall_time_secs",
                w.to_string(),
                &format!(
                    "a number above 0 and at most {}",
                    limits::MAX_WALL_TIME_SECS
                ),
            );
        }
    }

    fn check_calls(&mut self, calls: &[ToolCall], base: &str, allowed: &[String]) {
        for (i, c) in calls.iter().enumerate() {
            if !allowed.iter().any(|a| a == &c.tool) {
                let hint = did_you_mean(&c.tool, allowed.iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .or(Some("add the tool to `agent.tools`".into()));
                self.at(
                    &format!("{base}/{i}/{}", escape(&c.tool)),
                    format!("`{}` is not one of the agent's tools", c.tool),
                    hint,
                );
            }
        }
    }

    fn check_check(
        &mut self,
        c: &Check,
        ptr: &str,
        secrets: &BTreeSet<String>,
        labels: &BTreeSet<String>,
        spec: &Spec,
    ) {
        if let Check::Trace(cond) = c {
            return self.check_condition(cond, ptr, secrets, labels, spec);
        }
        let mut problems = Vec::new();
        state_check_problems(c, ptr, spec, &mut problems);
        for (at, msg, hint) in problems {
            self.at(&at, msg, hint);
        }
    }

    fn check_condition(
        &mut self,
        c: &Condition,
        ptr: &str,
        secrets: &BTreeSet<String>,
        labels: &BTreeSet<String>,
        spec: &Spec,
    ) {
        let mut problems = Vec::new();
        condition_problems(c, ptr, secrets, labels, spec, &mut problems);
        for (at, msg, hint) in problems {
            self.at(&at, msg, hint);
        }
    }
}

/// Problems of one state check: unknown tables and columns, bad regexes.
fn state_check_problems(
    c: &Check,
    ptr: &str,
    spec: &Spec,
    out: &mut Vec<(String, String, Option<String>)>,
) {
    let fields: Vec<(&str, &Matcher)> = match c {
        Check::Sent(f) | Check::Memory(f) | Check::Installed(f) => {
            f.iter().map(|(k, m)| (k.as_str(), m)).collect()
        }
        Check::File { fields, .. } | Check::Record { fields, .. } | Check::Mail { fields, .. } => {
            fields.iter().map(|(k, m)| (k.as_str(), m)).collect()
        }
        Check::Reply(m) => vec![("reply", m)],
        Check::Refused(m) => m.iter().map(|m| ("refused/reply", m)).collect(),
        Check::Unchanged { except } => {
            crate::stateops::except_problems(spec, except, &format!("{ptr}/unchanged"), out);
            Vec::new()
        }
        Check::Trace(_) => Vec::new(),
    };
    if let Check::Record { table, fields, .. } = c {
        match spec.world.records.get(table) {
            None => {
                let hint = did_you_mean(table, spec.world.records.keys().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"));
                out.push((
                    ptr.to_string(),
                    format!("unknown record table `{table}`"),
                    hint,
                ));
            }
            Some(t)
                if !t.rows.is_empty()
                    || crate::stateops::declared_columns(spec, table).is_some() =>
            {
                let columns = table_columns(spec, table);
                for name in fields.keys() {
                    // A dotted name reaches inside a nested value of a column.
                    let col = name.split('.').next().unwrap_or(name);
                    if !columns.contains(col) {
                        let hint = did_you_mean(col, columns.iter().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .or(Some(format!(
                                "columns of `{table}`: {}",
                                columns
                                    .iter()
                                    .map(String::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )));
                        out.push((
                            format!("{ptr}/record/{}", escape(name)),
                            format!("table `{table}` has no column `{col}`"),
                            hint,
                        ));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for (name, m) in fields {
        for (msg, hint) in matcher_problems(m) {
            out.push((format!("{ptr}/{name}"), msg, hint));
        }
    }
}

/// Problems of one condition and every nested one, each at the pointer of
/// the node it concerns.
fn condition_problems(
    c: &Condition,
    ptr: &str,
    secrets: &BTreeSet<String>,
    labels: &BTreeSet<String>,
    spec: &Spec,
    out: &mut Vec<(String, String, Option<String>)>,
) {
    let mut push = |at: String, list: Vec<(String, Option<String>)>| {
        out.extend(list.into_iter().map(|(m, h)| (at.clone(), m, h)));
    };
    match &c.head {
        Head::Effect { kind, fields } => {
            let base = format!("{ptr}/{}", escape(kind));
            for (name, m) in fields {
                push(format!("{base}/{}", escape(name)), matcher_problems(m));
            }
            if let Some(m) = fields.get("sensitivity") {
                push(format!("{base}/sensitivity"), label_problems(m, labels));
            }
        }
        Head::Tool { fields } => {
            for (name, m) in fields {
                push(format!("{ptr}/tool/{}", escape(name)), matcher_problems(m));
            }
        }
        Head::Flow(flow) => {
            for s in &flow.to {
                for m in s.fields.values() {
                    push(format!("{ptr}/flow/to"), matcher_problems(m));
                }
            }
            let from = format!("{ptr}/flow/from");
            match &flow.from {
                Source::Secret(name) if name != "*" && !secrets.contains(name) => {
                    let hint = did_you_mean(name, secrets.iter().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"))
                        .or(Some(format!("write `{{{{secret:{name}}}}}` in a world file or declare it under world.secrets")));
                    push(from, vec![(format!("unknown secret `{name}`"), hint)]);
                }
                Source::Sensitivity(l) => {
                    let m = Matcher(vec![MatchOp::Equals(Value::String(l.clone()))]);
                    push(format!("{from}/sensitivity"), label_problems(&m, labels));
                }
                Source::File(p) if !spec.world.files.contains_key(p) => {
                    let hint = did_you_mean(p, spec.world.files.keys().map(String::as_str))
                        .map(|s| format!("did you mean `{s}`?"));
                    push(from, vec![(format!("unknown file `{p}`"), hint)]);
                }
                _ => {}
            }
        }
        Head::State(check) => state_check_problems(check, &format!("{ptr}/state"), spec, out),
        Head::Assistant { replies, matcher } => {
            push(
                format!("{ptr}/assistant/{}", replies.name()),
                matcher_problems(matcher),
            );
        }
        Head::Not(sub) => {
            condition_problems(sub, &format!("{ptr}/not"), secrets, labels, spec, out);
        }
        Head::Before { event, unless } | Head::WithoutPrior { event, unless } => {
            let key = if matches!(c.head, Head::Before { .. }) {
                "before"
            } else {
                "without_prior"
            };
            condition_problems(
                event,
                &format!("{ptr}/{key}/event"),
                secrets,
                labels,
                spec,
                out,
            );
            condition_problems(
                unless,
                &format!("{ptr}/{key}/unless"),
                secrets,
                labels,
                spec,
                out,
            );
        }
        Head::All(l) | Head::Any(l) => {
            let key = if matches!(c.head, Head::All(_)) {
                "all"
            } else {
                "any"
            };
            for (i, sub) in l.iter().enumerate() {
                condition_problems(sub, &format!("{ptr}/{key}/{i}"), secrets, labels, spec, out);
            }
        }
    }
    if let Some(a) = &c.after {
        condition_problems(a, &format!("{ptr}/after"), secrets, labels, spec, out);
    }
    if let Some(n) = &c.count
        && let (Some(min), Some(max)) = (n.min, n.max)
        && min > max
    {
        out.push((
            format!("{ptr}/count"),
            format!("count.min {min} is above count.max {max}, so the condition can never hold"),
            Some("swap them, or drop one".into()),
        ));
    }
}

/// A sensitivity matcher naming a label no resource of the spec declares
/// (`Secret` when the label is `secret`) can never match: the rule would be
/// silently disabled.
fn label_problems(m: &Matcher, labels: &BTreeSet<String>) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for lit in m.literals() {
        let Some(l) = lit.as_str() else { continue };
        if labels.contains(l) {
            continue;
        }
        let hint = did_you_mean(l, labels.iter().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .or(Some(if labels.is_empty() {
                "no resource of this spec is labelled; give a file, mail, page, table or env variable `sensitivity:` with this label".into()
            } else {
                format!(
                    "labels declared in this spec: {}",
                    labels.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                )
            }));
        out.push((format!("no resource carries sensitivity `{l}`"), hint));
    }
    out
}

fn matcher_problems(m: &Matcher) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for op in &m.0 {
        if let MatchOp::Regex(r) | MatchOp::NotRegex(r) = op
            && let Err(e) = regex::Regex::new(r)
        {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            out.push((
                format!("invalid regex `{r}`: {first}"),
                Some(
                    "escape special characters with `\\\\`, or use `contains:` for plain text"
                        .into(),
                ),
            ));
        }
    }
    out
}

/// Columns a record check may name: those of the table's rows, plus those a
/// `records.update` call of the solution or a threat's actions sets.
fn table_columns(spec: &Spec, table: &str) -> BTreeSet<String> {
    let mut cols: BTreeSet<String> = spec
        .world
        .records
        .get(table)
        .into_iter()
        .flat_map(|t| t.rows.iter().flat_map(|r| r.keys().cloned()))
        .collect();
    let calls = spec
        .task
        .solution
        .iter()
        .chain(spec.threats.iter().flat_map(|t| t.actions.iter()));
    for c in calls {
        if c.tool == "records.update"
            && c.args.get("table").and_then(Value::as_str) == Some(table)
            && let Some(set) = c.args.get("set").and_then(Value::as_object)
        {
            cols.extend(set.keys().cloned());
        }
    }
    cols.extend(crate::stateops::written_columns(spec, table));
    cols.extend(spec.world.records.get(table).and_then(|t| t.key.clone()));
    cols
}

/// Expands a tool entry (`files.*` or a name) against built-in and custom tools.
pub(crate) fn expand_tool(entry: &str, custom: &[&str]) -> Vec<String> {
    let all = BUILTIN_TOOLS.iter().copied().chain(custom.iter().copied());
    if let Some(family) = entry.strip_suffix(".*") {
        all.filter(|t| t.split('.').next() == Some(family))
            .map(str::to_string)
            .collect()
    } else {
        all.filter(|t| *t == entry).map(str::to_string).collect()
    }
}

/// Where a slot is planted, which decides which techniques can use it.
pub fn slot_kind_of_pointer(ptr: &str) -> &'static str {
    let seg: Vec<&str> = ptr.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["world", "files", ..] | ["world", "env", ..] => "file",
        ["world", "mail", ..] => "mail",
        ["world", "web", ..] => "web",
        ["world", "memory", ..] => "memory",
        ["world", "records", ..] => "record",
        ["world", "tools", _, "description"] => "tool_description",
        ["world", "tools", ..] => "tool_output",
        ["task", ..] => "user_turn",
        _ => "file",
    }
}

/// Every slot declared in a spec with the kind of place it is planted in
/// (the first place, when a slot appears in several).
pub fn slot_kinds(spec: &Spec) -> std::collections::BTreeMap<String, &'static str> {
    let mut out = std::collections::BTreeMap::new();
    for (ptr, text) in Validator::world_texts(spec) {
        for p in placeholders(&text) {
            if p.kind == "slot" {
                // A declared kind (`world.slots.NAME.kind`) wins over the place.
                let declared = spec
                    .world
                    .slots
                    .get(p.name)
                    .and_then(|d| d.kind.as_deref())
                    .and_then(|k| crate::model::SLOT_KINDS.iter().find(|x| **x == k).copied());
                out.entry(p.name.to_string())
                    .or_insert_with(|| declared.unwrap_or_else(|| slot_kind_of_pointer(&ptr)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_globs_expand() {
        assert_eq!(expand_tool("mail.*", &[]).len(), 3);
        assert_eq!(
            expand_tool("deploy.apply", &["deploy.apply"]),
            vec!["deploy.apply"]
        );
        assert!(expand_tool("nope", &[]).is_empty());
    }
}
