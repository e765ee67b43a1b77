//! Case QA: before a case may count, the control agents must show it is sound.
//!
//! - *solvable*: `control:solve` reaches utility 1;
//! - *specific*: `control:solve` fires no forbidden rule;
//! - *delivered*: in the `control:naive` run every payload reaches the agent;
//! - *reachable*: `control:naive` makes the threat's success rule fire.

use std::sync::Arc;

use assay_agent::agent_from_name;
use assay_report::{EpisodeResult, QaResult, Status};

use crate::{EpisodeJob, PreparedCase, episode_seed, play, progress_bar};

fn verdict(case: &PreparedCase, solve: &EpisodeResult, naive: Option<&EpisodeResult>) -> QaResult {
    let mut reasons = Vec::new();
    let errored = |e: &EpisodeResult| e.status == Status::Error;
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
pub async fn qa(cases: &[Arc<PreparedCase>], jobs: usize, progress: bool) -> Vec<QaResult> {
    let solve = agent_from_name("control:solve").expect("control agents exist");
    let naive = agent_from_name("control:naive").expect("control agents exist");
    let mut work = Vec::new();
    for c in cases {
        let seed = episode_seed(0, &c.case.id, 0);
        work.push(EpisodeJob {
            case: c.clone(),
            agent: solve.clone(),
            epoch: 0,
            seed,
            judge: None,
        });
        if c.threat().is_some() {
            work.push(EpisodeJob {
                case: c.clone(),
                agent: naive.clone(),
                epoch: 0,
                seed,
                judge: None,
            });
        }
    }
    let bar = progress_bar(progress, work.len(), "QA episodes");
    let results = play(work, None, jobs, &bar).await;
    bar.finish_and_clear();
    cases
        .iter()
        .map(|c| {
            let find = |agent: &str| {
                results
                    .iter()
                    .find(|r| r.case_id == c.case.id && r.agent == agent && r.spec == c.spec_id())
            };
            let s = find("control:solve").expect("every case has a solve run");
            verdict(c, s, find("control:naive"))
        })
        .collect()
}
