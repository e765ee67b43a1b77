//! Reading evidence records (`assay.evidence/v1`) and checking that an
//! independent party could reproduce them: the file is the one pinned, the
//! record matches its own id, every input and artifact it names still has its
//! recorded digest, and it carries a reproduction recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assay_trace::sha256_hex;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The schema every evidence record carries.
pub const EVIDENCE_SCHEMA: &str = "assay.evidence/v1";

/// An evidence record as read from disk, before weighing.
#[derive(Debug, Clone)]
pub struct Record {
    /// The file read.
    pub path: PathBuf,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// The parsed record.
    pub value: Value,
}

impl Record {
    /// The record's own id (`id`).
    pub fn id(&self) -> &str {
        self.value.get("id").and_then(Value::as_str).unwrap_or("")
    }

    /// Its evidence class.
    pub fn class(&self) -> &str {
        self.value
            .get("evidence_class")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The access it used.
    pub fn access(&self) -> Vec<String> {
        strings(self.value.get("access"))
    }

    /// Digests of the models it is about (`model`, and `compared_model` for a
    /// two-model comparison).
    pub fn model_digests(&self) -> Vec<String> {
        ["model", "compared_model"]
            .iter()
            .filter_map(|k| self.value.get(*k)?.get("digest")?.as_str())
            .map(str::to_string)
            .collect()
    }

    /// Names of the agents it measured as subjects (run records).
    pub fn subject_agents(&self) -> Vec<String> {
        self.value
            .get("agents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|a| a.get("role").and_then(Value::as_str) != Some("control"))
            .filter_map(|a| a.get("name")?.as_str().map(str::to_string))
            .collect()
    }

    /// Whether it records agents at all (a run record).
    pub fn is_run_record(&self) -> bool {
        self.value.get("agents").is_some_and(Value::is_array)
    }

    /// SHA-256 of the agents file it was run with, if any.
    pub fn agents_file_sha256(&self) -> Option<String> {
        self.value
            .get("agents_file")?
            .get("sha256")?
            .as_str()
            .map(str::to_string)
    }

    /// Ids of the records this one aggregates (a run-scope record's `parts`).
    pub fn parts(&self) -> Vec<String> {
        strings(self.value.get("parts"))
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Why a file is not an evidence record.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// It could not be read.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// The cause.
        message: String,
    },
    /// It is not an evidence record.
    #[error("{path} is not an evidence record: {message}")]
    NotARecord {
        /// The file.
        path: String,
        /// What is missing.
        message: String,
    },
}

/// Reads a record and checks its shape.
pub fn read_record(path: &Path) -> Result<Record, RecordError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| RecordError::Unreadable {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| RecordError::NotARecord {
        path: shown.clone(),
        message: format!("not JSON ({e})"),
    })?;
    let schema = value.get("schema_version").and_then(Value::as_str);
    if schema != Some(EVIDENCE_SCHEMA) {
        return Err(RecordError::NotARecord {
            path: shown,
            message: format!(
                "schema_version is {}, expected \"{EVIDENCE_SCHEMA}\"",
                schema.map_or("missing".to_string(), |s| format!("{s:?}"))
            ),
        });
    }
    for field in ["id", "evidence_class"] {
        if value
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(RecordError::NotARecord {
                path: shown,
                message: format!("it has no `{field}`"),
            });
        }
    }
    if !value.get("access").is_some_and(Value::is_array) {
        return Err(RecordError::NotARecord {
            path: shown,
            message: "it has no `access` list".into(),
        });
    }
    Ok(Record {
        path: path.to_path_buf(),
        sha256: sha256_hex(&bytes),
        value,
    })
}

/// One integrity or reproducibility check on a record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// What was checked (`pin`, `id`, `data`, `artifact`, `model`, `recipe`).
    pub what: String,
    /// The file or field concerned.
    pub subject: String,
    /// `ok`, `mismatch` or `missing`.
    pub outcome: String,
    /// Details: expected and found digests, or what is missing.
    pub detail: String,
}

impl Check {
    fn new(what: &str, subject: &str, outcome: &str, detail: String) -> Check {
        Check {
            what: what.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            detail,
        }
    }

    /// Whether the check passed.
    pub fn ok(&self) -> bool {
        self.outcome == "ok"
    }
}

/// Hex SHA-256 of a file, memoised: one model's files are hashed once per assessment.
#[derive(Debug, Default)]
pub struct Hasher {
    cache: BTreeMap<PathBuf, Option<String>>,
}

impl Hasher {
    /// The digest, or `None` when the file cannot be read.
    pub fn sha256(&mut self, path: &Path) -> Option<String> {
        if let Some(d) = self.cache.get(path) {
            return d.clone();
        }
        let d = std::fs::File::open(path).ok().and_then(|mut f| {
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h).ok()?;
            Some(hex::encode(h.finalize()))
        });
        self.cache.insert(path.to_path_buf(), d.clone());
        d
    }
}

/// Runs every check on a record. `pin` is the SHA-256 the case pins, `root` the
/// directory its relative input paths are resolved against.
pub fn check_record(
    rec: &Record,
    pin: Option<&str>,
    root: &Path,
    hasher: &mut Hasher,
) -> Vec<Check> {
    let mut out = Vec::new();
    let shown = rec.path.display().to_string();
    match pin {
        Some(p) if !p.eq_ignore_ascii_case(&rec.sha256) => out.push(Check::new(
            "pin",
            &shown,
            "mismatch",
            format!("the case pins sha256 {p}, the file has {}", rec.sha256),
        )),
        Some(_) => out.push(Check::new("pin", &shown, "ok", rec.sha256.clone())),
        None => {}
    }
    // The id is the SHA-256 of the record serialised compactly with `id` blank.
    let mut blank = rec.value.clone();
    if let Some(o) = blank.as_object_mut() {
        o.insert("id".into(), Value::String(String::new()));
    }
    let body = serde_json::to_vec(&blank).unwrap_or_default();
    let recomputed = format!("sha256:{}", sha256_hex(&body));
    if recomputed == rec.id() {
        out.push(Check::new("id", &shown, "ok", recomputed));
    } else {
        out.push(Check::new(
            "id",
            &shown,
            "mismatch",
            format!(
                "the record says id {}, its content hashes to {recomputed}: it was edited after it was written",
                rec.id()
            ),
        ));
    }
    let record_dir = rec.path.parent().unwrap_or(Path::new("."));
    let mut file_check = |what: &str, path_text: &str, want: &str, candidates: Vec<PathBuf>| {
        let found = candidates.iter().find(|p| p.is_file());
        match found {
            None => out.push(Check::new(
                what,
                path_text,
                "missing",
                format!(
                    "not found (looked at {}): an independent party cannot re-hash it",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Some(p) => match hasher.sha256(p) {
                Some(d) if d.eq_ignore_ascii_case(want) => {
                    out.push(Check::new(what, path_text, "ok", d))
                }
                Some(d) => out.push(Check::new(
                    what,
                    path_text,
                    "mismatch",
                    format!("recorded sha256 {want}, {} has {d}", p.display()),
                )),
                None => out.push(Check::new(
                    what,
                    path_text,
                    "missing",
                    format!("{} cannot be read", p.display()),
                )),
            },
        }
    };
    let resolve = |base: &Path, p: &str| -> PathBuf {
        let pb = PathBuf::from(p);
        if pb.is_absolute() { pb } else { base.join(pb) }
    };
    for d in rec
        .value
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(f) = d.get("file") else { continue };
        let (Some(p), Some(s)) = (
            f.get("path").and_then(Value::as_str),
            f.get("sha256").and_then(Value::as_str),
        ) else {
            continue;
        };
        // An inline input the producer wrote next to the record is named
        // "FILE (from …)"; the file is the part before the note.
        let bare = p.split(" (").next().unwrap_or(p);
        let mut candidates = vec![resolve(root, bare)];
        if bare != p {
            candidates.push(resolve(record_dir, bare));
        }
        file_check("data", p, s, candidates);
    }
    for a in rec
        .value
        .get("artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(p), Some(s)) = (
            a.get("path").and_then(Value::as_str),
            a.get("sha256").and_then(Value::as_str),
        ) else {
            continue;
        };
        // Mech records name artifacts beside themselves; run records name them
        // relative to the run directory, the parent of `evidence/`.
        let mut candidates = vec![resolve(record_dir, p)];
        if let Some(run_dir) = record_dir.parent().filter(|_| rec.is_run_record()) {
            candidates.push(resolve(run_dir, p));
        }
        candidates.push(resolve(root, p));
        file_check("artifact", p, s, candidates);
    }
    for key in ["model", "compared_model"] {
        let Some(m) = rec.value.get(key) else {
            continue;
        };
        let Some(dir) = m.get("path").and_then(Value::as_str) else {
            continue;
        };
        let dir_path = resolve(root, dir);
        let is_file_model = dir_path.is_file();
        for f in m
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(p), Some(s)) = (
                f.get("path").and_then(Value::as_str),
                f.get("sha256").and_then(Value::as_str),
            ) else {
                continue;
            };
            let candidate = if is_file_model {
                dir_path.clone()
            } else {
                dir_path.join(p)
            };
            file_check("model", &format!("{dir}/{p}"), s, vec![candidate]);
        }
    }
    let recipe = rec
        .value
        .get("reproduction")
        .and_then(|r| r.get("command"))
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty() && c.iter().all(Value::is_string));
    match recipe {
        Some(cmd) => out.push(Check::new(
            "recipe",
            "reproduction.command",
            "ok",
            cmd.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        )),
        None => out.push(Check::new(
            "recipe",
            "reproduction.command",
            "missing",
            "the record carries no reproduction recipe: nobody can re-run it under comparable conditions".into(),
        )),
    }
    out
}
