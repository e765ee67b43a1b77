//! Linear probe fitting: L2 logistic regression (L-BFGS) and mass-mean directions.

// Index loops read more clearly than iterator chains in this numeric code.
#![allow(clippy::needless_range_loop)]

/// Row-major `n × d` matrix of f64.
///
/// Why: probe maths runs in f64 for stable optimisation, independent of the tensor library.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// Values.
    pub data: Vec<f64>,
}

impl Matrix {
    /// From f32 rows (all the same length).
    pub fn from_rows(rows: &[Vec<f32>]) -> Matrix {
        let n = rows.len();
        let d = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(n * d);
        for r in rows {
            data.extend(r.iter().map(|&x| x as f64));
        }
        Matrix { n, d, data }
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
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
    /// Fit on all rows of `x`.
    pub fn fit(x: &Matrix) -> Standardizer {
        let n = x.n.max(1) as f64;
        let mut mean = vec![0.0; x.d];
        for i in 0..x.n {
            mean.iter_mut().zip(x.row(i)).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; x.d];
        for i in 0..x.n {
            var.iter_mut()
                .zip(x.row(i))
                .zip(&mean)
                .for_each(|((s, v), m)| *s += (v - m) * (v - m));
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 { sd } else { 1.0 }
            })
            .collect();
        Standardizer { mean, std }
    }
    /// Standardise a matrix.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut out = x.clone();
        for i in 0..x.n {
            let r = &mut out.data[i * x.d..(i + 1) * x.d];
            for j in 0..x.d {
                r[j] = (r[j] - self.mean[j]) / self.std[j];
            }
        }
        out
    }
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
        (0..x.n).map(|i| dot(&self.w, x.row(i)) + self.b).collect()
    }
}

fn softplus(t: f64) -> f64 {
    if t > 0.0 {
        t + (-t).exp().ln_1p()
    } else {
        t.exp().ln_1p()
    }
}

fn sigmoid(t: f64) -> f64 {
    if t >= 0.0 {
        1.0 / (1.0 + (-t).exp())
    } else {
        let e = t.exp();
        e / (1.0 + e)
    }
}

/// Sum of log-losses and of their gradients over rows `lo..hi` (one pass over the rows).
fn logreg_partial(
    x: &Matrix,
    y: &[f64],
    w: &[f64],
    b: f64,
    lo: usize,
    hi: usize,
    grad: &mut [f64],
) -> f64 {
    let d = x.d;
    let mut loss = 0.0;
    for i in lo..hi {
        let r = x.row(i);
        let z = dot(w, r) + b;
        // y in {0,1}: loss = softplus(z) - y z
        loss += softplus(z) - y[i] * z;
        let g = sigmoid(z) - y[i];
        grad[..d]
            .iter_mut()
            .zip(r)
            .for_each(|(gj, xj)| *gj += g * xj);
        grad[d] += g;
    }
    loss
}

/// Objective (mean log-loss + L2 on weights, not bias) and gradient; params = `[w, b]`.
/// Large problems are split over the available cores (rows in contiguous chunks, partial
/// sums added in a fixed order, so results do not depend on scheduling).
fn logreg_obj(x: &Matrix, y: &[f64], lambda: f64, p: &[f64], grad: &mut [f64]) -> f64 {
    let d = x.d;
    let (w, b) = (&p[..d], p[d]);
    let n = x.n as f64;
    let threads = if x.n * x.d >= 1 << 20 {
        std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(8)
    } else {
        1
    };
    grad.iter_mut().for_each(|g| *g = 0.0);
    let mut loss = 0.0;
    if threads <= 1 {
        loss = logreg_partial(x, y, w, b, 0, x.n, grad);
    } else {
        let chunk = x.n.div_ceil(threads);
        let parts: Vec<(f64, Vec<f64>)> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    sc.spawn(move || {
                        let mut g = vec![0.0; d + 1];
                        let lo = (t * chunk).min(x.n);
                        let hi = ((t + 1) * chunk).min(x.n);
                        (logreg_partial(x, y, w, b, lo, hi, &mut g), g)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe worker"))
                .collect()
        });
        for (l, g) in parts {
            loss += l;
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
    }
    loss /= n;
    grad.iter_mut().for_each(|g| *g /= n);
    loss += 0.5 * lambda * dot(w, w);
    grad[..d]
        .iter_mut()
        .zip(w)
        .for_each(|(g, wj)| *g += lambda * wj);
    loss
}

/// L2-regularised logistic regression with sklearn's convention: minimise
/// `C · Σ logloss + ½‖w‖²` (bias unpenalised), solved by L-BFGS. Labels are 0/1.
///
/// Returns a constant scorer (w = 0, b = log-odds) when only one class is present.
pub fn fit_logreg(x: &Matrix, y: &[f64], c: f64, max_iter: usize) -> LinearScorer {
    let d = x.d;
    let pos = y.iter().filter(|&&v| v > 0.5).count();
    if pos == 0 || pos == y.len() {
        let p = (pos as f64 + 0.5) / (y.len() as f64 + 1.0);
        return LinearScorer {
            w: vec![0.0; d],
            b: (p / (1.0 - p)).ln(),
        };
    }
    let lambda = 1.0 / (c * x.n as f64);
    let dim = d + 1;
    let mut p = vec![0.0; dim];
    let mut g = vec![0.0; dim];
    let mut f = logreg_obj(x, y, lambda, &p, &mut g);
    let m = 10;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut g_new = vec![0.0; dim];
    for _ in 0..max_iter {
        let gnorm = dot(&g, &g).sqrt();
        if gnorm < 1e-7 {
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
            1.0 / gnorm
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
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        // Backtracking Armijo line search.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let trial: Vec<f64> = p.iter().zip(&dir).map(|(a, b)| a + step * b).collect();
            let ft = logreg_obj(x, y, lambda, &trial, &mut g_new);
            if ft <= f + 1e-4 * step * slope {
                accepted = Some((trial, ft));
                break;
            }
            step *= 0.5;
        }
        let Some((trial, ft)) = accepted else { break };
        let s: Vec<f64> = trial.iter().zip(&p).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let converged = (f - ft).abs() <= 1e-10 * f.abs().max(1.0);
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
    LinearScorer {
        w: p[..d].to_vec(),
        b: p[d],
    }
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
        m.iter_mut().zip(x.row(i)).for_each(|(a, b)| *a += b);
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
                .for_each(|((c, v), mu)| *c = v - mu);
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

    #[test]
    fn logreg_separates_and_matches_gradient_optimality() {
        let mut rng = Rng::new(1, 0);
        let n = 300;
        let d = 5;
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let label = (i % 2) as f64;
            for j in 0..d {
                let shift = if j == 0 { 2.0 * label - 1.0 } else { 0.0 };
                data.push(rng.normal() + shift);
            }
            y.push(label);
        }
        let x = Matrix { n, d, data };
        let s = fit_logreg(&x, &y, 1.0, 500);
        assert!(s.w[0] > 1.0, "{:?}", s.w);
        for j in 1..d {
            assert!(s.w[j].abs() < 0.5 * s.w[0]);
        }
        // Gradient at the optimum is ~0.
        let mut p = s.w.clone();
        p.push(s.b);
        let mut g = vec![0.0; d + 1];
        logreg_obj(&x, &y, 1.0 / n as f64, &p, &mut g);
        assert!(dot(&g, &g).sqrt() < 1e-5, "{g:?}");
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
            data.push(z + label);
            data.push(z + 0.1 * rng.normal());
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
