//! `assay mech diff` on checkpoint pairs whose difference is known: a planted rank-1 update
//! in one tensor of one block, identical models, mismatched architectures, and a pair of
//! planted-label models whose label is written at different blocks (probe transfer).

mod common;

use std::path::Path;

use assay_mech::Model;
use assay_mech::Reduce;
use assay_mech::checkpoint::Checkpoint;
use assay_mech::cli::{DiffArgs, MechCommand};
use assay_mech::diff::{check_compatible, weight_diff};
use assay_mech::evidence::EvidenceRecord;
use assay_mech::probe::Method;
use assay_mech::rng::Rng;
use assay_mech::synthetic::{
    TinyLlama, planted_dataset, write_planted_llama, write_tiny_bert, write_tiny_llama,
};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use serde_json::Value;

/// `cli::run` without a command line: records get an empty reproduction recipe.
fn run(cmd: MechCommand) -> anyhow::Result<i32> {
    assay_mech::cli::run(cmd, &[])
}

fn args(before: &Path, after: &Path, out: &Path) -> DiffArgs {
    DiffArgs {
        before: before.into(),
        after: after.into(),
        corpus: None,
        probe_data: None,
        hooks: "blocks.*.hook_resid_post".into(),
        position: Reduce::Last,
        method: Method::Logreg,
        c: 1.0,
        folds: 5,
        bootstrap: 100,
        random_directions: 5,
        out: out.into(),
        svd_top_k: 8,
        lens_tokens: 5,
        top_tokens: 10,
        top_contexts: 20,
        max_tokens: 512,
        batch_size: 4,
        seed: 3,
        chat_template: false,
        no_special_tokens: false,
        claim: Some("fine-tune-changed-one-block".into()),
    }
}

fn tiny(n_layers: usize, d_mlp: usize, tie: bool) -> TinyLlama {
    TinyLlama {
        d_model: 32,
        n_layers,
        n_heads: 4,
        n_kv_heads: 2,
        d_mlp,
        vocab: 40,
        tie,
        qkv_bias: false,
    }
}

fn write_jsonl(path: &Path, rows: &[Value]) {
    std::fs::write(
        path,
        rows.iter()
            .map(|r| r.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
}

/// Texts of random words `w0 .. w39`.
fn corpus(path: &Path, n: usize, seed: u64) {
    let mut rng = Rng::new(seed, 0);
    let rows: Vec<Value> = (0..n)
        .map(|_| {
            let len = 4 + rng.below(9);
            let words: Vec<String> = (0..len).map(|_| format!("w{}", rng.below(40))).collect();
            serde_json::json!({"text": words.join(" ")})
        })
        .collect();
    write_jsonl(path, &rows);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

const PLANTED: &str = "model.layers.2.mlp.down_proj.weight";

/// Write `before` (a random tiny Llama) and `after` = `before` with `scale · u vᵀ` added to
/// block 2's MLP output projection. Returns (u, v, scale).
fn rank_one_pair(before: &Path, after: &Path) -> (Vec<f32>, Vec<f32>, f32) {
    let c = tiny(4, 64, false);
    write_tiny_llama(before, &c, 11).unwrap();
    copy_dir(before, after);
    let mut ts =
        candle_core::safetensors::load(before.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut rng = Rng::new(5, 0);
    let u = randn(&mut rng, 32);
    let v = randn(&mut rng, 64);
    let scale = 0.05f32;
    let w = ts[PLANTED].clone();
    let uv = Tensor::from_vec(u.clone(), (32, 1), &Device::Cpu)
        .unwrap()
        .matmul(&Tensor::from_vec(v.clone(), (1, 64), &Device::Cpu).unwrap())
        .unwrap();
    ts.insert(PLANTED.into(), (w + (uv * scale as f64).unwrap()).unwrap());
    candle_core::safetensors::save(&ts, after.join("model.safetensors")).unwrap();
    (u, v, scale)
}

#[test]
fn planted_rank_one_update_is_localised() {
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("before"), tmp.path().join("after"));
    let (u, v, scale) = rank_one_pair(&before, &after);
    let corpus_path = tmp.path().join("corpus.jsonl");
    corpus(&corpus_path, 12, 1);
    let out = tmp.path().join("out");
    let mut a = args(&before, &after, &out);
    a.corpus = Some(corpus_path);
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    let d = read_json(&out.join("diff.json"));

    // Weights: only the planted tensor changed, it ranks first, and its ΔW is rank one with
    // the planted singular value scale·‖u‖‖v‖.
    let w = &d["weights"];
    assert_eq!(w["n_changed"], 1);
    let tensors = w["tensors"].as_array().unwrap();
    assert_eq!(tensors[0]["name"], PLANTED);
    assert_eq!(tensors[0]["layer"], 2);
    assert!(tensors[0]["relative_change"].as_f64().unwrap() > 0.0);
    for t in &tensors[1..] {
        assert_eq!(t["norm_delta"].as_f64(), Some(0.0), "{}", t["name"]);
        assert_eq!(t["relative_change"].as_f64(), Some(0.0));
    }
    for l in w["layers"].as_array().unwrap() {
        let r = l["relative_change"].as_f64().unwrap();
        if l["layer"] == 2 {
            assert!(r > 0.0);
        } else {
            assert_eq!(r, 0.0, "layer {}", l["layer"]);
        }
    }
    let spectra = w["spectra"].as_array().unwrap();
    assert_eq!(spectra.len(), 1, "only one matrix changed");
    let s = &spectra[0];
    let norm = |x: &[f32]| x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let sigma = scale as f64 * norm(&u) * norm(&v);
    let er = s["effective_rank"].as_f64().unwrap();
    let sr = s["stable_rank"].as_f64().unwrap();
    let smax = s["sigma_max"].as_f64().unwrap();
    println!(
        "planted spectrum: effective rank {er}, stable rank {sr}, σmax {smax} (planted {sigma})"
    );
    assert!((1.0..1.01).contains(&er), "effective rank {er}");
    assert!((1.0..1.0001).contains(&sr), "stable rank {sr}");
    assert!((smax - sigma).abs() / sigma < 1e-4, "{smax} vs {sigma}");
    assert_eq!(s["method"], "svd");

    // Drift: exactly zero before the modified block, non-zero from it on.
    let c = &d["corpus"];
    for dr in c["drift"].as_array().unwrap() {
        let l = dr["layer"].as_u64().unwrap();
        let cos = dr["mean_cosine_distance"].as_f64().unwrap();
        let rel = dr["mean_relative_l2"].as_f64().unwrap();
        let cka = dr["linear_cka"].as_f64().unwrap();
        println!("block {l}: cosine distance {cos:.3e}, relative L2 {rel:.3e}, CKA {cka:.9}");
        if l < 2 {
            assert_eq!(cos, 0.0);
            assert_eq!(dr["max_cosine_distance"].as_f64(), Some(0.0));
            assert_eq!(rel, 0.0);
            assert!((cka - 1.0).abs() < 1e-12, "{cka}");
        } else {
            assert!(cos > 0.0 && rel > 0.0, "block {l}");
            assert!(cka < 1.0);
        }
    }
    // KL: the change reaches the output at every position.
    let n_tokens = c["n_tokens"].as_u64().unwrap() as usize;
    let lines = std::fs::read_to_string(out.join("kl_tokens.jsonl")).unwrap();
    let kls: Vec<f64> = lines
        .lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["kl"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kls.len(), n_tokens);
    assert!(kls.iter().all(|&k| k > 0.0));
    let mean = kls.iter().sum::<f64>() / kls.len() as f64;
    assert!((c["mean_kl"].as_f64().unwrap() - mean).abs() < 1e-12);
    let top = c["top_contexts"].as_array().unwrap();
    assert_eq!(top.len(), 20);
    let max = kls.iter().copied().fold(0.0, f64::max);
    assert_eq!(top[0]["kl"].as_f64().unwrap(), max);
    assert!(
        top.windows(2)
            .all(|p| p[0]["kl"].as_f64() >= p[1]["kl"].as_f64())
    );
    assert_eq!(top[0]["before_top"].as_array().unwrap().len(), 10);

    // Lens: nothing before block 2; at block 2 the mean difference is a multiple of u, so its
    // top tokens are those of ±u read through the final norm and unembedding.
    let lens = c["lens"]["layers"].as_array().unwrap();
    assert_eq!(lens[0]["norm"].as_f64(), Some(0.0));
    assert_eq!(lens[1]["norm"].as_f64(), Some(0.0));
    assert!(lens[2]["norm"].as_f64().unwrap() > 0.0);
    let got: Vec<u64> = lens[2]["top_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let model = Model::load(&after).unwrap();
    let top_ids = |sign: f32| -> Vec<u64> {
        let x = Tensor::from_vec(
            u.iter().map(|a| a * sign).collect::<Vec<_>>(),
            (1, 32),
            &Device::Cpu,
        )
        .unwrap();
        let logits: Vec<f32> = model
            .unembed(&x)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]));
        idx.iter().take(10).map(|&i| i as u64).collect()
    };
    assert!(got == top_ids(1.0) || got == top_ids(-1.0), "{got:?}");

    // Charts and the evidence record, which names both models.
    for f in [
        "weight_change_by_layer.svg",
        "drift_by_layer.svg",
        "kl_by_text.svg",
    ] {
        let s = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(
            s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
            "{f}"
        );
    }
    if let Ok(dir) = std::env::var("ASSAY_DIFF_OUT") {
        copy_dir(&out, Path::new(&dir));
    }
    let ev = EvidenceRecord::read(&out.join("evidence.json")).unwrap();
    assert_eq!(ev.evidence_class, "training_diff");
    assert!(ev.access.contains(&"checkpoints_history".to_string()));
    assert_eq!(ev.model.digest, d["before"]["digest"].as_str().unwrap());
    assert_eq!(
        ev.compared_model.as_ref().unwrap().digest,
        d["after"]["digest"].as_str().unwrap()
    );
    assert_ne!(ev.model.digest, ev.compared_model.as_ref().unwrap().digest);
    assert_eq!(ev.results["weights"]["largest_tensor"]["name"], PLANTED);
    assert_eq!(ev.results["corpus"]["first_drifting_layer"], 2);
    assert!(ev.artifacts.iter().any(|a| a.path == "diff.json"));
    // The same inputs give the same record.
    let out2 = tmp.path().join("out2");
    let mut a = args(&before, &after, &out2);
    a.corpus = Some(tmp.path().join("corpus.jsonl"));
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    assert_eq!(
        EvidenceRecord::read(&out2.join("evidence.json"))
            .unwrap()
            .id,
        ev.id
    );
}

#[test]
fn identical_models_show_no_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("a"), tmp.path().join("b"));
    write_tiny_llama(&before, &tiny(3, 64, true), 4).unwrap();
    copy_dir(&before, &after);
    let corpus_path = tmp.path().join("corpus.jsonl");
    corpus(&corpus_path, 9, 2);
    let out = tmp.path().join("out");
    let mut a = args(&before, &after, &out);
    a.corpus = Some(corpus_path);
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    let d = read_json(&out.join("diff.json"));
    let w = &d["weights"];
    assert_eq!(w["n_changed"], 0);
    assert_eq!(w["relative_change"].as_f64(), Some(0.0));
    assert!(
        w["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["norm_delta"].as_f64() == Some(0.0))
    );
    assert!(w["spectra"].as_array().unwrap().is_empty());
    let c = &d["corpus"];
    assert_eq!(c["mean_kl"].as_f64(), Some(0.0));
    assert_eq!(c["max_kl"].as_f64(), Some(0.0));
    for dr in c["drift"].as_array().unwrap() {
        assert_eq!(dr["mean_cosine_distance"].as_f64(), Some(0.0));
        assert_eq!(dr["mean_relative_l2"].as_f64(), Some(0.0));
        let cka = dr["linear_cka"].as_f64().unwrap();
        assert!((cka - 1.0).abs() < 1e-12, "{cka}");
    }
    for l in c["lens"]["layers"].as_array().unwrap() {
        assert_eq!(l["norm"].as_f64(), Some(0.0));
    }
    assert_eq!(c["tokenizers_agree"], true);
}

#[test]
fn mismatched_architectures_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    write_tiny_llama(&p("l4"), &tiny(4, 64, false), 1).unwrap();
    write_tiny_llama(&p("l3"), &tiny(3, 64, false), 1).unwrap();
    write_tiny_llama(&p("mlp96"), &tiny(4, 96, false), 1).unwrap();
    write_tiny_llama(&p("tied"), &tiny(4, 64, true), 1).unwrap();
    let gpt2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");

    // Through the CLI: exit code 2, no output written.
    let out = p("out");
    assert_eq!(
        run(MechCommand::Diff(args(&p("l4"), &p("l3"), &out))).unwrap(),
        2
    );
    assert!(!out.join("diff.json").exists());

    let info = |dir: &Path| Model::load(dir).unwrap().info;
    let msg = check_compatible(&info(&p("l4")), &info(&p("l3")))
        .unwrap_err()
        .to_string();
    println!("{msg}");
    assert!(
        msg.contains("layer count differs (4 before vs 3 after)"),
        "{msg}"
    );
    let msg = check_compatible(&info(&p("l4")), &info(&gpt2))
        .unwrap_err()
        .to_string();
    println!("{msg}");
    assert!(
        msg.contains("architecture family differs (llama before vs gpt2 after)"),
        "{msg}"
    );

    // Same config-level shape, different tensors: the first differing tensor is named.
    let ck = |dir: &Path| Checkpoint::read(dir).unwrap();
    check_compatible(&info(&p("l4")), &info(&p("mlp96"))).unwrap();
    let msg = weight_diff(&ck(&p("l4")), &ck(&p("mlp96")), 4)
        .unwrap_err()
        .to_string();
    println!("{msg}");
    assert!(
        msg.contains("shape of tensor `model.layers.0.mlp.down_proj.weight` differs ([32, 64] before vs [32, 96] after)"),
        "{msg}"
    );
    let msg = weight_diff(&ck(&p("l4")), &ck(&p("tied")), 4)
        .unwrap_err()
        .to_string();
    println!("{msg}");
    assert!(
        msg.contains("`lm_head.weight` is absent from the model after"),
        "{msg}"
    );
    assert_eq!(
        run(MechCommand::Diff(args(&p("l4"), &p("tied"), &out))).unwrap(),
        2
    );
}

#[test]
fn probe_transfer_on_planted_pair() {
    // The same planted model with the label written at block 3 (before) or block 1 (after):
    // every other weight is identical, and the label lies along the same direction u from
    // the planted block on.
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("p3"), tmp.path().join("p1"));
    let planted = write_planted_llama(&before, 3, 7).unwrap();
    write_planted_llama(&after, 1, 7).unwrap();
    let data = tmp.path().join("data.jsonl");
    write_jsonl(&data, &planted_dataset(&planted, 240, 9));
    let out = tmp.path().join("out");
    let mut a = args(&before, &after, &out);
    a.probe_data = Some(data);
    a.batch_size = 16;
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    let d = read_json(&out.join("diff.json"));

    // Only blocks 1 and 3 changed.
    for t in d["weights"]["tensors"].as_array().unwrap() {
        if t["norm_delta"].as_f64().unwrap() > 0.0 {
            let l = t["layer"].as_u64().unwrap();
            assert!(l == 1 || l == 3, "{}", t["name"]);
        }
    }
    let pt = &d["probe_transfer"];
    assert_eq!(pt["split"]["kind"], "group_kfold");
    let hooks = pt["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 6);
    for (i, h) in hooks.iter().enumerate() {
        let g = |k: &str| h[k].as_f64().unwrap();
        let (bb, ba, aa, ab) = (
            g("before_on_before"),
            g("before_on_after"),
            g("after_on_after"),
            g("after_on_before"),
        );
        println!(
            "{}: B→B {bb:.3} B→A {ba:.3} A→A {aa:.3} A→B {ab:.3} cos {:.3}",
            h["hook"].as_str().unwrap(),
            g("direction_cosine")
        );
        // The fold-by-fold refit reproduces each model's own cross-validated AUROC exactly.
        assert_eq!(
            bb,
            pt["before_per_hook"][i]["logreg"]["auroc"]
                .as_f64()
                .unwrap()
        );
        assert_eq!(
            aa,
            pt["after_per_hook"][i]["logreg"]["auroc"].as_f64().unwrap()
        );
        let chance = |v: f64| (v - 0.5).abs() < 0.2;
        match i {
            // Both models carry the label along u: probes transfer both ways.
            3.. => {
                for v in [bb, ba, aa, ab] {
                    assert!(v > 0.95, "block {i}: {v}");
                }
                assert!(g("direction_cosine") > 0.5, "block {i}");
            }
            // Only the model after carries it: its own probe reads it, but applied to the
            // model before (which has no label information yet) it is at chance.
            1 | 2 => {
                assert!(aa > 0.95, "block {i}: {aa}");
                assert!(chance(bb) && chance(ab), "block {i}: {bb} {ab}");
            }
            // Neither carries it.
            _ => {
                for v in [bb, ba, aa, ab] {
                    assert!(chance(v), "block {i}: {v}");
                }
            }
        }
    }
    let ev = EvidenceRecord::read(&out.join("evidence.json")).unwrap();
    assert_eq!(ev.data[0].role, "probe");
    assert!(
        ev.results["probe_transfer"]["per_hook"]
            .as_array()
            .unwrap()
            .len()
            == 6
    );
    assert!(out.join("probe_transfer.svg").is_file());
}

/// Encoders have no next-token distribution: KL and the lens are left out, drift is still
/// measured, and a planted change in block 1 leaves block 0 exactly untouched.
#[test]
fn encoder_pair_reports_drift_without_kl() {
    let tmp = tempfile::tempdir().unwrap();
    let (before, after) = (tmp.path().join("a"), tmp.path().join("b"));
    write_tiny_bert(&before, 32, 3, 4, 40, 6).unwrap();
    copy_dir(&before, &after);
    let mut ts =
        candle_core::safetensors::load(before.join("model.safetensors"), &Device::Cpu).unwrap();
    let name = "encoder.layer.1.output.dense.bias";
    let b = ts[name].clone();
    ts.insert(name.into(), (b + 0.25).unwrap());
    candle_core::safetensors::save(&ts, after.join("model.safetensors")).unwrap();
    let corpus_path = tmp.path().join("corpus.jsonl");
    corpus(&corpus_path, 6, 3);
    let out = tmp.path().join("out");
    let mut a = args(&before, &after, &out);
    a.corpus = Some(corpus_path);
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    let d = read_json(&out.join("diff.json"));
    assert_eq!(d["weights"]["n_changed"], 1);
    assert_eq!(d["weights"]["tensors"][0]["name"], name);
    assert!(
        d["weights"]["spectra"].as_array().unwrap().is_empty(),
        "a bias has no spectrum"
    );
    let c = &d["corpus"];
    assert!(c["mean_kl"].is_null() && c["lens"].is_null());
    assert!(c["texts"].as_array().unwrap().is_empty());
    let drift = c["drift"].as_array().unwrap();
    assert_eq!(drift[0]["mean_cosine_distance"].as_f64(), Some(0.0));
    assert!(drift[1]["mean_cosine_distance"].as_f64().unwrap() > 0.0);
    assert!(!out.join("kl_by_text.svg").exists());
    let ev = EvidenceRecord::read(&out.join("evidence.json")).unwrap();
    assert!(ev.caveats.iter().any(|c| c.contains("encoders")));
}

/// SmolLM2 and a copy with a rank-1 update added to block 10's MLP output projection (stored
/// as F32; every other tensor byte-identical, still Q4_1): the change is found in that
/// tensor only, is rank one, and the residual stream is untouched before block 10.
#[test]
fn smollm2_rank_one_perturbation_is_localised() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let perturbed = tmp.path().join("perturbed.gguf");
    let target = "blk.10.ffn_down.weight";
    {
        let mut f = std::fs::File::open(&path).unwrap();
        let ct = gguf_file::Content::read(&mut f).unwrap();
        let mut names: Vec<String> = ct.tensor_infos.keys().cloned().collect();
        names.sort();
        let mut rng = Rng::new(8, 0);
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        for n in &names {
            let q = ct.tensor(&mut f, n, &Device::Cpu).unwrap();
            if n == target {
                let w = q.dequantize(&Device::Cpu).unwrap();
                let (r, c) = w.dims2().unwrap();
                let u = Tensor::from_vec(randn(&mut rng, r), (r, 1), &Device::Cpu).unwrap();
                let v = Tensor::from_vec(randn(&mut rng, c), (1, c), &Device::Cpu).unwrap();
                let w = (w + (u.matmul(&v).unwrap() * 0.01).unwrap()).unwrap();
                tensors.push((n.clone(), QTensor::quantize(&w, GgmlDType::F32).unwrap()));
            } else {
                tensors.push((n.clone(), q));
            }
        }
        let md: Vec<(&str, &gguf_file::Value)> =
            ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut w = std::fs::File::create(&perturbed).unwrap();
        gguf_file::write(&mut w, &md, &t).unwrap();
    }
    let corpus_path = tmp.path().join("corpus.jsonl");
    write_jsonl(
        &corpus_path,
        &[
            serde_json::json!({"text": "The capital of France is Paris."}),
            serde_json::json!({"text": "Le chat dort sur le canapé."}),
        ],
    );
    let out = tmp.path().join("out");
    let mut a = args(&path, &perturbed, &out);
    a.corpus = Some(corpus_path);
    a.max_tokens = 16;
    a.svd_top_k = 2;
    assert_eq!(run(MechCommand::Diff(a)).unwrap(), 0);
    let d = read_json(&out.join("diff.json"));
    let w = &d["weights"];
    assert_eq!(w["n_tensors"], 272);
    assert_eq!(w["n_changed"], 1);
    assert_eq!(w["tensors"][0]["name"], target);
    let s = &w["spectra"][0];
    assert!(s["effective_rank"].as_f64().unwrap() < 1.01, "{s}");
    assert!(s["stable_rank"].as_f64().unwrap() < 1.001, "{s}");
    let c = &d["corpus"];
    assert!(c["mean_kl"].as_f64().unwrap() > 0.0);
    for dr in c["drift"].as_array().unwrap() {
        let l = dr["layer"].as_u64().unwrap();
        let cos = dr["mean_cosine_distance"].as_f64().unwrap();
        if l < 10 {
            assert_eq!(cos, 0.0, "block {l}");
            assert!((dr["linear_cka"].as_f64().unwrap() - 1.0).abs() < 1e-9);
        } else {
            assert!(cos > 0.0, "block {l}");
        }
    }
    let ev = EvidenceRecord::read(&out.join("evidence.json")).unwrap();
    assert!(ev.caveats.iter().any(|c| c.contains("compared model")));
    assert_eq!(ev.results["corpus"]["first_drifting_layer"], 10);
}
