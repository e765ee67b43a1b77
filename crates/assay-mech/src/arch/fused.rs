//! Fused CPU kernels for the decoder hot path: causal self-attention straight from the
//! packed q|k|v projection, and the SwiGLU gate.
//!
//! Why: on a CPU, a decoder written as separate tensor ops spends a third of its time outside
//! the projections: transposes into head-major layout, rotary embedding, a full `t × t` score
//! matrix that causality half-discards, one pass each for scale, mask and softmax, and a
//! single-threaded SiLU. These kernels do the same arithmetic in one pass per (row, head),
//! skip the masked-out half of the scores, and run on every core. They are used only where no
//! hook needs the intermediate they skip (`attn.hook_pattern`); the composite path stays the
//! reference, and tests hold the two together.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape};
use rayon::prelude::*;

/// Query rows per score block: a block attends only to keys up to its last row, so smaller
/// blocks skip more of the masked upper triangle, larger ones keep the matrix products wide.
const ROW_BLOCK: usize = 32;

/// Causal (optionally sliding-window) self-attention over a packed `[batch, seq, q|k|v]`
/// projection with rotary embedding, returning `z` as `[batch, seq, n_heads * head_dim]`.
///
/// Why: the packed layout is what one fused projection produces; reading heads from it in
/// place avoids three transposed copies, and `z` comes out in the layout the output
/// projection reads.
pub(crate) struct PackedCausalAttention {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Score scale, `1/sqrt(head_dim)`.
    pub scale: f32,
    /// Real (unpadded) length of each batch row.
    pub lengths: Vec<usize>,
    /// Sliding window (a query sees itself and the `w − 1` keys before it), or full causal.
    pub window: Option<usize>,
}

/// A raw output pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a distinct (row, head) region; see `PackedCausalAttention`.
unsafe impl Send for OutPtr {}
// SAFETY: as for `Send`: tasks sharing the pointer never write the same region.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{what}: fused kernels need f32 storage")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: fused kernels need a contiguous tensor"),
    }
}

impl CustomOp3 for PackedCausalAttention {
    fn name(&self) -> &'static str {
        "packed-causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = f32_slice(s1, l1, "qkv")?;
        let cos = f32_slice(s2, l2, "rotary cos")?;
        let sin = f32_slice(s3, l3, "rotary sin")?;
        let (b, t, width) = l1.shape().dims3()?;
        let (h, kv, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        if width != (h + 2 * kv) * hd || b != self.lengths.len() || !hd.is_multiple_of(2) {
            candle_core::bail!(
                "packed attention: qkv width {width} for {h}+2·{kv} heads of {hd}, {b} rows vs {} lengths",
                self.lengths.len()
            );
        }
        if cos.len() < t * hd / 2 || sin.len() < t * hd / 2 {
            candle_core::bail!("packed attention: rotary tables shorter than {t} positions");
        }
        let q_width = h * hd;
        let mut z = vec![0f32; b * t * q_width];
        let out = OutPtr(z.as_mut_ptr());
        let rep = h / kv;
        (0..b * h).into_par_iter().for_each(|task| {
            let (row, head) = (task / h, task % h);
            let kv_head = head / rep;
            let base = row * t * width;
            let len = self.lengths[row].min(t);
            let q = rotated(qkv, base, width, head * hd, t, hd, cos, sin);
            let k = rotated(qkv, base, width, q_width + kv_head * hd, t, hd, cos, sin);
            let v_off = base + q_width + kv * hd + kv_head * hd;
            let mut scores = vec![0f32; ROW_BLOCK * t];
            for r0 in (0..t).step_by(ROW_BLOCK) {
                let r1 = (r0 + ROW_BLOCK).min(t);
                let k_end = r1.min(len);
                let k_start = match self.window {
                    Some(w) => (r0 + 1).saturating_sub(w),
                    None => 0,
                };
                let n = k_end.saturating_sub(k_start);
                let rows = r1 - r0;
                if n == 0 {
                    continue; // no visible key for any row: z stays 0 there.
                }
                // SAFETY: the pointers and strides describe in-bounds submatrices of `q`
                // (rows r0..r1), `k` (rows k_start..k_end) and `scores` (rows × n).
                unsafe {
                    gemm::gemm(
                        rows,
                        n,
                        hd,
                        scores.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        q.as_ptr().add(r0 * hd),
                        1,
                        hd as isize,
                        k.as_ptr().add(k_start * hd),
                        hd as isize,
                        1,
                        0.0,
                        self.scale,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                for (i, s) in scores[..rows * n].chunks_exact_mut(n).enumerate() {
                    let qpos = r0 + i;
                    let lo = match self.window {
                        Some(w) => (qpos + 1).saturating_sub(w),
                        None => 0,
                    }
                    .max(k_start)
                        - k_start;
                    let hi = (qpos + 1).min(len).max(k_start) - k_start;
                    softmax_range(s, lo, hi);
                }
                // SAFETY: `z` rows r0..r1 of this (row, head) are written by this task only;
                // `v` rows k_start..k_end lie inside `qkv`.
                unsafe {
                    gemm::gemm(
                        rows,
                        hd,
                        n,
                        out.get().add((row * t + r0) * q_width + head * hd),
                        1,
                        q_width as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        n as isize,
                        qkv.as_ptr().add(v_off + k_start * width),
                        1,
                        width as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
        Ok((CpuStorage::F32(z), Shape::from((b, t, q_width))))
    }
}

/// One head's rows of `qkv` (columns `col..col + hd` of each of `t` rows) with rotary
/// embedding applied (half-split convention), as a contiguous `[t, hd]` buffer.
#[allow(clippy::too_many_arguments)]
fn rotated(
    qkv: &[f32],
    base: usize,
    width: usize,
    col: usize,
    t: usize,
    hd: usize,
    cos: &[f32],
    sin: &[f32],
) -> Vec<f32> {
    let half = hd / 2;
    let mut out = vec![0f32; t * hd];
    for (pos, o) in out.chunks_exact_mut(hd).enumerate() {
        let x = &qkv[base + pos * width + col..][..hd];
        let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
        let (o1, o2) = o.split_at_mut(half);
        for i in 0..half {
            o1[i] = x[i] * c[i] - x[i + half] * s[i];
            o2[i] = x[i + half] * c[i] + x[i] * s[i];
        }
    }
    out
}

/// Softmax over `s[lo..hi]`, zero elsewhere (masked keys). An empty range leaves zeros.
fn softmax_range(s: &mut [f32], lo: usize, hi: usize) {
    if lo >= hi {
        s.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let max = s[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in &mut s[lo..hi] {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in &mut s[lo..hi] {
        *x /= sum;
    }
    s[..lo].iter_mut().for_each(|x| *x = 0.0);
    s[hi..].iter_mut().for_each(|x| *x = 0.0);
}

/// SwiGLU on a packed `[..., gate|up]` projection: `silu(gate) · up`, `[..., d_mlp]`.
///
/// Why: one projection for gate and up halves the matrix-product dispatches, and the
/// activation runs on every core in one pass instead of three single-threaded ones.
pub(crate) struct PackedSwiGlu {
    /// Hidden width (half the packed width).
    pub d_mlp: usize,
}

/// Rows per SwiGLU task: enough work per task to amortise scheduling.
const SWIGLU_ROWS: usize = 16;

impl CustomOp1 for PackedSwiGlu {
    fn name(&self) -> &'static str {
        "packed-swiglu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "gate|up")?;
        let dims = l.shape().dims();
        let d = self.d_mlp;
        if dims.last() != Some(&(2 * d)) {
            candle_core::bail!("packed swiglu: last dim {dims:?} is not 2 × {d}");
        }
        let rows = x.len() / (2 * d);
        let mut y = vec![0f32; rows * d];
        y.par_chunks_mut(SWIGLU_ROWS * d)
            .zip(x.par_chunks(SWIGLU_ROWS * 2 * d))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_exact_mut(d).zip(x.chunks_exact(2 * d)) {
                    let (g, u) = x.split_at(d);
                    for i in 0..d {
                        // Same expression as candle's `silu`, so both paths round alike.
                        y[i] = g[i] / ((-g[i]).exp() + 1.0) * u[i];
                    }
                }
            });
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank ≥ 1") = d;
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}
