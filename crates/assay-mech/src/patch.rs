//! Activation patching: which activations carry the difference between two prompts.
//!
//! A *clean* prompt ("The capital of France is", answer " Paris") and a *corrupted* one that
//! differs minimally ("The capital of Italy is", where the model prefers " Rome") are run;
//! then one activation of one run — a hook at one layer and position, or one attention head —
//! is replaced by the other run's value and the change in the logit difference
//! `logit(answer) − logit(wrong)` at the last position is measured (TransformerLens
//! conventions: *denoising* runs the corrupted prompt with a clean activation patched in,
//! *noising* runs the clean prompt with a corrupted activation patched in).
//!
//! The sweep never recomputes what a patch cannot change: the two unpatched runs are cached
//! once, and every patched variant at block `l` resumes from the cached residual stream at
//! block `l` ([`Model::last_logits_from`]), with many variants (one per position or head)
//! batched into one forward pass. [`patch_naive`] computes the same numbers with a full forward
//! pass and an [`Intervention`] each, as the reference the fast path is tested against.

pub mod cli;
pub mod heatmap;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{MechError, Result};
use crate::hooks::{Action, HookPoint, Intervention, Position, Reduce, RunPlan};
use crate::model::{Batch, Model};
use crate::tokenizer::ModelTokenizer;

/// A kind of activation swept over every layer × position.
///
/// Why: a sweep asks "where along the residual stream, and through which sublayer, does the
/// difference flow"; these five are the per-position activations of a transformer block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchHook {
    /// `blocks.{l}.hook_resid_pre`: the residual stream entering block `l`.
    ResidPre,
    /// `blocks.{l}.hook_attn_out`: what block `l`'s attention writes.
    AttnOut,
    /// `blocks.{l}.hook_resid_mid`: the residual stream between attention and MLP.
    ResidMid,
    /// `blocks.{l}.hook_mlp_out`: what block `l`'s MLP writes.
    MlpOut,
    /// `blocks.{l}.hook_resid_post`: the residual stream leaving block `l`.
    ResidPost,
}

impl PatchHook {
    /// Every kind, in forward order.
    pub const ALL: [PatchHook; 5] = [
        PatchHook::ResidPre,
        PatchHook::AttnOut,
        PatchHook::ResidMid,
        PatchHook::MlpOut,
        PatchHook::ResidPost,
    ];

    /// The short name used on the command line and in `patch.json`.
    pub fn name(&self) -> &'static str {
        match self {
            PatchHook::ResidPre => "resid_pre",
            PatchHook::AttnOut => "attn_out",
            PatchHook::ResidMid => "resid_mid",
            PatchHook::MlpOut => "mlp_out",
            PatchHook::ResidPost => "resid_post",
        }
    }

    /// The hook point of this kind in block `layer`.
    pub fn at(&self, layer: usize) -> HookPoint {
        match self {
            PatchHook::ResidPre => HookPoint::ResidPre(layer),
            PatchHook::AttnOut => HookPoint::AttnOut(layer),
            PatchHook::ResidMid => HookPoint::ResidMid(layer),
            PatchHook::MlpOut => HookPoint::MlpOut(layer),
            PatchHook::ResidPost => HookPoint::ResidPost(layer),
        }
    }

    /// Where the fast path resumes a patched pass: residual hooks are patched by handing the
    /// patched stream over directly; sublayer outputs by an intervention just after the
    /// nearest cached residual stream.
    fn resume_at(&self, layer: usize) -> HookPoint {
        match self {
            PatchHook::ResidPre | PatchHook::AttnOut => HookPoint::ResidPre(layer),
            PatchHook::ResidMid | PatchHook::MlpOut => HookPoint::ResidMid(layer),
            PatchHook::ResidPost => HookPoint::ResidPost(layer),
        }
    }

    fn is_residual(&self) -> bool {
        matches!(
            self,
            PatchHook::ResidPre | PatchHook::ResidMid | PatchHook::ResidPost
        )
    }
}

impl fmt::Display for PatchHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PatchHook {
    type Err = MechError;
    fn from_str(s: &str) -> Result<Self> {
        let bare = s.trim();
        let bare = bare.strip_prefix("hook_").unwrap_or(bare);
        PatchHook::ALL
            .into_iter()
            .find(|h| h.name() == bare)
            .ok_or_else(|| {
                MechError::Invalid(format!(
                    "--hooks: unknown hook type `{s}`; valid types are {} (comma-separated); \
                     single attention heads are patched through blocks.L.attn.hook_z \
                     automatically (see --per-head)",
                    PatchHook::ALL.map(|h| h.name()).join(", ")
                ))
            })
    }
}

/// Parse a comma-separated list of hook types (`resid_pre,attn_out,mlp_out`), in forward
/// order without repeats.
pub fn parse_hooks(spec: &str) -> Result<Vec<PatchHook>> {
    let set: BTreeSet<PatchHook> = spec
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_>>()?;
    if set.is_empty() {
        return Err(MechError::Invalid(format!(
            "--hooks is empty; give one or more of {}",
            PatchHook::ALL.map(|h| h.name()).join(", ")
        )));
    }
    Ok(set.into_iter().collect())
}

/// Which run is patched with which.
///
/// Why: denoising (corrupted run, clean activation in) finds activations *sufficient* to
/// restore the behaviour; noising (clean run, corrupted activation in) finds activations
/// *necessary* for it. They answer different questions, so the mode is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PatchMode {
    /// Run the corrupted prompt; patch in the clean activation.
    Denoise,
    /// Run the clean prompt; patch in the corrupted activation.
    Noise,
}

impl PatchMode {
    /// The normalised effect of the unpatched run of this mode (0 for denoising, 1 for
    /// noising): effects are ranked by their distance from it.
    pub fn unpatched_effect(&self) -> f64 {
        match self {
            PatchMode::Denoise => 0.0,
            PatchMode::Noise => 1.0,
        }
    }
}

/// A clean/corrupted prompt pair as token ids, with the answer and the wrong answer tokens.
///
/// Why: patching pairs positions one-to-one, so everything downstream works on ids; texts
/// are tokenised and checked once by [`tokenize_pair`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Clean prompt ids.
    pub clean: Vec<u32>,
    /// Corrupted prompt ids (same length).
    pub corrupt: Vec<u32>,
    /// The token the clean prompt should be completed with.
    pub answer: u32,
    /// The token the corrupted prompt should be completed with.
    pub wrong: u32,
}

/// What to sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchOptions {
    /// Hook types swept over layers × positions.
    pub hooks: Vec<PatchHook>,
    /// Denoising or noising.
    pub mode: PatchMode,
    /// Patch each attention head over all positions at once (layers × heads).
    pub heads: bool,
    /// Also patch each head at each position separately (layers × heads × positions).
    pub head_positions: bool,
    /// Refuse a pair whose clean and corrupted logit differences are closer than this: the
    /// normalised metric divides by their difference.
    pub min_gap: f64,
    /// Upper bound on rows × positions in one batched forward pass (memory bound).
    pub max_batch_tokens: usize,
}

impl Default for PatchOptions {
    fn default() -> Self {
        PatchOptions {
            hooks: vec![PatchHook::ResidPre, PatchHook::AttnOut, PatchHook::MlpOut],
            mode: PatchMode::Denoise,
            heads: true,
            head_positions: false,
            min_gap: 0.1,
            max_batch_tokens: 4096,
        }
    }
}

/// The metric read from one forward pass at the last position.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `logit(answer) − logit(wrong)`.
    pub logit_diff: f64,
    /// `log p(answer)` (log-softmax over the vocabulary).
    pub answer_logprob: f64,
}

/// An unpatched run's metric and prediction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// `logit(answer) − logit(wrong)`.
    pub logit_diff: f64,
    /// `log p(answer)`.
    pub answer_logprob: f64,
    /// `log p(wrong)`.
    pub wrong_logprob: f64,
    /// The most likely next token.
    pub top_token: u32,
}

/// The clean and corrupted baselines of one pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baselines {
    /// Clean prompt, unpatched.
    pub clean: Baseline,
    /// Corrupted prompt, unpatched.
    pub corrupt: Baseline,
}

impl Baselines {
    /// `(patched − corrupted) / (clean − corrupted)` on the logit difference: 0 means the
    /// corrupted behaviour, 1 the clean one, whichever run was patched.
    pub fn normalise(&self, logit_diff: f64) -> f64 {
        (logit_diff - self.corrupt.logit_diff) / (self.clean.logit_diff - self.corrupt.logit_diff)
    }
}

/// Raw patched scores of one pair: `[layer][position]` per hook type, `[layer][head]`, and
/// `[layer][head][position]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairSweep {
    /// Unpatched clean and corrupted runs.
    pub baselines: Baselines,
    /// Positions (tokens) per prompt.
    pub n_positions: usize,
    /// Attention heads per block (0 when heads were not patched).
    pub n_heads: usize,
    /// Per hook type, `[layer][position]`.
    pub by_hook: BTreeMap<PatchHook, Vec<Vec<Score>>>,
    /// `[layer][head]`, each head patched at every position at once.
    pub heads: Option<Vec<Vec<Score>>>,
    /// `[layer][head][position]`.
    pub head_positions: Option<Vec<Vec<Vec<Score>>>>,
}

/// One patch, for [`patch_naive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchTarget {
    /// A hook type at one layer, at these positions together.
    Positions {
        /// Hook type.
        hook: PatchHook,
        /// Block.
        layer: usize,
        /// Positions patched together.
        positions: Vec<usize>,
    },
    /// One attention head's `hook_z` at one layer, at every position or at one.
    Head {
        /// Block.
        layer: usize,
        /// Query head.
        head: usize,
        /// `None`: every position.
        position: Option<usize>,
    },
}

fn single_token(tok: &ModelTokenizer, flag: &str, s: &str) -> Result<u32> {
    let ids = tok.encode(s, false)?;
    if ids.len() == 1 {
        return Ok(ids[0]);
    }
    let pieces: Vec<String> = ids
        .iter()
        .map(|&i| tok.decode(&[i]).map(|p| format!("{p:?}")))
        .collect::<Result<_>>()?;
    let mut hint = String::new();
    let alt = match s.strip_prefix(' ') {
        Some(rest) => rest.to_string(),
        None => format!(" {s}"),
    };
    if !alt.is_empty() && tok.encode(&alt, false)?.len() == 1 {
        hint = format!("; {alt:?} is a single token, use that");
    } else if !s.starts_with(' ') {
        hint =
            "; a completion's token usually carries its leading space (\" Paris\", not \"Paris\")"
                .to_string();
    }
    Err(MechError::Invalid(format!(
        "{flag} {s:?} must be exactly one token, but it tokenises as {} tokens [{}] (ids {ids:?}){hint}",
        ids.len(),
        pieces.join(", ")
    )))
}

fn show_tokens(tok: &ModelTokenizer, ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| {
            tok.decode(&[i])
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|_| format!("#{i}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Tokenise a pair of prompts and their answers, checking what patching needs: the prompts
/// have the same number of tokens, and the answer and wrong answer are one token each and
/// differ. `what` names the pair in messages (`--clean/--corrupt`, `pairs.jsonl line 3`).
pub fn tokenize_pair(
    tok: &ModelTokenizer,
    what: &str,
    clean: &str,
    corrupt: &str,
    answer: &str,
    wrong: &str,
    add_special_tokens: bool,
) -> Result<TokenPair> {
    let c = tok.encode(clean, add_special_tokens)?;
    let k = tok.encode(corrupt, add_special_tokens)?;
    if c.is_empty() || k.is_empty() {
        return Err(MechError::Invalid(format!(
            "{what}: a prompt has no tokens; give non-empty clean and corrupted prompts"
        )));
    }
    if c.len() != k.len() {
        return Err(MechError::Invalid(format!(
            "{what}: the clean prompt is {} tokens [{}] but the corrupted prompt is {} tokens [{}]; \
             activation patching pairs positions one-to-one, so both prompts must have the same \
             number of tokens (token-level alignment of unequal prompts is not supported): \
             change the corrupted prompt so it tokenises to the same length, e.g. a subject \
             word with the same token count",
            c.len(),
            show_tokens(tok, &c),
            k.len(),
            show_tokens(tok, &k)
        )));
    }
    let a = single_token(tok, &format!("{what}: answer"), answer)?;
    let w = single_token(tok, &format!("{what}: wrong answer"), wrong)?;
    if a == w {
        return Err(MechError::Invalid(format!(
            "{what}: the answer {answer:?} and the wrong answer {wrong:?} are the same token; \
             the metric is their logit difference, so they must differ"
        )));
    }
    Ok(TokenPair {
        clean: c,
        corrupt: k,
        answer: a,
        wrong: w,
    })
}

fn check_pair(model: &Model, pair: &TokenPair) -> Result<()> {
    if !model.info.has_lm_head {
        return Err(MechError::Invalid(format!(
            "model at {} is an encoder without logits; activation patching measures a logit \
             difference, so it needs a decoder (llama, gpt2)",
            model.info.path
        )));
    }
    if pair.clean.is_empty() || pair.clean.len() != pair.corrupt.len() {
        return Err(MechError::Invalid(format!(
            "clean ({} tokens) and corrupted ({} tokens) prompts must be non-empty and of equal length",
            pair.clean.len(),
            pair.corrupt.len()
        )));
    }
    let v = model.info.vocab_size as u32;
    if let Some(bad) = pair
        .clean
        .iter()
        .chain(&pair.corrupt)
        .chain([&pair.answer, &pair.wrong])
        .find(|&&i| i >= v)
    {
        return Err(MechError::Invalid(format!(
            "token id {bad} is outside the model's vocabulary of {v}"
        )));
    }
    if pair.answer == pair.wrong {
        return Err(MechError::Invalid(
            "answer and wrong answer are the same token; their logit difference is always 0".into(),
        ));
    }
    Ok(())
}

fn baseline(logits: &[f32], pair: &TokenPair) -> Baseline {
    let lse = log_sum_exp(logits);
    let top = logits
        .iter()
        .enumerate()
        .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv { (i, x) } else { (bi, bv) }
        })
        .0;
    let a = logits[pair.answer as usize] as f64;
    let w = logits[pair.wrong as usize] as f64;
    Baseline {
        logit_diff: a - w,
        answer_logprob: a - lse,
        wrong_logprob: w - lse,
        top_token: top as u32,
    }
}

fn log_sum_exp(v: &[f32]) -> f64 {
    let m = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

fn score(logits: &[f32], pair: &TokenPair) -> Score {
    let a = logits[pair.answer as usize] as f64;
    Score {
        logit_diff: a - logits[pair.wrong as usize] as f64,
        answer_logprob: a - log_sum_exp(logits),
    }
}

fn scores(logits: &Tensor, pair: &TokenPair) -> Result<Vec<Score>> {
    Ok(logits
        .to_vec2::<f32>()?
        .iter()
        .map(|r| score(r, pair))
        .collect())
}

/// Last-position logits of a full unpatched run, plus full activations at `hooks`.
fn full_run(
    model: &Model,
    ids: &[u32],
    hooks: &BTreeSet<HookPoint>,
    interventions: Vec<Intervention>,
) -> Result<(Vec<f32>, BTreeMap<HookPoint, Tensor>)> {
    let batch = Batch::from_token_ids(&[ids.to_vec()], 0, model.device())?;
    let plan = RunPlan {
        cache: hooks.iter().map(|h| (*h, Reduce::None)).collect(),
        interventions,
        want_output: true,
    };
    let out = model.run(&batch, &plan)?;
    let logits = out
        .output
        .ok_or_else(|| MechError::Invalid("the model returned no logits".into()))?;
    let last: Vec<f32> = logits
        .narrow(1, ids.len() - 1, 1)?
        .flatten_all()?
        .to_vec1()?;
    Ok((last, out.cache.tensors))
}

/// An activation `[1, pos, ...]` as flat f32 with its trailing shape.
struct Flat {
    data: Vec<f32>,
    /// Shape without the batch dimension.
    shape: Vec<usize>,
}

impl Flat {
    fn of(t: &Tensor) -> Result<Flat> {
        Ok(Flat {
            data: t.flatten_all()?.to_vec1()?,
            shape: t.dims()[1..].to_vec(),
        })
    }

    /// Values per position.
    fn per_pos(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// `rows` copies stacked as `[rows, ...]`, each then edited by `edit(row, &mut data)`.
    fn stacked(
        &self,
        rows: usize,
        device: &Device,
        edit: impl Fn(usize, &mut [f32]),
    ) -> Result<Tensor> {
        let n = self.data.len();
        let mut out = Vec::with_capacity(rows * n);
        for r in 0..rows {
            out.extend_from_slice(&self.data);
            edit(r, &mut out[r * n..(r + 1) * n]);
        }
        let mut shape = vec![rows];
        shape.extend_from_slice(&self.shape);
        Ok(Tensor::from_vec(out, shape, device)?)
    }
}

/// Full activations of one run by hook, `[1, pos, ...]`.
type Acts = BTreeMap<HookPoint, Tensor>;

/// Run the clean and corrupted prompts, check the pair is usable, and return the baselines
/// with `hooks` cached from both runs (`(patched run, source run)` per the mode).
fn prepare(
    model: &Model,
    pair: &TokenPair,
    mode: PatchMode,
    min_gap: f64,
    hooks: &BTreeSet<HookPoint>,
) -> Result<(Baselines, Acts, Acts)> {
    check_pair(model, pair)?;
    let (clean_logits, clean_acts) = full_run(model, &pair.clean, hooks, vec![])?;
    let (corrupt_logits, corrupt_acts) = full_run(model, &pair.corrupt, hooks, vec![])?;
    let baselines = Baselines {
        clean: baseline(&clean_logits, pair),
        corrupt: baseline(&corrupt_logits, pair),
    };
    let gap = baselines.clean.logit_diff - baselines.corrupt.logit_diff;
    if !gap.is_finite() || gap.abs() < min_gap {
        return Err(MechError::Data(format!(
            "the clean and corrupted prompts give indistinguishable logit differences \
             (clean {:.4}, corrupted {:.4}, |difference| {:.2e} < min gap {min_gap}): the \
             normalised effect (patched − corrupted) / (clean − corrupted) would divide by \
             almost nothing and measure noise. Choose a corrupted prompt that changes the \
             model's preference between the answer and the wrong answer (or lower --min-gap \
             if the difference is real)",
            baselines.clean.logit_diff,
            baselines.corrupt.logit_diff,
            gap.abs()
        )));
    }
    Ok(match mode {
        PatchMode::Denoise => (baselines, corrupt_acts, clean_acts),
        PatchMode::Noise => (baselines, clean_acts, corrupt_acts),
    })
}

fn get(acts: &Acts, h: HookPoint) -> Result<&Tensor> {
    acts.get(&h)
        .ok_or_else(|| MechError::Invalid(format!("activation {h} was not cached")))
}

/// Sweep every requested patch for one pair with the fast path: cached prefixes, resumed
/// passes, one batch row per patched position or head.
pub fn sweep(model: &Model, pair: &TokenPair, opts: &PatchOptions) -> Result<PairSweep> {
    let n_layers = model.info.n_layers;
    let t = pair.clean.len();
    let mut need = BTreeSet::new();
    for l in 0..n_layers {
        for h in &opts.hooks {
            need.insert(h.at(l));
            need.insert(h.resume_at(l));
        }
        if opts.heads || opts.head_positions {
            need.insert(HookPoint::ResidPre(l));
            need.insert(HookPoint::AttnZ(l));
        }
    }
    let (baselines, base, src) = prepare(model, pair, opts.mode, opts.min_gap, &need)?;
    let rows_per_pass = (opts.max_batch_tokens / t).max(1);
    // A patch that copies bit-identical values (e.g. any activation before the first token
    // where the prompts differ, by causality) leaves the run unpatched: its score is the
    // unpatched run's, exactly, and it is not recomputed.
    let unpatched = match opts.mode {
        PatchMode::Denoise => &baselines.corrupt,
        PatchMode::Noise => &baselines.clean,
    };
    let unpatched = Score {
        logit_diff: unpatched.logit_diff,
        answer_logprob: unpatched.answer_logprob,
    };
    // One batched pass per chunk of variants; each variant edits its copy of an activation.
    let run_variants = |start: HookPoint,
                        patch_hook: HookPoint,
                        n: usize,
                        edit: &dyn Fn(usize, &Flat, &mut [f32])|
     -> Result<Vec<Score>> {
        let b = Flat::of(get(&base, patch_hook)?)?;
        let s = Flat::of(get(&src, patch_hook)?)?;
        let start_base = Flat::of(get(&base, start)?)?;
        let mut out = vec![unpatched; n];
        let mut scratch = b.data.clone();
        let active: Vec<usize> = (0..n)
            .filter(|&i| {
                scratch.copy_from_slice(&b.data);
                edit(i, &s, &mut scratch);
                scratch != b.data
            })
            .collect();
        for chunk in active.chunks(rows_per_pass) {
            let rows = chunk.len();
            let patched = b.stacked(rows, model.device(), |r, d| edit(chunk[r], &s, d))?;
            let lengths = vec![t; rows];
            let logits = if start == patch_hook {
                model.last_logits_from(start, &patched, &lengths, &RunPlan::default())?
            } else {
                let resid = start_base.stacked(rows, model.device(), |_, _| {})?;
                let plan = RunPlan {
                    interventions: vec![Intervention {
                        hook: patch_hook,
                        position: Position::All,
                        action: Action::Patch(patched),
                    }],
                    ..Default::default()
                };
                model.last_logits_from(start, &resid, &lengths, &plan)?
            }
            .output
            .ok_or_else(|| MechError::Invalid("resumed pass returned no logits".into()))?;
            for (&i, sc) in chunk.iter().zip(scores(&logits, pair)?) {
                out[i] = sc;
            }
        }
        Ok(out)
    };
    let mut by_hook = BTreeMap::new();
    for h in &opts.hooks {
        let mut grid = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let start = if h.is_residual() {
                h.at(l)
            } else {
                h.resume_at(l)
            };
            let edit = |p: usize, s: &Flat, d: &mut [f32]| {
                let w = s.per_pos();
                d[p * w..(p + 1) * w].copy_from_slice(&s.data[p * w..(p + 1) * w]);
            };
            grid.push(run_variants(start, h.at(l), t, &edit)?);
        }
        by_hook.insert(*h, grid);
    }
    let mut n_heads = 0;
    let mut heads = None;
    let mut head_positions = None;
    if opts.heads || opts.head_positions {
        // z is [pos, head, d_head] per row.
        let z0 = get(&base, HookPoint::AttnZ(0))?;
        n_heads = z0.dims()[2];
        let hd = z0.dims()[3];
        let copy = move |s: &Flat, d: &mut [f32], p: usize, h: usize| {
            let o = (p * n_heads + h) * hd;
            d[o..o + hd].copy_from_slice(&s.data[o..o + hd]);
        };
        if opts.heads {
            let mut grid = Vec::with_capacity(n_layers);
            for l in 0..n_layers {
                let edit = |h: usize, s: &Flat, d: &mut [f32]| {
                    for p in 0..t {
                        copy(s, d, p, h);
                    }
                };
                grid.push(run_variants(
                    HookPoint::ResidPre(l),
                    HookPoint::AttnZ(l),
                    n_heads,
                    &edit,
                )?);
            }
            heads = Some(grid);
        }
        if opts.head_positions {
            let mut grid = Vec::with_capacity(n_layers);
            for l in 0..n_layers {
                let edit = |i: usize, s: &Flat, d: &mut [f32]| copy(s, d, i % t, i / t);
                let flat = run_variants(
                    HookPoint::ResidPre(l),
                    HookPoint::AttnZ(l),
                    n_heads * t,
                    &edit,
                )?;
                grid.push(flat.chunks(t).map(<[Score]>::to_vec).collect());
            }
            head_positions = Some(grid);
        }
    }
    Ok(PairSweep {
        baselines,
        n_positions: t,
        n_heads,
        by_hook,
        heads,
        head_positions,
    })
}

/// One patch computed the plain way: a full forward pass of the patched prompt with an
/// [`Intervention`] that copies the other run's activation. Returns the baselines too.
///
/// Why: the reference the fast path ([`sweep`]) is checked against, and a way to patch
/// several positions at once.
pub fn patch_naive(
    model: &Model,
    pair: &TokenPair,
    mode: PatchMode,
    target: &PatchTarget,
) -> Result<(Score, Baselines)> {
    let (hook, positions): (HookPoint, Vec<usize>) = match target {
        PatchTarget::Positions {
            hook,
            layer,
            positions,
        } => (hook.at(*layer), positions.clone()),
        PatchTarget::Head { layer, .. } => (HookPoint::AttnZ(*layer), vec![]),
    };
    model.check_hook(hook)?;
    let t = pair.clean.len();
    if let Some(p) = positions.iter().find(|&&p| p >= t) {
        return Err(MechError::Invalid(format!(
            "position {p} is beyond the prompts' {t} tokens"
        )));
    }
    let need: BTreeSet<HookPoint> = [hook].into();
    let (baselines, base, src) = prepare(model, pair, mode, 0.0, &need)?;
    let src_act = get(&src, hook)?.clone();
    let interventions = match target {
        PatchTarget::Positions { .. } => positions
            .iter()
            .map(|&p| Intervention {
                hook,
                position: Position::Index(p),
                action: Action::Patch(src_act.clone()),
            })
            .collect(),
        PatchTarget::Head { head, position, .. } => {
            let dims = src_act.dims().to_vec();
            let (n_heads, hd) = (dims[2], dims[3]);
            if *head >= n_heads {
                return Err(MechError::Invalid(format!(
                    "head {head} does not exist; block has {n_heads} heads"
                )));
            }
            if let Some(p) = position.filter(|&p| p >= t) {
                return Err(MechError::Invalid(format!(
                    "position {p} is beyond the prompts' {t} tokens"
                )));
            }
            let s = Flat::of(&src_act)?;
            let patched = Flat::of(get(&base, hook)?)?.stacked(1, model.device(), |_, d| {
                for p in 0..t {
                    if position.is_none_or(|q| q == p) {
                        let o = (p * n_heads + head) * hd;
                        d[o..o + hd].copy_from_slice(&s.data[o..o + hd]);
                    }
                }
            })?;
            vec![Intervention {
                hook,
                position: Position::All,
                action: Action::Patch(patched),
            }]
        }
    };
    let ids = match mode {
        PatchMode::Denoise => &pair.corrupt,
        PatchMode::Noise => &pair.clean,
    };
    let (logits, _) = full_run(model, ids, &BTreeSet::new(), interventions)?;
    Ok((score(&logits, pair), baselines))
}
