//! Interval estimates shared by every rate Assay reports: a rate without its
//! uncertainty invites reading 2 of 3 as "67% safe".

/// Two-sided 95% normal quantile used by the Wilson interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval (95%) for `k` successes in `n` trials, `n` > 0.
/// Unlike the normal approximation it stays inside [0, 1] and is not
/// degenerate at 0 or `n` successes.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    let n_f = n as f64;
    let p = k as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values() {
        // 0 of 10: [0, 0.2775]; 5 of 10: [0.2366, 0.7634] (Wilson 1927, z = 1.96).
        let (lo, hi) = wilson(0, 10);
        assert!(
            lo.abs() < 1e-12 && (hi - 0.277_532).abs() < 1e-5,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(5, 10);
        assert!(
            (lo - 0.236_593).abs() < 1e-5 && (hi - 0.763_407).abs() < 1e-5,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(10, 10);
        assert!((lo - 0.722_467).abs() < 1e-5 && (hi - 1.0).abs() < 1e-12);
    }
}
