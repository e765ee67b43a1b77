//! `assay mech patch`: arguments, the sweep over pairs, and the files it writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::digest::{FileDigest, file_digest};
use crate::error::{MechError, Result};
use crate::evidence::{DataRef, EvidenceRecord, Reproduction};
use crate::model::Model;
use crate::patch::heatmap::{Heatmap, render};
use crate::patch::{
    PairSweep, PatchHook, PatchMode, PatchOptions, Score, TokenPair, parse_hooks, sweep,
    tokenize_pair,
};
use crate::tokenizer::ModelTokenizer;

/// Arguments of `assay mech patch`.
#[derive(Debug, Clone, clap::Args)]
pub struct PatchArgs {
    /// Model: a Hugging Face directory (config.json + *.safetensors) or a .gguf file (decoders).
    #[arg(long)]
    pub model: PathBuf,
    /// Clean prompt (the behaviour to explain), e.g. "The capital of France is".
    #[arg(long)]
    pub clean: Option<String>,
    /// Corrupted prompt with the same number of tokens, e.g. "The capital of Italy is".
    #[arg(long)]
    pub corrupt: Option<String>,
    /// The clean prompt's answer, one token (mind the leading space: " Paris").
    #[arg(long)]
    pub answer: Option<String>,
    /// The corrupted prompt's answer, one token (" Rome").
    #[arg(long)]
    pub wrong: Option<String>,
    /// JSONL of {"clean", "corrupt", "answer", "wrong"} per line, all of the same token
    /// length; the normalised effect is averaged over pairs. Instead of the four flags above.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Hook types swept over every layer × position: resid_pre, attn_out, mlp_out,
    /// resid_mid, resid_post (comma-separated).
    #[arg(long, default_value = "resid_pre,attn_out,mlp_out")]
    pub hooks: String,
    /// denoise: run the corrupted prompt, patch in clean activations; noise: the reverse.
    #[arg(long, value_enum, default_value = "denoise")]
    pub mode: PatchMode,
    /// Also patch every attention head at every position separately (layers × heads ×
    /// positions; costs about n_heads times one hook type's sweep).
    #[arg(long)]
    pub per_head: bool,
    /// Skip the per-head sweep (each head patched at all positions at once), on by default.
    #[arg(long)]
    pub no_heads: bool,
    /// Refuse pairs whose clean and corrupted logit differences are closer than this.
    #[arg(long, default_value_t = 0.1)]
    pub min_gap: f64,
    /// Largest effects listed in patch.json, the evidence record and on stdout.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Upper bound on patched rows × tokens per batched forward pass (memory).
    #[arg(long, default_value_t = 4096)]
    pub max_batch_tokens: usize,
    /// Recorded in the outputs; patching makes no random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Do not add the tokenizer's special tokens (BOS) to the prompts.
    #[arg(long)]
    pub no_special_tokens: bool,
    /// The claim this evidence bears on (recorded in the evidence record).
    #[arg(long)]
    pub claim: Option<String>,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// One line of a `--pairs` file. Other fields (metadata such as the organism's
/// `differs_at`) are ignored, so generated pair files can be passed as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextPair {
    /// Clean prompt.
    pub clean: String,
    /// Corrupted prompt.
    pub corrupt: String,
    /// Answer to the clean prompt (one token).
    pub answer: String,
    /// Answer to the corrupted prompt (one token).
    pub wrong: String,
}

/// Read a `--pairs` JSONL file; blank lines are skipped, anything else must be a pair.
pub fn read_pairs(path: &Path) -> Result<Vec<TextPair>> {
    let s = std::fs::read_to_string(path).map_err(|e| MechError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in s.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: TextPair = serde_json::from_str(line).map_err(|e| MechError::Parse {
            path: path.into(),
            message: format!(
                "line {}: {e}; each line must be {{\"clean\": ..., \"corrupt\": ..., \"answer\": ..., \"wrong\": ...}}",
                i + 1
            ),
        })?;
        out.push(p);
    }
    if out.is_empty() {
        return Err(MechError::Parse {
            path: path.into(),
            message: "no pairs; each line must be {\"clean\", \"corrupt\", \"answer\", \"wrong\"}"
                .into(),
        });
    }
    Ok(out)
}

/// The pairs asked for, each with the name its messages use.
fn text_pairs(a: &PatchArgs) -> Result<Vec<(String, TextPair)>> {
    let flags = [
        ("--clean", &a.clean),
        ("--corrupt", &a.corrupt),
        ("--answer", &a.answer),
        ("--wrong", &a.wrong),
    ];
    let given: Vec<&str> = flags
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(n, _)| *n)
        .collect();
    match &a.pairs {
        Some(p) => {
            if !given.is_empty() {
                return Err(MechError::Invalid(format!(
                    "give either --pairs or --clean/--corrupt/--answer/--wrong, not both ({} given with --pairs)",
                    given.join(", ")
                )));
            }
            Ok(read_pairs(p)?
                .into_iter()
                .enumerate()
                .map(|(i, tp)| (format!("{} pair {}", p.display(), i + 1), tp))
                .collect())
        }
        None => {
            let missing: Vec<&str> = flags
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| *n)
                .collect();
            if !missing.is_empty() {
                return Err(MechError::Invalid(format!(
                    "missing {}: give --clean, --corrupt, --answer and --wrong, or --pairs FILE.jsonl",
                    missing.join(", ")
                )));
            }
            Ok(vec![(
                "--clean/--corrupt".into(),
                TextPair {
                    clean: a.clean.clone().unwrap_or_default(),
                    corrupt: a.corrupt.clone().unwrap_or_default(),
                    answer: a.answer.clone().unwrap_or_default(),
                    wrong: a.wrong.clone().unwrap_or_default(),
                },
            )])
        }
    }
}

/// Prefix a pair's name to a data or request error.
fn in_pair(what: &str, e: MechError) -> MechError {
    match e {
        MechError::Data(m) if !m.starts_with(what) => MechError::Data(format!("{what}: {m}")),
        MechError::Invalid(m) if !m.starts_with(what) => MechError::Invalid(format!("{what}: {m}")),
        e => e,
    }
}

/// Effects of one patch kind averaged over pairs: `normalized[row][col]` and the mean answer
/// log-prob and logit difference.
#[derive(Debug, Clone, Serialize)]
pub struct Grid {
    /// The hook name pattern (`blocks.{l}.hook_resid_pre`).
    pub hook_name: String,
    /// What rows and columns index.
    pub axes: [String; 2],
    /// Mean over pairs of (patched − corrupted) / (clean − corrupted).
    pub normalized: Vec<Vec<f64>>,
    /// Mean over pairs of log p(answer) after the patch.
    pub answer_logprob: Vec<Vec<f64>>,
    /// Mean over pairs of the patched logit difference.
    pub logit_diff: Vec<Vec<f64>>,
}

fn average(
    sweeps: &[PairSweep],
    hook_name: &str,
    axes: [&str; 2],
    pick: impl Fn(&PairSweep) -> Vec<Vec<Score>>,
) -> Grid {
    let n = sweeps.len() as f64;
    let mut g: Option<Grid> = None;
    for s in sweeps {
        let cells = pick(s);
        let gg = g.get_or_insert_with(|| {
            let zero: Vec<Vec<f64>> = cells.iter().map(|r| vec![0.0; r.len()]).collect();
            Grid {
                hook_name: hook_name.into(),
                axes: axes.map(str::to_string),
                normalized: zero.clone(),
                answer_logprob: zero.clone(),
                logit_diff: zero,
            }
        });
        for (r, row) in cells.iter().enumerate() {
            for (c, sc) in row.iter().enumerate() {
                gg.normalized[r][c] += s.baselines.normalise(sc.logit_diff) / n;
                gg.answer_logprob[r][c] += sc.answer_logprob / n;
                gg.logit_diff[r][c] += sc.logit_diff / n;
            }
        }
    }
    g.unwrap_or(Grid {
        hook_name: hook_name.into(),
        axes: axes.map(str::to_string),
        normalized: vec![],
        answer_logprob: vec![],
        logit_diff: vec![],
    })
}

/// One entry of the ranked effects list.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    /// `resid_pre`, ..., `head` (all positions) or `head_position`.
    pub kind: String,
    /// The hook patched.
    pub hook: String,
    /// Block.
    pub layer: usize,
    /// Token position, if the patch was at one position.
    pub position: Option<usize>,
    /// The (first pair's clean) token at that position.
    pub token: Option<String>,
    /// Attention head, for head patches.
    pub head: Option<usize>,
    /// Mean normalised effect.
    pub normalized: f64,
    /// Mean log p(answer) after the patch.
    pub answer_logprob: f64,
}

fn tok_str(tok: &ModelTokenizer, id: u32) -> String {
    tok.decode(&[id]).unwrap_or_else(|_| format!("#{id}"))
}

/// Run `assay mech patch`.
pub fn cmd_patch(a: &PatchArgs, argv: &[String]) -> Result<()> {
    let t_start = Instant::now();
    let hooks = parse_hooks(&a.hooks)?;
    let pairs = text_pairs(a)?;
    if a.min_gap.is_nan() || a.min_gap < 0.0 {
        return Err(MechError::Invalid(format!(
            "--min-gap must be a non-negative number of logits, got {}",
            a.min_gap
        )));
    }
    let model = Model::load(&a.model)?;
    let tok = model.tokenizer()?;
    let add_special = !a.no_special_tokens;
    let mut tpairs: Vec<TokenPair> = Vec::with_capacity(pairs.len());
    for (what, p) in &pairs {
        let tp = tokenize_pair(
            tok,
            what,
            &p.clean,
            &p.corrupt,
            &p.answer,
            &p.wrong,
            add_special,
        )?;
        if let Some(first) = tpairs.first()
            && first.clean.len() != tp.clean.len()
        {
            return Err(MechError::Invalid(format!(
                "{what} is {} tokens but the first pair is {}; positions are averaged across \
                 pairs, so every pair must have the same token length: split the file by length",
                tp.clean.len(),
                first.clean.len()
            )));
        }
        tpairs.push(tp);
    }
    let opts = PatchOptions {
        hooks: hooks.clone(),
        mode: a.mode,
        heads: !a.no_heads,
        head_positions: a.per_head,
        min_gap: a.min_gap,
        max_batch_tokens: a.max_batch_tokens.max(1),
    };
    let n_layers = model.info.n_layers;
    let t = tpairs[0].clean.len();
    eprintln!(
        "patch: {} pair(s) of {t} tokens, hooks {}, {} mode, model {} ({} layers)",
        tpairs.len(),
        hooks.iter().map(|h| h.name()).collect::<Vec<_>>().join(","),
        match a.mode {
            PatchMode::Denoise => "denoise",
            PatchMode::Noise => "noise",
        },
        model.info.path,
        n_layers
    );
    let t_sweep = Instant::now();
    let mut sweeps = Vec::with_capacity(tpairs.len());
    for ((what, _), tp) in pairs.iter().zip(&tpairs) {
        sweeps.push(sweep(&model, tp, &opts).map_err(|e| in_pair(what, e))?);
    }
    let sweep_secs = t_sweep.elapsed().as_secs_f64();
    let n_heads = sweeps[0].n_heads;
    let variants_per_pair = n_layers
        * (hooks.len() * t
            + if opts.heads { n_heads } else { 0 }
            + if opts.head_positions { n_heads * t } else { 0 });

    // Averages.
    let by_hook: BTreeMap<PatchHook, Grid> = hooks
        .iter()
        .map(|h| {
            let name = h.at(0).to_string().replacen("blocks.0.", "blocks.{l}.", 1);
            let g = average(&sweeps, &name, ["layer", "position"], |s| {
                s.by_hook[h].clone()
            });
            (*h, g)
        })
        .collect();
    let heads = opts.heads.then(|| {
        average(&sweeps, "blocks.{l}.attn.hook_z", ["layer", "head"], |s| {
            s.heads.clone().unwrap_or_default()
        })
    });
    let head_positions = opts.head_positions.then(|| {
        let n = sweeps.len() as f64;
        let mut norm = vec![vec![vec![0.0; t]; n_heads]; n_layers];
        let mut lp = norm.clone();
        for s in &sweeps {
            for (l, hs) in s.head_positions.iter().flatten().enumerate() {
                for (h, ps) in hs.iter().enumerate() {
                    for (p, sc) in ps.iter().enumerate() {
                        norm[l][h][p] += s.baselines.normalise(sc.logit_diff) / n;
                        lp[l][h][p] += sc.answer_logprob / n;
                    }
                }
            }
        }
        (norm, lp)
    });

    // Position labels from the first pair.
    let first = &tpairs[0];
    let positions: Vec<serde_json::Value> = (0..t)
        .map(|p| {
            json!({
                "index": p,
                "clean": tok_str(tok, first.clean[p]),
                "corrupt": tok_str(tok, first.corrupt[p]),
                "differs": tpairs.iter().any(|tp| tp.clean[p] != tp.corrupt[p]),
            })
        })
        .collect();
    let clean_tok: Vec<String> = first.clean.iter().map(|&i| tok_str(tok, i)).collect();
    let col_labels: Vec<String> = (0..t)
        .map(|p| {
            if first.clean[p] == first.corrupt[p] {
                format!("{p}:{}", clean_tok[p])
            } else {
                format!("{p}:{}/{}", clean_tok[p], tok_str(tok, first.corrupt[p]))
            }
        })
        .collect();

    // Ranked effects: distance from the unpatched run (0 denoising, 1 noising).
    let c0 = a.mode.unpatched_effect();
    let mut effects: Vec<Effect> = Vec::new();
    for (h, g) in &by_hook {
        for l in 0..n_layers {
            for (p, token) in clean_tok.iter().enumerate() {
                effects.push(Effect {
                    kind: h.name().into(),
                    hook: h.at(l).to_string(),
                    layer: l,
                    position: Some(p),
                    token: Some(token.clone()),
                    head: None,
                    normalized: g.normalized[l][p],
                    answer_logprob: g.answer_logprob[l][p],
                });
            }
        }
    }
    if let Some(g) = &heads {
        for (l, row) in g.normalized.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                effects.push(Effect {
                    kind: "head".into(),
                    hook: format!("blocks.{l}.attn.hook_z"),
                    layer: l,
                    position: None,
                    token: None,
                    head: Some(h),
                    normalized: *v,
                    answer_logprob: g.answer_logprob[l][h],
                });
            }
        }
    }
    if let Some((norm, lp)) = &head_positions {
        for l in 0..n_layers {
            for h in 0..n_heads {
                for p in 0..t {
                    effects.push(Effect {
                        kind: "head_position".into(),
                        hook: format!("blocks.{l}.attn.hook_z"),
                        layer: l,
                        position: Some(p),
                        token: Some(clean_tok[p].clone()),
                        head: Some(h),
                        normalized: norm[l][h][p],
                        answer_logprob: lp[l][h][p],
                    });
                }
            }
        }
    }
    effects.sort_by(|x, y| {
        (y.normalized - c0)
            .abs()
            .total_cmp(&(x.normalized - c0).abs())
    });
    effects.truncate(a.top);

    // Baselines.
    let mean = |f: &dyn Fn(&PairSweep) -> f64| -> f64 {
        sweeps.iter().map(f).sum::<f64>() / sweeps.len() as f64
    };
    let baselines = json!({
        "clean_logit_diff": mean(&|s| s.baselines.clean.logit_diff),
        "corrupt_logit_diff": mean(&|s| s.baselines.corrupt.logit_diff),
        "clean_answer_logprob": mean(&|s| s.baselines.clean.answer_logprob),
        "corrupt_answer_logprob": mean(&|s| s.baselines.corrupt.answer_logprob),
    });
    let mut warnings: Vec<String> = Vec::new();
    let pair_json: Vec<serde_json::Value> = pairs
        .iter()
        .zip(&tpairs)
        .zip(&sweeps)
        .map(|(((what, p), tp), s)| {
            let b = &s.baselines;
            if b.clean.logit_diff <= 0.0 {
                warnings.push(format!(
                    "{what}: on the clean prompt the model does not prefer the answer {:?} over {:?} (logit difference {:.3})",
                    p.answer, p.wrong, b.clean.logit_diff
                ));
            }
            if b.corrupt.logit_diff >= b.clean.logit_diff {
                warnings.push(format!(
                    "{what}: the corrupted prompt favours the answer more than the clean one (corrupted {:.3} ≥ clean {:.3}); normalised effects are still defined but the pair is reversed",
                    b.corrupt.logit_diff, b.clean.logit_diff
                ));
            }
            let base = |bl: &crate::patch::Baseline| {
                json!({
                    "logit_diff": bl.logit_diff,
                    "answer_logprob": bl.answer_logprob,
                    "wrong_logprob": bl.wrong_logprob,
                    "top_token": bl.top_token,
                    "top_token_text": tok_str(tok, bl.top_token),
                })
            };
            json!({
                "name": what,
                "clean": p.clean, "corrupt": p.corrupt, "answer": p.answer, "wrong": p.wrong,
                "clean_ids": tp.clean, "corrupt_ids": tp.corrupt,
                "answer_id": tp.answer, "wrong_id": tp.wrong,
                "clean_tokens": tp.clean.iter().map(|&i| tok_str(tok, i)).collect::<Vec<_>>(),
                "corrupt_tokens": tp.corrupt.iter().map(|&i| tok_str(tok, i)).collect::<Vec<_>>(),
                "baselines": {"clean": base(&b.clean), "corrupt": base(&b.corrupt)},
            })
        })
        .collect();
    for w in &warnings {
        eprintln!("warning: {w}");
    }

    // Data: the pairs file, or the inline pair written out so it has a digest.
    std::fs::create_dir_all(&a.out).map_err(|e| MechError::io(&a.out, e))?;
    let data_file = match &a.pairs {
        Some(p) => file_digest(p, &p.display().to_string())?,
        None => {
            let p = a.out.join("pairs.jsonl");
            let line = serde_json::to_string(&pairs[0].1)
                .map_err(|e| MechError::Invalid(e.to_string()))?;
            write_text(&p, &(line + "\n"))?;
            file_digest(&p, "pairs.jsonl (from --clean/--corrupt/--answer/--wrong)")?
        }
    };
    let data_ref = DataRef {
        role: "pairs".into(),
        file: data_file,
        rows: tpairs.len(),
    };
    let params = json!({
        "hooks": hooks.iter().map(|h| h.name()).collect::<Vec<_>>(),
        "hook_names": hooks.iter().map(|h| h.at(0).to_string().replacen("blocks.0.", "blocks.{l}.", 1)).collect::<Vec<_>>(),
        "mode": a.mode,
        "heads": opts.heads,
        "per_head_position": opts.head_positions,
        "min_gap": a.min_gap,
        "top": a.top,
        "max_batch_tokens": opts.max_batch_tokens,
        "add_special_tokens": add_special,
        "metric": "logit(answer) − logit(wrong) at the last position; normalised (patched − corrupted) / (clean − corrupted), averaged over pairs",
        "seed": a.seed,
    });

    // Heatmaps.
    let layer_labels: Vec<String> = (0..n_layers).map(|l| l.to_string()).collect();
    let legend = match a.mode {
        PatchMode::Denoise => "normalised effect (0 = corrupted, 1 = clean)",
        PatchMode::Noise => "normalised effect (1 = clean, 0 = corrupted)",
    };
    let mode_name = match a.mode {
        PatchMode::Denoise => "denoising: clean → corrupted run",
        PatchMode::Noise => "noising: corrupted → clean run",
    };
    let mut artifacts_paths: Vec<(String, PathBuf)> = Vec::new();
    for (h, g) in &by_hook {
        let name = format!("patch_{}.svg", h.name());
        let p = a.out.join(&name);
        write_text(
            &p,
            &render(&Heatmap {
                title: &format!(
                    "{} patched per layer × position ({mode_name}; {} pair(s))",
                    g.hook_name,
                    tpairs.len()
                ),
                row_labels: &layer_labels,
                col_labels: &col_labels,
                row_axis: "layer",
                col_axis: "position: clean token (/corrupted token where they differ)",
                values: &g.normalized,
                center: c0,
                legend,
            }),
        )?;
        artifacts_paths.push((name, p));
    }
    if let Some(g) = &heads {
        let p = a.out.join("patch_heads.svg");
        let head_labels: Vec<String> = (0..n_heads).map(|h| format!("H{h}")).collect();
        write_text(
            &p,
            &render(&Heatmap {
                title: &format!(
                    "attention head (blocks.L.attn.hook_z) patched at every position ({mode_name})"
                ),
                row_labels: &layer_labels,
                col_labels: &head_labels,
                row_axis: "layer",
                col_axis: "head",
                values: &g.normalized,
                center: c0,
                legend,
            }),
        )?;
        artifacts_paths.push(("patch_heads.svg".into(), p));
    }

    let total_secs = t_start.elapsed().as_secs_f64();
    let patch_json = json!({
        "schema_version": "assay.patch/v1",
        "model": model.info,
        "data": data_ref,
        "seed": a.seed,
        "params": params,
        "n_pairs": tpairs.len(),
        "n_layers": n_layers,
        "n_positions": t,
        "n_heads": n_heads,
        "baselines": baselines,
        "pairs": pair_json,
        "positions": positions,
        "hooks": by_hook.iter().map(|(h, g)| (h.name().to_string(), json!(g))).collect::<serde_json::Map<_, _>>(),
        "heads": heads,
        "head_positions": head_positions.as_ref().map(|(norm, lp)| json!({
            "hook_name": "blocks.{l}.attn.hook_z",
            "axes": ["layer", "head", "position"],
            "normalized": norm,
            "answer_logprob": lp,
        })),
        "top_effects": effects,
        "warnings": warnings,
    });
    // Timing lives in its own file, outside the evidence artifacts, so identical runs
    // give byte-identical `patch.json` and the same evidence id.
    let timing = json!({
        "seconds_total": total_secs,
        "seconds_sweep": sweep_secs,
        "patched_variants": variants_per_pair * tpairs.len(),
    });
    write_text(
        &a.out.join("timing.json"),
        &(serde_json::to_string_pretty(&timing).map_err(|e| MechError::Invalid(e.to_string()))?
            + "\n"),
    )?;
    let patch_path = a.out.join("patch.json");
    write_text(
        &patch_path,
        &(serde_json::to_string_pretty(&patch_json)
            .map_err(|e| MechError::Invalid(e.to_string()))?
            + "\n"),
    )?;
    artifacts_paths.insert(0, ("patch.json".into(), patch_path.clone()));
    if a.pairs.is_none() {
        artifacts_paths.push(("pairs.jsonl".into(), a.out.join("pairs.jsonl")));
    }
    let artifacts: Vec<FileDigest> = artifacts_paths
        .iter()
        .map(|(n, p)| file_digest(p, n))
        .collect::<Result<_>>()?;
    let per_hook_max: serde_json::Map<String, serde_json::Value> = by_hook
        .iter()
        .map(|(h, g)| {
            let mut best = (0, 0, f64::NEG_INFINITY);
            for (l, row) in g.normalized.iter().enumerate() {
                for (p, v) in row.iter().enumerate() {
                    if (v - c0).abs() > best.2 {
                        best = (l, p, (v - c0).abs());
                    }
                }
            }
            (
                h.name().to_string(),
                json!({"layer": best.0, "position": best.1, "token": clean_tok[best.1],
                       "normalized": g.normalized[best.0][best.1]}),
            )
        })
        .collect();
    let results = json!({
        "metric": "normalised logit difference (patched − corrupted) / (clean − corrupted)",
        "mode": a.mode,
        "n_pairs": tpairs.len(),
        "n_positions": t,
        "baselines": baselines,
        "largest_effect_per_hook": per_hook_max,
        "top_effects": effects.iter().take(10).collect::<Vec<_>>(),
        "warnings": warnings,
    });
    let rec = EvidenceRecord::new(
        "activation_patching",
        &["activations_read", "activations_write"],
        a.claim.clone(),
        model.info.clone(),
        vec![data_ref],
        a.seed,
        params,
        results,
        artifacts,
        Reproduction::from_argv(argv, Some(a.seed)),
    )?;
    let ev_path = a.out.join("evidence.json");
    rec.write(&ev_path)?;

    // Summary.
    println!(
        "baselines: clean logit diff {:.3} (log p(answer) {:.3}), corrupted {:.3} ({:.3})",
        baselines["clean_logit_diff"].as_f64().unwrap_or(f64::NAN),
        baselines["clean_answer_logprob"]
            .as_f64()
            .unwrap_or(f64::NAN),
        baselines["corrupt_logit_diff"].as_f64().unwrap_or(f64::NAN),
        baselines["corrupt_answer_logprob"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
    println!(
        "{:<14} {:<30} {:>5} {:>4} {:<16} {:>10} {:>10}",
        "kind", "hook", "layer", "head", "position", "normalised", "log p(ans)"
    );
    for e in &effects {
        println!(
            "{:<14} {:<30} {:>5} {:>4} {:<16} {:>10.3} {:>10.3}",
            e.kind,
            e.hook,
            e.layer,
            e.head.map_or("-".into(), |h| h.to_string()),
            e.position.map_or("all".into(), |p| format!(
                "{p} {:?}",
                e.token.as_deref().unwrap_or("")
            )),
            e.normalized,
            e.answer_logprob
        );
    }
    println!(
        "{} patched variants in {:.1} s (total {:.1} s); wrote {} and {}",
        variants_per_pair * tpairs.len(),
        sweep_secs,
        total_secs,
        patch_path.display(),
        ev_path.display()
    );
    Ok(())
}

fn write_text(p: &Path, s: &str) -> Result<()> {
    std::fs::write(p, s).map_err(|e| MechError::io(p, e))
}
