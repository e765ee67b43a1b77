//! Shared helpers: real example cases, one-episode runs, trace reading.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::Agent;
use assay_report::EpisodeResult;
use assay_run::{PreparedCase, RunConfig};
use assay_trace::{EventKind, parse_jsonl, verify_jsonl};

/// The support refund example (its `/app/.env` is a secret file).
pub fn refund_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support/refund-request.yaml")
}

/// The benign case of the refund example, optionally with a wall-clock limit.
pub fn refund_benign(wall_time_secs: Option<f64>) -> Arc<PreparedCase> {
    refund_benign_with(&wall_time_secs.map_or(String::new(), |w| format!("wall_time_secs: {w}")))
}

/// The benign case of the refund example with `agent.limits: { LIMITS }`
/// (e.g. `message_bytes: 1000`; empty for the defaults).
pub fn refund_benign_with(limits: &str) -> Arc<PreparedCase> {
    let path = refund_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    if !limits.is_empty() {
        let anchor =
            "  tools: [mail.list, mail.read, mail.send, http.get, files.read, memory.write]\n";
        assert!(
            text.contains(anchor),
            "example changed; update the test anchor"
        );
        text = text.replace(anchor, &format!("{anchor}  limits: {{ {limits} }}\n"));
    }
    let spec = assay_spec::load_str(&text, &path).unwrap();
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let cases = assay_synth::synthesize(&spec, &catalog, &assay_synth::SynthOptions::default())
        .unwrap()
        .into_iter()
        .filter(|c| c.case.provenance.threat.is_none())
        .map(|c| (c.case, path.clone()))
        .collect::<Vec<_>>();
    assert_eq!(cases.len(), 1, "one benign case");
    assay_run::prepare(cases).unwrap().remove(0)
}

/// Runs one episode of `case` with `agent` and returns its result and events.
pub async fn run_one(
    case: Arc<PreparedCase>,
    agent: Arc<dyn Agent>,
    out: &Path,
) -> (EpisodeResult, Vec<EventKind>) {
    let cfg = RunConfig {
        seed: 7,
        epochs: 1,
        jobs: 1,
        out: Some(out.to_path_buf()),
        judge: None,
    };
    let r = assay_run::run(&[case], &[agent], &cfg, vec![])
        .await
        .unwrap();
    let e = r.episodes.into_iter().next().unwrap();
    let text = std::fs::read_to_string(out.join(&e.trace)).unwrap();
    verify_jsonl(&text, Some(&e.trace_head)).unwrap();
    let events = parse_jsonl(&text)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    (e, events)
}

/// Tool calls in the trace, as (tool, args).
pub fn tool_calls(events: &[EventKind]) -> Vec<(String, serde_json::Value)> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::ToolCall { tool, args, .. } => Some((tool.clone(), args.clone())),
            _ => None,
        })
        .collect()
}

/// Assistant messages in the trace.
pub fn replies(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Message {
                role: assay_trace::Role::Assistant,
                content,
            } => Some(content.clone()),
            _ => None,
        })
        .collect()
}

/// Writes a script into `dir` and returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// The first case of the refund example synthesised with catalog technique
/// `technique` (e.g. the temporal `split-user-turns`, which adds user turns).
pub fn refund_with_technique(technique: &str) -> Arc<PreparedCase> {
    let path = refund_path();
    let spec = assay_spec::load_file(&path).unwrap();
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let opts = assay_synth::SynthOptions {
        techniques: Some(vec![technique.to_string()]),
        ..Default::default()
    };
    let cases = assay_synth::synthesize(&spec, &catalog, &opts)
        .unwrap()
        .into_iter()
        .filter(|c| c.case.provenance.threat.is_some())
        .take(1)
        .map(|c| (c.case, path.clone()))
        .collect::<Vec<_>>();
    assert_eq!(cases.len(), 1, "a case with technique {technique}");
    assay_run::prepare(cases).unwrap().remove(0)
}

/// User messages in the trace.
pub fn user_messages(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EventKind::Message {
                role: assay_trace::Role::User,
                content,
            } => Some(content.clone()),
            _ => None,
        })
        .collect()
}
