//! Threshold-free and fixed-threshold metrics with bootstrap confidence intervals.

use crate::rng::Rng;

/// Area under the ROC curve (Mann–Whitney U with tie correction). `None` if one class is
/// absent.
pub fn auroc(scores: &[f64], labels: &[f64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = labels.iter().filter(|&&l| l > 0.5).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Average ranks over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Fraction of rows where `score > threshold` agrees with the label.
pub fn accuracy(scores: &[f64], labels: &[f64], threshold: f64) -> f64 {
    let ok = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| (**s > threshold) == (**l > 0.5))
        .count();
    ok as f64 / scores.len().max(1) as f64
}

/// Recall (true-positive rate) at the strictest threshold whose false-positive rate on the
/// negatives is at most `fpr`. With fewer than `1/fpr` negatives this means "above every
/// negative".
pub fn recall_at_fpr(scores: &[f64], labels: &[f64], fpr: f64) -> Option<f64> {
    let mut neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l < 0.5)
        .map(|(s, _)| *s)
        .collect();
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l > 0.5)
        .map(|(s, _)| *s)
        .collect();
    if neg.is_empty() || pos.is_empty() {
        return None;
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * neg.len() as f64).floor() as usize;
    let threshold = neg[allowed.min(neg.len() - 1)];
    Some(pos.iter().filter(|&&s| s > threshold).count() as f64 / pos.len() as f64)
}

/// Percentile bootstrap 95% interval of AUROC over rows resampled with replacement
/// (resamples lacking a class are redrawn).
pub fn bootstrap_auroc_ci(
    scores: &[f64],
    labels: &[f64],
    reps: usize,
    rng: &mut Rng,
) -> Option<(f64, f64)> {
    let n = scores.len();
    if reps == 0 || n == 0 {
        return None;
    }
    let mut vals = Vec::with_capacity(reps);
    let mut s = vec![0.0; n];
    let mut l = vec![0.0; n];
    let mut attempts = 0;
    while vals.len() < reps && attempts < reps * 10 {
        attempts += 1;
        for k in 0..n {
            let i = rng.below(n);
            s[k] = scores[i];
            l[k] = labels[i];
        }
        if let Some(a) = auroc(&s, &l) {
            vals.push(a);
        }
    }
    if vals.is_empty() {
        return None;
    }
    vals.sort_by(f64::total_cmp);
    let q = |p: f64| vals[((p * (vals.len() - 1) as f64).round() as usize).min(vals.len() - 1)];
    Some((q(0.025), q(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_known_values() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.0)
        );
        assert_eq!(
            auroc(&[0.5, 0.5, 0.5, 0.5], &[0.0, 1.0, 0.0, 1.0]),
            Some(0.5)
        );
        // One inversion out of four pairs.
        assert_eq!(
            auroc(&[0.1, 0.6, 0.5, 0.9], &[0.0, 0.0, 1.0, 1.0]),
            Some(0.75)
        );
        assert_eq!(auroc(&[0.1, 0.2], &[1.0, 1.0]), None);
    }

    #[test]
    fn recall_at_fpr_uses_negatives_only() {
        let s = [0.0, 0.1, 0.2, 0.3, 0.35, 0.9, 0.8, 0.25];
        let l = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        // Threshold = highest negative (0.3): positives above it are 0.35, 0.9, 0.8.
        assert_eq!(recall_at_fpr(&s, &l, 0.01), Some(0.75));
    }
}
