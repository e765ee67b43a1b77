//! `assay mcp serve CASE`: the case's tools served over MCP to a client that
//! someone else drives, recorded and scored by the normal runner when the
//! session ends.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use assay_agent::{Agent, AgentError, Env};
use assay_report::RunResults;
use assay_run::{PreparedCase, RunConfig, RunError};
use async_trait::async_trait;
use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::origin::{AllowedOrigin, default_allowed_origins};
use crate::server::{EnvServer, HttpServer, Pumped, pump};

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Where the MCP server listens.
pub enum Transport {
    /// This process's stdin/stdout (the client spawned `assay mcp serve`).
    /// The session ends when stdin closes.
    Stdio,
    /// Streamable HTTP at `http://ADDR/mcp`. The session ends on cancellation
    /// (Ctrl-C in [`serve_case`]) or after the idle timeout, if one is set.
    Http(SocketAddr),
    /// Any byte stream pair (tests, embedding). Ends when the reader closes.
    Io(BoxRead, BoxWrite),
}

impl Transport {
    /// A transport over any reader/writer pair, e.g. one side of `tokio::io::duplex`.
    pub fn io(
        r: impl AsyncRead + Send + Unpin + 'static,
        w: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Transport {
        Transport::Io(Box::new(r), Box::new(w))
    }
}

/// Called with the bound address once an HTTP server listens.
pub type OnListen = Box<dyn Fn(SocketAddr) + Send + Sync>;

/// An agent that is really an MCP server: `run` serves the episode's tools
/// until the client's session ends. It serves one episode only (the
/// transport is consumed).
pub struct McpServeAgent {
    name: String,
    transport: Mutex<Option<Transport>>,
    idle: Option<Duration>,
    on_listen: Option<OnListen>,
    origins: Vec<AllowedOrigin>,
    cancel: CancellationToken,
}

impl McpServeAgent {
    /// A server on `transport`; its name in results is `mcp:stdio`, `mcp:http`
    /// or `mcp:io`.
    pub fn new(transport: Transport) -> McpServeAgent {
        let kind = match &transport {
            Transport::Stdio => "stdio",
            Transport::Http(_) => "http",
            Transport::Io(..) => "io",
        };
        McpServeAgent {
            name: format!("mcp:{kind}"),
            transport: Mutex::new(Some(transport)),
            idle: None,
            on_listen: None,
            origins: default_allowed_origins(),
            cancel: CancellationToken::new(),
        }
    }

    /// Ends the session once no request has arrived for `idle` after the
    /// first one (HTTP has no end-of-session signal a stateless client must send).
    pub fn with_idle_timeout(mut self, idle: Duration) -> McpServeAgent {
        self.idle = Some(idle);
        self
    }

    /// Reports the bound HTTP address (useful with port 0).
    pub fn on_listen(mut self, f: impl Fn(SocketAddr) + Send + Sync + 'static) -> McpServeAgent {
        self.on_listen = Some(Box::new(f));
        self
    }

    /// HTTP only: the browser origins allowed to send requests (default:
    /// [`default_allowed_origins`]). Requests without `Origin` are allowed.
    pub fn with_allowed_origins(mut self, origins: Vec<AllowedOrigin>) -> McpServeAgent {
        self.origins = origins;
        self
    }

    /// Cancelling this token ends the session (and the episode) normally.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Waits until the server has been idle for `idle` after its first request,
/// or forever without an idle timeout.
async fn idle_watch(server: &EnvServer, idle: Option<Duration>) {
    let Some(idle) = idle else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(t) = server.last_activity()
            && t.elapsed() >= idle
        {
            return;
        }
    }
}

#[async_trait]
impl Agent for McpServeAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| AgentError::Config("an MCP serve agent serves one episode".into()))?;
        // The client cannot be handed turns one by one: every user turn is
        // recorded now and given in the server's instructions.
        let mut turns = Vec::new();
        while let Some(t) = env.next_user_turn() {
            turns.push(t.text);
        }
        let instructions = format!("{}\n\nTask:\n{}", env.system_prompt(), turns.join("\n\n"));
        let (server, mut rx) = EnvServer::new(env.tools(), instructions);
        let backend = |what: &str, e: String| AgentError::Backend(format!("{what}: {e}"));
        match transport {
            Transport::Http(addr) => {
                let max_body = crate::process::message_cap(env);
                let http = HttpServer::start(server.clone(), addr, max_body, self.origins.clone())
                    .await
                    .map_err(|e| backend("cannot start the MCP server", e.to_string()))?;
                if let Some(f) = &self.on_listen {
                    f(http.addr);
                }
                let until = async {
                    tokio::select! {
                        _ = self.cancel.cancelled() => false,
                        _ = idle_watch(&server, self.idle) => false,
                        () = http.oversized() => true,
                    }
                };
                let capped = matches!(pump(env, &mut rx, until).await, Pumped::Done(true));
                drop(rx);
                http.shutdown().await;
                if capped {
                    let detail =
                        format!("an MCP request from the client is longer than {max_body} bytes");
                    env.record_cap("message_bytes", max_body as f64, &detail);
                    return Err(AgentError::Backend(format!(
                        "{detail} (the message_bytes limit); refused unread"
                    )));
                }
                Ok(())
            }
            Transport::Stdio => {
                let (r, w) = rmcp::transport::stdio();
                serve_io(env, server, rx, Box::new(r), Box::new(w), &self.cancel).await
            }
            Transport::Io(r, w) => serve_io(env, server, rx, r, w, &self.cancel).await,
        }
    }
}

async fn serve_io(
    env: &mut dyn Env,
    server: EnvServer,
    mut rx: tokio::sync::mpsc::Receiver<crate::server::ToolRequest>,
    r: BoxRead,
    w: BoxWrite,
    cancel: &CancellationToken,
) -> Result<(), AgentError> {
    let running = tokio::select! {
        s = server.serve((r, w)) => s.map_err(|e| {
            AgentError::Backend(format!("MCP session failed to initialise: {e}"))
        })?,
        _ = cancel.cancelled() => return Ok(()),
    };
    let ct = running.cancellation_token();
    let until = async {
        tokio::select! {
            _ = running.waiting() => {}
            _ = cancel.cancelled() => {}
        }
    };
    // Whether the session ended or a limit stopped the episode, close it.
    let _ = pump(env, &mut rx, until).await;
    drop(rx);
    ct.cancel();
    Ok(())
}

/// What [`serve_case`] needs besides the case.
pub struct ServeOptions {
    /// Where to listen.
    pub transport: Transport,
    /// HTTP only: end the session after this long without requests.
    pub idle: Option<Duration>,
    /// HTTP only: called with the bound address.
    pub on_listen: Option<OnListen>,
    /// Run seed (secrets/canaries derive from it).
    pub seed: u64,
    /// HTTP only: allowed browser origins (see
    /// [`McpServeAgent::with_allowed_origins`]).
    pub allowed_origins: Vec<AllowedOrigin>,
}

/// The CLI's one call for `assay mcp serve CASE`: serves one episode of
/// `case` over MCP, ends on session end or Ctrl-C, and writes the trace and
/// `results.json` under `out` like `assay run` does.
pub async fn serve_case(
    case: Arc<PreparedCase>,
    opts: ServeOptions,
    out: &Path,
) -> Result<RunResults, RunError> {
    let mut agent = McpServeAgent::new(opts.transport);
    agent.idle = opts.idle;
    agent.on_listen = opts.on_listen;
    agent.origins = opts.allowed_origins;
    let cancel = agent.cancel_token();
    let ctrl_c = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        }
    });
    let cfg = RunConfig {
        seed: opts.seed,
        epochs: 1,
        jobs: 1,
        out: Some(out.to_path_buf()),
        judge: None,
    };
    let agents: Vec<Arc<dyn Agent>> = vec![Arc::new(agent)];
    let r = assay_run::run(&[case], &agents, &cfg, vec![]).await;
    ctrl_c.abort();
    r
}
