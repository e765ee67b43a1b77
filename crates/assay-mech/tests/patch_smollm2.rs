//! Activation patching on SmolLM2-135M-Instruct with a factual-recall pair: where does the
//! information that decides " Paris" vs " Rome" sit? Skipped, with a message, when the model
//! has not been fetched.

#![allow(clippy::needless_range_loop)]

mod common;

use assay_mech::Model;
use assay_mech::patch::{PatchHook, PatchMode, PatchOptions, sweep, tokenize_pair};
use candle_core::Device;

#[test]
fn smollm2_factual_recall_effect_moves_from_subject_to_last_token() {
    let Some(path) = common::smollm2() else {
        return;
    };
    let model = Model::load_on(&path, &Device::Cpu).unwrap();
    let tok = model.tokenizer().unwrap();

    // The answer must be given with its leading space; the message says so.
    let e = tokenize_pair(
        tok,
        "--clean/--corrupt",
        "The capital of France is",
        "The capital of Italy is",
        "Paris",
        " Rome",
        true,
    );
    if let Err(e) = e {
        let m = e.to_string();
        assert!(m.contains("\" Paris\" is a single token"), "{m}");
    } // (If "Paris" alone were one token there would be nothing to check.)
    let e = tokenize_pair(
        tok,
        "--clean/--corrupt",
        "The capital of France is",
        "The capital of the United Kingdom is",
        " Paris",
        " London",
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("same number of tokens"), "{e}");

    let pair = tokenize_pair(
        tok,
        "--clean/--corrupt",
        "The capital of France is",
        "The capital of Italy is",
        " Paris",
        " Rome",
        true,
    )
    .unwrap();
    let words: Vec<String> = pair
        .clean
        .iter()
        .map(|&i| tok.decode(&[i]).unwrap())
        .collect();
    println!("clean tokens: {words:?}");
    let subject = pair
        .clean
        .iter()
        .zip(&pair.corrupt)
        .position(|(a, b)| a != b)
        .unwrap();
    assert_eq!(words[subject], " France");
    assert!(
        pair.clean[subject + 1..] == pair.corrupt[subject + 1..],
        "only the subject differs"
    );
    let t = pair.clean.len();
    let last = t - 1;

    let opts = PatchOptions {
        hooks: vec![PatchHook::ResidPre, PatchHook::AttnOut, PatchHook::MlpOut],
        mode: PatchMode::Denoise,
        heads: true,
        ..Default::default()
    };
    let s = sweep(&model, &pair, &opts).unwrap();
    let b = &s.baselines;
    println!(
        "baselines: clean logit diff {:.3} (top {:?}), corrupted {:.3} (top {:?})",
        b.clean.logit_diff,
        tok.decode(&[b.clean.top_token]).unwrap(),
        b.corrupt.logit_diff,
        tok.decode(&[b.corrupt.top_token]).unwrap()
    );
    // The model knows both facts.
    assert_eq!(b.clean.top_token, pair.answer);
    assert_eq!(b.corrupt.top_token, pair.wrong);
    let n = model.info.n_layers;
    let norm = |h: PatchHook| -> Vec<Vec<f64>> {
        s.by_hook[&h]
            .iter()
            .map(|r| r.iter().map(|sc| b.normalise(sc.logit_diff)).collect())
            .collect()
    };
    let rp = norm(PatchHook::ResidPre);
    for (l, row) in rp.iter().enumerate() {
        println!(
            "resid_pre L{l:>2}: {}",
            row.iter().map(|v| format!("{v:>6.2}")).collect::<String>()
        );
    }
    let ao = norm(PatchHook::AttnOut);
    let mo = norm(PatchHook::MlpOut);
    let col = |m: &Vec<Vec<f64>>, p: usize| -> Vec<String> {
        m.iter().map(|r| format!("{:.2}", r[p])).collect()
    };
    println!("attn_out at last position by layer: {:?}", col(&ao, last));
    println!("mlp_out at subject by layer: {:?}", col(&mo, subject));
    let heads = s.heads.as_ref().unwrap();
    let mut hs: Vec<(f64, usize, usize)> = heads
        .iter()
        .enumerate()
        .flat_map(|(l, r)| {
            r.iter()
                .enumerate()
                .map(move |(h, sc)| (b.normalise(sc.logit_diff), l, h))
        })
        .collect();
    hs.sort_by(|x, y| y.0.abs().total_cmp(&x.0.abs()));
    println!("top heads: {:?}", &hs[..6]);

    // Exact: before the subject every activation is the same in both runs.
    for m in [&rp, &ao, &mo] {
        for row in m {
            for v in &row[..subject] {
                assert_eq!(*v, 0.0);
            }
        }
    }
    // Early layers: the residual stream at the subject token carries nearly all of the
    // effect, and patching the last position does almost nothing.
    for l in 0..4 {
        assert!(rp[l][subject] > 0.8, "L{l} subject {}", rp[l][subject]);
        assert!(rp[l][last].abs() < 0.1, "L{l} last {}", rp[l][last]);
    }
    // Late layers: the effect has moved to the last token; the subject no longer matters.
    for l in n - 4..n {
        assert!(rp[l][last] > 0.8, "L{l} last {}", rp[l][last]);
        assert!(
            rp[l][subject].abs() < 0.1,
            "L{l} subject {}",
            rp[l][subject]
        );
    }
    // The move happens through attention into the last position: some block's attn_out there
    // restores a sizeable part of the behaviour on its own.
    let best_attn = ao.iter().map(|r| r[last]).fold(f64::MIN, f64::max);
    assert!(best_attn > 0.3, "{best_attn}");
    // ... and that block is the one where the residual stream at the last position takes
    // over, and holds the most important head.
    let attn_layer = (0..n)
        .max_by(|&x, &y| ao[x][last].total_cmp(&ao[y][last]))
        .unwrap();
    let takeover = (0..n).find(|&l| rp[l][last] > 0.5).unwrap();
    assert_eq!(
        takeover,
        attn_layer + 1,
        "attn_out peak L{attn_layer}, takeover L{takeover}"
    );
    assert_eq!(hs[0].1, attn_layer, "top head {:?}", hs[0]);
    // Early MLPs at the subject token carry part of it.
    let best_mlp = mo
        .iter()
        .take(8)
        .map(|r| r[subject])
        .fold(f64::MIN, f64::max);
    assert!(best_mlp > 0.2, "{best_mlp}");
}
