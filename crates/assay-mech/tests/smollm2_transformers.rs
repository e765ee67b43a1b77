//! SmolLM2-135M-Instruct against a second, independent implementation: Hugging Face
//! `transformers` loading the same GGUF (dequantised to float32). The fixture holds the
//! prompt token ids and the 200 largest last-position logits
//! (scripts/make-smollm2-fixture.py). Skipped, with a message, when the model is absent.

mod common;

use assay_mech::{Batch, Model, RunPlan};
use candle_core::{Device, IndexOp};

#[test]
fn smollm2_matches_transformers_top_logits() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/smollm2-logits.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let model = Model::load_on(&path, &Device::Cpu).unwrap();
    let tok = model.tokenizer().unwrap();
    let mut worst = 0f32;
    for case in fixture["cases"].as_array().unwrap() {
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        // Our tokenizer and chat template give the same ids as transformers'.
        let text = case["text"].as_str().unwrap();
        assert_eq!(tok.encode(text, false).unwrap(), ids, "{text:?}");
        let batch = Batch::from_token_ids(std::slice::from_ref(&ids), 0, &Device::Cpu).unwrap();
        let logits = model
            .run(&batch, &RunPlan::output_only())
            .unwrap()
            .output
            .unwrap();
        let last: Vec<f32> = logits.i((0, ids.len() - 1)).unwrap().to_vec1().unwrap();
        let top_ids = case["top_ids"].as_array().unwrap();
        let top_logits = case["top_logits"].as_array().unwrap();
        assert_eq!(common::argmax(&last), top_ids[0].as_u64().unwrap() as usize);
        for (i, v) in top_ids.iter().zip(top_logits) {
            let ours = last[i.as_u64().unwrap() as usize];
            worst = worst.max((ours - v.as_f64().unwrap() as f32).abs());
        }
    }
    println!(
        "SmolLM2 vs transformers {} (top-200 logits): max |Δlogit| = {worst:e}",
        fixture["transformers"]
    );
    assert!(worst < 1e-3, "{worst}");
}
