//! SeClaw-Bench tasks as Assay specs: one spec per task directory.
//!
//! A task is a directory of YAML and Python (see docs/import-seclaw.md). The
//! Python parts (MCP servers, mock services, the grader) are read by a small
//! script of our own (`python/seclaw_read.py`, embedded) that parses them
//! with `ast` and never imports or runs them; the YAML parts are parsed here.
//! [`import`] then turns each task into a spec and says, task by task, what
//! could not be expressed and which of SeClaw's known grader defects the
//! spec does not reproduce.

mod build;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use build::{Defect, Import, ImportedSpec, Reason, TaskReport};

/// The reader script, run as `python3 -I - TASK_DIR...` with this text on stdin.
pub const READ_SCRIPT: &str = include_str!("../../python/seclaw_read.py");

/// Why a checkout could not be read at all (a single bad task is a report
/// entry, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The path holds no task directory.
    #[error(
        "{path}: no SeClaw-Bench task found (give the repository root, its tasks/openclaw directory, or one task directory holding task.yaml)"
    )]
    NoTasks {
        /// The path given.
        path: PathBuf,
    },
    /// The path cannot be listed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// python3 could not be started.
    #[error("cannot run {python}: {source} (give the interpreter with --python)")]
    Python {
        /// The interpreter.
        python: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The reader script failed or wrote something unreadable.
    #[error("reading the Python sources of the tasks failed: {0}")]
    Read(String),
}

/// The task directories under `path`: `path` itself when it holds a
/// task.yaml, else its `tasks/openclaw` subdirectory or its own children
/// holding a task.yaml, sorted by name.
pub fn task_dirs(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    if path.join("task.yaml").is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let base = if path.join("tasks/openclaw").is_dir() {
        path.join("tasks/openclaw")
    } else {
        path.to_path_buf()
    };
    let entries = std::fs::read_dir(&base).map_err(|source| ImportError::Io {
        path: base.clone(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join("task.yaml").is_file())
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(ImportError::NoTasks {
            path: path.to_path_buf(),
        });
    }
    Ok(dirs)
}

/// Reads every task under `path` with `python` (see [`READ_SCRIPT`]): one
/// JSON object per task with its YAML texts, tools, services, files and
/// what the grader's source says.
pub fn read(python: &Path, path: &Path) -> Result<Value, ImportError> {
    let dirs = task_dirs(path)?;
    let out = crate::python::run_script(python, &dirs, READ_SCRIPT).map_err(|source| {
        ImportError::Python {
            python: python.to_path_buf(),
            source,
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ImportError::Read(if stderr.is_empty() {
            format!("{} ended with {}", python.display(), out.status)
        } else {
            stderr
        }));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| ImportError::Read(format!("its output is not JSON: {e}")))
}

/// Turns what [`read`] returned into specs and a report. Every spec is
/// loaded back through Assay's own loader; one that does not load is
/// reported, not written.
pub fn import(read: &Value) -> Import {
    build::build(read)
}
