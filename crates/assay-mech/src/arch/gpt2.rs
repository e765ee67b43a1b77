//! GPT-2 decoder with hook points.

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use crate::arch::{Resume, attention_bias, last_rows};
use crate::error::{MechError, Result};
use crate::hooks::{HookCtx, HookPoint};
use crate::weights::Weights;

/// Shape and numerics of a GPT-2 model (from `config.json`).
///
/// Why: GPT-2 is the architecture most interpretability results are stated on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gpt2Config {
    /// Residual stream width (`n_embd`).
    pub d_model: usize,
    /// Number of blocks (`n_layer`).
    pub n_layers: usize,
    /// Attention heads (`n_head`).
    pub n_heads: usize,
    /// MLP hidden width (`n_inner`, default 4 × d_model).
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned positions (`n_positions`).
    pub n_positions: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

struct Ln {
    w: Tensor,
    b: Tensor,
}

impl Ln {
    fn load(w: &Weights, name: &str, d: usize) -> Result<Self> {
        Ok(Ln {
            w: w.get(&format!("{name}.weight"), &[d])?,
            b: w.get(&format!("{name}.bias"), &[d])?,
        })
    }
    fn forward(&self, x: &Tensor, eps: f32) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &self.w, &self.b, eps)?)
    }
}

struct Block {
    ln1: Ln,
    c_attn: Linear,
    c_proj: Linear,
    ln2: Ln,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// A loaded GPT-2 model.
pub struct Gpt2 {
    /// Configuration.
    pub cfg: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: Ln,
    lm_head: Linear,
}

/// GPT-2 stores weights as `Conv1D`, i.e. `[in, out]`; transpose into a `Linear`.
fn conv1d(w: &Weights, name: &str, inp: usize, out: usize) -> Result<Linear> {
    let weight = w
        .get(&format!("{name}.weight"), &[inp, out])?
        .t()?
        .contiguous()?;
    let bias = w.get(&format!("{name}.bias"), &[out])?;
    Ok(Linear::new(weight, Some(bias)))
}

impl Gpt2 {
    /// Build from named weights (bare or `transformer.`-prefixed names).
    pub(crate) fn new(cfg: Gpt2Config, w: &Weights) -> Result<Self> {
        let d = cfg.d_model;
        if !d.is_multiple_of(cfg.n_heads) {
            return Err(MechError::Invalid(format!(
                "n_embd {d} is not a multiple of n_head {}",
                cfg.n_heads
            )));
        }
        let wte = w.get("wte.weight", &[cfg.vocab_size, d])?;
        let wpe = w.get("wpe.weight", &[cfg.n_positions, d])?;
        let mut blocks = Vec::new();
        for l in 0..cfg.n_layers {
            let p = format!("h.{l}");
            blocks.push(Block {
                ln1: Ln::load(w, &format!("{p}.ln_1"), d)?,
                c_attn: conv1d(w, &format!("{p}.attn.c_attn"), d, 3 * d)?,
                c_proj: conv1d(w, &format!("{p}.attn.c_proj"), d, d)?,
                ln2: Ln::load(w, &format!("{p}.ln_2"), d)?,
                c_fc: conv1d(w, &format!("{p}.mlp.c_fc"), d, cfg.d_mlp)?,
                mlp_proj: conv1d(w, &format!("{p}.mlp.c_proj"), cfg.d_mlp, d)?,
            });
        }
        let ln_f = Ln::load(w, "ln_f", d)?;
        w.finish()?;
        let lm_head = Linear::new(wte.clone(), None);
        Ok(Gpt2 {
            cfg,
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
        })
    }

    /// Every hook point this model exposes.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        crate::arch::hook_points(
            &[HookPoint::Embed, HookPoint::PosEmbed],
            self.cfg.n_layers,
            true,
            true,
        )
    }

    /// Final LayerNorm then the (tied) unembedding, on vectors `[..., d_model]`.
    pub(crate) fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.ln_f.forward(x, self.cfg.layer_norm_eps as f32)?;
        Ok(self.lm_head.forward(&x)?)
    }

    /// Run the model over right-padded token ids `[batch, seq]`.
    pub(crate) fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        ctx: &mut HookCtx,
        stop_after: Option<usize>,
    ) -> Result<Option<Tensor>> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        if t > cfg.n_positions {
            return Err(MechError::Invalid(format!(
                "sequence of {t} tokens exceeds n_positions {}",
                cfg.n_positions
            )));
        }
        let tok = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, cfg.d_model))?;
        let tok = ctx.at(HookPoint::Embed, tok)?;
        let pos = self
            .wpe
            .narrow(0, 0, t)?
            .unsqueeze(0)?
            .broadcast_as((b, t, cfg.d_model))?
            .contiguous()?;
        let pos = ctx.at(HookPoint::PosEmbed, pos)?;
        self.forward_from((tok + pos)?, Resume::START, lengths, ctx, stop_after, false)
    }

    /// Run the rest of the model from residual stream `x` `[batch, seq, d_model]` at `from`;
    /// with `last_only` the logits are `[batch, vocab]` at each row's last position.
    pub(crate) fn forward_from(
        &self,
        x: Tensor,
        from: Resume,
        lengths: &[usize],
        ctx: &mut HookCtx,
        stop_after: Option<usize>,
        last_only: bool,
    ) -> Result<Option<Tensor>> {
        let (b, t, _) = x.dims3()?;
        let cfg = &self.cfg;
        if t > cfg.n_positions {
            return Err(MechError::Invalid(format!(
                "sequence of {t} tokens exceeds n_positions {}",
                cfg.n_positions
            )));
        }
        let device = x.device().clone();
        let eps = cfg.layer_norm_eps as f32;
        let nh = cfg.n_heads;
        let hd = cfg.d_model / nh;
        let mask = attention_bias(lengths, t, true, None, &device)?;
        let mut x = x;
        let scale = 1.0 / (hd as f64).sqrt();
        for (l, blk) in self.blocks.iter().enumerate().skip(from.layer) {
            if from.visits_resid_pre(l) {
                x = ctx.at(HookPoint::ResidPre(l), x)?;
            }
            if from.runs_attention(l) {
                let h = blk.ln1.forward(&x, eps)?;
                let qkv = blk.c_attn.forward(&h)?;
                let split = |i: usize| -> Result<Tensor> {
                    Ok(qkv
                        .narrow(2, i * cfg.d_model, cfg.d_model)?
                        .reshape((b, t, nh, hd))?
                        .transpose(1, 2)?
                        .contiguous()?)
                };
                let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                let att = ctx.at(HookPoint::AttnPattern(l), att)?;
                let z = ctx.at(HookPoint::AttnZ(l), att.matmul(&v)?.transpose(1, 2)?)?;
                let y = z.reshape((b, t, cfg.d_model))?;
                let attn_out = ctx.at(HookPoint::AttnOut(l), blk.c_proj.forward(&y)?)?;
                x = ctx.at(HookPoint::ResidMid(l), (x + attn_out)?)?;
            }
            let h = blk.ln2.forward(&x, eps)?;
            let m = blk.c_fc.forward(&h)?.gelu()?;
            let mlp_out = ctx.at(HookPoint::MlpOut(l), blk.mlp_proj.forward(&m)?)?;
            x = ctx.at(HookPoint::ResidPost(l), (x + mlp_out)?)?;
            if stop_after == Some(l) {
                return Ok(None);
            }
        }
        let x = self.ln_f.forward(&x, eps)?;
        let x = ctx.at(HookPoint::LnFinal, x)?;
        if stop_after.is_some() {
            return Ok(None);
        }
        let x = if last_only {
            last_rows(&x, lengths)?
        } else {
            x
        };
        Ok(Some(self.lm_head.forward(&x)?))
    }
}
