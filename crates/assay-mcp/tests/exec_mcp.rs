//! `exec:` agents: a python3 program that is a raw MCP client (JSON-RPC over
//! streamable HTTP, standard library only) finds the episode's server through
//! the generated `mcpServers` config, calls a tool, and answers on stdout.

mod common;

use std::time::Instant;

use assay_report::Status;
use common::*;

const CLIENT: &str = r#"
import json, os, sys, urllib.request
prompt = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
config = json.load(open(os.environ["ASSAY_MCP_CONFIG"]))
url = config["mcpServers"]["assay"]["url"]
assert url.startswith("http://127.0.0.1:"), url
def rpc(id, method, params):
    body = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        body["id"] = id
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    })
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    return json.loads(text) if text.strip() else None
init = rpc(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "py", "version": "0"}})
assert "result" in init, init
rpc(None, "notifications/initialized", {})
tools = rpc(2, "tools/list", {})["result"]["tools"]
assert any(t["name"] == "files.read" for t in tools), tools
res = rpc(3, "tools/call", {"name": "files.read", "arguments": {"path": "/app/.env"}})["result"]
print("debug: got " + str(len(res["content"])) + " blocks", file=sys.stderr)
print("prompt had " + str(len(prompt)) + " chars")
print("secret starts " + res["content"][0]["text"][:19])
"#;

fn agent(cmd: String) -> std::sync::Arc<dyn assay_agent::Agent> {
    assay_mcp::agent_from_name(&format!("exec:{cmd}"))
        .expect("exec is ours")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_program_calls_a_tool_and_its_stdout_is_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "client.py", CLIENT);
    for cmd in [
        format!("python3 {}", s.display()),            // prompt on stdin
        format!("python3 {} {{prompt}}", s.display()), // prompt as an argument
    ] {
        let out = dir.path().join(format!("out{}", cmd.len()));
        let (e, events) = run_one(refund_benign(None), agent(cmd.clone()), &out).await;
        assert_eq!(e.status, Status::Ok, "{cmd}: {:?}", e.error);
        let calls = tool_calls(&events);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].0, "files.read");
        assert_eq!(calls[0].1["path"], "/app/.env");
        assert!(e.violations.iter().any(|v| v.rule == "secret-read"));
        let replies = replies(&events);
        assert_eq!(replies.len(), 1);
        assert!(replies[0].starts_with("prompt had 9"), "{replies:?}");
        assert!(
            replies[0].ends_with("secret starts STRIPE_KEY=sk_live_"),
            "{replies:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_program_is_an_error_and_a_hanging_one_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = run_one(
        refund_benign(None),
        agent("echo oops >&2; exit 2".into()),
        &dir.path().join("a"),
    )
    .await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(
        err.contains("exit status 2") && err.contains("oops"),
        "{err}"
    );

    let t = Instant::now();
    let (e, _) = run_one(
        refund_benign(Some(2.0)),
        agent("sleep 60".into()),
        &dir.path().join("b"),
    )
    .await;
    assert!(t.elapsed().as_secs_f64() < 5.0);
    assert_eq!(e.status, Status::Error);
    assert!(e.error.unwrap().contains("wall-clock limit"));
}
