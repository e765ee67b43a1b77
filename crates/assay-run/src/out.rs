//! The output folder: episode directory names, atomic writes, and reuse of a
//! folder an earlier run wrote.
//!
//! Everything a run writes lands in `--out`: episode directory names are made
//! from spec, case and agent names that a spec or agents file controls, so they
//! are sanitised, bounded and made unique here, never trusted.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::RunError;

/// Longest part of a directory name taken from one name (spec, case, agent), in bytes.
const SPEC_PART: usize = 48;
const CASE_PART: usize = 64;
const AGENT_PART: usize = 40;

/// Prefix of temporary files written before an atomic rename.
const TMP_PREFIX: &str = ".assay-tmp-";

/// One name made safe as part of a directory name: ASCII letters, digits and
/// `._@+-` kept, anything else `-`, no leading dot, at most `max` bytes.
pub(crate) fn part(name: &str, max: usize) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+') {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect();
    if s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// The directory name of an episode: readable parts of the spec id, case label
/// and agent name, the epoch, and a hash of the unsanitised names, so two
/// episodes never share a directory however their names sanitise or truncate.
/// Always one path component, never `.` or `..`, never hidden, and at most
/// 180 bytes (far below the usual 255-byte limit).
pub fn episode_dir_name(spec: &str, case: &str, agent: &str, epoch: u32) -> String {
    let mut h = Sha256::new();
    for s in [spec, case, agent] {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    h.update(epoch.to_le_bytes());
    let digest = h.finalize();
    let hex: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}--{}--{}--{epoch}--{hex}",
        part(spec, SPEC_PART),
        part(case, CASE_PART),
        part(agent, AGENT_PART)
    )
}

/// True when `name` is exactly one normal path component (no separator, not
/// `.` or `..`, not absolute): joined to a folder, it stays inside it.
pub(crate) fn is_plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(n)), None) if n == name)
        && !name.contains(['/', '\\', '\0'])
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// flushed to disk, then renamed over `path`. A reader (or a run killed halfway)
/// sees the old file or the new one, never a truncated one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let io = |source: std::io::Error| RunError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // Make the rename itself durable; not every platform can open a folder.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Makes `out` ready for a run: created when missing; refused when it holds
/// anything unless `force`, which first removes what an earlier Assay run wrote
/// there (its `results.json`, the episode directories it lists, episode
/// directories of a run killed before it wrote `results.json`, its evidence
/// records under `evidence/`, and leftover temporary files) and nothing else.
/// Other files are left alone.
pub fn prepare_out(out: &Path, force: bool) -> Result<(), RunError> {
    let io = |path: &Path, source: std::io::Error| RunError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(out).map_err(|e| io(out, e));
        }
        Err(e) => return Err(io(out, e)),
        Ok(_) if !out.is_dir() => {
            return Err(RunError::OutNotEmpty {
                path: out.to_path_buf(),
                why: "it is not a directory".into(),
            });
        }
        Ok(_) => {}
    }
    let entries = || -> Result<Vec<PathBuf>, RunError> {
        std::fs::read_dir(out)
            .map_err(|e| io(out, e))?
            .map(|e| e.map(|e| e.path()).map_err(|e| io(out, e)))
            .collect()
    };
    if entries()?.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(RunError::OutNotEmpty {
            path: out.to_path_buf(),
            why: "it is not empty (pass --force to replace an earlier run written there)".into(),
        });
    }
    clear_previous_run(out)
}

/// Removes what an earlier run wrote into `out` (see [`prepare_out`]).
fn clear_previous_run(out: &Path) -> Result<(), RunError> {
    let io = |path: &Path, source: std::io::Error| RunError::Io {
        path: path.to_path_buf(),
        source,
    };
    // The run store an export folder holds by default (and its WAL files).
    for f in ["assay.db", "assay.db-wal", "assay.db-shm"] {
        let p = out.join(f);
        if is_file(&p) {
            std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
        }
    }
    let results = out.join("results.json");
    let mut listed = Vec::new();
    if is_file(&results) {
        let text = std::fs::read_to_string(&results).map_err(|e| io(&results, e))?;
        // Only the episode names are needed; tolerate other versions of the format.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            for e in v["episodes"].as_array().into_iter().flatten() {
                if let Some(name) = e["episode"].as_str() {
                    listed.push(name.to_string());
                }
            }
        }
    }
    for name in &listed {
        if is_plain_name(name) {
            remove_episode_dir(&out.join(name))?;
        }
    }
    // Episode directories of a run that died before writing results.json:
    // exactly one trace.jsonl whose first event names that directory.
    for entry in std::fs::read_dir(out).map_err(|e| io(out, e))? {
        let path = entry.map_err(|e| io(out, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with(TMP_PREFIX) && is_file(&path) {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        } else if is_orphan_episode(&path, name) {
            remove_episode_dir(&path)?;
        }
    }
    clear_evidence(&out.join(crate::evidence::EVIDENCE_DIR))?;
    if is_file(&results) {
        std::fs::remove_file(&results).map_err(|e| io(&results, e))?;
    }
    Ok(())
}

/// Removes the evidence records an earlier run wrote into `dir`
/// (`OUT/evidence`): `*.json` files that are run or spec records produced by
/// `assay run`, and leftover temporary files; then the folder if nothing
/// else is left in it. Any other file stays.
fn clear_evidence(dir: &Path) -> Result<(), RunError> {
    if !is_dir(dir) {
        return Ok(());
    }
    let io = |path: &Path, source: std::io::Error| RunError::Io {
        path: path.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let ours = is_file(&path)
            && (name.starts_with(TMP_PREFIX) || (name.ends_with(".json") && is_run_record(&path)));
        if ours {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
    }
    // Fails, harmlessly, when something else is inside: that is not ours.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Whether `path` holds an evidence record written by `assay run` (a run or
/// spec record of tool `assay`), not some other file that happens to be there.
fn is_run_record(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
        v["schema_version"] == crate::evidence::EVIDENCE_SCHEMA
            && v["tool"]["name"] == "assay"
            && matches!(v["scope"].as_str(), Some("run" | "spec"))
    })
}

fn is_file(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

fn is_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

/// Removes an episode directory's trace (never following a symlink), then the
/// directory when nothing else is in it.
fn remove_episode_dir(dir: &Path) -> Result<(), RunError> {
    if !is_dir(dir) {
        return Ok(());
    }
    let trace = dir.join("trace.jsonl");
    if is_file(&trace) {
        std::fs::remove_file(&trace).map_err(|e| RunError::Io {
            path: trace.clone(),
            source: e,
        })?;
    }
    // Fails, harmlessly, when something else is inside: that is not ours.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn is_orphan_episode(dir: &Path, name: &str) -> bool {
    if !is_dir(dir) {
        return false;
    }
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let only_trace = matches!(
        (entries.next(), entries.next()),
        (Some(Ok(e)), None) if e.file_name() == "trace.jsonl"
    );
    let trace = dir.join("trace.jsonl");
    if !only_trace || !is_file(&trace) {
        return false;
    }
    let Ok(f) = std::fs::File::open(&trace) else {
        return false;
    };
    let mut first = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut first);
    serde_json::from_str::<serde_json::Value>(&first)
        .is_ok_and(|v| v["type"] == "episode_start" && v["episode"].as_str() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_bounded_and_distinct() {
        let long = "exec:python3 -c 'import sys; print(1)' ".repeat(40);
        let n = episode_dir_name("s", "benign", &long, 0);
        assert!(n.len() <= 180, "{}", n.len());
        assert!(is_plain_name(&n), "{n}");
        let a = episode_dir_name("s", "benign", "exec:a b", 0);
        let b = episode_dir_name("s", "benign", "exec:a-b", 0);
        assert_ne!(a, b, "names that sanitise alike stay distinct");
        let dots = episode_dir_name("..", "..", "..", 0);
        assert!(is_plain_name(&dots) && !dots.starts_with('.'), "{dots}");
        assert!(
            episode_dir_name("support-refund", "benign", "control:solve", 2)
                .starts_with("support-refund--benign--control-solve--2--")
        );
    }

    #[test]
    fn plain_names() {
        for bad in ["", ".", "..", "a/b", "/a", "../a", "a\\b", "a\0b"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
        assert!(is_plain_name("a..b"));
    }
}
