//! Linear probes on hooked activations: data, activation extraction, cross-validated
//! fitting with baselines, and applying a saved probe.

pub mod linear;
pub mod metrics;
pub mod split;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{MechError, Result};
use crate::hooks::{HookPoint, Reduce, RunPlan, rows_f32};
use crate::model::{Batch, Model};
use crate::rng::Rng;
use crate::tokenizer::ChatMessage;
use linear::{
    LinearScorer, LogregOptions, Matrix, Standardizer, dot_row, fit_logreg_standardized,
    fit_mass_mean,
};
use metrics::{accuracy, auroc, bootstrap_auroc_ci, recall_at_fpr};
use split::{SplitInfo, assign_folds, control_labels};

/// One row of probe data (`{text, label, group?}` in JSONL).
///
/// Why: the group field is what lets evaluation hold out whole templates or sources.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// Input text.
    pub text: String,
    /// 0/1 label (optional for `apply`).
    pub label: Option<f64>,
    /// Template / source / entity id; rows sharing it are never split across train and test.
    pub group: Option<String>,
}

/// Read JSONL data; with `require_labels`, every row needs a 0/1 (or boolean) label.
pub fn read_jsonl(path: &Path, require_labels: bool) -> Result<Vec<Example>> {
    let s = std::fs::read_to_string(path).map_err(|e| MechError::io(path, e))?;
    let mut out = Vec::new();
    let perr = |line: usize, m: String| MechError::Parse {
        path: path.into(),
        message: format!("line {line}: {m}"),
    };
    for (i, line) in s.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| perr(ln, e.to_string()))?;
        let text = v
            .get("text")
            .and_then(|t| t.as_str())
            .ok_or_else(|| perr(ln, "missing string field `text`".into()))?
            .to_string();
        if text.trim().is_empty() {
            return Err(perr(ln, "`text` is empty".into()));
        }
        let label = match v.get("label") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
            Some(l) => match l.as_f64() {
                Some(x) if x == 0.0 || x == 1.0 => Some(x),
                _ => {
                    return Err(perr(
                        ln,
                        format!("`label` must be 0, 1, true or false, got {l}"),
                    ));
                }
            },
        };
        if require_labels && label.is_none() {
            return Err(perr(ln, "missing `label`".into()));
        }
        let group = match v.get("group") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(g) => Some(g.to_string()),
        };
        out.push(Example { text, label, group });
    }
    if out.is_empty() {
        return Err(MechError::Data(format!("{}: no rows", path.display())));
    }
    Ok(out)
}

/// Which probe the chosen layer and the saved direction use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// L2 logistic regression on standardised features.
    Logreg,
    /// Difference of class means (optionally covariance-corrected).
    MassMean,
}

/// How texts become token ids.
///
/// Why: chat models represent the same text differently inside their chat format; the
/// choice changes the experiment and is recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextFormat {
    /// Wrap each text as a user message with the model's chat template.
    pub chat_template: bool,
    /// Add the tokenizer's special tokens (BOS, [CLS]/[SEP]) when not using a template.
    pub add_special_tokens: bool,
}

impl Default for TextFormat {
    fn default() -> Self {
        TextFormat {
            chat_template: false,
            add_special_tokens: true,
        }
    }
}

/// Parameters of a probe run; stored verbatim in `probe.json` and the evidence record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeParams {
    /// Hook names or patterns, comma-separated.
    pub hooks: String,
    /// Token position read: last, mean, or an index.
    pub position: Reduce,
    /// Primary method (chooses the layer, saved as the probe).
    pub method: Method,
    /// Inverse L2 strength (sklearn's `C`).
    pub c: f64,
    /// Mass-mean covariance correction (LDA direction).
    pub covariance_correction: bool,
    /// Shrinkage towards the identity for the covariance correction.
    pub shrinkage: f64,
    /// Cross-validation folds (fewer if there are fewer groups).
    pub folds: usize,
    /// Bootstrap resamples for AUROC intervals.
    pub bootstrap: usize,
    /// Random directions in the baseline.
    pub random_directions: usize,
    /// Seed for splits, control labels, bootstrap and random directions.
    pub seed: u64,
    /// Prompts per forward pass.
    pub batch_size: usize,
    /// Hooks within this AUROC of the best count as tied; the earliest tied hook is chosen.
    pub tie_tolerance: f64,
    /// L-BFGS iteration cap.
    pub max_iter: usize,
    /// L-BFGS stops when every gradient component of the mean objective is below this
    /// (scikit-learn's `tol`).
    #[serde(default = "default_tol")]
    pub tol: f64,
    /// Tokenisation.
    pub text_format: TextFormat,
}

fn default_tol() -> f64 {
    1e-4
}

impl Default for ProbeParams {
    fn default() -> Self {
        ProbeParams {
            hooks: "blocks.*.hook_resid_post".into(),
            position: Reduce::Last,
            method: Method::Logreg,
            c: 1.0,
            covariance_correction: false,
            shrinkage: 0.1,
            folds: 5,
            bootstrap: 1000,
            random_directions: 20,
            seed: 0,
            batch_size: 8,
            tie_tolerance: 0.005,
            max_iter: 300,
            tol: default_tol(),
            text_format: TextFormat::default(),
        }
    }
}

/// Token ids for texts under a text format.
pub fn tokenize(model: &Model, texts: &[&str], fmt: &TextFormat) -> Result<Vec<Vec<u32>>> {
    let tok = model.tokenizer()?;
    texts
        .iter()
        .map(|t| {
            if fmt.chat_template {
                let prompt = tok.apply_chat_template(
                    &[ChatMessage {
                        role: "user".into(),
                        content: t.to_string(),
                    }],
                    true,
                )?;
                tok.encode(&prompt, false)
            } else {
                let ids = tok.encode(t, fmt.add_special_tokens)?;
                if ids.is_empty() {
                    return Err(MechError::Data(format!("text {t:?} tokenises to nothing")));
                }
                Ok(ids)
            }
        })
        .collect()
}

/// Read one vector per text at each hook (reduced over positions), batching texts of similar
/// length together. Only the requested hooks are cached and the pass stops after the deepest.
pub fn extract(
    model: &Model,
    token_rows: &[Vec<u32>],
    hooks: &[HookPoint],
    reduce: Reduce,
    batch_size: usize,
) -> Result<BTreeMap<HookPoint, Matrix>> {
    if matches!(reduce, Reduce::None) {
        return Err(MechError::Invalid(
            "probes need one vector per text: position must be last, mean or an index".into(),
        ));
    }
    if hooks.iter().any(|h| matches!(h, HookPoint::AttnPattern(_))) {
        return Err(MechError::Invalid("attention patterns are not residual-stream vectors; probe a resid/attn_out/mlp_out hook".into()));
    }
    let n = token_rows.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (token_rows[i].len(), i));
    let plan = RunPlan::caching(hooks, reduce);
    let pad = model.tokenizer.as_ref().map_or(0, |t| t.pad_id());
    let mut rows: BTreeMap<HookPoint, Vec<Vec<f32>>> =
        hooks.iter().map(|h| (*h, vec![Vec::new(); n])).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|&i| token_rows[i].clone()).collect();
        let batch = Batch::from_token_ids(&ids, pad, model.device())?;
        let out = model.run(&batch, &plan)?;
        for h in hooks {
            let t = out
                .cache
                .get(h)
                .ok_or_else(|| MechError::Invalid(format!("hook {h} was not reached")))?;
            for (r, v) in chunk.iter().zip(rows_f32(&t.flatten_from(1)?)?) {
                rows.get_mut(h).expect("hook present")[*r] = v;
            }
        }
    }
    Ok(rows
        .into_iter()
        .map(|(h, r)| (h, Matrix::from_rows(&r)))
        .collect())
}

/// Cross-validated metrics of one method.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodMetrics {
    /// Out-of-fold AUROC.
    pub auroc: f64,
    /// Bootstrap 95% interval of the AUROC.
    pub auroc_ci95: Option<[f64; 2]>,
    /// Out-of-fold accuracy at the method's natural threshold.
    pub accuracy: f64,
    /// Out-of-fold recall at 1% false-positive rate.
    pub recall_at_1pct_fpr: Option<f64>,
}

/// Metrics for one hook.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookMetrics {
    /// Hook name.
    pub hook: String,
    /// Feature width.
    pub d: usize,
    /// Logistic regression.
    pub logreg: MethodMetrics,
    /// Mass-mean.
    pub mass_mean: MethodMetrics,
    /// The primary method on random per-group labels (same splits).
    pub control_auroc: f64,
    /// Control accuracy.
    pub control_accuracy: f64,
    /// Primary AUROC minus control AUROC.
    pub selectivity_auroc: f64,
    /// Primary accuracy minus control accuracy.
    pub selectivity_accuracy: f64,
    /// Mean out-of-fold AUROC of random unit directions (sign fitted on training folds).
    pub random_direction_auroc_mean: f64,
    /// 95th percentile of those.
    pub random_direction_auroc_p95: f64,
}

impl HookMetrics {
    /// The primary method's metrics.
    pub fn primary(&self, m: Method) -> &MethodMetrics {
        match m {
            Method::Logreg => &self.logreg,
            Method::MassMean => &self.mass_mean,
        }
    }
}

/// A probe fitted on all data at one hook, as a raw-activation-space linear scorer.
#[derive(Debug, Clone)]
pub struct FittedProbe {
    /// Hook.
    pub hook: HookPoint,
    /// Method.
    pub method: Method,
    /// `score = w·x + b` on raw activations.
    pub w: Vec<f64>,
    /// Bias.
    pub b: f64,
    /// Standardisation mean (logreg).
    pub mean: Vec<f64>,
    /// Standardisation std (logreg).
    pub std: Vec<f64>,
    /// Mass-mean direction on raw activations (always computed, for comparison).
    pub mass_mean_w: Vec<f64>,
}

impl FittedProbe {
    /// Unit vector along `w` (the probe's direction in the residual stream).
    pub fn direction(&self) -> Vec<f64> {
        unit(&self.w)
    }
}

/// Result of [`run_probe`].
#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    /// Metrics per hook, in forward order.
    pub per_hook: Vec<HookMetrics>,
    /// Index into `per_hook` of the chosen hook.
    pub chosen: usize,
    /// How the data was split.
    pub split: SplitInfo,
    /// Fitted on all rows at the chosen hook.
    pub probe: FittedProbe,
    /// Unit direction of the primary method fitted on all rows, per hook.
    pub directions: BTreeMap<HookPoint, Vec<f64>>,
    /// Rows and positives.
    pub n: usize,
    /// Positive rows.
    pub n_pos: usize,
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / n).collect()
    }
}

/// Fit a scorer of `method` (with `p`'s regularisation) on rows `x` and return it as
/// `score = w·x + b` on raw activations.
///
/// Why: comparisons that apply one model's probe to another model's activations (`diff`)
/// must fit exactly the probe [`run_probe`] fits, fold by fold.
pub fn fit_scorer(x: &Matrix, y: &[f64], method: Method, p: &ProbeParams) -> LinearScorer {
    fit_raw(x, y, method, p).0
}

/// Fit a scorer of `method` on training rows and return it in raw activation space.
fn fit_raw(x: &Matrix, y: &[f64], method: Method, p: &ProbeParams) -> (LinearScorer, Standardizer) {
    match method {
        Method::Logreg => {
            let opts = LogregOptions {
                c: p.c,
                max_iter: p.max_iter,
                tol: p.tol,
            };
            fit_logreg_standardized(x, y, &opts)
        }
        Method::MassMean => (
            fit_mass_mean(x, y, p.covariance_correction, p.shrinkage),
            Standardizer::fit(x),
        ),
    }
}

fn method_metrics(scores: &[f64], y: &[f64], reps: usize, rng: &mut Rng) -> MethodMetrics {
    MethodMetrics {
        auroc: auroc(scores, y).unwrap_or(0.5),
        auroc_ci95: bootstrap_auroc_ci(scores, y, reps, rng).map(|(a, b)| [a, b]),
        accuracy: accuracy(scores, y, 0.0),
        recall_at_1pct_fpr: recall_at_fpr(scores, y, 0.01),
    }
}

/// Check labels are usable: present, both classes, enough of each.
pub fn check_labels(examples: &[Example]) -> Result<Vec<f64>> {
    let y: Vec<f64> = examples
        .iter()
        .map(|e| {
            e.label
                .ok_or_else(|| MechError::Data("every row needs a label".into()))
        })
        .collect::<Result<_>>()?;
    let pos = y.iter().filter(|&&l| l > 0.5).count();
    let neg = y.len() - pos;
    if pos == 0 || neg == 0 {
        return Err(MechError::Data(format!(
            "labels are single-class ({pos} positive, {neg} negative); a probe needs both classes"
        )));
    }
    if pos < 2 || neg < 2 {
        return Err(MechError::Data(format!(
            "too few rows per class ({pos} positive, {neg} negative); need at least 2 of each for cross-validation"
        )));
    }
    Ok(y)
}

/// Cross-validate probes at every hook, with control task and random-direction baseline,
/// choose a hook, and fit the final probe on all rows there.
pub fn run_probe(
    acts: &BTreeMap<HookPoint, Matrix>,
    examples: &[Example],
    params: &ProbeParams,
) -> Result<ProbeOutcome> {
    let y = check_labels(examples)?;
    let n = y.len();
    let groups: Option<Vec<String>> = if examples.iter().all(|e| e.group.is_some()) {
        Some(
            examples
                .iter()
                .map(|e| e.group.clone().unwrap_or_default())
                .collect(),
        )
    } else if examples.iter().any(|e| e.group.is_some()) {
        return Err(MechError::Data(
            "some rows have `group` and some do not; give it on every row or none".into(),
        ));
    } else {
        None
    };
    let mut rng = Rng::new(params.seed, 10);
    let (fold, split) = assign_folds(&y, groups.as_deref(), params.folds, &mut rng)?;
    let y_ctrl = control_labels(&y, groups.as_deref(), &mut Rng::new(params.seed, 11));
    let k = split.folds;
    let mut per_hook = Vec::new();
    let mut directions = BTreeMap::new();
    for (hi, (hook, x)) in acts.iter().enumerate() {
        if x.n != n {
            return Err(MechError::Invalid(format!(
                "{hook}: {} rows for {n} labels",
                x.n
            )));
        }
        let mut oof_lr = vec![0.0; n];
        let mut oof_mm = vec![0.0; n];
        let mut oof_ctrl = vec![0.0; n];
        let r = params.random_directions;
        let mut oof_rand = vec![vec![0.0; n]; r];
        let mut dir_rng = Rng::new(params.seed, 1000 + hi as u64);
        let rand_dirs: Vec<Vec<f64>> = (0..r)
            .map(|_| unit(&(0..x.d).map(|_| dir_rng.normal()).collect::<Vec<_>>()))
            .collect();
        for f in 0..k {
            let train: Vec<usize> = (0..n).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold[i] == f).collect();
            if test.is_empty() {
                continue;
            }
            let xtr = x.select(&train);
            let xte = x.select(&test);
            let ytr: Vec<f64> = train.iter().map(|&i| y[i]).collect();
            let yctr: Vec<f64> = train.iter().map(|&i| y_ctrl[i]).collect();
            let (lr, st) = fit_raw(&xtr, &ytr, Method::Logreg, params);
            let (mm, _) = fit_raw(&xtr, &ytr, Method::MassMean, params);
            let (ctrl, _) = fit_raw(&xtr, &yctr, params.method, params);
            for (j, &i) in test.iter().enumerate() {
                let row = xte.row(j);
                oof_lr[i] = dot_row(&lr.w, row) + lr.b;
                oof_mm[i] = dot_row(&mm.w, row) + mm.b;
                oof_ctrl[i] = dot_row(&ctrl.w, row) + ctrl.b;
            }
            // Random directions in standardised space; sign set on the training fold.
            let ztr = st.transform(&xtr);
            let zte = st.transform(&xte);
            for (ri, dir) in rand_dirs.iter().enumerate() {
                let proj = |m: &Matrix, i: usize| dot_row(dir, m.row(i));
                let (mut sp, mut sn, mut np_, mut nn_) = (0.0, 0.0, 0usize, 0usize);
                for (i, &l) in ytr.iter().enumerate() {
                    if l > 0.5 {
                        sp += proj(&ztr, i);
                        np_ += 1;
                    } else {
                        sn += proj(&ztr, i);
                        nn_ += 1;
                    }
                }
                let sign = if sp / np_.max(1) as f64 >= sn / nn_.max(1) as f64 {
                    1.0
                } else {
                    -1.0
                };
                for (j, &i) in test.iter().enumerate() {
                    oof_rand[ri][i] = sign * proj(&zte, j);
                }
            }
        }
        let mut brng = Rng::new(params.seed, 2000 + hi as u64);
        let lr_m = method_metrics(&oof_lr, &y, params.bootstrap, &mut brng);
        let mm_m = method_metrics(&oof_mm, &y, params.bootstrap, &mut brng);
        let ctrl_auc = auroc(&oof_ctrl, &y_ctrl).unwrap_or(0.5);
        let ctrl_acc = accuracy(&oof_ctrl, &y_ctrl, 0.0);
        let mut rand_aucs: Vec<f64> = oof_rand
            .iter()
            .map(|s| auroc(s, &y).unwrap_or(0.5))
            .collect();
        rand_aucs.sort_by(f64::total_cmp);
        let (rmean, rp95) = if rand_aucs.is_empty() {
            (0.5, 0.5)
        } else {
            (
                rand_aucs.iter().sum::<f64>() / rand_aucs.len() as f64,
                rand_aucs[((0.95 * (rand_aucs.len() - 1) as f64).round()) as usize],
            )
        };
        let prim = if params.method == Method::Logreg {
            &lr_m
        } else {
            &mm_m
        };
        let hm = HookMetrics {
            hook: hook.to_string(),
            d: x.d,
            selectivity_auroc: prim.auroc - ctrl_auc,
            selectivity_accuracy: prim.accuracy - ctrl_acc,
            logreg: lr_m,
            mass_mean: mm_m,
            control_auroc: ctrl_auc,
            control_accuracy: ctrl_acc,
            random_direction_auroc_mean: rmean,
            random_direction_auroc_p95: rp95,
        };
        per_hook.push(hm);
        let (full, _) = fit_raw(x, &y, params.method, params);
        directions.insert(*hook, unit(&full.w));
    }
    if per_hook.is_empty() {
        return Err(MechError::Invalid("no hooks to probe".into()));
    }
    let best = per_hook
        .iter()
        .map(|h| h.primary(params.method).auroc)
        .fold(f64::MIN, f64::max);
    let chosen = per_hook
        .iter()
        .position(|h| h.primary(params.method).auroc >= best - params.tie_tolerance)
        .unwrap_or(0);
    let (hook, x) = acts.iter().nth(chosen).expect("chosen index in range");
    let (full, st) = fit_raw(x, &y, params.method, params);
    let (mm, _) = fit_raw(x, &y, Method::MassMean, params);
    Ok(ProbeOutcome {
        chosen,
        split,
        probe: FittedProbe {
            hook: *hook,
            method: params.method,
            w: full.w,
            b: full.b,
            mean: st.mean,
            std: st.std,
            mass_mean_w: mm.w,
        },
        directions,
        n,
        n_pos: y.iter().filter(|&&l| l > 0.5).count(),
        per_hook,
    })
}

/// Cosine similarity.
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na * nb)
    }
}
