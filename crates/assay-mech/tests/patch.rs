//! Activation patching on small synthetic models: exact sanity properties, the batched
//! resumed fast path against full forward passes with interventions, hook_z, and bad input.

use std::path::{Path, PathBuf};

use assay_mech::cli::{MechCommand, PatchArgs};
use assay_mech::patch::cli::cmd_patch;
use assay_mech::patch::{
    PatchHook, PatchMode, PatchOptions, PatchTarget, TokenPair, patch_naive, sweep,
};
use assay_mech::synthetic::{TinyLlama, write_tiny_llama};
use assay_mech::{
    Action, Batch, HookPoint, Intervention, Model, Position, Reduce, RunPlan, evidence,
};
use candle_core::{Device, IndexOp, Tensor};

/// `cli::run` without a command line: records get an empty reproduction recipe.
fn run(cmd: MechCommand) -> anyhow::Result<i32> {
    assay_mech::cli::run(cmd, &[])
}

const TOL: f64 = 1e-4;

fn tiny_llama() -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let c = TinyLlama {
        d_model: 32,
        n_layers: 3,
        n_heads: 4,
        n_kv_heads: 2,
        d_mlp: 64,
        vocab: 40,
        tie: false,
        qkv_bias: true,
    };
    write_tiny_llama(dir.path(), &c, 11).unwrap();
    let m = Model::load_on(dir.path(), &Device::Cpu).unwrap();
    (dir, m)
}

fn tiny_gpt2() -> Model {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    Model::load_on(&dir, &Device::Cpu).unwrap()
}

fn last_logits(m: &Model, ids: &[u32]) -> Vec<f32> {
    let b = Batch::from_token_ids(&[ids.to_vec()], 0, &Device::Cpu).unwrap();
    let out = m.run(&b, &RunPlan::output_only()).unwrap().output.unwrap();
    out.i((0, ids.len() - 1)).unwrap().to_vec1().unwrap()
}

/// A pair whose answer/wrong tokens are the ones the two prompts separate most, so the
/// baselines are far apart on a random model.
fn pair(m: &Model, clean: Vec<u32>, corrupt: Vec<u32>) -> TokenPair {
    let a = last_logits(m, &clean);
    let b = last_logits(m, &corrupt);
    let d: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let arg = |f: &dyn Fn(f32, f32) -> bool| {
        (0..d.len())
            .reduce(|i, j| if f(d[j], d[i]) { j } else { i })
            .unwrap() as u32
    };
    TokenPair {
        clean,
        corrupt,
        answer: arg(&|x, y| x > y),
        wrong: arg(&|x, y| x < y),
    }
}

/// Every hook type and head patch. The tiny GPT-2 fixture (initialiser range 0.02) has logits
/// near 0.5, so its baselines are only ~0.01 apart: the gap threshold is lowered to match.
fn all_options(mode: PatchMode, min_gap: f64) -> PatchOptions {
    PatchOptions {
        hooks: PatchHook::ALL.to_vec(),
        mode,
        heads: true,
        head_positions: true,
        min_gap,
        max_batch_tokens: 4096,
    }
}

fn check_sanity(m: &Model, p: &TokenPair, differ: usize, min_gap: f64) {
    let n = m.info.n_layers;
    let t = p.clean.len();
    for mode in [PatchMode::Denoise, PatchMode::Noise] {
        let s = sweep(m, p, &all_options(mode, min_gap)).unwrap();
        let norm = |h: PatchHook, l: usize, pos: usize| {
            s.baselines.normalise(s.by_hook[&h][l][pos].logit_diff)
        };
        // Denoising a patch that makes the run clean gives 1; noising it gives 0.
        let (full, none) = match mode {
            PatchMode::Denoise => (1.0, 0.0),
            PatchMode::Noise => (0.0, 1.0),
        };
        for pos in 0..t {
            let v = norm(PatchHook::ResidPre, 0, pos);
            let want = if pos == differ { full } else { none };
            assert!(
                (v - want).abs() < TOL,
                "{mode:?} resid_pre L0 pos {pos}: {v}"
            );
            let v = norm(PatchHook::ResidPost, n - 1, pos);
            let want = if pos == t - 1 { full } else { none };
            assert!(
                (v - want).abs() < TOL,
                "{mode:?} resid_post last layer pos {pos}: {v}"
            );
        }
        // Before the differing position, causal attention makes every activation equal in
        // both runs, so no patch there changes anything.
        for h in PatchHook::ALL {
            for l in 0..n {
                for pos in 0..differ {
                    let v = norm(h, l, pos);
                    assert!((v - none).abs() < TOL, "{mode:?} {h} L{l} pos {pos}: {v}");
                }
            }
        }
        // Per-head matrices have the model's head count (their values are checked against
        // full forward passes in `fast_path_equals_naive_*`).
        assert_eq!(s.n_heads, 4);
        assert_eq!(s.heads.as_ref().unwrap().len(), n);
        assert_eq!(s.head_positions.as_ref().unwrap()[0][0].len(), t);
        // Log-probs are log-probabilities.
        for row in &s.by_hook[&PatchHook::MlpOut] {
            for sc in row {
                assert!(sc.answer_logprob < 0.0 && sc.answer_logprob.is_finite());
            }
        }
    }
}

#[test]
fn sanity_llama_exact_effects() {
    let (_d, m) = tiny_llama();
    let p = pair(&m, vec![1, 2, 3, 4, 5, 6], vec![1, 2, 3, 17, 5, 6]);
    check_sanity(&m, &p, 3, 0.1);
}

#[test]
fn sanity_gpt2_exact_effects() {
    let m = tiny_gpt2();
    let p = pair(&m, vec![5, 6, 7, 8, 9], vec![5, 6, 70, 8, 9]);
    check_sanity(&m, &p, 2, 1e-3);
}

#[test]
fn patching_every_differing_position_at_layer_0_restores_fully() {
    let (_d, m) = tiny_llama();
    let p = pair(&m, vec![1, 2, 3, 4, 5, 6, 7], vec![1, 30, 3, 4, 31, 6, 7]);
    for (mode, want) in [(PatchMode::Denoise, 1.0), (PatchMode::Noise, 0.0)] {
        let target = PatchTarget::Positions {
            hook: PatchHook::ResidPre,
            layer: 0,
            positions: vec![1, 4],
        };
        let (sc, b) = patch_naive(&m, &p, mode, &target).unwrap();
        let v = b.normalise(sc.logit_diff);
        assert!((v - want).abs() < TOL, "{mode:?}: {v}");
        // One of the two alone does not (the effect is shared between them).
        let (one, _) = patch_naive(
            &m,
            &p,
            mode,
            &PatchTarget::Positions {
                hook: PatchHook::ResidPre,
                layer: 0,
                positions: vec![1],
            },
        )
        .unwrap();
        assert!((b.normalise(one.logit_diff) - want).abs() > 1e-3);
    }
}

fn check_fast_equals_naive(m: &Model, p: &TokenPair, min_gap: f64) {
    let n = m.info.n_layers;
    let t = p.clean.len();
    let mut worst = 0f64;
    for mode in [PatchMode::Denoise, PatchMode::Noise] {
        // A small batch bound forces several chunks per layer.
        let opts = PatchOptions {
            max_batch_tokens: 2 * t,
            ..all_options(mode, min_gap)
        };
        let s = sweep(m, p, &opts).unwrap();
        let mut cmp = |fast: &assay_mech::patch::Score, target: PatchTarget| {
            let (slow, _) = patch_naive(m, p, mode, &target).unwrap();
            let d = (fast.logit_diff - slow.logit_diff)
                .abs()
                .max((fast.answer_logprob - slow.answer_logprob).abs());
            assert!(d < TOL, "{mode:?} {target:?}: fast {fast:?} naive {slow:?}");
            worst = worst.max(d);
        };
        for h in PatchHook::ALL {
            for l in 0..n {
                for pos in 0..t {
                    cmp(
                        &s.by_hook[&h][l][pos],
                        PatchTarget::Positions {
                            hook: h,
                            layer: l,
                            positions: vec![pos],
                        },
                    );
                }
            }
        }
        for l in 0..n {
            for head in 0..s.n_heads {
                cmp(
                    &s.heads.as_ref().unwrap()[l][head],
                    PatchTarget::Head {
                        layer: l,
                        head,
                        position: None,
                    },
                );
                for pos in 0..t {
                    cmp(
                        &s.head_positions.as_ref().unwrap()[l][head][pos],
                        PatchTarget::Head {
                            layer: l,
                            head,
                            position: Some(pos),
                        },
                    );
                }
            }
        }
        // The baselines of the fast path are the unpatched runs.
        let (_, b) = patch_naive(
            m,
            p,
            mode,
            &PatchTarget::Positions {
                hook: PatchHook::ResidPre,
                layer: 0,
                positions: vec![],
            },
        )
        .unwrap();
        assert!((b.clean.logit_diff - s.baselines.clean.logit_diff).abs() < 1e-9);
    }
    println!("{}: fast vs naive max |Δ| = {worst:e}", m.info.architecture);
}

#[test]
fn fast_path_equals_naive_llama() {
    let (_d, m) = tiny_llama();
    let p = pair(&m, vec![1, 2, 3, 4, 5], vec![1, 9, 3, 4, 5]);
    check_fast_equals_naive(&m, &p, 0.1);
}

#[test]
fn fast_path_equals_naive_gpt2() {
    let m = tiny_gpt2();
    let p = pair(&m, vec![10, 20, 30, 40], vec![10, 21, 30, 40]);
    check_fast_equals_naive(&m, &p, 1e-3);
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn resumed_pass_equals_full_pass() {
    for (m, _keep) in [
        {
            let (d, m) = tiny_llama();
            (m, Some(d))
        },
        (tiny_gpt2(), None),
    ] {
        let rows = vec![vec![1u32, 2, 3, 4, 5, 6], vec![7, 8, 9, 10, 11, 12]];
        let batch = Batch::from_token_ids(&rows, 0, &Device::Cpu).unwrap();
        let n = m.info.n_layers;
        let mut hooks = vec![];
        for l in 0..n {
            hooks.extend([
                HookPoint::ResidPre(l),
                HookPoint::ResidMid(l),
                HookPoint::ResidPost(l),
            ]);
        }
        hooks.push(HookPoint::LnFinal);
        let mut plan = RunPlan::caching(&hooks, Reduce::None);
        plan.want_output = true;
        let full = m.run(&batch, &plan).unwrap();
        let logits = full.output.unwrap();
        for &start in &hooks[..hooks.len() - 1] {
            let resid = full.cache.get(&start).unwrap();
            let later: Vec<HookPoint> = hooks.iter().copied().filter(|h| *h > start).collect();
            let mut p = RunPlan::caching(&later, Reduce::None);
            p.want_output = true;
            let r = m.run_from(start, resid, &batch.lengths, &p).unwrap();
            assert!(max_diff(&r.output.unwrap(), &logits) < 1e-4, "{start}");
            for h in &later {
                let d = max_diff(r.cache.get(h).unwrap(), full.cache.get(h).unwrap());
                assert!(d < 1e-4, "{start} -> {h}: {d}");
            }
            let last = m
                .last_logits_from(start, resid, &batch.lengths, &RunPlan::default())
                .unwrap()
                .output
                .unwrap();
            assert_eq!(last.dims(), &[2, m.info.vocab_size]);
            assert!(max_diff(&last, &logits.i((.., 5)).unwrap()) < 1e-4);
        }
        // Bad resume points and hooks a resumed pass never reaches are refused.
        let resid = full.cache.get(&HookPoint::ResidPre(1)).unwrap();
        let err = m
            .run_from(HookPoint::AttnOut(1), resid, &batch.lengths, &plan)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hook_resid_pre"), "{err}");
        let err = m
            .run_from(
                HookPoint::ResidPre(1),
                resid,
                &batch.lengths,
                &RunPlan::caching(&[HookPoint::ResidPost(0)], Reduce::Last),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("before the resume point"), "{err}");
        let err = m
            .run_from(HookPoint::ResidPre(1), resid, &[6], &RunPlan::output_only())
            .unwrap_err()
            .to_string();
        assert!(err.contains("lengths"), "{err}");
    }
}

#[test]
fn hook_z_patch_equals_attn_out_patch() {
    let (_d, m) = tiny_llama();
    let clean = Batch::from_token_ids(&[vec![1, 2, 3, 4, 5]], 0, &Device::Cpu).unwrap();
    let corrupt = Batch::from_token_ids(&[vec![1, 8, 3, 4, 5]], 0, &Device::Cpu).unwrap();
    assert!(m.hook_points().contains(&HookPoint::AttnZ(2)));
    assert_eq!(
        "blocks.2.attn.hook_z".parse::<HookPoint>().unwrap(),
        HookPoint::AttnZ(2)
    );
    let l = 1;
    let src = m
        .run(
            &clean,
            &RunPlan::caching(&[HookPoint::AttnZ(l), HookPoint::AttnOut(l)], Reduce::None),
        )
        .unwrap()
        .cache;
    let z = src.get(&HookPoint::AttnZ(l)).unwrap();
    assert_eq!(z.dims(), &[1, 5, 4, 8]);
    let run_with = |hook: HookPoint, position: Position| {
        let plan = RunPlan {
            interventions: vec![Intervention {
                hook,
                position,
                action: Action::Patch(src.get(&hook).unwrap().clone()),
            }],
            want_output: true,
            ..Default::default()
        };
        m.run(&corrupt, &plan).unwrap().output.unwrap()
    };
    for pos in [Position::All, Position::Index(1), Position::Last] {
        let a = run_with(HookPoint::AttnZ(l), pos);
        let b = run_with(HookPoint::AttnOut(l), pos);
        assert!(max_diff(&a, &b) < 1e-4, "{pos:?}");
    }
    // Reductions of the 4-d activation.
    let c = m
        .run(
            &clean,
            &RunPlan::caching(&[HookPoint::AttnZ(0)], Reduce::Mean),
        )
        .unwrap()
        .cache;
    assert_eq!(c.get(&HookPoint::AttnZ(0)).unwrap().dims(), &[1, 4, 8]);
}

// ---- command line ----

fn args(model: &Path, out: &Path) -> PatchArgs {
    PatchArgs {
        model: model.into(),
        clean: Some("w1 w2 w3 w4 w5".into()),
        corrupt: Some("w1 w2 w9 w4 w5".into()),
        answer: Some("w7".into()),
        wrong: Some("w8".into()),
        pairs: None,
        hooks: "resid_pre,attn_out,mlp_out".into(),
        mode: PatchMode::Denoise,
        per_head: false,
        no_heads: false,
        min_gap: 0.0,
        top: 20,
        max_batch_tokens: 4096,
        seed: 0,
        no_special_tokens: false,
        claim: Some("test".into()),
        out: out.into(),
    }
}

fn err_of(a: &PatchArgs) -> String {
    let e = cmd_patch(a, &[]).unwrap_err().to_string();
    assert_eq!(run(MechCommand::Patch(a.clone())).unwrap(), 2, "{e}");
    e
}

#[test]
fn cli_bad_inputs_name_the_problem() {
    let (d, _m) = tiny_llama();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = args(d.path(), &out);

    let mut a = base.clone();
    a.corrupt = Some("w1 w2 w9 w9 w4 w5".into());
    let e = err_of(&a);
    assert!(
        e.contains("5 tokens") && e.contains("6 tokens") && e.contains("same number of tokens"),
        "{e}"
    );

    let mut a = base.clone();
    a.answer = Some("w7 w3".into());
    let e = err_of(&a);
    assert!(
        e.contains("answer") && e.contains("2 tokens") && e.contains("\"w7\""),
        "{e}"
    );

    let mut a = base.clone();
    a.wrong = Some("w7".into());
    let e = err_of(&a);
    assert!(e.contains("same token"), "{e}");

    let mut a = base.clone();
    a.hooks = "resid_pre,attn_pattern".into();
    let e = err_of(&a);
    assert!(
        e.contains("attn_pattern")
            && e.contains("resid_pre, attn_out, resid_mid, mlp_out, resid_post"),
        "{e}"
    );

    // Identical prompts: the denominator is 0.
    let mut a = base.clone();
    a.corrupt = a.clean.clone();
    a.min_gap = 0.1;
    let e = err_of(&a);
    assert!(
        e.contains("indistinguishable") && e.contains("min gap"),
        "{e}"
    );

    let mut a = base.clone();
    a.wrong = None;
    let e = err_of(&a);
    assert!(e.contains("missing --wrong"), "{e}");

    // Pairs of different token lengths cannot be averaged position by position.
    let pairs = tmp.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"clean\":\"w1 w2 w3\",\"corrupt\":\"w1 w5 w3\",\"answer\":\"w7\",\"wrong\":\"w8\"}\n\
         {\"clean\":\"w1 w2 w3 w4\",\"corrupt\":\"w1 w5 w3 w4\",\"answer\":\"w7\",\"wrong\":\"w8\"}\n",
    )
    .unwrap();
    let mut a = base.clone();
    (a.clean, a.corrupt, a.answer, a.wrong) = (None, None, None, None);
    a.pairs = Some(pairs.clone());
    let e = err_of(&a);
    assert!(
        e.contains("pair 2") && e.contains("same token length"),
        "{e}"
    );

    std::fs::write(&pairs, "{\"clean\":\"w1\",\"corrupt\":\"w2\"}\n").unwrap();
    let e = err_of(&a);
    assert!(e.contains("line 1") && e.contains("answer"), "{e}");
    assert!(!out.join("evidence.json").exists());
}

#[test]
fn cli_writes_report_svgs_and_evidence_and_averages_pairs() {
    let (d, m) = tiny_llama();
    let tmp = tempfile::tempdir().unwrap();
    let tok = m.tokenizer().unwrap();
    let ids = |s: &str| tok.encode(s, true).unwrap();
    // Two pairs; answer and wrong chosen to separate the first pair clearly.
    let p1 = pair(&m, ids("w1 w2 w3 w4 w5"), ids("w1 w2 w9 w4 w5"));
    let word = |i: u32| tok.decode(&[i]).unwrap();
    let (ans, wrong) = (word(p1.answer), word(p1.wrong));
    let pairs = tmp.path().join("pairs.jsonl");
    let lines = [
        ("w1 w2 w3 w4 w5", "w1 w2 w9 w4 w5"),
        ("w6 w2 w3 w4 w5", "w6 w11 w3 w4 w5"),
    ];
    std::fs::write(
        &pairs,
        lines
            .iter()
            .map(|(c, k)| {
                format!("{{\"clean\":\"{c}\",\"corrupt\":\"{k}\",\"answer\":\"{ans}\",\"wrong\":\"{wrong}\"}}\n")
            })
            .collect::<String>(),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut a = args(d.path(), &out);
    (a.clean, a.corrupt, a.answer, a.wrong) = (None, None, None, None);
    a.pairs = Some(pairs.clone());
    a.hooks = "resid_pre,resid_post,mlp_out".into();
    a.per_head = true;
    assert_eq!(run(MechCommand::Patch(a.clone())).unwrap(), 0);
    // The same inputs again: byte-identical report and the same evidence id.
    let out2 = tmp.path().join("out2");
    a.out = out2.clone();
    assert_eq!(run(MechCommand::Patch(a)).unwrap(), 0);
    assert_eq!(
        std::fs::read(out.join("patch.json")).unwrap(),
        std::fs::read(out2.join("patch.json")).unwrap()
    );

    let pj: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("patch.json")).unwrap()).unwrap();
    assert_eq!(pj["n_pairs"], 2);
    assert_eq!(pj["n_positions"], 5);
    assert_eq!(pj["positions"][2]["clean"], "w3");
    assert_eq!(pj["positions"][2]["corrupt"], "w9");
    assert_eq!(pj["positions"][1]["differs"], true); // second pair differs at 1
    assert_eq!(pj["positions"][0]["differs"], false);
    // The file's matrix is the mean of the per-pair normalised effects.
    let opts = PatchOptions {
        hooks: vec![PatchHook::ResidPre],
        heads: false,
        min_gap: 0.0,
        ..Default::default()
    };
    let tp = |c: &str, k: &str| TokenPair {
        clean: ids(c),
        corrupt: ids(k),
        answer: p1.answer,
        wrong: p1.wrong,
    };
    let s1 = sweep(&m, &tp(lines[0].0, lines[0].1), &opts).unwrap();
    let s2 = sweep(&m, &tp(lines[1].0, lines[1].1), &opts).unwrap();
    for l in 0..3 {
        for p in 0..5 {
            let want = (s1
                .baselines
                .normalise(s1.by_hook[&PatchHook::ResidPre][l][p].logit_diff)
                + s2.baselines
                    .normalise(s2.by_hook[&PatchHook::ResidPre][l][p].logit_diff))
                / 2.0;
            let got = pj["hooks"]["resid_pre"]["normalized"][l][p]
                .as_f64()
                .unwrap();
            assert!((got - want).abs() < 1e-9, "L{l} p{p}: {got} vs {want}");
        }
    }
    // Layer 0 at position 0 is equal in both pairs: no effect.
    assert!(
        pj["hooks"]["resid_pre"]["normalized"][0][0]
            .as_f64()
            .unwrap()
            .abs()
            < TOL
    );
    // resid_post of the last layer at the last position restores every pair: mean 1.
    let v = pj["hooks"]["resid_post"]["normalized"][2][4]
        .as_f64()
        .unwrap();
    assert!((v - 1.0).abs() < TOL, "{v}");
    assert_eq!(pj["heads"]["normalized"].as_array().unwrap().len(), 3);
    assert_eq!(
        pj["head_positions"]["normalized"][0][0]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let top = pj["top_effects"].as_array().unwrap();
    assert_eq!(top.len(), 20);
    let d0 = |e: &serde_json::Value| e["normalized"].as_f64().unwrap().abs();
    assert!(top.windows(2).all(|w| d0(&w[0]) >= d0(&w[1])));
    let timing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("timing.json")).unwrap()).unwrap();
    assert!(timing["seconds_total"].as_f64().unwrap() > 0.0);

    for f in [
        "patch_resid_pre.svg",
        "patch_resid_post.svg",
        "patch_mlp_out.svg",
    ] {
        let s = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(s.starts_with("<svg") && s.contains("2:w3/w9"), "{f}");
    }
    let s = std::fs::read_to_string(out.join("patch_heads.svg")).unwrap();
    assert!(s.starts_with("<svg") && s.contains(">H3<"));
    let ev = evidence::EvidenceRecord::read(&out.join("evidence.json")).unwrap();
    assert_eq!(ev.evidence_class, "activation_patching");
    assert_eq!(ev.access, vec!["activations_read", "activations_write"]);
    assert_eq!(ev.data[0].rows, 2);
    assert_eq!(ev.data[0].role, "pairs");
    assert_eq!(ev.model.digest, m.info.digest);
    assert!(ev.artifacts.iter().any(|a| a.path == "patch.json"));
    for h in ["resid_pre", "resid_post", "mlp_out"] {
        assert!(
            ev.results["largest_effect_per_hook"][h]["normalized"].is_f64(),
            "{h}"
        );
    }
    assert_eq!(ev.results["n_pairs"], 2);
    let ev2 = evidence::EvidenceRecord::read(&out2.join("evidence.json")).unwrap();
    assert_eq!(ev.id, ev2.id);
}
