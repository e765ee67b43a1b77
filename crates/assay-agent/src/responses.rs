//! OpenAI Responses (`POST {base_url}/responses`), stateless (`store: false`):
//! the whole conversation goes as `input` items every time: messages,
//! `function_call` items and `function_call_output` items joined by
//! `call_id`. The loop itself is [`crate::agent_loop`].

use serde_json::{Map, Value, json};

use crate::agent_loop::{Item, Parsed, RawCall, Tokens, ToolDef, Wire, count};
use crate::model::ModelConfig;

/// The Responses protocol.
pub(crate) struct Responses;

impl Wire for Responses {
    fn path(&self) -> &'static str {
        "/responses"
    }

    fn body(
        &self,
        cfg: &ModelConfig,
        system: &str,
        tools: &[ToolDef],
        items: &[Item],
    ) -> Map<String, Value> {
        let mut input = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::User(text) => {
                    input.push(json!({"type": "message", "role": "user", "content": text}));
                }
                Item::Assistant { text, calls, .. } => {
                    // An empty reply (cut off by the token limit) is left
                    // out rather than sent as an empty message.
                    if !text.is_empty() {
                        input
                            .push(json!({"type": "message", "role": "assistant", "content": text}));
                    }
                    for c in calls {
                        input.push(json!({
                            "type": "function_call", "call_id": c.id,
                            "name": c.name, "arguments": c.arguments_text,
                        }));
                    }
                }
                Item::Results(results) => {
                    for r in results {
                        let output = if r.is_error {
                            format!("Error: {}", r.output)
                        } else {
                            r.output.clone()
                        };
                        input.push(json!({
                            "type": "function_call_output", "call_id": r.id, "output": output,
                        }));
                    }
                }
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(cfg.model));
        if !system.is_empty() {
            body.insert("instructions".into(), json!(system));
        }
        body.insert("input".into(), Value::Array(input));
        if !tools.is_empty() {
            // `strict: false`: world schemas are not written for strict mode
            // (every property required, no additional properties).
            let defs: Vec<Value> = tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "name": t.name, "description": t.description,
                        "parameters": t.parameters, "strict": false})
                })
                .collect();
            body.insert("tools".into(), Value::Array(defs));
        }
        if let Some(t) = cfg.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(m) = cfg.max_tokens {
            body.insert("max_output_tokens".into(), json!(m));
        }
        body.insert("store".into(), json!(false));
        body
    }

    fn parse(&self, body: &Value) -> Result<Parsed, String> {
        match body.get("status").and_then(Value::as_str) {
            Some("failed") | Some("cancelled") => {
                let why = body
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Err(format!("the response has status `failed`: {why}"));
            }
            _ => {}
        }
        let output = body
            .get("output")
            .and_then(Value::as_array)
            .ok_or("no `output` array")?;
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        for o in output {
            match o.get("type").and_then(Value::as_str) {
                Some("message") => {
                    for c in o
                        .get("content")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if c.get("type").and_then(Value::as_str) == Some("output_text")
                            && let Some(t) = c.get("text").and_then(Value::as_str)
                            && !t.is_empty()
                        {
                            texts.push(t);
                        }
                    }
                }
                Some("function_call") => calls.push(RawCall {
                    id: o.get("call_id").and_then(Value::as_str).map(str::to_string),
                    name: o
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: o.get("arguments").cloned(),
                }),
                // Reasoning and other items are not sent back (`store: false`
                // keeps nothing server-side to refer to).
                _ => {}
            }
        }
        // `input_tokens` includes the cached ones; `input` must not.
        let prompt = count(body, "/usage/input_tokens");
        let cached = count(body, "/usage/input_tokens_details/cached_tokens").min(prompt);
        let truncated = body.get("status").and_then(Value::as_str) == Some("incomplete")
            && body
                .pointer("/incomplete_details/reason")
                .and_then(Value::as_str)
                == Some("max_output_tokens");
        Ok(Parsed {
            text: texts.join("\n"),
            calls,
            tokens: Tokens {
                input: prompt - cached,
                output: count(body, "/usage/output_tokens"),
                cache_read: cached,
                cache_write: 0,
            },
            truncated,
        })
    }
}
