//! Rule coverage: which rules of a spec no control episode ever made fire.
//!
//! A forbidden rule or threat success rule that never fires on the naive
//! control (which obeys every payload) has no evidence that it can fire at all:
//! a typo in its matcher, or a world that cannot produce its effect, would make
//! every subject look safe. Coverage lists those rules so they are seen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use assay_spec::Spec;
use serde::{Deserialize, Serialize};

use crate::results::{EpisodeResult, Role, Status};

/// What kind of rule is uncovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A rule of the spec's `forbidden` list (named by its id).
    Forbidden,
    /// The `success` conditions of a threat (named by the threat id).
    ThreatSuccess,
}

/// A rule no control episode made fire.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UncoveredRule {
    /// Forbidden rule or threat success rule.
    pub kind: RuleKind,
    /// Rule id, or threat id for a threat success rule.
    pub rule: String,
}

/// Coverage of one spec's rules by the control episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecCoverage {
    /// Spec id.
    pub spec: String,
    /// Forbidden rules plus threats of the spec.
    pub rules: usize,
    /// Rules no control episode made fire (empty: full coverage).
    pub uncovered: Vec<UncoveredRule>,
}

impl SpecCoverage {
    /// True when every rule of the spec fired in some control episode.
    pub fn full(&self) -> bool {
        self.uncovered.is_empty()
    }
}

/// Coverage evidence accumulated episode by episode: per spec, the forbidden
/// rules and the threats control episodes made fire. Holds rule names, never
/// episodes, so a run can feed it as episodes finish.
#[derive(Debug, Clone, Default)]
pub struct CoverageAcc {
    /// Spec id → (forbidden rules fired, threats that succeeded).
    fired: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

impl CoverageAcc {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one episode; only scored control episodes count (a rule is
    /// covered only when an instrument showed it can fire).
    pub fn add(&mut self, e: &EpisodeResult) {
        if e.role != Role::Control || e.status != Status::Ok {
            return;
        }
        let (rules, threats) = self.fired.entry(e.spec.clone()).or_default();
        for v in &e.violations {
            if !rules.contains(&v.rule) {
                rules.insert(v.rule.clone());
            }
        }
        if e.attack_success == Some(true)
            && let Some(t) = &e.threat
            && !threats.contains(t)
        {
            threats.insert(t.clone());
        }
    }

    /// Coverage of every spec's forbidden rules and threat success rules by
    /// the control episodes added. One entry per spec, in order.
    pub fn finish(&self, specs: &[&Spec]) -> Vec<SpecCoverage> {
        let empty = (BTreeSet::new(), BTreeSet::new());
        specs
            .iter()
            .map(|spec| {
                let (fired, succeeded) = self.fired.get(&spec.id).unwrap_or(&empty);
                let mut uncovered: Vec<UncoveredRule> = spec
                    .forbidden
                    .iter()
                    .filter(|r| !fired.contains(&r.id))
                    .map(|r| UncoveredRule {
                        kind: RuleKind::Forbidden,
                        rule: r.id.clone(),
                    })
                    .chain(
                        spec.threats
                            .iter()
                            .filter(|t| !succeeded.contains(&t.id))
                            .map(|t| UncoveredRule {
                                kind: RuleKind::ThreatSuccess,
                                rule: t.id.clone(),
                            }),
                    )
                    .collect();
                uncovered.sort();
                uncovered.dedup();
                SpecCoverage {
                    spec: spec.id.clone(),
                    rules: spec.forbidden.len() + spec.threats.len(),
                    uncovered,
                }
            })
            .collect()
    }
}

/// Coverage of every spec's forbidden rules and threat success rules by the
/// control episodes among `episodes` (subjects never count: a rule is covered
/// only when an instrument showed it can fire). One entry per spec, in order.
/// The slice front-end of [`CoverageAcc`].
pub fn coverage(specs: &[&Spec], episodes: &[EpisodeResult]) -> Vec<SpecCoverage> {
    let mut acc = CoverageAcc::new();
    for e in episodes {
        acc.add(e);
    }
    acc.finish(specs)
}

/// One line per spec with uncovered rules, or one line saying coverage is full.
pub fn render_coverage(coverage: &[SpecCoverage]) -> String {
    let mut out = String::new();
    let gaps: Vec<&SpecCoverage> = coverage.iter().filter(|c| !c.full()).collect();
    if gaps.is_empty() {
        let rules: usize = coverage.iter().map(|c| c.rules).sum();
        let _ = writeln!(
            out,
            "rule coverage: full ({rules} rule(s) of {} spec(s) fired in control episodes)",
            coverage.len()
        );
        return out;
    }
    for c in gaps {
        let names: Vec<String> = c
            .uncovered
            .iter()
            .map(|u| match u.kind {
                RuleKind::Forbidden => format!("forbidden {}", u.rule),
                RuleKind::ThreatSuccess => format!("threat {} success", u.rule),
            })
            .collect();
        let _ = writeln!(
            out,
            "rule coverage: {}: no control episode made {} fire ({} of {} rule(s) uncovered)",
            c.spec,
            names.join(", "),
            c.uncovered.len(),
            c.rules
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{ep, violation};

    fn spec() -> Spec {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/support/refund-request.yaml"),
        )
        .unwrap();
        assay_spec::load_str(&text, std::path::Path::new("x.yaml"))
            .unwrap()
            .spec
    }

    #[test]
    fn rules_only_subjects_fire_are_uncovered() {
        let spec = spec();
        let threat = spec.threats[0].id.clone();
        let rule = spec.forbidden[0].id.clone();
        let mut naive = ep(&spec.id, "control:naive", Role::Control, Some(&threat));
        naive.attack_success = Some(true);
        naive.violations.push(violation(&rule));
        let full = coverage(&[&spec], std::slice::from_ref(&naive));
        assert_eq!(full[0].rules, spec.forbidden.len() + spec.threats.len());
        let names: Vec<&str> = full[0].uncovered.iter().map(|u| u.rule.as_str()).collect();
        assert!(!names.contains(&rule.as_str()), "{names:?}");
        assert!(!names.contains(&threat.as_str()), "{names:?}");

        // The same evidence from a subject proves nothing about the rules.
        let mut subject = naive.clone();
        subject.role = Role::Subject;
        let c = coverage(&[&spec], &[subject]);
        assert!(!c[0].full());
        assert_eq!(c[0].uncovered.len(), c[0].rules);
        assert!(c[0].uncovered.contains(&UncoveredRule {
            kind: RuleKind::ThreatSuccess,
            rule: threat.clone()
        }));
        // Nor does an errored control episode.
        let mut errored = naive;
        errored.status = Status::Error;
        assert_eq!(
            coverage(&[&spec], &[errored])[0].uncovered.len(),
            c[0].rules
        );
        assert!(render_coverage(&c).contains(&format!("forbidden {rule}")));
    }

    #[test]
    fn coverage_fed_one_by_one_equals_the_slice_function() {
        let spec = spec();
        let threat = spec.threats[0].id.clone();
        let rule = spec.forbidden[0].id.clone();
        let mut naive = ep(&spec.id, "control:naive", Role::Control, Some(&threat));
        naive.attack_success = Some(true);
        naive.violations.push(violation(&rule));
        let other = ep(&spec.id, "control:solve", Role::Control, None);
        let subject = ep(&spec.id, "m", Role::Subject, None);
        let eps = [subject, naive, other];
        let mut acc = CoverageAcc::new();
        for e in eps.iter().rev() {
            acc.add(e);
        }
        let fed = acc.finish(&[&spec]);
        assert_eq!(fed, coverage(&[&spec], &eps));
        assert_eq!(fed[0].uncovered.len(), fed[0].rules - 2);
        // Nothing fed: every rule uncovered.
        assert_eq!(
            CoverageAcc::new().finish(&[&spec])[0].uncovered.len(),
            fed[0].rules
        );
    }
}
