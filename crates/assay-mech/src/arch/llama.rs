//! Llama-family decoder (Llama, Mistral, Qwen2, SmolLM2) with hook points.

use candle_core::{Device, Module, Tensor};
use candle_nn::Linear;

use crate::arch::fused::{PackedCausalAttention, PackedSwiGlu};
use crate::arch::{Resume, attention_bias, last_rows, linear, repeat_kv};
use crate::error::{MechError, Result};
use crate::hooks::{HookCtx, HookPoint};
use crate::weights::Weights;

/// Shape and numerics of a Llama-family model.
///
/// Why: one struct covers the HF `config.json` and the GGUF metadata, so both loaders feed
/// the same forward code.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LlamaConfig {
    /// Residual stream width.
    pub d_model: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// MLP hidden width.
    pub d_mlp: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary frequency scaling, if the config asks for it.
    pub rope_scaling: Option<RopeScaling>,
    /// Per block: the sliding attention window (each query sees itself and the `w − 1`
    /// positions before it), or `None` for full causal attention.
    pub sliding_window: Vec<Option<usize>>,
    /// The context length the rotary scaling is relative to (`max_position_embeddings`).
    pub max_position_embeddings: usize,
    /// Whether the unembedding reuses the token embedding.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections have biases (Qwen2).
    pub qkv_bias: bool,
}

/// Rotary scaling schemes of the Hugging Face configs (`rope_scaling` or, in newer files,
/// `rope_parameters`, by `rope_type`).
///
/// Why: long-context checkpoints change the rotary frequencies; getting them wrong leaves
/// short prompts almost right and long ones wrong, which no shape check would catch.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "rope_type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Llama 3.x: frequencies below a band divided by `factor`, smooth in between.
    Llama3(Llama3RopeScaling),
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// Divisor of every frequency.
        factor: f64,
    },
    /// Dynamic NTK: beyond the original context the rotary base grows with the sequence.
    Dynamic {
        /// Scaling factor.
        factor: f64,
        /// Context length below which nothing changes.
        original_max_position_embeddings: usize,
    },
    /// YaRN: per-frequency blend of interpolation and extrapolation plus a logit scale.
    Yarn {
        /// Scaling factor.
        factor: f64,
        /// Context length the model was trained with.
        original_max_position_embeddings: usize,
        /// Rotations at which extrapolation fully applies.
        beta_fast: f64,
        /// Rotations below which interpolation fully applies.
        beta_slow: f64,
        /// Multiplier applied to cos and sin.
        attention_factor: f64,
        /// Whether the correction range is rounded to whole dimensions.
        truncate: bool,
    },
}

/// Llama-3 rotary scaling parameters (`rope_type == "llama3"`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Llama3RopeScaling {
    /// Overall scaling factor.
    pub factor: f64,
    /// Low-frequency factor.
    pub low_freq_factor: f64,
    /// High-frequency factor.
    pub high_freq_factor: f64,
    /// Context length the model was trained with.
    pub original_max_position_embeddings: usize,
}

/// One decoder block. q/k/v and gate/up are stored packed (rows stacked), so each pair or
/// triple of projections is one matrix product.
struct Block {
    ln1: Tensor,
    /// `[q | k | v]` rows.
    qkv: Linear,
    o: Linear,
    ln2: Tensor,
    /// `[gate | up]` rows.
    gate_up: Linear,
    down: Linear,
}

/// Stack the rows of several projections into one (biases too, when present).
fn packed(parts: &[Linear]) -> Result<Linear> {
    let weights: Vec<&Tensor> = parts.iter().map(|p| p.weight()).collect();
    let weight = Tensor::cat(&weights, 0)?;
    let bias = match parts.iter().map(|p| p.bias()).collect::<Option<Vec<_>>>() {
        Some(b) => Some(Tensor::cat(&b, 0)?),
        None => None,
    };
    Ok(Linear::new(weight, bias))
}

/// A loaded Llama-family model.
pub struct Llama {
    /// Configuration.
    pub cfg: LlamaConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    ln_f: Tensor,
    lm_head: Linear,
    /// Whether the fused CPU kernels may be used (see [`crate::arch::fused`]).
    pub(crate) fused: bool,
}

/// Maps (block index, part) to a tensor name prefix.
type BlockNameFn = Box<dyn Fn(usize, &str) -> String>;

/// Tensor names of one checkpoint layout.
pub(crate) struct LlamaNames {
    pub embed: String,
    pub ln_f: String,
    pub lm_head: String,
    pub block: BlockNameFn,
}

impl LlamaNames {
    /// Hugging Face `transformers` names.
    pub fn hf() -> Self {
        LlamaNames {
            embed: "model.embed_tokens.weight".into(),
            ln_f: "model.norm.weight".into(),
            lm_head: "lm_head.weight".into(),
            block: Box::new(|l, part| {
                let p = match part {
                    "ln1" => "input_layernorm",
                    "ln2" => "post_attention_layernorm",
                    "q" => "self_attn.q_proj",
                    "k" => "self_attn.k_proj",
                    "v" => "self_attn.v_proj",
                    "o" => "self_attn.o_proj",
                    "gate" => "mlp.gate_proj",
                    "up" => "mlp.up_proj",
                    "down" => "mlp.down_proj",
                    _ => unreachable!(),
                };
                format!("model.layers.{l}.{p}")
            }),
        }
    }

    /// GGUF (llama.cpp) names.
    pub fn gguf() -> Self {
        LlamaNames {
            embed: "token_embd.weight".into(),
            ln_f: "output_norm.weight".into(),
            lm_head: "output.weight".into(),
            block: Box::new(|l, part| {
                let p = match part {
                    "ln1" => "attn_norm",
                    "ln2" => "ffn_norm",
                    "q" => "attn_q",
                    "k" => "attn_k",
                    "v" => "attn_v",
                    "o" => "attn_output",
                    "gate" => "ffn_gate",
                    "up" => "ffn_up",
                    "down" => "ffn_down",
                    _ => unreachable!(),
                };
                format!("blk.{l}.{p}")
            }),
        }
    }
}

impl Llama {
    /// Build from named weights. q/k weights must be in the Hugging Face (non-interleaved
    /// rotary) row order; the GGUF loader un-permutes them before calling this.
    pub(crate) fn new(cfg: LlamaConfig, w: &Weights, names: &LlamaNames) -> Result<Self> {
        let d = cfg.d_model;
        let hd = cfg.head_dim;
        let q_out = cfg.n_heads * hd;
        let kv_out = cfg.n_kv_heads * hd;
        let embed = w.get(&names.embed, &[cfg.vocab_size, d])?;
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        for l in 0..cfg.n_layers {
            let n = |p: &str| (names.block)(l, p);
            let lin = |p: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
                linear(w, &n(p), out, inp, bias)
            };
            blocks.push(Block {
                ln1: w.get(&format!("{}.weight", n("ln1")), &[d])?,
                qkv: packed(&[
                    lin("q", q_out, d, cfg.qkv_bias)?,
                    lin("k", kv_out, d, cfg.qkv_bias)?,
                    lin("v", kv_out, d, cfg.qkv_bias)?,
                ])?,
                o: lin("o", d, q_out, false)?,
                ln2: w.get(&format!("{}.weight", n("ln2")), &[d])?,
                gate_up: packed(&[
                    lin("gate", cfg.d_mlp, d, false)?,
                    lin("up", cfg.d_mlp, d, false)?,
                ])?,
                down: lin("down", d, cfg.d_mlp, false)?,
            });
        }
        let ln_f = w.get(&names.ln_f, &[d])?;
        let lm_head = if cfg.tie_word_embeddings || !w.contains(&names.lm_head) {
            Linear::new(embed.clone(), None)
        } else {
            Linear::new(w.get(&names.lm_head, &[cfg.vocab_size, d])?, None)
        };
        w.finish()?;
        Ok(Llama {
            cfg,
            embed,
            blocks,
            ln_f,
            lm_head,
            fused: true,
        })
    }

    /// Every hook point this model exposes.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        crate::arch::hook_points(&[HookPoint::Embed], self.cfg.n_layers, true, true)
    }

    /// Final RMSNorm then the unembedding, on vectors `[..., d_model]`.
    pub(crate) fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let x = candle_nn::ops::rms_norm(x, &self.ln_f, self.cfg.rms_norm_eps as f32)?;
        Ok(self.lm_head.forward(&x)?)
    }

    fn rope_tables(&self, t: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim;
        let base = self.cfg.rope_theta;
        let freqs = |base: f64| -> Vec<f64> {
            (0..hd)
                .step_by(2)
                .map(|i| 1.0 / base.powf(i as f64 / hd as f64))
                .collect()
        };
        let mut inv = freqs(base);
        let mut attention_factor = 1.0f64;
        match &self.cfg.rope_scaling {
            None => {}
            Some(RopeScaling::Llama3(s)) => {
                let low_wl = s.original_max_position_embeddings as f64 / s.low_freq_factor;
                let high_wl = s.original_max_position_embeddings as f64 / s.high_freq_factor;
                for f in inv.iter_mut() {
                    let wl = 2.0 * std::f64::consts::PI / *f;
                    if wl > low_wl {
                        *f /= s.factor;
                    } else if wl >= high_wl {
                        let smooth = (s.original_max_position_embeddings as f64 / wl
                            - s.low_freq_factor)
                            / (s.high_freq_factor - s.low_freq_factor);
                        *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
                    }
                }
            }
            Some(RopeScaling::Linear { factor }) => inv.iter_mut().for_each(|f| *f /= factor),
            Some(RopeScaling::Dynamic {
                factor,
                original_max_position_embeddings: orig,
            }) if t > *orig => {
                let d = hd as f64;
                let grown = base
                    * ((factor * t as f64 / *orig as f64) - (factor - 1.0)).powf(d / (d - 2.0));
                inv = freqs(grown);
            }
            Some(RopeScaling::Dynamic { .. }) => {}
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: orig,
                beta_fast,
                beta_slow,
                attention_factor: af,
                truncate,
            }) => {
                let d = hd as f64;
                let correction_dim = |rot: f64| {
                    d * (*orig as f64 / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln())
                };
                let (mut low, mut high) = (correction_dim(*beta_fast), correction_dim(*beta_slow));
                if *truncate {
                    low = low.floor();
                    high = high.ceil();
                }
                let low = low.max(0.0);
                let mut high = high.min(d - 1.0);
                if low == high {
                    high += 0.001;
                }
                for (i, f) in inv.iter_mut().enumerate() {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    let extrapolation = 1.0 - ramp;
                    *f = (*f / factor) * (1.0 - extrapolation) + *f * extrapolation;
                }
                attention_factor = *af;
            }
        }
        // Computed in f32 like the reference implementations, so positions round the same.
        let inv32: Vec<f32> = inv.iter().map(|&x| x as f32).collect();
        let half = inv32.len();
        let theta = Tensor::from_vec(inv32, (1, half), device)?;
        let pos = Tensor::arange(0u32, t as u32, device)?
            .to_dtype(candle_core::DType::F32)?
            .reshape((t, 1))?;
        let idx = pos.matmul(&theta)?;
        if attention_factor != 1.0 {
            return Ok((
                (idx.cos()? * attention_factor)?,
                (idx.sin()? * attention_factor)?,
            ));
        }
        Ok((idx.cos()?, idx.sin()?))
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
        let x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, cfg.d_model))?;
        let x = ctx.at(HookPoint::Embed, x)?;
        self.forward_from(x, Resume::START, lengths, ctx, stop_after, false)
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
        let device = x.device().clone();
        let cfg = &self.cfg;
        let eps = cfg.rms_norm_eps as f32;
        // Additive masks for the composite attention path, built on first use (the fused
        // kernel masks on the fly; a full mask is batch × seq² floats), one per window size.
        let mut masks: Vec<(Option<usize>, Tensor)> = Vec::new();
        let (cos, sin) = self.rope_tables(t, &device)?;
        let mut x = x;
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        let rep = cfg.n_heads / cfg.n_kv_heads;
        // The fused kernels are CPU/f32 only; elsewhere the composite ops run.
        let fused = self.fused && device.is_cpu() && x.dtype() == candle_core::DType::F32;
        for (l, blk) in self.blocks.iter().enumerate().skip(from.layer) {
            if from.visits_resid_pre(l) {
                x = ctx.at(HookPoint::ResidPre(l), x)?;
            }
            if from.runs_attention(l) {
                let h = candle_nn::ops::rms_norm(&x, &blk.ln1, eps)?;
                let qkv = blk.qkv.forward(&h)?;
                let window = cfg.sliding_window.get(l).copied().flatten();
                let z = if fused && !ctx.touches(HookPoint::AttnPattern(l)) {
                    let op = PackedCausalAttention {
                        n_heads: cfg.n_heads,
                        n_kv_heads: cfg.n_kv_heads,
                        head_dim: cfg.head_dim,
                        scale: scale as f32,
                        lengths: lengths.to_vec(),
                        window,
                    };
                    qkv.apply_op3_no_bwd(&cos, &sin, &op)?.reshape((
                        b,
                        t,
                        cfg.n_heads,
                        cfg.head_dim,
                    ))?
                } else {
                    let heads = |start: usize, n: usize| -> Result<Tensor> {
                        let part = qkv.narrow(2, start * cfg.head_dim, n * cfg.head_dim)?;
                        Ok(part
                            .reshape((b, t, n, cfg.head_dim))?
                            .transpose(1, 2)?
                            .contiguous()?)
                    };
                    let q = heads(0, cfg.n_heads)?;
                    let k = heads(cfg.n_heads, cfg.n_kv_heads)?;
                    let v = heads(cfg.n_heads + cfg.n_kv_heads, cfg.n_kv_heads)?;
                    let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
                    let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
                    let k = repeat_kv(k, rep)?;
                    let v = repeat_kv(v, rep)?;
                    // A window no shorter than the sequence is plain causal attention.
                    let key = window.filter(|w| *w < t);
                    let layer_mask = match masks.iter().find(|(k, _)| *k == key) {
                        Some((_, m)) => m.clone(),
                        None => {
                            let m = attention_bias(lengths, t, true, key, &device)?;
                            masks.push((key, m.clone()));
                            m
                        }
                    };
                    let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&layer_mask)?;
                    let att = candle_nn::ops::softmax_last_dim(&att)?;
                    let att = ctx.at(HookPoint::AttnPattern(l), att)?;
                    att.matmul(&v)?.transpose(1, 2)?
                };
                let z = ctx.at(HookPoint::AttnZ(l), z)?;
                let y = z.reshape((b, t, cfg.n_heads * cfg.head_dim))?;
                let attn_out = ctx.at(HookPoint::AttnOut(l), blk.o.forward(&y)?)?;
                x = ctx.at(HookPoint::ResidMid(l), (x + attn_out)?)?;
            }
            let h = candle_nn::ops::rms_norm(&x, &blk.ln2, eps)?;
            let gate_up = blk.gate_up.forward(&h)?;
            let m = if fused {
                gate_up.apply_op1_no_bwd(&PackedSwiGlu { d_mlp: cfg.d_mlp })?
            } else {
                let gate = gate_up.narrow(2, 0, cfg.d_mlp)?;
                let up = gate_up.narrow(2, cfg.d_mlp, cfg.d_mlp)?;
                (candle_nn::ops::silu(&gate)? * up)?
            };
            let mlp_out = ctx.at(HookPoint::MlpOut(l), blk.down.forward(&m)?)?;
            x = ctx.at(HookPoint::ResidPost(l), (x + mlp_out)?)?;
            if stop_after == Some(l) {
                return Ok(None);
            }
        }
        let x = candle_nn::ops::rms_norm(&x, &self.ln_f, eps)?;
        let x = ctx.at(HookPoint::LnFinal, x)?;
        if stop_after.is_some() {
            return Ok(None);
        }
        let x = if last_only {
            last_rows(&x, lengths)?
        } else {
            x
        };
        let logits = self.lm_head.forward(&x)?;
        Ok(Some(logits))
    }

    /// Check the configuration is internally consistent.
    pub(crate) fn validate(cfg: &LlamaConfig) -> Result<()> {
        if cfg.n_kv_heads == 0 || !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
            return Err(MechError::Invalid(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                cfg.n_heads, cfg.n_kv_heads
            )));
        }
        if !cfg.head_dim.is_multiple_of(2) {
            return Err(MechError::Invalid(
                "head_dim must be even for rotary".into(),
            ));
        }
        Ok(())
    }
}

/// Undo llama.cpp's q/k row permutation (interleaved rotary → Hugging Face half-split
/// rotary). `w` is `[n_heads * head_dim, d_in]`.
pub(crate) fn unpermute_qk(w: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let hd = rows / n_heads;
    Ok(w.reshape((n_heads, hd / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}
