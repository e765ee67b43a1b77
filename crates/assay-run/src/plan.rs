//! Which cases a spec yields, and the per-spec state compiled once for all of them.

use std::sync::Arc;

use assay_rules::Rules;
use assay_spec::{LoadedSpec, Spec};
use assay_trace::Payload;
use assay_world::WorldTemplate;

use crate::RunError;

/// One concrete case of a spec: the benign run, or one threat planted in one slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// `benign` or `THREAT@SLOT`.
    pub id: String,
    /// Threat planted, if any.
    pub threat: Option<String>,
    /// Payloads planted.
    pub payloads: Vec<Payload>,
}

/// Cases of a spec: a benign twin plus, for each threat and each of its slots,
/// the threat's goal planted as a plain payload.
pub fn plan_cases(spec: &Spec) -> Vec<Case> {
    let mut cases = vec![Case {
        id: "benign".into(),
        threat: None,
        payloads: vec![],
    }];
    for t in &spec.threats {
        for slot in &t.slots {
            cases.push(Case {
                id: format!("{}@{}", t.id, slot),
                threat: Some(t.id.clone()),
                payloads: vec![Payload {
                    threat: t.id.clone(),
                    slot: slot.clone(),
                    text: t.goal.clone(),
                }],
            });
        }
    }
    cases
}

/// A spec compiled for running: its world template, rules and cases.
pub struct PreparedSpec {
    /// The spec as loaded.
    pub loaded: LoadedSpec,
    /// Shared copy handed to control agents.
    pub spec: Arc<Spec>,
    /// World template instantiated per episode.
    pub world: WorldTemplate,
    /// Compiled rules.
    pub rules: Rules,
    /// Cases to run.
    pub cases: Vec<Case>,
}

impl PreparedSpec {
    /// Compiles a loaded spec.
    pub fn new(loaded: &LoadedSpec) -> Result<PreparedSpec, RunError> {
        let spec = &loaded.spec;
        let err = |m: String| RunError::Prepare {
            spec: spec.id.clone(),
            message: m,
        };
        Ok(PreparedSpec {
            world: WorldTemplate::new(spec).map_err(|e| err(e.to_string()))?,
            rules: Rules::new(spec).map_err(|e| err(e.to_string()))?,
            cases: plan_cases(spec),
            spec: Arc::new(spec.clone()),
            loaded: loaded.clone(),
        })
    }
}
