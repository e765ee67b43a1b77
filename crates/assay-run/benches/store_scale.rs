//! The run store at scale: every example spec expanded with the full
//! technique catalog, played by the three control agents over as many
//! epochs as it takes to reach `ASSAY_SCALE_EPISODES` episodes (default
//! 1,000,000), into one store. Prints episodes per second, bytes stored per
//! episode, and the process's peak resident memory, which must stay flat in
//! the number of episodes (verdicts live in the store, jobs are generated
//! lazily, aggregation streams).
//!
//! Run: `cargo bench -p assay-run --bench store_scale`
//! (`ASSAY_SCALE_EPISODES=100000` for a quicker look).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use assay_agent::agent_from_name;
use assay_run::{RunConfig, RunOptions, StoreOptions, run_stored};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let target: u64 = std::env::var("ASSAY_SCALE_EPISODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let catalog = assay_synth::Catalog::embedded().expect("catalog");
    let mut cases = Vec::new();
    for f in assay_spec::spec_files(&[root]).expect("examples dir") {
        let spec = assay_spec::load_file(&f).expect("examples are valid");
        let synthesized =
            assay_synth::synthesize(&spec, &catalog, &assay_synth::SynthOptions::default())
                .expect("synth");
        cases.extend(synthesized.into_iter().map(|c| (c.case, f.clone())));
    }
    let cases = assay_run::prepare(cases).expect("prepare");
    let agents: Vec<Arc<dyn assay_agent::Agent>> =
        ["control:solve", "control:naive", "control:refuse"]
            .iter()
            .map(|n| agent_from_name(n).expect("control agent"))
            .collect();
    let per_epoch = (cases.len() * agents.len()) as u64;
    let epochs = target.div_ceil(per_epoch).max(1) as u32;
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = RunConfig {
        seed: 0,
        epochs,
        jobs,
        out: None,
        judge: None,
    };
    let opts = RunOptions {
        store: Some(StoreOptions {
            path: Some(dir.path().join("scale.db")),
            ..StoreOptions::default()
        }),
        ..RunOptions::default()
    };
    let rss_before = peak_rss_mb();
    let started = Instant::now();
    let stored = rt
        .block_on(run_stored(&cases, &agents, &cfg, vec![], opts))
        .expect("run");
    let secs = started.elapsed().as_secs_f64();
    let n = stored.counts.total;
    let (ep_bytes, case_bytes) = stored.store.stored_bytes(&stored.run).expect("sizes");
    let file = std::fs::metadata(dir.path().join("scale.db")).map_or(0, |m| m.len());
    println!(
        "{n} episodes ({} cases x {} agents x {epochs} epochs) in {secs:.1}s: {:.0} episodes/s",
        cases.len(),
        agents.len(),
        n as f64 / secs
    );
    println!(
        "stored: {:.0} bytes/episode (verdict + trace + keys), cases {:.1} KB once, store file {:.1} MB ({:.0} bytes/episode)",
        ep_bytes as f64 / n as f64,
        case_bytes as f64 / 1024.0,
        file as f64 / 1_048_576.0,
        file as f64 / n as f64
    );
    println!(
        "peak RSS {:.0} MB (after loading cases {rss_before:.0} MB)",
        peak_rss_mb()
    );
}
