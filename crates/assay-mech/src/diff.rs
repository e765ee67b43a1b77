//! Before/after-training comparison of two checkpoints of one architecture (`assay mech diff`).
//!
//! Why: a claim such as "fine-tuning changed only X" or "safety training removed feature Y"
//! is checked by looking at what moved: which weight tensors (and in how many directions),
//! where next-token predictions diverge, at which block the residual streams part ways, which
//! tokens the average activation change points to, and whether a probe for a property still
//! reads it in the other model. Everything here is deterministic; only the probe part draws
//! random numbers, from the stored seed.

// Index loops read more clearly than iterator chains in this numeric code.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{D, DType, Tensor};
use serde::Serialize;
use serde_json::json;

use crate::checkpoint::{Checkpoint, layer_of};
use crate::digest::{FileDigest, file_digest};
use crate::error::{MechError, Result};
use crate::evidence::{DataRef, EvidenceRecord};
use crate::hooks::{HookPoint, Reduce, RunPlan, resolve_hooks};
use crate::model::{Batch, Model, ModelInfo};
use crate::probe::linear::Matrix;
use crate::probe::metrics::auroc;
use crate::probe::split::{SplitInfo, assign_folds};
use crate::probe::{self, Example, HookMetrics, Method, ProbeParams, TextFormat};
use crate::rng::Rng;

/// Arguments of `assay mech diff`.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The reference model (before training): a Hugging Face directory or a .gguf file.
    #[arg(long)]
    pub before: PathBuf,
    /// The model after training; same architecture, tensor names and shapes.
    #[arg(long)]
    pub after: PathBuf,
    /// JSONL with {"text"} per line (other fields ignored): next-token KL, activation drift,
    /// activation-difference lens.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// JSONL with {"text", "label" (0/1), "group"?}: fit a probe on each model and apply it
    /// to the other.
    #[arg(long)]
    pub probe_data: Option<PathBuf>,
    /// Hooks for probe transfer, comma-separated names or patterns.
    #[arg(long, default_value = "blocks.*.hook_resid_post")]
    pub hooks: String,
    /// Token position probes read: last, mean, or a token index.
    #[arg(long, default_value = "last", value_parser = parse_reduce)]
    pub position: Reduce,
    /// Probe method.
    #[arg(long, value_enum, default_value = "logreg")]
    pub method: Method,
    /// Inverse L2 strength for logistic regression (sklearn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Cross-validation folds for probe transfer.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Bootstrap resamples for each model's own probe AUROC interval.
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Random directions in each model's own probe baseline.
    #[arg(long, default_value_t = 10)]
    pub random_directions: usize,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Singular values are computed for this many most-changed matrices.
    #[arg(long, default_value_t = 8)]
    pub svd_top_k: usize,
    /// The activation-difference lens averages the first this many tokens of each text.
    #[arg(long, default_value_t = 5)]
    pub lens_tokens: usize,
    /// Tokens listed per lens layer and per model prediction.
    #[arg(long, default_value_t = 10)]
    pub top_tokens: usize,
    /// Most divergent (text, position) contexts listed.
    #[arg(long, default_value_t = 20)]
    pub top_contexts: usize,
    /// Corpus texts are cut to this many tokens.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Seed for the probe splits, control labels and bootstrap (stored in the outputs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Wrap each text as a user message in the chat template (of the model before).
    #[arg(long)]
    pub chat_template: bool,
    /// Do not add the tokenizer's special tokens.
    #[arg(long)]
    pub no_special_tokens: bool,
    /// The claim this evidence bears on (recorded in the evidence record).
    #[arg(long)]
    pub claim: Option<String>,
}

fn parse_reduce(s: &str) -> std::result::Result<Reduce, String> {
    let r: Reduce = s.parse()?;
    if r == Reduce::None {
        return Err("a probe reads one vector per text: use last, mean or an index".into());
    }
    Ok(r)
}

/// Parameters of a comparison, stored verbatim in `diff.json` and the evidence record.
///
/// Why: every bound on the work (how many spectra, tokens, contexts) changes what is
/// reported, so it is part of the result.
#[derive(Debug, Clone, Serialize)]
pub struct DiffParams {
    /// Singular values are computed for this many most-changed matrices.
    pub svd_top_k: usize,
    /// Tokens per text averaged by the activation-difference lens.
    pub lens_tokens: usize,
    /// Tokens listed per lens layer and per prediction.
    pub top_tokens: usize,
    /// Most divergent contexts listed.
    pub top_contexts: usize,
    /// Corpus texts are cut to this many tokens.
    pub max_tokens: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Tokenisation of corpus and probe texts.
    pub text_format: TextFormat,
    /// Probe-transfer parameters (hooks, position, method, folds, seed, ...).
    pub probe: ProbeParams,
}

impl Default for DiffParams {
    fn default() -> Self {
        DiffParams {
            svd_top_k: 8,
            lens_tokens: 5,
            top_tokens: 10,
            top_contexts: 20,
            max_tokens: 512,
            batch_size: 4,
            text_format: TextFormat::default(),
            probe: ProbeParams {
                bootstrap: 200,
                random_directions: 10,
                ..ProbeParams::default()
            },
        }
    }
}

fn mismatch(
    before: &Path,
    after: &Path,
    what: &str,
    b: &dyn std::fmt::Display,
    a: &dyn std::fmt::Display,
) -> MechError {
    MechError::Invalid(format!(
        "cannot diff {} and {}: {what} differs ({b} before vs {a} after); diff compares two checkpoints of one architecture (e.g. before and after fine-tuning)",
        before.display(),
        after.display()
    ))
}

/// Refuse two models that are not the same architecture and shape, naming the first
/// difference (family, architecture, format, layer count, width, vocabulary).
///
/// Why: a tensor-by-tensor or position-by-position comparison of different architectures
/// would be meaningless, and a silent partial comparison would mislead.
pub fn check_compatible(before: &ModelInfo, after: &ModelInfo) -> Result<()> {
    let (pb, pa) = (Path::new(&before.path), Path::new(&after.path));
    if before.family != after.family {
        return Err(mismatch(
            pb,
            pa,
            "architecture family",
            &before.family,
            &after.family,
        ));
    }
    if before.architecture != after.architecture {
        return Err(mismatch(
            pb,
            pa,
            "architecture",
            &before.architecture,
            &after.architecture,
        ));
    }
    if before.format != after.format {
        return Err(mismatch(
            pb,
            pa,
            "checkpoint format (tensor naming)",
            &before.format,
            &after.format,
        ));
    }
    if before.n_layers != after.n_layers {
        return Err(mismatch(
            pb,
            pa,
            "layer count",
            &before.n_layers,
            &after.n_layers,
        ));
    }
    if before.d_model != after.d_model {
        return Err(mismatch(pb, pa, "d_model", &before.d_model, &after.d_model));
    }
    if before.vocab_size != after.vocab_size {
        return Err(mismatch(
            pb,
            pa,
            "vocabulary size",
            &before.vocab_size,
            &after.vocab_size,
        ));
    }
    Ok(())
}

/// Refuse two checkpoints whose tensor names or shapes differ, naming the first difference
/// (in name order).
pub fn check_same_tensors(before: &Checkpoint, after: &Checkpoint) -> Result<()> {
    let (pb, pa) = (before.path.as_path(), after.path.as_path());
    let mut ib = before.tensors.iter();
    let mut ia = after.tensors.iter();
    loop {
        match (ib.next(), ia.next()) {
            (None, None) => return Ok(()),
            (Some((nb, tb)), Some((na, ta))) => {
                if nb != na {
                    let (missing, side) = if nb < na {
                        (nb, "after")
                    } else {
                        (na, "before")
                    };
                    return Err(MechError::Invalid(format!(
                        "cannot diff {} and {}: tensor names differ: `{missing}` is absent from the model {side}; diff compares two checkpoints of one architecture",
                        pb.display(),
                        pa.display()
                    )));
                }
                if tb.dims() != ta.dims() {
                    return Err(mismatch(
                        pb,
                        pa,
                        &format!("shape of tensor `{nb}`"),
                        &format!("{:?}", tb.dims()),
                        &format!("{:?}", ta.dims()),
                    ));
                }
            }
            (Some((n, _)), None) | (None, Some((n, _))) => {
                let side = if before.tensors.contains_key(n) {
                    "after"
                } else {
                    "before"
                };
                return Err(MechError::Invalid(format!(
                    "cannot diff {} and {}: tensor names differ: `{n}` is absent from the model {side}; diff compares two checkpoints of one architecture",
                    pb.display(),
                    pa.display()
                )));
            }
        }
    }
}

/// Change of one stored tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorChange {
    /// Stored name.
    pub name: String,
    /// Block index, `None` for embeddings, final norm and head.
    pub layer: Option<usize>,
    /// Shape.
    pub shape: Vec<usize>,
    /// ‖W_before‖_F.
    pub norm_before: f64,
    /// ‖W_after − W_before‖_F.
    pub norm_delta: f64,
    /// `norm_delta / norm_before`; `None` when the tensor was all zeros before and is not now.
    pub relative_change: Option<f64>,
}

/// Change of all tensors of one block (or of the tensors outside blocks).
#[derive(Debug, Clone, Serialize)]
pub struct LayerChange {
    /// Block index; `None` for the tensors outside blocks (embeddings, final norm, head).
    pub layer: Option<usize>,
    /// Tensors in the group.
    pub n_tensors: usize,
    /// Tensors with any change.
    pub n_changed: usize,
    /// √Σ‖W_before‖² over the group.
    pub norm_before: f64,
    /// √Σ‖ΔW‖² over the group.
    pub norm_delta: f64,
    /// `norm_delta / norm_before` (`None` as for tensors).
    pub relative_change: Option<f64>,
}

/// Singular-value summary of one weight difference ΔW.
#[derive(Debug, Clone, Serialize)]
pub struct Spectrum {
    /// Stored name.
    pub name: String,
    /// Block index.
    pub layer: Option<usize>,
    /// Shape of ΔW.
    pub shape: Vec<usize>,
    /// `svd` (singular values of ΔW directly) or `gram_eigen` (square roots of the
    /// eigenvalues of the smaller Gram matrix ΔWᵀΔW or ΔWΔWᵀ, for very tall/wide matrices
    /// such as embeddings).
    pub method: String,
    /// Largest singular value.
    pub sigma_max: f64,
    /// exp(entropy of σᵢ/Σσⱼ): 1 for a rank-1 change, the dimension for a flat spectrum.
    pub effective_rank: f64,
    /// ‖ΔW‖_F² / σ_max².
    pub stable_rank: f64,
    /// The largest singular values (at most 16), descending.
    pub singular_values: Vec<f64>,
}

/// Everything about the weights.
#[derive(Debug, Clone, Serialize)]
pub struct WeightDiff {
    /// Tensors compared.
    pub n_tensors: usize,
    /// Tensors with any change.
    pub n_changed: usize,
    /// √Σ‖W_before‖² over all tensors.
    pub norm_before: f64,
    /// √Σ‖ΔW‖² over all tensors.
    pub norm_delta: f64,
    /// Overall relative change.
    pub relative_change: Option<f64>,
    /// Every tensor, largest relative change first (ties by name).
    pub tensors: Vec<TensorChange>,
    /// Per block in block order, then the tensors outside blocks.
    pub layers: Vec<LayerChange>,
    /// How many matrices spectra were asked for (`svd_top_k`).
    pub svd_top_k: usize,
    /// Spectra of the (at most `svd_top_k`) changed 2-D tensors with the largest relative
    /// change, in that order.
    pub spectra: Vec<Spectrum>,
}

fn rel(delta: f64, before: f64) -> Option<f64> {
    if delta == 0.0 {
        Some(0.0)
    } else if before > 0.0 {
        Some(delta / before)
    } else {
        None
    }
}

/// Ranking key: `None` (change from all-zero) ranks above any finite change.
fn rank_key(r: Option<f64>) -> f64 {
    r.unwrap_or(f64::INFINITY)
}

/// exp(Shannon entropy of the normalised singular values) — the effective rank of Roy and
/// Vetterli (2007). 0 for an all-zero spectrum.
pub fn effective_rank(sv: &[f64]) -> f64 {
    let s: f64 = sv.iter().filter(|v| **v > 0.0).sum();
    if s <= 0.0 {
        return 0.0;
    }
    let h: f64 = sv
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| {
            let p = v / s;
            -p * p.ln()
        })
        .sum();
    h.exp()
}

/// ‖M‖_F² / σ_max² from singular values; 0 for an all-zero spectrum.
pub fn stable_rank(sv: &[f64]) -> f64 {
    let max = sv.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return 0.0;
    }
    sv.iter().map(|v| v * v).sum::<f64>() / (max * max)
}

/// Singular values (descending) of a 2-D f64 tensor, and the method used.
///
/// Why: nalgebra's SVD is exact enough and fast for block-sized matrices; for matrices more
/// than 4× taller than wide (embeddings) the eigenvalues of the small Gram matrix give the
/// same values (to ~1e-8·σ_max) at a fraction of the cost.
pub fn singular_values(m: &Tensor) -> Result<(String, Vec<f64>)> {
    let (r, c) = m.dims2()?;
    let m = m.to_dtype(DType::F64)?;
    let mut sv: Vec<f64>;
    let method;
    if r.max(c) > 4 * r.min(c) {
        let g = if r >= c {
            m.t()?.contiguous()?.matmul(&m)?
        } else {
            m.matmul(&m.t()?.contiguous()?)?
        };
        let k = g.dim(0)?;
        let g = nalgebra::DMatrix::from_row_slice(k, k, &g.flatten_all()?.to_vec1::<f64>()?);
        sv = nalgebra::SymmetricEigen::new(g)
            .eigenvalues
            .iter()
            .map(|e| e.max(0.0).sqrt())
            .collect();
        method = "gram_eigen";
    } else {
        let a = nalgebra::DMatrix::from_row_slice(r, c, &m.flatten_all()?.to_vec1::<f64>()?);
        sv = a.singular_values().iter().copied().collect();
        method = "svd";
    }
    sv.sort_by(|a, b| b.total_cmp(a));
    Ok((method.into(), sv))
}

/// Compare every tensor of two checkpoints: Frobenius norms of the difference relative to
/// the tensor before, per tensor and per block, and spectra of the `top_k` most-changed
/// matrices.
pub fn weight_diff(before: &Checkpoint, after: &Checkpoint, top_k: usize) -> Result<WeightDiff> {
    check_same_tensors(before, after)?;
    let mut tensors = Vec::new();
    let mut groups: BTreeMap<Option<usize>, (usize, usize, f64, f64)> = BTreeMap::new();
    for (name, tb) in &before.tensors {
        let ta = &after.tensors[name];
        let b = tb.to_dtype(DType::F64)?;
        let a = ta.to_dtype(DType::F64)?;
        let nb2 = b.sqr()?.sum_all()?.to_scalar::<f64>()?;
        let nd2 = (a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        let layer = layer_of(name);
        let g = groups.entry(layer).or_default();
        g.0 += 1;
        g.1 += usize::from(nd2 != 0.0);
        g.2 += nb2;
        g.3 += nd2;
        tensors.push(TensorChange {
            name: name.clone(),
            layer,
            shape: tb.dims().to_vec(),
            norm_before: nb2.sqrt(),
            norm_delta: nd2.sqrt(),
            relative_change: rel(nd2.sqrt(), nb2.sqrt()),
        });
    }
    tensors.sort_by(|x, y| {
        rank_key(y.relative_change)
            .total_cmp(&rank_key(x.relative_change))
            .then_with(|| x.name.cmp(&y.name))
    });
    let mut layers: Vec<LayerChange> = groups
        .iter()
        .map(|(l, (n, c, b2, d2))| LayerChange {
            layer: *l,
            n_tensors: *n,
            n_changed: *c,
            norm_before: b2.sqrt(),
            norm_delta: d2.sqrt(),
            relative_change: rel(d2.sqrt(), b2.sqrt()),
        })
        .collect();
    // Blocks in order, then the tensors outside blocks.
    layers.sort_by_key(|l| (l.layer.is_none(), l.layer));
    let mut spectra = Vec::new();
    for t in tensors
        .iter()
        .filter(|t| t.shape.len() == 2 && t.norm_delta > 0.0 && t.norm_delta.is_finite())
        .take(top_k)
    {
        let d = (after.tensors[&t.name].to_dtype(DType::F64)?
            - before.tensors[&t.name].to_dtype(DType::F64)?)?;
        let (method, sv) = singular_values(&d)?;
        spectra.push(Spectrum {
            name: t.name.clone(),
            layer: t.layer,
            shape: t.shape.clone(),
            method,
            sigma_max: sv.first().copied().unwrap_or(0.0),
            effective_rank: effective_rank(&sv),
            stable_rank: stable_rank(&sv),
            singular_values: sv.iter().take(16).copied().collect(),
        });
    }
    let nb2: f64 = groups.values().map(|g| g.2).sum();
    let nd2: f64 = groups.values().map(|g| g.3).sum();
    Ok(WeightDiff {
        n_tensors: tensors.len(),
        n_changed: tensors.iter().filter(|t| t.norm_delta != 0.0).count(),
        norm_before: nb2.sqrt(),
        norm_delta: nd2.sqrt(),
        relative_change: rel(nd2.sqrt(), nb2.sqrt()),
        tensors,
        layers,
        svd_top_k: top_k,
        spectra,
    })
}

/// Token ids for texts from the model before, and whether the model after's tokenizer
/// gives the same ids (`None` when it ships none).
///
/// Why: both models must read the same token sequence for a position-by-position
/// comparison; the ids of the reference model are used for both, and a disagreement is
/// reported rather than hidden.
pub fn tokenize_pair(
    before: &Model,
    after: &Model,
    texts: &[&str],
    fmt: &TextFormat,
) -> Result<(Vec<Vec<u32>>, Option<bool>)> {
    let ids = probe::tokenize(before, texts, fmt)?;
    let agree = after.tokenizer.as_ref().map(|_| {
        probe::tokenize(after, texts, fmt)
            .map(|b| b == ids)
            .unwrap_or(false)
    });
    Ok((ids, agree))
}

/// Per-text next-token divergence.
#[derive(Debug, Clone, Serialize)]
pub struct TextKl {
    /// Row index in the corpus file (0-based).
    pub index: usize,
    /// Tokens compared (after truncation).
    pub n_tokens: usize,
    /// Mean KL(before ‖ after) over the text's positions, in nats.
    pub mean_kl: f64,
    /// Largest KL at any position.
    pub max_kl: f64,
    /// Position of the largest KL.
    pub max_kl_position: usize,
    /// The text's first characters.
    pub text_start: String,
}

/// One candidate next token with its probability.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Token id.
    pub id: u32,
    /// Decoded token.
    pub token: String,
    /// Probability.
    pub prob: f64,
}

/// One of the contexts where the two models' next-token distributions differ most.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// Corpus row.
    pub text_index: usize,
    /// Token position whose next-token distribution is compared.
    pub position: usize,
    /// The text up to and including that token (at most its last 80 characters).
    pub prefix: String,
    /// The token that follows in the text (`None` at the last position).
    pub next_token: Option<String>,
    /// KL(before ‖ after), nats.
    pub kl: f64,
    /// The model before's most likely next tokens.
    pub before_top: Vec<Prediction>,
    /// The model after's most likely next tokens.
    pub after_top: Vec<Prediction>,
}

/// Activation drift at one block's output.
#[derive(Debug, Clone, Serialize)]
pub struct LayerDrift {
    /// Hook (`blocks.{l}.hook_resid_post`).
    pub hook: String,
    /// Block index.
    pub layer: usize,
    /// Real tokens compared.
    pub n_tokens: usize,
    /// Mean over tokens of 1 − cos(x_before, x_after), computed as ½‖x̂ − ŷ‖² (exactly 0 for
    /// identical vectors); a zero vector against a non-zero one counts as 1.
    pub mean_cosine_distance: f64,
    /// Largest cosine distance at any token.
    pub max_cosine_distance: f64,
    /// Mean over tokens of ‖x_after − x_before‖ / ‖x_before‖ (tokens with x_before = 0 left
    /// out).
    pub mean_relative_l2: f64,
    /// Linear CKA between the two models' token-by-feature activation matrices (columns
    /// centred); `None` when one side is constant.
    pub linear_cka: Option<f64>,
}

/// A token pushed up by the mean activation difference.
#[derive(Debug, Clone, Serialize)]
pub struct LensToken {
    /// Token id.
    pub id: u32,
    /// Decoded token.
    pub token: String,
    /// Logit of the difference vector read through the unembedding.
    pub logit: f64,
}

/// The activation-difference lens at one block.
#[derive(Debug, Clone, Serialize)]
pub struct LensLayer {
    /// Hook.
    pub hook: String,
    /// Block index.
    pub layer: usize,
    /// Vectors averaged (texts × first tokens).
    pub n_vectors: usize,
    /// ‖mean(x_after − x_before)‖.
    pub norm: f64,
    /// Tokens with the largest logits of the mean difference.
    pub top_tokens: Vec<LensToken>,
}

/// The activation-difference lens.
#[derive(Debug, Clone, Serialize)]
pub struct Lens {
    /// Tokens per text averaged.
    pub first_tokens: usize,
    /// Which model's final norm and unembedding read the difference (`after`).
    pub read_through: String,
    /// Per block.
    pub layers: Vec<LensLayer>,
}

/// Everything measured on the corpus.
#[derive(Debug, Clone, Serialize)]
pub struct CorpusDiff {
    /// Texts.
    pub n_texts: usize,
    /// Real tokens compared.
    pub n_tokens: usize,
    /// Texts cut to `max_tokens`.
    pub n_truncated: usize,
    /// Whether the model after's tokenizer gives the same ids (`None`: it ships none). The
    /// model before's ids are fed to both.
    pub tokenizers_agree: Option<bool>,
    /// Token-weighted mean KL(before ‖ after) over every position, nats (`None` for
    /// encoders).
    pub mean_kl: Option<f64>,
    /// Largest KL at any position.
    pub max_kl: Option<f64>,
    /// Per text (empty for encoders).
    pub texts: Vec<TextKl>,
    /// The most divergent contexts, largest KL first.
    pub top_contexts: Vec<Context>,
    /// Per block output.
    pub drift: Vec<LayerDrift>,
    /// Activation-difference lens (`None` for encoders or `lens_tokens = 0`).
    pub lens: Option<Lens>,
    /// KL at every position of every text (written to `kl_tokens.jsonl`, not `diff.json`).
    #[serde(skip)]
    pub per_token_kl: Vec<Vec<f64>>,
}

/// Streaming accumulators for one block's drift.
struct DriftAcc {
    n: usize,
    cos_sum: f64,
    cos_max: f64,
    rel_sum: f64,
    rel_n: usize,
    xx: Option<Tensor>,
    yy: Option<Tensor>,
    xy: Option<Tensor>,
    sx: Option<Tensor>,
    sy: Option<Tensor>,
}

fn acc_add(acc: &mut Option<Tensor>, t: Tensor) -> Result<()> {
    *acc = Some(match acc.take() {
        None => t,
        Some(a) => (a + t)?,
    });
    Ok(())
}

impl DriftAcc {
    fn new() -> Self {
        DriftAcc {
            n: 0,
            cos_sum: 0.0,
            cos_max: 0.0,
            rel_sum: 0.0,
            rel_n: 0,
            xx: None,
            yy: None,
            xy: None,
            sx: None,
            sy: None,
        }
    }

    /// Add rows `x` (before) and `y` (after), `[n, d]` f64.
    fn add(&mut self, x: &Tensor, y: &Tensor) -> Result<()> {
        let xr = x.to_vec2::<f64>()?;
        let yr = y.to_vec2::<f64>()?;
        for (a, b) in xr.iter().zip(&yr) {
            let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
            let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
            let cos = if na == 0.0 && nb == 0.0 {
                0.0
            } else if na == 0.0 || nb == 0.0 {
                1.0
            } else {
                0.5 * a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (p / na - q / nb).powi(2))
                    .sum::<f64>()
            };
            self.cos_sum += cos;
            self.cos_max = self.cos_max.max(cos);
            if na > 0.0 {
                let dn = a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (q - p).powi(2))
                    .sum::<f64>()
                    .sqrt();
                self.rel_sum += dn / na;
                self.rel_n += 1;
            }
        }
        self.n += xr.len();
        let xt = x.t()?.contiguous()?;
        acc_add(&mut self.xx, xt.matmul(x)?)?;
        acc_add(&mut self.xy, xt.matmul(y)?)?;
        acc_add(&mut self.yy, y.t()?.contiguous()?.matmul(y)?)?;
        acc_add(&mut self.sx, x.sum(0)?)?;
        acc_add(&mut self.sy, y.sum(0)?)?;
        Ok(())
    }

    fn finish(&self, layer: usize) -> Result<LayerDrift> {
        let n = self.n.max(1) as f64;
        let cka = match (&self.xx, &self.yy, &self.xy, &self.sx, &self.sy) {
            (Some(xx), Some(yy), Some(xy), Some(sx), Some(sy)) => {
                let outer = |a: &Tensor, b: &Tensor| -> Result<Tensor> {
                    Ok(a.unsqueeze(1)?
                        .matmul(&b.unsqueeze(0)?)?
                        .affine(1.0 / n, 0.0)?)
                };
                let frob2 =
                    |t: Tensor| -> Result<f64> { Ok(t.sqr()?.sum_all()?.to_scalar::<f64>()?) };
                let cxx = frob2((xx - outer(sx, sx)?)?)?;
                let cyy = frob2((yy - outer(sy, sy)?)?)?;
                let cxy = frob2((xy - outer(sx, sy)?)?)?;
                if cxx > 0.0 && cyy > 0.0 {
                    Some(cxy / (cxx.sqrt() * cyy.sqrt()))
                } else {
                    None
                }
            }
            _ => None,
        };
        Ok(LayerDrift {
            hook: HookPoint::ResidPost(layer).to_string(),
            layer,
            n_tokens: self.n,
            mean_cosine_distance: self.cos_sum / n,
            max_cosine_distance: self.cos_max,
            mean_relative_l2: if self.rel_n > 0 {
                self.rel_sum / self.rel_n as f64
            } else {
                0.0
            },
            linear_cka: cka,
        })
    }
}

fn decode(model: &Model, ids: &[u32]) -> String {
    model
        .tokenizer
        .as_ref()
        .and_then(|t| t.decode(ids).ok())
        .unwrap_or_else(|| format!("{ids:?}"))
}

fn last_chars(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n {
        s.to_string()
    } else {
        format!("…{}", c[c.len() - n..].iter().collect::<String>())
    }
}

fn first_chars(s: &str, n: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= n {
        s.to_string()
    } else {
        format!("{}…", c[..n].iter().collect::<String>())
    }
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_indices(v: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    let k = k.min(v.len());
    if k == 0 {
        return Vec::new();
    }
    let cmp = |a: &usize, b: &usize| v[*b].total_cmp(&v[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

fn predictions(model: &Model, logp: &Tensor, k: usize) -> Result<Vec<Prediction>> {
    let p: Vec<f64> = logp.exp()?.to_vec1::<f64>()?;
    Ok(top_indices(&p, k)
        .into_iter()
        .map(|i| Prediction {
            id: i as u32,
            token: decode(model, &[i as u32]),
            prob: p[i],
        })
        .collect())
}

/// Compare the two models on a corpus: per-position KL(before ‖ after) of the next-token
/// distributions, drift and linear CKA of every block's output over all real tokens, and the
/// activation-difference lens over each text's first `lens_tokens` tokens.
///
/// Both models read the model before's token ids (texts cut to `max_tokens`).
pub fn corpus_diff(
    before: &Model,
    after: &Model,
    texts: &[&str],
    p: &DiffParams,
) -> Result<CorpusDiff> {
    if texts.is_empty() {
        return Err(MechError::Data("the corpus has no texts".into()));
    }
    if p.max_tokens == 0 {
        return Err(MechError::Invalid("--max-tokens must be at least 1".into()));
    }
    let (mut tokens, agree) = tokenize_pair(before, after, texts, &p.text_format)?;
    let mut n_truncated = 0;
    for t in tokens.iter_mut() {
        if t.len() > p.max_tokens {
            t.truncate(p.max_tokens);
            n_truncated += 1;
        }
    }
    let n_layers = before.info.n_layers;
    let with_kl = before.info.has_lm_head && after.info.has_lm_head;
    let hooks: Vec<HookPoint> = (0..n_layers).map(HookPoint::ResidPost).collect();
    let mut plan = RunPlan::caching(&hooks, Reduce::None);
    plan.want_output = with_kl;
    let pad = before.tokenizer.as_ref().map_or(0, |t| t.pad_id());
    let n = tokens.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (tokens[i].len(), i));
    let mut per_token_kl: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut top: Vec<Context> = Vec::new();
    let mut drift: Vec<DriftAcc> = (0..n_layers).map(|_| DriftAcc::new()).collect();
    let lens_k = if with_kl { p.lens_tokens } else { 0 };
    let mut lens_sum: Vec<Option<Tensor>> = vec![None; n_layers];
    let mut lens_n = 0usize;
    for chunk in order.chunks(p.batch_size.max(1)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| tokens[i].clone()).collect();
        let batch = Batch::from_token_ids(&ids, pad, before.device())?;
        let ob = before.run(&batch, &plan)?;
        let oa = after.run(&batch, &plan)?;
        if let (Some(lb), Some(la)) = (&ob.output, &oa.output) {
            for (r, &ti) in chunk.iter().enumerate() {
                let len = tokens[ti].len();
                let lpb = candle_nn::ops::log_softmax(
                    &lb.get(r)?.narrow(0, 0, len)?.to_dtype(DType::F64)?,
                    D::Minus1,
                )?;
                let lpa = candle_nn::ops::log_softmax(
                    &la.get(r)?.narrow(0, 0, len)?.to_dtype(DType::F64)?,
                    D::Minus1,
                )?;
                // KL ≥ 0; rounding can leave values a few ulps below 0, which are clamped.
                let kl: Vec<f64> = (lpb.exp()? * (&lpb - &lpa)?)?
                    .sum(D::Minus1)?
                    .to_vec1::<f64>()?
                    .into_iter()
                    .map(|v| v.max(0.0))
                    .collect();
                for (pos, &k) in kl.iter().enumerate() {
                    let full = top.len() >= p.top_contexts;
                    if p.top_contexts == 0 || (full && k <= top[top.len() - 1].kl) {
                        continue;
                    }
                    let row = &tokens[ti];
                    let c = Context {
                        text_index: ti,
                        position: pos,
                        prefix: last_chars(&decode(before, &row[..=pos]), 80),
                        next_token: row.get(pos + 1).map(|&id| decode(before, &[id])),
                        kl: k,
                        before_top: predictions(before, &lpb.get(pos)?, p.top_tokens)?,
                        after_top: predictions(after, &lpa.get(pos)?, p.top_tokens)?,
                    };
                    let at = top.partition_point(|o| o.kl >= k);
                    top.insert(at, c);
                    top.truncate(p.top_contexts);
                }
                per_token_kl[ti] = kl;
            }
        }
        for l in 0..n_layers {
            let h = HookPoint::ResidPost(l);
            let missing = || MechError::Invalid(format!("hook {h} was not reached"));
            let cb = ob.cache.get(&h).ok_or_else(missing)?;
            let ca = oa.cache.get(&h).ok_or_else(missing)?;
            let mut xs = Vec::with_capacity(chunk.len());
            let mut ys = Vec::with_capacity(chunk.len());
            for (r, &ti) in chunk.iter().enumerate() {
                let len = tokens[ti].len();
                let x = cb.get(r)?.narrow(0, 0, len)?.to_dtype(DType::F64)?;
                let y = ca.get(r)?.narrow(0, 0, len)?.to_dtype(DType::F64)?;
                if lens_k > 0 {
                    let k = lens_k.min(len);
                    let d = (y.narrow(0, 0, k)? - x.narrow(0, 0, k)?)?.sum(0)?;
                    acc_add(&mut lens_sum[l], d)?;
                    if l == 0 {
                        lens_n += k;
                    }
                }
                xs.push(x);
                ys.push(y);
            }
            drift[l].add(&Tensor::cat(&xs, 0)?, &Tensor::cat(&ys, 0)?)?;
        }
    }
    let drift = drift
        .iter()
        .enumerate()
        .map(|(l, a)| a.finish(l))
        .collect::<Result<Vec<_>>>()?;
    let lens = if lens_k > 0 && lens_n > 0 {
        let means = lens_sum
            .iter()
            .map(|s| match s {
                Some(s) => Ok(s.affine(1.0 / lens_n as f64, 0.0)?),
                None => Err(MechError::Invalid("no lens vectors accumulated".into())),
            })
            .collect::<Result<Vec<_>>>()?;
        let stacked = Tensor::stack(&means, 0)?;
        let norms = stacked.sqr()?.sum(1)?.sqrt()?.to_vec1::<f64>()?;
        let logits = after
            .unembed(&stacked.to_dtype(DType::F32)?)?
            .to_dtype(DType::F64)?
            .to_vec2::<f64>()?;
        let layers = logits
            .iter()
            .enumerate()
            .map(|(l, row)| LensLayer {
                hook: HookPoint::ResidPost(l).to_string(),
                layer: l,
                n_vectors: lens_n,
                norm: norms[l],
                top_tokens: top_indices(row, p.top_tokens)
                    .into_iter()
                    .map(|i| LensToken {
                        id: i as u32,
                        token: decode(after, &[i as u32]),
                        logit: row[i],
                    })
                    .collect(),
            })
            .collect();
        Some(Lens {
            first_tokens: lens_k,
            read_through: "after".into(),
            layers,
        })
    } else {
        None
    };
    let n_tokens: usize = tokens.iter().map(Vec::len).sum();
    let (texts_kl, mean_kl, max_kl) = if with_kl {
        let t: Vec<TextKl> = per_token_kl
            .iter()
            .enumerate()
            .map(|(i, kl)| {
                let (mp, mv) =
                    kl.iter().enumerate().fold(
                        (0, 0.0f64),
                        |(bi, bv), (j, &v)| if v > bv { (j, v) } else { (bi, bv) },
                    );
                TextKl {
                    index: i,
                    n_tokens: kl.len(),
                    mean_kl: kl.iter().sum::<f64>() / kl.len().max(1) as f64,
                    max_kl: mv,
                    max_kl_position: mp,
                    text_start: first_chars(texts[i], 60),
                }
            })
            .collect();
        let total: f64 = per_token_kl.iter().flatten().sum();
        let max = per_token_kl.iter().flatten().copied().fold(0.0, f64::max);
        (t, Some(total / n_tokens.max(1) as f64), Some(max))
    } else {
        (Vec::new(), None, None)
    };
    Ok(CorpusDiff {
        n_texts: n,
        n_tokens,
        n_truncated,
        tokenizers_agree: agree,
        mean_kl,
        max_kl,
        texts: texts_kl,
        top_contexts: top,
        drift,
        lens,
        per_token_kl,
    })
}

/// Probe transfer at one hook: out-of-fold AUROCs of each model's probe on its own and on
/// the other model's activations (same texts, same folds).
#[derive(Debug, Clone, Serialize)]
pub struct TransferHook {
    /// Hook.
    pub hook: String,
    /// Probe fitted on the model before, scored on held-out rows of the model before.
    pub before_on_before: f64,
    /// Probe fitted on the model before, scored on the same held-out rows of the model
    /// after.
    pub before_on_after: f64,
    /// Probe fitted on the model after, on the model after.
    pub after_on_after: f64,
    /// Probe fitted on the model after, on the model before.
    pub after_on_before: f64,
    /// Cosine between the two models' probe directions fitted on all rows.
    pub direction_cosine: f64,
}

/// Probe transfer between the two models.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeTransfer {
    /// Rows.
    pub n: usize,
    /// Positive rows.
    pub n_positive: usize,
    /// How rows were split (shared by both models and all hooks).
    pub split: SplitInfo,
    /// Whether the model after's tokenizer gives the same ids (the model before's are fed to
    /// both).
    pub tokenizers_agree: Option<bool>,
    /// Per hook, in forward order.
    pub hooks: Vec<TransferHook>,
    /// The model before's own probe metrics per hook (as `assay mech probe` reports them:
    /// both methods, control task, random directions).
    pub before_per_hook: Vec<HookMetrics>,
    /// The model after's own probe metrics per hook.
    pub after_per_hook: Vec<HookMetrics>,
}

/// Fit a probe on each model at each hook and apply it to the other model's activations.
///
/// Both models read the same token ids; each model's own metrics come from
/// [`probe::run_probe`]. Transfer AUROCs are out-of-fold: for every fold, a probe is fitted
/// (by [`probe::fit_scorer`], the same fit as `run_probe`) on the training rows of one model
/// and scored on the held-out rows of both, with the folds `run_probe` uses, so
/// `before_on_before` equals the before model's own cross-validated AUROC.
pub fn probe_transfer(
    before: &Model,
    after: &Model,
    examples: &[Example],
    hooks: &[HookPoint],
    params: &ProbeParams,
) -> Result<ProbeTransfer> {
    let y = probe::check_labels(examples)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let (tokens, agree) = tokenize_pair(before, after, &texts, &params.text_format)?;
    let acts_b = probe::extract(before, &tokens, hooks, params.position, params.batch_size)?;
    let acts_a = probe::extract(after, &tokens, hooks, params.position, params.batch_size)?;
    let out_b = probe::run_probe(&acts_b, examples, params)?;
    let out_a = probe::run_probe(&acts_a, examples, params)?;
    // run_probe has checked that groups are on every row or none.
    let groups: Option<Vec<String>> = if examples.iter().all(|e| e.group.is_some()) {
        Some(
            examples
                .iter()
                .map(|e| e.group.clone().unwrap_or_default())
                .collect(),
        )
    } else {
        None
    };
    let (fold, split) = assign_folds(
        &y,
        groups.as_deref(),
        params.folds,
        &mut Rng::new(params.seed, 10),
    )?;
    let n = y.len();
    let mut out = Vec::new();
    for (hook, xb) in &acts_b {
        let xa = acts_a.get(hook).ok_or_else(|| {
            MechError::Invalid(format!("hook {hook} missing for the model after"))
        })?;
        let mut s = [vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]];
        for f in 0..split.folds {
            let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
            if test.is_empty() {
                continue;
            }
            let ytr: Vec<f64> = train.iter().map(|&i| y[i]).collect();
            let pb = probe::fit_scorer(&xb.select(&train), &ytr, params.method, params);
            let pa = probe::fit_scorer(&xa.select(&train), &ytr, params.method, params);
            let (tb, ta): (Matrix, Matrix) = (xb.select(&test), xa.select(&test));
            for (k, sc) in [
                pb.scores(&tb),
                pb.scores(&ta),
                pa.scores(&ta),
                pa.scores(&tb),
            ]
            .into_iter()
            .enumerate()
            {
                for (j, &i) in test.iter().enumerate() {
                    s[k][i] = sc[j];
                }
            }
        }
        let au = |v: &[f64]| auroc(v, &y).unwrap_or(0.5);
        let db = out_b.directions.get(hook).cloned().unwrap_or_default();
        let da = out_a.directions.get(hook).cloned().unwrap_or_default();
        out.push(TransferHook {
            hook: hook.to_string(),
            before_on_before: au(&s[0]),
            before_on_after: au(&s[1]),
            after_on_after: au(&s[2]),
            after_on_before: au(&s[3]),
            direction_cosine: probe::cosine(&db, &da),
        });
    }
    Ok(ProbeTransfer {
        n,
        n_positive: out_b.n_pos,
        split,
        tokenizers_agree: agree,
        hooks: out,
        before_per_hook: out_b.per_hook,
        after_per_hook: out_a.per_hook,
    })
}

/// Everything `diff` measured, as written to `diff.json`.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// `assay.diff/v1`.
    pub schema_version: String,
    /// The model before (reference).
    pub before: ModelInfo,
    /// The model after.
    pub after: ModelInfo,
    /// Seed of the probe-transfer splits, control labels and bootstrap.
    pub seed: u64,
    /// Parameters.
    pub parameters: serde_json::Value,
    /// Data files with digests.
    pub data: Vec<DataRef>,
    /// Weight comparison.
    pub weights: WeightDiff,
    /// Corpus comparison, when `--corpus` was given.
    pub corpus: Option<CorpusDiff>,
    /// Probe transfer, when `--probe-data` was given.
    pub probe_transfer: Option<ProbeTransfer>,
    /// What a reader must keep in mind.
    pub caveats: Vec<String>,
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| MechError::io(p, e))
}

fn write_text(p: &Path, s: &str) -> Result<()> {
    std::fs::write(p, s).map_err(|e| MechError::io(p, e))
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| MechError::Invalid(e.to_string()))
}

fn layer_label(l: Option<usize>) -> String {
    l.map_or("other".into(), |l| l.to_string())
}

/// Run `assay mech diff`: compare, write `diff.json`, charts, `kl_tokens.jsonl` and
/// `evidence.json` into `--out`, and print a summary.
pub fn cmd_diff(a: &DiffArgs, argv: &[String]) -> Result<()> {
    if a.folds < 2 {
        return Err(MechError::Invalid("--folds must be at least 2".into()));
    }
    let text_format = TextFormat {
        chat_template: a.chat_template,
        add_special_tokens: !a.no_special_tokens,
    };
    let params = DiffParams {
        svd_top_k: a.svd_top_k,
        lens_tokens: a.lens_tokens,
        top_tokens: a.top_tokens,
        top_contexts: a.top_contexts,
        max_tokens: a.max_tokens,
        batch_size: a.batch_size,
        text_format: text_format.clone(),
        probe: ProbeParams {
            hooks: a.hooks.clone(),
            position: a.position,
            method: a.method,
            c: a.c,
            folds: a.folds,
            bootstrap: a.bootstrap,
            random_directions: a.random_directions,
            seed: a.seed,
            batch_size: a.batch_size,
            text_format,
            ..ProbeParams::default()
        },
    };
    // Read data first so a malformed file fails before any model is loaded.
    let corpus = match &a.corpus {
        Some(p) => Some((
            probe::read_jsonl(p, false)?,
            file_digest(p, &p.display().to_string())?,
        )),
        None => None,
    };
    let probe_data = match &a.probe_data {
        Some(p) => {
            let ex = probe::read_jsonl(p, true)?;
            probe::check_labels(&ex)?;
            Some((ex, file_digest(p, &p.display().to_string())?))
        }
        None => None,
    };
    let before = Model::load(&a.before)?;
    let after = Model::load(&a.after)?;
    check_compatible(&before.info, &after.info)?;
    let hooks = match &probe_data {
        Some(_) => resolve_hooks(&a.hooks, &before.hook_points())?,
        None => Vec::new(),
    };
    eprintln!(
        "diff: {} vs {} ({}, {} layers)",
        before.info.path, after.info.path, before.info.architecture, before.info.n_layers
    );
    let t0 = std::time::Instant::now();
    let weights = {
        let cb = Checkpoint::read(&a.before)?;
        let ca = Checkpoint::read(&a.after)?;
        weight_diff(&cb, &ca, a.svd_top_k)?
    };
    eprintln!(
        "diff: compared {} tensors in {:.1?}",
        weights.n_tensors,
        t0.elapsed()
    );
    let mut data = Vec::new();
    let mut caveats = vec![
        "weights are compared as stored in the checkpoint files (GGUF dequantised to f32; llama.cpp's q/k row order kept, which changes neither norms nor singular values)".to_string(),
    ];
    let corpus_diff = match &corpus {
        Some((ex, dg)) => {
            let t0 = std::time::Instant::now();
            let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
            let cd = corpus_diff(&before, &after, &texts, &params)?;
            eprintln!(
                "diff: corpus of {} texts ({} tokens) in {:.1?}",
                cd.n_texts,
                cd.n_tokens,
                t0.elapsed()
            );
            data.push(DataRef {
                role: "corpus".into(),
                file: dg.clone(),
                rows: ex.len(),
            });
            if cd.tokenizers_agree == Some(false) {
                caveats.push("the two models' tokenizers give different ids for some corpus texts; both models were fed the model before's ids".into());
            }
            if cd.mean_kl.is_none() {
                caveats.push("encoders have no next-token distribution: KL and the activation-difference lens are not computed".into());
            }
            if cd.n_truncated > 0 {
                caveats.push(format!(
                    "{} corpus texts were cut to {} tokens",
                    cd.n_truncated, a.max_tokens
                ));
            }
            Some(cd)
        }
        None => None,
    };
    let transfer = match &probe_data {
        Some((ex, dg)) => {
            let t0 = std::time::Instant::now();
            let pt = probe_transfer(&before, &after, ex, &hooks, &params.probe)?;
            eprintln!(
                "diff: probe transfer on {} rows at {} hooks in {:.1?}",
                pt.n,
                hooks.len(),
                t0.elapsed()
            );
            data.push(DataRef {
                role: "probe".into(),
                file: dg.clone(),
                rows: ex.len(),
            });
            if pt.tokenizers_agree == Some(false) {
                caveats.push("the two models' tokenizers give different ids for some probe texts; both models were fed the model before's ids".into());
            }
            Some(pt)
        }
        None => None,
    };
    let mut params_json =
        serde_json::to_value(&params).map_err(|e| MechError::Invalid(e.to_string()))?;
    params_json["before"] = json!(a.before.display().to_string());
    params_json["after"] = json!(a.after.display().to_string());
    params_json["hooks_resolved"] = json!(hooks.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let report = DiffReport {
        schema_version: "assay.diff/v1".into(),
        before: before.info.clone(),
        after: after.info.clone(),
        seed: a.seed,
        parameters: params_json.clone(),
        data: data.clone(),
        weights,
        corpus: corpus_diff,
        probe_transfer: transfer,
        caveats: caveats.clone(),
    };
    mkdir(&a.out)?;
    let mut artifacts: Vec<(String, PathBuf)> = Vec::new();
    let mut put = |name: &str, body: &str| -> Result<()> {
        let p = a.out.join(name);
        write_text(&p, body)?;
        artifacts.push((name.to_string(), p));
        Ok(())
    };
    put("diff.json", &(to_json(&report)? + "\n"))?;
    let w = &report.weights;
    put(
        "weight_change_by_layer.svg",
        &crate::svg::bar_chart(
            &format!(
                "Relative weight change ‖ΔW‖/‖W‖ per block — {} tensors changed of {}",
                w.n_changed, w.n_tensors
            ),
            "relative change",
            "block (other = embeddings, final norm, head)",
            &w.layers
                .iter()
                .map(|l| layer_label(l.layer))
                .collect::<Vec<_>>(),
            &w.layers
                .iter()
                .map(|l| l.relative_change.unwrap_or(f64::NAN))
                .collect::<Vec<_>>(),
        ),
    )?;
    if let Some(cd) = &report.corpus {
        let labels: Vec<String> = cd.drift.iter().map(|d| d.layer.to_string()).collect();
        put(
            "drift_by_layer.svg",
            &crate::svg::line_chart(
                &format!("Activation drift per block output ({} tokens)", cd.n_tokens),
                "dissimilarity",
                "block N of blocks.N.hook_resid_post",
                &labels,
                &[
                    crate::svg::Series {
                        label: "mean cosine distance".into(),
                        color: "#d62728".into(),
                        values: cd.drift.iter().map(|d| d.mean_cosine_distance).collect(),
                    },
                    crate::svg::Series {
                        label: "1 − linear CKA".into(),
                        color: "#1f77b4".into(),
                        values: cd
                            .drift
                            .iter()
                            .map(|d| d.linear_cka.map_or(f64::NAN, |c| 1.0 - c))
                            .collect(),
                    },
                ],
            ),
        )?;
        if !cd.texts.is_empty() {
            put(
                "kl_by_text.svg",
                &crate::svg::bar_chart(
                    &format!(
                        "Mean next-token KL(before ‖ after) per text (mean {:.3e} nats)",
                        cd.mean_kl.unwrap_or(0.0)
                    ),
                    "KL (nats)",
                    "corpus row",
                    &cd.texts
                        .iter()
                        .map(|t| t.index.to_string())
                        .collect::<Vec<_>>(),
                    &cd.texts.iter().map(|t| t.mean_kl).collect::<Vec<_>>(),
                ),
            )?;
            let mut lines = String::new();
            for (i, kl) in cd.per_token_kl.iter().enumerate() {
                lines += &(serde_json::to_string(&json!({"index": i, "kl": kl}))
                    .map_err(|e| MechError::Invalid(e.to_string()))?
                    + "\n");
            }
            put("kl_tokens.jsonl", &lines)?;
        }
    }
    if let Some(pt) = &report.probe_transfer {
        let s = |label: &str, color: &str, f: fn(&TransferHook) -> f64| crate::svg::Series {
            label: label.into(),
            color: color.into(),
            values: pt.hooks.iter().map(f).collect(),
        };
        put(
            "probe_transfer.svg",
            &crate::svg::line_chart(
                &format!("Probe transfer, out-of-fold AUROC ({} rows)", pt.n),
                "AUROC",
                "hook",
                &pt.hooks.iter().map(|h| h.hook.clone()).collect::<Vec<_>>(),
                &[
                    s("before probe on before", "#1f77b4", |h| h.before_on_before),
                    s("before probe on after", "#aec7e8", |h| h.before_on_after),
                    s("after probe on after", "#d62728", |h| h.after_on_after),
                    s("after probe on before", "#ff9896", |h| h.after_on_before),
                ],
            ),
        )?;
    }
    let digests = artifacts
        .iter()
        .map(|(n, p)| file_digest(p, n))
        .collect::<Result<Vec<FileDigest>>>()?;
    let results = evidence_results(&report);
    let mut rec = EvidenceRecord::new(
        "training_diff",
        &["weights_read", "activations_read", "checkpoints_history"],
        a.claim.clone(),
        before.info.clone(),
        data,
        a.seed,
        params_json,
        results,
        digests,
        crate::evidence::Reproduction::from_argv(argv, Some(a.seed)),
    )?;
    rec.caveats.extend(caveats);
    let rec = rec.with_compared_model(after.info.clone())?;
    let ev_path = a.out.join("evidence.json");
    rec.write(&ev_path)?;
    print_summary(&report);
    println!(
        "wrote {} and evidence.json into {}",
        artifacts
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        a.out.display()
    );
    Ok(())
}

/// The headline numbers of a report, for the evidence record.
fn evidence_results(r: &DiffReport) -> serde_json::Value {
    let w = &r.weights;
    let largest_layer = w
        .layers
        .iter()
        .max_by(|x, y| rank_key(x.relative_change).total_cmp(&rank_key(y.relative_change)));
    let mut v = json!({
        "weights": {
            "n_tensors": w.n_tensors,
            "n_changed": w.n_changed,
            "relative_change": w.relative_change,
            "largest_tensor": w.tensors.first().map(|t| json!({"name": t.name, "layer": t.layer, "relative_change": t.relative_change})),
            "largest_layer": largest_layer.map(|l| json!({"layer": l.layer, "relative_change": l.relative_change})),
            "per_layer": w.layers.iter().map(|l| json!({"layer": l.layer, "relative_change": l.relative_change})).collect::<Vec<_>>(),
            "svd_top_k": w.svd_top_k,
            "spectra": w.spectra.iter().map(|s| json!({"name": s.name, "effective_rank": s.effective_rank, "stable_rank": s.stable_rank, "sigma_max": s.sigma_max})).collect::<Vec<_>>(),
        },
    });
    if let Some(c) = &r.corpus {
        v["corpus"] = json!({
            "n_texts": c.n_texts,
            "n_tokens": c.n_tokens,
            "mean_kl": c.mean_kl,
            "max_kl": c.max_kl,
            "first_drifting_layer": c.drift.iter().find(|d| d.max_cosine_distance > 0.0 || d.mean_relative_l2 > 0.0).map(|d| d.layer),
            "drift": c.drift.iter().map(|d| json!({"hook": d.hook, "mean_cosine_distance": d.mean_cosine_distance, "linear_cka": d.linear_cka})).collect::<Vec<_>>(),
        });
    }
    if let Some(p) = &r.probe_transfer {
        v["probe_transfer"] = json!({
            "n": p.n,
            "split": p.split,
            "per_hook": p.hooks,
        });
    }
    v
}

fn fmt_rel(r: Option<f64>) -> String {
    r.map_or("from zero".into(), |v| format!("{v:.3e}"))
}

fn print_summary(r: &DiffReport) {
    let w = &r.weights;
    println!(
        "weights: {} of {} tensors changed, overall relative change {}",
        w.n_changed,
        w.n_tensors,
        fmt_rel(w.relative_change)
    );
    println!(
        "{:<48} {:>12} {:>12}",
        "most changed tensors", "rel. change", "‖ΔW‖"
    );
    for t in w.tensors.iter().take(10) {
        println!(
            "{:<48} {:>12} {:>12.4e}",
            t.name,
            fmt_rel(t.relative_change),
            t.norm_delta
        );
    }
    for s in &w.spectra {
        println!(
            "spectrum {:<39} effective rank {:>8.3}  stable rank {:>8.3}  σmax {:.4e} ({})",
            s.name, s.effective_rank, s.stable_rank, s.sigma_max, s.method
        );
    }
    if let Some(c) = &r.corpus {
        if let (Some(m), Some(x)) = (c.mean_kl, c.max_kl) {
            println!(
                "corpus: {} texts, {} tokens, mean KL {m:.4e} nats, max {x:.4e}",
                c.n_texts, c.n_tokens
            );
        }
        println!(
            "{:<32} {:>14} {:>12} {:>10}",
            "hook", "cos distance", "rel. L2", "CKA"
        );
        for d in &c.drift {
            println!(
                "{:<32} {:>14.4e} {:>12.4e} {:>10}",
                d.hook,
                d.mean_cosine_distance,
                d.mean_relative_l2,
                d.linear_cka.map_or("-".into(), |v| format!("{v:.6}"))
            );
        }
    }
    if let Some(p) = &r.probe_transfer {
        println!(
            "{:<32} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "probe transfer (AUROC)", "B→B", "B→A", "A→A", "A→B", "cos"
        );
        for h in &p.hooks {
            println!(
                "{:<32} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                h.hook,
                h.before_on_before,
                h.before_on_after,
                h.after_on_after,
                h.after_on_before,
                h.direction_cosine
            );
        }
        println!("(B = model before, A = model after; X→Y = probe fitted on X, scored on Y)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_of_known_spectra() {
        assert!((effective_rank(&[3.0, 0.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!((effective_rank(&[1.0, 1.0, 1.0, 1.0]) - 4.0).abs() < 1e-12);
        assert_eq!(effective_rank(&[0.0, 0.0]), 0.0);
        assert!((stable_rank(&[2.0, 1.0]) - 1.25).abs() < 1e-12);
        assert_eq!(top_indices(&[0.1, 0.5, 0.5, 0.2], 3), vec![1, 2, 3]);
    }

    #[test]
    fn singular_values_of_rank_one_and_tall_matrices() {
        let dev = candle_core::Device::Cpu;
        // u vᵀ with ‖u‖ = 5, ‖v‖ = 2: one singular value 10.
        let u = [3.0f64, 4.0, 0.0];
        let v = [0.0f64, 2.0];
        let m: Vec<f64> = u
            .iter()
            .flat_map(|a| v.iter().map(move |b| a * b))
            .collect();
        let t = Tensor::from_vec(m, (3, 2), &dev).unwrap();
        let (method, sv) = singular_values(&t).unwrap();
        assert_eq!(method, "svd");
        assert!(
            (sv[0] - 10.0).abs() < 1e-12 && sv[1].abs() < 1e-12,
            "{sv:?}"
        );
        // A 20 × 2 matrix goes through the Gram route and agrees with the SVD.
        let mut rng = Rng::new(1, 0);
        let data: Vec<f64> = (0..40).map(|_| rng.normal()).collect();
        let tall = Tensor::from_vec(data.clone(), (20, 2), &dev).unwrap();
        let (method, sv) = singular_values(&tall).unwrap();
        assert_eq!(method, "gram_eigen");
        let direct = nalgebra::DMatrix::from_row_slice(20, 2, &data).singular_values();
        let mut d: Vec<f64> = direct.iter().copied().collect();
        d.sort_by(|a, b| b.total_cmp(a));
        for (a, b) in sv.iter().zip(&d) {
            assert!((a - b).abs() < 1e-9, "{sv:?} vs {d:?}");
        }
    }
}
