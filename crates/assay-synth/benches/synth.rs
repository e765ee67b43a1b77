//! Cases synthesised per second over every example spec with the full catalog:
//! in memory (`synthesize`), and including the YAML each case is written as.
//!
//! Run: `cargo bench -p assay-synth --bench synth` (figures are "elements/s").
// `criterion_group!` generates a public function no doc comment can reach.
#![allow(missing_docs)]

use std::path::Path;

use assay_synth::{Catalog, SynthOptions, case_to_yaml, synthesize};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let specs: Vec<_> = assay_spec::spec_files(&[root])
        .expect("examples")
        .iter()
        .map(|f| assay_spec::load_file(f).expect("valid"))
        .collect();
    let catalog = Catalog::embedded().expect("catalog");
    let opts = SynthOptions::default();
    let n: usize = specs
        .iter()
        .map(|s| synthesize(s, &catalog, &opts).expect("synth").len())
        .sum();
    let mut g = c.benchmark_group("synth");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("{n} cases in memory"), |b| {
        b.iter(|| {
            specs
                .iter()
                .map(|s| synthesize(s, &catalog, &opts).expect("synth").len())
                .sum::<usize>()
        })
    });
    g.bench_function(format!("{n} cases with YAML"), |b| {
        b.iter(|| {
            specs
                .iter()
                .flat_map(|s| synthesize(s, &catalog, &opts).expect("synth"))
                .map(|c| case_to_yaml(&c.case).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
