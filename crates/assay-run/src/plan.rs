//! The unit of work: a case compiled once (world template, rules) and shared by
//! every agent and epoch that plays it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use assay_rules::Rules;
use assay_spec::{Case, Spec, slot_kinds};
use assay_trace::Payload;
use assay_world::WorldTemplate;
use serde_json::Value;

use crate::RunError;

/// A case ready to run.
pub struct PreparedCase {
    /// The case document.
    pub case: Case,
    /// Where it came from (case file, or the spec it was synthesised from).
    pub source: PathBuf,
    /// Readable label, unique within a run: `benign`, `THREAT.TECHNIQUE@SLOTS`.
    pub label: String,
    /// The case's spec, shared with control agents.
    pub spec: Arc<Spec>,
    /// World template instantiated per episode.
    pub world: WorldTemplate,
    /// Compiled rules.
    pub rules: Rules,
    /// Payloads as the world plants them.
    pub payloads: Vec<Payload>,
    /// Kinds of the slots carrying payloads.
    pub slot_kinds: Vec<String>,
    /// The case as JSON, embedded in every trace of it.
    pub doc: Arc<Value>,
    /// The case document as the run store keeps it (once), and the
    /// dictionary its traces are compressed against.
    pub stored: assay_store::CaseDoc,
}

impl PreparedCase {
    /// Compiles a case.
    pub fn new(case: Case, source: PathBuf) -> Result<PreparedCase, RunError> {
        let err = |m: String| RunError::Prepare {
            spec: case.title.clone(),
            message: m,
        };
        let world = WorldTemplate::new(&case.spec).map_err(|e| err(e.to_string()))?;
        let rules = Rules::new(&case.spec).map_err(|e| err(e.to_string()))?;
        let threat = case.provenance.threat.clone().unwrap_or_default();
        let payloads = case
            .payloads
            .iter()
            .map(|p| Payload {
                threat: threat.clone(),
                slot: p.slot.clone(),
                text: p.text.clone(),
            })
            .collect();
        // Finding where a slot is planted walks every text of the world, which
        // for a large world costs more than the rest of compiling the case;
        // synthesised cases record each slot's kind, so walk only when one
        // does not.
        let kinds = if case.provenance.slots.iter().any(|s| s.kind.is_empty()) {
            slot_kinds(&case.spec)
        } else {
            Default::default()
        };
        let mut slot_kinds: Vec<String> = case
            .provenance
            .slots
            .iter()
            .map(|s| {
                if s.kind.is_empty() {
                    kinds.get(&s.name).map_or("file", |k| k).to_string()
                } else {
                    s.kind.clone()
                }
            })
            .collect();
        slot_kinds.dedup();
        let doc = serde_json::to_value(&case).expect("cases always serialise");
        Ok(PreparedCase {
            label: label_of(&case),
            spec: Arc::new(case.spec.clone()),
            stored: assay_store::CaseDoc::new(&doc),
            doc: Arc::new(doc),
            world,
            rules,
            payloads,
            slot_kinds,
            source,
            case,
        })
    }

    /// Threat planted, if any.
    pub fn threat(&self) -> Option<&str> {
        self.case.provenance.threat.as_deref()
    }

    /// Spec id.
    pub fn spec_id(&self) -> &str {
        &self.case.provenance.spec
    }
}

fn label_of(case: &Case) -> String {
    let p = &case.provenance;
    let Some(threat) = &p.threat else {
        return if p.regression.is_some() {
            format!("regression-{}", &case.id)
        } else {
            "benign".into()
        };
    };
    let slots: Vec<&str> = p.slots.iter().map(|s| s.name.as_str()).collect();
    let slots = if slots == ["turn"] {
        "turns".to_string()
    } else {
        slots.join("+")
    };
    let base = match &p.technique {
        Some(t) if t.variant > 1 => format!("{threat}.{}-v{}@{slots}", t.id, t.variant),
        Some(t) => format!("{threat}.{}@{slots}", t.id),
        None => format!("{threat}@{slots}"),
    };
    if p.regression.is_some() {
        format!("{base}.regression-{}", &case.id)
    } else {
        base
    }
}

/// Makes labels unique per spec (variants of one technique share a base label).
pub(crate) fn dedupe_labels(cases: &mut [PreparedCase]) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in cases.iter() {
        *counts
            .entry((c.spec_id().to_string(), c.label.clone()))
            .or_default() += 1;
    }
    for c in cases.iter_mut() {
        if counts[&(c.spec_id().to_string(), c.label.clone())] > 1 {
            c.label = format!("{}.{}", c.label, &c.case.id);
        }
    }
}
