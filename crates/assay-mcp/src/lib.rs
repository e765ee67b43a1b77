//! Bridges between Assay episodes and agents that live outside this process.
//!
//! - [`ExecJsonlAgent`] (`exec-jsonl:'COMMAND'`) runs a process that speaks the
//!   `assay-agent/v1` JSON-lines protocol (`docs/agent-protocol.md`).
//! - [`ExecAgent`] (`exec:'COMMAND'`) runs an MCP-capable program per user turn
//!   against an MCP server (streamable HTTP on 127.0.0.1) over the episode's tools;
//!   later turns get the conversation so far.
//! - [`McpServeAgent`] and [`serve_case`] (`assay mcp serve CASE`) serve a case's
//!   tools over MCP (stdio or streamable HTTP) to a client driven from outside.
//!
//! Every action an external agent takes reaches the world only through the
//! episode's [`assay_agent::Env`], so it is recorded in the hash-chained trace
//! and scored like a built-in agent's. This crate must not execute tools
//! itself, score anything, or listen anywhere but the address it is given
//! (loopback for the agents it starts).

#![deny(missing_docs)]

mod exec;
mod jsonl;
mod origin;
mod process;
mod serve;
mod server;

use std::sync::Arc;

use assay_agent::{Agent, AgentError};

pub use exec::{
    CONVERSATION_FORMAT, ConversationMessage, ExecAgent, PromptMode, SERVER_NAME,
    conversation_json, mcp_config, turn_prompt,
};
pub use jsonl::{ExecJsonlAgent, PROTOCOL};
pub use origin::{AllowedOrigin, default_allowed_origins};
pub use serve::{McpServeAgent, OnListen, ServeOptions, Transport, serve_case};

/// Resolves the agent names this crate provides, so the CLI can try it before
/// `assay_agent::agent_from_name`: `Some` for `exec:COMMAND` and
/// `exec-jsonl:COMMAND` (the command may be wrapped in one pair of quotes),
/// `None` for any other name.
pub fn agent_from_name(name: &str) -> Option<Result<Arc<dyn Agent>, AgentError>> {
    if let Some(rest) = name.strip_prefix("exec-jsonl:") {
        return Some(
            process::parse_command(rest)
                .map(|c| Arc::new(ExecJsonlAgent::new(c)) as Arc<dyn Agent>),
        );
    }
    if let Some(rest) = name.strip_prefix("exec:") {
        return Some(
            process::parse_command(rest).map(|c| Arc::new(ExecAgent::new(c)) as Arc<dyn Agent>),
        );
    }
    None
}

/// Builds an agent program declared in an agents file. Its name in results
/// is the entry's `name`.
pub fn agent_from_config(cfg: &assay_agent::ExecConfig) -> Result<Arc<dyn Agent>, AgentError> {
    let bad = |what: &str| AgentError::Config(format!("agent `{}`: {what}", cfg.name));
    if cfg.command.trim().is_empty() {
        return Err(bad("`command` is empty"));
    }
    let timeout = match cfg.timeout_secs {
        None => None,
        Some(t) if t.is_finite() && t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
        Some(_) => return Err(bad("`timeout_secs` must be a positive number")),
    };
    Ok(match cfg.kind {
        assay_agent::ExecKind::Exec => {
            let mut a = ExecAgent::new(cfg.command.clone()).named(&cfg.name);
            if let Some(t) = timeout {
                a = a.with_timeout(t);
            }
            Arc::new(a.with_env(&cfg.env, cfg.cwd.clone()))
        }
        assay_agent::ExecKind::ExecJsonl => {
            let mut a = ExecJsonlAgent::new(cfg.command.clone()).named(&cfg.name);
            if let Some(t) = timeout {
                a = a.with_timeout(t);
            }
            Arc::new(a.with_env(&cfg.env, cfg.cwd.clone()))
        }
    })
}

/// Entry points for the fuzz targets under `fuzz/`: the agent-protocol line
/// reader and parser, which face whatever an agent process writes.
#[doc(hidden)]
pub mod fuzzing {
    /// Reads every line of `input` as the `exec-jsonl` harness reads an agent's
    /// stdout (each bounded by `max` bytes) and parses each as a protocol
    /// message. Returns, per line, whether it parsed; `None` for a line over the
    /// bound (which ends the episode in a real run).
    pub fn agent_lines(input: &[u8], max: usize) -> Vec<Option<bool>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        rt.block_on(async {
            let mut reader = tokio::io::BufReader::with_capacity(64, input);
            let mut out = Vec::new();
            loop {
                match crate::process::read_line_bounded(&mut reader, max).await {
                    Ok(crate::process::BoundedLine::Line(l)) => {
                        assert!(l.len() <= max, "a line past the bound was returned");
                        let parsed = std::str::from_utf8(&l)
                            .ok()
                            .is_some_and(|s| crate::jsonl::parse_line(s).is_ok());
                        out.push(Some(parsed));
                    }
                    Ok(crate::process::BoundedLine::TooLong) => {
                        out.push(None);
                        break;
                    }
                    Ok(crate::process::BoundedLine::Eof) | Err(_) => break,
                }
            }
            out
        })
    }
}
