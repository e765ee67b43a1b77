//! Runs episodes: plans the cases of each spec, plays every case × agent ×
//! epoch in a fresh world, records the hash-chained trace, scores it, and
//! collects the results.
//!
//! One failing episode never stops the others, and anything that goes wrong
//! outside the agent's behaviour makes that episode `error`, never a pass. This
//! crate holds no metrics or rendering (that is `assay-report`).

mod episode;
mod judge;
mod plan;
mod qa;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::Agent;
use assay_report::{
    EpisodeResult, QaResult, RESULTS_SCHEMA, RunResults, SpecRef, breakdowns, summarize,
};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

pub use episode::{EpisodeJob, run_episode};
pub use judge::{JudgeConfig, judge_episode, parse_answer, render_trajectory};
pub use plan::PreparedCase;
pub use qa::qa;

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

/// Plays jobs concurrently; results come back sorted by spec, case, agent, epoch.
pub(crate) async fn play(
    jobs: Vec<EpisodeJob>,
    out: Option<PathBuf>,
    concurrency: usize,
    bar: &ProgressBar,
) -> Vec<EpisodeResult> {
    let out = Arc::new(out);
    let mut results: Vec<EpisodeResult> = futures::stream::iter(jobs.into_iter().map(|job| {
        let out = out.clone();
        let bar = bar.clone();
        async move {
            let handle = tokio::spawn({
                let job = job.clone();
                let out = out.clone();
                async move { run_episode(&job, out.as_deref()).await }
            });
            let r = match handle.await {
                Ok(r) => r,
                // The agent or harness panicked: record it as an error episode.
                Err(e) => {
                    episode::crashed(&job, out.as_deref(), &format!("episode task failed: {e}"))
                }
            };
            bar.inc(1);
            r
        }
    }))
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    results.sort_by(|a, b| {
        (&a.spec, &a.case, &a.agent, a.epoch).cmp(&(&b.spec, &b.case, &b.agent, b.epoch))
    });
    results
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
    std::fs::create_dir_all(&cfg.out).map_err(|e| RunError::Io {
        path: cfg.out.clone(),
        source: e,
    })?;
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
    let results = play(jobs, Some(cfg.out.clone()), cfg.jobs, &bar).await;
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
    let passed = summary.iter().all(|r| r.passed());
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
        passed,
        integrity: None,
    };
    write_results(&cfg.out, &run)?;
    Ok(run)
}

/// Writes `results.json` into `dir`.
pub fn write_results(dir: &Path, run: &RunResults) -> Result<(), RunError> {
    let path = dir.join("results.json");
    let mut text = serde_json::to_string_pretty(run).expect("results always serialise");
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| RunError::Io { path, source: e })
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
