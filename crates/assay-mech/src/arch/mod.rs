//! Forward-pass code for each supported architecture, written on candle ops.

pub mod bert;
pub(crate) mod fused;
pub mod gpt2;
pub mod llama;

use candle_core::{Device, Tensor};
use candle_nn::Linear;

use crate::error::Result;
use crate::hooks::HookPoint;
use crate::weights::Weights;

/// Additive attention bias `[batch, 1, seq, seq]`: 0 where a query may attend a key, `-inf`
/// where the key is padding, or (if `causal`) in the future, or (with a sliding `window`) `window`
/// or more positions behind the query, so each query sees itself and the `window − 1` before it.
pub(crate) fn attention_bias(
    lengths: &[usize],
    t: usize,
    causal: bool,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let b = lengths.len();
    let mut m = vec![0f32; b * t * t];
    for (r, &len) in lengths.iter().enumerate() {
        for q in 0..t {
            for k in 0..t {
                let hidden =
                    k >= len || (causal && k > q) || window.is_some_and(|w| k <= q && q - k >= w);
                if hidden {
                    m[(r * t + q) * t + k] = f32::NEG_INFINITY;
                }
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, t, t), device)?)
}

/// Every hook point of a model with `n_layers` blocks, in forward order: the embedding hooks,
/// each block's hooks (with `attn.hook_z` when the attention exposes per-head outputs), and
/// `ln_final.hook_normalized` for models with a final norm before an unembedding.
pub(crate) fn hook_points(
    embeds: &[HookPoint],
    n_layers: usize,
    attn_z: bool,
    ln_final: bool,
) -> Vec<HookPoint> {
    let mut v = embeds.to_vec();
    for l in 0..n_layers {
        v.extend([HookPoint::ResidPre(l), HookPoint::AttnPattern(l)]);
        if attn_z {
            v.push(HookPoint::AttnZ(l));
        }
        v.extend([
            HookPoint::AttnOut(l),
            HookPoint::ResidMid(l),
            HookPoint::MlpOut(l),
            HookPoint::ResidPost(l),
        ]);
    }
    if ln_final {
        v.push(HookPoint::LnFinal);
    }
    v
}

/// A linear layer `weight: [out, inp]`, `bias: [out]` under `{name}.weight` / `{name}.bias`.
pub(crate) fn linear(
    w: &Weights,
    name: &str,
    out: usize,
    inp: usize,
    bias: bool,
) -> Result<Linear> {
    let weight = w.get(&format!("{name}.weight"), &[out, inp])?;
    let bias = if bias {
        Some(w.get(&format!("{name}.bias"), &[out])?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// Expand `[b, kv_heads, t, hd]` to `[b, kv_heads * rep, t, hd]` for grouped-query attention;
/// query head `h` uses key/value head `h / rep`.
pub(crate) fn repeat_kv(x: Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x);
    }
    let (b, kv, t, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, kv, rep, t, hd))?
        .reshape((b, kv * rep, t, hd))?)
}

/// Where a decoder forward pass starts: the normal start, or part-way through with a residual
/// stream supplied by the caller (see [`crate::Model::run_from`]).
///
/// Why: activation patching at block `l` must not recompute blocks before `l`; a resumed pass
/// runs exactly the code a full pass would run from that point on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The first block (partly) run; `n_layers` means only the final norm and unembedding.
    pub layer: usize,
    /// Where inside that block to start.
    pub stage: ResumeStage,
}

/// The part of block [`Resume::layer`] a resumed pass starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumeStage {
    /// Before `hook_resid_pre` (the hook is visited): a normal pass from this block.
    Pre,
    /// After `hook_resid_pre`: the given tensor is the residual entering the block.
    Attn,
    /// After `hook_resid_mid`: the given tensor is the residual between attention and MLP.
    Mlp,
}

impl Resume {
    /// The start of a full forward pass (after the embeddings).
    pub(crate) const START: Resume = Resume {
        layer: 0,
        stage: ResumeStage::Pre,
    };

    /// Whether block `l` starts with its `hook_resid_pre` hook.
    pub(crate) fn visits_resid_pre(&self, l: usize) -> bool {
        l != self.layer || self.stage == ResumeStage::Pre
    }

    /// Whether block `l` runs its attention sublayer.
    pub(crate) fn runs_attention(&self, l: usize) -> bool {
        l != self.layer || self.stage != ResumeStage::Mlp
    }
}

/// Each row's last real position of `[batch, seq, d]`, as `[batch, d]`.
///
/// Why: a metric read at the last token needs the unembedding only there, which for a large
/// vocabulary is a sizeable part of the cost of a short pass.
pub(crate) fn last_rows(x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let idx: Vec<u32> = lengths
        .iter()
        .enumerate()
        .map(|(r, &len)| (r * t + len.max(1) - 1) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, b, x.device())?;
    Ok(x.reshape((b * t, d))?.index_select(&idx, 0)?)
}
