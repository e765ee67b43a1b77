//! Finding spec files under the paths a user names, one rule for every caller
//! (CLI, tests, benchmarks): named files as given, directories searched
//! recursively for `*.yaml` / `*.yml`.

use std::path::{Path, PathBuf};

fn is_spec(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Files named directly, plus `*.yaml`/`*.yml` found recursively in directories, sorted.
pub fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out).map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_spec(&p) {
            out.push(p);
        }
    }
    Ok(())
}
