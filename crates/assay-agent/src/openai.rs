//! OpenAI Chat Completions (`POST {base_url}/chat/completions`): `tools` and
//! `tool_calls`, `tool` messages answering them by id. The loop itself is
//! [`crate::agent_loop`].

use serde_json::{Map, Value, json};

use crate::agent_loop::{Item, Parsed, RawCall, Tokens, ToolDef, Wire, count};
use crate::model::ModelConfig;

/// The Chat Completions protocol (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, ...).
pub(crate) struct ChatCompletions;

impl Wire for ChatCompletions {
    fn path(&self) -> &'static str {
        "/chat/completions"
    }

    fn body(
        &self,
        cfg: &ModelConfig,
        system: &str,
        tools: &[ToolDef],
        items: &[Item],
    ) -> Map<String, Value> {
        let mut messages = Vec::with_capacity(items.len() + 1);
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        for item in items {
            match item {
                Item::User(text) => messages.push(json!({"role": "user", "content": text})),
                Item::Assistant { text, calls, .. } if calls.is_empty() => {
                    messages.push(json!({"role": "assistant", "content": text}));
                }
                Item::Assistant { text, calls, .. } => messages.push(json!({
                    "role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { json!(text) },
                    "tool_calls": calls.iter().map(|c| json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments_text},
                    })).collect::<Vec<_>>(),
                })),
                Item::Results(results) => {
                    for r in results {
                        let content = if r.is_error {
                            format!("Error: {}", r.output)
                        } else {
                            r.output.clone()
                        };
                        messages.push(
                            json!({"role": "tool", "tool_call_id": r.id, "content": content}),
                        );
                    }
                }
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(cfg.model));
        body.insert("messages".into(), Value::Array(messages));
        if !tools.is_empty() {
            let defs: Vec<Value> = tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters,
                    }})
                })
                .collect();
            body.insert("tools".into(), Value::Array(defs));
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
        body
    }

    fn parse(&self, body: &Value) -> Result<Parsed, String> {
        let choice = body.pointer("/choices/0").ok_or("no `choices[0]`")?;
        let msg = choice
            .get("message")
            .filter(|m| m.is_object())
            .ok_or("no `choices[0].message`")?;
        let text = msg
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let calls = msg
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| RawCall {
                        id: c.get("id").and_then(Value::as_str).map(str::to_string),
                        name: c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        arguments: c.pointer("/function/arguments").cloned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        // `prompt_tokens` includes the cached ones; `input` must not.
        let prompt = count(body, "/usage/prompt_tokens");
        let cached = count(body, "/usage/prompt_tokens_details/cached_tokens").min(prompt);
        Ok(Parsed {
            text,
            calls,
            tokens: Tokens {
                input: prompt - cached,
                output: count(body, "/usage/completion_tokens"),
                cache_read: cached,
                cache_write: 0,
            },
            truncated: choice.get("finish_reason").and_then(Value::as_str) == Some("length"),
        })
    }
}
