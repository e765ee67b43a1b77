//! Record/replay of model requests, keyed by where a request sits (episode,
//! turn, index) rather than by its body: identical requests of different
//! episodes or epochs each get their own entry, and a replayed episode gets
//! back exactly the replies its own recording holds.
//!
//! Layout of a recording directory:
//!
//! ```text
//! DIR/manifest.json                      schema, Assay version, run seed, agents-file sha256
//! DIR/<episode-dir>/<index>.json         one accepted request/response pair
//! ```
//!
//! `<episode-dir>` is the episode key reduced to safe characters plus a digest
//! of the whole key, so no key can escape `DIR` or collide with another.
//! On replay the request is compared with the recorded one after the ids a
//! server chose (tool-call ids and the like) are renamed by first appearance,
//! so random ids never break a replay but a structural change still does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::http::RequestAt;

/// Version of the recording layout; a recording of another version is refused.
pub(crate) const SCHEMA_VERSION: u64 = 2;
const MANIFEST: &str = "manifest.json";
/// Longest readable part of an episode directory name.
const NAME_PREFIX: usize = 64;
/// Longest rendering of a value in a difference report.
const SHOWN: usize = 120;

/// Whether a recording is written or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Store every accepted response (`--record`).
    Record,
    /// Serve responses from the directory, nothing goes out (`--replay`).
    Replay,
}

/// What a recording states about the run that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Provenance {
    /// Run seed (`--seed`).
    pub run_seed: u64,
    /// SHA-256 of the agents file, when the agents came from one.
    pub agents_file_sha256: Option<String>,
}

/// One recording directory, shared by every episode of an agent.
pub(crate) struct Recording {
    dir: PathBuf,
    mode: Mode,
    provenance: Provenance,
    /// The manifest is written (record) or checked (replay) once, on first use.
    ready: OnceLock<Result<(), String>>,
}

/// Why a recorded response could not be served.
pub(crate) enum Replayed {
    /// The recorded file is larger than any response within the limit can
    /// need (a cap, like a live oversized body).
    TooLarge(String),
    /// Missing, unreadable, malformed, or recorded for another request.
    Failed(String),
}

impl Recording {
    /// A recording in `dir`; nothing is touched until the first request.
    pub fn new(dir: PathBuf, mode: Mode, provenance: Provenance) -> Self {
        Self {
            dir,
            mode,
            provenance,
            ready: OnceLock::new(),
        }
    }

    /// Whether requests are served from the directory.
    pub fn is_replay(&self) -> bool {
        self.mode == Mode::Replay
    }

    fn manifest(&self) -> Value {
        json!({
            "schema_version": SCHEMA_VERSION,
            "assay_version": env!("CARGO_PKG_VERSION"),
            "run_seed": self.provenance.run_seed,
            "agents_file_sha256": self.provenance.agents_file_sha256,
        })
    }

    /// Writes (record) or checks (replay) the manifest, once per recording;
    /// the same answer afterwards. Called before a request goes out, so a
    /// recording of another run is refused before anything is sent.
    pub fn ensure_ready(&self) -> Result<(), String> {
        self.ready
            .get_or_init(|| match self.mode {
                Mode::Record => self.write_manifest(),
                Mode::Replay => self.check_manifest(),
            })
            .clone()
    }

    fn write_manifest(&self) -> Result<(), String> {
        let path = self.dir.join(MANIFEST);
        // Recording into a directory another run recorded would leave entries
        // under a manifest that does not describe them.
        if path.exists() {
            return self.compare_manifest(&path, "record into it").map(|_| ());
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            format!(
                "cannot create recording directory {}: {e}",
                self.dir.display()
            )
        })?;
        let text = serde_json::to_string_pretty(&self.manifest()).map_err(|e| e.to_string())?;
        write_atomic(&self.dir, MANIFEST, &text)
    }

    fn check_manifest(&self) -> Result<(), String> {
        let path = self.dir.join(MANIFEST);
        if !path.exists() {
            return Err(format!(
                "{} has no {MANIFEST}: it is not a recording of this version of Assay \
                 (schema {SCHEMA_VERSION}); record it again with --record",
                self.dir.display()
            ));
        }
        self.compare_manifest(&path, "replay it")
    }

    /// Compares the manifest at `path` with this run's; `doing` says what the
    /// run tried, for the error.
    fn compare_manifest(&self, path: &Path, doing: &str) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let m: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        if m.get("schema_version").and_then(Value::as_u64) != Some(SCHEMA_VERSION) {
            return Err(format!(
                "{} has schema_version {}, this Assay reads {SCHEMA_VERSION}; record again \
                 with --record into an empty directory",
                path.display(),
                m.get("schema_version").unwrap_or(&Value::Null)
            ));
        }
        let recorded_sha = m.get("agents_file_sha256").cloned().unwrap_or(Value::Null);
        let now_sha = json!(self.provenance.agents_file_sha256);
        if recorded_sha != now_sha {
            return Err(format!(
                "{} was recorded with agents file sha256 {}, this run's is {}: the agents \
                 (models, options) differ; to {doing}, use the agents file it was recorded \
                 with, or record into an empty directory",
                path.display(),
                show_sha(&recorded_sha),
                show_sha(&now_sha)
            ));
        }
        let recorded_seed = m.get("run_seed").and_then(Value::as_u64);
        if recorded_seed != Some(self.provenance.run_seed) {
            return Err(format!(
                "{} was recorded with run seed {}, this run's is {}; to {doing}, run with \
                 --seed {}, or record into an empty directory",
                path.display(),
                recorded_seed.map_or("(none)".to_string(), |s| s.to_string()),
                self.provenance.run_seed,
                recorded_seed.map_or("(none)".to_string(), |s| s.to_string()),
            ));
        }
        Ok(())
    }

    /// The file holding the entry for `at`.
    pub fn entry_path(&self, at: &RequestAt) -> PathBuf {
        self.dir
            .join(episode_dir_name(&at.episode))
            .join(format!("{:04}.json", at.index))
    }

    /// Stores an accepted request/response pair for `at` (atomic rename, so a
    /// concurrent reader never sees half a file).
    pub fn store(
        &self,
        at: &RequestAt,
        url_path: &str,
        req: &Value,
        resp: &Value,
    ) -> Result<(), String> {
        self.ensure_ready()?;
        let doc = json!({
            "schema_version": SCHEMA_VERSION,
            "episode": at.episode,
            "turn": at.turn,
            "index": at.index,
            "path": url_path,
            "request": canonical(req),
            "response": resp,
        });
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        let dir = self.dir.join(episode_dir_name(&at.episode));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create recording directory {}: {e}", dir.display()))?;
        write_atomic(&dir, &format!("{:04}.json", at.index), &text)
    }

    /// The recorded response for `at`, after checking the recorded request is
    /// the one being sent now. `limit` is the response byte cap.
    pub fn load(
        &self,
        at: &RequestAt,
        url_path: &str,
        req: &Value,
        limit: u64,
    ) -> Result<Value, Replayed> {
        self.ensure_ready().map_err(Replayed::Failed)?;
        let file = self.entry_path(at);
        let place = format!(
            "request {} (turn {}) of episode `{}`",
            at.index, at.turn, at.episode
        );
        // The entry wraps the body with the request; allow for that, but never
        // read a file that could not hold an acceptable response.
        let allowed = limit.saturating_mul(2).saturating_add(1 << 20);
        if let Ok(m) = std::fs::metadata(&file)
            && m.len() > allowed
        {
            return Err(Replayed::TooLarge(format!(
                "recording {} has {} bytes, more than a response within the limit of {limit} \
                 bytes (response_bytes) can need; not read",
                file.display(),
                m.len()
            )));
        }
        let fail = Replayed::Failed;
        let text = std::fs::read_to_string(&file).map_err(|e| {
            fail(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{place} is not in the recording {} (no {}); the episode took another \
                     path than when recorded, or was not recorded: record it with --record",
                    self.dir.display(),
                    file.display()
                )
            } else {
                format!("cannot read recording {}: {e}", file.display())
            })
        })?;
        let mut doc: Value = serde_json::from_str(&text)
            .map_err(|e| fail(format!("recording {} is not JSON: {e}", file.display())))?;
        let field = |doc: &Value, k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
        // The directory name is a digest of the key; a file that names another
        // episode, turn or path was moved or edited.
        let expected = [
            ("episode", json!(at.episode)),
            ("turn", json!(at.turn)),
            ("index", json!(at.index)),
            ("path", json!(url_path)),
        ];
        for (k, now) in expected {
            let recorded = field(&doc, k);
            if recorded != now {
                return Err(fail(format!(
                    "{place}: recording {} has {k} {} but this request has {}; the recording \
                     was edited or made for another run: record it again with --record",
                    file.display(),
                    shown(&recorded),
                    shown(&now)
                )));
            }
        }
        let recorded = normalise(&canonical(&field(&doc, "request")));
        let now = normalise(&canonical(req));
        if let Some(d) = first_difference(&recorded, &now) {
            return Err(fail(format!(
                "{place} differs from the recording {} at {}: recorded {}, now {}; the spec, \
                 seed, prompt, model options or Assay version changed since it was recorded: \
                 record it again with --record",
                file.display(),
                if d.pointer.is_empty() {
                    "the top level".to_string()
                } else {
                    d.pointer
                },
                d.recorded,
                d.now
            )));
        }
        match doc.get_mut("response") {
            Some(v) => Ok(v.take()),
            None => Err(fail(format!(
                "recording {} has no `response`",
                file.display()
            ))),
        }
    }
}

fn show_sha(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => "(none: agents not from a file)".to_string(),
    }
}

/// Writes `name` in `dir` through a temporary file and a rename: concurrent
/// writers each use their own temporary file, and the rename is atomic.
fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let target = dir.join(name);
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &target))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write recording {}: {e}", target.display())
        })
}

/// Directory name for an episode key: its safe characters (at most
/// [`NAME_PREFIX`] of them, others replaced by `_`), a `-`, and 16 hex digits
/// of its SHA-256. Never empty, never `.` or `..`, never holds a separator,
/// and distinct keys get distinct names whatever sanitising merged.
pub(crate) fn episode_dir_name(key: &str) -> String {
    let mut readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(NAME_PREFIX)
        .collect();
    if readable.starts_with('.') {
        readable.replace_range(0..1, "_");
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{readable}-{}", &digest[..16])
}

/// JSON with object keys sorted at every level, so a request compares and
/// stores the same whatever order its fields were built in.
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), canonical(&o[k]));
            }
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Fields holding an id the server chose, wherever they appear.
const ID_FIELDS: [&str; 4] = [
    "tool_call_id",
    "tool_use_id",
    "call_id",
    "previous_response_id",
];
/// Object `type`s whose `id` the server chose (Anthropic content blocks,
/// Responses output items echoed back as input).
const TYPES_WITH_SERVER_ID: [&str; 8] = [
    "tool_use",
    "server_tool_use",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "reasoning",
    "message",
    "mcp_call",
];

/// Renames the ids a server chose to `<id N>`, numbered by first appearance
/// in the (canonical) document: tool-call ids (`tool_calls[].id`,
/// `tool_call_id`), Anthropic `tool_use` ids and `tool_use_id`, Responses
/// `call_id`, `previous_response_id` and item `id`s. The same id always gets
/// the same name, so a result attached to another call still differs. The
/// top-level `tools` (chosen by Assay) and tool inputs (chosen by the model)
/// are left as they are.
pub(crate) fn normalise(v: &Value) -> Value {
    let mut ids = HashMap::new();
    let mut out = v.clone();
    if let Value::Object(o) = &mut out {
        for (k, child) in o.iter_mut() {
            if k == "tools" {
                continue;
            }
            rename(k, child, false, &mut ids);
        }
    } else {
        walk(&mut out, false, &mut ids);
    }
    out
}

/// Handles the field `key` of an object: an id is renamed, anything else walked.
fn rename(key: &str, v: &mut Value, is_id: bool, ids: &mut HashMap<String, String>) {
    if (is_id || ID_FIELDS.contains(&key))
        && let Value::String(s) = v
    {
        let n = ids.len() + 1;
        *s = ids.entry(s.clone()).or_insert(format!("<id {n}>")).clone();
        return;
    }
    walk(v, key == "tool_calls", ids);
}

fn walk(v: &mut Value, in_tool_calls: bool, ids: &mut HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            let ty = o.get("type").and_then(Value::as_str).map(str::to_string);
            let server_id = in_tool_calls
                || ty
                    .as_deref()
                    .is_some_and(|t| TYPES_WITH_SERVER_ID.contains(&t));
            for (k, child) in o.iter_mut() {
                if k == "input" && ty.as_deref() == Some("tool_use") {
                    continue;
                }
                rename(k, child, server_id && k == "id", ids);
            }
        }
        Value::Array(a) => {
            for x in a {
                walk(x, in_tool_calls, ids);
            }
        }
        _ => {}
    }
}

/// Where two documents first differ.
#[derive(Debug, PartialEq)]
pub(crate) struct Difference {
    /// JSON pointer (RFC 6901) of the first difference; empty for the root.
    pub pointer: String,
    /// The recorded value there, rendered and truncated (`absent` if none).
    pub recorded: String,
    /// The current value there, likewise.
    pub now: String,
}

/// The first place, in document order (object keys sorted), where `recorded`
/// and `now` differ; `None` when they are equal.
pub(crate) fn first_difference(recorded: &Value, now: &Value) -> Option<Difference> {
    diff_at(recorded, now, String::new())
}

fn diff_at(a: &Value, b: &Value, ptr: String) -> Option<Difference> {
    let here = |ptr: String, a: Option<&Value>, b: Option<&Value>| {
        let show = |v: Option<&Value>| v.map_or("absent".to_string(), shown);
        Some(Difference {
            pointer: ptr,
            recorded: show(a),
            now: show(b),
        })
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = diff_at(u, v, p) {
                            return Some(d);
                        }
                    }
                    (u, v) => return here(p, u, v),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                if let Some(d) = diff_at(u, v, format!("{ptr}/{i}")) {
                    return Some(d);
                }
            }
            if x.len() != y.len() {
                let i = x.len().min(y.len());
                return here(format!("{ptr}/{i}"), x.get(i), y.get(i));
            }
            None
        }
        _ if a == b => None,
        _ => here(ptr, Some(a), Some(b)),
    }
}

/// A value as compact JSON, cut to [`SHOWN`] characters.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > SHOWN {
        let cut: String = text.chars().take(SHOWN).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episode_dir_names_stay_inside_and_stay_distinct() {
        for key in [
            "../../etc/passwd",
            "..",
            ".",
            "",
            "/abs/path",
            "a\\b",
            "spec/case/agent/0",
            "spec_case_agent_0",
            &"x".repeat(5000),
            "naïve ☃ agent",
        ] {
            let n = episode_dir_name(key);
            assert!(!n.contains('/') && !n.contains('\\'), "{n}");
            assert!(n != "." && n != ".." && !n.starts_with('.'), "{n}");
            assert!(n.len() <= NAME_PREFIX + 17, "{n}");
            assert_eq!(
                Path::new(&n).components().count(),
                1,
                "{n} is one plain component"
            );
        }
        assert_ne!(
            episode_dir_name("spec/case/agent/0"),
            episode_dir_name("spec_case_agent_0")
        );
        assert_ne!(
            episode_dir_name(&format!("{}a", "x".repeat(100))),
            episode_dir_name(&format!("{}b", "x".repeat(100)))
        );
    }

    fn chat(ids: [&str; 2], results: [&str; 2]) -> Value {
        json!({"model": "m", "tools": [{"type": "function", "function": {"name": "t"}}],
            "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": ids[0], "type": "function", "function": {"name": "t", "arguments": "{}"}},
                {"id": ids[1], "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": results[0], "content": "a"},
            {"role": "tool", "tool_call_id": results[1], "content": "b"}]})
    }

    #[test]
    fn server_chosen_ids_are_renamed_consistently() {
        let a = normalise(&canonical(&chat(
            ["call_x1", "call_x2"],
            ["call_x1", "call_x2"],
        )));
        let b = normalise(&canonical(&chat(
            ["call_9", "call_8"],
            ["call_9", "call_8"],
        )));
        assert_eq!(first_difference(&a, &b), None);
        // Results attached to the other call: a structural change.
        let c = normalise(&canonical(&chat(
            ["call_9", "call_8"],
            ["call_8", "call_9"],
        )));
        let d = first_difference(&a, &c).expect("swapped results differ");
        assert_eq!(d.pointer, "/messages/2/tool_call_id");
        assert_eq!(
            (d.recorded.as_str(), d.now.as_str()),
            ("\"<id 1>\"", "\"<id 2>\"")
        );
    }

    #[test]
    fn anthropic_and_responses_ids_are_renamed_but_inputs_are_not() {
        let anth = |id: &str, input: &str| {
            json!({"messages": [
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": id, "name": "t", "input": {"id": input}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": "ok"}]}]})
        };
        let n = |v: Value| normalise(&canonical(&v));
        assert_eq!(
            first_difference(&n(anth("toolu_1", "k")), &n(anth("toolu_2", "k"))),
            None
        );
        let d = first_difference(&n(anth("toolu_1", "k")), &n(anth("toolu_1", "j"))).unwrap();
        assert_eq!(d.pointer, "/messages/0/content/0/input/id");
        let resp = |id: &str, call: &str| {
            json!({"previous_response_id": null, "input": [
                {"type": "function_call", "id": id, "call_id": call, "name": "t", "arguments": "{}"},
                {"type": "function_call_output", "call_id": call, "output": "ok"}]})
        };
        assert_eq!(
            first_difference(&n(resp("fc_1", "call_1")), &n(resp("fc_2", "call_2"))),
            None
        );
        // A tool definition is Assay's choice, never renamed.
        let tools = |name: &str| json!({"tools": [{"type": "function", "id": name}]});
        assert!(first_difference(&n(tools("a")), &n(tools("b"))).is_some());
    }

    #[test]
    fn first_difference_names_the_pointer_and_both_values() {
        let a = json!({"a": [1, {"b/c": "x"}], "z": 1});
        let b = json!({"a": [1, {"b/c": "y"}], "z": 2});
        let d = first_difference(&a, &b).unwrap();
        assert_eq!(d.pointer, "/a/1/b~1c");
        assert_eq!((d.recorded.as_str(), d.now.as_str()), ("\"x\"", "\"y\""));
        let d = first_difference(&json!({"a": [1]}), &json!({"a": [1, 2]})).unwrap();
        assert_eq!(
            (d.pointer.as_str(), d.recorded.as_str(), d.now.as_str()),
            ("/a/1", "absent", "2")
        );
        let long = json!("y".repeat(1000));
        let d = first_difference(&json!("x"), &long).unwrap();
        assert!(d.now.len() < 200 && d.now.ends_with("..."), "{}", d.now);
        assert_eq!(d.pointer, "");
        assert_eq!(first_difference(&a, &a), None);
    }
}
