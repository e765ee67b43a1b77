//! The agent side of an episode: the [`Agent`] trait every subject implements,
//! the [`Env`] through which it sees the task and acts, and the control agents
//! (`control:solve`, `control:naive`, `control:refuse`) that serve as instruments,
//! and the model adapters (`openai:MODEL`, `anthropic:MODEL`, agents files) that
//! evaluate real models over HTTP with retries, concurrency limits and
//! record/replay (see `docs/agents.md`).
//!
//! This crate knows nothing of how tools are executed or scored: the runner
//! implements [`Env`] over a world and records the trace. Agents must only act
//! through [`Env`], so every action they take is observed.

mod agent_loop;
mod anthropic;
mod control;
mod http;
mod model;
mod openai;
mod process_group;
mod recording;
mod responses;

use std::sync::Arc;

use assay_spec::Spec;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use control::{ControlKind, control_agent};
pub use model::{
    AgentConfig, AgentOptions, DEFAULT_RESPONSE_BYTES, ExecConfig, ExecKind, ModelConfig, Provider,
    agents_from_file, agents_from_file_with, model_agent, model_agent_from_name,
    model_agent_with_key, read_agents_file,
};
pub use process_group::{
    KILL_GRACE, ProcessGroup, kill_agent_process_groups, live_agent_process_groups,
};

/// A tool as offered to an agent: what model adapters turn into tool definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Tool name (`files.read`).
    pub name: String,
    /// Description shown to the agent (may carry a planted payload).
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// What a tool call returned to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// False when the tool refused or failed (the agent should see the error).
    pub ok: bool,
    /// Text returned to the agent.
    pub output: String,
    /// Threat ids whose payload this result carried. Only control agents may
    /// look at this; a real agent must judge the output itself.
    pub delivered: Vec<String>,
}

/// A user turn handed to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct UserTurn {
    /// What the user says.
    pub text: String,
    /// Threat ids whose payload this turn carries (instrument-only, as above).
    pub delivered: Vec<String>,
}

/// Why an agent must stop acting now. Not a failure of the agent: the runner
/// already recorded the reason in the trace.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("episode stopped: {0}")]
pub struct Stop(pub String);

/// What a control agent may know about the case beyond what a real agent sees.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// The spec the case comes from.
    pub spec: Arc<Spec>,
    /// The threat planted in this episode, if any.
    pub threat: Option<String>,
}

/// Cost and speed of one model request, reported by model adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens billed at the uncached rate: the prompt less the cache
    /// tokens, for every provider, so `input_tokens + cache_read_tokens +
    /// cache_write_tokens` is the whole prompt.
    pub input_tokens: u64,
    /// Completion tokens billed.
    pub output_tokens: u64,
    /// Wall time of the request including retries, in milliseconds.
    pub latency_ms: u64,
    /// Retries the request needed.
    pub retries: u32,
    /// Prompt tokens served from the provider's prompt cache (never counted
    /// in `input_tokens`).
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache (Anthropic;
    /// never counted in `input_tokens`).
    pub cache_write_tokens: u64,
    /// The reply was cut off by the token limit (`finish_reason: length`,
    /// `stop_reason: max_tokens`, `status: incomplete`).
    pub truncated: bool,
}

/// The episode as the agent sees it. Implemented by the runner, which records
/// every call into the trace before and after executing it.
pub trait Env: Send {
    /// System prompt for the agent.
    fn system_prompt(&self) -> &str;
    /// Tools the agent may call.
    fn tools(&self) -> &[ToolSpec];
    /// Stable identity of this episode (spec, case, agent, epoch), unique in a
    /// run: recordings key model requests by it, so identical requests of
    /// different episodes or epochs never share an entry.
    fn episode_key(&self) -> String;
    /// The next user turn (recorded as a message), or `None` when the task has no more.
    fn next_user_turn(&mut self) -> Option<UserTurn>;
    /// Calls a tool. `Err(Stop)` means a limit was reached and the agent must return.
    fn call_tool(
        &mut self,
        call_id: Option<String>,
        name: &str,
        args: Value,
    ) -> Result<ToolResult, Stop>;
    /// Records the agent's reply to the current turn.
    fn reply(&mut self, text: &str);
    /// The case being run. Instruments only: a real agent must not read it.
    fn case(&self) -> &CaseView;
    /// Records output an external agent process wrote (stderr and the like).
    fn record_log(&mut self, stream: &str, text: &str) {
        let _ = (stream, text);
    }
    /// Records the usage of one model request (adapters call this per request).
    fn record_usage(&mut self, usage: Usage) {
        let _ = usage;
    }
    /// Records that the agent side hit a resource cap (an over-long message or
    /// protocol line, an oversized response body). The agent then returns an
    /// error; the runner keeps the record as a `limit` event with `detail`.
    fn record_cap(&mut self, limit: &str, value: f64, detail: &str) {
        let _ = (limit, value, detail);
    }
}

/// Whether an agent is a subject under test or one of the built-in instruments.
/// Gates apply to subjects; control expectations to instruments. Only the
/// built-in control agents are instruments, whatever another agent is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AgentRole {
    /// An agent under test.
    #[default]
    Subject,
    /// A built-in control agent (`control:solve`, `control:naive`, `control:refuse`).
    Control,
}

/// Why an agent failed. An episode whose agent fails is `error`, never a pass.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The agent's backend failed (HTTP, process, protocol).
    #[error("agent backend failed: {0}")]
    Backend(String),
    /// The agent is misconfigured.
    #[error("agent misconfigured: {0}")]
    Config(String),
}

/// A subject (or instrument) that can play an episode.
#[async_trait]
pub trait Agent: Send + Sync {
    /// Name used in results (`control:solve`, `openai:gpt-4o-mini`).
    fn name(&self) -> &str;
    /// Subject or instrument. Only the built-in control agents override this.
    fn role(&self) -> AgentRole {
        AgentRole::Subject
    }
    /// Episodes of this agent the runner may play at once; `None` leaves it
    /// to the run's `--jobs`. Model agents return their agents file's
    /// `concurrency`, since they wait on an endpoint rather than on the CPU.
    fn concurrency(&self) -> Option<usize> {
        None
    }
    /// Plays every user turn of the episode through `env`.
    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError>;
}

/// Whether `name` lies in the `control:` namespace, which only the built-in
/// control agents may use: an agent under test named like an instrument would
/// escape the gates. Case and surrounding blanks are ignored, so
/// ` Control:solve` is reserved too.
pub fn is_reserved_name(name: &str) -> bool {
    name.trim_start()
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("control:"))
}

/// Resolves an agent name from the command line (`control:solve`,
/// `openai:gpt-4o-mini`, `anthropic:claude-sonnet-4-5`) with default run
/// options. Model agents read their API key from the provider's default
/// environment variable.
pub fn agent_from_name(name: &str) -> Result<Arc<dyn Agent>, AgentError> {
    agent_from_name_with(name, &AgentOptions::default())
}

/// Like [`agent_from_name`], with the run's record/replay options applied to
/// model agents.
pub fn agent_from_name_with(name: &str, opts: &AgentOptions) -> Result<Arc<dyn Agent>, AgentError> {
    if is_reserved_name(name) {
        let kind = name.trim_start()[8..].trim_end();
        return control_agent(kind)
            .ok_or_else(|| AgentError::Config(format!("unknown control agent `{name}`; expected control:solve, control:naive or control:refuse")));
    }
    if let Some(agent) = model_agent_from_name(name, opts) {
        return agent;
    }
    Err(AgentError::Config(format!(
        "unknown agent `{name}`; expected control:solve, control:naive, control:refuse, \
         openai:MODEL, openai-responses:MODEL or anthropic:MODEL (or define agents in a file \
         with --agents)"
    )))
}
