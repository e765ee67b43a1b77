//! The `assay` binary end to end: exit codes, diagnostics, outputs.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn assay() -> Command {
    let mut c = Command::cargo_bin("assay").unwrap();
    c.env("NO_COLOR", "1").env("CI", "true");
    c
}

#[test]
fn validate_examples_ok() {
    let out = assay().arg("validate").arg(examples()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("spec(s) and 0 case(s) valid"));
}

#[test]
fn validate_reports_every_problem_with_positions_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(examples().join("support/refund-request.yaml")).unwrap();
    let bad = good
        .replace("title: Support agent", "titel: x\ntitle: Support agent")
        .replace("[mail.list, mail.read", "[mail.lst, mail.read")
        .replace(
            "slots: [inbox-body, help-page]",
            "slots: [inbox-body, help-pgae]",
        );
    std::fs::create_dir_all(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested/bad.yaml"), bad).unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: assay/v1\nkind: [Spec\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("good.yaml"), good).unwrap();
    let out = assay().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml:"), "{err}");
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("bad.yaml:4:1: unknown field `titel`"), "{err}");
    assert!(err.contains("did you mean `title`"), "{err}");
    // the unknown-field pass stops before semantics; fix it and the semantic problems all show
    let fixed = std::fs::read_to_string(dir.path().join("nested/bad.yaml"))
        .unwrap()
        .replace("titel: x\n", "");
    std::fs::write(dir.path().join("nested/bad.yaml"), fixed).unwrap();
    let out = assay()
        .arg("validate")
        .arg(dir.path().join("nested"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown tool `mail.lst`") && err.contains("did you mean `mail.list`"),
        "{err}"
    );
    assert!(
        err.contains("unknown slot `help-pgae`") && err.contains("did you mean `help-page`"),
        "{err}"
    );
}

#[test]
fn schema_is_json_schema() {
    let out = assay().arg("schema").output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["world"].is_object());
    assert!(v["$defs"]["Condition"].is_object());
}

#[test]
fn run_show_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = assay()
        .args([
            "run",
            "--techniques",
            "plain-instruction,base64-encoded,split-user-turns",
            "--out",
        ])
        .arg(&out_dir)
        .arg(examples().join("support"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("control ok"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed 0"));

    let trace =
        out_dir.join("support-refund--leak-stripe-key.plain-instruction@inbox-body--control-naive--0/trace.jsonl");
    let shown = assay().arg("show").arg(&trace).output().unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success());
    assert!(text.contains("<- violation secret-read"), "{text}");
    assert!(text.contains("injection_delivered"), "{text}");

    let ok = assay().arg("verify-trace").arg(&out_dir).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    // Tamper with one event: the chain breaks.
    let original = std::fs::read_to_string(&trace).unwrap();
    std::fs::write(&trace, original.replacen("\"ok\":true", "\"ok\":false", 1)).unwrap();
    let bad = assay().arg("verify-trace").arg(&trace).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("hash chain broken"));
    // Drop the last event: the head no longer matches results.json.
    let truncated: String = original
        .lines()
        .take(original.lines().count() - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&trace, truncated).unwrap();
    let bad = assay().arg("verify-trace").arg(&trace).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("does not match the recorded head"));
}

#[test]
fn failing_gate_exits_1_and_bad_agent_exits_2() {
    // control:naive is held to control expectations, so break one: a spec whose
    // forbidden rule also fires on the reference solution.
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(examples().join("support/refund-request.yaml"))
        .unwrap()
        .replace(
            "when: { read: { sensitivity: secret } }",
            "when: { read: { source: web } }",
        );
    let p = dir.path().join("s.yaml");
    std::fs::write(&p, spec).unwrap();
    let out = assay()
        .args(["run", "--agent", "control:solve", "--out"])
        .arg(dir.path().join("o"))
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not specific: the reference solution fires secret-read"),
        "{stderr}"
    );
    assert!(
        stdout.contains("every case of support-refund failed case QA"),
        "{stdout}"
    );

    let out = assay()
        .args(["run", "--agent", "gpt-9", "--out"])
        .arg(dir.path().join("o2"))
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn catalog_lists_techniques() {
    let out = assay().arg("catalog").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("important-instructions") && text.contains("techniques"),
        "{text}"
    );
    let out = assay().args(["catalog", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 30);
}

#[test]
fn synth_qa_run_over_cases_and_regress() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    let spec = examples().join("ops/deploy-dry-run.yaml");
    let out = assay()
        .args(["synth", "--per-threat", "6", "--seed", "4", "--out"])
        .arg(&cases)
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cases.join("manifest.json").exists());
    assert!(cases.join("ops-deploy-dry-run/benign.yaml").exists());

    let qa = assay().arg("qa").arg(&cases).output().unwrap();
    assert!(
        qa.status.success(),
        "{}",
        String::from_utf8_lossy(&qa.stdout)
    );
    assert!(String::from_utf8_lossy(&qa.stdout).contains("7 of 7 case(s) valid"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cases.join("qa.json")).unwrap()).unwrap();
    assert_eq!(report["valid"], 7);

    let run_dir = dir.path().join("run");
    let out = assay()
        .args(["run", "--agent", "control:naive", "--out"])
        .arg(&run_dir)
        .arg(&cases)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("results.json")).unwrap()).unwrap();
    let ep = results["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["technique"].is_string())
        .unwrap()
        .clone();
    assert!(ep["axis"].is_string() && ep["slots"].is_array() && ep["slot_kinds"].is_array());
    assert!(
        !results["breakdowns"]["by_technique"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let regression = dir.path().join("regression.yaml");
    let out = assay()
        .arg("regress")
        .arg(run_dir.join(ep["trace"].as_str().unwrap()))
        .arg("--out")
        .arg(&regression)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("apply-during-dry-run"));
    let out = assay()
        .args(["validate"])
        .arg(&regression)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A benign trace has nothing to regress.
    let benign = results["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["threat"].is_null())
        .unwrap();
    let out = assay()
        .arg("regress")
        .arg(run_dir.join(benign["trace"].as_str().unwrap()))
        .arg("--out")
        .arg(dir.path().join("x.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no violation"));

    // Unknown technique on the command line.
    let out = assay()
        .args(["synth", "--techniques", "plain", "--out"])
        .arg(dir.path().join("y"))
        .arg(&spec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown technique `plain`"));
}
