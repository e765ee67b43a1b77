//! JUnit XML: the run as test results, so any CI that shows JUnit reports
//! (Jenkins, GitLab, GitHub test-report actions) lists every failing case.
//!
//! One `<testsuite>` per spec, one `<testcase>` per spec × case × agent with
//! the epochs folded together: the case fails when any epoch failed, and the
//! message says which. A forbidden rule that fired or a threat that succeeded
//! is a `<failure>`; an episode that errored is an `<error>`; an inconclusive
//! episode is a `<failure>` that says why (it is never a pass). Utility is a
//! metric, not a failure. Cases that case QA left out are `<skipped>`.
//!
//! The output follows the Jenkins JUnit schema (`junit-4.xsd`), which has no
//! properties on a test case: the run's seed goes in the suite's
//! `<properties>`, and each case's threat, technique and episode seeds in its
//! `<system-out>`. The document holds no timestamps; `time` is the recorded
//! model latency when the agent reported usage.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::results::{EpisodeResult, RunResults, Status};

/// Why a JUnit report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The XML writer failed.
    #[error("cannot write JUnit XML: {0}")]
    Serialize(#[from] quick_junit::SerializeError),
    /// The writer produced bytes that are not UTF-8 (cannot happen with UTF-8 input).
    #[error("JUnit XML is not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

/// Renders a run as JUnit XML (see the module docs for the mapping).
pub fn junit(run: &RunResults) -> Result<String, JunitError> {
    let mut report = Report::new("assay");
    for spec in spec_order(run) {
        report.add_test_suite(suite(run, &spec));
    }
    let mut bytes = Vec::new();
    report.serialize(&mut bytes)?;
    Ok(drop_root_skipped(String::from_utf8(bytes)?))
}

/// Spec ids in the order the run lists them, then any only episodes or
/// skipped cases name.
fn spec_order(run: &RunResults) -> Vec<String> {
    let mut order: Vec<String> = run.specs.iter().map(|s| s.id.clone()).collect();
    let extra = run
        .episodes
        .iter()
        .map(|e| &e.spec)
        .chain(run.skipped.iter().map(|q| &q.spec));
    for id in extra {
        if !order.contains(id) {
            order.push(id.clone());
        }
    }
    order
}

fn suite(run: &RunResults, spec: &str) -> TestSuite {
    let mut suite = TestSuite::new(spec);
    suite.add_property(Property::new("seed", run.seed.to_string()));
    suite.add_property(Property::new("epochs", run.epochs.to_string()));
    suite.add_property(Property::new("assay_version", run.assay_version.as_str()));
    if let Some(s) = run.specs.iter().find(|s| s.id == spec) {
        suite.add_property(Property::new("spec_path", s.path.as_str()));
        suite.add_property(Property::new("spec_hash", s.hash.as_str()));
    }
    if run.incomplete {
        suite.add_property(Property::new("incomplete", "true"));
    }
    // Episodes are sorted by spec, case, agent, epoch; keep first-seen order.
    let mut groups: Vec<((&str, &str), Vec<&EpisodeResult>)> = Vec::new();
    for e in run.episodes.iter().filter(|e| e.spec == spec) {
        let key = (e.case.as_str(), e.agent.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(e),
            None => groups.push((key, vec![e])),
        }
    }
    for ((case, agent), episodes) in groups {
        suite.add_test_case(test_case(spec, case, agent, &episodes));
    }
    for q in run.skipped.iter().filter(|q| q.spec == spec) {
        let mut status = TestCaseStatus::skipped();
        // The schema's <skipped> takes text only, no attributes.
        status.set_description(format!("left out by case QA: {}", q.reasons.join("; ")));
        let mut tc = TestCase::new(q.case.as_str(), status);
        tc.set_classname(spec);
        tc.set_system_out(format!("source: {}\ncase_id: {}\n", q.source, q.case_id));
        suite.add_test_case(tc);
    }
    suite
}

/// Epoch numbers as `0, 2`.
fn epochs_of(episodes: &[&EpisodeResult]) -> String {
    episodes
        .iter()
        .map(|e| e.epoch.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn seqs(events: &[u64]) -> String {
    if events.is_empty() {
        return "no events cited".into();
    }
    let list: Vec<String> = events.iter().map(u64::to_string).collect();
    format!("events {}", list.join(", "))
}

fn failed(e: &EpisodeResult) -> bool {
    e.status == Status::Ok && (!e.violations.is_empty() || e.attack_success == Some(true))
}

fn test_case(spec: &str, case: &str, agent: &str, episodes: &[&EpisodeResult]) -> TestCase {
    let total = episodes.len();
    let failing: Vec<&EpisodeResult> = episodes.iter().copied().filter(|e| failed(e)).collect();
    let errored: Vec<&EpisodeResult> = episodes
        .iter()
        .copied()
        .filter(|e| e.status == Status::Error)
        .collect();
    let inconclusive: Vec<&EpisodeResult> = episodes
        .iter()
        .copied()
        .filter(|e| e.status == Status::Inconclusive)
        .collect();

    let mut text = String::new();
    for e in &failing {
        let _ = writeln!(
            text,
            "epoch {} (seed {}, trace {}):",
            e.epoch, e.seed, e.trace
        );
        for v in &e.violations {
            let _ = writeln!(
                text,
                "  forbidden rule {} [{}]: {} ({})",
                v.rule,
                v.severity.name(),
                v.explanation,
                seqs(&v.events)
            );
        }
        if e.attack_success == Some(true) {
            let _ = writeln!(
                text,
                "  attack succeeded: threat {} reached its goal ({})",
                e.threat.as_deref().unwrap_or("?"),
                seqs(&e.attack_events)
            );
        }
    }
    for e in &errored {
        let _ = writeln!(
            text,
            "epoch {} errored (trace {}): {}",
            e.epoch,
            e.trace,
            e.error.as_deref().unwrap_or("no reason recorded")
        );
    }
    for e in &inconclusive {
        let _ = writeln!(
            text,
            "epoch {} inconclusive (trace {}): the world could not model what the agent did ({})",
            e.epoch,
            e.trace,
            seqs(&e.unsupported)
        );
    }

    let status = if !failing.is_empty() {
        // Each rule with its severity, so a CI reader sees how bad it is.
        let mut rules: Vec<String> = Vec::new();
        for v in failing.iter().flat_map(|e| &e.violations) {
            let named = format!("{} ({})", v.rule, v.severity.name());
            if !rules.contains(&named) {
                rules.push(named);
            }
        }
        let attacked = failing.iter().any(|e| e.attack_success == Some(true));
        let mut what = Vec::new();
        if !rules.is_empty() {
            what.push(format!("forbidden rules fired: {}", rules.join(", ")));
        }
        if attacked {
            what.push("attack succeeded".to_string());
        }
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type(if rules.is_empty() {
            "attack_success"
        } else {
            "violation"
        });
        s.set_message(format!(
            "{}; failed in epoch(s) {} of {total}",
            what.join("; "),
            epochs_of(&failing)
        ));
        s.set_description(text);
        s
    } else if !errored.is_empty() {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_type("error");
        s.set_message(format!(
            "errored in epoch(s) {} of {total}; the verdict is void",
            epochs_of(&errored)
        ));
        s.set_description(text);
        s
    } else if !inconclusive.is_empty() {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type("inconclusive");
        s.set_message(format!(
            "inconclusive in epoch(s) {} of {total}: the agent did something the world could not model, so the case cannot be judged safe",
            epochs_of(&inconclusive)
        ));
        s.set_description(text);
        s
    } else {
        TestCaseStatus::success()
    };

    let mut tc = TestCase::new(format!("{case} [{agent}]"), status);
    tc.set_classname(spec);
    let usages: Vec<_> = episodes.iter().filter_map(|e| e.usage).collect();
    if !usages.is_empty() {
        let ms: u64 = usages.iter().map(|u| u.latency_ms).sum();
        tc.set_time(Duration::from_millis(ms));
    }
    let mut out = String::new();
    let mut props: BTreeMap<&str, String> = BTreeMap::new();
    if let Some(e) = episodes.first() {
        props.insert("threat", e.threat.clone().unwrap_or_else(|| "none".into()));
        props.insert(
            "technique",
            e.technique.clone().unwrap_or_else(|| "none".into()),
        );
        props.insert("case_id", e.case_id.clone());
    }
    for (k, v) in props {
        let _ = writeln!(out, "{k}: {v}");
    }
    for e in episodes {
        let _ = writeln!(
            out,
            "epoch {}: seed {}, status {}, utility {}, trace {}",
            e.epoch,
            e.seed,
            match e.status {
                Status::Ok => "ok",
                Status::Error => "error",
                Status::Inconclusive => "inconclusive",
            },
            e.utility,
            e.trace
        );
    }
    tc.set_system_out(out);
    tc
}

/// The Jenkins schema has no `skipped` attribute on `<testsuites>`; the
/// per-suite counts carry it, so the root copy is dropped.
fn drop_root_skipped(xml: String) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml;
    };
    let end = xml[start..].find('>').map_or(xml.len(), |i| start + i);
    let tag = &xml[start..end];
    let Some(at) = tag.find(" skipped=\"") else {
        return xml;
    };
    let value_start = at + " skipped=\"".len();
    let Some(close) = tag[value_start..].find('"') else {
        return xml;
    };
    let cut_from = start + at;
    let cut_to = start + value_start + close + 1;
    format!("{}{}", &xml[..cut_from], &xml[cut_to..])
}
