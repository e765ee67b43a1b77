//! `assay assure sign` / `verify` through the binary: a signed bundle of a
//! run's files verifies, and an edited file or the wrong key fails (exit 1).

use assert_cmd::Command;

fn assay() -> Command {
    let mut c = Command::cargo_bin("assay").unwrap();
    c.env("NO_COLOR", "1").env("CI", "true");
    c
}

/// `assay assure verify BUNDLE --key PUB`: exit code and standard output.
fn verify(bundle: &std::path::Path, key: &std::path::Path) -> (Option<i32>, String) {
    let o = assay()
        .args(["assure", "verify"])
        .arg(bundle)
        .arg("--key")
        .arg(key)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_signed_bundle_verifies_and_an_edit_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("ev")).unwrap();
    std::fs::write(d.join("ev/results.json"), "{\"passed\": true}\n").unwrap();
    std::fs::write(
        d.join("ev/probe.json"),
        "{\"id\": \"p1\", \"evidence_class\": \"linear_probe\"}\n",
    )
    .unwrap();
    for k in ["a", "b"] {
        assay()
            .args(["keygen", "--out"])
            .arg(d.join(k))
            .assert()
            .success();
    }
    assay()
        .args(["assure", "sign", "--key"])
        .arg(d.join("a"))
        .arg("--base")
        .arg(d.join("ev"))
        .arg("--out")
        .arg(d.join("ev/bundle.json"))
        .arg(d.join("ev/results.json"))
        .arg(d.join("ev/probe.json"))
        .assert()
        .success();
    let (code, stdout) = verify(&d.join("ev/bundle.json"), &d.join("a.pub"));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("ok   results.json") && stdout.contains("ok   probe.json"),
        "{stdout}"
    );
    // The wrong key.
    let (code, _) = verify(&d.join("ev/bundle.json"), &d.join("b.pub"));
    assert_eq!(code, Some(1));
    // An edited evidence file.
    std::fs::write(d.join("ev/results.json"), "{\"passed\": false}\n").unwrap();
    let (code, stdout) = verify(&d.join("ev/bundle.json"), &d.join("a.pub"));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("changed after signing"),
        "{stdout}"
    );
    // Not a bundle: invalid input.
    let (code, _) = verify(&d.join("ev/probe.json"), &d.join("a.pub"));
    assert_eq!(code, Some(2));
}
