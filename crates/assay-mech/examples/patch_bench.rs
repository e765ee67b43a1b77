//! Time of a full activation-patching sweep on a real model: every layer × position for
//! resid_pre, attn_out and mlp_out, plus every head (all positions), for one ~20-token pair;
//! and, for scale, the cost per patch of the naive way (one full forward pass with an
//! intervention per patch). Not a test: timings and figures only.
//!
//! `cargo run --release -p assay-mech --example patch_bench -- MODEL.gguf`

use std::time::Instant;

use assay_mech::patch::{PatchHook, PatchMode, PatchOptions, sweep, tokenize_pair};
use assay_mech::{Action, Batch, HookPoint, Intervention, Model, Position, Reduce, RunPlan};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: patch_bench MODEL.gguf"))?;
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("threads: {threads}");
    let t0 = Instant::now();
    let model = Model::load(std::path::Path::new(&path))?;
    println!("loaded in {:.1} s", t0.elapsed().as_secs_f64());
    let tok = model.tokenizer()?;
    let clean = "Fact check, answered in one word. The Eiffel Tower is a famous landmark located in the city of";
    let corrupt = "Fact check, answered in one word. The Colosseum is a famous landmark located in the city of";
    let pair = match tokenize_pair(tok, "bench pair", clean, corrupt, " Paris", " Rome", true) {
        Ok(p) => p,
        Err(e) => {
            // Fall back to a pair that aligns, so the benchmark still runs; say so.
            println!("long pair not usable ({e}); using the short one");
            tokenize_pair(
                tok,
                "bench pair",
                "The capital of France is",
                "The capital of Italy is",
                " Paris",
                " Rome",
                true,
            )?
        }
    };
    let t = pair.clean.len();
    let show = |ids: &[u32]| -> Vec<String> {
        ids.iter()
            .map(|&i| tok.decode(&[i]).unwrap_or_default())
            .collect()
    };
    println!("clean tokens ({t}): {:?}", show(&pair.clean));
    println!("corrupt tokens: {:?}", show(&pair.corrupt));
    let opts = PatchOptions {
        hooks: vec![PatchHook::ResidPre, PatchHook::AttnOut, PatchHook::MlpOut],
        mode: PatchMode::Denoise,
        heads: true,
        head_positions: false,
        ..Default::default()
    };
    let n_layers = model.info.n_layers;
    let t1 = Instant::now();
    let s = sweep(&model, &pair, &opts)?;
    let secs = t1.elapsed().as_secs_f64();
    let variants = n_layers * (3 * t + s.n_heads);
    println!(
        "fast sweep: {n_layers} layers × {t} positions × 3 hook types + {n_layers} × {} heads = {variants} patched runs in {secs:.2} s ({:.1} ms each)",
        s.n_heads,
        1000.0 * secs / variants as f64
    );
    let b = &s.baselines;
    println!(
        "baselines: clean logit diff {:.3} (log p(answer) {:.3}, top {:?}), corrupted {:.3} ({:.3}, top {:?})",
        b.clean.logit_diff,
        b.clean.answer_logprob,
        tok.decode(&[b.clean.top_token])?,
        b.corrupt.logit_diff,
        b.corrupt.answer_logprob,
        tok.decode(&[b.corrupt.top_token])?
    );
    let labels = show(&pair.clean);
    for h in &opts.hooks {
        println!("{h} normalised effect (rows: layers; columns: positions)");
        print!("{:>4}", "");
        for p in 0..t {
            print!("{:>6}", p);
        }
        println!();
        for (l, row) in s.by_hook[h].iter().enumerate() {
            print!("{l:>4}");
            for sc in row {
                print!("{:>6.2}", b.normalise(sc.logit_diff));
            }
            println!();
        }
        println!(
            "     positions: {}",
            labels
                .iter()
                .enumerate()
                .map(|(i, s)| format!("{i}={s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let mut heads: Vec<(f64, usize, usize)> = Vec::new();
    for (l, row) in s.heads.iter().flatten().enumerate() {
        for (h, sc) in row.iter().enumerate() {
            heads.push((b.normalise(sc.logit_diff), l, h));
        }
    }
    heads.sort_by(|x, y| y.0.abs().total_cmp(&x.0.abs()));
    println!(
        "largest head effects: {}",
        heads
            .iter()
            .take(8)
            .map(|(v, l, h)| format!("L{l}H{h} {v:.3}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The naive way: one full forward pass of the corrupted prompt per patch, with an
    // intervention copying the (cached) clean activation.
    let clean_act = model
        .run(
            &Batch::from_token_ids(std::slice::from_ref(&pair.clean), 0, model.device())?,
            &RunPlan::caching(&[HookPoint::ResidPre(n_layers / 2)], Reduce::None),
        )?
        .cache
        .get(&HookPoint::ResidPre(n_layers / 2))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("not cached"))?;
    let corrupt = Batch::from_token_ids(std::slice::from_ref(&pair.corrupt), 0, model.device())?;
    let t2 = Instant::now();
    for p in 0..t {
        let plan = RunPlan {
            interventions: vec![Intervention {
                hook: HookPoint::ResidPre(n_layers / 2),
                position: Position::Index(p),
                action: Action::Patch(clean_act.clone()),
            }],
            want_output: true,
            ..Default::default()
        };
        model.run(&corrupt, &plan)?;
    }
    let naive = t2.elapsed().as_secs_f64() / t as f64;
    println!(
        "naive (one full forward pass with an intervention per patch): {:.1} ms per patch; the same sweep that way ≈ {:.0} s",
        1000.0 * naive,
        naive * variants as f64
    );
    Ok(())
}
