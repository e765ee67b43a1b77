//! A probe for a simple real property on SmolLM2-135M-Instruct: English vs French sentences
//! (data/english-french.jsonl, grouped by topic so whole topics are held out). Skipped, with
//! a message, when the model has not been fetched.

mod common;

use assay_mech::Reduce;
use assay_mech::cli::{MechCommand, ProbeArgs};
use assay_mech::evidence::EvidenceRecord;
use assay_mech::probe::Method;

/// `cli::run` without a command line: records get an empty reproduction recipe.
fn run(cmd: MechCommand) -> anyhow::Result<i32> {
    assay_mech::cli::run(cmd, &[])
}

#[test]
fn smollm2_english_vs_french_probe() {
    let Some(model) = common::smollm2() else {
        return;
    };
    let data =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/english-french.jsonl");
    let out = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let code = run(MechCommand::Probe(ProbeArgs {
        model,
        data,
        // Early and middle blocks only: the pass stops after block 12, keeping the test short.
        hooks: "hook_embed,blocks.0.hook_resid_post,blocks.1.hook_resid_post,blocks.2.hook_resid_post,blocks.4.hook_resid_post,blocks.8.hook_resid_post,blocks.12.hook_resid_post".into(),
        position: Reduce::Last,
        out: out.path().into(),
        method: Method::Logreg,
        c: 1.0,
        covariance_correction: false,
        shrinkage: 0.1,
        folds: 5,
        bootstrap: 1000,
        random_directions: 20,
        seed: 0,
        batch_size: 8,
        chat_template: false,
        no_special_tokens: false,
        claim: Some("smollm2-represents-input-language".into()),
    }))
    .unwrap();
    assert_eq!(code, 0);
    println!("probe on SmolLM2 took {:.1?}", t0.elapsed());
    let ev = EvidenceRecord::read(&out.path().join("evidence.json")).unwrap();
    let r = &ev.results;
    println!(
        "SmolLM2 English-vs-French: chosen {} AUROC {:.3} CI {} control {:.3} selectivity {:.3} random {:.3}",
        r["chosen_hook"],
        r["auroc"].as_f64().unwrap(),
        r["auroc_ci95"],
        r["control_auroc"].as_f64().unwrap(),
        r["selectivity_auroc"].as_f64().unwrap(),
        r["random_direction_auroc_mean"].as_f64().unwrap()
    );
    assert!(ev.model.dequantized);
    assert!(ev.caveats.iter().any(|c| c.contains("Q4_1")));
    assert!(r["auroc"].as_f64().unwrap() > 0.9);
    assert!(r["selectivity_auroc"].as_f64().unwrap() > 0.25);
}
