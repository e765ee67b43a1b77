#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The model cache filled by `scripts/fetch-models.sh`.
pub fn models_dir() -> PathBuf {
    if let Ok(p) = std::env::var("ASSAY_MODELS") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.cache/models")
}

/// True when a missing model must fail its test instead of skipping it
/// (`ASSAY_REQUIRE_MODELS=1`, set by CI), so a green run always means the real-model
/// tests ran.
pub fn models_required() -> bool {
    std::env::var("ASSAY_REQUIRE_MODELS").is_ok_and(|v| v == "1")
}

/// Reports a missing model: a panic when models are required, else a printed skip.
fn missing(name: &str, p: &std::path::Path) {
    let msg = format!(
        "{name} not found at {} (run scripts/fetch-models.sh or set ASSAY_MODELS)",
        p.display()
    );
    if models_required() {
        panic!("ASSAY_REQUIRE_MODELS=1: {msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

/// The SmolLM2 GGUF, or `None` after printing why the test is skipped (a panic
/// under `ASSAY_REQUIRE_MODELS=1`).
pub fn smollm2() -> Option<PathBuf> {
    let p = models_dir().join("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        missing("SmolLM2", &p);
        None
    }
}

/// The all-MiniLM-L6-v2 directory, or `None` after printing why the test is skipped
/// (a panic under `ASSAY_REQUIRE_MODELS=1`).
pub fn minilm() -> Option<PathBuf> {
    let p = models_dir().join("all-minilm-l6-v2");
    if p.join("model.safetensors").is_file() {
        Some(p)
    } else {
        missing("all-MiniLM-L6-v2", &p);
        None
    }
}

/// Largest absolute difference between two equal-length slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) },
        )
        .0
}
