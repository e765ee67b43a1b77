//! `assay mech behave`: a behavioural evaluation of a model from its outputs only.
//!
//! Each row of the data names a prompt and the one token the model is expected to answer;
//! the model's answer is the argmax token at the last position. The record is
//! `behavioural_eval` with `query_outputs` access (black box): it is the baseline the
//! mechanistic records are weighed against, and it says nothing about what the model would
//! do on inputs outside the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{D, IndexOp};
use serde_json::json;

use crate::digest::file_digest;
use crate::error::{MechError, Result};
use crate::evidence::{DataRef, EvidenceRecord, Reproduction};
use crate::hooks::RunPlan;
use crate::model::Model;
use crate::tokenizer::ModelTokenizer;

/// Arguments of `assay mech behave`.
#[derive(Debug, Clone, clap::Args)]
pub struct BehaveArgs {
    /// Model: a Hugging Face directory (config.json + *.safetensors) or a .gguf file (decoders).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL with {"text", "expected" (one token), "kind"?} per line.
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory (created): evidence.json, predictions.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// The claim this evidence bears on (recorded in the evidence record).
    #[arg(long)]
    pub claim: Option<String>,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
}

/// One row of behaviour data.
///
/// Why: the expected answer is checked to be one token before anything runs, so a row can
/// never be scored against a token the model cannot produce in one step.
#[derive(Debug, Clone)]
pub struct BehaviourRow {
    /// Prompt.
    pub text: String,
    /// Expected answer as written.
    pub expected: String,
    /// Its single token id.
    pub expected_id: u32,
    /// Optional grouping for per-kind results.
    pub kind: Option<String>,
}

/// Read `{text, expected, kind?}` rows; `expected` must encode to exactly one token.
/// Errors name the file and line.
pub fn read_rows(path: &Path, tok: &ModelTokenizer) -> Result<Vec<BehaviourRow>> {
    let s = std::fs::read_to_string(path).map_err(|e| MechError::io(path, e))?;
    let perr = |line: usize, m: String| MechError::Parse {
        path: path.into(),
        message: format!("line {line}: {m}"),
    };
    let mut rows = Vec::new();
    for (i, line) in s.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| perr(ln, e.to_string()))?;
        let field = |k: &str| -> Result<String> {
            match v.get(k) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(serde_json::Value::String(_)) => Err(perr(ln, format!("`{k}` is empty"))),
                _ => Err(perr(ln, format!("missing string field `{k}`"))),
            }
        };
        let text = field("text")?;
        let expected = field("expected")?;
        let kind = match v.get("kind") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(k) => return Err(perr(ln, format!("`kind` must be a string, got {k}"))),
        };
        let ids = tok
            .encode(&expected, false)
            .map_err(|e| perr(ln, format!("`expected` {expected:?}: {e}")))?;
        if ids.len() != 1 {
            return Err(perr(
                ln,
                format!(
                    "`expected` {expected:?} is {} tokens for this model's tokenizer {ids:?}; \
                     the answer is read as one token: give a single token (mind a leading space)",
                    ids.len()
                ),
            ));
        }
        // A word outside the vocabulary can still encode to one (unknown) token: the
        // token must decode back to the expected text.
        let back = tok.decode(&ids)?;
        if back.trim() != expected.trim() {
            return Err(perr(
                ln,
                format!(
                    "`expected` {expected:?} is not a token of this model's vocabulary \
                     (it encodes to id {} which decodes to {back:?})",
                    ids[0]
                ),
            ));
        }
        rows.push(BehaviourRow {
            text,
            expected,
            expected_id: ids[0],
            kind,
        });
    }
    if rows.is_empty() {
        return Err(MechError::Parse {
            path: path.into(),
            message: "no rows: expected one JSON object {text, expected, kind?} per line".into(),
        });
    }
    Ok(rows)
}

/// The model's answer (argmax token id at each row's last real position), in row order.
pub fn answers(model: &Model, rows: &[BehaviourRow], batch_size: usize) -> Result<Vec<u32>> {
    if batch_size == 0 {
        return Err(MechError::Invalid("--batch-size must be at least 1".into()));
    }
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch_size) {
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let batch = model.batch_texts(&texts)?;
        let logits = model
            .run(&batch, &RunPlan::output_only())?
            .output
            .ok_or_else(|| MechError::Invalid("the forward pass returned no logits".into()))?;
        for (i, len) in batch.lengths.iter().enumerate() {
            let id: u32 = logits.i((i, len - 1))?.argmax(D::Minus1)?.to_scalar()?;
            out.push(id);
        }
    }
    Ok(out)
}

/// Wilson score 95% interval for `k` successes in `n` trials (`[0, 1]` when `n` is 0).
///
/// Why: unlike the normal approximation it stays inside [0, 1] and is not degenerate at
/// 0% or 100%, which is exactly where behavioural results on a trained model sit.
pub fn wilson_ci95(k: usize, n: usize) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let z = 1.959_963_984_540_054_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At 0 and n successes the bound is exactly 0 or 1; say so instead of 1 − 1e-16.
    let lo = if k == 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if k == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    [lo, hi]
}

fn summary(n: usize, correct: usize) -> serde_json::Value {
    json!({
        "n": n,
        "correct": correct,
        "accuracy": correct as f64 / n as f64,
        "accuracy_ci95": wilson_ci95(correct, n),
    })
}

/// The caveat every behavioural record carries.
pub const BEHAVIOUR_CAVEAT: &str = "behavioural evidence observes outputs on these inputs only: a model that holds a hidden, input-conditioned objective and a model that lacks it give the same record on inputs that never meet the condition";

/// `assay mech behave`.
pub fn cmd_behave(a: &BehaveArgs, argv: &[String]) -> Result<()> {
    let model = Model::load(&a.model)?;
    if !model.info.has_lm_head {
        return Err(MechError::Invalid(format!(
            "model at {} is an encoder ({}) without an output head; behave reads the answer token of a decoder",
            a.model.display(),
            model.info.architecture
        )));
    }
    let tok = model.tokenizer()?;
    let rows = read_rows(&a.data, tok)?;
    let data_digest = file_digest(&a.data, &a.data.display().to_string())?;
    let ids = answers(&model, &rows, a.batch_size)?;

    let mut lines = String::new();
    let mut correct = 0usize;
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut answer_counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (r, id)) in rows.iter().zip(&ids).enumerate() {
        let ok = *id == r.expected_id;
        let answer = tok.decode(&[*id]).unwrap_or_else(|_| format!("#{id}"));
        correct += usize::from(ok);
        if let Some(k) = &r.kind {
            let e = per_kind.entry(k.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(ok);
        }
        *answer_counts.entry(answer.clone()).or_default() += 1;
        let row = json!({"index": i, "text": r.text, "expected": r.expected, "answer": answer, "correct": ok});
        lines += &(serde_json::to_string(&row).expect("serialisable") + "\n");
    }
    std::fs::create_dir_all(&a.out).map_err(|e| MechError::io(&a.out, e))?;
    let pred_path = a.out.join("predictions.jsonl");
    std::fs::write(&pred_path, &lines).map_err(|e| MechError::io(&pred_path, e))?;

    let n = rows.len();
    let mut results = summary(n, correct);
    results["per_kind"] = json!(
        per_kind
            .iter()
            .map(|(k, (n, c))| (k.clone(), summary(*n, *c)))
            .collect::<BTreeMap<_, _>>()
    );
    results["answers"] = json!(answer_counts);
    let params = json!({
        "batch_size": a.batch_size,
        "position": "last",
        "answer": "argmax token at the last position",
        "add_special_tokens": true,
    });
    let rec = EvidenceRecord::new(
        "behavioural_eval",
        &["query_outputs"],
        a.claim.clone(),
        model.info.clone(),
        vec![DataRef {
            role: "behaviour".into(),
            file: data_digest,
            rows: n,
        }],
        0,
        params,
        results.clone(),
        vec![file_digest(&pred_path, "predictions.jsonl")?],
        Reproduction::from_argv(argv, None),
    )?
    .with_caveat(BEHAVIOUR_CAVEAT)?;
    let ev_path = a.out.join("evidence.json");
    rec.write(&ev_path)?;

    let ci = wilson_ci95(correct, n);
    println!(
        "behave: {correct}/{n} correct ({:.1}%, 95% CI [{:.1}%, {:.1}%])",
        100.0 * correct as f64 / n as f64,
        100.0 * ci[0],
        100.0 * ci[1]
    );
    for (k, (kn, kc)) in &per_kind {
        println!("  {k:<16} {kc}/{kn}");
    }
    println!("wrote {} and {}", pred_path.display(), ev_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wilson_ci95;

    #[test]
    fn wilson_matches_reference_values() {
        // Reference values: Wilson (1927) closed form evaluated independently in Python;
        // 0/10 → [0, 0.2775] is the commonly tabulated value.
        let [lo, hi] = wilson_ci95(40, 100);
        assert!((lo - 0.30940).abs() < 1e-4 && (hi - 0.49800).abs() < 1e-4);
        let [lo, hi] = wilson_ci95(100, 100);
        assert!((lo - 0.96300).abs() < 1e-4 && hi == 1.0);
        let [lo, hi] = wilson_ci95(0, 10);
        assert!(lo == 0.0 && (hi - 0.27753).abs() < 1e-4);
        assert_eq!(wilson_ci95(400, 400)[1], 1.0);
        let [lo, hi] = wilson_ci95(1, 400);
        assert!((lo - 0.000441).abs() < 1e-5 && (hi - 0.014023).abs() < 1e-5);
    }
}
