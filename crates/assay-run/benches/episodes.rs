//! Episodes per second for the control agents over every example spec,
//! including world construction, trace serialisation and writing, and scoring.
//!
//! Run: `cargo bench -p assay-run --bench episodes`. The figure to compare is
//! reported as "episodes/s" (elements per second).

use std::path::Path;
use std::sync::Arc;

use assay_agent::agent_from_name;
use assay_run::{RunConfig, run};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn load_examples() -> Vec<assay_spec::LoadedSpec> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files = assay_spec::spec_files(&[root]).expect("examples dir");
    files
        .iter()
        .map(|f| assay_spec::load_file(f).expect("examples are valid"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let specs = load_examples();
    let agents: Vec<Arc<dyn assay_agent::Agent>> =
        ["control:solve", "control:naive", "control:refuse"]
            .iter()
            .map(|n| agent_from_name(n).expect("control agent"))
            .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = RunConfig {
        seed: 0,
        epochs: 10,
        jobs,
        out: dir.path().to_path_buf(),
        progress: false,
    };
    let episodes = rt
        .block_on(run(&specs, &agents, &cfg))
        .expect("run")
        .episodes
        .len();
    let mut g = c.benchmark_group("control-matrix");
    g.throughput(Throughput::Elements(episodes as u64));
    g.sample_size(10);
    g.bench_function(format!("{episodes} episodes"), |b| {
        b.iter(|| rt.block_on(run(&specs, &agents, &cfg)).expect("run"));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
