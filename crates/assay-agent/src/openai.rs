//! The OpenAI-compatible adapter: Chat Completions with `tools` and
//! `tool_calls`, parallel calls executed in order, one conversation across
//! every user turn of the episode.

use serde_json::{Map, Value, json};

use crate::http::RequestAt;
use crate::model::{ModelAgent, ToolNames, account};
use crate::{AgentError, Env};

/// Whether a Chat Completions response can drive the loop: a message with
/// text or at least one well-formed tool call.
fn check(body: &Value) -> Result<(), String> {
    let msg = body
        .pointer("/choices/0/message")
        .filter(|m| m.is_object())
        .ok_or("no `choices[0].message`")?;
    let calls = msg.get("tool_calls").and_then(Value::as_array);
    if let Some(calls) = calls {
        for c in calls {
            if c.pointer("/function/name")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err("a tool call has no `function.name`".into());
            }
        }
    }
    let has_calls = calls.is_some_and(|c| !c.is_empty());
    let has_text = msg
        .get("content")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_calls && !has_text {
        return Err("the model returned neither content nor tool calls".into());
    }
    Ok(())
}

fn tokens(body: &Value) -> (u64, u64) {
    let n = |p: &str| body.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    (n("/usage/prompt_tokens"), n("/usage/completion_tokens"))
}

/// Tool arguments as the model sent them: a JSON string is parsed (an empty
/// one means no arguments); text that is not JSON is passed on as a string, so
/// the runner records the malformed call and the model sees the error.
fn arguments(raw: Option<&Value>) -> Value {
    match raw {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(s)) if s.trim().is_empty() => json!({}),
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
            json!({
                "type": "function",
                "function": {
                    "name": names.wire(i),
                    "description": t.description,
                    "parameters": t.parameters,
                }
            })
        })
        .collect();
    let mut messages = Vec::new();
    if !env.system_prompt().is_empty() {
        messages.push(json!({"role": "system", "content": env.system_prompt()}));
    }
    let mut fallback_id = 0u32;
    let episode = env.episode_key();
    let (mut turn_no, mut index) = (0u32, 0u32);
    while let Some(turn) = env.next_user_turn() {
        turn_no += 1;
        messages.push(json!({"role": "user", "content": turn.text}));
        loop {
            let mut body = Map::new();
            body.insert("model".into(), json!(cfg.model));
            body.insert("messages".into(), json!(messages));
            if !tools.is_empty() {
                body.insert("tools".into(), json!(tools));
            }
            if let Some(t) = cfg.temperature {
                body.insert("temperature".into(), json!(t));
            }
            if let Some(s) = cfg.seed {
                body.insert("seed".into(), json!(s));
            }
            if let Some(m) = cfg.max_tokens {
                body.insert("max_tokens".into(), json!(m));
            }
            let body = Value::Object(body);
            let outcome = {
                index += 1;
                let at = RequestAt {
                    episode: episode.clone(),
                    turn: turn_no,
                    index,
                };
                agent
                    .endpoint
                    .post(&at, "/chat/completions", &body, check)
                    .await
            };
            let resp = account(env, outcome, tokens)?;
            let msg = &resp["choices"][0]["message"];
            let content = msg.get("content").and_then(Value::as_str).unwrap_or("");
            let calls = msg
                .get("tool_calls")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if calls.is_empty() {
                messages.push(json!({"role": "assistant", "content": content}));
                env.reply(content);
                break;
            }
            // Echo back only the fields the API defines, with ids filled in,
            // so the next request is well-formed for any server.
            let calls: Vec<(String, String, Value)> = calls
                .iter()
                .map(|c| {
                    let id = c.get("id").and_then(Value::as_str).map_or_else(
                        || {
                            fallback_id += 1;
                            format!("call_{fallback_id}")
                        },
                        str::to_string,
                    );
                    let name = c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let args = c
                        .pointer("/function/arguments")
                        .cloned()
                        .unwrap_or(Value::Null);
                    (id, name, args)
                })
                .collect();
            messages.push(json!({
                "role": "assistant",
                "content": if content.is_empty() { Value::Null } else { json!(content) },
                "tool_calls": calls.iter().map(|(id, name, args)| json!({
                    "id": id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": match args {
                            Value::String(s) => s.clone(),
                            Value::Null => String::new(),
                            other => other.to_string(),
                        },
                    },
                })).collect::<Vec<_>>(),
            }));
            for (id, name, args) in &calls {
                let result = match env.call_tool(
                    Some(id.clone()),
                    &names.world(name),
                    arguments(Some(args)),
                ) {
                    Ok(r) => r,
                    Err(_) => return Ok(()),
                };
                let content = if result.ok {
                    result.output
                } else {
                    format!("Error: {}", result.output)
                };
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
            }
        }
    }
    Ok(())
}
