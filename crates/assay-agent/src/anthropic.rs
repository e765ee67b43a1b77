//! Anthropic Messages (`POST {base_url}/v1/messages`): `tool_use` blocks
//! answered by one user message of `tool_result` blocks. The loop itself is
//! [`crate::agent_loop`].

use serde_json::{Map, Value, json};

use crate::agent_loop::{Item, Parsed, RawCall, Tokens, ToolDef, Wire, count};
use crate::model::ModelConfig;

/// `anthropic-version` header sent with every request.
pub(crate) const VERSION: &str = "2023-06-01";

/// Token cap sent when none is configured (the API requires one).
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Messages protocol.
pub(crate) struct Messages;

/// The assistant content to send back: the blocks as returned (thinking
/// blocks included, as the API requires when tools are in play), with every
/// `tool_use` carrying the loop's id and repaired (object) input, and empty
/// text blocks dropped (the API rejects them).
fn assistant_blocks(raw: &Value, calls: &[crate::agent_loop::Call]) -> Vec<Value> {
    let mut calls = calls.iter();
    let mut out = Vec::new();
    for b in raw
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                if let Some(c) = calls.next() {
                    out.push(json!({
                        "type": "tool_use", "id": c.id, "name": c.name,
                        "input": Value::Object(c.arguments.clone()),
                    }));
                }
            }
            Some("text")
                if b.get("text")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty() => {}
            _ => out.push(b.clone()),
        }
    }
    out
}

impl Wire for Messages {
    fn path(&self) -> &'static str {
        "/v1/messages"
    }

    fn body(
        &self,
        cfg: &ModelConfig,
        system: &str,
        tools: &[ToolDef],
        items: &[Item],
    ) -> Map<String, Value> {
        let mut messages = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::User(text) => messages.push(json!({"role": "user", "content": text})),
                Item::Assistant { calls, raw, .. } => {
                    let blocks = assistant_blocks(raw, calls);
                    // An empty reply (cut off by the token limit) has no
                    // content the API would accept; the API joins the
                    // consecutive user turns this leaves.
                    if !blocks.is_empty() {
                        messages.push(json!({"role": "assistant", "content": blocks}));
                    }
                }
                Item::Results(results) => {
                    let blocks: Vec<Value> = results
                        .iter()
                        .map(|r| {
                            let mut b = json!({
                                "type": "tool_result", "tool_use_id": r.id, "content": r.output,
                            });
                            if r.is_error {
                                b["is_error"] = json!(true);
                            }
                            b
                        })
                        .collect();
                    messages.push(json!({"role": "user", "content": blocks}));
                }
            }
        }
        let mut body = Map::new();
        body.insert("model".into(), json!(cfg.model));
        body.insert(
            "max_tokens".into(),
            json!(cfg.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        );
        if !system.is_empty() {
            body.insert("system".into(), json!(system));
        }
        body.insert("messages".into(), Value::Array(messages));
        if !tools.is_empty() {
            let defs: Vec<Value> = tools
                .iter()
                .map(|t| {
                    json!({"name": t.name, "description": t.description, "input_schema": t.parameters})
                })
                .collect();
            body.insert("tools".into(), Value::Array(defs));
        }
        if let Some(t) = cfg.temperature {
            body.insert("temperature".into(), json!(t));
        }
        body
    }

    fn parse(&self, body: &Value) -> Result<Parsed, String> {
        let blocks = body
            .get("content")
            .and_then(Value::as_array)
            .ok_or("no `content` array")?;
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        for b in blocks {
            match b.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = b
                        .get("text")
                        .and_then(Value::as_str)
                        .filter(|t| !t.is_empty())
                    {
                        texts.push(t);
                    }
                }
                Some("tool_use") => calls.push(RawCall {
                    id: b.get("id").and_then(Value::as_str).map(str::to_string),
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: b.get("input").cloned(),
                }),
                _ => {}
            }
        }
        // `input_tokens` excludes cache reads and writes: three disjoint parts.
        Ok(Parsed {
            text: texts.join("\n"),
            calls,
            tokens: Tokens {
                input: count(body, "/usage/input_tokens"),
                output: count(body, "/usage/output_tokens"),
                cache_read: count(body, "/usage/cache_read_input_tokens"),
                cache_write: count(body, "/usage/cache_creation_input_tokens"),
            },
            truncated: body.get("stop_reason").and_then(Value::as_str) == Some("max_tokens"),
        })
    }
}
