//! Forward-pass code for each supported architecture, written on candle ops.

pub mod bert;
pub mod gpt2;
pub mod llama;

use candle_core::{Device, Tensor};
use candle_nn::Linear;

use crate::error::Result;
use crate::weights::Weights;

/// Additive attention bias `[batch, 1, seq, seq]`: 0 where a query may attend a key, `-inf`
/// where the key is padding (or in the future, if `causal`).
pub(crate) fn attention_bias(
    lengths: &[usize],
    t: usize,
    causal: bool,
    device: &Device,
) -> Result<Tensor> {
    let b = lengths.len();
    let mut m = vec![0f32; b * t * t];
    for (r, &len) in lengths.iter().enumerate() {
        for q in 0..t {
            for k in 0..t {
                if k >= len || (causal && k > q) {
                    m[(r * t + q) * t + k] = f32::NEG_INFINITY;
                }
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, t, t), device)?)
}

/// Causal mask that also hides keys `window` or more positions behind the query (sliding
/// window attention: each query sees itself and the `window − 1` positions before it).
pub(crate) fn attention_bias_windowed(
    lengths: &[usize],
    t: usize,
    window: usize,
    device: &Device,
) -> Result<Tensor> {
    let b = lengths.len();
    let mut m = vec![0f32; b * t * t];
    for (r, &len) in lengths.iter().enumerate() {
        for q in 0..t {
            for k in 0..t {
                if k >= len || k > q || q - k >= window {
                    m[(r * t + q) * t + k] = f32::NEG_INFINITY;
                }
            }
        }
    }
    Ok(Tensor::from_vec(m, (b, 1, t, t), device)?)
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
