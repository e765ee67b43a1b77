//! Finding spec files under the paths a user names, one rule for every caller
//! (CLI, tests, benchmarks): named files as given, directories searched
//! recursively for `*.yaml` / `*.yml` — except assurance cases
//! (`apiVersion: assay.assurance/v1`), which live beside specs but are read by
//! `assay assure`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn is_spec(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// The `apiVersion` of assurance case files, which a directory walk leaves out.
pub const ASSURANCE_API_VERSION: &str = "assay.assurance/v1";

/// Whether a file found in a directory declares itself an assurance case. Only
/// that exact top-level `apiVersion` is skipped: a spec with a misspelt
/// `apiVersion` is still loaded, and refused with its error.
fn is_assurance_case(p: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(p) else {
        return false;
    };
    text.lines().any(|l| {
        l.strip_prefix("apiVersion:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
            == Some(ASSURANCE_API_VERSION)
    })
}

/// Files named directly, plus `*.yaml`/`*.yml` found recursively in directories
/// (assurance cases left out), sorted.
///
/// Each real directory is read once, whatever number of symbolic links lead to
/// it, so links that form loops cannot make the walk run forever or blow up.
pub fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, &mut seen)
                .map_err(|e| format!("cannot read directory {}: {e}", p.display()))?;
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

fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> std::io::Result<()> {
    // A directory that cannot be resolved (a dangling link, say) is skipped
    // like any other unreadable entry below the root.
    let Ok(real) = std::fs::canonicalize(dir) else {
        return Ok(());
    };
    if !seen.insert(real) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out, seen)?;
        } else if is_spec(&p) && !is_assurance_case(&p) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assurance_cases_are_left_out_of_directory_walks_but_not_misspelt_specs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("case.yaml"),
            "apiVersion: assay.assurance/v1\nkind: AssuranceCase\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("spec.yaml"), "apiVersion: assay/v1\n").unwrap();
        std::fs::write(
            dir.path().join("typo.yaml"),
            "apiVersion: assay.assurnce/v1\n",
        )
        .unwrap();
        let files = spec_files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(
            files,
            vec![dir.path().join("spec.yaml"), dir.path().join("typo.yaml")]
        );
        // Named directly, a case is passed through (and refused by the spec loader).
        let named = spec_files(&[dir.path().join("case.yaml")]).unwrap();
        assert_eq!(named.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("specs");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/s.yaml"), "x").unwrap();
        // Two loops: each directory links back to the root and to itself.
        std::os::unix::fs::symlink(&root, root.join("a/up")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/up2")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/self")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("b")).unwrap();
        let files = spec_files(std::slice::from_ref(&root)).unwrap();
        assert_eq!(files, vec![root.join("a/s.yaml")]);
    }
}
