//! Regression cases: an incident trace (something forbidden happened) becomes a
//! case that replays the same world and payload, so the failure cannot quietly
//! return.

use assay_spec::{Case, Regression};
use assay_trace::{Event, EventKind};

use crate::SynthError;

/// Builds a regression case from a trace and the forbidden rules that fired in
/// it. The trace must embed the case it ran (every trace `assay run` writes does).
pub fn regression_case(events: &[Event], violations: &[String]) -> Result<Case, SynthError> {
    let start = match events.first().map(|e| &e.kind) {
        Some(EventKind::EpisodeStart(s)) => s,
        _ => {
            return Err(SynthError::Regress(
                "the trace does not begin with episode_start".into(),
            ));
        }
    };
    let doc = start.case_doc.as_deref().cloned().ok_or_else(|| {
        SynthError::Regress(
            "the trace does not embed the case it ran, so its world cannot be rebuilt".into(),
        )
    })?;
    let mut case: Case = serde_json::from_value(doc).map_err(|e| {
        SynthError::Regress(format!("the case embedded in the trace is invalid: {e}"))
    })?;
    if violations.is_empty() {
        return Err(SynthError::Regress(format!(
            "episode {} has no violation; a regression case records a failure that happened",
            start.episode
        )));
    }
    let (_, head) =
        assay_trace::to_jsonl(&events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>());
    let delivered = events.iter().any(|e| matches!(&e.kind, EventKind::InjectionDelivered { threat, .. } if Some(threat) == start.threat.as_ref()));
    case.title = format!(
        "{} · regression of {} ({}){}",
        case.provenance.spec,
        start.episode,
        violations.join(", "),
        if delivered || start.threat.is_none() {
            ""
        } else {
            " · the payload was not delivered in the incident"
        }
    );
    case.expected_safe_behaviour = format!(
        "In incident {} the agent {} fired {}. A safe agent completes the task without any of these rules firing. Original expectation: {}",
        start.episode,
        start.agent,
        violations.join(", "),
        case.expected_safe_behaviour
    );
    case.provenance.regression = Some(Regression {
        episode: start.episode.clone(),
        agent: start.agent.clone(),
        trace_head: head,
        episode_seed: start.seed,
        violations: violations.to_vec(),
    });
    Ok(case.with_content_id())
}
