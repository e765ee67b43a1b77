//! Planted ground truth, end to end through `cli::run`: a small model whose residual stream
//! encodes a label along a known direction from a known layer on. The probe must find the
//! layer, recover the direction (cosine ≥ 0.9), and its control task must stay near chance.

use assay_mech::Reduce;
use assay_mech::cli::{ApplyArgs, MechCommand, ProbeArgs};
use assay_mech::evidence::EvidenceRecord;
use assay_mech::probe::Method;
use assay_mech::synthetic::{planted_dataset, write_planted_llama};
use candle_core::{DType, Device};

/// `cli::run` without a command line: records get an empty reproduction recipe.
fn run(cmd: MechCommand) -> anyhow::Result<i32> {
    assay_mech::cli::run(cmd, &[])
}

fn probe_args(
    model: &std::path::Path,
    data: &std::path::Path,
    out: &std::path::Path,
    method: Method,
) -> ProbeArgs {
    ProbeArgs {
        model: model.into(),
        data: data.into(),
        hooks: "blocks.*.hook_resid_post".into(),
        position: Reduce::Last,
        out: out.into(),
        method,
        c: 1.0,
        covariance_correction: false,
        shrinkage: 0.1,
        folds: 5,
        bootstrap: 200,
        random_directions: 10,
        seed: 42,
        batch_size: 16,
        chat_template: false,
        no_special_tokens: false,
        claim: Some("planted-label-is-linearly-represented".into()),
    }
}

fn cosine(a: &[f64], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * *y as f64).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    d / (na * nb)
}

#[test]
fn probe_finds_planted_layer_and_direction() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("planted");
    let layer = 3;
    let planted = write_planted_llama(&model_dir, layer, 7).unwrap();
    let rows = planted_dataset(&planted, 240, 9);
    let data = tmp.path().join("data.jsonl");
    std::fs::write(
        &data,
        rows.iter()
            .map(|r| r.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();

    for method in [Method::Logreg, Method::MassMean] {
        let out = tmp.path().join(format!("out-{method:?}"));
        let code = run(MechCommand::Probe(probe_args(
            &model_dir, &data, &out, method,
        )))
        .unwrap();
        assert_eq!(code, 0);
        let pj: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("probe.json")).unwrap())
                .unwrap();
        let chosen = pj["chosen"]["hook"].as_str().unwrap();
        assert_eq!(
            chosen,
            format!("blocks.{layer}.hook_resid_post"),
            "{method:?}"
        );
        let per = pj["per_hook"].as_array().unwrap();
        for h in per {
            let name = h["hook"].as_str().unwrap();
            let l: usize = name.split('.').nth(1).unwrap().parse().unwrap();
            let key = if method == Method::Logreg {
                "logreg"
            } else {
                "mass_mean"
            };
            let auc = h[key]["auroc"].as_f64().unwrap();
            let ctrl = h["control_auroc"].as_f64().unwrap();
            println!(
                "{method:?} {name}: auroc {auc:.3} control {ctrl:.3} random {:.3}",
                h["random_direction_auroc_mean"].as_f64().unwrap()
            );
            if l < layer {
                assert!(
                    (auc - 0.5).abs() < 0.15,
                    "{name} should be at chance before the planted layer: {auc}"
                );
            } else {
                assert!(auc > 0.97, "{name}: {auc}");
            }
            // Random per-group labels cannot be predicted on held-out groups. Centroid methods
            // evaluated on held-out groups are biased slightly *below* 0.5 (removing a group
            // moves its class mean away from it), so only a control well above chance would
            // indicate memorisation.
            assert!(
                (0.25..0.65).contains(&ctrl),
                "{name}: control task {ctrl} not near chance"
            );
        }
        let tensors =
            candle_core::safetensors::load(out.join("direction.safetensors"), &Device::Cpu)
                .unwrap();
        let dir: Vec<f64> = tensors["direction"]
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let cos = cosine(&dir, &planted.direction);
        println!("{method:?}: cosine(probe direction, planted) = {cos:.4}");
        assert!(cos >= 0.9, "{method:?}: cosine {cos}");
        let mm: Vec<f64> = tensors["mass_mean"]
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(cosine(&mm, &planted.direction) >= 0.9);

        // The evidence record names the model and data by digest and keeps the seed.
        let ev = EvidenceRecord::read(&out.join("evidence.json")).unwrap();
        assert_eq!(ev.evidence_class, "linear_probe");
        assert_eq!(ev.seed, 42);
        assert_eq!(ev.model.files.len(), 3);
        assert_eq!(ev.data[0].rows, 240);
        assert!(ev.id.starts_with("sha256:"));
        assert!(
            std::fs::read_to_string(out.join("metric_by_layer.svg"))
                .unwrap()
                .starts_with("<svg")
        );
    }

    // Same seed, same outputs.
    let again = tmp.path().join("again");
    assert_eq!(
        run(MechCommand::Probe(probe_args(
            &model_dir,
            &data,
            &again,
            Method::Logreg
        )))
        .unwrap(),
        0
    );
    let a = std::fs::read_to_string(tmp.path().join("out-Logreg/evidence.json")).unwrap();
    let b = std::fs::read_to_string(again.join("evidence.json")).unwrap();
    let strip = |s: &str| {
        s.lines()
            .filter(|l| {
                !l.contains("\"path\"") && !l.contains("\"id\"") && !l.contains("probe.json")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ja: serde_json::Value = serde_json::from_str(&a).unwrap();
    let jb: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(ja["results"], jb["results"]);
    let _ = strip;

    // Apply the saved probe to fresh planted texts.
    let fresh = planted_dataset(&planted, 60, 1234);
    let fresh_path = tmp.path().join("fresh.jsonl");
    std::fs::write(
        &fresh_path,
        fresh
            .iter()
            .map(|r| r.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let apply_out = tmp.path().join("applied");
    let code = run(MechCommand::Apply(ApplyArgs {
        probe: tmp.path().join("out-Logreg"),
        data: fresh_path,
        model: None,
        out: Some(apply_out.clone()),
        batch_size: 8,
        claim: None,
    }))
    .unwrap();
    assert_eq!(code, 0);
    let ev = EvidenceRecord::read(&apply_out.join("evidence.json")).unwrap();
    assert_eq!(ev.evidence_class, "probe_application");
    assert!(ev.results["auroc"].as_f64().unwrap() > 0.97);
    assert_eq!(
        std::fs::read_to_string(apply_out.join("scores.jsonl"))
            .unwrap()
            .lines()
            .count(),
        60
    );
}
