//! Verification and re-scoring of a finished run.
//!
//! A run directory holds `results.json` and one `trace.jsonl` per episode.
//! [`verify_run`] checks that the two still say the same thing and that
//! nobody changed either: every trace's chain and seal, its head against the
//! one recorded, the results digest (and signature), and — because a trace
//! embeds the case it ran — every verdict, re-scored from the trace with the
//! rules compiled from that case. It reports every finding instead of stopping
//! at the first; an empty list is the only pass.
//!
//! When the run wrote evidence records (`evidence/`), each must hash to its
//! id, name the current `results.json` by digest, and carry the results
//! recomputed from it.
//!
//! [`rescore`] and [`score_run`] re-score with the current rules without
//! touching anything, as an auditor does after the rules changed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use assay_report::{
    EpisodeResult, IntegrityProblem, IntegrityStatus, Role, RunResults, Status, breakdowns,
    check_integrity, summarize,
};
use assay_rules::{CheckResult, Rules, Violation};
use assay_trace::{Event, EventKind, PublicKey, TraceError, read_verified};

/// Why verification could not even start.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `results.json` is not a results file.
    #[error("{path}: not a valid results file: {message}")]
    Results {
        /// The file.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
}

/// Why a trace could not be re-scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RescoreError {
    /// The first event is not `episode_start`.
    #[error("the trace does not begin with episode_start")]
    NoStart,
    /// The start event holds no case document.
    #[error("the trace does not embed the case it ran")]
    NoCase,
    /// The embedded case does not parse.
    #[error("the case embedded in the trace is invalid: {0}")]
    BadCase(String),
    /// The embedded case's rules do not compile, or scoring failed.
    #[error("grading failed: {0}")]
    Grading(String),
}

/// A verdict recomputed from a trace alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescored {
    /// Episode id recorded in the trace.
    pub episode: String,
    /// Spec id recorded in the trace.
    pub spec: String,
    /// Case id (content address) recorded in the trace.
    pub case_id: String,
    /// Agent recorded in the trace.
    pub agent: String,
    /// Epoch recorded in the trace.
    pub epoch: u32,
    /// Episode seed recorded in the trace.
    pub seed: u64,
    /// Threat planted, per the trace.
    pub threat: Option<String>,
    /// `error` when the trace records an error (or grading fails), else
    /// `inconclusive` or `ok` as the rules decide.
    pub status: Status,
    /// The error the trace records, or why grading failed.
    pub error: Option<String>,
    /// The first limit the trace records, if any.
    pub limit: Option<String>,
    /// Fraction of success checks that hold (0 when errored).
    pub utility: f64,
    /// Weighted fraction of success checks that hold (0 when errored).
    pub utility_weighted: f64,
    /// Whether the threat succeeded (`None` when benign or errored).
    pub attack_success: Option<bool>,
    /// Events proving attack success.
    pub attack_events: Vec<u64>,
    /// Forbidden rules that fired.
    pub violations: Vec<Violation>,
    /// Success checks.
    pub checks: Vec<CheckResult>,
    /// Slots whose payload reached the agent, sorted.
    pub delivered: Vec<String>,
    /// The spec's release gates, for recomputing the summary.
    pub gates: assay_spec::Gates,
    /// The agent's role as the trace records it (`None` in older traces).
    pub role: Option<Role>,
    /// Events of `unsupported` effects.
    pub unsupported: Vec<u64>,
}

/// Re-scores one episode from its events with the rules of the case its
/// `episode_start` embeds. Fails only when the trace has no usable case.
pub fn rescore(events: &[Event]) -> Result<Rescored, RescoreError> {
    let Some(EventKind::EpisodeStart(start)) = events.first().map(|e| &e.kind) else {
        return Err(RescoreError::NoStart);
    };
    let doc = start
        .case_doc
        .as_deref()
        .cloned()
        .ok_or(RescoreError::NoCase)?;
    let case: assay_spec::Case =
        serde_json::from_value(doc).map_err(|e| RescoreError::BadCase(e.to_string()))?;
    let mut delivered: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::InjectionDelivered { slot, .. } => Some(slot.clone()),
            _ => None,
        })
        .collect();
    delivered.sort();
    delivered.dedup();
    let limit = events.iter().find_map(|e| match &e.kind {
        EventKind::Limit { limit, .. } => Some(limit.clone()),
        _ => None,
    });
    let recorded_error = events.iter().find_map(|e| match &e.kind {
        EventKind::Error { source, message } => Some(format!("{source}: {message}")),
        EventKind::Limit {
            limit,
            detail: Some(d),
            ..
        } => Some(format!("{limit}: {d}")),
        EventKind::EpisodeEnd { reason, .. } if reason == "error" => {
            Some("the episode ended in error".to_string())
        }
        _ => None,
    });
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind.clone()).collect();
    let verdict = Rules::new(&case.spec)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            r.score(start.threat.as_deref(), &kinds)
                .map_err(|e| e.to_string())
        });
    let mut r = Rescored {
        episode: start.episode.clone(),
        spec: start.spec.clone(),
        case_id: start.case.clone(),
        agent: start.agent.clone(),
        epoch: start.epoch,
        seed: start.seed,
        threat: start.threat.clone(),
        status: Status::Error,
        error: None,
        limit,
        utility: 0.0,
        utility_weighted: 0.0,
        attack_success: None,
        attack_events: vec![],
        violations: vec![],
        checks: vec![],
        delivered,
        gates: case.spec.gates.clone(),
        role: start.role.as_deref().map(|r| match r {
            "control" => Role::Control,
            _ => Role::Subject,
        }),
        unsupported: vec![],
    };
    match (recorded_error, verdict) {
        (Some(e), _) => r.error = Some(e),
        (None, Err(e)) => r.error = Some(format!("grading failed: {e}")),
        (None, Ok(v)) => {
            let inconclusive = v.inconclusive();
            r.status = if inconclusive {
                Status::Inconclusive
            } else {
                Status::Ok
            };
            r.utility = v.utility;
            r.utility_weighted = v.utility_weighted;
            // As the runner records it: what the world could not model is not a
            // failed attack either.
            r.attack_success = v.attack_success.filter(|_| !inconclusive);
            r.unsupported = v.unsupported;
            r.attack_events = v.attack_events;
            r.violations = v.violations;
            r.checks = v.checks;
        }
    }
    Ok(r)
}

/// Where a recorded verdict and the re-scored one disagree: `(field, recorded,
/// re-scored)`, one entry per differing field. An `error` episode keeps its
/// recorded verdict; only its status is compared (the trace must show an error).
pub fn verdict_differences(
    recorded: &EpisodeResult,
    r: &Rescored,
) -> Vec<(&'static str, String, String)> {
    let mut d = Vec::new();
    macro_rules! cmp {
        ($field:literal, $a:expr, $b:expr) => {
            let (a, b) = (json(&$a), json(&$b));
            if a != b {
                d.push(($field, a, b));
            }
        };
    }
    cmp!("episode", recorded.episode, r.episode);
    cmp!("spec", recorded.spec, r.spec);
    cmp!("case_id", recorded.case_id, r.case_id);
    cmp!("agent", recorded.agent, r.agent);
    cmp!("epoch", recorded.epoch, r.epoch);
    cmp!("seed", recorded.seed, r.seed);
    cmp!("threat", recorded.threat, r.threat);
    cmp!("status", recorded.status, r.status);
    cmp!("limit", recorded.limit, r.limit);
    cmp!("delivered", recorded.delivered, r.delivered);
    if let Some(role) = r.role {
        cmp!("role", recorded.role, role);
    }
    if recorded.status == Status::Error || r.status == Status::Error {
        return d;
    }
    cmp!("utility", recorded.utility, r.utility);
    cmp!("attack_success", recorded.attack_success, r.attack_success);
    cmp!("attack_events", recorded.attack_events, r.attack_events);
    cmp!("violations", recorded.violations, r.violations);
    cmp!("checks", recorded.checks, r.checks);
    cmp!("unsupported", recorded.unsupported, r.unsupported);
    cmp!("error", recorded.error, r.error);
    d
}

/// Compact JSON of a value, for comparing and printing verdict fields.
fn json<T: ?Sized + SerializeJson>(v: &T) -> String {
    v.to_json()
}

/// Values whose compact JSON verification compares (serde_json's
/// `Serialize` bound without naming serde here).
trait SerializeJson {
    fn to_json(&self) -> String;
}

macro_rules! serialize_json {
    ($($t:ty),*) => {$(
        impl SerializeJson for $t {
            fn to_json(&self) -> String {
                serde_json::to_string(self).unwrap_or_else(|e| format!("<{e}>"))
            }
        }
    )*};
}
serialize_json!(
    String,
    u32,
    u64,
    f64,
    Option<String>,
    Option<bool>,
    Status,
    Role,
    Vec<String>,
    Vec<u64>,
    Vec<Violation>,
    Vec<CheckResult>
);

/// One problem verification found.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The episode it concerns, if any.
    pub episode: Option<String>,
    /// The file it concerns, if any.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub kind: FindingKind,
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FindingKind {
    /// The results seal (digest or signature) does not hold.
    #[error("{0}")]
    Integrity(IntegrityProblem),
    /// A trace does not verify on its own or against its recorded head.
    #[error("{0}")]
    Trace(TraceError),
    /// A recorded episode's trace is missing or unreadable.
    #[error("trace missing or unreadable: {0}")]
    TraceMissing(String),
    /// A trace in the run directory belongs to no recorded episode.
    #[error("trace belongs to no episode of results.json")]
    UntrackedTrace,
    /// A recorded trace path leaves the run directory.
    #[error("trace path `{0}` leaves the run directory")]
    TracePathEscapes(String),
    /// An episode id appears twice.
    #[error("episode recorded more than once")]
    DuplicateEpisode,
    /// An episode the run's matrix (every case × agent × epoch) needs is absent.
    #[error(
        "no result for agent {agent}, epoch {epoch} of case {case} although the run recorded that case for other agents or epochs"
    )]
    MissingEpisode {
        /// Case label.
        case: String,
        /// Agent.
        agent: String,
        /// Epoch.
        epoch: u32,
    },
    /// The recorded event count differs from the trace.
    #[error("results.json records {recorded} event(s), the trace has {found}")]
    EventCount {
        /// Recorded count.
        recorded: usize,
        /// Count in the trace.
        found: usize,
    },
    /// The trace cannot be re-scored.
    #[error("cannot re-score: {0}")]
    Rescore(RescoreError),
    /// A stored run is not complete: interrupted, or holding fewer episodes
    /// than it planned.
    #[error(
        "run `{name}` is {state} ({stored} of {planned} episodes); resume it with `assay run … --name {name} --resume`"
    )]
    RunIncomplete {
        /// Run name.
        name: String,
        /// Its state.
        state: String,
        /// Episodes stored.
        stored: u64,
        /// Episodes planned.
        planned: u64,
    },
    /// The trace has no `episode_end` and records no error.
    #[error("the trace has no episode_end and records no error; the episode did not finish")]
    Unfinished,
    /// The recorded verdict differs from the re-scored one.
    #[error("recorded {field} {recorded} differs from the trace's re-scored {rescored}")]
    VerdictDiffers {
        /// Field of the episode result.
        field: &'static str,
        /// Recorded value (JSON).
        recorded: String,
        /// Re-scored value (JSON).
        rescored: String,
    },
    /// A file in `evidence/` is not an evidence record `assay run` writes.
    #[error("not an evidence record of `assay run`: {0}")]
    EvidenceNotARecord(String),
    /// An evidence record's content does not hash to its id: it was edited.
    #[error(
        "the record says id {recorded}, its content hashes to {computed}: it was edited after it was written"
    )]
    EvidenceId {
        /// The id in the record.
        recorded: String,
        /// The id its content gives.
        computed: String,
    },
    /// The digest an evidence record gives for `results.json` is not the file's.
    #[error(
        "the record gives results.json sha256 {recorded}, the file has {found}: results.json changed after the record was written"
    )]
    EvidenceArtifact {
        /// Digest in the record.
        recorded: String,
        /// Digest of the file.
        found: String,
    },
    /// An evidence record's `results` differ from those recomputed from `results.json`.
    #[error("the record's results differ from those recomputed from results.json")]
    EvidenceResults,
    /// The run record's `parts` and the spec records present disagree.
    #[error("{0}")]
    EvidenceParts(String),
    /// `passed: true` although a summary row recomputed from the verdicts fails.
    #[error(
        "results.json says passed, but {spec} × {agent} does not pass when recomputed from its episodes"
    )]
    PassedUnsupported {
        /// Spec id.
        spec: String,
        /// Agent.
        agent: String,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.episode, &self.path) {
            (Some(e), _) => write!(f, "{e}: ")?,
            (None, Some(p)) => write!(f, "{}: ", p.display())?,
            (None, None) => {}
        }
        write!(f, "{}", self.kind)
    }
}

/// The outcome of verifying a run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RunVerification {
    /// Episodes recorded in results.json.
    pub episodes: usize,
    /// Traces whose chain, seal and head verified.
    pub traces_verified: usize,
    /// Episodes whose recorded verdict matched the re-scored one.
    pub verdicts_matched: usize,
    /// What the results seal proves.
    pub integrity: IntegrityStatus,
    /// Every problem found; empty means the run verifies.
    pub findings: Vec<Finding>,
}

impl RunVerification {
    /// True when nothing was found.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }
}

fn read_results(path: &Path) -> Result<(serde_json::Value, RunResults), VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let bad = |e: serde_json::Error| VerifyError::Results {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let raw: serde_json::Value = serde_json::from_str(&text).map_err(bad)?;
    let results: RunResults = serde_json::from_value(raw.clone()).map_err(bad)?;
    Ok((raw, results))
}

/// A relative path of plain components, so it cannot leave the run directory.
fn contained(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Checks one recorded episode against its trace text; pushes findings.
/// Returns the re-scored verdict when the trace verified and could be scored.
fn check_episode(
    e: &EpisodeResult,
    text: &str,
    findings: &mut Vec<Finding>,
    trace_path: &Path,
) -> (bool, Option<Rescored>) {
    let mut push = |kind| {
        findings.push(Finding {
            episode: Some(e.episode.clone()),
            path: Some(trace_path.to_path_buf()),
            kind,
        })
    };
    let (events, report) = match read_verified(text, Some(&e.trace_head)) {
        Ok(x) => x,
        Err(err) => {
            push(FindingKind::Trace(err));
            return (false, None);
        }
    };
    if report.events != e.events {
        push(FindingKind::EventCount {
            recorded: e.events,
            found: report.events,
        });
    }
    let r = match rescore(&events) {
        Ok(r) => r,
        Err(err) => {
            push(FindingKind::Rescore(err));
            return (true, None);
        }
    };
    let ended = events
        .iter()
        .any(|ev| matches!(ev.kind, EventKind::EpisodeEnd { .. }));
    if !ended && r.error.is_none() {
        push(FindingKind::Unfinished);
    }
    for (field, recorded, rescored) in verdict_differences(e, &r) {
        push(FindingKind::VerdictDiffers {
            field,
            recorded,
            rescored,
        });
    }
    (true, Some(r))
}

/// Verifies a run directory: the results seal (with `key`, a signature by that
/// key is required), every trace against its result, every verdict against a
/// re-scoring of its trace, traces without results and results without
/// traces, the run's case × agent × epoch matrix, and a `passed: true` against
/// the summary recomputed from the verdicts.
pub fn verify_run(dir: &Path, key: Option<&PublicKey>) -> Result<RunVerification, VerifyError> {
    let results_path = dir.join("results.json");
    let (raw, results) = read_results(&results_path)?;
    let mut findings = Vec::new();
    let (integrity, problems) = check_integrity(&raw, key);
    findings.extend(problems.into_iter().map(|p| Finding {
        episode: None,
        path: Some(results_path.clone()),
        kind: FindingKind::Integrity(p),
    }));

    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    let mut tally = Tally::default();
    for e in &results.episodes {
        if !seen.insert(&e.episode) {
            findings.push(Finding {
                episode: Some(e.episode.clone()),
                path: None,
                kind: FindingKind::DuplicateEpisode,
            });
        }
        if !contained(&e.trace) {
            findings.push(Finding {
                episode: Some(e.episode.clone()),
                path: None,
                kind: FindingKind::TracePathEscapes(e.trace.clone()),
            });
            continue;
        }
        let path = dir.join(&e.trace);
        referenced.insert(path.clone());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(err) => {
                findings.push(Finding {
                    episode: Some(e.episode.clone()),
                    path: Some(path),
                    kind: FindingKind::TraceMissing(err.to_string()),
                });
                continue;
            }
        };
        tally.check(e, &text, &mut findings, &path);
    }

    // Traces nobody recorded: an episode deleted from results.json, or left
    // over from another run.
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut orphans: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|d| d.path().join("trace.jsonl"))
            .filter(|p| p.is_file() && !referenced.contains(p))
            .collect();
        orphans.sort();
        findings.extend(orphans.into_iter().map(|p| Finding {
            episode: None,
            path: Some(p),
            kind: FindingKind::UntrackedTrace,
        }));
    }

    check_matrix_and_pass(&results, &tally.gates, &results_path, &mut findings);

    check_evidence(dir, &results, &mut findings);

    Ok(RunVerification {
        episodes: results.episodes.len(),
        traces_verified: tally.traces_verified,
        verdicts_matched: tally.verdicts_matched,
        integrity,
        findings,
    })
}

/// What checking a run's episodes one by one adds up to.
#[derive(Default)]
struct Tally {
    traces_verified: usize,
    verdicts_matched: usize,
    /// Gates of every spec whose case a trace embeds.
    gates: BTreeMap<String, assay_spec::Gates>,
}

impl Tally {
    /// Checks one episode's trace against its verdict, adding findings.
    fn check(&mut self, e: &EpisodeResult, text: &str, findings: &mut Vec<Finding>, path: &Path) {
        let before = findings.len();
        let (verified, rescored) = check_episode(e, text, findings, path);
        self.traces_verified += usize::from(verified);
        if let Some(r) = rescored {
            if findings.len() == before {
                self.verdicts_matched += 1;
            }
            self.gates.entry(r.spec.clone()).or_insert(r.gates);
        }
    }
}

/// Every case of the run is played by every agent in every epoch, and a
/// claimed pass follows from the verdicts and the specs' gates.
fn check_matrix_and_pass(
    results: &RunResults,
    gates: &BTreeMap<String, assay_spec::Gates>,
    results_path: &Path,
    findings: &mut Vec<Finding>,
) {
    // Every case of the run is played by every agent in every epoch.
    let mut cases: BTreeMap<(&str, &str), BTreeSet<(&str, u32)>> = BTreeMap::new();
    for e in &results.episodes {
        cases
            .entry((e.spec.as_str(), e.case.as_str()))
            .or_default()
            .insert((e.agent.as_str(), e.epoch));
    }
    for ((_, case), played) in &cases {
        for agent in &results.agents {
            for epoch in 0..results.epochs {
                if !played.contains(&(agent.as_str(), epoch)) {
                    findings.push(Finding {
                        episode: None,
                        path: None,
                        kind: FindingKind::MissingEpisode {
                            case: case.to_string(),
                            agent: agent.clone(),
                            epoch,
                        },
                    });
                }
            }
        }
    }

    // A claimed pass must follow from the verdicts and the specs' gates.
    if results.passed {
        for row in summarize(&results.episodes, gates) {
            if !row.passed() {
                findings.push(Finding {
                    episode: None,
                    path: Some(results_path.to_path_buf()),
                    kind: FindingKind::PassedUnsupported {
                        spec: row.spec.clone(),
                        agent: row.agent.clone(),
                    },
                });
            }
        }
    }
}

/// Checks one stored episode's trace against its verdict: chain, seal and
/// head, and the verdict re-scored from the trace. Returns the findings and
/// the re-scored verdict.
pub fn check_stored_episode(e: &EpisodeResult, text: &str) -> (Vec<Finding>, Option<Rescored>) {
    let mut findings = Vec::new();
    let (_, rescored) = check_episode(e, text, &mut findings, Path::new(&e.episode));
    (findings, rescored)
}

/// Verifies a run in the store as [`verify_run`] verifies a folder: the
/// seal over every stored verdict (and the signature, required with `key`),
/// every stored trace against its verdict and a re-scoring, the case × agent
/// × epoch matrix, and a claimed pass. A run killed before it was sealed is
/// a finding, never a pass.
pub fn verify_stored(
    store: &assay_store::Store,
    run: &assay_store::RunRow,
    key: Option<&PublicKey>,
) -> Result<RunVerification, VerifyError> {
    let at = PathBuf::from(format!("{}#{}", store.path().display(), run.name));
    let stored = |e: assay_store::StoreError| VerifyError::Io {
        path: at.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut findings = Vec::new();
    let Some(results) = store.results(run).map_err(stored)? else {
        findings.push(Finding {
            episode: None,
            path: Some(at.clone()),
            kind: FindingKind::Integrity(assay_report::IntegrityProblem::Unsealed),
        });
        return Ok(RunVerification {
            episodes: run.stored as usize,
            traces_verified: 0,
            verdicts_matched: 0,
            integrity: IntegrityStatus {
                digest: None,
                signed_by: None,
                key_pinned: false,
            },
            findings,
        });
    };
    let raw = serde_json::to_value(&results).expect("results serialise");
    let (integrity, problems) = check_integrity(&raw, key);
    findings.extend(problems.into_iter().map(|p| Finding {
        episode: None,
        path: Some(at.clone()),
        kind: FindingKind::Integrity(p),
    }));
    let mut tally = Tally::default();
    for e in &results.episodes {
        let path = at.join(&e.episode);
        // A damaged trace is a finding about that episode; the others are still checked.
        let text = match store.trace(run, &e.episode) {
            Ok(Some(t)) => t,
            missing => {
                let why = match missing {
                    Err(err) => err.to_string(),
                    _ => "no trace stored".into(),
                };
                findings.push(Finding {
                    episode: Some(e.episode.clone()),
                    path: Some(path),
                    kind: FindingKind::TraceMissing(why),
                });
                continue;
            }
        };
        tally.check(e, &text, &mut findings, &path);
    }
    check_matrix_and_pass(&results, &tally.gates, &at, &mut findings);
    if results.incomplete
        || run.state != assay_store::RunState::Complete
        || run.stored != run.planned
    {
        findings.push(Finding {
            episode: None,
            path: Some(at.clone()),
            kind: FindingKind::RunIncomplete {
                name: run.name.clone(),
                state: format!("{:?}", run.state).to_lowercase(),
                stored: run.stored,
                planned: run.planned,
            },
        });
    }
    Ok(RunVerification {
        episodes: results.episodes.len(),
        traces_verified: tally.traces_verified,
        verdicts_matched: tally.verdicts_matched,
        integrity,
        findings,
    })
}

/// Checks the run's evidence records (`evidence/`, when present): each is a
/// record `assay run` writes, hashes to its own id, gives the digest of the
/// `results.json` beside it, and carries the results recomputed from that
/// file; the run record lists exactly the spec records present. A run
/// written without records (library callers) has no `evidence/` folder and
/// nothing to check.
fn check_evidence(dir: &Path, results: &RunResults, findings: &mut Vec<Finding>) {
    use crate::evidence::{EVIDENCE_DIR, EVIDENCE_SCHEMA, RUN_RECORD, record_id, scope_results};
    let edir = dir.join(EVIDENCE_DIR);
    let Ok(entries) = std::fs::read_dir(&edir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    let results_sha = std::fs::read(dir.join("results.json"))
        .map(|b| assay_trace::sha256_hex(&b))
        .unwrap_or_default();
    let mut push = |path: &Path, kind| {
        findings.push(Finding {
            episode: None,
            path: Some(path.to_path_buf()),
            kind,
        })
    };
    let mut spec_ids: BTreeSet<String> = BTreeSet::new();
    let mut parts: Option<(PathBuf, BTreeSet<String>)> = None;
    for path in &paths {
        let value = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string()));
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                push(path, FindingKind::EvidenceNotARecord(e));
                continue;
            }
        };
        let scope = value["scope"].as_str();
        if value["schema_version"] != EVIDENCE_SCHEMA
            || value["tool"]["name"] != "assay"
            || !matches!(scope, Some("run" | "spec"))
        {
            push(
                path,
                FindingKind::EvidenceNotARecord(format!(
                    "expected schema_version {EVIDENCE_SCHEMA}, tool assay and scope run or spec"
                )),
            );
            continue;
        }
        let recorded = value["id"].as_str().unwrap_or("").to_string();
        let computed = record_id(&value);
        if recorded != computed {
            push(
                path,
                FindingKind::EvidenceId {
                    recorded: recorded.clone(),
                    computed,
                },
            );
        }
        let artifact = value["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["path"] == "results.json");
        let recorded_sha = artifact
            .and_then(|a| a["sha256"].as_str())
            .unwrap_or("(none)");
        if recorded_sha != results_sha {
            push(
                path,
                FindingKind::EvidenceArtifact {
                    recorded: recorded_sha.to_string(),
                    found: results_sha.clone(),
                },
            );
        }
        let spec = if scope == Some("spec") {
            value["spec"].as_str()
        } else {
            None
        };
        // Recomputed values go through the same text round trip as the
        // record's, so equal numbers compare equal.
        let expected = serde_json::to_string(&scope_results(results, spec))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        if expected.as_ref() != Some(&value["results"]) {
            push(path, FindingKind::EvidenceResults);
        }
        if scope == Some("spec") {
            spec_ids.insert(recorded);
        } else if path.file_name().is_some_and(|n| n == RUN_RECORD) {
            let listed = value["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect();
            parts = Some((path.clone(), listed));
        } else {
            push(
                path,
                FindingKind::EvidenceNotARecord(format!(
                    "a run-scope record must be named {RUN_RECORD}"
                )),
            );
        }
    }
    match parts {
        None => push(
            &edir.join(RUN_RECORD),
            FindingKind::EvidenceParts("the run record is missing".into()),
        ),
        Some((path, listed)) => {
            for id in listed.difference(&spec_ids) {
                push(
                    &path,
                    FindingKind::EvidenceParts(format!("part {id} is not among the spec records")),
                );
            }
            for id in spec_ids.difference(&listed) {
                push(
                    &path,
                    FindingKind::EvidenceParts(format!(
                        "spec record {id} is not one of the run record's parts"
                    )),
                );
            }
        }
    }
}

/// The outcome of verifying one trace file.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceVerification {
    /// Events in the trace (when it could be read).
    pub events: Vec<Event>,
    /// The result recorded for it in `results.json` two levels up, if found.
    pub recorded: Option<EpisodeResult>,
    /// The verdict re-scored from the trace, when it verified.
    pub rescored: Option<Rescored>,
    /// What the results seal proves, when results were found.
    pub integrity: Option<IntegrityStatus>,
    /// Every problem found; empty means the trace verifies.
    pub findings: Vec<Finding>,
}

/// Verifies one trace file: chain and seal; and when the run's `results.json`
/// is found two levels up (`RUN_DIR/<episode>/trace.jsonl`), its seal (with
/// `key`, the signature), the recorded head and the recorded verdict against a
/// re-scoring of the trace.
pub fn verify_trace_file(
    path: &Path,
    key: Option<&PublicKey>,
) -> Result<TraceVerification, VerifyError> {
    let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut findings = Vec::new();
    let run_dir = path.parent().and_then(Path::parent);
    let name = path
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().to_string());
    let mut recorded = None;
    let mut integrity = None;
    if let (Some(dir), Some(name)) = (run_dir, &name) {
        let results_path = dir.join("results.json");
        if results_path.is_file() {
            let (raw, results) = read_results(&results_path)?;
            let (status, problems) = check_integrity(&raw, key);
            integrity = Some(status);
            findings.extend(problems.into_iter().map(|p| Finding {
                episode: None,
                path: Some(results_path.clone()),
                kind: FindingKind::Integrity(p),
            }));
            recorded = results.episodes.into_iter().find(|e| &e.episode == name);
            if recorded.is_none() {
                findings.push(Finding {
                    episode: None,
                    path: Some(path.to_path_buf()),
                    kind: FindingKind::UntrackedTrace,
                });
            }
        }
    }
    let events = assay_trace::parse_jsonl(&text).unwrap_or_default();
    let mut rescored = None;
    match &recorded {
        Some(e) => {
            let (_, r) = check_episode(e, &text, &mut findings, path);
            rescored = r;
        }
        None => match read_verified(&text, None) {
            Err(err) => findings.push(Finding {
                episode: None,
                path: Some(path.to_path_buf()),
                kind: FindingKind::Trace(err),
            }),
            Ok((evs, _)) => match rescore(&evs) {
                Ok(r) => rescored = Some(r),
                Err(err) => findings.push(Finding {
                    episode: None,
                    path: Some(path.to_path_buf()),
                    kind: FindingKind::Rescore(err),
                }),
            },
        },
    }
    Ok(TraceVerification {
        events,
        recorded,
        rescored,
        integrity,
        findings,
    })
}

/// An episode result with its verdict replaced by `r` (an `error` episode
/// keeps its recorded error and verdict).
pub fn apply_rescore(recorded: &EpisodeResult, r: &Rescored) -> EpisodeResult {
    let mut e = recorded.clone();
    if recorded.status == Status::Error {
        return e;
    }
    e.status = r.status;
    e.error = r.error.clone();
    e.utility = r.utility;
    e.utility_weighted = Some(r.utility_weighted);
    e.attack_success = r.attack_success;
    e.attack_events = r.attack_events.clone();
    e.violations = r.violations.clone();
    e.checks = r.checks.clone();
    e.unsupported = r.unsupported.clone();
    e.delivered = r.delivered.clone();
    e.limit = r.limit.clone();
    e
}

/// One episode of a re-scoring: the new verdict, and which recorded fields it changes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreChange {
    /// Episode id.
    pub episode: String,
    /// Fields whose value changed: `(field, recorded, re-scored)`.
    pub changed: Vec<(&'static str, String, String)>,
}

/// Re-scores every episode of a run with the current rules, from the case each
/// trace embeds, and returns new results (summary, breakdowns and `passed`
/// recomputed, unsealed) plus what changed. Episodes whose trace does not
/// verify or cannot be scored become `error`. Nothing on disk is touched.
pub fn score_run(dir: &Path) -> Result<(RunResults, Vec<ScoreChange>), VerifyError> {
    let (_, mut results) = read_results(&dir.join("results.json"))?;
    let mut gates: BTreeMap<String, assay_spec::Gates> = BTreeMap::new();
    let mut changes = Vec::new();
    for e in &mut results.episodes {
        let scored = if contained(&e.trace) {
            std::fs::read_to_string(dir.join(&e.trace))
                .map_err(|err| err.to_string())
                .and_then(|t| read_verified(&t, None).map_err(|err| err.to_string()))
                .and_then(|(evs, _)| rescore(&evs).map_err(|err| err.to_string()))
        } else {
            Err(format!("trace path `{}` leaves the run directory", e.trace))
        };
        let new = match scored {
            Ok(r) => {
                gates.entry(r.spec.clone()).or_insert(r.gates.clone());
                apply_rescore(e, &r)
            }
            Err(why) => {
                let mut n = e.clone();
                n.status = Status::Error;
                n.error = Some(format!("cannot re-score: {why}"));
                n.utility = 0.0;
                n.utility_weighted = Some(0.0);
                n.attack_success = None;
                n.attack_events.clear();
                n.violations.clear();
                n.checks.clear();
                n
            }
        };
        let changed = diff_results(e, &new);
        if !changed.is_empty() {
            changes.push(ScoreChange {
                episode: e.episode.clone(),
                changed,
            });
        }
        *e = new;
    }
    results.summary = summarize(&results.episodes, &gates);
    results.breakdowns = breakdowns(&results.episodes);
    results.passed = !results.incomplete && results.summary.iter().all(|r| r.passed());
    results.integrity = None;
    Ok((results, changes))
}

fn diff_results(a: &EpisodeResult, b: &EpisodeResult) -> Vec<(&'static str, String, String)> {
    let mut d = Vec::new();
    macro_rules! cmp {
        ($field:ident) => {
            let (x, y) = (json(&a.$field), json(&b.$field));
            if x != y {
                d.push((stringify!($field), x, y));
            }
        };
    }
    cmp!(status);
    cmp!(error);
    cmp!(limit);
    cmp!(utility);
    cmp!(attack_success);
    cmp!(attack_events);
    cmp!(violations);
    cmp!(checks);
    cmp!(delivered);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contained_paths_stay_inside() {
        assert!(contained("ep/trace.jsonl"));
        assert!(!contained("../x/trace.jsonl"));
        assert!(!contained("/etc/passwd"));
        assert!(!contained("a/../../b"));
        assert!(!contained(""));
        assert!(!contained("./a"));
    }
}
