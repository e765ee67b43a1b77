//! Evidence bundles: signed statements verify against the files they name,
//! and a flipped byte anywhere (a subject file, an envelope's payload, its
//! signature) fails verification with a reason.

use std::path::{Path, PathBuf};

use assay_assure::{Bundle, sign_files, verify_bundle};
use assay_trace::SecretKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

fn setup() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mech")).unwrap();
    let a = dir.path().join("mech/probe.json");
    std::fs::write(
        &a,
        r#"{"id": "ev-1", "evidence_class": "linear_probe", "metrics": {"auroc": 0.97}}"#,
    )
    .unwrap();
    let b = dir.path().join("results.json");
    std::fs::write(&b, b"{\"passed\": true}").unwrap();
    (dir, vec![a, b])
}

#[test]
fn a_bundle_verifies_and_names_every_subject() {
    let (dir, files) = setup();
    let key = SecretKey::from_bytes(&[3; 32]);
    let bundle = sign_files(dir.path(), &files, &key).unwrap();
    let r = verify_bundle(&bundle, dir.path(), &key.public());
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.verified, ["mech/probe.json", "results.json"]);
    // The statement carries the record's id and class.
    let payload = STANDARD.decode(&bundle.envelopes[0].payload).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["predicate"]["evidence_class"], "linear_probe");
    // Round trip through JSON.
    let text = serde_json::to_string(&bundle).unwrap();
    let back: Bundle = serde_json::from_str(&text).unwrap();
    assert!(verify_bundle(&back, dir.path(), &key.public()).ok());
}

#[test]
fn any_flipped_byte_fails_verification() {
    let (dir, files) = setup();
    let key = SecretKey::from_bytes(&[3; 32]);
    let bundle = sign_files(dir.path(), &files, &key).unwrap();
    // Every byte of a subject file.
    let original = std::fs::read(&files[1]).unwrap();
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x20;
        std::fs::write(&files[1], &bad).unwrap();
        let r = verify_bundle(&bundle, dir.path(), &key.public());
        assert!(!r.ok(), "byte {i} of the subject");
        assert!(
            r.problems[0].contains("changed after signing"),
            "{:?}",
            r.problems
        );
    }
    std::fs::write(&files[1], &original).unwrap();
    // Every byte of an envelope's payload.
    let payload = STANDARD.decode(&bundle.envelopes[0].payload).unwrap();
    for i in 0..payload.len() {
        let mut bad = payload.clone();
        bad[i] ^= 1;
        let mut b = bundle.clone();
        b.envelopes[0].payload = STANDARD.encode(&bad);
        assert!(
            !verify_bundle(&b, dir.path(), &key.public()).ok(),
            "payload byte {i}"
        );
    }
    // The wrong key, and a missing file.
    let other = SecretKey::from_bytes(&[4; 32]);
    assert!(!verify_bundle(&bundle, dir.path(), &other.public()).ok());
    std::fs::remove_file(&files[0]).unwrap();
    let r = verify_bundle(&bundle, dir.path(), &key.public());
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("cannot read mech/probe.json")),
        "{:?}",
        r.problems
    );
}

#[test]
fn names_outside_the_base_are_refused_both_ways() {
    let (dir, _) = setup();
    let key = SecretKey::from_bytes(&[3; 32]);
    let outside = tempfile::NamedTempFile::new().unwrap();
    let e = sign_files(
        &dir.path().join("mech"),
        &[outside.path().to_path_buf()],
        &key,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("not inside the base directory"),
        "{e}"
    );
    // A statement naming `../x`, even correctly signed, is not read.
    let inner = dir.path().join("mech");
    let mut bundle = sign_files(dir.path(), &[dir.path().join("results.json")], &key).unwrap();
    let payload = STANDARD.decode(&bundle.envelopes[0].payload).unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    st["subject"][0]["name"] = "../results.json".into();
    bundle.envelopes[0] = assay_assure::Envelope::sign(
        "application/vnd.in-toto+json",
        &serde_json::to_vec(&st).unwrap(),
        &key,
    );
    let r = verify_bundle(&bundle, Path::new(&inner), &key.public());
    assert!(
        r.problems[0].contains("not a plain relative path"),
        "{:?}",
        r.problems
    );
    // An empty bundle attests nothing.
    let empty = sign_files(dir.path(), &[], &key).unwrap();
    assert!(!verify_bundle(&empty, dir.path(), &key.public()).ok());
}
