//! The assurance case file (`apiVersion: assay.assurance/v1`, `kind: AssuranceCase`).
//!
//! A case names the system under assessment, the claims made about it, the
//! evidence offered for each claim, and the defeaters, assumptions and
//! governance instruments around them. It is data only: weighing happens in
//! [`crate::compute`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `apiVersion` every case file carries.
pub const CASE_API_VERSION: &str = "assay.assurance/v1";
/// The `kind` every case file carries.
pub const CASE_KIND: &str = "AssuranceCase";

/// One assurance case.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssuranceCase {
    /// Always `assay.assurance/v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `AssuranceCase`.
    pub kind: String,
    /// Short name, used in reports.
    pub name: String,
    /// What the case is about, for the reader.
    #[serde(default)]
    pub description: Option<String>,
    /// The system under assessment: every evidence record must be about it.
    pub system: System,
    /// A policy file (relative to the case file) replacing the built-in one.
    #[serde(default)]
    pub policy: Option<String>,
    /// Evidence offered, each with an id the claims refer to.
    #[serde(default)]
    pub evidence: Vec<EvidenceRef>,
    /// Claims; a claim listed as nobody's subclaim is a top-level claim.
    pub claims: Vec<Claim>,
    /// Intentionally unsubstantiated statements the argument relies on.
    #[serde(default)]
    pub assumptions: Vec<Note>,
    /// Rationale for an argument step.
    #[serde(default)]
    pub justifications: Vec<Note>,
    /// Reasons to doubt a claim, an evidence item or an inference.
    #[serde(default)]
    pub defeaters: Vec<Defeater>,
    /// Governance instruments (inventory ids) the case answers to.
    #[serde(default)]
    pub instruments: Vec<String>,
}

/// The system under assessment: the models and agents evidence must be about.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct System {
    /// What it is, for the reader.
    #[serde(default)]
    pub description: Option<String>,
    /// Models, each named by the digest evidence records carry (`model.digest`).
    #[serde(default)]
    pub models: Vec<ModelIdentity>,
    /// Agents, named as run records name them.
    #[serde(default)]
    pub agents: Vec<AgentIdentity>,
}

/// A model under assessment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelIdentity {
    /// Name used in reports.
    pub name: String,
    /// Hex SHA-256 over the model's files (the `model.digest` of evidence records).
    pub digest: String,
    /// Where the weights are, relative to the case file (informational).
    #[serde(default)]
    pub path: Option<String>,
}

/// An agent under assessment.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// The agent's name in run records.
    pub name: String,
    /// Hex SHA-256 of the agents file that defines it, when pinned.
    #[serde(default)]
    pub agents_file_sha256: Option<String>,
    /// The model it runs on (a `system.models` name), if any.
    #[serde(default)]
    pub model: Option<String>,
}

/// Which side of a claim an evidence item bears on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// The observation is more likely if the claim holds.
    Support,
    /// The observation is more likely if the claim fails.
    Counter,
}

/// A piece of evidence offered in the case.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceRef {
    /// Id the claims refer to.
    pub id: String,
    /// An evidence record (`assay.evidence/v1`), relative to the case file.
    #[serde(default)]
    pub file: Option<String>,
    /// A run directory written by `assay run`; its `evidence/run.json` is read,
    /// or `evidence/spec-SPEC.json` with `spec`.
    #[serde(default)]
    pub run: Option<String>,
    /// With `run`: the spec whose record is meant.
    #[serde(default)]
    pub spec: Option<String>,
    /// Directory the record's relative paths are resolved against (default: the case file's).
    #[serde(default)]
    pub root: Option<String>,
    /// Expected hex SHA-256 of the record file: pins exactly the bytes offered.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `support` or `counter`.
    pub polarity: Polarity,
    /// How many times likelier the observation is on the polarity's side than on the
    /// other (≥ 1); the policy's class default when absent.
    #[serde(default)]
    pub likelihood_ratio: Option<f64>,
    /// A condition on the record the stated polarity rests on; when it does not hold,
    /// the item carries no weight and undermines the claim.
    #[serde(default)]
    pub finding: Option<Finding>,
    /// Why this polarity and strength.
    #[serde(default)]
    pub rationale: Option<String>,
    /// Who produced the evidence.
    #[serde(default)]
    pub producer: Option<Producer>,
}

/// A condition on one number in an evidence record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// JSON Pointer into the record, e.g. `/results/auroc`.
    pub metric: String,
    /// The value must be at least this.
    #[serde(default)]
    pub at_least: Option<f64>,
    /// The value must be at most this.
    #[serde(default)]
    pub at_most: Option<f64>,
}

/// Who produced an evidence item, and in what role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Producer {
    /// Organisation or person.
    pub org: String,
    /// `first_party`, `contracted`, `independent` or `regulator`.
    pub role: ProducerRole,
}

/// The producer's relation to the developer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProducerRole {
    /// The developer itself.
    FirstParty,
    /// Paid by the developer.
    Contracted,
    /// Independent of the developer.
    Independent,
    /// A regulator or its delegate.
    Regulator,
}

/// The property family a claim belongs to (the three the governance frameworks name).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// The model pursues no objective other than those intended.
    AbsenceOfHiddenObjectives,
    /// No deceptive alignment, no goal-directed bypassing of oversight.
    LossOfControlPrecursors,
    /// No harm above a threshold under any reachable input.
    BoundedCatastrophicCapability,
    /// Anything else.
    Other,
}

impl Family {
    /// The snake_case name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::AbsenceOfHiddenObjectives => "absence_of_hidden_objectives",
            Family::LossOfControlPrecursors => "loss_of_control_precursors",
            Family::BoundedCatastrophicCapability => "bounded_catastrophic_capability",
            Family::Other => "other",
        }
    }
}

/// How a property shows itself; the weight caps key off this.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    /// Visible in outputs (refusal rate, task success).
    Observable,
    /// A tendency over many inputs (robustness to a class of attacks).
    Dispositional,
    /// Held in internal representations; a concealing model hides it from outputs.
    Latent,
    /// Shown only over long agentic trajectories.
    LongHorizonAgentic,
}

impl PropertyType {
    /// Every type, in file order.
    pub const ALL: [PropertyType; 4] = [
        PropertyType::Observable,
        PropertyType::Dispositional,
        PropertyType::Latent,
        PropertyType::LongHorizonAgentic,
    ];

    /// The snake_case name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyType::Observable => "observable",
            PropertyType::Dispositional => "dispositional",
            PropertyType::Latent => "latent",
            PropertyType::LongHorizonAgentic => "long_horizon_agentic",
        }
    }
}

/// How subclaims establish their parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decomposition {
    /// Every subclaim is needed (a partition of the parent).
    Conjunctive,
    /// Any one subclaim suffices (diverse arguments for the same parent).
    Diverse,
}

/// One claim.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Id, unique in the case.
    pub id: String,
    /// What is claimed.
    pub statement: String,
    /// Property family.
    pub family: Family,
    /// Property type.
    pub property_type: PropertyType,
    /// Probability the claim must reach to count as supported (policy default when absent).
    #[serde(default)]
    pub target: Option<f64>,
    /// Prior probability before evidence (policy default when absent).
    #[serde(default)]
    pub prior: Option<f64>,
    /// Whether someone relies on the claim being met (a developer asserts it). Fragility
    /// is about asserted claims.
    #[serde(default = "yes")]
    pub asserted: bool,
    /// Capabilities (or level names) a verifier needs; the policy's default for the
    /// property type when absent.
    #[serde(default)]
    pub required_access: Option<Vec<String>>,
    /// Evidence ids offered directly for this claim.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// How the subclaims establish this claim (required with `subclaims`).
    #[serde(default)]
    pub decomposition: Option<Decomposition>,
    /// Subclaim ids.
    #[serde(default)]
    pub subclaims: Vec<String>,
    /// Instrument requirement ids this claim answers.
    #[serde(default)]
    pub answers: Vec<String>,
    /// Context statements for the reader (GSN contexts).
    #[serde(default)]
    pub context: Vec<String>,
}

fn yes() -> bool {
    true
}

/// An assumption or justification, attached to claims.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    /// Id, unique in the case.
    pub id: String,
    /// The statement.
    pub text: String,
    /// Claims it is attached to.
    #[serde(default)]
    pub claims: Vec<String>,
}

/// What a defeater attacks (eliminative argumentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefeaterType {
    /// Attacks the claim itself.
    Rebutting,
    /// Attacks an evidence item.
    Undermining,
    /// Attacks the inference from the evidence to the claim.
    Undercutting,
}

/// Where a defeater stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefeaterStatus {
    /// Not yet answered: it weighs on the verdict.
    Open,
    /// Answered by evidence or argument.
    Eliminated,
    /// Consciously accepted as residual doubt.
    Accepted,
}

/// A reason to doubt a claim, an evidence item or an inference.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defeater {
    /// Id, unique in the case.
    pub id: String,
    /// `rebutting`, `undermining` or `undercutting`.
    #[serde(rename = "type")]
    pub kind: DefeaterType,
    /// A claim id (rebutting, undercutting) or an evidence id (undermining).
    pub target: String,
    /// `open`, `eliminated` or `accepted`.
    pub status: DefeaterStatus,
    /// The doubt, in words.
    pub text: String,
    /// How it was eliminated or why it is accepted.
    #[serde(default)]
    pub resolution: Option<String>,
}

/// The case's JSON Schema (for editors and for validation).
pub fn case_schema() -> serde_json::Value {
    let mut s = schemars::schema_for!(AssuranceCase).to_value();
    if let Some(o) = s.as_object_mut() {
        o.insert(
            "$id".into(),
            serde_json::Value::String("https://assay.dev/schema/assurance-v1.json".into()),
        );
    }
    s
}

/// Claims by id, for lookups.
pub fn claims_by_id(case: &AssuranceCase) -> BTreeMap<&str, &Claim> {
    case.claims.iter().map(|c| (c.id.as_str(), c)).collect()
}
