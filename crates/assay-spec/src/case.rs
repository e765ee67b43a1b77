//! Case files (`kind: Case`): one concrete, self-contained instance of a spec.
//!
//! A case embeds the exact spec it runs — reduced to its one threat, with any
//! turns the technique adds — plus the rendered payloads and where they came
//! from. A reviewer can audit a case by reading it alone, and its id is the hash
//! of its content, so two cases with the same id are the same case.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Spec;

/// Document kind of a case file.
pub const CASE_KIND: &str = "Case";

/// One concrete case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Format version; `assay/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Case`.
    pub kind: String,
    /// Content address: `c` + the first 16 hex digits of SHA-256 over the case with an empty id.
    pub id: String,
    /// Human title: spec, threat, technique, slots.
    pub title: String,
    /// Where the case came from.
    pub provenance: Provenance,
    /// What a safe agent does here, in words, for reviewers.
    pub expected_safe_behaviour: String,
    /// Payloads planted, already rendered: slot → text.
    #[serde(default)]
    pub payloads: Vec<CasePayload>,
    /// The spec this case runs: its threats reduced to the planted one, its
    /// task extended by any turns the technique adds. Scoring uses its
    /// `forbidden` rules, its threat's `success` rule and its task's `success` checks.
    pub spec: Spec,
}

/// Provenance of a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Source spec id.
    pub spec: String,
    /// SHA-256 of the source spec (before reduction).
    pub spec_hash: String,
    /// Threat planted; absent for the benign twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat: Option<String>,
    /// Technique that rendered the payload; absent for benign and plain cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<TechniqueRef>,
    /// Slots that carry a payload, with their kinds.
    #[serde(default)]
    pub slots: Vec<SlotRef>,
    /// Seed of any random choice made while rendering this case. It derives from
    /// the case's identity, not from the sampling seed, so a (technique, slot)
    /// case has the same content whatever sample it lands in.
    pub seed: u64,
    /// Number of user turns the technique appended to the task.
    #[serde(default)]
    pub added_turns: usize,
    /// Set when the case was made from an incident trace (`assay regress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// The technique a case was rendered with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TechniqueRef {
    /// Technique id.
    pub id: String,
    /// Technique version.
    pub version: u32,
    /// Which of the technique's payload templates was used (1-based).
    pub variant: u32,
    /// Human name.
    pub name: String,
    /// `direct` or `indirect`.
    pub family: String,
    /// `none`, `temporal`, `spatial` or `semantic`.
    pub axis: String,
}

/// A slot and the kind of place it sits in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotRef {
    /// Slot name (`turn` for payloads carried by added user turns).
    pub name: String,
    /// `file`, `mail`, `web`, `tool_output`, `record`, `memory`, `tool_description`, `user_turn`.
    pub kind: String,
}

/// A rendered payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CasePayload {
    /// Slot it is planted in.
    pub slot: String,
    /// The text.
    pub text: String,
}

/// Link back to the incident a regression case was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Regression {
    /// Episode id of the incident.
    pub episode: String,
    /// Agent that misbehaved.
    pub agent: String,
    /// Head hash of the incident's trace.
    pub trace_head: String,
    /// Seed of the incident's episode (reproduces its canaries).
    pub episode_seed: u64,
    /// Forbidden rules that fired in the incident.
    pub violations: Vec<String>,
}

impl Case {
    /// The content address of this case (computed with `id` empty).
    pub fn content_id(&self) -> String {
        if self.id.is_empty() {
            return Self::address(self);
        }
        let mut c = self.clone();
        c.id = String::new();
        Self::address(&c)
    }

    /// Sets `id` to the content address (without copying the case, whose
    /// spec can be large).
    pub fn with_content_id(mut self) -> Case {
        self.id = String::new();
        self.id = Self::address(&self);
        self
    }

    fn address(with_empty_id: &Case) -> String {
        let json = serde_json::to_vec(with_empty_id).expect("cases always serialise");
        let d = Sha256::digest(&json);
        format!("c{}", &hex::encode(d)[..16])
    }
}
