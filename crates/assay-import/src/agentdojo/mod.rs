//! AgentDojo suites as Assay specs: one spec per user task, its injection
//! tasks as threats.
//!
//! The suites are read from an installed `agentdojo` Python package by a
//! small script (`python/agentdojo_dump.py`, embedded) that dumps each suite's
//! environment, tools, injection vectors and tasks, runs every ground truth
//! and probes AgentDojo's own `utility()` and `security()` to learn which
//! parts of the final state and of the reply they read. The suite maps under
//! `suites/` say how AgentDojo's environment becomes record tables and how
//! each of its Python tools acts on them.

mod spec;
mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use spec::{Import, ImportedSpec, TaskReport};

/// The dump script, run as `python - ARGS` with this text on stdin.
pub const DUMP_SCRIPT: &str = include_str!("../../python/agentdojo_dump.py");

/// The parity scorer: replays trajectories in AgentDojo's environment and
/// scores them with its own checks (used by tests and `bench/`).
pub const SCORE_SCRIPT: &str = include_str!("../../python/agentdojo_score.py");

/// Suites this build has maps for, and the maps.
const SUITES: &[(&str, &str)] = &[
    ("banking", include_str!("suites/banking.yaml")),
    ("slack", include_str!("suites/slack.yaml")),
    ("travel", include_str!("suites/travel.yaml")),
    ("workspace", include_str!("suites/workspace.yaml")),
];

/// Why a suite could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// python3 could not be started.
    #[error("cannot run {python}: {source} (give the interpreter with --python)")]
    Python {
        /// The interpreter.
        python: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The package is not installed for that interpreter.
    #[error("{python} cannot import agentdojo: {message}")]
    NotInstalled {
        /// The interpreter.
        python: PathBuf,
        /// What the dump script said.
        message: String,
    },
    /// Unknown suite or benchmark version.
    #[error("{0}")]
    BadArgs(String),
    /// The dump script failed or wrote something unreadable.
    #[error("the AgentDojo dump failed: {0}")]
    Dump(String),
    /// This build has no map for the suite.
    #[error(
        "no table and tool map for AgentDojo suite `{suite}` in this build; mapped suites: {known}"
    )]
    Unmapped {
        /// The suite asked for.
        suite: String,
        /// The suites that have maps.
        known: String,
    },
    /// The suite map does not fit the dumped suite.
    #[error("the map of suite `{suite}` does not fit the installed AgentDojo: {message}")]
    Map {
        /// The suite.
        suite: String,
        /// What does not fit.
        message: String,
    },
}

/// Dumps one suite with `python` (see [`DUMP_SCRIPT`]).
pub fn dump(python: &Path, suite: &str, version: Option<&str>) -> Result<Value, ImportError> {
    let mut args = vec!["--suite", suite];
    if let Some(v) = version {
        args.extend(["--version", v]);
    }
    let out = crate::python::run_script(python, args, DUMP_SCRIPT).map_err(|source| {
        ImportError::Python {
            python: python.to_path_buf(),
            source,
        }
    })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => serde_json::from_slice(&out.stdout)
            .map_err(|e| ImportError::Dump(format!("its output is not JSON: {e}"))),
        Some(2) => Err(ImportError::BadArgs(stderr)),
        Some(3) => Err(ImportError::NotInstalled {
            python: python.to_path_buf(),
            message: stderr,
        }),
        _ => Err(ImportError::Dump(if stderr.is_empty() {
            format!("{} ended with {}", python.display(), out.status)
        } else {
            stderr
        })),
    }
}

/// How a suite's environment and tools become a spec's world.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuiteMap {
    pub tables: BTreeMap<String, tables::TableMap>,
    pub tools: BTreeMap<String, Value>,
}

fn suite_map(suite: &str) -> Result<SuiteMap, ImportError> {
    let Some((_, text)) = SUITES.iter().find(|(s, _)| *s == suite) else {
        return Err(ImportError::Unmapped {
            suite: suite.to_string(),
            known: SUITES
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let v = assay_spec::yaml::parse_value(text).map_err(|(e, pos)| ImportError::Map {
        suite: suite.into(),
        message: format!("suites/{suite}.yaml:{}:{}: {e}", pos.line, pos.col),
    })?;
    serde_json::from_value(v).map_err(|e| ImportError::Map {
        suite: suite.into(),
        message: format!("suites/{suite}.yaml: {e}"),
    })
}

/// Turns a dump into specs and a report. Every spec is validated by Assay's
/// own loader; a task whose spec does not load is reported, not written.
pub fn import(dump: &Value) -> Result<Import, ImportError> {
    let suite = dump["suite"]
        .as_str()
        .ok_or_else(|| ImportError::Dump("the dump names no suite".into()))?;
    let map = suite_map(suite)?;
    spec::build(dump, suite, &map)
}
