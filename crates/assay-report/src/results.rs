//! The `results.json` format (documented in docs/results.md).

use assay_rules::{CheckResult, Violation};
use serde::{Deserialize, Serialize};

use crate::coverage::SpecCoverage;
use crate::metrics::{Breakdowns, SummaryRow};

/// Version tag of `results.json`.
pub const RESULTS_SCHEMA: &str = "assay-results/v1";

/// Everything a run produced, in one file a CI gate and an auditor can both read.
/// Holds no timestamps or durations, so the same inputs give the same bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// [`RESULTS_SCHEMA`].
    pub schema_version: String,
    /// Version of the tool that produced the file.
    pub assay_version: String,
    /// Run seed every episode seed was derived from.
    pub seed: u64,
    /// Repetitions per case and agent.
    pub epochs: u32,
    /// Agents run.
    pub agents: Vec<String>,
    /// Specs run, with content hashes.
    pub specs: Vec<SpecRef>,
    /// One entry per episode, sorted by spec, case, agent, epoch.
    pub episodes: Vec<EpisodeResult>,
    /// Metrics per spec × agent.
    pub summary: Vec<SummaryRow>,
    /// Attack metrics per agent by technique, evasion axis and slot kind.
    pub breakdowns: Breakdowns,
    /// Cases left out because case QA found them invalid (see `assay qa`).
    pub skipped: Vec<QaResult>,
    /// Per spec, the forbidden rules and threat success rules no control
    /// episode made fire: rules with no evidence that they can fire at all.
    #[serde(default)]
    pub coverage: Vec<SpecCoverage>,
    /// True when the run was interrupted: only the episodes that completed are
    /// listed, and the run does not pass.
    #[serde(default)]
    pub incomplete: bool,
    /// True when every gate and control expectation held, no episode errored or
    /// was inconclusive, and the run completed.
    pub passed: bool,
}

/// A spec that was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecRef {
    /// Spec id.
    pub id: String,
    /// File it was loaded from.
    pub path: String,
    /// SHA-256 of its canonical form.
    pub hash: String,
}

/// Whether an episode produced a trustworthy verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The episode ran and was scored.
    Ok,
    /// Something outside the agent's behaviour failed; the verdict is void.
    Error,
    /// The world could not model something the agent did (an `unsupported`
    /// effect) and no rule fired: the episode cannot be judged, and is never a pass.
    Inconclusive,
}

/// What an agent is to the run. Decided by the agent's type, never by its name:
/// only the built-in control agents are instruments; everything else is a
/// subject that the gates judge. Results written before roles existed read as
/// subjects, so gates apply to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An agent under test: the spec's gates apply.
    #[default]
    Subject,
    /// A built-in control agent: its control expectations apply instead.
    Control,
}

/// The verdict of one episode, with the events that prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeResult {
    /// Episode id (also its directory name).
    pub episode: String,
    /// Spec id.
    pub spec: String,
    /// Case label, unique within the spec (`benign`, `THREAT.TECHNIQUE@SLOTS`).
    pub case: String,
    /// Content address of the case.
    pub case_id: String,
    /// Threat planted, if any.
    pub threat: Option<String>,
    /// Technique that rendered the payload, if any.
    pub technique: Option<String>,
    /// Evasion axis of the technique.
    pub axis: Option<String>,
    /// Slots that carried a payload.
    pub slots: Vec<String>,
    /// Kinds of those slots (`file`, `mail`, `web`, ...).
    pub slot_kinds: Vec<String>,
    /// Slots whose payload reached the agent's observations.
    pub delivered: Vec<String>,
    /// Agent name.
    pub agent: String,
    /// Subject or control (decides whether gates or control expectations apply).
    #[serde(default)]
    pub role: Role,
    /// Repetition index.
    pub epoch: u32,
    /// Seed of this episode.
    pub seed: u64,
    /// `ok`, `error` or `inconclusive`.
    pub status: Status,
    /// Why the episode errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Limit that cut the episode short, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// Fraction of the task's success checks that held (0 when errored).
    pub utility: f64,
    /// Whether the threat succeeded; null for benign, errored and inconclusive episodes.
    pub attack_success: Option<bool>,
    /// Events proving the attack succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack_events: Vec<u64>,
    /// Forbidden rules that fired.
    pub violations: Vec<Violation>,
    /// Result of each success check.
    pub checks: Vec<CheckResult>,
    /// `unsupported` effects: what the world could not model. With no rule
    /// fired they make the episode `inconclusive`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<u64>,
    /// Answers of the optional LLM judge. Labelled `basis: judge`; they never
    /// decide `violations`, `attack_success` or a gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judge: Vec<JudgeResult>,
    /// Model usage of the episode (absent for agents that use no model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
    /// Trace path, relative to the results file.
    pub trace: String,
    /// Hash of the trace's last line (tamper evidence).
    pub trace_head: String,
    /// Number of events in the trace.
    pub events: usize,
}

/// Version tag of `qa.json`.
pub const QA_SCHEMA: &str = "assay-qa/v1";

/// Case QA: whether a case can count, judged by the control agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaResult {
    /// Case label.
    pub case: String,
    /// Case id.
    pub case_id: String,
    /// Spec id.
    pub spec: String,
    /// File the case came from.
    pub source: String,
    /// `control:solve` reaches utility 1.
    pub solvable: bool,
    /// `control:solve` fires no forbidden rule.
    pub specific: bool,
    /// Every payload reached the naive agent's observations (null for benign cases).
    pub delivered: Option<bool>,
    /// `control:naive` makes the threat's success rule fire (null for benign cases).
    pub reachable: Option<bool>,
    /// All of the above hold.
    pub valid: bool,
    /// Why the case is invalid, one line per failed property.
    pub reasons: Vec<String>,
}

/// The `qa.json` file `assay qa` writes next to the cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaReport {
    /// [`QA_SCHEMA`].
    pub schema_version: String,
    /// Cases checked.
    pub cases: usize,
    /// Valid cases.
    pub valid: usize,
    /// One entry per case, sorted by spec and label.
    pub results: Vec<QaResult>,
    /// Per spec, the rules the control agents never made fire.
    #[serde(default)]
    pub coverage: Vec<SpecCoverage>,
}

/// Model usage summed over an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Model requests made.
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Summed request wall time, in milliseconds (not deterministic).
    pub latency_ms: u64,
    /// Retries across requests.
    pub retries: u64,
}

/// The judge's verdict on one rubric question for one episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeResult {
    /// Always `judge`: this is a model's opinion, not a rule's finding.
    pub basis: String,
    /// Criterion id from the spec.
    pub criterion: String,
    /// The question asked.
    pub question: String,
    /// Judge agent name.
    pub judge: String,
    /// Majority answer; null when the runs tie or none gave a valid answer.
    pub answer: Option<bool>,
    /// Share of runs that gave the majority answer.
    pub agreement: f64,
    /// Every run's answer.
    pub answers: Vec<JudgeAnswer>,
}

/// One run of the judge on one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeAnswer {
    /// yes/no; null when the reply was unusable.
    pub answer: Option<bool>,
    /// Event sequence numbers the judge cited (all exist in the trace).
    pub events: Vec<u64>,
    /// The judge's reason.
    pub rationale: String,
    /// Why the reply was unusable, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}
