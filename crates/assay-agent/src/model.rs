//! Model adapters: agents backed by a chat model behind an HTTP API
//! (OpenAI-compatible Chat Completions or Anthropic Messages), their
//! configuration, and the agents file that names several of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::agent_loop::Wire;
use crate::anthropic::Messages;
use crate::http::{Endpoint, EndpointConfig};
use crate::openai::ChatCompletions;
use crate::responses::Responses;
use crate::{Agent, AgentError, Env, ToolSpec};

/// Which wire protocol a model adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// OpenAI Chat Completions (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, ...).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses (`/responses`), which many current agents use.
    OpenaiResponses,
}

impl Provider {
    /// Base URL used when none is configured.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::Openai | Provider::OpenaiResponses => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
        }
    }

    /// Environment variable the API key is read from when none is configured.
    pub fn default_api_key_env(self) -> &'static str {
        match self {
            Provider::Openai | Provider::OpenaiResponses => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::OpenaiResponses => "openai-responses",
        }
    }
}

/// One model agent as written in an agents file (or implied by
/// `openai:MODEL` / `anthropic:MODEL`). Every field but `name`, `provider`
/// and `model` has a default; unknown fields are rejected so a typo never
/// silently changes an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name used in results and episode ids.
    pub name: String,
    /// Wire protocol.
    pub provider: Provider,
    /// Model id sent to the endpoint.
    pub model: String,
    /// Endpoint base URL (`https://api.openai.com/v1`, `http://localhost:11434/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variable holding the API key; `""` sends no key (local servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Sampling temperature; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Sampling seed sent to OpenAI-compatible endpoints; also seeds retry jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Completion token cap (Anthropic requires one: 4096 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Per-request timeout in seconds, connect to last byte (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Retries after the first attempt on 408/429/5xx, transport errors and
    /// malformed responses (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Requests in flight at once across all episodes of this agent (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// First backoff in milliseconds, doubled each retry (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// Largest response body read, in bytes (default [`DEFAULT_RESPONSE_BYTES`]).
    /// A longer body fails the episode as `error` instead of being held
    /// whole in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<u64>,
    /// Provider request fields sent as given (`top_p`, `reasoning`,
    /// `response_format`, ...), merged into every request body last, so they
    /// may also override a field Assay sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// `tool_choice` sent with every request that offers tools, in the
    /// provider's own shape (`"auto"`, `"required"`, `{"type": "any"}`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    /// Consecutive failed requests after which the agent's circuit opens and
    /// its remaining episodes end at once as `error` (default 5; 0 never opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<u32>,
}

/// Default cap on one model response body: 16 MiB, far above any real chat
/// completion, far below what would strain memory with many episodes at once.
pub const DEFAULT_RESPONSE_BYTES: u64 = 16 << 20;

impl ModelConfig {
    /// A config with every optional field at its default.
    pub fn new(name: &str, provider: Provider, model: &str) -> Self {
        Self {
            name: name.to_string(),
            provider,
            model: model.to_string(),
            base_url: None,
            api_key_env: None,
            temperature: None,
            seed: None,
            max_tokens: None,
            timeout_secs: None,
            retries: None,
            concurrency: None,
            backoff_ms: None,
            response_bytes: None,
            extra_body: None,
            tool_choice: None,
            breaker: None,
        }
    }
}

/// Which protocol an agent program speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecKind {
    /// An MCP-capable program (`exec:COMMAND`).
    Exec,
    /// A program speaking the `assay-agent/v1` JSON-lines protocol (`exec-jsonl:COMMAND`).
    ExecJsonl,
}

/// An agent program as written in an agents file: what `exec:COMMAND` or
/// `exec-jsonl:COMMAND` says, plus a short name, environment, working
/// directory and timeout. Built by `assay-mcp`, which runs such programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Name used in results and episode ids.
    pub name: String,
    /// Protocol the program speaks.
    pub kind: ExecKind,
    /// Shell command (`sh -c`), with the placeholders of docs/agent-protocol.md.
    pub command: String,
    /// Extra environment variables for the program.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory; relative to the agents file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Wall-clock budget of the episode's processes in seconds (default: the
    /// spec's `agent.limits.wall_time_secs` less a small margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
}

/// One entry of an agents file: a model behind an endpoint, or an agent program.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
// A handful of entries per run: boxing would only complicate every match.
#[allow(clippy::large_enum_variant)]
pub enum AgentConfig {
    /// An entry with `provider`.
    Model(ModelConfig),
    /// An entry with `command`.
    Exec(ExecConfig),
}

impl AgentConfig {
    /// The entry's name.
    pub fn name(&self) -> &str {
        match self {
            AgentConfig::Model(m) => &m.name,
            AgentConfig::Exec(e) => &e.name,
        }
    }
}

/// Run-wide options the CLI passes to every model agent it builds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentOptions {
    /// Store every request/response pair under this directory (`--record DIR`).
    pub record: Option<PathBuf>,
    /// Serve responses from this directory instead of the network (`--replay DIR`).
    /// No API key is needed, and a request missing from it is an error.
    pub replay: Option<PathBuf>,
    /// Run seed, stated in a recording's manifest.
    pub seed: u64,
    /// SHA-256 (hex) of the agents file the agents came from, stated in a
    /// recording's manifest and checked on replay.
    pub agents_file_sha256: Option<String>,
}

/// An agent backed by a chat model over HTTP.
pub(crate) struct ModelAgent {
    pub cfg: ModelConfig,
    pub endpoint: Endpoint,
}

/// Builds a model agent, reading its API key from the configured environment
/// variable. A missing key is a configuration error naming the variable,
/// except when replaying (no request leaves the machine).
pub fn model_agent(cfg: &ModelConfig, opts: &AgentOptions) -> Result<Arc<dyn Agent>, AgentError> {
    let var = cfg
        .api_key_env
        .clone()
        .unwrap_or_else(|| cfg.provider.default_api_key_env().to_string());
    let key = if var.is_empty() {
        None
    } else {
        match std::env::var(&var) {
            Ok(k) if !k.is_empty() => Some(k),
            _ if opts.replay.is_some() => None,
            _ => {
                return Err(AgentError::Config(format!(
                    "agent `{}`: environment variable {var} is not set; export the API key \
                     there, or set `api_key_env` to another variable (\"\" for none)",
                    cfg.name
                )));
            }
        }
    };
    model_agent_with_key(cfg, key, opts)
}

/// Builds a model agent with an explicit API key (or none), for programs that
/// embed Assay and hold the key themselves.
pub fn model_agent_with_key(
    cfg: &ModelConfig,
    key: Option<String>,
    opts: &AgentOptions,
) -> Result<Arc<dyn Agent>, AgentError> {
    if opts.record.is_some() && opts.replay.is_some() {
        return Err(AgentError::Config(
            "--record and --replay cannot be used together".into(),
        ));
    }
    let bad = |what: &str| AgentError::Config(format!("agent `{}`: {what}", cfg.name));
    if crate::is_reserved_name(&cfg.name) {
        return Err(bad(
            "the `control:` namespace is reserved for the built-in control agents",
        ));
    }
    if cfg.model.is_empty() {
        return Err(bad("`model` is empty"));
    }
    let timeout = cfg.timeout_secs.unwrap_or(120.0);
    if !(timeout.is_finite() && timeout > 0.0) {
        return Err(bad("`timeout_secs` must be a positive number"));
    }
    if cfg.concurrency == Some(0) {
        return Err(bad("`concurrency` must be at least 1"));
    }
    if cfg.response_bytes == Some(0) {
        return Err(bad("`response_bytes` must be at least 1"));
    }
    check_request_fields(cfg).map_err(|what| bad(&what))?;
    let base_url = cfg
        .base_url
        .clone()
        .unwrap_or_else(|| cfg.provider.default_base_url().to_string());
    if reqwest::Url::parse(&base_url).is_err() {
        return Err(bad(&format!("`base_url` {base_url:?} is not a URL")));
    }
    let mut headers = Vec::new();
    match cfg.provider {
        Provider::Openai => {
            if let Some(k) = key {
                headers.push(("authorization".to_string(), format!("Bearer {k}")));
            }
        }
        Provider::OpenaiResponses => {
            if let Some(k) = key {
                headers.push(("authorization".to_string(), format!("Bearer {k}")));
            }
        }
        Provider::Anthropic => {
            if let Some(k) = key {
                headers.push(("x-api-key".to_string(), k));
            }
            headers.push((
                "anthropic-version".to_string(),
                crate::anthropic::VERSION.to_string(),
            ));
        }
    }
    let endpoint = Endpoint::new(EndpointConfig {
        base_url,
        headers,
        timeout: Duration::from_secs_f64(timeout),
        retries: cfg.retries.unwrap_or(4),
        concurrency: cfg.concurrency.unwrap_or(8),
        backoff: Duration::from_millis(cfg.backoff_ms.unwrap_or(1000)),
        seed: cfg.seed.unwrap_or(0),
        record: opts.record.clone(),
        replay: opts.replay.clone(),
        run_seed: opts.seed,
        agents_file_sha256: opts.agents_file_sha256.clone(),
        breaker: cfg.breaker.unwrap_or(5),
        response_bytes: cfg.response_bytes.unwrap_or(DEFAULT_RESPONSE_BYTES),
    })?;
    Ok(Arc::new(ModelAgent {
        cfg: cfg.clone(),
        endpoint,
    }))
}

/// Fields of a request body the adapter owns: the conversation, the tools,
/// the system prompt and the model come from the case and the config, and a
/// streamed reply cannot be read. `extra_body` may set any other field.
const OWNED_FIELDS: [(&str, &str); 8] = [
    ("model", "set `model` instead"),
    ("messages", "the conversation comes from the case"),
    ("input", "the conversation comes from the case"),
    ("system", "the system prompt comes from the case"),
    ("instructions", "the system prompt comes from the case"),
    ("tools", "the tools come from the case"),
    (
        "tool_choice",
        "set `tool_choice` instead (it is sent only when tools are offered)",
    ),
    ("stream", "streamed replies are not supported"),
];

/// Checks `extra_body` and `tool_choice`: an override of what the case
/// defines would make the evaluation measure something else, so it is an
/// error naming the field and what to do instead.
fn check_request_fields(cfg: &ModelConfig) -> Result<(), String> {
    if let Some(extra) = &cfg.extra_body {
        for (field, why) in OWNED_FIELDS {
            match extra.get(field) {
                None => {}
                Some(serde_json::Value::Bool(false)) if field == "stream" => {}
                Some(_) => {
                    return Err(format!(
                        "`extra_body` may not set `{field}`: {why}; remove it from `extra_body`"
                    ));
                }
            }
        }
    }
    if let Some(choice) = &cfg.tool_choice {
        let ok = match cfg.provider {
            Provider::Anthropic => choice.get("type").is_some_and(|t| t.is_string()),
            Provider::Openai | Provider::OpenaiResponses => {
                choice.is_string() || choice.get("type").is_some_and(|t| t.is_string())
            }
        };
        if !ok {
            let want = match cfg.provider {
                Provider::Anthropic => "an object such as {type: any} or {type: auto}",
                _ => "\"auto\", \"required\", \"none\" or an object with a `type`",
            };
            return Err(format!(
                "`tool_choice` {choice} is not valid for provider {}; expected {want}",
                cfg.provider.label()
            ));
        }
    }
    Ok(())
}

/// Resolves `openai:MODEL`, `openai-responses:MODEL` or `anthropic:MODEL` to a
/// model agent with default options, or `None` for any other name.
pub fn model_agent_from_name(
    name: &str,
    opts: &AgentOptions,
) -> Option<Result<Arc<dyn Agent>, AgentError>> {
    let (provider, model) = if let Some(m) = name.strip_prefix("openai:") {
        (Provider::Openai, m)
    } else if let Some(m) = name.strip_prefix("anthropic:") {
        (Provider::Anthropic, m)
    } else if let Some(m) = name.strip_prefix("openai-responses:") {
        (Provider::OpenaiResponses, m)
    } else {
        return None;
    };
    Some(model_agent(&ModelConfig::new(name, provider, model), opts))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    agents: Vec<serde_json::Value>,
}

/// Reads the agent entries of an agents file (`agents: [...]`) without
/// building them; names must be unique. An entry with `command` is an agent
/// program, any other a model agent; a relative `cwd` is made relative to the
/// file's folder.
pub fn read_agents_file(path: &Path) -> Result<Vec<AgentConfig>, AgentError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AgentError::Config(format!("cannot read {}: {e}", path.display())))?;
    parse_agents(&text, path)
}

fn parse_agents(text: &str, path: &Path) -> Result<Vec<AgentConfig>, AgentError> {
    let value = assay_spec::yaml::parse_value(text).map_err(|(msg, pos)| {
        AgentError::Config(format!(
            "{}:{}:{}: {msg}",
            path.display(),
            pos.line,
            pos.col
        ))
    })?;
    let file: AgentsFile = serde_json::from_value(value)
        .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let agents = file
        .agents
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let what = |e: serde_json::Error| {
                AgentError::Config(format!("{}: agent {}: {e}", path.display(), i + 1))
            };
            if v.get("command").is_some() {
                let mut e: ExecConfig = serde_json::from_value(v).map_err(what)?;
                if let Some(c) = e.cwd.take() {
                    e.cwd = Some(if c.is_relative() { base.join(c) } else { c });
                }
                Ok(AgentConfig::Exec(e))
            } else {
                serde_json::from_value(v)
                    .map(AgentConfig::Model)
                    .map_err(what)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = BTreeMap::new();
    for (i, a) in agents.iter().enumerate() {
        if a.name().is_empty() {
            return Err(AgentError::Config(format!(
                "{}: an agent has an empty `name`",
                path.display()
            )));
        }
        if crate::is_reserved_name(a.name()) {
            return Err(AgentError::Config(format!(
                "{}: agent {} (`{}`): the `control:` namespace is reserved for the built-in \
                 control agents; give this agent another name",
                path.display(),
                i + 1,
                a.name()
            )));
        }
        if seen.insert(a.name().to_string(), ()).is_some() {
            return Err(AgentError::Config(format!(
                "{}: agent name `{}` is used twice",
                path.display(),
                a.name()
            )));
        }
    }
    if agents.is_empty() {
        return Err(AgentError::Config(format!(
            "{}: `agents` is empty",
            path.display()
        )));
    }
    Ok(agents)
}

/// Builds every model agent of an agents file with default run options; an
/// agent program in it is a configuration error here (`assay-mcp` builds those).
pub fn agents_from_file(path: &Path) -> Result<Vec<Arc<dyn Agent>>, AgentError> {
    agents_from_file_with(path, &AgentOptions::default())
}

/// Like [`agents_from_file`], with the run's record/replay options.
pub fn agents_from_file_with(
    path: &Path,
    opts: &AgentOptions,
) -> Result<Vec<Arc<dyn Agent>>, AgentError> {
    read_agents_file(path)?
        .iter()
        .map(|c| match c {
            AgentConfig::Model(m) => model_agent(m, opts),
            AgentConfig::Exec(e) => Err(AgentError::Config(format!(
                "agent `{}` is an agent program; build it with assay_mcp::agent_from_config",
                e.name
            ))),
        })
        .collect()
}

/// Maps world tool names (`files.read`) to names every provider accepts
/// (`^[a-zA-Z0-9_-]{1,64}$`): `.` becomes `__`, other characters `_`. The
/// reverse map gives back the world name; a name the model invents is turned
/// back by replacing `__` with `.`, and the runner then denies it.
pub(crate) struct ToolNames {
    wire: Vec<String>,
    back: BTreeMap<String, String>,
}

impl ToolNames {
    pub fn new(tools: &[ToolSpec]) -> Self {
        let mut wire = Vec::with_capacity(tools.len());
        let mut back = BTreeMap::new();
        for t in tools {
            let mut w: String = t
                .name
                .replace('.', "__")
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            w.truncate(60);
            let mut n = 2;
            let stem = w.clone();
            while back.contains_key(&w) {
                w = format!("{stem}_{n}");
                n += 1;
            }
            back.insert(w.clone(), t.name.clone());
            wire.push(w);
        }
        Self { wire, back }
    }

    /// Provider-safe name of the i-th tool.
    pub fn wire(&self, i: usize) -> &str {
        &self.wire[i]
    }

    /// World name for a name the model used.
    pub fn world(&self, wire: &str) -> String {
        self.back
            .get(wire)
            .cloned()
            .unwrap_or_else(|| wire.replace("__", "."))
    }
}

#[async_trait]
impl Agent for ModelAgent {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn concurrency(&self) -> Option<usize> {
        Some(self.cfg.concurrency.unwrap_or(8))
    }

    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let wire: &dyn Wire = match self.cfg.provider {
            Provider::Openai => &ChatCompletions,
            Provider::Anthropic => &Messages,
            Provider::OpenaiResponses => &Responses,
        };
        let r = crate::agent_loop::run(self, wire, env).await;
        r.map_err(|e| match e {
            AgentError::Backend(m) => AgentError::Backend(format!(
                "{} ({}): {m}",
                self.cfg.provider.label(),
                self.cfg.model
            )),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tool_names_round_trip() {
        let t = |n: &str| ToolSpec {
            name: n.into(),
            description: String::new(),
            parameters: json!({}),
        };
        let names = ToolNames::new(&[t("files.read"), t("mail.send"), t("files__read")]);
        assert_eq!(names.wire(0), "files__read");
        assert_eq!(names.wire(1), "mail__send");
        assert_eq!(names.wire(2), "files__read_2");
        assert_eq!(names.world("files__read"), "files.read");
        assert_eq!(names.world("files__read_2"), "files__read");
        assert_eq!(names.world("shell__exec"), "shell.exec");
    }

    #[test]
    fn agents_file_rejects_unknown_fields_and_duplicates() {
        let p = Path::new("agents.yaml");
        let ok = "agents:\n  - { name: a, provider: openai, model: m, temperature: 0 }\n";
        match &parse_agents(ok, p).unwrap()[0] {
            AgentConfig::Model(m) => assert_eq!(m.temperature, Some(0.0)),
            other => panic!("{other:?}"),
        }
        let typo = "agents:\n  - { name: a, provider: openai, model: m, temprature: 0 }\n";
        let e = parse_agents(typo, p).unwrap_err().to_string();
        assert!(e.contains("temprature"), "{e}");
        let dup = "agents:\n  - { name: a, provider: openai, model: m }\n  - { name: a, provider: anthropic, model: m }\n";
        assert!(
            parse_agents(dup, p)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let prov = "agents:\n  - { name: a, provider: gemini, model: m }\n";
        assert!(
            parse_agents(prov, p)
                .unwrap_err()
                .to_string()
                .contains("gemini")
        );
    }
}
