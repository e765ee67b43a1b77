//! Test support: a scripted fake model server on 127.0.0.1 (axum) and an `Env`
//! that records what the adapter did, mirroring the runner's handling of
//! unknown tools and non-object arguments.
//!
//! The server behaves like real ones where adapters have broken before: like
//! llama.cpp it answers HTTP 500 to any request whose history holds tool-call
//! arguments that are not valid JSON, and like hosted APIs it can hand out
//! random tool-call ids (`Script::random_ids`).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_agent::{CaseView, Env, Stop, ToolResult, ToolSpec, Usage, UserTurn};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the fake server does for one request.
#[derive(Clone)]
pub enum Step {
    /// Answer 200 with this JSON.
    Ok(Value),
    /// Answer with a status, optional `Retry-After` seconds, and a text body.
    Status(u16, Option<u64>),
    /// Sleep this long, then answer 200 with this JSON (too late for the client).
    Hang(Duration, Value),
    /// Send headers, then abort the connection mid-body.
    Drop,
    /// Answer 200 with what this function makes of the request body.
    Reply(Arc<dyn Fn(&Value) -> Value + Send + Sync>),
}

impl Step {
    /// A step computed from the request body.
    pub fn reply(f: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Step {
        Step::Reply(Arc::new(f))
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
    pub seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Replace every tool-call id of a scripted answer with a fresh random
    /// one, as hosted APIs do.
    pub random_ids: AtomicBool,
    /// The 200 bodies the server actually sent, in order (ids as sent).
    pub sent: Mutex<Vec<Value>>,
    /// Requests refused with 500 because their history held invalid JSON.
    pub invalid_json: AtomicUsize,
}

/// A random hex string (std's per-process random hash keys plus a counter).
pub fn random_hex() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(N.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// Gives every tool call in a response body a fresh random id.
fn randomize_ids(v: &mut Value) {
    if let Some(calls) = v
        .pointer_mut("/choices/0/message/tool_calls")
        .and_then(Value::as_array_mut)
    {
        for c in calls {
            c["id"] = json!(format!("call_{}", random_hex()));
        }
    }
    if let Some(blocks) = v.get_mut("content").and_then(Value::as_array_mut) {
        for b in blocks.iter_mut().filter(|b| b["type"] == "tool_use") {
            b["id"] = json!(format!("toolu_{}", random_hex()));
        }
    }
    if let Some(items) = v.get_mut("output").and_then(Value::as_array_mut) {
        for o in items.iter_mut().filter(|o| o["type"] == "function_call") {
            o["call_id"] = json!(format!("call_{}", random_hex()));
            o["id"] = json!(format!("fc_{}", random_hex()));
        }
    }
}

/// The tool-call arguments in a request's history that are not valid JSON
/// (all three protocols), which llama.cpp's server refuses with HTTP 500.
pub fn invalid_history_arguments(body: &Value) -> Vec<String> {
    fn valid(a: &Value) -> bool {
        match a {
            Value::String(s) => serde_json::from_str::<Value>(s).is_ok(),
            Value::Object(_) => true,
            _ => false,
        }
    }
    let mut bad = Vec::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            let a = &c["function"]["arguments"];
            if !valid(a) {
                bad.push(a.to_string());
            }
        }
        for b in m["content"].as_array().into_iter().flatten() {
            if b["type"] == "tool_use" && !b["input"].is_object() {
                bad.push(b["input"].to_string());
            }
        }
    }
    for i in body["input"].as_array().into_iter().flatten() {
        if i["type"] == "function_call" && !valid(&i["arguments"]) {
            bad.push(i["arguments"].to_string());
        }
    }
    bad
}

pub struct Server {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts a fake server answering `steps` in order (a 500 once exhausted).
    pub async fn start(steps: Vec<Step>) -> Server {
        let script = Arc::new(Script {
            steps: Mutex::new(steps.into()),
            ..Default::default()
        });
        let app = Router::new()
            .route("/{*path}", post(handle))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { addr, script, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.script.seen.lock().unwrap().clone()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn handle(
    State(s): State<Arc<Script>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: body.clone(),
    });
    if !invalid_history_arguments(&body).is_empty() {
        s.invalid_json.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed to parse tool call arguments as JSON",
        )
            .into_response();
    }
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let step = s.steps.lock().unwrap().pop_front();
    let ok = |mut v: Value| {
        if s.random_ids.load(Ordering::SeqCst) {
            randomize_ids(&mut v);
        }
        s.sent.lock().unwrap().push(v.clone());
        axum::Json(v).into_response()
    };
    let resp = match step {
        Some(Step::Ok(v)) => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            ok(v)
        }
        Some(Step::Reply(f)) => ok(f(&body)),
        Some(Step::Status(code, retry_after)) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), "scripted failure").into_response();
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            r
        }
        Some(Step::Hang(d, v)) => {
            tokio::time::sleep(d).await;
            axum::Json(v).into_response()
        }
        Some(Step::Drop) => {
            let stream = futures_util::stream::iter(vec![
                Ok(Bytes::from_static(b"{\"choices\": [")),
                Err(std::io::Error::other("scripted connection drop")),
            ]);
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response(),
    };
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    resp
}

/// Provider-neutral way to script responses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Api {
    OpenAi,
    Anthropic,
    Responses,
}

impl Api {
    pub fn text(self, text: &str) -> Value {
        match self {
            Api::OpenAi => json!({
                "id": "r", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3}
            }),
            Api::Anthropic => json!({
                "id": "m", "type": "message", "role": "assistant", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": text}],
                "usage": {"input_tokens": 11, "output_tokens": 3}
            }),
            Api::Responses => json!({
                "id": format!("resp_{}", random_hex()), "object": "response", "status": "completed",
                "output": [{"type": "message", "id": "msg_1", "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
                "usage": {"input_tokens": 11, "output_tokens": 3,
                    "input_tokens_details": {"cached_tokens": 0}}
            }),
        }
    }

    /// The same reply cut off by the token limit.
    pub fn truncated(self, mut v: Value) -> Value {
        match self {
            Api::OpenAi => v["choices"][0]["finish_reason"] = json!("length"),
            Api::Anthropic => v["stop_reason"] = json!("max_tokens"),
            Api::Responses => {
                v["status"] = json!("incomplete");
                v["incomplete_details"] = json!({"reason": "max_output_tokens"});
            }
        }
        v
    }

    /// Sets the usage block of a reply: (uncached input, cached, cache
    /// writes, output), written the way the provider reports them.
    pub fn with_usage(
        self,
        mut v: Value,
        input: u64,
        cached: u64,
        written: u64,
        out: u64,
    ) -> Value {
        v["usage"] = match self {
            Api::OpenAi => json!({"prompt_tokens": input + cached + written,
                "completion_tokens": out,
                "prompt_tokens_details": {"cached_tokens": cached}}),
            Api::Anthropic => json!({"input_tokens": input, "output_tokens": out,
                "cache_read_input_tokens": cached, "cache_creation_input_tokens": written}),
            Api::Responses => json!({"input_tokens": input + cached + written,
                "output_tokens": out, "input_tokens_details": {"cached_tokens": cached}}),
        };
        v
    }

    /// Tool calls `(id, wire name, raw JSON arguments text)`.
    pub fn calls(self, calls: &[(&str, &str, &str)]) -> Value {
        match self {
            Api::OpenAi => json!({
                "id": "r", "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": null, "tool_calls":
                        calls.iter().map(|(id, n, a)| json!({
                            "id": id, "type": "function",
                            "function": {"name": n, "arguments": a}
                        })).collect::<Vec<_>>()}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 7}
            }),
            Api::Anthropic => json!({
                "id": "m", "type": "message", "role": "assistant", "stop_reason": "tool_use",
                "content": calls.iter().map(|(id, n, a)| json!({
                    "type": "tool_use", "id": id, "name": n,
                    "input": serde_json::from_str::<Value>(a)
                        .unwrap_or_else(|_| Value::String(a.to_string()))
                })).collect::<Vec<_>>(),
                "usage": {"input_tokens": 20, "output_tokens": 7}
            }),
            Api::Responses => json!({
                "id": format!("resp_{}", random_hex()), "object": "response", "status": "completed",
                "output": calls.iter().map(|(id, n, a)| json!({
                    "type": "function_call", "id": format!("fc_{id}"), "call_id": id,
                    "name": n, "arguments": a, "status": "completed"
                })).collect::<Vec<_>>(),
                "usage": {"input_tokens": 20, "output_tokens": 7,
                    "input_tokens_details": {"cached_tokens": 0}}
            }),
        }
    }

    /// Removes every tool-call id from a reply, as some servers do.
    pub fn without_ids(self, mut v: Value) -> Value {
        match self {
            Api::OpenAi => {
                for c in v["choices"][0]["message"]["tool_calls"]
                    .as_array_mut()
                    .unwrap()
                {
                    c.as_object_mut().unwrap().remove("id");
                }
            }
            Api::Anthropic => {
                for b in v["content"].as_array_mut().unwrap() {
                    b.as_object_mut().unwrap().remove("id");
                }
            }
            Api::Responses => {
                for o in v["output"].as_array_mut().unwrap() {
                    o.as_object_mut().unwrap().remove("call_id");
                }
            }
        }
        v
    }

    /// The tool calls of a reply the server sent: `(id, raw arguments)`.
    pub fn sent_calls(self, v: &Value) -> Vec<(String, Value)> {
        match self {
            Api::OpenAi => v["choices"][0]["message"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_string(),
                        c["function"]["arguments"].clone(),
                    )
                })
                .collect(),
            Api::Anthropic => v["content"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| (b["id"].as_str().unwrap().to_string(), b["input"].clone()))
                .collect(),
            Api::Responses => v["output"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["type"] == "function_call")
                .map(|o| {
                    (
                        o["call_id"].as_str().unwrap().to_string(),
                        o["arguments"].clone(),
                    )
                })
                .collect(),
        }
    }

    /// The tool-call arguments the adapter sent back in a request's history,
    /// as `(id, arguments)` in order (a JSON string, or an Anthropic object).
    pub fn history_calls(self, body: &Value) -> Vec<(String, Value)> {
        match self {
            Api::OpenAi => body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| m["tool_calls"].as_array().cloned().unwrap_or_default())
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_string(),
                        c["function"]["arguments"].clone(),
                    )
                })
                .collect(),
            Api::Anthropic => body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| (b["id"].as_str().unwrap().to_string(), b["input"].clone()))
                .collect(),
            Api::Responses => body["input"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["type"] == "function_call")
                .map(|i| {
                    (
                        i["call_id"].as_str().unwrap().to_string(),
                        i["arguments"].clone(),
                    )
                })
                .collect(),
        }
    }

    pub fn provider(self) -> assay_agent::Provider {
        match self {
            Api::OpenAi => assay_agent::Provider::Openai,
            Api::Anthropic => assay_agent::Provider::Anthropic,
            Api::Responses => assay_agent::Provider::OpenaiResponses,
        }
    }

    pub fn base_url(self, server: &Server) -> String {
        match self {
            Api::OpenAi | Api::Responses => format!("{}/v1", server.url()),
            Api::Anthropic => server.url(),
        }
    }

    /// The tool results the adapter sent in a request body, as
    /// `(call id, content, is_error)` in order.
    pub fn tool_results(self, body: &Value) -> Vec<(String, String, bool)> {
        if self == Api::Responses {
            return body["input"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["type"] == "function_call_output")
                .map(|i| {
                    let c = i["output"].as_str().unwrap().to_string();
                    (
                        i["call_id"].as_str().unwrap().to_string(),
                        c.clone(),
                        c.starts_with("Error: "),
                    )
                })
                .collect();
        }
        let msgs = body["messages"].as_array().unwrap();
        match self {
            Api::OpenAi => msgs
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    let c = m["content"].as_str().unwrap().to_string();
                    (
                        m["tool_call_id"].as_str().unwrap().to_string(),
                        c.clone(),
                        c.starts_with("Error: "),
                    )
                })
                .collect(),
            Api::Anthropic => msgs
                .iter()
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| {
                    (
                        b["tool_use_id"].as_str().unwrap().to_string(),
                        b["content"].as_str().unwrap().to_string(),
                        b["is_error"] == true,
                    )
                })
                .collect(),
            Api::Responses => unreachable!("handled above"),
        }
    }
}

/// Test config: short timeout and backoff so failures resolve quickly.
pub fn config(api: Api, server: &Server) -> assay_agent::ModelConfig {
    let mut c = assay_agent::ModelConfig::new("test-model-agent", api.provider(), "test-model");
    c.base_url = Some(api.base_url(server));
    c.timeout_secs = Some(0.3);
    c.retries = Some(2);
    c.backoff_ms = Some(10);
    c.seed = Some(7);
    c
}

/// One tool call as the runner would have recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: Option<String>,
    pub name: String,
    pub args: Value,
}

/// An `Env` that records calls, replies and usage. Like the runner, it denies
/// unknown tools and non-object arguments with a failed result.
pub struct FakeEnv {
    system: String,
    /// Tools offered (tests may clear or change them).
    pub tools: Vec<ToolSpec>,
    turns: VecDeque<String>,
    case: CaseView,
    pub calls: Vec<Call>,
    pub replies: Vec<String>,
    pub usage: Vec<Usage>,
    pub max_calls: usize,
    /// Caps the agent reported: (limit, value, detail).
    pub caps: Vec<(String, f64, String)>,
}

impl FakeEnv {
    pub fn new(turns: &[&str]) -> FakeEnv {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/support/refund-request.yaml");
        let spec = assay_spec::load_file(&path).unwrap().spec;
        let tool = |name: &str| ToolSpec {
            name: name.into(),
            description: format!("The {name} tool."),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        };
        FakeEnv {
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
            max_calls: 50,
            caps: Vec::new(),
        }
    }
}

impl Env for FakeEnv {
    fn system_prompt(&self) -> &str {
        &self.system
    }
    fn episode_key(&self) -> String {
        "fake-episode".to_string()
    }
    fn tools(&self) -> &[ToolSpec] {
        &self.tools
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
        if self.calls.len() >= self.max_calls {
            return Err(Stop("tool_calls limit reached".into()));
        }
        self.calls.push(Call {
            id: call_id,
            name: name.to_string(),
            args: args.clone(),
        });
        let fail = |m: String| {
            Ok(ToolResult {
                ok: false,
                output: m,
                delivered: vec![],
            })
        };
        if !self.tools.iter().any(|t| t.name == name) {
            return fail(format!("unknown tool `{name}`"));
        }
        if !args.is_object() {
            return fail("arguments must be a JSON object".into());
        }
        Ok(ToolResult {
            ok: true,
            output: format!("{name} -> {args}"),
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
