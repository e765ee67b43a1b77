//! Linear probe fitting: L2 logistic regression (L-BFGS) and mass-mean directions.

// Index loops read more clearly than iterator chains in this numeric code.
#![allow(clippy::needless_range_loop)]

/// Row-major `n × d` matrix of f32 activations.
///
/// Why: activations are f32; keeping them f32 halves memory traffic, and a 10,000 × 576
/// probe matrix (23 MB) then stays in cache across optimiser passes. Accumulations that need
/// it run in f64.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// Values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// From f32 rows (all the same length).
    pub fn from_rows(rows: &[Vec<f32>]) -> Matrix {
        let n = rows.len();
        let d = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(n * d);
        for r in rows {
            data.extend_from_slice(r);
        }
        Matrix { n, d, data }
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    /// The rows at `idx`.
    pub fn select(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix {
            n: idx.len(),
            d: self.d,
            data,
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `w · row` with an f64 weight vector and an f32 row.
pub fn dot_row(w: &[f64], row: &[f32]) -> f64 {
    w.iter().zip(row).map(|(a, &b)| a * b as f64).sum()
}

/// Row ranges for data-parallel passes: a fixed number of contiguous chunks whose partial
/// results are combined in chunk order, so results do not depend on the number of cores.
fn chunks(n: usize, d: usize) -> Vec<(usize, usize)> {
    let parts = if n * d >= 1 << 18 { 8 } else { 1 };
    let size = n.div_ceil(parts).max(1);
    (0..parts)
        .map(|p| ((p * size).min(n), ((p + 1) * size).min(n)))
        .filter(|(lo, hi)| lo < hi)
        .collect()
}

/// Run `f` over every chunk on the available cores; results come back in chunk order.
fn par_chunks<T: Send>(ranges: &[(usize, usize)], f: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    use rayon::prelude::*;
    ranges.par_iter().map(|&(lo, hi)| f(lo, hi)).collect()
}

/// Per-feature mean and standard deviation, fitted on training rows only.
///
/// Why: logistic regression on unscaled activations converges badly and its L2 penalty
/// would favour high-variance features; standardising with test statistics would leak.
#[derive(Debug, Clone)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f64>,
    /// Feature standard deviations (1 where a feature is constant).
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Fit on all rows of `x` (one pass; sums are shifted by the first row so large offsets
    /// do not cancel).
    pub fn fit(x: &Matrix) -> Standardizer {
        moments(x, None).0
    }
    /// The identity transform (mean 0, std 1), for fitting on features as they are.
    pub fn identity(d: usize) -> Standardizer {
        Standardizer {
            mean: vec![0.0; d],
            std: vec![1.0; d],
        }
    }
    /// Standardise a matrix.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut out = x.clone();
        for i in 0..x.n {
            let r = &mut out.data[i * x.d..(i + 1) * x.d];
            for j in 0..x.d {
                r[j] = ((r[j] as f64 - self.mean[j]) / self.std[j]) as f32;
            }
        }
        out
    }
}

/// Feature means and standard deviations in one pass over `x` (sums shifted by the first row
/// so large offsets do not cancel), and, given labels, `Σ_{y=1} (x − μ)` — the optimiser's
/// first gradient, which then costs no extra pass.
fn moments(x: &Matrix, y: Option<&[f64]>) -> (Standardizer, Vec<f64>) {
    let d = x.d;
    if x.n == 0 {
        return (Standardizer::identity(d), vec![0.0; d]);
    }
    let shift: Vec<f32> = x.row(0).to_vec();
    let parts = par_chunks(&chunks(x.n, d), |lo, hi| {
        // f32 sums over short runs of rows, flushed into f64.
        let mut s = vec![0.0f64; d];
        let mut ss = vec![0.0f64; d];
        let mut sp = vec![0.0f64; d];
        let mut a = vec![0.0f32; d];
        let mut aa = vec![0.0f32; d];
        let mut ap = vec![0.0f32; d];
        let mut n_pos = 0usize;
        for (k, i) in (lo..hi).enumerate() {
            let positive = y.is_some_and(|y| y[i] > 0.5);
            n_pos += positive as usize;
            for (((a, aa), v), sh) in a.iter_mut().zip(aa.iter_mut()).zip(x.row(i)).zip(&shift) {
                let c = v - sh;
                *a += c;
                *aa += c * c;
            }
            if positive {
                for ((p, v), sh) in ap.iter_mut().zip(x.row(i)).zip(&shift) {
                    *p += v - sh;
                }
            }
            if (k + 1) % FLUSH_ROWS == 0 || i + 1 == hi {
                for j in 0..d {
                    s[j] += a[j] as f64;
                    ss[j] += aa[j] as f64;
                    sp[j] += ap[j] as f64;
                    a[j] = 0.0;
                    aa[j] = 0.0;
                    ap[j] = 0.0;
                }
            }
        }
        (s, ss, sp, n_pos)
    });
    let n = x.n as f64;
    let mut s = vec![0.0f64; d];
    let mut ss = vec![0.0f64; d];
    let mut sp = vec![0.0f64; d];
    let mut n_pos = 0usize;
    for (ps, pss, psp, np) in parts {
        s.iter_mut().zip(&ps).for_each(|(a, b)| *a += b);
        ss.iter_mut().zip(&pss).for_each(|(a, b)| *a += b);
        sp.iter_mut().zip(&psp).for_each(|(a, b)| *a += b);
        n_pos += np;
    }
    let mean: Vec<f64> = s
        .iter()
        .zip(&shift)
        .map(|(a, &k)| k as f64 + a / n)
        .collect();
    let std = s
        .iter()
        .zip(&ss)
        .map(|(a, b)| {
            let var = (b / n - (a / n) * (a / n)).max(0.0);
            let sd = var.sqrt();
            if sd > 1e-12 { sd } else { 1.0 }
        })
        .collect();
    // Σ_{y=1}(x − μ) = Σ_{y=1}(x − k) − n₁(μ − k), with k the shift.
    let pos_centred = sp
        .iter()
        .zip(&s)
        .map(|(p, a)| p - n_pos as f64 * (a / n))
        .collect();
    (Standardizer { mean, std }, pos_centred)
}

/// A fitted linear scorer `score(x) = w·x + b` (in whatever space it was fitted).
#[derive(Debug, Clone)]
pub struct LinearScorer {
    /// Weights.
    pub w: Vec<f64>,
    /// Bias.
    pub b: f64,
}

impl LinearScorer {
    /// Score each row.
    pub fn scores(&self, x: &Matrix) -> Vec<f64> {
        (0..x.n)
            .map(|i| dot_row(&self.w, x.row(i)) + self.b)
            .collect()
    }
}

/// `(softplus(t), sigmoid(t))`, the log-loss terms, from one exponential: both only need
/// `exp(−|t|)`, which never overflows.
fn softplus_sigmoid(t: f64) -> (f64, f64) {
    let e = (-t.abs()).exp();
    let softplus = t.max(0.0) + e.ln_1p();
    let sigmoid = if t >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (softplus, sigmoid)
}

/// Lanes of the row kernels; eight f32 accumulators map onto one AVX register.
const LANES: usize = 8;

/// Rows accumulated in f32 before the gradient partial is flushed into f64.
const FLUSH_ROWS: usize = 64;

/// The fused pass: for rows `lo..hi`, `z = Σ_j u_j (x_j − μ_j) + b`, the log-loss and its
/// residual `g = σ(z) − y`, and `Σ_i g_i (x_ij − μ_j)` — one read of each row while it is in
/// cache. Centring on the fly keeps f32 accumulation accurate for features with large offsets.
#[inline(always)]
fn pass_body<const FMA: bool>(
    x: &Matrix,
    y: &[f64],
    u: &[f32],
    mu: &[f32],
    b: f64,
    lo: usize,
    hi: usize,
) -> (f64, f64, Vec<f64>) {
    let d = x.d;
    let full = d / LANES * LANES;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let mut grad = vec![0.0f64; d];
    let mut acc = vec![0.0f32; d];
    let mut loss = 0.0f64;
    let mut gsum = 0.0f64;
    for (k, i) in (lo..hi).enumerate() {
        let r = x.row(i);
        let lanes = if FMA {
            // SAFETY: `pass_body::<true>` is only instantiated by `pass_avx2`, which runs
            // after the CPU was checked for AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                centred_dot_avx2(u, r, mu)
            }
            #[cfg(not(target_arch = "x86_64"))]
            centred_dot(u, r, mu)
        } else {
            centred_dot(u, r, mu)
        };
        let mut z = lanes.iter().map(|&v| v as f64).sum::<f64>();
        for j in full..d {
            z += (u[j] * (r[j] - mu[j])) as f64;
        }
        z += b;
        let (softplus, sigmoid) = softplus_sigmoid(z);
        loss += softplus - y[i] * z;
        let g = sigmoid - y[i];
        gsum += g;
        let g32 = g as f32;
        for ((ac, rc), mc) in acc
            .chunks_exact_mut(LANES)
            .zip(r.chunks_exact(LANES))
            .zip(mu.chunks_exact(LANES))
        {
            for l in 0..LANES {
                ac[l] = fma(g32, rc[l] - mc[l], ac[l]);
            }
        }
        for j in full..d {
            acc[j] += g32 * (r[j] - mu[j]);
        }
        if (k + 1) % FLUSH_ROWS == 0 || i + 1 == hi {
            grad.iter_mut().zip(acc.iter_mut()).for_each(|(g, a)| {
                *g += *a as f64;
                *a = 0.0;
            });
        }
    }
    (loss, gsum, grad)
}

/// Lane sums of `Σ_j u_j (r_j − μ_j)` over the whole multiples of [`LANES`] (the tail is
/// left to the caller).
fn centred_dot(u: &[f32], r: &[f32], mu: &[f32]) -> [f32; LANES] {
    let mut lanes = [0.0f32; LANES];
    for ((rc, uc), mc) in r
        .chunks_exact(LANES)
        .zip(u.chunks_exact(LANES))
        .zip(mu.chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] += uc[l] * (rc[l] - mc[l]);
        }
    }
    lanes
}

/// [`centred_dot`] with AVX2/FMA: four independent accumulators, because one chain of
/// dependent multiply-adds is bound by their latency (the compiler keeps the chain when
/// left to itself, since float addition is not associative).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn centred_dot_avx2(u: &[f32], r: &[f32], mu: &[f32]) -> [f32; LANES] {
    use std::arch::x86_64::*;
    let n = u.len() / LANES * LANES;
    let (r, mu) = (&r[..n], &mu[..n]);
    let load = |s: &[f32], j: usize| {
        let c: &[f32; LANES] = s[j..j + LANES].try_into().expect("eight lanes");
        // SAFETY: `c` is eight in-bounds f32s; the load is unaligned.
        unsafe { _mm256_loadu_ps(c.as_ptr()) }
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    while j + 4 * LANES <= n {
        for (c, a) in acc.iter_mut().enumerate() {
            let o = j + c * LANES;
            *a = _mm256_fmadd_ps(load(u, o), _mm256_sub_ps(load(r, o), load(mu, o)), *a);
        }
        j += 4 * LANES;
    }
    while j < n {
        acc[0] = _mm256_fmadd_ps(load(u, j), _mm256_sub_ps(load(r, j), load(mu, j)), acc[0]);
        j += LANES;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; LANES];
    // SAFETY: `lanes` holds eight f32s; the store is unaligned.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn pass_avx2(
    x: &Matrix,
    y: &[f64],
    u: &[f32],
    mu: &[f32],
    b: f64,
    lo: usize,
    hi: usize,
) -> (f64, f64, Vec<f64>) {
    pass_body::<true>(x, y, u, mu, b, lo, hi)
}

fn pass(
    x: &Matrix,
    y: &[f64],
    u: &[f32],
    mu: &[f32],
    b: f64,
    lo: usize,
    hi: usize,
) -> (f64, f64, Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports both features, checked just above.
        return unsafe { pass_avx2(x, y, u, mu, b, lo, hi) };
    }
    pass_body::<false>(x, y, u, mu, b, lo, hi)
}

/// The logistic-regression objective in standardised space, evaluated on raw rows.
///
/// Why: standardising is folded into the weights (`u = w / σ`, centring on the fly), so the
/// optimiser never materialises a standardised copy of the data.
struct Objective<'a> {
    x: &'a Matrix,
    y: &'a [f64],
    mu: Vec<f32>,
    inv_std: Vec<f64>,
    lambda: f64,
    ranges: Vec<(usize, usize)>,
}

impl Objective<'_> {
    /// Mean log-loss + ½λ‖w‖² (bias unpenalised) and its gradient; params = `[w, b]`.
    fn eval(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        let d = self.x.d;
        let (w, b) = (&p[..d], p[d]);
        let u: Vec<f32> = w
            .iter()
            .zip(&self.inv_std)
            .map(|(w, s)| (w * s) as f32)
            .collect();
        let parts = par_chunks(&self.ranges, |lo, hi| {
            pass(self.x, self.y, &u, &self.mu, b, lo, hi)
        });
        let n = self.x.n as f64;
        let mut loss = 0.0;
        let mut gsum = 0.0;
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (l, gs, g) in parts {
            loss += l;
            gsum += gs;
            grad[..d].iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
        for j in 0..d {
            grad[j] = grad[j] * self.inv_std[j] / n + self.lambda * w[j];
        }
        grad[d] = gsum / n;
        loss / n + 0.5 * self.lambda * dot(w, w)
    }
}

/// When the logistic-regression optimiser stops.
///
/// Why: the defaults are scikit-learn's (`tol` on the largest gradient component of the
/// mean objective; a relative objective decrease of 64 machine epsilons), so a fit here and a
/// fit there solve the same problem to the same precision.
#[derive(Debug, Clone, Copy)]
pub struct LogregOptions {
    /// Inverse L2 strength (sklearn's `C`): minimise `C · Σ logloss + ½‖w‖²`.
    pub c: f64,
    /// Iteration cap.
    pub max_iter: usize,
    /// Stop when every gradient component of the mean objective is below this.
    pub tol: f64,
}

impl Default for LogregOptions {
    fn default() -> Self {
        LogregOptions {
            c: 1.0,
            max_iter: 100,
            tol: 1e-4,
        }
    }
}

/// L2-regularised logistic regression on standardised features, solved by L-BFGS, with the
/// scorer returned in raw feature space. Labels are 0/1.
///
/// Returns a constant scorer (w = 0, b = log-odds) when only one class is present.
pub fn fit_logreg(x: &Matrix, st: &Standardizer, y: &[f64], opts: &LogregOptions) -> LinearScorer {
    fit_logreg_from(x, st, y, opts, None)
}

/// Standardise and fit in one go: the feature statistics and the optimiser's first gradient
/// come from a single pass over the data. Returns the raw-space scorer and the statistics.
pub fn fit_logreg_standardized(
    x: &Matrix,
    y: &[f64],
    opts: &LogregOptions,
) -> (LinearScorer, Standardizer) {
    let (st, pos_centred) = moments(x, Some(y));
    let n = x.n.max(1) as f64;
    let n_pos = y.iter().filter(|&&v| v > 0.5).count() as f64;
    // At w = 0, b = 0: every residual is ½ − y, so the mean loss is ln 2 and the gradient is
    // −Σ_{y=1}(x − μ)/(nσ) for the weights and ½ − n₁/n for the bias.
    let mut g: Vec<f64> = pos_centred
        .iter()
        .zip(&st.std)
        .map(|(p, s)| -p / (n * s))
        .collect();
    g.push(0.5 - n_pos / n);
    let scorer = fit_logreg_from(x, &st, y, opts, Some((std::f64::consts::LN_2, g)));
    (scorer, st)
}

fn fit_logreg_from(
    x: &Matrix,
    st: &Standardizer,
    y: &[f64],
    opts: &LogregOptions,
    start: Option<(f64, Vec<f64>)>,
) -> LinearScorer {
    let d = x.d;
    let pos = y.iter().filter(|&&v| v > 0.5).count();
    if pos == 0 || pos == y.len() {
        let p = (pos as f64 + 0.5) / (y.len() as f64 + 1.0);
        return LinearScorer {
            w: vec![0.0; d],
            b: (p / (1.0 - p)).ln(),
        };
    }
    let obj = Objective {
        x,
        y,
        mu: st.mean.iter().map(|&m| m as f32).collect(),
        inv_std: st.std.iter().map(|s| 1.0 / s).collect(),
        lambda: 1.0 / (opts.c * x.n as f64),
        ranges: chunks(x.n, d),
    };
    let p = lbfgs(&obj, d + 1, opts, start);
    // Back to raw space: score = Σ w_j (x_j − μ_j)/σ_j + b.
    let w: Vec<f64> = p[..d]
        .iter()
        .zip(&obj.inv_std)
        .map(|(w, s)| w * s)
        .collect();
    let b = p[d] - w.iter().zip(&st.mean).map(|(w, m)| w * m).sum::<f64>();
    LinearScorer { w, b }
}

/// Limited-memory BFGS (history 10) with a backtracking Armijo line search.
fn lbfgs(
    obj: &Objective,
    dim: usize,
    opts: &LogregOptions,
    start: Option<(f64, Vec<f64>)>,
) -> Vec<f64> {
    let mut p = vec![0.0; dim];
    let (mut f, mut g) = match start {
        Some(fg) => fg,
        None => {
            let mut g = vec![0.0; dim];
            (obj.eval(&p, &mut g), g)
        }
    };
    let m = 10;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut g_new = vec![0.0; dim];
    let ftol = 64.0 * f64::EPSILON;
    for _ in 0..opts.max_iter {
        if g.iter().all(|v| v.abs() <= opts.tol) {
            break;
        }
        // Two-loop recursion for the search direction.
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            alpha[i] = rho * dot(&s_hist[i], &q);
            q.iter_mut()
                .zip(&y_hist[i])
                .for_each(|(qj, yj)| *qj -= alpha[i] * yj);
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / dot(&g, &g).sqrt()
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for i in 0..k {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            let beta = rho * dot(&y_hist[i], &q);
            q.iter_mut()
                .zip(&s_hist[i])
                .for_each(|(qj, sj)| *qj += (alpha[i] - beta) * sj);
        }
        let dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&g, &dir);
        if slope >= 0.0 {
            if k == 0 {
                break;
            }
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = p.iter().zip(&dir).map(|(a, b)| a + step * b).collect();
            let ft = obj.eval(&trial, &mut g_new);
            if ft <= f + 1e-4 * step * slope {
                accepted = Some((trial, ft));
                break;
            }
            step *= 0.5;
        }
        let Some((trial, ft)) = accepted else { break };
        let s: Vec<f64> = trial.iter().zip(&p).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let converged = (f - ft) <= ftol * f.abs().max(ft.abs()).max(1.0);
        if dot(&s, &yv) > 1e-12 {
            if s_hist.len() == m {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(yv);
        }
        p = trial;
        f = ft;
        g.copy_from_slice(&g_new);
        if converged {
            break;
        }
    }
    p
}

/// Mass-mean (difference-of-class-means) probe on raw activations.
///
/// `w = μ₊ − μ₋`, or with `covariance_correction` `w = Σ⁻¹(μ₊ − μ₋)` where Σ is the pooled
/// within-class covariance shrunk towards `tr(Σ)/d · I` by `shrinkage` (the LDA direction).
/// The bias puts the threshold midway between the projected class means.
pub fn fit_mass_mean(
    x: &Matrix,
    y: &[f64],
    covariance_correction: bool,
    shrinkage: f64,
) -> LinearScorer {
    let d = x.d;
    let mut mp = vec![0.0; d];
    let mut mn = vec![0.0; d];
    let (mut np, mut nn) = (0usize, 0usize);
    for i in 0..x.n {
        let (m, c) = if y[i] > 0.5 {
            (&mut mp, &mut np)
        } else {
            (&mut mn, &mut nn)
        };
        m.iter_mut()
            .zip(x.row(i))
            .for_each(|(a, &b)| *a += b as f64);
        *c += 1;
    }
    if np == 0 || nn == 0 {
        return LinearScorer {
            w: vec![0.0; d],
            b: 0.0,
        };
    }
    mp.iter_mut().for_each(|v| *v /= np as f64);
    mn.iter_mut().for_each(|v| *v /= nn as f64);
    let diff: Vec<f64> = mp.iter().zip(&mn).map(|(a, b)| a - b).collect();
    let w = if covariance_correction {
        let mut cov = vec![0.0; d * d];
        let mut centred = vec![0.0; d];
        for i in 0..x.n {
            let m = if y[i] > 0.5 { &mp } else { &mn };
            centred
                .iter_mut()
                .zip(x.row(i))
                .zip(m)
                .for_each(|((c, &v), mu)| *c = v as f64 - mu);
            for a in 0..d {
                let ca = centred[a];
                if ca == 0.0 {
                    continue;
                }
                let row = &mut cov[a * d..(a + 1) * d];
                row.iter_mut()
                    .zip(&centred)
                    .for_each(|(r, cb)| *r += ca * cb);
            }
        }
        let denom = (x.n as f64 - 2.0).max(1.0);
        cov.iter_mut().for_each(|v| *v /= denom);
        let tr: f64 = (0..d).map(|a| cov[a * d + a]).sum::<f64>() / d as f64;
        let tr = if tr > 0.0 { tr } else { 1.0 };
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] *= 1.0 - shrinkage;
            }
            cov[a * d + a] += shrinkage * tr;
        }
        cholesky_solve(&mut cov, d, &diff).unwrap_or(diff.clone())
    } else {
        diff
    };
    let mid: Vec<f64> = mp.iter().zip(&mn).map(|(a, b)| 0.5 * (a + b)).collect();
    let b = -dot(&w, &mid);
    LinearScorer { w, b }
}

/// Solve `A x = b` for symmetric positive-definite `A` (overwritten by its factor).
fn cholesky_solve(a: &mut [f64], d: usize, b: &[f64]) -> Option<Vec<f64>> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        if s <= 0.0 {
            return None;
        }
        let l = s.sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut z = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            z[i] -= a[i * d + k] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            z[i] -= a[k * d + i] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    Some(z)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn toy(n: usize, d: usize, offset: f32, seed: u64) -> (Matrix, Vec<f64>) {
        let mut rng = Rng::new(seed, 0);
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let label = (i % 2) as f64;
            for j in 0..d {
                let shift = if j == 0 { 2.0 * label - 1.0 } else { 0.0 };
                data.push((rng.normal() * (1.0 + j as f64) + shift) as f32 + offset);
            }
            y.push(label);
        }
        (Matrix { n, d, data }, y)
    }

    /// The gradient of the standardised objective, computed the slow, obvious way in f64 on
    /// an explicitly standardised copy.
    fn reference_gradient(
        x: &Matrix,
        st: &Standardizer,
        y: &[f64],
        c: f64,
        s: &LinearScorer,
    ) -> Vec<f64> {
        let z = st.transform(x);
        let n = x.n as f64;
        // Raw-space scorer back to standardised-space weights.
        let w: Vec<f64> = s.w.iter().zip(&st.std).map(|(w, sd)| w * sd).collect();
        let b = s.b + s.w.iter().zip(&st.mean).map(|(w, m)| w * m).sum::<f64>();
        let mut g = vec![0.0; x.d + 1];
        for i in 0..x.n {
            let r = z.row(i);
            let t = dot_row(&w, r) + b;
            let e = softplus_sigmoid(t).1 - y[i];
            for j in 0..x.d {
                g[j] += e * r[j] as f64 / n;
            }
            g[x.d] += e / n;
        }
        for j in 0..x.d {
            g[j] += w[j] / (c * n);
        }
        g
    }

    #[test]
    fn logreg_separates_and_reaches_gradient_optimality() {
        for (n, offset) in [(300, 0.0), (300, 1000.0), (20_000, 50.0)] {
            let (x, y) = toy(n, 5, offset, 1);
            let st = Standardizer::fit(&x);
            let opts = LogregOptions {
                c: 1.0,
                max_iter: 500,
                tol: 1e-6,
            };
            let s = fit_logreg(&x, &st, &y, &opts);
            // In raw space feature 0 carries the signal.
            assert!(s.w[0] > 0.5, "{:?}", s.w);
            for j in 1..5 {
                assert!(s.w[j].abs() < 0.2 * s.w[0], "{:?}", s.w);
            }
            let g = reference_gradient(&x, &st, &y, 1.0, &s);
            let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(gmax < 1e-5, "n={n} offset={offset}: {g:?}");
        }
    }

    #[test]
    fn one_pass_fit_equals_two_step_fit() {
        let (x, y) = toy(5000, 7, 300.0, 4);
        let opts = LogregOptions {
            c: 0.5,
            max_iter: 500,
            tol: 1e-7,
        };
        let (a, sa) = fit_logreg_standardized(&x, &y, &opts);
        let sb = Standardizer::fit(&x);
        let b = fit_logreg(&x, &sb, &y, &opts);
        assert_eq!(sa.mean, sb.mean);
        assert_eq!(sa.std, sb.std);
        // Both stop at a gradient of 1e-7, from slightly different first steps.
        for (u, v) in a.w.iter().zip(&b.w) {
            assert!((u - v).abs() < 1e-4, "{:?} vs {:?}", a.w, b.w);
        }
    }

    #[test]
    fn standardizer_matches_two_pass_statistics_despite_offsets() {
        let (x, _) = toy(50_000, 9, 10_000.0, 3);
        let st = Standardizer::fit(&x);
        for j in 0..x.d {
            let col: Vec<f64> = (0..x.n).map(|i| x.row(i)[j] as f64).collect();
            let m = col.iter().sum::<f64>() / x.n as f64;
            let v = col.iter().map(|c| (c - m) * (c - m)).sum::<f64>() / x.n as f64;
            assert!((st.mean[j] - m).abs() < 1e-6 * m.abs().max(1.0), "mean {j}");
            assert!((st.std[j] - v.sqrt()).abs() < 1e-6 * v.sqrt(), "std {j}");
        }
    }

    #[test]
    fn mass_mean_with_covariance_is_lda_direction() {
        // Two features, noise correlated; class shift along feature 0 only.
        let mut rng = Rng::new(2, 0);
        let n = 4000;
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let label = (i % 2) as f64;
            let z = rng.normal();
            data.push((z + label) as f32);
            data.push((z + 0.1 * rng.normal()) as f32);
            y.push(label);
        }
        let x = Matrix { n, d: 2, data };
        let plain = fit_mass_mean(&x, &y, false, 0.0);
        let lda = fit_mass_mean(&x, &y, true, 0.0);
        assert!(plain.w[1].abs() < 0.1);
        // LDA subtracts the shared noise: w ∝ (1, -1).
        assert!((lda.w[0] / lda.w[1] + 1.0).abs() < 0.1, "{:?}", lda.w);
    }
}
