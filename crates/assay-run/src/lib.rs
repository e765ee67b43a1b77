//! Runs episodes: plans the cases of each spec, plays every case × agent ×
//! epoch in a fresh world, records the hash-chained trace, scores it, and
//! collects the results.
//!
//! One failing episode never stops the others, and anything that goes wrong
//! outside the agent's behaviour makes that episode `error`, never a pass. This
//! crate holds no metrics or rendering (that is `assay-report`).

mod episode;
pub mod evidence;
mod judge;
mod out;
mod plan;
mod qa;
pub mod verify;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use assay_agent::Agent;
use assay_report::{
    EpisodeResult, QaResult, RESULTS_SCHEMA, RunResults, SpecRef, breakdowns, coverage, summarize,
};
use futures::FutureExt;
use indicatif::{ProgressBar, ProgressStyle};

pub use episode::{EpisodeJob, run_episode};
pub use evidence::{AgentInfo, CatalogRef, EvidenceContext};
pub use judge::{JudgeConfig, judge_episode, parse_answer, render_trajectory};
pub use out::{episode_dir_name, prepare_out, write_atomic};
pub use plan::PreparedCase;
pub use qa::{QaOutcome, qa, qa_with};

/// Asks a run to stop: no new episode starts, running ones are cancelled
/// (dropping an agent's future ends its process), and the results of what
/// completed are still written, marked incomplete. Clones share one state.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Default)]
struct CancelState {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Cancel {
    /// A handle nobody has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Cancels every run and QA pass holding a clone of this handle.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// True once [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Completes once [`Cancel::cancel`] is called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a run needs beyond [`RunConfig`].
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Stops the run early (SIGINT, SIGTERM); see [`Cancel`].
    pub cancel: Cancel,
    /// Control episodes played before the run (case QA); with the run's own
    /// control episodes they decide rule coverage.
    pub control_episodes: Vec<EpisodeResult>,
    /// Signs the results digest (`--sign`); the results are sealed either way.
    pub sign: Option<assay_trace::SecretKey>,
    /// Write evidence records (`evidence/run.json`, `evidence/spec-*.json`)
    /// after `results.json`, with this command line and these inputs; none
    /// are written without it (library callers such as `assay mcp serve`).
    pub evidence: Option<EvidenceContext>,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Run seed; every episode seed derives from it.
    pub seed: u64,
    /// Repetitions per case × agent.
    pub epochs: u32,
    /// Episodes run concurrently.
    pub jobs: usize,
    /// Output directory (`results.json` and one directory per episode).
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
    /// Ask the spec's judge questions about every episode (off when `None`).
    pub judge: Option<JudgeConfig>,
}

/// Why a run could not start or finish writing.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A case could not be compiled into a world or rules.
    #[error("case {spec}: {message}")]
    Prepare {
        /// Case title.
        spec: String,
        /// What failed.
        message: String,
    },
    /// The output folder cannot take a new run.
    #[error("cannot use {path} as output folder: {why}")]
    OutNotEmpty {
        /// The folder.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// Output could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Compiles cases (each with the file it came from), making labels unique.
pub fn prepare(
    cases: Vec<(assay_spec::Case, PathBuf)>,
) -> Result<Vec<Arc<PreparedCase>>, RunError> {
    let mut prepared = cases
        .into_iter()
        .map(|(c, p)| PreparedCase::new(c, p))
        .collect::<Result<Vec<_>, _>>()?;
    plan::dedupe_labels(&mut prepared);
    prepared.sort_by(|a, b| (a.spec_id(), &a.label).cmp(&(b.spec_id(), &b.label)));
    Ok(prepared.into_iter().map(Arc::new).collect())
}

/// Plays jobs: `concurrency` at a time for agents without a concurrency of
/// their own, and each model agent up to its own; results come back sorted by spec, case,
/// agent, epoch. A panicking episode becomes an `error` episode keeping every
/// event recorded before the panic. When `cancel` fires, no new episode starts
/// and running ones are aborted (and awaited, so their agents are gone); the
/// second value is then true and only completed episodes are returned.
pub(crate) async fn play(
    jobs: Vec<EpisodeJob>,
    out: Option<PathBuf>,
    concurrency: usize,
    bar: &ProgressBar,
    cancel: &Cancel,
) -> (Vec<EpisodeResult>, bool) {
    let out = Arc::new(out);
    // Agents that declare their own concurrency (model agents, which wait on
    // an endpoint rather than the CPU) each get a pool of that size; every
    // other agent shares one pool of `concurrency` (the run's --jobs).
    let mut pools: BTreeMap<Option<String>, Pool> = BTreeMap::new();
    for job in jobs {
        let (key, limit) = match job.agent.concurrency() {
            Some(n) => (Some(job.agent.name().to_string()), n.max(1)),
            None => (None, concurrency.max(1)),
        };
        pools
            .entry(key)
            .or_insert_with(|| Pool {
                limit,
                running: 0,
                queue: VecDeque::new(),
            })
            .queue
            .push_back(job);
    }
    let mut set = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    let mut interrupted = false;
    loop {
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        for (key, pool) in pools.iter_mut() {
            while pool.running < pool.limit {
                let Some(job) = pool.queue.pop_front() else {
                    break;
                };
                pool.running += 1;
                let out = out.clone();
                let key = key.clone();
                set.spawn(async move {
                    let log = episode::Log::default();
                    let played = std::panic::AssertUnwindSafe(episode::play_episode(
                        &job,
                        out.as_deref(),
                        log.clone(),
                    ))
                    .catch_unwind()
                    .await;
                    let r = match played {
                        Ok(r) => r,
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_else(|| "unknown panic".into());
                            episode::crashed(
                                &job,
                                out.as_deref(),
                                &format!("episode task panicked: {what}"),
                                &log,
                            )
                        }
                    };
                    (key, r)
                });
            }
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                interrupted = true;
                break;
            }
            joined = set.join_next() => match joined {
                Some(Ok((key, r))) => {
                    if let Some(p) = pools.get_mut(&key) {
                        p.running -= 1;
                    }
                    results.push(r);
                    bar.inc(1);
                }
                // Tasks are only aborted below; a join error here is a runtime failure.
                Some(Err(e)) => {
                    interrupted = true;
                    let _ = e;
                    break;
                }
                None => break,
            },
        }
    }
    if interrupted {
        set.abort_all();
        while let Some(joined) = set.join_next().await {
            // An episode that finished while the others were being aborted still counts.
            if let Ok((_, r)) = joined {
                results.push(r);
            }
        }
    }
    results.sort_by(|a, b| {
        (&a.spec, &a.case, &a.agent, a.epoch).cmp(&(&b.spec, &b.case, &b.agent, b.epoch))
    });
    (results, interrupted)
}

/// Episodes of one concurrency pool: waiting, and how many run now.
struct Pool {
    limit: usize,
    running: usize,
    queue: VecDeque<EpisodeJob>,
}

fn progress_bar(show: bool, len: usize, what: &str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what} {{per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs every case × agent × epoch and writes traces and `results.json`.
/// `skipped` lists cases left out by case QA; they are recorded in the results.
pub async fn run(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
) -> Result<RunResults, RunError> {
    run_with(cases, agents, cfg, skipped, RunOptions::default()).await
}

/// [`run`] that can be cancelled and that counts earlier control episodes
/// (case QA) toward rule coverage. A cancelled run still writes
/// `results.json` for the episodes that completed, with `incomplete: true`
/// and `passed: false`. With [`RunOptions::evidence`] it then writes the
/// run's evidence records (see [`evidence`]), also for a cancelled run.
pub async fn run_with(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
    opts: RunOptions,
) -> Result<RunResults, RunError> {
    std::fs::create_dir_all(&cfg.out).map_err(|e| RunError::Io {
        path: cfg.out.clone(),
        source: e,
    })?;
    // Input files are hashed before anything runs, so the records name the
    // bytes the run was computed on (and an unreadable one stops it early).
    let inputs = opts
        .evidence
        .as_ref()
        .map(|ctx| evidence::Inputs::gather(cases, ctx))
        .transpose()?;
    let mut jobs = Vec::new();
    for case in cases {
        for agent in agents {
            for epoch in 0..cfg.epochs {
                jobs.push(EpisodeJob {
                    case: case.clone(),
                    agent: agent.clone(),
                    epoch,
                    seed: episode_seed(cfg.seed, &case.case.id, epoch),
                    judge: cfg.judge.clone().map(Arc::new),
                });
            }
        }
    }
    let bar = progress_bar(cfg.progress, jobs.len(), "episodes");
    let (results, interrupted) =
        play(jobs, Some(cfg.out.clone()), cfg.jobs, &bar, &opts.cancel).await;
    bar.finish_and_clear();

    let mut gates = BTreeMap::new();
    let mut specs: BTreeMap<String, SpecRef> = BTreeMap::new();
    for c in cases {
        gates
            .entry(c.spec_id().to_string())
            .or_insert_with(|| c.spec.gates.clone());
        specs
            .entry(c.spec_id().to_string())
            .or_insert_with(|| SpecRef {
                id: c.spec_id().to_string(),
                path: c.source.display().to_string(),
                hash: c.case.provenance.spec_hash.clone(),
            });
    }
    let summary = summarize(&results, &gates);
    let passed = !interrupted && summary.iter().all(|r| r.passed());
    let mut spec_docs: Vec<&assay_spec::Spec> = Vec::new();
    for c in cases {
        if !spec_docs.iter().any(|s| s.id == c.spec_id()) {
            spec_docs.push(&c.spec);
        }
    }
    let controls: Vec<EpisodeResult> = opts
        .control_episodes
        .iter()
        .chain(&results)
        .filter(|e| e.role == assay_report::Role::Control)
        .cloned()
        .collect();
    let coverage = coverage(&spec_docs, &controls);
    let run = RunResults {
        schema_version: RESULTS_SCHEMA.to_string(),
        assay_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: cfg.seed,
        epochs: cfg.epochs,
        agents: agents.iter().map(|a| a.name().to_string()).collect(),
        specs: specs.into_values().collect(),
        breakdowns: breakdowns(&results),
        episodes: results,
        summary,
        skipped,
        coverage,
        incomplete: interrupted,
        passed,
        integrity: None,
    };
    // Bind every verdict and trace head with one digest (signed with --sign),
    // also for an interrupted run, so what was written can be verified.
    let mut run = run;
    run.seal(opts.sign.as_ref());
    write_results(&cfg.out, &run)?;
    if let (Some(ctx), Some(inputs)) = (&opts.evidence, &inputs) {
        evidence::write_records(&cfg.out, &run, cases, agents, cfg, inputs, ctx)?;
    }
    Ok(run)
}

/// Writes `results.json` into `dir`, atomically (see [`write_atomic`]).
pub fn write_results(dir: &Path, run: &RunResults) -> Result<(), RunError> {
    let mut text = serde_json::to_string_pretty(run).expect("results always serialise");
    text.push('\n');
    write_atomic(&dir.join("results.json"), text.as_bytes())
}

/// Episode seed: a hash of the run seed, the case id and the epoch. The agent is
/// not part of it, so every agent meets the same world (same canaries) on a case.
pub fn episode_seed(seed: u64, case_id: &str, epoch: u32) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(case_id.as_bytes());
    h.update(epoch.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}
