//! Hand-built traces for tests.
#![allow(dead_code)]

use assay_trace::{Effect, EffectKind, EpisodeStart, EventKind, Payload, Role, WorldState};
use serde_json::Value;

pub struct T {
    pub events: Vec<EventKind>,
}

impl T {
    pub fn new(secrets: &[(&str, &str)]) -> T {
        T::with(secrets, None, &[])
    }

    pub fn with(
        secrets: &[(&str, &str)],
        threat: Option<&str>,
        payloads: &[(&str, &str, &str)],
    ) -> T {
        let start = EpisodeStart {
            schema_version: "assay-trace/v1".into(),
            episode: "e1".into(),
            spec: "s".into(),
            case: "benign".into(),
            agent: "test".into(),
            threat: threat.map(str::to_string),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payloads: payloads
                .iter()
                .map(|(t, s, x)| Payload {
                    threat: t.to_string(),
                    slot: s.to_string(),
                    text: x.to_string(),
                })
                .collect(),
            ..Default::default()
        };
        T {
            events: vec![EventKind::EpisodeStart(Box::new(start))],
        }
    }

    fn push(&mut self, e: EventKind) -> u64 {
        self.events.push(e);
        self.events.len() as u64 - 1
    }

    pub fn msg(&mut self, role: Role, content: &str) -> u64 {
        self.push(EventKind::Message {
            role,
            content: content.into(),
        })
    }

    pub fn call(&mut self, tool: &str, args: Value) -> u64 {
        self.push(EventKind::ToolCall {
            call_id: None,
            tool: tool.into(),
            args,
        })
    }

    /// `fields` must be a JSON object.
    pub fn effect(&mut self, call: u64, kind: EffectKind, fields: Value) -> u64 {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        self.push(EventKind::Effect {
            call,
            effect: Effect { kind, fields },
        })
    }

    pub fn result(&mut self, call: u64, output: &str) -> u64 {
        self.push(EventKind::ToolResult {
            call,
            ok: true,
            output: output.into(),
        })
    }

    pub fn deliver(&mut self, call: u64, threat: &str, slot: &str) -> u64 {
        self.push(EventKind::InjectionDelivered {
            call,
            threat: threat.into(),
            slot: slot.into(),
        })
    }

    /// A tool call with one effect and a result; returns the effect's seq.
    pub fn act(
        &mut self,
        tool: &str,
        args: Value,
        kind: EffectKind,
        fields: Value,
        output: &str,
    ) -> u64 {
        let c = self.call(tool, args);
        let e = self.effect(c, kind, fields);
        self.result(c, output);
        e
    }

    pub fn end(mut self, state: WorldState) -> Vec<EventKind> {
        self.push(EventKind::EpisodeEnd {
            reason: "completed".into(),
            state: Box::new(state),
        });
        self.events
    }
}

pub fn spec(yaml: &str) -> assay_spec::Spec {
    match assay_spec::load_str(yaml, std::path::Path::new("test.yaml")) {
        Ok(l) => l.spec,
        Err(e) => panic!("spec does not load: {:?}", e.diagnostics),
    }
}

pub fn example(rel: &str) -> assay_spec::Spec {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    match assay_spec::load_file(&p) {
        Ok(l) => l.spec,
        Err(e) => panic!("example does not load: {:?}", e.diagnostics),
    }
}

/// A spec from JSON pieces, skipping YAML validation (rules semantics only).
pub fn spec_json(forbidden: Value, success: Value, threats: Value) -> assay_spec::Spec {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "assay/v1",
        "kind": "Spec",
        "id": "t",
        "title": "t",
        "agent": { "system": "You are a helpful agent.", "tools": ["files.read"] },
        "task": { "prompt": "Please handle ticket TCK-00042 for customer 7781-AB.", "success": success },
        "threats": threats,
        "forbidden": forbidden,
    }))
    .expect("spec json")
}

/// The single forbidden rule `when`, scored on `events`: the violation if it fired.
pub fn fires(when: Value, events: &[EventKind]) -> Option<assay_rules::Violation> {
    let s = spec_json(
        serde_json::json!([{ "id": "r", "when": when }]),
        serde_json::json!([]),
        serde_json::json!([]),
    );
    let v = assay_rules::Rules::new(&s)
        .expect("compiles")
        .score(None, events)
        .expect("scores");
    v.violations.into_iter().next()
}
