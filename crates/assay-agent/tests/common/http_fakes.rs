//! Fakes for the HTTP tests (record/replay, error policy): servers that behave
//! like real model APIs (random ids, replies that vary, 400 on a history that
//! names an unknown call), a scripted server with arbitrary statuses, a port
//! that refuses connections, and an `Env` whose episode key the test chooses.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assay_agent::{
    CaseView, Env, ModelConfig, Provider, Stop, ToolResult, ToolSpec, Usage, UserTurn,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// A fresh random number (std's per-process random hasher keys).
pub fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Which API a fake speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    /// Both, for tests that must hold for either.
    pub const ALL: [Api; 2] = [Api::OpenAi, Api::Anthropic];

    /// An agent config for this API at `base` (scheme://host:port), with a
    /// short timeout and backoff so failures resolve quickly.
    pub fn config(self, base: &str) -> ModelConfig {
        let (provider, url) = match self {
            Api::OpenAi => (Provider::Openai, format!("{base}/v1")),
            Api::Anthropic => (Provider::Anthropic, base.to_string()),
        };
        let mut c = ModelConfig::new("http-test-agent", provider, "test-model");
        c.base_url = Some(url);
        c.timeout_secs = Some(5.0);
        c.retries = Some(2);
        c.backoff_ms = Some(5);
        c.temperature = Some(0.8);
        c
    }
}

/// Starts an axum app on 127.0.0.1 and returns its base URL and task.
async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// A model server like a hosted one at temperature > 0: every tool call gets
/// a fresh random id, every reply random text, and a request whose history
/// answers a call id the previous assistant turn did not make is refused with
/// HTTP 400, as OpenAI and Anthropic do. A user message makes it call
/// `files__read` once; a tool result makes it answer with text.
pub struct RandomServer {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RandomServer {
    pub async fn start() -> RandomServer {
        let requests = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/{*path}", post(random_reply))
            .with_state(requests.clone());
        let (url, task) = serve(app).await;
        RandomServer {
            url,
            requests,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn bad_request(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"type": "invalid_request_error", "message": msg}})),
    )
        .into_response()
}

async fn random_reply(State(n): State<Arc<AtomicUsize>>, uri: Uri, body: Bytes) -> Response {
    n.fetch_add(1, Ordering::SeqCst);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("body is not JSON".into());
    };
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let tokens = 10 * msgs.len() as u64;
    if uri.path() == "/v1/chat/completions" {
        // Every tool message must answer a call of the assistant turn before it.
        let mut open: Vec<String> = Vec::new();
        for m in &msgs {
            match m["role"].as_str() {
                Some("assistant") => {
                    open = m["tool_calls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["id"].as_str().map(str::to_string))
                        .collect();
                }
                Some("tool") => {
                    let id = m["tool_call_id"].as_str().unwrap_or("");
                    if !open.iter().any(|o| o == id) {
                        return bad_request(format!(
                            "Invalid parameter: 'tool_call_id' {id} does not answer a preceding 'tool_calls'"
                        ));
                    }
                }
                _ => {}
            }
        }
        let last_is_tool = msgs.last().is_some_and(|m| m["role"] == "tool");
        let message = if last_is_tool {
            json!({"role": "assistant", "content": format!("Reply {:x}", random())})
        } else {
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{:x}", random()), "type": "function",
                "function": {"name": "files__read", "arguments": format!("{{\"path\": \"/f{}\"}}", random() % 1000)}}]})
        };
        let finish = if last_is_tool { "stop" } else { "tool_calls" };
        return axum::Json(json!({
            "id": format!("chatcmpl-{:x}", random()), "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": tokens, "completion_tokens": 5}
        }))
        .into_response();
    }
    if uri.path() == "/v1/messages" {
        let mut open: Vec<String> = Vec::new();
        for m in &msgs {
            let blocks = m["content"].as_array().cloned().unwrap_or_default();
            if m["role"] == "assistant" {
                open = blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_use")
                    .filter_map(|b| b["id"].as_str().map(str::to_string))
                    .collect();
            } else {
                for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                    let id = b["tool_use_id"].as_str().unwrap_or("");
                    if !open.iter().any(|o| o == id) {
                        return bad_request(format!(
                            "messages: unexpected `tool_use_id` found in `tool_result` blocks: {id}"
                        ));
                    }
                }
            }
        }
        let last_is_result = msgs.last().is_some_and(|m| {
            m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
        });
        let (content, stop) = if last_is_result {
            (
                json!([{"type": "text", "text": format!("Reply {:x}", random())}]),
                "end_turn",
            )
        } else {
            (
                json!([{"type": "tool_use", "id": format!("toolu_{:x}", random()),
                    "name": "files__read", "input": {"path": format!("/f{}", random() % 1000)}}]),
                "tool_use",
            )
        };
        return axum::Json(json!({
            "id": format!("msg_{:x}", random()), "type": "message", "role": "assistant",
            "content": content, "stop_reason": stop,
            "usage": {"input_tokens": tokens, "output_tokens": 5}
        }))
        .into_response();
    }
    (StatusCode::NOT_FOUND, "no such route").into_response()
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    /// An error status with a JSON error body.
    pub fn error(status: u16, message: &str) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: json!({"error": {"message": message}}).to_string(),
        }
    }

    /// 200 with this JSON.
    pub fn ok(v: Value) -> Answer {
        Answer {
            status: 200,
            headers: vec![],
            body: v.to_string(),
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// A text reply in the API's shape.
pub fn text(api: Api, text: &str) -> Value {
    match api {
        Api::OpenAi => json!({
            "id": format!("chatcmpl-{:x}", random()), "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3}
        }),
        Api::Anthropic => json!({
            "id": format!("msg_{:x}", random()), "type": "message", "role": "assistant",
            "stop_reason": "end_turn", "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 11, "output_tokens": 3}
        }),
    }
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    seen: Mutex<Vec<Instant>>,
}

/// A server answering requests with a script, in order; once the script is
/// exhausted every request gets HTTP 500 with a fresh random body (a server
/// in trouble, not one rejecting the request).
pub struct Scripted {
    pub url: String,
    script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    pub async fn start(answers: Vec<Answer>) -> Scripted {
        let script = Arc::new(Script {
            answers: Mutex::new(answers.into()),
            ..Default::default()
        });
        let app = Router::new()
            .route("/{*path}", post(scripted))
            .with_state(script.clone());
        let (url, task) = serve(app).await;
        Scripted { url, script, task }
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.script.seen.lock().unwrap().len()
    }

    /// When each request arrived.
    pub fn times(&self) -> Vec<Instant> {
        self.script.seen.lock().unwrap().clone()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn scripted(State(s): State<Arc<Script>>) -> Response {
    s.seen.lock().unwrap().push(Instant::now());
    let next = s.answers.lock().unwrap().pop_front();
    let a = next.unwrap_or_else(|| Answer::error(500, &format!("overloaded {:x}", random())));
    let mut r = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in a.headers {
        r.headers_mut().insert(k, v.parse().unwrap());
    }
    r
}

/// A local port nothing listens on: connecting is refused at once.
pub fn dead_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// A server that accepts each connection and closes it without a word (a
/// crashed backend behind a live port), counting the connections.
pub struct Hangup {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hangup {
    pub async fn start() -> Hangup {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let n = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                drop(sock);
            }
        });
        Hangup {
            url,
            connections,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// An `Env` with a chosen episode key that records calls, replies and usage.
/// Like the runner, it fails unknown tools and non-object arguments.
pub struct KeyedEnv {
    key: String,
    system: String,
    tools: Vec<ToolSpec>,
    turns: VecDeque<String>,
    case: CaseView,
    pub calls: Vec<(Option<String>, String, Value)>,
    pub replies: Vec<String>,
    pub usage: Vec<Usage>,
    pub caps: Vec<(String, f64, String)>,
}

impl KeyedEnv {
    pub fn new(key: &str, turns: &[&str]) -> KeyedEnv {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/support/refund-request.yaml");
        let spec = assay_spec::load_file(&path).unwrap().spec;
        let tool = |name: &str| ToolSpec {
            name: name.into(),
            description: format!("The {name} tool."),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        };
        KeyedEnv {
            key: key.to_string(),
            system: "You are a careful assistant.".into(),
            tools: vec![tool("files.read"), tool("mail.send")],
            turns: turns.iter().map(|t| t.to_string()).collect(),
            case: CaseView {
                spec: Arc::new(spec),
                threat: None,
            },
            calls: Vec::new(),
            replies: Vec::new(),
            usage: Vec::new(),
            caps: Vec::new(),
        }
    }
}

impl Env for KeyedEnv {
    fn system_prompt(&self) -> &str {
        &self.system
    }
    fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }
    fn episode_key(&self) -> String {
        self.key.clone()
    }
    fn next_user_turn(&mut self) -> Option<UserTurn> {
        self.turns.pop_front().map(|text| UserTurn {
            text,
            delivered: vec![],
        })
    }
    fn call_tool(
        &mut self,
        call_id: Option<String>,
        name: &str,
        args: Value,
    ) -> Result<ToolResult, Stop> {
        if self.calls.len() >= 50 {
            return Err(Stop("tool_calls limit reached".into()));
        }
        self.calls.push((call_id, name.to_string(), args.clone()));
        let ok = self.tools.iter().any(|t| t.name == name) && args.is_object();
        Ok(ToolResult {
            ok,
            output: if ok {
                format!("{name} -> {args}")
            } else {
                format!("cannot call `{name}` with {args}")
            },
            delivered: vec![],
        })
    }
    fn reply(&mut self, text: &str) {
        self.replies.push(text.to_string());
    }
    fn case(&self) -> &CaseView {
        &self.case
    }
    fn record_usage(&mut self, usage: Usage) {
        self.usage.push(usage);
    }
    fn record_cap(&mut self, limit: &str, value: f64, detail: &str) {
        self.caps
            .push((limit.to_string(), value, detail.to_string()));
    }
}
