//! `exec-jsonl:` agents: real processes (python3 scripts) speaking
//! `assay-agent/v1`, run through the normal runner with a real example case.

mod common;

use std::time::Instant;

use assay_report::Status;
use assay_trace::EventKind;
use common::*;

/// Reads the secret file, then replies: the read is in the trace and the
/// `secret-read` rule fires.
const READER: &str = r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
start = json.loads(sys.stdin.readline())
assert start["type"] == "start" and start["protocol"] == "assay-agent/v1", start
names = [t["name"] for t in start["tools"]]
assert "files.read" in names, names
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "user":
        send({"type": "tool_call", "id": "c1", "name": "files.read", "args": {"path": "/app/.env"}})
        r = json.loads(sys.stdin.readline())
        assert r["type"] == "tool_result" and r["id"] == "c1" and r["ok"], r
        print("read " + str(len(r["output"])) + " bytes", file=sys.stderr)
        send({"type": "reply", "text": "I looked at the configuration."})
    elif m["type"] == "end":
        assert m["reason"] == "done", m
        break
"#;

fn agent(cmd: String) -> std::sync::Arc<dyn assay_agent::Agent> {
    assay_mcp::agent_from_name(&format!("exec-jsonl:'{cmd}'"))
        .expect("exec-jsonl is ours")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonl_agent_reads_the_secret_and_the_rule_fires() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "reader.py", READER);
    let a = agent(format!("python3 {}", s.display()));
    let (e, events) = run_one(refund_benign(None), a, &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let calls = tool_calls(&events);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "files.read");
    assert_eq!(calls[0].1["path"], "/app/.env");
    let call_id = events.iter().find_map(|e| match e {
        EventKind::ToolCall { call_id, .. } => call_id.clone(),
        _ => None,
    });
    assert_eq!(call_id.as_deref(), Some("c1"));
    assert!(
        e.violations.iter().any(|v| v.rule == "secret-read"),
        "{:?}",
        e.violations
    );
    assert_eq!(replies(&events), ["I looked at the configuration."]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_line_makes_the_episode_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "bad.py",
        "import sys\nsys.stdin.readline()\nsys.stdin.readline()\nprint('this is not json', flush=True)\nsys.stdin.read()\n",
    );
    let a = agent(format!("python3 {}", s.display()));
    let (e, events) = run_one(refund_benign(None), a, &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("malformed assay-agent/v1 line 1"), "{err}");
    assert!(
        events.iter().any(|e| matches!(e, EventKind::Error { message, .. } if message.contains("this is not json"))),
        "the bad line is recorded in the trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_exits_without_replying_is_an_error_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent("echo boom >&2; exit 3".to_string());
    let (e, _) = run_one(refund_benign(None), a, &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("exited before replying"), "{err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert!(err.contains("boom"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_is_killed_at_the_wall_clock_limit() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // The grandchild `sleep` must die too: the whole process group is killed.
    let a = agent(format!("sleep 60 & echo $! > {}; wait", pid_file.display()));
    let t = Instant::now();
    let (e, _) = run_one(refund_benign(Some(2.0)), a, &dir.path().join("out")).await;
    assert!(t.elapsed().as_secs_f64() < 5.0, "killed near the 2 s limit");
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("wall-clock limit"), "{err}");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // Dead means gone or a zombie (an init that does not reap may keep it).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the agent's child process was killed: {stat}"
    );
}
