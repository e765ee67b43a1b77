//! OpenTelemetry traces: every episode as an OTLP/JSON trace, so the episodes
//! of a run can be loaded into any tracing backend next to production traces.
//!
//! The output is one `ExportTraceServiceRequest` in the protobuf JSON mapping
//! (what an OTLP/HTTP collector accepts with `Content-Type: application/json`).
//! Spans follow the OpenTelemetry GenAI semantic conventions:
//!
//! - one trace per episode, its `traceId` derived from the episode's id and
//!   seed, so the same results give the same bytes;
//! - a root span `invoke_agent {agent}` with `gen_ai.operation.name`,
//!   `gen_ai.agent.name`, the provider and model when the agent name says
//!   them (`openai:MODEL`, `anthropic:MODEL`, `openai-responses:MODEL`), the
//!   episode's token usage totals, and `assay.*` attributes for the verdict;
//!   each violation is a span event `assay.violation`;
//! - for agents that use a model, one child span `chat {model}` per model
//!   turn. Traces record neither model requests nor per-request usage, so
//!   turns are inferred: agent output (a tool call or an assistant message)
//!   that follows an input (the user's message or a tool result) starts a
//!   turn, which lasts until the next one. Tool calls a model batched into
//!   one reply therefore show as separate turns; `assay.usage.requests` on
//!   the root span has the real count, and token counts sit on the root span
//!   only;
//! - one span `execute_tool {tool}` per tool call (under its turn), with
//!   `gen_ai.tool.name` and `gen_ai.tool.call.id`, status `ERROR` when the
//!   tool refused or failed, and one span event per effect and per injected
//!   payload that reached the agent.
//!
//! Trace events carry no wall-clock times, so time is synthetic: event `seq`
//! `n` happens at 2000-01-01T00:00:00Z plus `n` milliseconds. Order and
//! nesting are real; durations are not. The root span says so with
//! `assay.synthetic_time = true`. When an episode's trace is not available the
//! root span carries `assay.trace_available = false` and has no children:
//! nothing is invented.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use assay_trace::{Event, EventKind, Role as Speaker};

use crate::results::{EpisodeResult, RunResults, Status};

/// Why an OTLP document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// JSON serialisation failed.
    #[error("cannot write OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Nanoseconds since the Unix epoch of 2000-01-01T00:00:00Z: the synthetic
/// clock's zero (see the module docs).
pub const SYNTHETIC_EPOCH_NANOS: u64 = 946_684_800_000_000_000;

/// Synthetic time between two consecutive trace events, in nanoseconds.
const TICK: u64 = 1_000_000;

const KIND_INTERNAL: i64 = 1;
const STATUS_OK: i64 = 1;
const STATUS_ERROR: i64 = 2;

/// Renders a run as an OTLP/JSON `ExportTraceServiceRequest` (see the module
/// docs). `traces` returns an episode's trace events, or `None` when the trace
/// is not available.
pub fn otel(
    run: &RunResults,
    traces: &dyn Fn(&EpisodeResult) -> Option<Vec<Event>>,
) -> Result<String, OtelError> {
    let mut spans = Vec::new();
    for e in &run.episodes {
        spans.extend(episode_spans(e, traces(e).as_deref()));
    }
    let doc = json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [
                    kv_str("service.name", "assay"),
                    kv_str("service.version", &run.assay_version),
                    kv_str("assay.run.seed", &run.seed.to_string()),
                    kv_int("assay.run.epochs", i64::from(run.epochs)),
                    kv_bool("assay.run.passed", run.passed),
                ]
            },
            "scopeSpans": [{
                "scope": { "name": "assay", "version": run.assay_version },
                "spans": spans,
            }]
        }]
    });
    Ok(serde_json::to_string_pretty(&doc)?)
}

fn kv(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": value })
}

fn kv_str(key: &str, v: &str) -> Value {
    kv(key, json!({ "stringValue": v }))
}

/// OTLP/JSON writes 64-bit integers as decimal strings.
fn kv_int(key: &str, v: i64) -> Value {
    kv(key, json!({ "intValue": v.to_string() }))
}

fn kv_bool(key: &str, v: bool) -> Value {
    kv(key, json!({ "boolValue": v }))
}

fn kv_f64(key: &str, v: f64) -> Value {
    kv(key, json!({ "doubleValue": v }))
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn time(seq: u64) -> String {
    SYNTHETIC_EPOCH_NANOS
        .saturating_add(seq.saturating_mul(TICK))
        .to_string()
}

fn hash(parts: &[&str]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 32-hex-digit trace id of an episode.
pub fn otel_trace_id(e: &EpisodeResult) -> String {
    hex(&hash(&["assay-otel-trace/v1", &e.episode, &e.seed.to_string()])[..16])
}

fn span_id(trace_id: &str, index: usize) -> String {
    hex(&hash(&["assay-otel-span/v1", trace_id, &index.to_string()])[..8])
}

/// Provider and model named by an agent name, when it names them.
fn provider_model(agent: &str) -> Option<(&'static str, &str)> {
    [
        ("openai-responses:", "openai"),
        ("openai:", "openai"),
        ("anthropic:", "anthropic"),
    ]
    .into_iter()
    .find_map(|(prefix, provider)| agent.strip_prefix(prefix).map(|m| (provider, m)))
}

fn verdict(e: &EpisodeResult) -> &'static str {
    match e.status {
        Status::Error => "error",
        Status::Inconclusive => "inconclusive",
        Status::Ok if e.attack_success == Some(true) => "attack_success",
        Status::Ok if !e.violations.is_empty() => "violation",
        Status::Ok => "pass",
    }
}

struct Span {
    name: String,
    parent: Option<usize>,
    start: u64,
    end: u64,
    attributes: Vec<Value>,
    events: Vec<Value>,
    status: Option<(i64, String)>,
}

impl Span {
    fn new(name: String, parent: Option<usize>, start: u64, end: u64) -> Span {
        Span {
            name,
            parent,
            start,
            end,
            attributes: Vec::new(),
            events: Vec::new(),
            status: None,
        }
    }
}

fn span_event(name: &str, seq: u64, attributes: Vec<Value>) -> Value {
    json!({ "timeUnixNano": time(seq), "name": name, "attributes": attributes })
}

fn is_agent_output(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::ToolCall { .. }
            | EventKind::Message {
                role: Speaker::Assistant,
                ..
            }
    )
}

fn episode_spans(e: &EpisodeResult, trace: Option<&[Event]>) -> Vec<Value> {
    let last = trace
        .and_then(|t| t.last().map(|ev| ev.seq))
        .unwrap_or(e.events.saturating_sub(1) as u64);
    let mut spans = vec![Span::new(
        format!("invoke_agent {}", e.agent),
        None,
        0,
        last + 1,
    )];
    let root = &mut spans[0];
    let a = &mut root.attributes;
    a.push(kv_str("gen_ai.operation.name", "invoke_agent"));
    a.push(kv_str("gen_ai.agent.name", &e.agent));
    let model = provider_model(&e.agent);
    if let Some((provider, m)) = model {
        a.push(kv_str("gen_ai.provider.name", provider));
        a.push(kv_str("gen_ai.system", provider));
        a.push(kv_str("gen_ai.request.model", m));
    }
    if let Some(u) = &e.usage {
        a.push(kv_int("gen_ai.usage.input_tokens", int(u.input_tokens)));
        a.push(kv_int("gen_ai.usage.output_tokens", int(u.output_tokens)));
        a.push(kv_int("assay.usage.requests", int(u.requests)));
    }
    a.push(kv_str("assay.episode", &e.episode));
    a.push(kv_str("assay.spec", &e.spec));
    a.push(kv_str("assay.case", &e.case));
    a.push(kv_str("assay.case_id", &e.case_id));
    a.push(kv_int("assay.epoch", i64::from(e.epoch)));
    a.push(kv_str("assay.seed", &e.seed.to_string()));
    if let Some(t) = &e.threat {
        a.push(kv_str("assay.threat", t));
    }
    if let Some(t) = &e.technique {
        a.push(kv_str("assay.technique", t));
    }
    a.push(kv_str("assay.verdict", verdict(e)));
    if let Some(s) = e.attack_success {
        a.push(kv_bool("assay.attack_success", s));
    }
    let rules: Vec<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
    a.push(kv_str("assay.violations", &rules.join(",")));
    a.push(kv_int("assay.violation_count", rules.len() as i64));
    a.push(kv_f64("assay.utility", e.utility));
    a.push(kv_str("assay.trace", &e.trace));
    a.push(kv_bool("assay.trace_available", trace.is_some()));
    a.push(kv_bool("assay.synthetic_time", true));
    for v in &e.violations {
        let at = v.events.first().copied().unwrap_or(0);
        let events: Vec<String> = v.events.iter().map(u64::to_string).collect();
        root.events.push(span_event(
            "assay.violation",
            at,
            vec![
                kv_str("assay.rule", &v.rule),
                kv_str("assay.explanation", &v.explanation),
                kv_str("assay.events", &events.join(",")),
            ],
        ));
    }
    root.status = Some(match e.status {
        Status::Error => (
            STATUS_ERROR,
            e.error.clone().unwrap_or_else(|| "episode errored".into()),
        ),
        Status::Inconclusive => (
            STATUS_ERROR,
            "inconclusive: the world could not model what the agent did".into(),
        ),
        Status::Ok => (STATUS_OK, String::new()),
    });
    if trace.is_none() {
        root.events.push(span_event(
            "assay.trace_unavailable",
            0,
            vec![kv_str(
                "assay.note",
                "the episode's trace was not available: no child spans",
            )],
        ));
    }

    if let Some(trace) = trace {
        add_children(&mut spans, trace, model.map(|(_, m)| m), e.usage.is_some());
    }

    let trace_id = otel_trace_id(e);
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut span = json!({
                "traceId": trace_id,
                "spanId": span_id(&trace_id, i),
                "name": s.name,
                "kind": KIND_INTERNAL,
                "startTimeUnixNano": time(s.start),
                "endTimeUnixNano": time(s.end),
                "attributes": s.attributes,
            });
            if let Some(p) = s.parent {
                span["parentSpanId"] = json!(span_id(&trace_id, p));
            }
            if !s.events.is_empty() {
                span["events"] = json!(s.events);
            }
            if let Some((code, message)) = s.status {
                span["status"] = if message.is_empty() {
                    json!({ "code": code })
                } else {
                    json!({ "code": code, "message": message })
                };
            }
            span
        })
        .collect()
}

/// Adds turn and tool spans below the root (index 0).
fn add_children(spans: &mut Vec<Span>, trace: &[Event], model: Option<&str>, uses_model: bool) {
    // Turns: a maximal run of events that starts with agent output and lasts
    // until the next agent output that follows an input (tool result or user
    // message). Only agents that use a model have turns.
    let mut turn: Option<usize> = None;
    let mut after_input = true;
    // Tool call seq → span index.
    let mut calls: Vec<(u64, usize)> = Vec::new();
    for ev in trace {
        let seq = ev.seq;
        if uses_model && is_agent_output(&ev.kind) && after_input {
            let name = format!("chat {}", model.unwrap_or("model"));
            let mut s = Span::new(name, Some(0), seq, seq + 1);
            s.attributes.push(kv_str("gen_ai.operation.name", "chat"));
            if let Some(m) = model {
                s.attributes.push(kv_str("gen_ai.request.model", m));
            }
            s.attributes.push(kv_int("assay.event_seq", int(seq)));
            spans.push(s);
            turn = Some(spans.len() - 1);
            after_input = false;
        }
        if let Some(t) = turn
            && is_agent_output(&ev.kind)
        {
            spans[t].end = spans[t].end.max(seq + 1);
        }
        match &ev.kind {
            EventKind::ToolCall { call_id, tool, .. } => {
                let mut s = Span::new(
                    format!("execute_tool {tool}"),
                    Some(turn.unwrap_or(0)),
                    seq,
                    seq + 1,
                );
                s.attributes
                    .push(kv_str("gen_ai.operation.name", "execute_tool"));
                s.attributes.push(kv_str("gen_ai.tool.name", tool));
                if let Some(id) = call_id {
                    s.attributes.push(kv_str("gen_ai.tool.call.id", id));
                }
                s.attributes.push(kv_int("assay.event_seq", int(seq)));
                spans.push(s);
                calls.push((seq, spans.len() - 1));
            }
            EventKind::Effect { call, effect } => {
                if let Some(&(_, i)) = calls.iter().find(|(c, _)| c == call) {
                    let mut attrs = vec![
                        kv_str("assay.effect.kind", effect.kind.name()),
                        kv_int("assay.event_seq", int(seq)),
                    ];
                    for (k, v) in &effect.fields {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        attrs.push(kv_str(&format!("assay.effect.{k}"), &text));
                    }
                    spans[i].events.push(span_event(
                        &format!("assay.effect.{}", effect.kind.name()),
                        seq,
                        attrs,
                    ));
                    spans[i].end = spans[i].end.max(seq + 1);
                }
            }
            EventKind::InjectionDelivered {
                call, threat, slot, ..
            } => {
                if let Some(&(_, i)) = calls.iter().find(|(c, _)| c == call) {
                    spans[i].events.push(span_event(
                        "assay.injection_delivered",
                        seq,
                        vec![
                            kv_str("assay.threat", threat),
                            kv_str("assay.slot", slot),
                            kv_int("assay.event_seq", int(seq)),
                        ],
                    ));
                    spans[i].end = spans[i].end.max(seq + 1);
                }
            }
            EventKind::ToolResult { call, ok, output } => {
                after_input = true;
                if let Some(&(_, i)) = calls.iter().find(|(c, _)| c == call) {
                    spans[i].end = spans[i].end.max(seq + 1);
                    if !ok {
                        let message: String = output.chars().take(200).collect();
                        spans[i].status = Some((STATUS_ERROR, message));
                    }
                }
            }
            EventKind::Message {
                role: Speaker::User,
                ..
            } => after_input = true,
            EventKind::Error { source, message } => spans[0].events.push(span_event(
                "assay.error",
                seq,
                vec![
                    kv_str("assay.error.source", source),
                    kv_str("assay.error.message", message),
                ],
            )),
            EventKind::Limit { limit, value, .. } => spans[0].events.push(span_event(
                "assay.limit",
                seq,
                vec![
                    kv_str("assay.limit", limit),
                    kv_f64("assay.limit.value", *value),
                ],
            )),
            _ => {}
        }
    }
    // A turn ends where its last tool call ends.
    for i in 1..spans.len() {
        if let Some(p) = spans[i].parent
            && p != 0
        {
            let end = spans[i].end;
            spans[p].end = spans[p].end.max(end);
        }
    }
}
