//! Throughput of the runner over every example spec expanded with the full
//! technique catalog:
//!
//! - `control-matrix`: episodes per second for the three control agents,
//!   including world construction, trace serialisation, compression into the
//!   run store, scoring and sealing (the store-only path `assay run` takes);
//! - `control-matrix-export`: the same plus the export of results.json and
//!   one trace file per episode (`assay run --out DIR`);
//! - `case-qa`: cases per second checked by case QA (solve + naive runs, no traces).
//!
//! Run: `cargo bench -p assay-run --bench episodes` (figures are "elements/s").
// `criterion_group!` generates a public function no doc comment can reach.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use assay_agent::agent_from_name;
use assay_run::{PreparedCase, RunConfig, RunOptions, StoreOptions, qa, run_with};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn example_cases() -> Vec<Arc<PreparedCase>> {
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
    assay_run::prepare(cases).expect("prepare")
}

fn bench(c: &mut Criterion) {
    let cases = example_cases();
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
    let stored = || RunOptions {
        store: Some(StoreOptions {
            path: Some(dir.path().join("bench.db")),
            ..StoreOptions::default()
        }),
        ..RunOptions::default()
    };
    let cfg = RunConfig {
        seed: 0,
        epochs: 1,
        jobs,
        out: None,
        judge: None,
    };
    let episodes = rt
        .block_on(run_with(&cases, &agents, &cfg, vec![], stored()))
        .expect("run")
        .episodes
        .len();

    let mut g = c.benchmark_group("control-matrix");
    g.throughput(Throughput::Elements(episodes as u64));
    g.sample_size(10);
    g.bench_function(format!("{episodes} episodes"), |b| {
        b.iter(|| {
            rt.block_on(assay_run::run_stored(
                &cases,
                &agents,
                &cfg,
                vec![],
                stored(),
            ))
            .expect("run")
        });
    });
    g.finish();

    let mut g = c.benchmark_group("control-matrix-export");
    g.throughput(Throughput::Elements(episodes as u64));
    g.sample_size(10);
    let mut n = 0;
    g.bench_function(format!("{episodes} episodes"), |b| {
        b.iter(|| {
            n += 1;
            let cfg = RunConfig {
                out: Some(dir.path().join(format!("export-{n}"))),
                ..cfg.clone()
            };
            rt.block_on(assay_run::run_stored(
                &cases,
                &agents,
                &cfg,
                vec![],
                stored(),
            ))
            .expect("run")
        });
    });
    g.finish();

    let mut g = c.benchmark_group("case-qa");
    g.throughput(Throughput::Elements(cases.len() as u64));
    g.sample_size(10);
    g.bench_function(format!("{} cases", cases.len()), |b| {
        b.iter(|| rt.block_on(qa(&cases, jobs)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
