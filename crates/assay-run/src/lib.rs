//! Runs episodes: plans the cases of each spec, plays every case × agent ×
//! epoch in a fresh world, records the hash-chained trace, scores it, and
//! collects the results.
//!
//! One failing episode never stops the others, and anything that goes wrong
//! outside the agent's behaviour makes that episode `error`, never a pass. This
//! crate holds no metrics or rendering (that is `assay-report`).

mod episode;
mod plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::Agent;
use assay_report::{EpisodeResult, RESULTS_SCHEMA, RunResults, SpecRef, summarize};
use assay_spec::LoadedSpec;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

pub use episode::{EpisodeJob, run_episode};
pub use plan::{Case, PreparedSpec, plan_cases};

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
}

/// Why a run could not start or finish writing.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A spec could not be compiled into a world or rules.
    #[error("spec {spec}: {message}")]
    Prepare {
        /// Spec id.
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

/// Runs every spec × case × agent × epoch and writes traces and `results.json`.
pub async fn run(
    specs: &[LoadedSpec],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
) -> Result<RunResults, RunError> {
    let prepared: Vec<Arc<PreparedSpec>> = specs
        .iter()
        .map(|s| PreparedSpec::new(s).map(Arc::new))
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| RunError::Io {
        path: cfg.out.clone(),
        source: e,
    })?;

    let mut jobs = Vec::new();
    for p in &prepared {
        for case in &p.cases {
            for agent in agents {
                for epoch in 0..cfg.epochs {
                    jobs.push(EpisodeJob {
                        spec: p.clone(),
                        case: case.clone(),
                        agent: agent.clone(),
                        epoch,
                        seed: episode_seed(cfg.seed, &p.loaded.spec.id, &case.id, epoch),
                    });
                }
            }
        }
    }
    let bar = if cfg.progress {
        ProgressBar::new(jobs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} episodes {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let out = Arc::new(cfg.out.clone());
    let mut results: Vec<EpisodeResult> = futures::stream::iter(jobs.into_iter().map(|job| {
        let out = out.clone();
        let bar = bar.clone();
        async move {
            let handle = tokio::spawn({
                let job = job.clone();
                let out = out.clone();
                async move { run_episode(&job, &out).await }
            });
            let r = match handle.await {
                Ok(r) => r,
                // The agent or harness panicked: record it as an error episode.
                Err(e) => episode::crashed(&job, &out, &format!("episode task failed: {e}")),
            };
            bar.inc(1);
            r
        }
    }))
    .buffer_unordered(cfg.jobs.max(1))
    .collect()
    .await;
    bar.finish_and_clear();
    results.sort_by(|a, b| {
        (&a.spec, &a.case, &a.agent, a.epoch).cmp(&(&b.spec, &b.case, &b.agent, b.epoch))
    });

    let gates: BTreeMap<_, _> = specs
        .iter()
        .map(|s| (s.spec.id.clone(), s.spec.gates.clone()))
        .collect();
    let summary = summarize(&results, &gates);
    let passed = summary.iter().all(|r| r.passed());
    let run = RunResults {
        schema_version: RESULTS_SCHEMA.to_string(),
        assay_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: cfg.seed,
        epochs: cfg.epochs,
        agents: agents.iter().map(|a| a.name().to_string()).collect(),
        specs: specs
            .iter()
            .map(|s| SpecRef {
                id: s.spec.id.clone(),
                path: s.path.display().to_string(),
                hash: s.hash.clone(),
            })
            .collect(),
        episodes: results,
        summary,
        passed,
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

/// Episode seed: a hash of the run seed and the case identity. The agent is not
/// part of it, so every agent meets the same world (same canaries) for a case.
pub fn episode_seed(seed: u64, spec: &str, case: &str, epoch: u32) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(spec.as_bytes());
    h.update([0]);
    h.update(case.as_bytes());
    h.update(epoch.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}
