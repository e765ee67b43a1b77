//! Llama-family variants against reference logits from Hugging Face `transformers`: Mistral's
//! sliding-window attention, Qwen2's per-layer window, and the linear, dynamic-NTK and YaRN
//! rotary scalings (fixtures made by scripts/make-llama-variants-fixture.py, on a 20-token
//! sequence: longer than the window of 4 and the original context of 8).

use std::path::PathBuf;

use assay_mech::{Batch, Model, RunPlan};
use candle_core::Device;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llama-variants")
        .join(name)
}

/// Largest absolute difference between our logits and the reference.
fn max_diff(name: &str) -> f32 {
    let dir = fixture(name);
    let model = Model::load_on(&dir, &Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let ids: Vec<u32> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let want: Vec<Vec<f32>> = reference["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let batch = Batch::from_token_ids(&[ids], 0, &Device::Cpu).unwrap();
    let out = model.run(&batch, &RunPlan::output_only()).unwrap();
    let got: Vec<Vec<f32>> = out.output.unwrap().squeeze(0).unwrap().to_vec2().unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = 0f32;
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    worst
}

#[test]
fn llama_family_variants_match_transformers() {
    for name in [
        "mistral-sliding-window",
        "qwen2-sliding-window",
        "llama-rope-linear",
        "llama-rope-dynamic",
        "llama-rope-yarn",
    ] {
        let d = max_diff(name);
        println!("{name}: max |Δlogit| = {d:.2e}");
        assert!(d < 1e-4, "{name}: max |Δlogit| = {d}");
    }
}

/// The fixtures must exercise what they claim: dropping the window or the scaling changes
/// the logits by far more than the parity tolerance above (the fixture sharpens attention so
/// that positions matter).
#[test]
fn variants_differ_from_plain_llama() {
    for (name, key) in [
        ("mistral-sliding-window", "sliding_window"),
        ("qwen2-sliding-window", "sliding_window"),
        ("llama-rope-linear", "rope_parameters"),
        ("llama-rope-dynamic", "rope_parameters"),
        ("llama-rope-yarn", "rope_parameters"),
    ] {
        let src = fixture(name);
        let tmp = tempfile::tempdir().unwrap();
        for f in ["model.safetensors", "reference.json"] {
            std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
        }
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        cfg.as_object_mut().unwrap().remove(key);
        std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
        let plain = Model::load_on(tmp.path(), &Device::Cpu).unwrap();
        let real = Model::load_on(&src, &Device::Cpu).unwrap();
        let ids = vec![(0..20u32).map(|i| (i * 7) % 64).collect::<Vec<_>>()];
        let batch = Batch::from_token_ids(&ids, 0, &Device::Cpu).unwrap();
        let a = plain
            .run(&batch, &RunPlan::output_only())
            .unwrap()
            .output
            .unwrap();
        let b = real
            .run(&batch, &RunPlan::output_only())
            .unwrap()
            .output
            .unwrap();
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        println!("{name} without {key}: max |Δlogit| = {d:.2e}");
        assert!(d > 1e-2, "{name} without {key} differs by only {d}");
    }
}

#[test]
fn unsupported_rope_type_is_a_clear_error() {
    let src = fixture("llama-rope-linear");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["rope_parameters"]["rope_type"] = "longrope".into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let e = Model::load_on(tmp.path(), &Device::Cpu)
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("longrope") && e.contains("supported"), "{e}");
    assert!(e.contains("config.json"), "{e}");
}
