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
mod stored;
pub mod verify;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use assay_agent::Agent;
use assay_report::{EpisodeResult, QaResult, RunResults};
use futures::FutureExt;
use rayon::prelude::*;

pub use episode::{EpisodeJob, run_episode};
pub use evidence::{AgentInfo, CatalogRef, EvidenceContext};
pub use judge::{JudgeConfig, judge_episode, parse_answer, render_trajectory};
pub use out::{episode_dir_name, prepare_out, write_atomic};
pub use plan::PreparedCase;
pub use qa::{QaOutcome, qa, qa_with};
pub use stored::{Counts, StoreOptions, StoredRun, export, run_stored, store_path};

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
    /// Where the run is stored and under which name (default: `assay.db` in
    /// [`RunConfig::out`], else [`assay_store::DEFAULT_STORE`], with a
    /// generated name).
    pub store: Option<StoreOptions>,
    /// Where progress is reported (nowhere by default).
    pub progress: Option<Arc<dyn Progress>>,
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
    /// Export folder: `results.json`, one directory per episode with its
    /// trace, and the evidence records, written from the store when the run
    /// ends. None: the run lives in the store only.
    pub out: Option<PathBuf>,
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
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] assay_store::StoreError),
    /// A run cannot start or resume under this name.
    #[error("{0}")]
    Name(String),
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
    // Cases compile independently (a world template, rules and the stored
    // case document each), so they compile on every core; the first error in
    // input order is the one reported, whatever finished first.
    let compiled: Vec<Result<PreparedCase, RunError>> = cases
        .into_par_iter()
        .map(|(c, p)| PreparedCase::new(c, p))
        .collect();
    let mut prepared = compiled.into_iter().collect::<Result<Vec<_>, _>>()?;
    plan::dedupe_labels(&mut prepared);
    prepared.sort_by(|a, b| (a.spec_id(), &a.label).cmp(&(b.spec_id(), &b.label)));
    Ok(prepared.into_iter().map(Arc::new).collect())
}

/// Episodes of one agent still to play, produced lazily so a run of a
/// million episodes never holds a million jobs.
pub(crate) type JobSource = Box<dyn Iterator<Item = EpisodeJob> + Send>;

/// Turns a finished episode (its job, verdict and trace text) into what the
/// caller keeps; runs on the episode's task, so costly work (compression)
/// runs in parallel.
pub(crate) type Finisher<T> = Arc<dyn Fn(&EpisodeJob, EpisodeResult, String) -> T + Send + Sync>;

/// Plays jobs: `concurrency` at a time for agents without a concurrency of
/// their own, and each model agent up to its own. Every finished episode goes
/// through `finish` on its task, then to `sink`, in completion order. A
/// panicking episode becomes an `error` episode keeping every event recorded
/// before the panic. When `cancel` fires, no new episode starts and running
/// ones are aborted (and awaited, so their agents are gone); the result is
/// then true.
pub(crate) async fn play<T: Send + 'static>(
    sources: Vec<(Arc<dyn Agent>, JobSource)>,
    out: Option<PathBuf>,
    concurrency: usize,
    progress: &dyn Progress,
    cancel: &Cancel,
    finish: Finisher<T>,
    mut sink: impl FnMut(T),
) -> bool {
    let out = Arc::new(out);
    // Agents that declare their own concurrency (model agents, which wait on
    // an endpoint rather than the CPU) each get a pool of that size; every
    // other agent shares one pool of `concurrency` (the run's --jobs).
    let mut pools: BTreeMap<Option<String>, Pool> = BTreeMap::new();
    for (agent, source) in sources {
        let (key, limit) = match agent.concurrency() {
            Some(n) => (Some(agent.name().to_string()), n.max(1)),
            None => (None, concurrency.max(1)),
        };
        pools
            .entry(key)
            .or_insert_with(|| Pool {
                limit,
                running: 0,
                sources: VecDeque::new(),
            })
            .sources
            .push_back(source);
    }
    let mut set = tokio::task::JoinSet::new();
    let mut interrupted = false;
    loop {
        if cancel.is_cancelled() {
            interrupted = true;
            break;
        }
        for (key, pool) in pools.iter_mut() {
            while pool.running < pool.limit {
                let Some(job) = pool.next() else {
                    break;
                };
                pool.running += 1;
                let out = out.clone();
                let key = key.clone();
                let finish = finish.clone();
                set.spawn(async move {
                    let log = episode::Log::default();
                    let played = std::panic::AssertUnwindSafe(episode::play_episode(
                        &job,
                        out.as_deref(),
                        log.clone(),
                    ))
                    .catch_unwind()
                    .await;
                    let (r, trace) = match played {
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
                    (key, finish(&job, r, trace))
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
                    sink(r);
                    progress.advance(1);
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
                sink(r);
            }
        }
    }
    interrupted
}

/// Episodes of one concurrency pool: the agents' job sources, taken in
/// turn, and how many run now.
struct Pool {
    limit: usize,
    running: usize,
    sources: VecDeque<JobSource>,
}

impl Pool {
    /// The next job, round-robin over the pool's agents.
    fn next(&mut self) -> Option<EpisodeJob> {
        while let Some(mut source) = self.sources.pop_front() {
            if let Some(job) = source.next() {
                self.sources.push_back(source);
                return Some(job);
            }
        }
        None
    }
}

/// Where a long task reports how far it got. Libraries never draw: the
/// binary implements this with a progress bar, tests and servers ignore it.
pub trait Progress: Send + Sync {
    /// A phase starts with `total` units of work (`what`: "episodes", "QA episodes").
    fn begin(&self, what: &str, total: u64) {
        let _ = (what, total);
    }
    /// `n` more units are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// The phase ended.
    fn end(&self) {}
}

/// Reports nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Runs every case × agent × epoch into the run store and returns the whole
/// results (episodes included). `skipped` lists cases left out by case QA;
/// they are recorded in the results. With [`RunConfig::out`], the results,
/// traces and evidence records are also exported there.
pub async fn run(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
) -> Result<RunResults, RunError> {
    run_with(cases, agents, cfg, skipped, RunOptions::default()).await
}

/// [`run`] that can be cancelled, resumed, and that counts earlier control
/// episodes (case QA) toward rule coverage. A cancelled run still seals what
/// completed, with `incomplete: true` and `passed: false`.
pub async fn run_with(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
    opts: RunOptions,
) -> Result<RunResults, RunError> {
    let stored = stored::run_stored(cases, agents, cfg, skipped, opts).await?;
    match stored.exported {
        Some(r) => Ok(r),
        None => {
            let mut r = stored.results;
            r.episodes = stored.store.episodes(&stored.run)?;
            Ok(r)
        }
    }
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
