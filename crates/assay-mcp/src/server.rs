//! The MCP server over an episode's tools, and the bridge to its [`Env`].
//!
//! [`Env`] is borrowed mutably by `Agent::run`, while rmcp's handlers live in
//! their own tasks. So handlers never touch the env: each `tools/call` is sent
//! as a [`ToolRequest`] over a channel, and [`pump`] (running inside
//! `Agent::run`, which owns the env) executes it through [`Env::call_tool`] —
//! recorded and scored like any call — and sends the result back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use assay_agent::{Env, Stop, ToolResult, ToolSpec};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::origin::{AllowedOrigin, origin_allowed};

/// A tool call waiting to be executed by the episode.
pub(crate) struct ToolRequest {
    call_id: Option<String>,
    name: String,
    args: Value,
    reply: oneshot::Sender<Result<ToolResult, Stop>>,
}

/// The rmcp handler: lists the episode's tools, forwards calls to [`pump`].
#[derive(Clone)]
pub(crate) struct EnvServer {
    inner: Arc<Inner>,
}

struct Inner {
    tools: Vec<Tool>,
    instructions: String,
    tx: mpsc::Sender<ToolRequest>,
    activity: Mutex<Option<Instant>>,
}

impl EnvServer {
    /// A server offering `tools`; calls arrive on the returned receiver.
    pub(crate) fn new(
        tools: &[ToolSpec],
        instructions: String,
    ) -> (EnvServer, mpsc::Receiver<ToolRequest>) {
        let (tx, rx) = mpsc::channel(16);
        let tools = tools
            .iter()
            .map(|t| {
                let schema = match &t.parameters {
                    Value::Object(o) => o.clone(),
                    _ => {
                        let mut o = serde_json::Map::new();
                        o.insert("type".into(), Value::String("object".into()));
                        o
                    }
                };
                Tool::new(t.name.clone(), t.description.clone(), schema)
            })
            .collect();
        let inner = Inner {
            tools,
            instructions,
            tx,
            activity: Mutex::new(None),
        };
        (
            EnvServer {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// When a client last sent a request (`None`: never).
    pub(crate) fn last_activity(&self) -> Option<Instant> {
        *self
            .inner
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self
            .inner
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }
}

impl ServerHandler for EnvServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("assay", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.inner.instructions.clone())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.touch();
        Ok(ListToolsResult::with_all_items(self.inner.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.touch();
        let (reply, answer) = oneshot::channel();
        let req = ToolRequest {
            call_id: Some(context.id.to_string()),
            name: request.name.to_string(),
            args: Value::Object(request.arguments.unwrap_or_default()),
            reply,
        };
        let ended = || CallToolResult::error(vec![ContentBlock::text("the episode has ended")]);
        if self.inner.tx.send(req).await.is_err() {
            return Ok(ended().into());
        }
        let result = match answer.await {
            Ok(Ok(r)) => {
                let content = vec![ContentBlock::text(r.output)];
                if r.ok {
                    CallToolResult::success(content)
                } else {
                    CallToolResult::error(content)
                }
            }
            Ok(Err(stop)) => CallToolResult::error(vec![ContentBlock::text(stop.to_string())]),
            Err(_) => ended(),
        };
        self.touch();
        Ok(result.into())
    }
}

/// How [`pump`] ended.
pub(crate) enum Pumped<T> {
    /// The future it was serving until finished.
    Done(T),
    /// A call hit an episode limit (already recorded); the agent must stop.
    Stopped,
}

/// Executes the tool requests arriving on `rx` through `env` until `until`
/// finishes or a call hits a limit. Calls are executed one at a time, in the
/// order they arrive.
pub(crate) async fn pump<F: Future>(
    env: &mut dyn Env,
    rx: &mut mpsc::Receiver<ToolRequest>,
    until: F,
) -> Pumped<F::Output> {
    tokio::pin!(until);
    loop {
        tokio::select! {
            biased;
            req = rx.recv() => {
                let Some(req) = req else {
                    return Pumped::Done(until.await);
                };
                let result = env.call_tool(req.call_id, &req.name, req.args);
                let stopped = result.is_err();
                let _ = req.reply.send(result);
                if stopped {
                    return Pumped::Stopped;
                }
            }
            out = &mut until => return Pumped::Done(out),
        }
    }
}

/// An MCP server on streamable HTTP at `http://ADDR/mcp`.
pub(crate) struct HttpServer {
    /// The address actually bound (port 0 resolved).
    pub(crate) addr: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub(crate) max_body: usize,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    oversized: Arc<tokio::sync::Notify>,
}

impl HttpServer {
    /// Binds `addr` and serves `server` until [`HttpServer::shutdown`].
    /// Stateless JSON responses: any client that posts JSON-RPC and accepts
    /// `application/json` works, with or without sessions.
    /// A request body longer than `max_body` (the spec's `message_bytes`) is
    /// refused with 413 without being read whole, and [`HttpServer::oversized`]
    /// fires so the episode can end on the cap.
    /// A request with an `Origin` header not in `origins` gets 403 with a
    /// JSON-RPC error body and reaches nothing behind it; a body that is not
    /// JSON gets 400 with a JSON-RPC parse error (-32700), one that is JSON but
    /// not a JSON-RPC message 400 with an invalid-request error (-32600).
    pub(crate) async fn start(
        server: EnvServer,
        addr: SocketAddr,
        max_body: usize,
        origins: Vec<AllowedOrigin>,
    ) -> std::io::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts([
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
                addr.ip().to_string(),
            ])
            .with_max_request_body_bytes(max_body)
            .with_cancellation_token(cancel.child_token());
        let service: StreamableHttpService<EnvServer, LocalSessionManager> =
            StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
        let oversized = Arc::new(tokio::sync::Notify::new());
        let seen = oversized.clone();
        let guard = Arc::new(Guard { origins, max_body });
        let router = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn_with_state(guard, guard_request))
            .layer(axum::middleware::map_response(
                move |r: axum::response::Response| {
                    if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                        seen.notify_one();
                    }
                    std::future::ready(r)
                },
            ));
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled_owned().await })
                .await;
        });
        Ok(HttpServer {
            addr,
            max_body,
            cancel,
            task,
            oversized,
        })
    }

    /// Completes once a request was refused for being longer than `max_body`
    /// (at once if that already happened).
    pub(crate) async fn oversized(&self) {
        self.oversized.notified().await;
    }

    /// The endpoint URL clients connect to.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops accepting requests and waits (briefly) for the server task.
    pub(crate) async fn shutdown(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.task).await;
    }
}

/// What [`guard_request`] checks before rmcp sees a request.
struct Guard {
    origins: Vec<AllowedOrigin>,
    max_body: usize,
}

/// An HTTP error whose body is a JSON-RPC error response without an id, so
/// MCP clients can show the reason.
fn jsonrpc_error(
    status: axum::http::StatusCode,
    code: i64,
    message: String,
) -> axum::response::Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    axum::response::Response::builder()
        .status(status)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("a valid response")
}

/// Checks `Origin` (every method), then for a POST reads the body (at most
/// `max_body` bytes) and answers malformed JSON with a JSON-RPC error instead
/// of rmcp's `415` text.
async fn guard_request(
    axum::extract::State(guard): axum::extract::State<Arc<Guard>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if let Some(origin) = req.headers().get(axum::http::header::ORIGIN) {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        if !origin_allowed(&shown, &guard.origins) {
            let allowed: Vec<String> = guard.origins.iter().map(|o| o.to_string()).collect();
            return jsonrpc_error(
                StatusCode::FORBIDDEN,
                -32000,
                format!(
                    "Forbidden: Origin `{shown}` is not allowed (allowed: {}; add it with --allow-origin)",
                    allowed.join(", ")
                ),
            );
        }
    }
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, guard.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let too_long = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit exceeded");
            return if too_long {
                jsonrpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    -32600,
                    format!("request body exceeds {} bytes", guard.max_body),
                )
            } else {
                jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    -32700,
                    format!("cannot read the request body: {e}"),
                )
            };
        }
    };
    if json && let Err(e) = serde_json::from_slice::<Value>(&bytes) {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32700,
            format!("Parse error: the request body is not JSON: {e}"),
        );
    }
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        ))
        .await;
    // rmcp answers JSON that is not a JSON-RPC message with 415 and a text.
    if json && response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "Invalid Request: the body is JSON but not a JSON-RPC message".into(),
        );
    }
    response
}
