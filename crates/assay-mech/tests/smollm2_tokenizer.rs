//! SmolLM2's tokenizer, built from GGUF metadata, against the token ids Hugging Face
//! `transformers` produces from the same GGUF (scripts/make-tokenizer-fixture.py).
//! Skipped, with a message, when the model has not been fetched.

mod common;

use assay_mech::Model;
use candle_core::Device;

#[test]
fn smollm2_tokenizer_matches_transformers() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/smollm2-tokens.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let model = Model::load_on(&path, &Device::Cpu).unwrap();
    let tok = model.tokenizer().unwrap();
    let mut mismatches = Vec::new();
    for case in fixture["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, false).unwrap();
        if got != want {
            mismatches.push(format!("{text:?}: ours {got:?} transformers {want:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// A real-model test cannot pass silently without its model when models are required:
/// run the test above in a child process against an empty model cache.
#[test]
fn missing_model_fails_when_required() {
    if std::env::var_os("ASSAY_MODELS_CHILD").is_some() {
        return; // the child only runs the test it is asked for
    }
    let empty = tempfile::tempdir().unwrap();
    let run = |required: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "smollm2_tokenizer_matches_transformers",
                "--nocapture",
            ])
            .env("ASSAY_MODELS", empty.path())
            .env("ASSAY_REQUIRE_MODELS", required)
            .env("ASSAY_MODELS_CHILD", "1")
            .output()
            .unwrap()
    };
    let required = run("1");
    let stderr = String::from_utf8_lossy(&required.stderr);
    assert!(!required.status.success(), "must fail: {stderr}");
    assert!(stderr.contains("ASSAY_REQUIRE_MODELS=1"), "{stderr}");
    let optional = run("0");
    let stderr = String::from_utf8_lossy(&optional.stderr);
    assert!(optional.status.success(), "{stderr}");
    assert!(stderr.contains("SKIPPED"), "{stderr}");
}
