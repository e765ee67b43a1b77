//! Cross-validation splits: by group when groups exist, else stratified k-fold.

use std::collections::BTreeMap;

use crate::error::{MechError, Result};
use crate::rng::Rng;

/// How rows were split, recorded in the output.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SplitInfo {
    /// `group_kfold` or `stratified_kfold`.
    pub kind: String,
    /// Number of folds.
    pub folds: usize,
    /// Number of distinct groups (rows when ungrouped).
    pub n_groups: usize,
}

/// Assign each row to a fold.
///
/// With groups, whole groups go to one fold (so a probe cannot pass by memorising a
/// template): groups are shuffled and dealt greedily to the currently smallest fold. Without
/// groups, each class is shuffled and dealt round-robin so folds keep the class balance.
pub fn assign_folds(
    labels: &[f64],
    groups: Option<&[String]>,
    k: usize,
    rng: &mut Rng,
) -> Result<(Vec<usize>, SplitInfo)> {
    let n = labels.len();
    let mut fold = vec![0usize; n];
    match groups {
        Some(g) => {
            let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, name) in g.iter().enumerate() {
                by_group.entry(name.as_str()).or_default().push(i);
            }
            let n_groups = by_group.len();
            if n_groups < 2 {
                return Err(MechError::Data(
                    "all rows are in one group; group-wise evaluation needs at least 2 groups (or omit `group`)".into(),
                ));
            }
            let k = k.min(n_groups);
            let mut groups: Vec<Vec<usize>> = by_group.into_values().collect();
            rng.shuffle(&mut groups);
            let mut sizes = vec![0usize; k];
            for rows in groups {
                let f = (0..k).min_by_key(|&f| (sizes[f], f)).unwrap_or(0);
                sizes[f] += rows.len();
                for r in rows {
                    fold[r] = f;
                }
            }
            Ok((
                fold,
                SplitInfo {
                    kind: "group_kfold".into(),
                    folds: k,
                    n_groups,
                },
            ))
        }
        None => {
            let n_pos = labels.iter().filter(|&&l| l > 0.5).count();
            let k = k.min(n_pos).min(n - n_pos).max(2);
            for class in [0.0, 1.0] {
                let mut rows: Vec<usize> = (0..n)
                    .filter(|&i| (labels[i] > 0.5) == (class > 0.5))
                    .collect();
                rng.shuffle(&mut rows);
                for (j, r) in rows.into_iter().enumerate() {
                    fold[r] = j % k;
                }
            }
            Ok((
                fold,
                SplitInfo {
                    kind: "stratified_kfold".into(),
                    folds: k,
                    n_groups: n,
                },
            ))
        }
    }
}

/// Random control labels assigned per group (per row when ungrouped), with the same fraction
/// of positive groups as rows in the task (Hewitt & Liang's control task, adapted: the label
/// is a fixed random function of the group, so only memorisation could predict it).
pub fn control_labels(labels: &[f64], groups: Option<&[String]>, rng: &mut Rng) -> Vec<f64> {
    let n = labels.len();
    let keys: Vec<String> = match groups {
        Some(g) => g.to_vec(),
        None => (0..n).map(|i| i.to_string()).collect(),
    };
    let mut uniq: Vec<&String> = keys.iter().collect();
    uniq.sort();
    uniq.dedup();
    let p = labels.iter().filter(|&&l| l > 0.5).count() as f64 / n.max(1) as f64;
    let mut order: Vec<usize> = (0..uniq.len()).collect();
    rng.shuffle(&mut order);
    let n_pos =
        ((p * uniq.len() as f64).round() as usize).clamp(1, uniq.len().saturating_sub(1).max(1));
    let mut lab: BTreeMap<&String, f64> = BTreeMap::new();
    for (rank, &gi) in order.iter().enumerate() {
        lab.insert(uniq[gi], if rank < n_pos { 1.0 } else { 0.0 });
    }
    keys.iter().map(|k| lab[k]).collect()
}
