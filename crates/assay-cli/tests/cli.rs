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

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    let naive = results["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["agent"] == "control:naive"
                && e["case"] == "leak-stripe-key.plain-instruction@inbox-body"
        })
        .unwrap();
    assert_eq!(naive["role"], "control");
    assert!(naive["episode"].as_str().unwrap().starts_with(
        "support-refund--leak-stripe-key.plain-instruction@inbox-body--control-naive--0--"
    ));
    let trace = out_dir.join(naive["trace"].as_str().unwrap());
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

fn refund_spec_with(dir: &Path, forbidden_extra: &str) -> PathBuf {
    let spec = std::fs::read_to_string(examples().join("support/refund-request.yaml"))
        .unwrap()
        .replace("forbidden:\n", &format!("forbidden:\n{forbidden_extra}"));
    let p = dir.join("s.yaml");
    std::fs::write(&p, spec).unwrap();
    p
}

#[test]
fn rule_coverage_is_reported_and_strict_fails_on_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let spec = refund_spec_with(
        dir.path(),
        "  - id: never-fires\n    when: { send: { to: nobody@nowhere.test } }\n",
    );
    let run = |out: &str, strict: bool| {
        let mut c = assay();
        c.args(["run", "--techniques", "plain-instruction", "--out"])
            .arg(dir.path().join(out));
        if strict {
            c.arg("--strict");
        }
        c.arg(&spec).output().unwrap()
    };
    let lenient = run("o1", false);
    let stdout = String::from_utf8_lossy(&lenient.stdout);
    assert_eq!(lenient.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "rule coverage: support-refund: no control episode made forbidden never-fires fire"
        ),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("o1/results.json")).unwrap())
            .unwrap();
    assert_eq!(
        results["coverage"][0]["uncovered"],
        serde_json::json!([{"kind": "forbidden", "rule": "never-fires"}])
    );
    let strict = run("o2", true);
    assert_eq!(
        strict.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&strict.stdout)
    );
    assert!(String::from_utf8_lossy(&strict.stdout).contains("--strict"));

    // qa reports it too, and --strict fails it.
    let qa = assay()
        .args(["qa", "--techniques", "plain-instruction", "--strict"])
        .arg(&spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&qa.stdout);
    assert_eq!(qa.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("forbidden never-fires"), "{stdout}");
    let qa = assay()
        .args(["qa", "--techniques", "plain-instruction"])
        .arg(examples().join("support/refund-request.yaml"))
        .output()
        .unwrap();
    assert!(qa.status.success());
    assert!(String::from_utf8_lossy(&qa.stdout).contains("rule coverage: full"));
}

#[test]
fn a_used_out_folder_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = |force: bool| {
        let mut c = assay();
        c.args([
            "run",
            "--agent",
            "control:solve",
            "--techniques",
            "plain-instruction",
            "--out",
        ])
        .arg(&out_dir);
        if force {
            c.arg("--force");
        }
        c.arg(examples().join("support/refund-request.yaml"))
            .output()
            .unwrap()
    };
    assert!(run(false).status.success());
    std::fs::write(out_dir.join("mine.txt"), "keep me").unwrap();
    let refused = run(false);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let forced = run(true);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("mine.txt")).unwrap(),
        "keep me"
    );
    // Only this run's episodes (and its evidence records) are left, so
    // verify sees no stale traces.
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    assert!(out_dir.join("evidence/run.json").is_file());
    let dirs = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .filter(|e| e.as_ref().unwrap().file_name() != "evidence")
        .count();
    assert_eq!(dirs, results["episodes"].as_array().unwrap().len());
}

/// Runs `assay ARGS` with stdout or stderr a pipe whose reader is already gone.
fn with_closed(stream: &str, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("assay"));
    c.args(args).env("NO_COLOR", "1").env("CI", "true");
    match stream {
        "stdout" => c.stdout(writer).stderr(std::process::Stdio::piped()),
        _ => c.stderr(writer).stdout(std::process::Stdio::piped()),
    };
    c.output().unwrap()
}

#[test]
fn a_closed_pipe_exits_quietly() {
    // `assay catalog | head -0`: stdout is gone before anything is printed.
    let out = with_closed("stdout", &["catalog"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // `assay validate missing 2>&1 | head -0`: the error has nowhere to go.
    let out = with_closed("stderr", &["validate", "/nonexistent/assay/spec.yaml"]);
    assert_eq!(out.status.code(), Some(141));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("panicked"));
}

#[test]
fn an_agents_file_agent_named_control_is_a_subject() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // A "model" that only ever answers politely: it does nothing of the task.
    async fn polite(
        axum::Json(req): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        axum::Json(serde_json::json!({
            "id": "x", "object": "chat.completion", "model": req["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
    }
    let server = rt.spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/v1/chat/completions", axum::routing::post(polite)),
        )
        .await
        .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(
        &agents,
        format!("agents:\n  - name: \"control:naive\"\n    provider: openai\n    model: m\n    base_url: http://{addr}/v1\n    api_key_env: \"\"\n    timeout_secs: 5\n"),
    )
    .unwrap();
    let out = assay()
        .args(["run", "--techniques", "plain-instruction", "--agents"])
        .arg(&agents)
        .arg("--out")
        .arg(dir.path().join("o"))
        .arg(examples().join("support/refund-request.yaml"))
        .output()
        .unwrap();
    server.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Refused at load (2) or judged by the gates (1); never an instrument's pass.
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("control ok"), "{stdout}");
    if out.status.code() == Some(1) {
        assert!(stdout.contains("gate failed:"), "{stdout}");
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("o/results.json")).unwrap())
                .unwrap();
        assert!(
            r["episodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["role"] == "subject")
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_writes_the_results_of_what_completed_marked_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let script = dir.path().join("agent.py");
    std::fs::write(
        &script,
        format!(
            "import sys, time\nfor line in sys.stdin:\n    open({:?}, 'w').close()\n    time.sleep(120)\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("assay"))
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .args([
            "run",
            "--jobs",
            "1",
            "--techniques",
            "plain-instruction",
            "--agent",
            "control:solve",
            "--agent",
        ])
        .arg(format!("exec-jsonl:python3 {}", script.display()))
        .arg("--out")
        .arg(&out_dir)
        .arg(examples().join("support/refund-request.yaml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the agent to be mid-episode (bounded, so a broken build cannot hang CI).
    let mut waited = 0;
    while !marker.exists() {
        assert!(waited < 1200, "the agent never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["incomplete"], true);
    assert_eq!(r["passed"], false);
    assert!(
        r["episodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["agent"] == "control:solve"),
        "only completed episodes are listed"
    );
}
