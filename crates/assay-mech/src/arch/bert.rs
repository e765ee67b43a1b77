//! BERT encoder (post-LayerNorm) with hook points.

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use crate::arch::{attention_bias, linear};
use crate::error::{MechError, Result};
use crate::hooks::{HookCtx, HookPoint};
use crate::weights::Weights;

/// Shape and numerics of a BERT encoder (from `config.json`).
///
/// Why: sentence encoders such as all-MiniLM are what many agent stacks embed with, and the
/// only small real safetensors model available offline here is one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BertConfig {
    /// Hidden width.
    pub d_model: usize,
    /// Number of layers.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// MLP hidden width (`intermediate_size`).
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token-type vocabulary.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// `gelu` (exact, erf) or `gelu_new`/`gelu_pytorch_tanh` (tanh approximation) or `relu`.
    pub hidden_act: String,
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

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln1: Ln,
    inter: Linear,
    out: Linear,
    ln2: Ln,
}

/// A loaded BERT encoder. Its output is the final hidden states, not logits.
pub struct Bert {
    /// Configuration.
    pub cfg: BertConfig,
    word: Tensor,
    pos: Tensor,
    token_type: Tensor,
    ln_emb: Ln,
    layers: Vec<Layer>,
}

impl Bert {
    /// Build from named weights (bare or `bert.`-prefixed names).
    pub(crate) fn new(cfg: BertConfig, w: &Weights) -> Result<Self> {
        let d = cfg.d_model;
        if !d.is_multiple_of(cfg.n_heads) {
            return Err(MechError::Invalid(format!(
                "hidden_size {d} is not a multiple of num_attention_heads {}",
                cfg.n_heads
            )));
        }
        if !matches!(
            cfg.hidden_act.as_str(),
            "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu"
        ) {
            return Err(MechError::Invalid(format!(
                "unsupported hidden_act `{}`",
                cfg.hidden_act
            )));
        }
        let word = w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, d])?;
        let pos = w.get(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, d],
        )?;
        let token_type = w.get(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, d],
        )?;
        let ln_emb = Ln::load(w, "embeddings.LayerNorm", d)?;
        let mut layers = Vec::new();
        for l in 0..cfg.n_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                q: linear(w, &format!("{p}.attention.self.query"), d, d, true)?,
                k: linear(w, &format!("{p}.attention.self.key"), d, d, true)?,
                v: linear(w, &format!("{p}.attention.self.value"), d, d, true)?,
                o: linear(w, &format!("{p}.attention.output.dense"), d, d, true)?,
                ln1: Ln::load(w, &format!("{p}.attention.output.LayerNorm"), d)?,
                inter: linear(w, &format!("{p}.intermediate.dense"), cfg.d_mlp, d, true)?,
                out: linear(w, &format!("{p}.output.dense"), d, cfg.d_mlp, true)?,
                ln2: Ln::load(w, &format!("{p}.output.LayerNorm"), d)?,
            });
        }
        w.finish()?;
        Ok(Bert {
            cfg,
            word,
            pos,
            token_type,
            ln_emb,
            layers,
        })
    }

    /// Every hook point this model exposes (no `ln_final`: BERT normalises inside blocks).
    pub fn hook_points(&self) -> Vec<HookPoint> {
        crate::arch::hook_points(
            &[HookPoint::Embed, HookPoint::PosEmbed],
            self.cfg.n_layers,
            false,
            false,
        )
    }

    /// Run the encoder over right-padded token ids `[batch, seq]` (token type 0 throughout).
    pub(crate) fn forward(
        &self,
        ids: &Tensor,
        lengths: &[usize],
        ctx: &mut HookCtx,
        stop_after: Option<usize>,
    ) -> Result<Option<Tensor>> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        if t > cfg.max_position_embeddings {
            return Err(MechError::Invalid(format!(
                "sequence of {t} tokens exceeds max_position_embeddings {}",
                cfg.max_position_embeddings
            )));
        }
        let device = ids.device();
        let eps = cfg.layer_norm_eps as f32;
        let d = cfg.d_model;
        let nh = cfg.n_heads;
        let hd = d / nh;
        let mask = attention_bias(lengths, t, false, None, device)?;
        let tok = self
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let tok = ctx.at(HookPoint::Embed, tok)?;
        let pos = self
            .pos
            .narrow(0, 0, t)?
            .unsqueeze(0)?
            .broadcast_as((b, t, d))?
            .contiguous()?;
        let pos = ctx.at(HookPoint::PosEmbed, pos)?;
        let tt = self.token_type.narrow(0, 0, 1)?.unsqueeze(0)?;
        let x = (tok + pos)?.broadcast_add(&tt)?;
        let mut x = self.ln_emb.forward(&x, eps)?;
        let scale = 1.0 / (hd as f64).sqrt();
        for (l, ly) in self.layers.iter().enumerate() {
            x = ctx.at(HookPoint::ResidPre(l), x)?;
            let heads = |lin: &Linear| -> Result<Tensor> {
                Ok(lin
                    .forward(&x)?
                    .reshape((b, t, nh, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let (q, k, v) = (heads(&ly.q)?, heads(&ly.k)?, heads(&ly.v)?);
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let att = ctx.at(HookPoint::AttnPattern(l), att)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
            let attn_out = ctx.at(HookPoint::AttnOut(l), ly.o.forward(&y)?)?;
            x = ctx.at(
                HookPoint::ResidMid(l),
                ly.ln1.forward(&(x + attn_out)?, eps)?,
            )?;
            let h = ly.inter.forward(&x)?;
            let h = match cfg.hidden_act.as_str() {
                "gelu" => h.gelu_erf()?,
                "relu" => h.relu()?,
                _ => h.gelu()?,
            };
            let mlp_out = ctx.at(HookPoint::MlpOut(l), ly.out.forward(&h)?)?;
            x = ctx.at(
                HookPoint::ResidPost(l),
                ly.ln2.forward(&(x + mlp_out)?, eps)?,
            )?;
            if stop_after == Some(l) {
                return Ok(None);
            }
        }
        if stop_after.is_some() {
            return Ok(None);
        }
        Ok(Some(x))
    }
}
