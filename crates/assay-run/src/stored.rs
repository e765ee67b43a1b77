//! Runs through the run store: naming, resuming, streaming episodes into the
//! store as they finish, sealing, and exporting a stored run as the
//! `results.json` + trace folders layout.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::Agent;
use assay_report::{
    Aggregate, Aggregator, CoverageAcc, DIGEST_ALGORITHM, Integrity, QaResult, RESULTS_SCHEMA,
    ResultsSignature, RunResults, SIGNATURE_ALGORITHM, SpecRef, Status, signed_message,
};
use assay_store::{
    DEFAULT_STORE, EpisodeRow, NewRun, ResultsHasher, RunIdentity, RunRow, RunState, Store,
    episode_key,
};

use crate::episode::EpisodeJob;
use crate::{
    Finisher, JobSource, NoProgress, PreparedCase, Progress, RunConfig, RunError, RunOptions,
    episode_seed, evidence, play, write_atomic, write_results,
};

/// Where a run is stored and what it is called.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The store file; None: `assay.db` inside [`RunConfig::out`] when an
    /// export folder is given, else [`DEFAULT_STORE`].
    pub path: Option<PathBuf>,
    /// The run's name; None: generated (`run-YYYYMMDD-HHMMSS-xxxxxx`), or,
    /// with `resume`, the latest unfinished run with the same identity.
    pub name: Option<String>,
    /// Continue the named run: play only its episodes without a verdict.
    pub resume: bool,
    /// The command line, recorded with the run.
    pub command: Vec<String>,
}

/// A run that is in the store: the store, its row, and its results without
/// episodes (stream them with [`Store::for_each_episode`]).
pub struct StoredRun {
    /// The open store.
    pub store: Store,
    /// The run's row (name, identity, counts).
    pub run: RunRow,
    /// Sealed results with an empty `episodes` list.
    pub results: RunResults,
    /// Episode counts by status over the whole run.
    pub counts: Counts,
    /// Episodes played now (fewer than the run's when it was resumed).
    pub played: u64,
    /// The whole results, when they were exported to [`RunConfig::out`].
    pub exported: Option<RunResults>,
}

/// Episodes by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// All episodes.
    pub total: u64,
    /// Scored.
    pub ok: u64,
    /// Errored.
    pub error: u64,
    /// Could not be judged.
    pub inconclusive: u64,
    /// Using a technique from the catalog (breakdowns are meaningful).
    pub with_technique: u64,
}

/// Path of the store a run uses (see [`StoreOptions::path`]).
pub fn store_path(cfg: &RunConfig, opts: &RunOptions) -> PathBuf {
    match (opts.store.as_ref().and_then(|s| s.path.clone()), &cfg.out) {
        (Some(p), _) => p,
        (None, Some(out)) => out.join("assay.db"),
        (None, None) => PathBuf::from(DEFAULT_STORE),
    }
}

fn identity(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    opts: &RunOptions,
) -> Result<RunIdentity, RunError> {
    let mut inputs = BTreeMap::new();
    for c in cases {
        let key = c.source.display().to_string();
        if inputs.contains_key(&key) {
            continue;
        }
        // A case built in memory names no file; its content is in `cases`.
        if let Ok(bytes) = std::fs::read(&c.source) {
            inputs.insert(key, assay_trace::sha256_hex(&bytes));
        }
    }
    let mut digests: Vec<&str> = cases.iter().map(|c| c.stored.digest.as_str()).collect();
    digests.sort_unstable();
    let ctx = opts.evidence.as_ref();
    let agents_file = ctx
        .and_then(|c| c.agents_file.as_deref())
        .map(|p| {
            std::fs::read(p)
                .map(|b| assay_trace::sha256_hex(&b))
                .map_err(|source| RunError::Io {
                    path: p.to_path_buf(),
                    source,
                })
        })
        .transpose()?;
    Ok(RunIdentity {
        seed: cfg.seed,
        epochs: cfg.epochs,
        agents: agents.iter().map(|a| a.name().to_string()).collect(),
        inputs,
        cases: assay_trace::sha256_hex(digests.join("\n").as_bytes()),
        catalog: ctx
            .and_then(|c| c.catalog.as_ref())
            .map(|c| c.digest.clone()),
        agents_file,
        judge: cfg
            .judge
            .as_ref()
            .map(|j| format!("{} x{}", j.agent.name(), j.runs)),
        assay_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Finds or creates the run: a new name, a taken name with `resume`, or the
/// latest unfinished run with the same identity.
fn open_run(
    store: &Store,
    id: &RunIdentity,
    planned: u64,
    opts: &StoreOptions,
) -> Result<RunRow, RunError> {
    let existing = match (&opts.name, opts.resume) {
        (Some(name), _) => store.find_run(name)?,
        (None, true) => store
            .runs()?
            .into_iter()
            .rev()
            .find(|r| r.state != RunState::Complete && r.identity == *id),
        (None, false) => None,
    };
    match existing {
        Some(run) if opts.resume => {
            let diff = run.identity.differences(id);
            if !diff.is_empty() {
                return Err(RunError::Name(format!(
                    "cannot resume run `{}` in {}: it is a different run ({}); start a new run with another --name",
                    run.name,
                    store.path().display(),
                    diff.join("; ")
                )));
            }
            if run.state == RunState::Complete {
                return Err(RunError::Name(format!(
                    "run `{}` in {} is complete: nothing to resume (see `assay report` or `assay export`)",
                    run.name,
                    store.path().display()
                )));
            }
            store.reopen_run(&run, planned)?;
            Ok(run)
        }
        Some(run) => Err(RunError::Name(format!(
            "a run named `{}` already exists in {} ({}, {} of {} episodes); add --resume to continue it, or choose another --name",
            run.name,
            store.path().display(),
            match run.state {
                RunState::Complete => "complete",
                RunState::Interrupted => "interrupted",
                RunState::Running => "unfinished",
            },
            run.stored,
            run.planned
        ))),
        None if opts.resume => Err(RunError::Name(match &opts.name {
            Some(n) => format!(
                "--resume: no run named `{n}` in {} (see `assay runs`)",
                store.path().display()
            ),
            None => format!(
                "--resume: no unfinished run with these inputs in {} (see `assay runs`)",
                store.path().display()
            ),
        })),
        None => {
            let name = match &opts.name {
                Some(n) => n.clone(),
                None => generated_name(store, id)?,
            };
            Ok(store.create_run(&NewRun {
                name,
                command: opts.command.clone(),
                identity: id.clone(),
                planned,
            })?)
        }
    }
}

fn generated_name(store: &Store, id: &RunIdentity) -> Result<String, RunError> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let base = format!("run-{stamp}-{}", &id.digest()[..6]);
    let mut name = base.clone();
    let mut n = 2;
    while store.find_run(&name)?.is_some() {
        name = format!("{base}-{n}");
        n += 1;
    }
    Ok(name)
}

/// Plays every episode of the run that has no verdict in the store yet,
/// storing each as it finishes, then seals the run from the store and, with
/// [`RunConfig::out`], exports it. Memory stays flat in the number of
/// episodes: jobs are generated lazily and verdicts live in the store.
pub async fn run_stored(
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
    opts: RunOptions,
) -> Result<StoredRun, RunError> {
    if let Some(out) = &cfg.out {
        std::fs::create_dir_all(out).map_err(|e| RunError::Io {
            path: out.clone(),
            source: e,
        })?;
    }
    // Input files are hashed before anything runs, so the records name the
    // bytes the run was computed on (and an unreadable one stops it early).
    let inputs = opts
        .evidence
        .as_ref()
        .map(|ctx| evidence::Inputs::gather(cases, ctx))
        .transpose()?;
    let id = identity(cases, agents, cfg, &opts)?;
    let store = Store::open(&store_path(cfg, &opts))?;
    let planned = (cases.len() * agents.len()) as u64 * u64::from(cfg.epochs);
    let store_opts = opts.store.clone().unwrap_or_default();
    let run = open_run(&store, &id, planned, &store_opts)?;
    let mut docs: Vec<&assay_store::CaseDoc> = cases.iter().map(|c| &c.stored).collect();
    docs.sort_by(|a, b| a.digest.cmp(&b.digest));
    docs.dedup_by(|a, b| a.digest == b.digest);
    store.put_cases(&run, docs)?;
    let done = Arc::new(store.done(&run)?);
    let remaining = planned.saturating_sub(done.len() as u64);

    let progress: Arc<dyn Progress> = opts.progress.clone().unwrap_or(Arc::new(NoProgress));
    progress.begin("episodes", remaining);
    let judge = cfg.judge.clone().map(Arc::new);
    let sources: Vec<(Arc<dyn Agent>, JobSource)> = agents
        .iter()
        .map(|agent| {
            let source: JobSource = Box::new(pending_jobs(
                cases.to_vec(),
                agent.clone(),
                cfg.seed,
                cfg.epochs,
                judge.clone(),
                done.clone(),
            ));
            (agent.clone(), source)
        })
        .collect();
    let writer = store.writer(&run)?;
    let pack: Finisher<EpisodeRow> =
        Arc::new(|job, r, trace| EpisodeRow::new(&r, trace.as_bytes(), &job.case.stored));
    let mut played = 0u64;
    let mut failed = None;
    let cancel = opts.cancel.clone();
    let interrupted = play(
        sources,
        None,
        cfg.jobs,
        progress.as_ref(),
        &opts.cancel,
        pack,
        |row| {
            played += 1;
            if let Err(e) = writer.put(row) {
                // The store is gone: stop the run rather than play episodes nobody keeps.
                failed.get_or_insert(e);
                cancel.cancel();
            }
        },
    )
    .await;
    progress.end();
    writer.finish()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    drop(done);

    let (results, counts) = seal(
        &store,
        &run,
        cases,
        agents,
        cfg,
        skipped,
        &opts,
        interrupted,
    )?;
    let run = store.run(&run.name)?;
    let exported = match &cfg.out {
        Some(out) => {
            let full = export(&store, &run, out)?;
            if let (Some(ctx), Some(inputs)) = (&opts.evidence, &inputs) {
                evidence::write_records(out, &full, cases, agents, cfg, inputs, ctx)?;
            }
            Some(full)
        }
        None => None,
    };
    Ok(StoredRun {
        store,
        run,
        results,
        counts,
        played,
        exported,
    })
}

/// Jobs of one agent over every case and epoch, skipping episodes `done`.
fn pending_jobs(
    cases: Vec<Arc<PreparedCase>>,
    agent: Arc<dyn Agent>,
    seed: u64,
    epochs: u32,
    judge: Option<Arc<crate::JudgeConfig>>,
    done: Arc<HashSet<u64>>,
) -> impl Iterator<Item = EpisodeJob> + Send {
    cases
        .into_iter()
        .flat_map(move |case| {
            let agent = agent.clone();
            let judge = judge.clone();
            (0..epochs).map(move |epoch| EpisodeJob {
                seed: episode_seed(seed, &case.case.id, epoch),
                case: case.clone(),
                agent: agent.clone(),
                epoch,
                judge: judge.clone(),
            })
        })
        .filter(move |job| !done.contains(&episode_key(&job.id())))
}

/// Aggregates the stored episodes, seals the results (streaming the digest
/// over the store) and records them with the run.
#[allow(clippy::too_many_arguments)]
fn seal(
    store: &Store,
    run: &RunRow,
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &RunConfig,
    skipped: Vec<QaResult>,
    opts: &RunOptions,
    interrupted: bool,
) -> Result<(RunResults, Counts), RunError> {
    let mut gates = BTreeMap::new();
    let mut specs: BTreeMap<String, SpecRef> = BTreeMap::new();
    let mut spec_docs: Vec<&assay_spec::Spec> = Vec::new();
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
        if !spec_docs.iter().any(|s| s.id == c.spec_id()) {
            spec_docs.push(&c.spec);
        }
    }
    let mut counts = Counts::default();
    let mut agg = Aggregator::new(gates, cfg.epochs);
    let mut cov = CoverageAcc::new();
    for e in &opts.control_episodes {
        cov.add(e);
    }
    store.for_each_episode(run, |e| {
        counts.total += 1;
        match e.status {
            Status::Ok => counts.ok += 1,
            Status::Error => counts.error += 1,
            Status::Inconclusive => counts.inconclusive += 1,
        }
        counts.with_technique += u64::from(e.technique.is_some());
        agg.add(&e);
        cov.add(&e);
        Ok(())
    })?;
    let Aggregate {
        summary,
        breakdowns,
    } = agg.finish();
    let coverage = cov.finish(&spec_docs);
    let complete = counts.total == run.planned;
    if !interrupted && !complete {
        return Err(RunError::Name(format!(
            "run `{}` holds {} of its {} episodes after playing them all; the store {} was changed by another process",
            run.name,
            counts.total,
            run.planned,
            store.path().display()
        )));
    }
    let passed = !interrupted && summary.iter().all(|r| r.passed());
    let mut results = RunResults {
        schema_version: RESULTS_SCHEMA.to_string(),
        assay_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: cfg.seed,
        epochs: cfg.epochs,
        agents: agents.iter().map(|a| a.name().to_string()).collect(),
        specs: specs.into_values().collect(),
        episodes: Vec::new(),
        summary,
        breakdowns,
        skipped,
        coverage,
        incomplete: interrupted,
        passed,
        integrity: None,
    };
    // Bind every verdict and trace head with one digest (signed with --sign),
    // also for an interrupted run, so what was stored can be verified.
    let mut hasher = ResultsHasher::new(&results);
    store.for_each_episode(run, |e| {
        hasher.add(&e);
        Ok(())
    })?;
    let digest = hasher.finish();
    results.integrity = Some(Integrity {
        algorithm: DIGEST_ALGORITHM.to_string(),
        signature: opts.sign.as_ref().map(|k| ResultsSignature {
            algorithm: SIGNATURE_ALGORITHM.to_string(),
            public_key: k.public().to_hex(),
            signature: k.sign(&signed_message(&digest)),
        }),
        digest,
    });
    let state = if interrupted {
        RunState::Interrupted
    } else {
        RunState::Complete
    };
    store.finish_run(run, &results, state)?;
    Ok((results, counts))
}

/// Writes a stored run as `results.json` plus one `<episode>/trace.jsonl`
/// per episode into `dir`, after checking the run's seal against its stored
/// episodes (an edited store is not exported as if it were sealed).
pub fn export(store: &Store, run: &RunRow, dir: &Path) -> Result<RunResults, RunError> {
    let Some(results) = store.results(run)? else {
        return Err(RunError::Name(format!(
            "run `{}` has no sealed results yet (it was killed before it ended); resume it with `assay run … --name {} --resume`",
            run.name, run.name
        )));
    };
    let recorded = results.integrity.as_ref().map(|i| i.digest.clone());
    let mut hasher = ResultsHasher::new(&results);
    for e in &results.episodes {
        hasher.add(e);
    }
    let computed = hasher.finish();
    if recorded.as_deref() != Some(computed.as_str()) {
        return Err(RunError::Name(format!(
            "run `{}` in {} does not match its seal (recorded {}, computed {computed}): the store was edited; not exporting",
            run.name,
            store.path().display(),
            recorded.as_deref().unwrap_or("none")
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| RunError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    for e in &results.episodes {
        let trace = store
            .trace(run, &e.episode)?
            .ok_or_else(|| RunError::Name(format!("episode {} has no stored trace", e.episode)))?;
        if !crate::out::is_plain_name(&e.episode) {
            return Err(RunError::Name(format!(
                "episode id {:?} in run `{}` is not a plain folder name; not exporting",
                e.episode, run.name
            )));
        }
        if let Err(err) = assay_trace::verify_jsonl(&trace, Some(&e.trace_head)) {
            return Err(RunError::Name(format!(
                "the stored trace of episode {} does not verify against its sealed verdict ({err}); not exporting",
                e.episode
            )));
        }
        let ep_dir = dir.join(&e.episode);
        std::fs::create_dir_all(&ep_dir).map_err(|source| RunError::Io {
            path: ep_dir.clone(),
            source,
        })?;
        write_atomic(&ep_dir.join("trace.jsonl"), trace.as_bytes())?;
    }
    write_results(dir, &results)?;
    Ok(results)
}
