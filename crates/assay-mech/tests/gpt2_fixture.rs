//! GPT-2 parity against reference outputs produced by Hugging Face `transformers` on a tiny
//! randomly initialised GPT-2 (fixture made by scripts/make-gpt2-fixture.py).

#![allow(clippy::needless_range_loop)]

mod common;

use std::path::PathBuf;

use assay_mech::{Batch, HookPoint, Model, Reduce, RunPlan};
use candle_core::Device;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2")
}

fn flat3(v: &serde_json::Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<f32>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().expect("number") as f32),
        }
    }
    walk(v, &mut out);
    out
}

#[test]
fn gpt2_matches_transformers_reference() {
    let dir = fixture();
    let model = Model::load_on(&dir, &Device::Cpu).unwrap();
    assert_eq!(model.info.architecture, "gpt2");
    let n_layers = model.info.n_layers;
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let mut worst_logit = 0f32;
    let mut worst_hidden = 0f32;
    for case in reference["cases"].as_array().unwrap() {
        let ids: Vec<Vec<u32>> = case["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect();
        let mask: Vec<Vec<u8>> = case["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u8)
                    .collect()
            })
            .collect();
        let lengths: Vec<usize> = mask
            .iter()
            .map(|m| m.iter().filter(|&&x| x == 1).count())
            .collect();
        let rows: Vec<Vec<u32>> = ids
            .iter()
            .zip(&lengths)
            .map(|(r, &l)| r[..l].to_vec())
            .collect();
        let batch = Batch::from_token_ids(&rows, 0, &Device::Cpu).unwrap();
        let mut hooks: Vec<HookPoint> = (0..n_layers).map(HookPoint::ResidPre).collect();
        hooks.push(HookPoint::LnFinal);
        let mut plan = RunPlan::caching(&hooks, Reduce::None);
        plan.want_output = true;
        let out = model.run(&batch, &plan).unwrap();
        let logits = out.output.unwrap();
        let (b, t, v) = logits.dims3().unwrap();
        let got = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want = flat3(&case["logits"]);
        let hs = case["hidden_states"].as_array().unwrap();
        let d = model.info.d_model;
        // Compare real (unpadded) positions only: padding positions are undefined.
        for r in 0..b {
            for p in 0..lengths[r] {
                for k in 0..v {
                    let i = (r * t + p) * v + k;
                    worst_logit = worst_logit.max((got[i] - want[i]).abs());
                }
            }
        }
        for (li, h) in hooks.iter().enumerate() {
            let ours = out
                .cache
                .get(h)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let theirs = flat3(&hs[li]);
            for r in 0..b {
                for p in 0..lengths[r] {
                    for k in 0..d {
                        let i = (r * t + p) * d + k;
                        worst_hidden = worst_hidden.max((ours[i] - theirs[i]).abs());
                    }
                }
            }
        }
    }
    println!(
        "gpt2 vs transformers {}: max |Δlogit| = {worst_logit:e}, max |Δhidden| = {worst_hidden:e}",
        reference["transformers"]
    );
    assert!(worst_logit < 1e-4, "{worst_logit}");
    assert!(worst_hidden < 1e-4, "{worst_hidden}");
}
