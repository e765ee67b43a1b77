//! OTLP/JSON export: the output deserialises into the official protobuf types
//! (`opentelemetry-proto`'s `ExportTraceServiceRequest`), with one trace per
//! episode, correct parent links, GenAI span names and attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use assay_report::{EpisodeResult, RunResults, Status, UsageTotals, otel, otel_trace_id};
use assay_trace::{Effect, EffectKind, Event, EventKind, Role};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/run")
}

fn fixture() -> RunResults {
    let text = std::fs::read_to_string(fixture_dir().join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_trace(e: &EpisodeResult) -> Option<Vec<Event>> {
    let text = std::fs::read_to_string(fixture_dir().join(&e.trace)).ok()?;
    Some(assay_trace::parse_jsonl(&text).unwrap())
}

fn request(json: &str) -> ExportTraceServiceRequest {
    serde_json::from_str(json).unwrap()
}

fn spans(req: &ExportTraceServiceRequest) -> Vec<&Span> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attr(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        _ => None,
    }
}

fn by_trace<'a>(all: &[&'a Span]) -> BTreeMap<Vec<u8>, Vec<&'a Span>> {
    let mut map: BTreeMap<Vec<u8>, Vec<&Span>> = BTreeMap::new();
    for s in all {
        map.entry(s.trace_id.clone()).or_default().push(s);
    }
    map
}

/// Checks ids, parent links and time containment; returns the root.
fn check_tree<'a>(trace: &[&'a Span]) -> &'a Span {
    let roots: Vec<&&Span> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root per trace");
    let ids: BTreeSet<&Vec<u8>> = trace.iter().map(|s| &s.span_id).collect();
    assert_eq!(ids.len(), trace.len(), "span ids are unique");
    for s in trace {
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.span_id.len(), 8);
        assert!(s.start_time_unix_nano > 0 && s.start_time_unix_nano < s.end_time_unix_nano);
        if !s.parent_span_id.is_empty() {
            let parent = trace
                .iter()
                .find(|p| p.span_id == s.parent_span_id)
                .expect("parent in the same trace");
            assert!(parent.start_time_unix_nano <= s.start_time_unix_nano);
            assert!(s.end_time_unix_nano <= parent.end_time_unix_nano);
        }
    }
    roots[0]
}

#[test]
fn one_trace_per_episode_with_tool_spans() {
    let run = fixture();
    let json = otel(&run, &read_trace).unwrap();
    let req = request(&json);
    let all = spans(&req);
    let traces = by_trace(&all);
    assert_eq!(traces.len(), run.episodes.len());
    let mut saw_tool = false;
    for e in &run.episodes {
        let id = hex_decode(&otel_trace_id(e));
        let trace = &traces[&id];
        let root = check_tree(trace);
        assert_eq!(root.name, format!("invoke_agent {}", e.agent));
        assert_eq!(
            str_attr(root, "gen_ai.operation.name"),
            Some("invoke_agent")
        );
        assert_eq!(str_attr(root, "gen_ai.agent.name"), Some(e.agent.as_str()));
        assert_eq!(str_attr(root, "assay.spec"), Some(e.spec.as_str()));
        assert_eq!(str_attr(root, "assay.case"), Some(e.case.as_str()));
        let verdict = str_attr(root, "assay.verdict").unwrap();
        match e.attack_success {
            Some(true) => assert_eq!(verdict, "attack_success"),
            _ if !e.violations.is_empty() => assert_eq!(verdict, "violation"),
            _ => assert_eq!(verdict, "pass"),
        }
        assert_eq!(
            attr(root, "assay.attack_success"),
            e.attack_success.map(AnyValue::BoolValue).as_ref()
        );
        let rules: Vec<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(
            str_attr(root, "assay.violations"),
            Some(rules.join(",").as_str())
        );
        assert_eq!(
            root.events
                .iter()
                .filter(|ev| ev.name == "assay.violation")
                .count(),
            e.violations.len()
        );
        // Control agents use no model: tools hang off the root, no chat spans.
        assert!(trace.iter().all(|s| !s.name.starts_with("chat ")));
        let events = read_trace(e).unwrap();
        let calls: Vec<(&Option<String>, &String, u64)> = events
            .iter()
            .filter_map(|ev| match &ev.kind {
                EventKind::ToolCall { call_id, tool, .. } => Some((call_id, tool, ev.seq)),
                _ => None,
            })
            .collect();
        let tools: Vec<&&Span> = trace
            .iter()
            .filter(|s| s.name.starts_with("execute_tool "))
            .collect();
        assert_eq!(tools.len(), calls.len());
        for (span, (_, tool, _)) in tools.iter().zip(&calls) {
            saw_tool = true;
            assert_eq!(span.name, format!("execute_tool {tool}"));
            assert_eq!(str_attr(span, "gen_ai.tool.name"), Some(tool.as_str()));
            assert_eq!(
                str_attr(span, "gen_ai.operation.name"),
                Some("execute_tool")
            );
            assert_eq!(span.parent_span_id, root.span_id);
        }
        // Every effect is an event on its tool call's span.
        let effects = events
            .iter()
            .filter(|ev| matches!(ev.kind, EventKind::Effect { .. }))
            .count();
        let effect_events: usize = tools
            .iter()
            .map(|s| {
                s.events
                    .iter()
                    .filter(|ev| ev.name.starts_with("assay.effect."))
                    .count()
            })
            .sum();
        assert_eq!(effect_events, effects);
    }
    assert!(saw_tool);
    // Deterministic.
    assert_eq!(json, otel(&run, &read_trace).unwrap());
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn missing_traces_give_root_spans_only() {
    let run = fixture();
    let req = request(&otel(&run, &|_| None).unwrap());
    let all = spans(&req);
    assert_eq!(all.len(), run.episodes.len());
    for s in all {
        assert!(s.parent_span_id.is_empty());
        assert_eq!(
            attr(s, "assay.trace_available"),
            Some(&AnyValue::BoolValue(false))
        );
        assert!(s.events.iter().any(|e| e.name == "assay.trace_unavailable"));
    }
}

/// A model agent's episode, built by hand: a user turn, then a reply with a
/// tool call (an effect, an injected payload), a failing tool call, a final
/// reply and an endpoint error.
fn model_episode() -> (EpisodeResult, Vec<Event>) {
    let mut e = fixture().episodes[0].clone();
    e.agent = "openai:gpt-4o-mini".into();
    e.episode = "model-episode".into();
    e.status = Status::Error;
    e.error = Some("endpoint returned 500".into());
    e.usage = Some(UsageTotals {
        requests: 2,
        input_tokens: 1200,
        output_tokens: 80,
        ..Default::default()
    });
    let kinds = vec![
        EventKind::Message {
            role: Role::User,
            content: "Answer mail 1".into(),
        },
        EventKind::Message {
            role: Role::Assistant,
            content: "Reading it.".into(),
        },
        EventKind::ToolCall {
            call_id: Some("call_1".into()),
            tool: "mail.read".into(),
            args: serde_json::json!({"id": 1}),
        },
        EventKind::Effect {
            call: 3,
            effect: Effect::new(EffectKind::Read, [("mail", "1")]),
        },
        EventKind::InjectionDelivered {
            call: 3,
            threat: "leak-stripe-key".into(),
            slot: "inbox-body".into(),
        },
        EventKind::ToolResult {
            call: 3,
            ok: true,
            output: "Hi".into(),
        },
        EventKind::ToolCall {
            call_id: Some("call_2".into()),
            tool: "files.read".into(),
            args: serde_json::json!({"path": "/nope"}),
        },
        EventKind::ToolResult {
            call: 7,
            ok: false,
            output: "no such file".into(),
        },
        EventKind::Message {
            role: Role::Assistant,
            content: "Done.".into(),
        },
        EventKind::Error {
            source: "agent".into(),
            message: "endpoint returned 500".into(),
        },
    ];
    // Sequence numbers follow the kinds, after an episode_start at 0.
    let mut events = vec![Event {
        seq: 0,
        prev: assay_trace::GENESIS.into(),
        kind: EventKind::EpisodeStart(Box::default()),
    }];
    for (i, k) in kinds.into_iter().enumerate() {
        events.push(Event {
            seq: i as u64 + 1,
            prev: String::new(),
            kind: k,
        });
    }
    e.events = events.len();
    (e, events)
}

#[test]
fn model_turns_become_chat_spans() {
    let mut run = fixture();
    let (e, events) = model_episode();
    run.episodes = vec![e.clone()];
    let req = request(&otel(&run, &|_| Some(events.clone())).unwrap());
    let all = spans(&req);
    let root = check_tree(&all);
    assert_eq!(str_attr(root, "gen_ai.provider.name"), Some("openai"));
    assert_eq!(str_attr(root, "gen_ai.request.model"), Some("gpt-4o-mini"));
    assert_eq!(
        attr(root, "gen_ai.usage.input_tokens"),
        Some(&AnyValue::IntValue(1200))
    );
    assert_eq!(
        attr(root, "gen_ai.usage.output_tokens"),
        Some(&AnyValue::IntValue(80))
    );
    assert_eq!(str_attr(root, "assay.verdict"), Some("error"));
    let status = root.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "endpoint returned 500");
    assert!(root.events.iter().any(|ev| ev.name == "assay.error"));

    let chats: Vec<&&Span> = all
        .iter()
        .filter(|s| s.name == "chat gpt-4o-mini")
        .collect();
    // Turns are inferred: agent output after an input (tool result, user
    // message) starts one. Here: message + mail.read, files.read, final reply.
    assert_eq!(chats.len(), 3, "three model turns");
    for c in &chats {
        assert_eq!(c.parent_span_id, root.span_id);
        assert_eq!(str_attr(c, "gen_ai.operation.name"), Some("chat"));
    }
    let tool = |name: &str| *all.iter().find(|s| s.name == name).unwrap();
    let read = tool("execute_tool mail.read");
    let file = tool("execute_tool files.read");
    assert_eq!(read.parent_span_id, chats[0].span_id);
    assert_eq!(file.parent_span_id, chats[1].span_id);
    assert_eq!(str_attr(read, "gen_ai.tool.call.id"), Some("call_1"));
    assert!(read.events.iter().any(|ev| ev.name == "assay.effect.read"));
    assert!(
        read.events
            .iter()
            .any(|ev| ev.name == "assay.injection_delivered")
    );
    assert_ne!(
        read.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    let st = file.status.as_ref().unwrap();
    assert_eq!(st.code, StatusCode::Error as i32);
    assert_eq!(st.message, "no such file");
}
