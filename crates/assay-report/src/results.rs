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
    /// Digest over everything above (and any other field of the file), and
    /// optionally a signature of it: binds every verdict to its trace head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
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
    /// Weighted fraction of the checks that held (each check's `weight`);
    /// absent in results written before weights existed (then it equals `utility`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility_weighted: Option<f64>,
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
    /// Prompt tokens read from the provider's prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Requests whose reply was cut off by the token limit.
    #[serde(default)]
    pub truncated: u64,
}

impl UsageTotals {
    /// Adds another episode's (or row's) usage to this one.
    pub fn add(&mut self, u: &UsageTotals) {
        self.requests += u.requests;
        self.input_tokens += u.input_tokens;
        self.output_tokens += u.output_tokens;
        self.latency_ms += u.latency_ms;
        self.retries += u.retries;
        self.cache_read_tokens += u.cache_read_tokens;
        self.cache_write_tokens += u.cache_write_tokens;
        self.truncated += u.truncated;
    }
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

/// `algorithm` of the results digest: SHA-256 over the canonical JSON (keys
/// sorted at every level, no whitespace) of the whole results file without its
/// `integrity` field.
pub const DIGEST_ALGORITHM: &str = "sha256-canonical-json/v1";

/// `algorithm` of a results signature.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// The seal of a results file: one digest over every verdict, trace head and
/// recorded input, so a verdict cannot change without the digest changing, and
/// an optional signature of that digest, so nobody without the key can re-seal
/// an edited run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integrity {
    /// [`DIGEST_ALGORITHM`].
    pub algorithm: String,
    /// The digest, lower-case hex.
    pub digest: String,
    /// Signature of the digest, when the run was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ResultsSignature>,
}

/// An ed25519 signature of a results digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultsSignature {
    /// [`SIGNATURE_ALGORITHM`].
    pub algorithm: String,
    /// The signer's public key, 64 hex digits. Only a key the verifier already
    /// trusts (`assay verify --key`) proves who signed.
    pub public_key: String,
    /// Signature of [`signed_message`] of the digest, 128 hex digits.
    pub signature: String,
}

/// The bytes a results signature covers: the digest, domain-separated so the
/// signature cannot be replayed as a signature of anything else.
pub fn signed_message(digest: &str) -> Vec<u8> {
    format!("assay-results-digest/v1:{digest}").into_bytes()
}

/// The digest of a results file given as JSON: [`DIGEST_ALGORITHM`] over every
/// top-level field except `integrity`. Works on the raw file, so fields this
/// version does not know are covered too.
pub fn results_digest(results: &serde_json::Value) -> String {
    match results {
        serde_json::Value::Object(map) => {
            let mut map = map.clone();
            map.remove("integrity");
            assay_trace::canonical_digest(&serde_json::Value::Object(map))
        }
        other => assay_trace::canonical_digest(other),
    }
}

/// Why a results file's seal does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityProblem {
    /// The file has no `integrity` field: nothing binds its verdicts.
    #[error(
        "results.json is not sealed (no `integrity` digest); its verdicts are not bound to anything"
    )]
    Unsealed,
    /// The digest algorithm is not one this version knows.
    #[error("unknown digest algorithm `{0}`")]
    UnknownAlgorithm(String),
    /// The recorded digest differs from the file's content.
    #[error(
        "results digest mismatch (recorded {recorded}, computed {computed}); results.json was edited after it was sealed"
    )]
    DigestMismatch {
        /// Digest in the file.
        recorded: String,
        /// Digest of the content.
        computed: String,
    },
    /// A key was given but the file is not signed.
    #[error("results.json is not signed, but a signature by {0} was required")]
    SignatureMissing(String),
    /// The signature algorithm is not one this version knows.
    #[error("unknown signature algorithm `{0}`")]
    UnknownSignatureAlgorithm(String),
    /// The signature does not verify.
    #[error("results signature invalid: {0}")]
    SignatureInvalid(String),
    /// The file is signed by another key than the one required.
    #[error("results.json is signed by {found}, not by the required key {expected}")]
    KeyMismatch {
        /// Required public key.
        expected: String,
        /// Key in the file.
        found: String,
    },
}

/// What a results file's seal proves, when it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityStatus {
    /// The digest, when sealed.
    pub digest: Option<String>,
    /// Public key (hex) whose signature verified, if signed.
    pub signed_by: Option<String>,
    /// True when that key is the one the caller required.
    pub key_pinned: bool,
}

/// Checks the seal of a results file given as raw JSON: the digest matches the
/// content, and a signature (required when `required_key` is given) verifies.
/// Returns what holds, and every problem found.
pub fn check_integrity(
    results: &serde_json::Value,
    required_key: Option<&assay_trace::PublicKey>,
) -> (IntegrityStatus, Vec<IntegrityProblem>) {
    let mut status = IntegrityStatus {
        digest: None,
        signed_by: None,
        key_pinned: false,
    };
    let mut problems = Vec::new();
    let integrity = results
        .get("integrity")
        .cloned()
        .map(serde_json::from_value::<Integrity>);
    let integrity = match integrity {
        None | Some(Err(_)) => {
            problems.push(IntegrityProblem::Unsealed);
            if let Some(k) = required_key {
                problems.push(IntegrityProblem::SignatureMissing(k.to_hex()));
            }
            return (status, problems);
        }
        Some(Ok(i)) => i,
    };
    let computed = results_digest(results);
    if integrity.algorithm != DIGEST_ALGORITHM {
        problems.push(IntegrityProblem::UnknownAlgorithm(
            integrity.algorithm.clone(),
        ));
    } else if integrity.digest != computed {
        problems.push(IntegrityProblem::DigestMismatch {
            recorded: integrity.digest.clone(),
            computed,
        });
    } else {
        status.digest = Some(computed);
    }
    match (&integrity.signature, required_key) {
        (None, Some(k)) => problems.push(IntegrityProblem::SignatureMissing(k.to_hex())),
        (None, None) => {}
        (Some(sig), required) => {
            if sig.algorithm != SIGNATURE_ALGORITHM {
                problems.push(IntegrityProblem::UnknownSignatureAlgorithm(
                    sig.algorithm.clone(),
                ));
            } else {
                match assay_trace::PublicKey::from_text(&sig.public_key) {
                    Err(e) => problems.push(IntegrityProblem::SignatureInvalid(e.to_string())),
                    Ok(found) => {
                        if let Some(k) = required
                            && *k != found
                        {
                            problems.push(IntegrityProblem::KeyMismatch {
                                expected: k.to_hex(),
                                found: found.to_hex(),
                            });
                        }
                        // The signature covers the recorded digest; a digest
                        // mismatch is reported above.
                        match found.verify(&signed_message(&integrity.digest), &sig.signature) {
                            Ok(()) => {
                                status.signed_by = Some(found.to_hex());
                                status.key_pinned = required == Some(&found);
                            }
                            Err(e) => {
                                problems.push(IntegrityProblem::SignatureInvalid(e.to_string()))
                            }
                        }
                    }
                }
            }
        }
    }
    (status, problems)
}

impl RunResults {
    /// The digest of these results (see [`results_digest`]).
    ///
    /// The digest is taken over the results as a reader of the written file
    /// sees them: serialised to text and parsed back. A float does not always
    /// survive that trip to the last bit, so digesting the in-memory value
    /// would seal numbers the file does not hold.
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).expect("results always serialise");
        let read_back: serde_json::Value =
            serde_json::from_str(&text).expect("serialised results parse");
        results_digest(&read_back)
    }

    /// Seals the results: records their digest and, with a key, a signature
    /// of it. Call last, after every other field is final.
    pub fn seal(&mut self, key: Option<&assay_trace::SecretKey>) {
        self.integrity = None;
        let digest = self.digest();
        let signature = key.map(|k| ResultsSignature {
            algorithm: SIGNATURE_ALGORITHM.to_string(),
            public_key: k.public().to_hex(),
            signature: k.sign(&signed_message(&digest)),
        });
        self.integrity = Some(Integrity {
            algorithm: DIGEST_ALGORITHM.to_string(),
            digest,
            signature,
        });
    }
}

#[cfg(test)]
mod integrity_tests {
    use super::*;
    use crate::metrics::Breakdowns;

    fn sample() -> RunResults {
        RunResults {
            schema_version: RESULTS_SCHEMA.into(),
            assay_version: "0".into(),
            seed: 1,
            epochs: 1,
            agents: vec!["control:naive".into()],
            specs: vec![],
            episodes: vec![],
            summary: vec![],
            breakdowns: Breakdowns::default(),
            skipped: vec![],
            coverage: vec![],
            incomplete: false,
            passed: false,
            integrity: None,
        }
    }

    fn raw(r: &RunResults) -> serde_json::Value {
        let text = serde_json::to_string_pretty(r).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn sealed_results_verify_and_edits_do_not() {
        let mut r = sample();
        r.seal(None);
        let (st, problems) = check_integrity(&raw(&r), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(st.digest.is_some() && st.signed_by.is_none());
        let mut v = raw(&r);
        v["passed"] = serde_json::Value::Bool(true);
        let (_, problems) = check_integrity(&v, None);
        assert!(matches!(
            problems[..],
            [IntegrityProblem::DigestMismatch { .. }]
        ));
        // An added field is covered too.
        let mut v = raw(&r);
        v["note"] = "x".into();
        assert!(!check_integrity(&v, None).1.is_empty());
        // Unsealed results are a problem, never a pass.
        assert_eq!(
            check_integrity(&raw(&sample()), None).1,
            vec![IntegrityProblem::Unsealed]
        );
    }

    #[test]
    fn signatures_need_the_right_key() {
        let key = assay_trace::SecretKey::from_bytes(&[3; 32]);
        let mallory = assay_trace::SecretKey::from_bytes(&[4; 32]);
        let mut r = sample();
        r.seal(Some(&key));
        let (st, problems) = check_integrity(&raw(&r), Some(&key.public()));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(st.key_pinned);
        // Re-sealed by someone else after an edit: fine on its own, caught with the key.
        let mut forged = r.clone();
        forged.passed = true;
        forged.seal(Some(&mallory));
        assert!(check_integrity(&raw(&forged), None).1.is_empty());
        assert!(matches!(
            check_integrity(&raw(&forged), Some(&key.public())).1[..],
            [IntegrityProblem::KeyMismatch { .. }]
        ));
        // Re-sealed without a signature: caught with the key.
        let mut unsigned = r.clone();
        unsigned.passed = true;
        unsigned.seal(None);
        assert!(matches!(
            check_integrity(&raw(&unsigned), Some(&key.public())).1[..],
            [IntegrityProblem::SignatureMissing(_)]
        ));
        // Digest recomputed but the old signature kept: the signature fails.
        let mut v = raw(&r);
        v["passed"] = true.into();
        let d = results_digest(&v);
        v["integrity"]["digest"] = d.into();
        assert!(matches!(
            check_integrity(&v, None).1[..],
            [IntegrityProblem::SignatureInvalid(_)]
        ));
    }
}
