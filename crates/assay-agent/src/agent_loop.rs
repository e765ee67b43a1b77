//! The one agent loop every model adapter shares. A [`Wire`] protocol only
//! turns a provider-neutral conversation into a request body and a response
//! body into a provider-neutral [`Parsed`] reply; everything else lives here,
//! once: the conversation, request numbering, tool names, argument repair,
//! executing calls through [`Env`] in order, replies, usage and stops.
//!
//! Keeping one copy is what keeps the providers from drifting apart: empty
//! arguments, schema fallback, fallback call ids and malformed calls behave the
//! same whichever protocol the model speaks.

use serde_json::{Map, Value, json};

use crate::http::{Failure, Reply, RequestAt};
use crate::model::{ModelAgent, ModelConfig, ToolNames};
use crate::{AgentError, Env, Usage};

/// A tool as offered on the wire: provider-safe name and an object schema.
pub(crate) struct ToolDef {
    /// Provider-safe name (`files__read`).
    pub name: String,
    /// Description shown to the model.
    pub description: String,
    /// JSON Schema of the arguments; `{"type": "object"}` when the world's
    /// schema is not an object (every provider requires one).
    pub parameters: Value,
}

/// A tool call as it stays in the conversation: always a usable id and
/// arguments that are a JSON object, whatever the model sent.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// The server's id, or `call_N` (numbered per episode) when it gave none.
    pub id: String,
    /// Provider-safe name as the model used it.
    pub name: String,
    /// Arguments sent back in the history: the model's own text when it was a
    /// JSON object, `{}` when it was empty or malformed.
    pub arguments_text: String,
    /// The same arguments as an object (for protocols that send objects).
    pub arguments: Map<String, Value>,
}

/// What the runner answered to one call, as the model will see it.
#[derive(Debug, Clone)]
pub(crate) struct CallResult {
    /// Id of the call answered.
    pub id: String,
    /// Text returned to the model.
    pub output: String,
    /// The call failed (denied, unknown tool, malformed arguments).
    pub is_error: bool,
}

/// One entry of the provider-neutral conversation.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A user turn.
    User(String),
    /// What the model answered: text and tool calls, plus the provider's raw
    /// reply, which only the protocol that produced it reads back (Anthropic
    /// thinking blocks must be echoed as returned).
    Assistant {
        text: String,
        calls: Vec<Call>,
        raw: Value,
    },
    /// The results of the previous assistant item's calls, in call order.
    Results(Vec<CallResult>),
}

/// A tool call as parsed from a response, before repair.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawCall {
    /// Id the server gave, if any.
    pub id: Option<String>,
    /// Name the model used.
    pub name: String,
    /// Arguments as sent: a JSON string (Chat Completions, Responses), an
    /// object (Anthropic), or absent.
    pub arguments: Option<Value>,
}

/// Token counts of one response. `input` never includes cache tokens, so
/// `input + cache_read + cache_write` is the whole prompt for every provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

/// A response in provider-neutral form.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    /// Text of the reply (joined when the provider splits it).
    pub text: String,
    /// Tool calls in the order given.
    pub calls: Vec<RawCall>,
    /// Token counts.
    pub tokens: Tokens,
    /// Cut off by the token limit.
    pub truncated: bool,
}

/// One wire protocol: how to build a request and read a response.
pub(crate) trait Wire: Sync {
    /// Path appended to the base URL (`/chat/completions`).
    fn path(&self) -> &'static str;
    /// The request body for this conversation, without `tool_choice` and
    /// `extra_body` (the loop adds those the same way for every protocol).
    fn body(
        &self,
        cfg: &ModelConfig,
        system: &str,
        tools: &[ToolDef],
        items: &[Item],
    ) -> Map<String, Value>;
    /// Reads a response body; `Err` names what is missing (the request is
    /// then retried as a malformed response).
    fn parse(&self, body: &Value) -> Result<Parsed, String>;
}

/// Whether a response can drive the loop: parsed, every call named, and text
/// or calls present. An empty reply cut off by the token limit is accepted as
/// the turn's (empty) reply: asking again with the same cap would most likely
/// be cut off again, so retrying it would only spend the retry budget.
fn usable(wire: &dyn Wire, body: &Value) -> Result<(), String> {
    let p = wire.parse(body)?;
    if p.calls.iter().any(|c| c.name.is_empty()) {
        return Err("a tool call has no name".into());
    }
    if p.calls.is_empty() && p.text.is_empty() && !p.truncated {
        return Err("the model returned neither content nor tool calls".into());
    }
    Ok(())
}

/// Arguments as the model sent them, judged: `Ok` with the object (and the
/// text to echo) when usable, `Err` with the raw text when not a JSON object.
/// Absent, `null` and blank arguments mean `{}`.
fn judge_arguments(raw: Option<&Value>) -> Result<(String, Map<String, Value>), String> {
    match raw {
        None | Some(Value::Null) => Ok(("{}".into(), Map::new())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(("{}".into(), Map::new())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Ok((s.clone(), m)),
            _ => Err(s.clone()),
        },
        Some(Value::Object(m)) => Ok((Value::Object(m.clone()).to_string(), m.clone())),
        Some(other) => Err(other.to_string()),
    }
}

/// What the model is told when its arguments were not a JSON object.
fn malformed_message(raw: &str, world: &str) -> String {
    let mut shown: String = raw.chars().take(200).collect();
    if shown.len() < raw.len() {
        shown.push_str("...");
    }
    format!(
        "the arguments of this call were not valid JSON (a JSON object is required; \
         received `{shown}`), so the call was not executed as intended. \
         Call the tool again with the arguments as one complete JSON object. \
         (The tool answered: {world})"
    )
}

/// Plays every user turn of the episode through `env` over `wire`.
pub(crate) async fn run(
    agent: &ModelAgent,
    wire: &dyn Wire,
    env: &mut dyn Env,
) -> Result<(), AgentError> {
    let cfg = &agent.cfg;
    let names = ToolNames::new(env.tools());
    let tools: Vec<ToolDef> = env
        .tools()
        .iter()
        .enumerate()
        .map(|(i, t)| ToolDef {
            name: names.wire(i).to_string(),
            description: t.description.clone(),
            parameters: if t.parameters.is_object() {
                t.parameters.clone()
            } else {
                json!({"type": "object"})
            },
        })
        .collect();
    let system = env.system_prompt().to_string();
    let episode = env.episode_key();
    let mut items: Vec<Item> = Vec::new();
    let (mut turn_no, mut index, mut fallback_id) = (0u32, 0u32, 0u32);
    while let Some(turn) = env.next_user_turn() {
        turn_no += 1;
        items.push(Item::User(turn.text));
        loop {
            let mut body = wire.body(cfg, &system, &tools, &items);
            if !tools.is_empty()
                && let Some(choice) = &cfg.tool_choice
            {
                body.insert("tool_choice".into(), choice.clone());
            }
            if let Some(extra) = &cfg.extra_body {
                for (k, v) in extra {
                    body.insert(k.clone(), v.clone());
                }
            }
            let body = Value::Object(body);
            index += 1;
            let at = RequestAt {
                episode: episode.clone(),
                turn: turn_no,
                index,
            };
            let outcome = agent
                .endpoint
                .post(&at, wire.path(), &body, |b| usable(wire, b))
                .await;
            let (raw, parsed) = account(env, wire, outcome)?;
            let mut calls = Vec::with_capacity(parsed.calls.len());
            let mut verdicts = Vec::with_capacity(parsed.calls.len());
            for c in parsed.calls {
                let id = c.id.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                    fallback_id += 1;
                    format!("call_{fallback_id}")
                });
                let judged = judge_arguments(c.arguments.as_ref());
                let (arguments_text, arguments) = match &judged {
                    Ok((t, m)) => (t.clone(), m.clone()),
                    Err(_) => ("{}".to_string(), Map::new()),
                };
                verdicts.push(judged.map(|(_, m)| m));
                calls.push(Call {
                    id,
                    name: c.name,
                    arguments_text,
                    arguments,
                });
            }
            items.push(Item::Assistant {
                text: parsed.text.clone(),
                calls: calls.clone(),
                raw,
            });
            if calls.is_empty() {
                env.reply(&parsed.text);
                break;
            }
            let mut results = Vec::with_capacity(calls.len());
            for (call, verdict) in calls.iter().zip(verdicts) {
                let world = names.world(&call.name);
                let args = match &verdict {
                    Ok(m) => Value::Object(m.clone()),
                    Err(raw) => Value::String(raw.clone()),
                };
                let Ok(result) = env.call_tool(Some(call.id.clone()), &world, args) else {
                    return Ok(());
                };
                let (output, is_error) = match &verdict {
                    Err(raw) => (malformed_message(raw, &result.output), true),
                    Ok(_) => (result.output, !result.ok),
                };
                results.push(CallResult {
                    id: call.id.clone(),
                    output,
                    is_error,
                });
            }
            items.push(Item::Results(results));
        }
    }
    Ok(())
}

/// Reports a request's usage to the episode and turns a failure into the
/// agent error that makes the episode `error`. A failed request still
/// reports its latency and retries.
fn account(
    env: &mut dyn Env,
    wire: &dyn Wire,
    outcome: Result<Reply, Failure>,
) -> Result<(Value, Parsed), AgentError> {
    match outcome {
        Ok(r) => {
            // `post` only returns bodies `usable` accepted, so this parses.
            let parsed = wire.parse(&r.body).map_err(AgentError::Backend)?;
            env.record_usage(Usage {
                input_tokens: parsed.tokens.input,
                output_tokens: parsed.tokens.output,
                latency_ms: r.latency_ms,
                retries: r.retries,
                cache_read_tokens: parsed.tokens.cache_read,
                cache_write_tokens: parsed.tokens.cache_write,
                truncated: parsed.truncated,
            });
            Ok((r.body, parsed))
        }
        Err(f) => {
            if let Some((limit, detail)) = &f.cap {
                env.record_cap("response_bytes", *limit as f64, detail);
            }
            env.record_usage(Usage {
                latency_ms: f.latency_ms,
                retries: f.retries,
                ..Usage::default()
            });
            Err(AgentError::Backend(f.reason))
        }
    }
}

/// Reads a token count at `pointer`, 0 when absent.
pub(crate) fn count(body: &Value, pointer: &str) -> u64 {
    body.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_judged_the_same_for_every_provider() {
        let ok = |v: Option<Value>| judge_arguments(v.as_ref()).unwrap();
        assert_eq!(ok(None).0, "{}");
        assert_eq!(ok(Some(Value::Null)).0, "{}");
        assert_eq!(ok(Some(json!("  "))).0, "{}");
        assert_eq!(ok(Some(json!(r#"{"a": 1}"#))).0, r#"{"a": 1}"#);
        assert_eq!(ok(Some(json!({"a": 1}))).1["a"], 1);
        let bad = |v: Value| judge_arguments(Some(&v)).unwrap_err();
        assert_eq!(bad(json!(r#"{"id": 12345"#)), r#"{"id": 12345"#);
        assert_eq!(bad(json!("[1, 2]")), "[1, 2]");
        assert_eq!(bad(json!("\"just text\"")), "\"just text\"");
        assert_eq!(bad(json!("not json")), "not json");
        assert_eq!(bad(json!([1, 2])), "[1,2]");
    }
}
