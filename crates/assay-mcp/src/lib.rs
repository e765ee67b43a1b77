//! Bridges between Assay episodes and agents that live outside this process.
//!
//! - [`ExecJsonlAgent`] (`exec-jsonl:'COMMAND'`) runs a process that speaks the
//!   `assay-agent/v1` JSON-lines protocol (`docs/agent-protocol.md`).
//!
//! Every action an external agent takes reaches the world only through the
//! episode's [`assay_agent::Env`], so it is recorded in the hash-chained trace
//! and scored like a built-in agent's. This crate must not execute tools
//! itself, score anything, or listen anywhere but the address it is given
//! (loopback for the agents it starts).

mod jsonl;
mod process;

use std::sync::Arc;

use assay_agent::{Agent, AgentError};

pub use jsonl::{ExecJsonlAgent, PROTOCOL};

/// Resolves the agent names this crate provides, so the CLI can try it before
/// `assay_agent::agent_from_name`: `Some` for `exec-jsonl:COMMAND` (the command
/// may be wrapped in one pair of quotes), `None` for any other name.
pub fn agent_from_name(name: &str) -> Option<Result<Arc<dyn Agent>, AgentError>> {
    if let Some(rest) = name.strip_prefix("exec-jsonl:") {
        return Some(
            process::parse_command(rest)
                .map(|c| Arc::new(ExecJsonlAgent::new(c)) as Arc<dyn Agent>),
        );
    }
    None
}
