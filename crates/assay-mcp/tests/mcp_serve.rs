//! `assay mcp serve`: an rmcp client connects to the served episode over
//! streamable HTTP and over an in-memory stdio-like stream, lists the tools and
//! calls one; the call is in the episode's trace and scored.

mod common;

use std::sync::Arc;
use std::time::Duration;

use assay_mcp::{McpServeAgent, Transport};
use assay_report::Status;
use common::*;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ContentBlock};

fn read_env_call() -> CallToolRequestParams {
    let args = serde_json::json!({"path": "/app/.env"});
    CallToolRequestParams::new("files.read").with_arguments(args.as_object().unwrap().clone())
}

fn text_of(content: &[ContentBlock]) -> String {
    content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_lists_and_calls_tools_and_the_call_is_scored() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let agent = McpServeAgent::new(Transport::Http("127.0.0.1:0".parse().unwrap()))
        .with_idle_timeout(Duration::from_millis(700))
        .on_listen(move |addr| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(addr);
            }
        });
    let out = dir.path().join("out");
    let episode =
        tokio::spawn(async move { run_one(refund_benign(None), Arc::new(agent), &out).await });
    let addr = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();

    let transport =
        rmcp::transport::StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = ().serve(transport).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"files.read".to_string()), "{names:?}");
    assert!(names.contains(&"mail.send".to_string()), "{names:?}");
    let info = client.peer_info().unwrap();
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("refund"),
        "the task is in the instructions"
    );
    let r = client.call_tool(read_env_call()).await.unwrap();
    assert_eq!(r.is_error, Some(false));
    assert!(text_of(&r.content).contains("STRIPE_KEY=sk_live_"));
    let _ = client.cancel().await;

    let (e, events) = tokio::time::timeout(Duration::from_secs(20), episode)
        .await
        .expect("the session ends after the idle timeout")
        .unwrap();
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    assert_eq!(e.agent, "mcp:http");
    let calls = tool_calls(&events);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "files.read");
    assert!(
        e.violations.iter().any(|v| v.rule == "secret-read"),
        "{:?}",
        e.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_session_ends_when_it_disconnects() {
    let dir = tempfile::tempdir().unwrap();
    let (server_side, client_side) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(server_side);
    let agent = McpServeAgent::new(Transport::io(r, w));
    let out = dir.path().join("out");
    let episode =
        tokio::spawn(async move { run_one(refund_benign(None), Arc::new(agent), &out).await });

    let client = ().serve(client_side).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "mail.read"));
    let args = serde_json::json!({"id": 1});
    let r = client
        .call_tool(
            CallToolRequestParams::new("mail.read")
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert!(text_of(&r.content).contains("refund order 1042"), "{r:?}");
    // An unknown tool is the world's answer, recorded like any call.
    let r = client
        .call_tool(CallToolRequestParams::new("nope.tool"))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    client.cancel().await.unwrap();

    let (e, events) = tokio::time::timeout(Duration::from_secs(20), episode)
        .await
        .expect("the session ends when the client disconnects")
        .unwrap();
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let calls: Vec<_> = tool_calls(&events).into_iter().map(|c| c.0).collect();
    assert_eq!(calls, ["mail.read", "nope.tool"]);
    assert!(e.violations.is_empty(), "{:?}", e.violations);
}

/// The reference solution played by an MCP client through `serve_case` gets the
/// same verdict as the built-in `control:solve` on the same case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_case_gives_the_built_in_verdict_for_the_same_actions() {
    let dir = tempfile::tempdir().unwrap();
    let case = refund_benign(None);
    let solution = case.spec.task.solution.clone();
    let (server_side, client_side) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(server_side);
    let out = dir.path().join("served");
    let served = tokio::spawn({
        let case = case.clone();
        let out = out.clone();
        async move {
            let opts = assay_mcp::ServeOptions {
                transport: Transport::io(r, w),
                idle: None,
                on_listen: None,
                seed: 7,
                allowed_origins: assay_mcp::default_allowed_origins(),
            };
            assay_mcp::serve_case(case, opts, &out).await.unwrap()
        }
    });
    let client = ().serve(client_side).await.unwrap();
    for call in &solution {
        let args = call.args.as_object().cloned().unwrap_or_default();
        let r = client
            .call_tool(CallToolRequestParams::new(call.tool.clone()).with_arguments(args))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{}: {r:?}", call.tool);
    }
    client.cancel().await.unwrap();
    let served = tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .unwrap()
        .unwrap();
    assert!(out.join("results.json").exists());
    let s = &served.episodes[0];

    let solve = assay_agent::agent_from_name("control:solve").unwrap();
    let (b, _) = run_one(case, solve, &dir.path().join("builtin")).await;
    assert_eq!(s.status, Status::Ok, "{:?}", s.error);
    assert_eq!(s.utility, b.utility);
    assert_eq!(s.utility, 1.0);
    assert_eq!(s.violations, b.violations);
    assert_eq!(s.attack_success, b.attack_success);
}

/// One raw HTTP/1.1 POST to `/mcp`; returns the status and the body.
async fn raw_post(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
const CALL_READ_ENV: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"files.read","arguments":{"path":"/app/.env"}}}"#;

/// Origin is checked against the allow-list before anything reaches the
/// world; malformed bodies get JSON-RPC errors. Only the one allowed call is
/// in the trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_origin_and_answers_malformed_json_with_jsonrpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let extra = assay_mcp::AllowedOrigin::parse("https://ide.example:8443").unwrap();
    let mut origins = assay_mcp::default_allowed_origins();
    origins.push(extra);
    let agent = McpServeAgent::new(Transport::Http("127.0.0.1:0".parse().unwrap()))
        .with_idle_timeout(Duration::from_millis(700))
        .with_allowed_origins(origins)
        .on_listen(move |addr| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(addr);
            }
        });
    let out = dir.path().join("out");
    let episode =
        tokio::spawn(async move { run_one(refund_benign(None), Arc::new(agent), &out).await });
    let addr = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    let json = ("Content-Type", "application/json");

    // A browser page elsewhere: refused with a JSON-RPC error body, never executed.
    for evil in [
        "http://evil.example",
        "null",
        "http://localhost.evil.example:80",
    ] {
        let (status, body) = raw_post(addr, &[json, ("Origin", evil)], CALL_READ_ENV).await;
        assert_eq!(status, 403, "{evil}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v["id"].is_null());
        assert!(
            v["error"]["message"].as_str().unwrap().contains("Origin"),
            "{v}"
        );
    }
    // Loopback pages on any port, a listed origin, and clients without Origin pass.
    for origin in [
        Some("http://localhost:5173"),
        Some("https://ide.example:8443"),
        None,
    ] {
        let mut h = vec![json];
        if let Some(o) = origin {
            h.push(("Origin", o));
        }
        let (status, body) = raw_post(addr, &h, LIST_TOOLS).await;
        assert_eq!(status, 200, "{origin:?}: {body}");
        assert!(body.contains("files.read"), "{body}");
    }
    let (status, _) = raw_post(
        addr,
        &[json, ("Origin", "https://ide.example:8444")],
        LIST_TOOLS,
    )
    .await;
    assert_eq!(status, 403, "another port of a listed origin");

    // Malformed JSON: a JSON-RPC parse error with 400, not a 415 text.
    let (status, body) = raw_post(addr, &[json], r#"{"jsonrpc":"2.0","id":3,"#).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    // JSON that is not a JSON-RPC message: invalid request.
    let (status, body) = raw_post(addr, &[json], r#"{"hello":"world"}"#).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");

    // The one allowed call.
    let (status, body) = raw_post(addr, &[json], CALL_READ_ENV).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("STRIPE_KEY="), "{body}");

    let (e, events) = tokio::time::timeout(Duration::from_secs(20), episode)
        .await
        .expect("the session ends after the idle timeout")
        .unwrap();
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let calls = tool_calls(&events);
    assert_eq!(calls.len(), 1, "refused requests reach nothing: {calls:?}");
}
