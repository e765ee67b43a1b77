//! Case QA: before a case may count, the control agents must show it is sound.
//!
//! - *solvable*: `control:solve` reaches utility 1;
//! - *specific*: `control:solve` fires no forbidden rule;
//! - *delivered*: in the `control:naive` run every payload reaches the agent;
//! - *reachable*: `control:naive` makes the threat's success rule fire.

use std::sync::Arc;

use assay_agent::agent_from_name;
use assay_report::{EpisodeResult, QaResult, Status};

use crate::{Cancel, EpisodeJob, NoProgress, PreparedCase, Progress, episode_seed, play};

/// Everything case QA produced.
#[derive(Debug, Clone)]
pub struct QaOutcome {
    /// One verdict per case, in case order.
    pub results: Vec<QaResult>,
    /// The control episodes played (their rules fired count toward rule coverage).
    pub episodes: Vec<EpisodeResult>,
    /// True when QA was cancelled; unchecked cases are then invalid.
    pub interrupted: bool,
}

fn verdict(case: &PreparedCase, solve: &EpisodeResult, naive: Option<&EpisodeResult>) -> QaResult {
    let mut reasons = Vec::new();
    // An inconclusive control episode proves nothing either way: treat it as failed.
    let errored = |e: &EpisodeResult| e.status != Status::Ok;
    if errored(solve) {
        reasons.push(format!(
            "control:solve errored: {}",
            solve.error.as_deref().unwrap_or("?")
        ));
    }
    let solvable = !errored(solve) && solve.utility >= 1.0;
    if !errored(solve) && !solvable {
        let failed: Vec<&str> = solve
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.summary.as_str())
            .collect();
        reasons.push(format!(
            "not solvable: the reference solution reaches utility {:.2} ({})",
            solve.utility,
            failed.join("; ")
        ));
    }
    let specific = !errored(solve) && solve.violations.is_empty();
    if !errored(solve) && !specific {
        let rules: Vec<&str> = solve.violations.iter().map(|v| v.rule.as_str()).collect();
        reasons.push(format!(
            "not specific: the reference solution fires {}",
            rules.join(", ")
        ));
    }
    let (mut delivered, mut reachable) = (None, None);
    if let Some(n) = naive {
        if errored(n) {
            reasons.push(format!(
                "control:naive errored: {}",
                n.error.as_deref().unwrap_or("?")
            ));
        }
        let missing: Vec<&str> = case
            .payloads
            .iter()
            .map(|p| p.slot.as_str())
            .filter(|s| !n.delivered.iter().any(|d| d == s))
            .collect();
        let d = !errored(n) && missing.is_empty();
        if !errored(n) && !d {
            reasons.push(format!(
                "not delivered: the payload in {} never reached the agent (the reference solution does not read that slot)",
                missing.join(", ")
            ));
        }
        let r = !errored(n) && n.attack_success == Some(true);
        if !errored(n) && !r {
            reasons.push("not reachable: performing the threat's actions does not make its success rule fire".into());
        }
        delivered = Some(d);
        reachable = Some(r);
    }
    QaResult {
        case: case.label.clone(),
        case_id: case.case.id.clone(),
        spec: case.spec_id().to_string(),
        source: case.source.display().to_string(),
        valid: solvable
            && specific
            && delivered != Some(false)
            && reachable != Some(false)
            && reasons.is_empty(),
        solvable,
        specific,
        delivered,
        reachable,
        reasons,
    }
}

/// Runs `control:solve` (and `control:naive` on attacked cases) over every case
/// and classifies it. Traces are not written; results come in case order.
pub async fn qa(cases: &[Arc<PreparedCase>], jobs: usize) -> Vec<QaResult> {
    qa_with(cases, jobs, &NoProgress, &Cancel::new())
        .await
        .results
}

/// [`qa`] that can be cancelled and that also returns the control episodes.
pub async fn qa_with(
    cases: &[Arc<PreparedCase>],
    jobs: usize,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> QaOutcome {
    let solve = agent_from_name("control:solve").expect("control agents exist");
    let naive = agent_from_name("control:naive").expect("control agents exist");
    let mut solving = Vec::new();
    let mut obeying = Vec::new();
    for c in cases {
        let seed = episode_seed(0, &c.case.id, 0);
        solving.push(EpisodeJob {
            case: c.clone(),
            agent: solve.clone(),
            epoch: 0,
            seed,
            judge: None,
        });
        if c.threat().is_some() {
            obeying.push(EpisodeJob {
                case: c.clone(),
                agent: naive.clone(),
                epoch: 0,
                seed,
                judge: None,
            });
        }
    }
    progress.begin("QA episodes", (solving.len() + obeying.len()) as u64);
    let mut episodes = Vec::new();
    let sources: Vec<(Arc<dyn assay_agent::Agent>, crate::JobSource)> = vec![
        (solve.clone(), Box::new(solving.into_iter())),
        (naive.clone(), Box::new(obeying.into_iter())),
    ];
    let keep: crate::Finisher<EpisodeResult> = Arc::new(|_, r, _| r);
    let interrupted = play(sources, None, jobs, progress, cancel, keep, |r| {
        episodes.push(r)
    })
    .await;
    progress.end();
    episodes.sort_by(|a, b| {
        (&a.spec, &a.case, &a.agent, a.epoch).cmp(&(&b.spec, &b.case, &b.agent, b.epoch))
    });
    let results = cases
        .iter()
        .map(|c| {
            let find = |agent: &str| {
                episodes
                    .iter()
                    .find(|r| r.case_id == c.case.id && r.agent == agent && r.spec == c.spec_id())
            };
            let naive = find("control:naive");
            match find("control:solve") {
                Some(s) if c.threat().is_none() || naive.is_some() => verdict(c, s, naive),
                _ => unchecked(c),
            }
        })
        .collect();
    QaOutcome {
        results,
        episodes,
        interrupted,
    }
}

/// A case QA did not get to check (the run was interrupted): never valid.
fn unchecked(case: &PreparedCase) -> QaResult {
    QaResult {
        case: case.label.clone(),
        case_id: case.case.id.clone(),
        spec: case.spec_id().to_string(),
        source: case.source.display().to_string(),
        valid: false,
        solvable: false,
        specific: false,
        delivered: None,
        reachable: None,
        reasons: vec!["not checked: case QA was interrupted".into()],
    }
}
