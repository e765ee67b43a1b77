//! `assay run` writes evidence records beside `results.json`: the command
//! line becomes the reproduction recipe (with an explicit seed), identical
//! runs give identical bytes, `--force` removes them, and `assay verify`
//! accepts them on a fresh run and reports a `results.json` edited after them.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel)
}

fn assay(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let o = Command::cargo_bin("assay")
        .unwrap()
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn run_into(out: &Path, force: bool) -> (Option<i32>, String) {
    let spec = example("support/refund-request.yaml");
    if force {
        assay(args![
            "run",
            "--quiet",
            "--techniques",
            "plain-instruction",
            &spec,
            "--out",
            out,
            "--force"
        ])
    } else {
        assay(args![
            "run",
            "--quiet",
            "--techniques",
            "plain-instruction",
            &spec,
            "--out",
            out
        ])
    }
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn run_writes_records_that_verify_and_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let (code, text) = run_into(&a, false);
    assert_eq!(code, Some(0), "{text}");
    let run = read(&a.join("evidence/run.json"));
    let spec = read(&a.join("evidence/spec-support-refund.json"));
    assert_eq!(run["evidence_class"], "red_team");
    assert_eq!(run["parts"], serde_json::json!([spec["id"]]));
    assert_eq!(
        run["artifacts"][0]["sha256"].as_str().unwrap(),
        assay_sha256(&a.join("results.json"))
    );
    assert_eq!(run["catalog"]["source"], "embedded");
    assert_eq!(
        run["parameters"]["techniques"],
        serde_json::json!(["plain-instruction"])
    );
    let cmd: Vec<String> = run["reproduction"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cmd[0], "assay");
    assert_eq!(cmd[1], "run");
    assert_eq!(&cmd[cmd.len() - 2..], ["--seed", "0"], "{cmd:?}");

    let (code, text) = assay(args!["verify", &a]);
    assert_eq!(code, Some(0), "{text}");

    // --force re-runs into the same folder; the records come back with the
    // same results and cases (the command now names --force, so the ids differ).
    let (code, text) = run_into(&a, false);
    assert_eq!(code, Some(2), "a used folder needs --force: {text}");
    let (code, text) = run_into(&a, true);
    assert_eq!(code, Some(0), "{text}");
    let after_force = read(&a.join("evidence/spec-support-refund.json"));
    assert_eq!(after_force["results"], spec["results"]);
    assert_eq!(after_force["cases"], spec["cases"]);

    // A second folder, same command otherwise: identical results digest and
    // records except for the command (its --out differs).
    let b = dir.path().join("b");
    let (code, text) = run_into(&b, false);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        std::fs::read(a.join("results.json")).unwrap(),
        std::fs::read(b.join("results.json")).unwrap()
    );
    let sb = read(&b.join("evidence/spec-support-refund.json"));
    assert_eq!(sb["artifacts"], spec["artifacts"]);
    assert_eq!(sb["data"], spec["data"]);

    // results.json edited after the records: verify reports it against the digest.
    let results = b.join("results.json");
    let mut bytes = std::fs::read(&results).unwrap();
    bytes.push(b'\n');
    std::fs::write(&results, bytes).unwrap();
    let (code, text) = assay(args!["verify", &b]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("results.json changed after the record was written"),
        "{text}"
    );
}

#[test]
fn an_identical_command_gives_byte_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    // Same relative --out from two working directories: the argv is identical.
    for sub in ["x", "y"] {
        let cwd = dir.path().join(sub);
        std::fs::create_dir_all(&cwd).unwrap();
        let o = Command::cargo_bin("assay")
            .unwrap()
            .current_dir(&cwd)
            .env("NO_COLOR", "1")
            .args(args![
                "run",
                "--quiet",
                "--techniques",
                "plain-instruction",
                &example("ops/log-rotation.yaml"),
                "--out",
                "out"
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
    for name in ["run.json", "spec-ops-log-rotation.json"] {
        let x = std::fs::read(dir.path().join("x/out/evidence").join(name)).unwrap();
        let y = std::fs::read(dir.path().join("y/out/evidence").join(name)).unwrap();
        assert_eq!(x, y, "{name} differs between identical runs");
    }
}

fn assay_sha256(p: &Path) -> String {
    assay_trace::sha256_hex(&std::fs::read(p).unwrap())
}
