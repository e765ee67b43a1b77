//! Throughput of the hooked forward pass and of probe fitting, for comparison with PyTorch
//! and scikit-learn (`bench/run.sh` runs both sides, interleaved). Not a test: timings only.
//!
//! `cargo run --release -p assay-mech --example bench -- [MODEL.gguf|DIR] [--probe-data FILE]`
//!
//! Without a model path, only the probe-fitting benchmark runs. `--probe-data` also writes the
//! probe matrix (10,000 × 576 little-endian f32, row-major; label = row index mod 2) so the
//! scikit-learn side fits exactly the same data. Lines starting `RESULT` are for `run.sh`.

use std::time::Instant;

use assay_mech::probe::linear::{
    LogregOptions, Matrix, Standardizer, fit_logreg_standardized, fit_mass_mean,
};
use assay_mech::rng::Rng;
use assay_mech::{Batch, HookPoint, Model, Reduce, RunPlan};

/// Timed forward passes per plan; the fastest is reported, as for the probe fits.
const FORWARD_REPS: usize = 5;

/// Repetitions of each probe fit; the best is reported (the least disturbed by other load).
const PROBE_REPS: usize = 20;

fn main() -> anyhow::Result<()> {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("threads: {threads}");
    let mut model_path = None;
    let mut probe_data = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--probe-data" => probe_data = args.next(),
            _ => model_path = Some(a),
        }
    }
    if let Some(path) = model_path {
        bench_forward(&path)?;
    }
    bench_probe(probe_data.as_deref())
}

fn bench_forward(path: &str) -> anyhow::Result<()> {
    let model = Model::load(std::path::Path::new(path))?;
    let (b, t) = (8usize, 128usize);
    let mut rng = Rng::new(0, 0);
    let vocab = model.info.vocab_size;
    let rows: Vec<Vec<u32>> = (0..b)
        .map(|_| (0..t).map(|_| rng.below(vocab) as u32).collect())
        .collect();
    let batch = Batch::from_token_ids(&rows, 0, model.device())?;
    let last = model.info.n_layers - 1;
    let plans = [
        ("full logits", "forward_full", RunPlan::output_only()),
        (
            "no output layer, cache every resid_post (last token)",
            "forward_body",
            {
                let hooks: Vec<HookPoint> = (0..=last).map(HookPoint::ResidPost).collect();
                RunPlan::caching(&hooks, Reduce::Last)
            },
        ),
    ];
    for (name, key, plan) in plans {
        model.run(&batch, &plan)?; // warm-up
        let mut s = f64::MAX;
        for _ in 0..FORWARD_REPS {
            let t0 = Instant::now();
            model.run(&batch, &plan)?;
            s = s.min(t0.elapsed().as_secs_f64());
        }
        let tps = (b * t) as f64 / s;
        println!(
            "forward {b}x{t} ({name}): {s:.3} s/batch best of {FORWARD_REPS}, {tps:.0} tokens/s"
        );
        println!("RESULT assay {key} {tps:.1}");
    }
    Ok(())
}

fn bench_probe(write_to: Option<&str>) -> anyhow::Result<()> {
    // 10,000 x 576, label along a random direction plus noise, features of unequal scale.
    let (n, d) = (10_000usize, 576usize);
    let mut rng = Rng::new(1, 0);
    let dir: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let mut data = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as f64;
        for (j, dj) in dir.iter().enumerate() {
            data.push(
                (rng.normal() * (1.0 + (j % 7) as f64) + 0.05 * (2.0 * label - 1.0) * dj) as f32,
            );
        }
        y.push(label);
    }
    if let Some(path) = write_to {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(path, bytes)?;
    }
    let x = Matrix { n, d, data };
    // Same work as scikit-learn's StandardScaler + LogisticRegression(C=1, lbfgs,
    // max_iter=100, tol=1e-4): fit the scaler, then the model, timed together.
    let opts = LogregOptions::default();
    let mut best = f64::MAX;
    let mut s = None;
    for _ in 0..PROBE_REPS {
        let t0 = Instant::now();
        let (fitted, _) = fit_logreg_standardized(&x, &y, &opts);
        best = best.min(t0.elapsed().as_secs_f64());
        s = Some(fitted);
    }
    let s = s.expect("fitted");
    let mut best_st = f64::MAX;
    for _ in 0..PROBE_REPS {
        let t0 = Instant::now();
        let _ = Standardizer::fit(&x);
        best_st = best_st.min(t0.elapsed().as_secs_f64());
    }
    println!("  of which standardiser fit: {best_st:.4} s best of {PROBE_REPS}");
    let acc = s
        .scores(&x)
        .iter()
        .zip(&y)
        .filter(|(a, b)| (**a > 0.0) == (**b > 0.5))
        .count() as f64
        / n as f64;
    println!(
        "logreg fit {n}x{d} (standardise + L-BFGS, C=1, max_iter 100, tol 1e-4): {best:.4} s best of {PROBE_REPS} (train acc {acc:.4})"
    );
    println!("RESULT assay probe_fit_s {best:.5}");
    let t0 = Instant::now();
    let _ = fit_mass_mean(&x, &y, false, 0.0);
    println!("mass-mean fit {n}x{d}: {:.4} s", t0.elapsed().as_secs_f64());
    Ok(())
}
