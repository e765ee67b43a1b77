//! The Anthropic adapter: Messages API with `tool_use` / `tool_result`
//! blocks, parallel tool uses executed in order, one conversation across every
//! user turn of the episode.

use serde_json::{Map, Value, json};

use crate::http::RequestAt;
use crate::model::{ModelAgent, ToolNames, account};
use crate::{AgentError, Env};

/// `anthropic-version` header sent with every request.
pub(crate) const VERSION: &str = "2023-06-01";

/// Token cap sent when none is configured (the API requires one).
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Whether a Messages response can drive the loop: content blocks with text or
/// at least one well-formed `tool_use`.
fn check(body: &Value) -> Result<(), String> {
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array")?;
    let mut useful = false;
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                if b.get("id").and_then(Value::as_str).is_none()
                    || b.get("name").and_then(Value::as_str).is_none()
                {
                    return Err("a `tool_use` block has no `id` or `name`".into());
                }
                useful = true;
            }
            Some("text") => {
                useful |= b
                    .get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty());
            }
            _ => {}
        }
    }
    if !useful {
        return Err("the model returned neither content nor tool calls".into());
    }
    Ok(())
}

fn tokens(body: &Value) -> (u64, u64) {
    let n = |p: &str| body.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    (n("/usage/input_tokens"), n("/usage/output_tokens"))
}

/// A `tool_use` input: normally an object; a string is parsed as JSON when it
/// can be and otherwise passed on raw, so the runner records the malformed call.
fn arguments(input: Option<&Value>) -> Value {
    match input {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
        }
        Some(other) => other.clone(),
    }
}

pub(crate) async fn run(agent: &ModelAgent, env: &mut dyn Env) -> Result<(), AgentError> {
    let cfg = &agent.cfg;
    let names = ToolNames::new(env.tools());
    let tools: Vec<Value> = env
        .tools()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let schema = if t.parameters.is_object() {
                t.parameters.clone()
            } else {
                json!({"type": "object"})
            };
            json!({"name": names.wire(i), "description": t.description, "input_schema": schema})
        })
        .collect();
    let system = env.system_prompt().to_string();
    let mut messages: Vec<Value> = Vec::new();
    let episode = env.episode_key();
    let (mut turn_no, mut index) = (0u32, 0u32);
    while let Some(turn) = env.next_user_turn() {
        turn_no += 1;
        messages.push(json!({"role": "user", "content": turn.text}));
        loop {
            let mut body = Map::new();
            body.insert("model".into(), json!(cfg.model));
            body.insert(
                "max_tokens".into(),
                json!(cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
            );
            if !system.is_empty() {
                body.insert("system".into(), json!(system));
            }
            body.insert("messages".into(), json!(messages));
            if !tools.is_empty() {
                body.insert("tools".into(), json!(tools));
            }
            if let Some(t) = cfg.temperature {
                body.insert("temperature".into(), json!(t));
            }
            let body = Value::Object(body);
            let outcome = {
                index += 1;
                let at = RequestAt {
                    episode: episode.clone(),
                    turn: turn_no,
                    index,
                };
                agent.endpoint.post(&at, "/v1/messages", &body, check).await
            };
            let resp = account(env, outcome, tokens)?;
            let blocks = resp["content"].as_array().cloned().unwrap_or_default();
            let text: String = blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let uses: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "tool_use").collect();
            // The assistant turn goes back as returned (thinking blocks included,
            // as the API requires when tools are in play).
            messages.push(json!({"role": "assistant", "content": blocks}));
            if uses.is_empty() {
                env.reply(&text);
                break;
            }
            let mut results = Vec::with_capacity(uses.len());
            for u in uses {
                let id = u["id"].as_str().unwrap_or_default().to_string();
                let name = names.world(u["name"].as_str().unwrap_or_default());
                let result = match env.call_tool(Some(id.clone()), &name, arguments(u.get("input")))
                {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                };
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": result.output,
                });
                if !result.ok {
                    block["is_error"] = json!(true);
                }
                results.push(block);
            }
            messages.push(json!({"role": "user", "content": results}));
        }
    }
    Ok(())
}
