//! `assay assure`: evidence bundles (sign, verify).

use std::path::{Path, PathBuf};

use crate::fail;
use crate::verify::{load_public_key, load_signing_key};

/// `assay assure sign FILES --key KEY --base DIR --out FILE`.
pub(crate) fn cmd_sign(files: &[PathBuf], key: &Path, base: &Path, out: &Path) -> u8 {
    let key = match load_signing_key(key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let bundle = match assay_assure::sign_files(base, files, &key) {
        Ok(b) => b,
        Err(e) => return fail(e, 2),
    };
    let text = serde_json::to_string_pretty(&bundle).expect("a bundle serialises") + "\n";
    if let Err(e) = assay_run::write_atomic(out, text.as_bytes()) {
        return fail(e, 2);
    }
    println!(
        "signed {} evidence file(s) with key {} → {}",
        bundle.envelopes.len(),
        key.public().to_hex(),
        out.display()
    );
    0
}

/// `assay assure verify BUNDLE --key PUBKEY [--base DIR]`.
pub(crate) fn cmd_verify(bundle: &Path, key: &Path, base: Option<&Path>) -> u8 {
    let key = match load_public_key(Some(key)) {
        Ok(Some(k)) => k,
        Ok(None) => unreachable!("a key path was given"),
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(bundle) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", bundle.display()), 2),
    };
    let parsed: assay_assure::Bundle = match serde_json::from_str(&text) {
        Ok(b) => b,
        Err(e) => {
            return fail(
                format!("{}: not an evidence bundle: {e}", bundle.display()),
                2,
            );
        }
    };
    let base = base.map(Path::to_path_buf).unwrap_or_else(|| {
        bundle
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let report = assay_assure::verify_bundle(&parsed, &base, &key);
    for s in &report.verified {
        println!("ok   {s}");
    }
    for p in &report.problems {
        println!("FAIL {p}");
    }
    if report.ok() {
        println!(
            "bundle verified: {} subject(s), signatures by {}",
            report.verified.len(),
            key.to_hex()
        );
        0
    } else {
        1
    }
}
