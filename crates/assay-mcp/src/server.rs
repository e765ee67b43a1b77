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
    pub(crate) async fn start(
        server: EnvServer,
        addr: SocketAddr,
        max_body: usize,
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
        let router = axum::Router::new().nest_service("/mcp", service).layer(
            axum::middleware::map_response(move |r: axum::response::Response| {
                if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    seen.notify_one();
                }
                std::future::ready(r)
            }),
        );
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
