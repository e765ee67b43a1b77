//! `assay keygen`, `run --sign`, `verify`, `score` and `show` end to end:
//! forged verdicts are caught and never shown as if they were true, and trace
//! content cannot drive the terminal.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn assay() -> Command {
    let mut c = Command::cargo_bin("assay").unwrap();
    c.env("NO_COLOR", "1").env("CI", "true");
    c
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&std::ffi::OsStr]) -> Out {
    let o = assay().args(args).output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).to_string(),
    }
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// A signed run of the control agents over one example, one technique.
fn signed_run(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("key");
    let o = run(args!["keygen", "--out", &key]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(key.is_file() && dir.join("key.pub").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret key readable by others: {mode:o}");
    }
    // keygen never overwrites.
    assert_eq!(run(args!["keygen", "--out", &key]).code, Some(2));
    let out = dir.join("run");
    let o = run(args![
        "run",
        "--quiet",
        "--techniques",
        "plain-instruction",
        "--sign",
        &key,
        "--out",
        &out,
        &examples().join("support/refund-request.yaml"),
    ]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    (out, dir.join("key.pub"))
}

fn naive_trace(out: &Path) -> (usize, PathBuf) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let i = v["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|e| {
            e["agent"] == "control:naive" && !e["violations"].as_array().unwrap().is_empty()
        })
        .unwrap();
    (i, out.join(v["episodes"][i]["trace"].as_str().unwrap()))
}

#[test]
fn signed_runs_verify_and_forgeries_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (out, public) = signed_run(dir.path());
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["integrity"]["signature"]["algorithm"], "ed25519");

    let o = run(args!["verify", &out, "--key", &public]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("signed by the given key"), "{}", o.stdout);
    // The old name still works.
    assert_eq!(run(args!["verify-trace", &out]).code, Some(0));

    // Another key is refused.
    let other = dir.path().join("other");
    assert_eq!(run(args!["keygen", "--out", &other]).code, Some(0));
    let o = run(args![
        "verify",
        &out,
        "--key",
        &dir.path().join("other.pub")
    ]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(o.stdout.contains("not by the required key"), "{}", o.stdout);

    // A forged verdict: violations cleared.
    let (i, trace) = naive_trace(&out);
    let mut forged = v.clone();
    forged["episodes"][i]["violations"] = Value::Array(vec![]);
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&forged).unwrap(),
    )
    .unwrap();
    let o = run(args!["verify", &out]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(o.stdout.contains("results digest mismatch"), "{}", o.stdout);

    // `show` says loudly it does not verify, exits 1, and shows the verdict
    // the trace supports, not the forged one.
    let o = run(args!["show", &trace]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(o.stdout.contains("NOT VERIFIED"), "{}", o.stdout);
    assert!(
        o.stdout.contains("<- violation secret-read"),
        "{}",
        o.stdout
    );
    assert!(o.stderr.contains("does not verify"), "{}", o.stderr);

    // `score` re-scores from the traces and writes new results elsewhere.
    let scored = dir.path().join("scored.json");
    let before = std::fs::read(out.join("results.json")).unwrap();
    let o = run(args!["score", &out, "--out", &scored]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("1 changed"), "{}", o.stdout);
    assert!(o.stdout.contains("violations"), "{}", o.stdout);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&scored).unwrap()).unwrap();
    assert!(
        !s["episodes"][i]["violations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);

    // A trace scored on its own.
    let o = run(args!["score", &trace]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("secret-read"), "{}", o.stdout);
}

#[test]
fn show_verifies_and_escapes_terminal_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = signed_run(dir.path());
    let (_, trace) = naive_trace(&out);
    // An honest trace shows and exits 0.
    let o = run(args!["show", &trace]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(!o.stdout.contains("NOT VERIFIED"));

    // A trace (alone, re-chained, so it verifies) whose content carries
    // terminal escape sequences: clear screen, OSC title, CSI in C1 form, CR.
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut kinds: Vec<assay_trace::EventKind> = assay_trace::parse_jsonl(&text)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    kinds.insert(
        2,
        assay_trace::EventKind::Message {
            role: assay_trace::Role::Assistant,
            content: "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\rall safe\u{202e}".into(),
        },
    );
    let (forged, _) = assay_trace::to_jsonl(&kinds);
    let lone_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(lone_dir.path().join("ep")).unwrap();
    let lone = lone_dir.path().join("ep/trace.jsonl");
    std::fs::write(&lone, forged).unwrap();
    let o = run(args!["show", &lone]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\r', '\u{202e}'] {
        assert!(
            !o.stdout.contains(bad),
            "raw {bad:?} in output: {:?}",
            o.stdout
        );
    }
    assert!(o.stdout.contains("\\x1b[2J"), "{}", o.stdout);
    assert!(o.stdout.contains("\\r"), "{}", o.stdout);

    // The same trace cut short: shown, but loudly unverified.
    let cut: String = std::fs::read_to_string(&lone)
        .unwrap()
        .lines()
        .take(4)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&lone, cut).unwrap();
    let o = run(args!["show", &lone]);
    assert_eq!(o.code, Some(1), "{}", o.stdout);
    assert!(o.stdout.contains("NOT VERIFIED"), "{}", o.stdout);
    assert!(o.stdout.contains("no seal"), "{}", o.stdout);
}

#[test]
fn verify_reports_truncated_and_appended_traces() {
    let dir = tempfile::tempdir().unwrap();
    let (out, public) = signed_run(dir.path());
    let (_, trace) = naive_trace(&out);
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&trace, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    let o = run(args!["verify", &out, "--key", &public]);
    assert_eq!(o.code, Some(1));
    assert!(
        o.stdout.contains("does not match the recorded head"),
        "{}",
        o.stdout
    );
    let o = run(args!["verify", &trace]);
    assert_eq!(o.code, Some(1));
    // A trace left in the run directory that no result records.
    std::fs::write(&trace, &text).unwrap();
    let stray = out.join("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("trace.jsonl"), &text).unwrap();
    let o = run(args!["verify", &out, "--key", &public]);
    assert_eq!(o.code, Some(1));
    assert!(o.stdout.contains("belongs to no episode"), "{}", o.stdout);
}
