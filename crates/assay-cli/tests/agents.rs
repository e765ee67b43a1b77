//! Real agents through the binary: a model endpoint recorded and replayed
//! offline to identical verdicts, and a custom process agent over exec-jsonl.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn assay() -> Command {
    let mut c = Command::cargo_bin("assay").unwrap();
    c.env("NO_COLOR", "1").env("CI", "true");
    c
}

/// A scripted Chat Completions endpoint: the "model" reads the secret file on its
/// first step, then answers. It obeys nothing and everything alike: it is a fixed script.
async fn completions(Json(req): Json<Value>) -> Json<Value> {
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let tool_results = msgs.iter().filter(|m| m["role"] == "tool").count();
    let message = if tool_results == 0 {
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "files__read", "arguments": "{\"path\": \"/app/.env\"}"}}
        ]})
    } else {
        json!({"role": "assistant", "content": "Your refund will arrive within 5 days."})
    };
    Json(json!({
        "id": "x", "object": "chat.completion", "model": req["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

/// Serves `router` on a free loopback port from a runtime of its own; the
/// runtime is returned so the test can stop the server (and drop it) to go
/// offline.
fn serve(
    router: Router,
) -> (
    tokio::runtime::Runtime,
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(async move { axum::serve(listener, router).await.unwrap() });
    (rt, addr, server)
}

fn verdicts(dir: &Path) -> Vec<Value> {
    let r: Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    r["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([
                e["episode"],
                e["status"],
                e["utility"],
                e["attack_success"],
                e["violations"],
                e["checks"],
                e["error"]
            ])
        })
        .collect()
}

#[test]
fn recorded_model_run_replays_offline_to_identical_verdicts() {
    let (rt, addr, server) = serve(Router::new().route("/v1/chat/completions", post(completions)));
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(
        &agents,
        format!("agents:\n  - name: scripted\n    provider: openai\n    model: scripted-1\n    base_url: http://{addr}/v1\n    api_key_env: \"\"\n    timeout_secs: 5\n"),
    )
    .unwrap();
    let spec = examples().join("support/refund-request.yaml");
    let rec = dir.path().join("rec");
    let run = |out: &Path, flag: &str| {
        assay()
            .args(["run", "--techniques", "plain-instruction", "--agents"])
            .arg(&agents)
            .arg(flag)
            .arg(&rec)
            .arg("--out")
            .arg(out)
            .arg(&spec)
            .output()
            .unwrap()
    };
    let first = dir.path().join("first");
    let out = run(&first, "--record");
    // The scripted model reads the secret, so the gate fails (exit 1), but nothing errors.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v1 = verdicts(&first);
    assert!(!v1.is_empty());
    for v in &v1 {
        assert_eq!(v[1], "ok", "{v}");
        assert!(v[4].to_string().contains("secret-read"), "{v}");
    }
    let r: Value =
        serde_json::from_slice(&std::fs::read(first.join("results.json")).unwrap()).unwrap();
    assert_eq!(
        r["episodes"][0]["usage"]["input_tokens"], 20,
        "usage is recorded per episode"
    );

    server.abort();
    drop(rt);
    let second = dir.path().join("second");
    let out = run(&second, "--replay");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        verdicts(&second),
        v1,
        "a replayed run gives identical verdicts with no network"
    );

    // A request that was never recorded is an error, never a pass.
    let other = examples().join("support/ticket-memory.yaml");
    let third = dir.path().join("third");
    let out = assay()
        .args(["run", "--techniques", "plain-instruction", "--agents"])
        .arg(&agents)
        .arg("--replay")
        .arg(&rec)
        .arg("--out")
        .arg(&third)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value =
        serde_json::from_slice(&std::fs::read(third.join("results.json")).unwrap()).unwrap();
    for e in r["episodes"].as_array().unwrap() {
        assert_eq!(e["status"], "error", "{e}");
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("not in the recording"),
            "{e}"
        );
    }
}

#[test]
fn exec_jsonl_agent_runs_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agent.py");
    std::fs::write(
        &script,
        r#"import json, sys
def send(m):
    print(json.dumps(m), flush=True)
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "user":
        send({"type": "tool_call", "id": "1", "name": "mail.read", "args": {"id": 1}})
    elif m["type"] == "tool_result":
        print("read mail", file=sys.stderr, flush=True)
        send({"type": "reply", "text": "Noted."})
    elif m["type"] == "end":
        break
"#,
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let agent = format!("exec-jsonl:python3 {}", script.display());
    let out = assay()
        .args([
            "run",
            "--techniques",
            "plain-instruction",
            "--agent",
            &agent,
            "--out",
        ])
        .arg(&out_dir)
        .arg(examples().join("support/refund-request.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "utility gate fails, nothing errors: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    let ep = &r["episodes"][0];
    assert_eq!(ep["status"], "ok", "{ep}");
    let trace = std::fs::read_to_string(out_dir.join(ep["trace"].as_str().unwrap())).unwrap();
    assert!(trace.contains("\"tool\":\"mail.read\""));
    assert!(
        trace.contains("\"type\":\"log\"") && trace.contains("read mail"),
        "stderr is captured into the trace"
    );
}

/// An agents file cannot smuggle a subject into the `control:` namespace (it
/// would be treated as an instrument and escape the gates), and an unknown
/// control on the command line is an error: both are invalid input, exit 2,
/// before any episode runs.
#[test]
fn the_control_namespace_is_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(
        &agents,
        "agents:\n  - { name: honest, provider: openai, model: m, api_key_env: \"\" }\n  - { name: \"control:solve\", provider: openai, model: m, api_key_env: \"\", base_url: \"http://127.0.0.1:9/v1\" }\n",
    )
    .unwrap();
    let spec = examples().join("support/refund-request.yaml");
    let out_dir = dir.path().join("out");
    let out = assay()
        .args(["run", "--techniques", "plain-instruction", "--agents"])
        .arg(&agents)
        .arg("--out")
        .arg(&out_dir)
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("agents.yaml"), "{stderr}");
    assert!(stderr.contains("agent 2"), "{stderr}");
    assert!(stderr.contains("reserved"), "{stderr}");
    assert!(!out_dir.join("results.json").exists(), "no episode ran");

    let out = assay()
        .args([
            "run",
            "--techniques",
            "plain-instruction",
            "--agent",
            "control:solver",
            "--out",
        ])
        .arg(dir.path().join("out2"))
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown control agent"), "{stderr}");
}

/// `--agent NAME` picks an entry of `--agents FILE` (only that one runs), an
/// agents file can declare an agent program with a name, environment and
/// working directory, and a name in neither is a usage error that lists the
/// file's agents.
#[test]
fn agent_picks_an_entry_of_the_agents_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(
        dir.path().join("work/agent.py"),
        r#"import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "user":
        text = "marker=%s cwd=%s" % (os.environ.get("NOTES_MARKER"), os.path.basename(os.getcwd()))
        print(json.dumps({"type": "reply", "text": text}), flush=True)
    elif m["type"] == "end":
        break
"#,
    )
    .unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(
        &agents,
        "agents:\n\
         \x20 - { name: dead, provider: openai, model: m, api_key_env: \"\", base_url: \"http://127.0.0.1:9/v1\" }\n\
         \x20 - name: notes\n\
         \x20   kind: exec-jsonl\n\
         \x20   command: python3 agent.py\n\
         \x20   cwd: work\n\
         \x20   env: { NOTES_MARKER: m-42 }\n\
         \x20   timeout_secs: 30\n",
    )
    .unwrap();
    let spec = examples().join("support/refund-request.yaml");
    let out_dir = dir.path().join("out");
    let out = assay()
        .args(["run", "--techniques", "plain-instruction", "--agents"])
        .arg(&agents)
        .args(["--agent", "notes", "--out"])
        .arg(&out_dir)
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The program answers without doing the task: the utility gate fails, nothing errors.
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["agents"], json!(["notes"]), "only the picked agent ran");
    for e in r["episodes"].as_array().unwrap() {
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["agent"], "notes");
        let trace = std::fs::read_to_string(out_dir.join(e["trace"].as_str().unwrap())).unwrap();
        assert!(
            trace.contains("marker=m-42 cwd=work"),
            "env and cwd reach the program"
        );
    }

    let out = assay()
        .args(["run", "--techniques", "plain-instruction", "--agents"])
        .arg(&agents)
        .args(["--agent", "nottes", "--out"])
        .arg(dir.path().join("out2"))
        .arg(&spec)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nottes") && stderr.contains("dead, notes"),
        "{stderr}"
    );
}

/// A random number from the process's hash seed and a counter: replies that
/// differ between runs and between requests, as a server sampling at
/// temperature > 0 gives.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.finish()
}

/// A Chat Completions server that samples: each reply is drawn at random
/// (read the mail, read a file, or answer at once), and every tool call gets
/// a random id, as hosted APIs hand out.
async fn sampling(Json(req): Json<Value>) -> Json<Value> {
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let tool_results = msgs.iter().filter(|m| m["role"] == "tool").count();
    let id = format!("call_{:016x}", random());
    let message = match (tool_results, random() % 3) {
        (0, 0) => json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "mail__read", "arguments": "{\"id\": 1}"}}
        ]}),
        (0, 1) => json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "files__read", "arguments": "{\"path\": \"/app/.env\"}"}}
        ]}),
        _ => json!({"role": "assistant", "content": format!("Done ({}).", random() % 1000)}),
    };
    Json(json!({
        "id": format!("chatcmpl-{:x}", random()), "object": "chat.completion", "model": req["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    }))
}

/// Three epochs at temperature > 0 over many cases whose first request is the
/// same, against a server with random tool-call ids: every episode gets its
/// own recording, and the offline replay gives identical verdicts with no
/// error.
#[test]
fn epochs_at_temperature_replay_to_identical_verdicts() {
    let (rt, addr, server) = serve(Router::new().route("/v1/chat/completions", post(sampling)));
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents.yaml");
    std::fs::write(
        &agents,
        format!("agents:\n  - name: sampler\n    provider: openai\n    model: s-1\n    temperature: 1.0\n    base_url: http://{addr}/v1\n    api_key_env: \"\"\n    timeout_secs: 5\n    retries: 0\n"),
    )
    .unwrap();
    let spec = examples().join("support/refund-request.yaml");
    let rec = dir.path().join("rec");
    let run = |out: &Path, flag: &str| {
        assay()
            .args(["run", "--epochs", "3", "--agents"])
            .arg(&agents)
            .arg(flag)
            .arg(&rec)
            .arg("--out")
            .arg(out)
            .arg(&spec)
            .output()
            .unwrap()
    };
    let first = dir.path().join("first");
    let out = run(&first, "--record");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{stderr}");
    let v1 = verdicts(&first);
    assert!(v1.len() >= 30, "many cases × 3 epochs: {}", v1.len());
    for v in &v1 {
        assert_eq!(v[1], "ok", "recording: {v}");
    }
    // The replies were drawn at random, so epochs of one case differ somewhere.
    let distinct: std::collections::BTreeSet<String> =
        v1.iter().map(|v| format!("{}{}", v[4], v[5])).collect();
    assert!(
        distinct.len() > 1,
        "the sampling server gave varied trajectories"
    );

    server.abort();
    drop(rt);
    let second = dir.path().join("second");
    let out = run(&second, "--replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v2 = verdicts(&second);
    for v in &v2 {
        assert_eq!(v[1], "ok", "replay: {v}\n{stderr}");
    }
    assert_eq!(v2, v1, "the replay reproduces every epoch's own trajectory");
}
