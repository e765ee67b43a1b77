//! The evidence bundle: one signed statement per evidence file, checkable
//! later against the files themselves.

use std::path::{Path, PathBuf};

use assay_trace::{PublicKey, SecretKey, sha256_hex};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::dsse::Envelope;
use crate::statement::{EVIDENCE_PREDICATE, PAYLOAD_TYPE, STATEMENT_TYPE, Statement, Subject};

/// Version tag of a bundle file.
pub const BUNDLE_SCHEMA: &str = "assay-evidence-bundle/v1";

/// A set of signed statements, one per evidence file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`BUNDLE_SCHEMA`].
    pub schema_version: String,
    /// One DSSE envelope per file, in the order the files were given.
    pub envelopes: Vec<Envelope>,
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// An evidence file could not be read.
    #[error("cannot read evidence file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An evidence file is not under the bundle's base directory, so its name
    /// in the statement could not be resolved by a verifier.
    #[error(
        "evidence file {path} is not inside the base directory {base}; move it there or choose another base"
    )]
    OutsideBase {
        /// The file.
        path: PathBuf,
        /// The base directory.
        base: PathBuf,
    },
}

/// What verifying a bundle found: every subject checked, and every problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// Subjects whose signature held and whose file still has the signed digest.
    pub verified: Vec<String>,
    /// One line per failure (envelope index, subject, reason).
    pub problems: Vec<String>,
}

impl BundleReport {
    /// True when there was something to check and nothing failed.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && !self.verified.is_empty()
    }
}

/// Signs every file in `files` (each under `base`) as one statement each.
pub fn sign_files(base: &Path, files: &[PathBuf], key: &SecretKey) -> Result<Bundle, BundleError> {
    let mut envelopes = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(f).map_err(|source| BundleError::Read {
            path: f.clone(),
            source,
        })?;
        let name = relative_name(base, f)?;
        // An evidence record (docs/evidence.md) says what it is; other files
        // are named only.
        let record: Option<Value> = serde_json::from_slice(&bytes).ok();
        let predicate = json!({
            "file": name,
            "evidence_id": record.as_ref().and_then(|r| r.get("id")).cloned().unwrap_or(Value::Null),
            "evidence_class": record.as_ref().and_then(|r| r.get("evidence_class")).cloned().unwrap_or(Value::Null),
        });
        let statement = Statement {
            statement_type: STATEMENT_TYPE.to_string(),
            subject: vec![Subject {
                name,
                digest: [("sha256".to_string(), sha256_hex(&bytes))].into(),
            }],
            predicate_type: EVIDENCE_PREDICATE.to_string(),
            predicate,
        };
        let payload = serde_json::to_vec(&statement).expect("a statement serialises");
        envelopes.push(Envelope::sign(PAYLOAD_TYPE, &payload, key));
    }
    Ok(Bundle {
        schema_version: BUNDLE_SCHEMA.to_string(),
        envelopes,
    })
}

/// `/`-separated path of `file` relative to `base`, refused when outside it.
fn relative_name(base: &Path, file: &Path) -> Result<String, BundleError> {
    let outside = || BundleError::OutsideBase {
        path: file.to_path_buf(),
        base: base.to_path_buf(),
    };
    let b = base.canonicalize().map_err(|_| outside())?;
    let f = file.canonicalize().map_err(|_| outside())?;
    let rel = f.strip_prefix(&b).map_err(|_| outside())?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.join("/"))
}

/// Checks every envelope's signature by `key`, that its payload is an
/// in-toto statement, and that every subject, read from `base`, still has
/// the signed digest. Subject names that would leave `base` are refused.
pub fn verify_bundle(bundle: &Bundle, base: &Path, key: &PublicKey) -> BundleReport {
    let mut report = BundleReport::default();
    if bundle.schema_version != BUNDLE_SCHEMA {
        report.problems.push(format!(
            "schema_version is {:?}, expected {BUNDLE_SCHEMA:?}",
            bundle.schema_version
        ));
        return report;
    }
    if bundle.envelopes.is_empty() {
        report
            .problems
            .push("the bundle holds no envelope: nothing is attested".into());
    }
    for (i, env) in bundle.envelopes.iter().enumerate() {
        let at = format!("envelope {}", i + 1);
        if env.payload_type != PAYLOAD_TYPE {
            report.problems.push(format!(
                "{at}: payloadType is {:?}, expected {PAYLOAD_TYPE:?}",
                env.payload_type
            ));
            continue;
        }
        let payload = match env.verify(key) {
            Ok(p) => p,
            Err(e) => {
                report.problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let statement: Statement = match serde_json::from_slice(&payload) {
            Ok(s) => s,
            Err(e) => {
                report.problems.push(format!(
                    "{at}: the payload is not an in-toto statement: {e}"
                ));
                continue;
            }
        };
        if statement.statement_type != STATEMENT_TYPE {
            report.problems.push(format!(
                "{at}: _type is {:?}, expected {STATEMENT_TYPE:?}",
                statement.statement_type
            ));
            continue;
        }
        for s in &statement.subject {
            let Some(want) = s.digest.get("sha256") else {
                report
                    .problems
                    .push(format!("{at}: subject {} has no sha256 digest", s.name));
                continue;
            };
            if !stays_inside(&s.name) {
                report.problems.push(format!(
                    "{at}: subject name {:?} is not a plain relative path; refusing to read it",
                    s.name
                ));
                continue;
            }
            match std::fs::read(base.join(&s.name)) {
                Ok(bytes) if sha256_hex(&bytes) == *want => report.verified.push(s.name.clone()),
                Ok(bytes) => report.problems.push(format!(
                    "{at}: {} has sha256 {}, but the signed digest is {want}: the file changed after signing",
                    s.name,
                    sha256_hex(&bytes)
                )),
                Err(e) => report
                    .problems
                    .push(format!("{at}: cannot read {}: {e}", s.name)),
            }
        }
    }
    report
}

/// Whether a `/`-separated name stays inside the directory it is joined to.
fn stays_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['\\', '\0']))
}
