//! The `assay mech ...` command line, mountable by the `assay` binary in one line.
//!
//! ```ignore
//! #[derive(clap::Subcommand)]
//! enum Command { #[command(subcommand)] Mech(assay_mech::cli::MechCommand), ... }
//! // ...
//! Command::Mech(cmd) => std::process::exit(assay_mech::cli::run(cmd)?),
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::json;

use crate::digest::{FileDigest, file_digest};
use crate::error::{MechError, Result};
use crate::evidence::{DataRef, EvidenceRecord, Reproduction};
use crate::hooks::{HookPoint, Reduce, resolve_hooks};
use crate::model::Model;
use crate::probe::{self, Method, ProbeParams, TextFormat};

pub use crate::patch::cli::PatchArgs;

/// Subcommands of `assay mech`.
///
/// Why: the CLI crate stays thin; everything mech-specific, including argument parsing,
/// lives here.
#[derive(Debug, clap::Subcommand)]
pub enum MechCommand {
    /// Fit linear probes for a labelled property at each hook and pick the layer where it is
    /// most linearly readable, with control task and random-direction baselines.
    Probe(ProbeArgs),
    /// Score texts with a probe saved by `probe`.
    Apply(ApplyArgs),
    /// Show a model's architecture, provenance (file digests, quantisation) and hook names.
    Inspect(InspectArgs),
    /// Train a small model organism with a planted, trigger-conditioned hidden objective:
    /// before/after checkpoints, data sets and a manifest recording the ground truth.
    Organism(OrganismArgs),
    /// Activation patching: swap activations between a clean and a corrupted prompt at every
    /// layer × position (and head) and measure how much of the behaviour each one carries.
    Patch(PatchArgs),
    /// Compare two checkpoints of one architecture (before/after training): weight changes
    /// and their rank, next-token KL on a corpus, activation drift and CKA per block, the
    /// activation-difference lens, and probe transfer.
    Diff(DiffArgs),
    /// Behavioural evaluation from outputs only: the model's answer (argmax token at the
    /// last position) against the expected token, per row, with Wilson intervals.
    Behave(BehaveArgs),
}

pub use crate::behave::BehaveArgs;
pub use crate::diff::DiffArgs;

/// Arguments of `assay mech probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Model: a Hugging Face directory (config.json + *.safetensors) or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL with {"text", "label" (0/1), "group"?} per line.
    #[arg(long)]
    pub data: PathBuf,
    /// Hook names or patterns, comma-separated (e.g. 'blocks.*.hook_resid_post').
    #[arg(long, default_value = "blocks.*.hook_resid_post")]
    pub hooks: String,
    /// Token position to read: last, mean, or a token index.
    #[arg(long, default_value = "last", value_parser = parse_reduce)]
    pub position: Reduce,
    /// Output directory (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Method that chooses the layer and is saved.
    #[arg(long, value_enum, default_value = "logreg")]
    pub method: Method,
    /// Inverse L2 regularisation strength for logistic regression (sklearn's C).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// Use the covariance-corrected (LDA) mass-mean direction.
    #[arg(long)]
    pub covariance_correction: bool,
    /// Covariance shrinkage towards the identity (with --covariance-correction).
    #[arg(long, default_value_t = 0.1)]
    pub shrinkage: f64,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Bootstrap resamples for AUROC confidence intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Random directions in the baseline.
    #[arg(long, default_value_t = 20)]
    pub random_directions: usize,
    /// Seed for every random choice (stored in the outputs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Wrap each text as a user message in the model's chat template.
    #[arg(long)]
    pub chat_template: bool,
    /// Do not add the tokenizer's special tokens (BOS, [CLS]/[SEP]).
    #[arg(long)]
    pub no_special_tokens: bool,
    /// The claim this evidence bears on (recorded in the evidence record).
    #[arg(long)]
    pub claim: Option<String>,
}

/// Arguments of `assay mech apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    /// Directory written by `assay mech probe`.
    #[arg(long)]
    pub probe: PathBuf,
    /// JSONL with {"text", "label"?, "group"?} per line.
    #[arg(long)]
    pub data: PathBuf,
    /// Model to run (default: the path recorded in probe.json). Its digest must match.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output directory (default: <probe>/apply).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// The claim this evidence bears on.
    #[arg(long)]
    pub claim: Option<String>,
}

/// Arguments of `assay mech inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Model: a Hugging Face directory or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `assay mech organism`.
#[derive(Debug, Clone, clap::Args)]
pub struct OrganismArgs {
    /// Output directory (created): before/, after/, data/, manifest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for weights, training batches and data sets (stored in the manifest).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

fn parse_reduce(s: &str) -> std::result::Result<Reduce, String> {
    let r: Reduce = s.parse()?;
    if r == Reduce::None {
        return Err("a probe reads one vector per text: use last, mean or an index".into());
    }
    Ok(r)
}

/// Run a mech subcommand; returns the process exit code.
///
/// `argv` is the process's command line as run (`std::env::args()`); every evidence record
/// stores it, `argv[0]` replaced by `assay`, as its reproduction recipe. Library callers
/// without one pass `&[]`, and their records carry an empty (non-runnable) recipe.
///
/// Exit codes: 0 success; 2 bad input (missing file, malformed data, unknown hook,
/// unsupported or broken model), with the reason on stderr. Internal failures are `Err`.
pub fn run(cmd: MechCommand, argv: &[String]) -> anyhow::Result<i32> {
    let res = match cmd {
        MechCommand::Probe(a) => cmd_probe(&a, argv),
        MechCommand::Apply(a) => cmd_apply(&a, argv),
        MechCommand::Inspect(a) => cmd_inspect(&a),
        MechCommand::Organism(a) => crate::organism::cmd_organism(&a),
        MechCommand::Patch(a) => crate::patch::cli::cmd_patch(&a, argv),
        MechCommand::Diff(a) => crate::diff::cmd_diff(&a, argv),
        MechCommand::Behave(a) => crate::behave::cmd_behave(&a, argv),
    };
    match res {
        Ok(()) => Ok(0),
        Err(MechError::Candle(e)) => Err(anyhow::anyhow!("internal tensor error: {e}")),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(2)
        }
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| MechError::io(p, e))
}

fn write_text(p: &Path, s: &str) -> Result<()> {
    std::fs::write(p, s).map_err(|e| MechError::io(p, e))
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.3}"))
}

fn cmd_probe(a: &ProbeArgs, argv: &[String]) -> Result<()> {
    let examples = probe::read_jsonl(&a.data, true)?;
    probe::check_labels(&examples)?;
    let data_digest = file_digest(&a.data, &a.data.display().to_string())?;
    let model = Model::load(&a.model)?;
    let hooks = resolve_hooks(&a.hooks, &model.hook_points())?;
    let params = ProbeParams {
        hooks: a.hooks.clone(),
        position: a.position,
        method: a.method,
        c: a.c,
        covariance_correction: a.covariance_correction,
        shrinkage: a.shrinkage,
        folds: a.folds,
        bootstrap: a.bootstrap,
        random_directions: a.random_directions,
        seed: a.seed,
        batch_size: a.batch_size,
        text_format: TextFormat {
            chat_template: a.chat_template,
            add_special_tokens: !a.no_special_tokens,
        },
        ..ProbeParams::default()
    };
    if a.folds < 2 {
        return Err(MechError::Invalid("--folds must be at least 2".into()));
    }
    eprintln!(
        "probe: {} rows, {} hooks, model {} ({}, {} layers), seed {}",
        examples.len(),
        hooks.len(),
        model.info.path,
        model.info.architecture,
        model.info.n_layers,
        a.seed
    );
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let tokens = probe::tokenize(&model, &texts, &params.text_format)?;
    let t0 = std::time::Instant::now();
    let acts = probe::extract(&model, &tokens, &hooks, params.position, params.batch_size)?;
    let n_tok: usize = tokens.iter().map(Vec::len).sum();
    eprintln!(
        "probe: read activations for {n_tok} tokens in {:.1?}",
        t0.elapsed()
    );
    let outcome = probe::run_probe(&acts, &examples, &params)?;
    mkdir(&a.out)?;

    // Direction file.
    let dir_path = a.out.join("direction.safetensors");
    let p = &outcome.probe;
    let t = |v: &[f64]| {
        Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).and_then(|t| t.to_dtype(DType::F64))
    };
    let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
    tensors.insert("w".into(), t(&p.w)?);
    tensors.insert("b".into(), t(&[p.b])?);
    tensors.insert("direction".into(), t(&p.direction())?);
    tensors.insert("mass_mean".into(), t(&p.mass_mean_w)?);
    tensors.insert("standardize_mean".into(), t(&p.mean)?);
    tensors.insert("standardize_std".into(), t(&p.std)?);
    for (h, d) in &outcome.directions {
        tensors.insert(format!("hooks.{h}"), t(d)?);
    }
    let tensors: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&tensors, &dir_path)?;

    let chosen = &outcome.per_hook[outcome.chosen];
    let title = format!(
        "Probe AUROC by hook — {} ({} rows, {})",
        model.info.architecture, outcome.n, outcome.split.kind
    );
    let svg_path = a.out.join("metric_by_layer.svg");
    write_text(
        &svg_path,
        &crate::svg::metric_by_layer(&outcome.per_hook, a.method, outcome.chosen, &title),
    )?;

    let data_ref = DataRef {
        role: "train".into(),
        file: data_digest,
        rows: examples.len(),
    };
    let score_rule = match a.method {
        Method::Logreg => "probability = sigmoid(w·x + b); predict 1 when w·x + b > 0",
        Method::MassMean => {
            "score = w·x + b; predict 1 when score > 0 (threshold midway between class means)"
        }
    };
    let probe_json = json!({
        "schema_version": "assay.probe/v1",
        "model": model.info,
        "data": data_ref,
        "params": params,
        "split": outcome.split,
        "n": outcome.n,
        "n_positive": outcome.n_pos,
        "chosen": {
            "hook": chosen.hook,
            "method": a.method,
            "position": params.position,
            "metrics": chosen,
            "rule": format!("earliest hook whose {} AUROC is within {} of the best", match a.method { Method::Logreg => "logreg", Method::MassMean => "mass-mean" }, params.tie_tolerance),
        },
        "direction_file": "direction.safetensors",
        "bias": p.b,
        "score": score_rule,
        "per_hook": outcome.per_hook,
    });
    let probe_path = a.out.join("probe.json");
    write_text(
        &probe_path,
        &(serde_json::to_string_pretty(&probe_json).expect("serialisable") + "\n"),
    )?;

    let artifacts: Vec<FileDigest> = [
        ("probe.json", &probe_path),
        ("direction.safetensors", &dir_path),
        ("metric_by_layer.svg", &svg_path),
    ]
    .iter()
    .map(|(n, p)| file_digest(p, n))
    .collect::<Result<_>>()?;
    let prim = chosen.primary(a.method);
    let results = json!({
        "chosen_hook": chosen.hook,
        "auroc": prim.auroc,
        "auroc_ci95": prim.auroc_ci95,
        "accuracy": prim.accuracy,
        "recall_at_1pct_fpr": prim.recall_at_1pct_fpr,
        "control_auroc": chosen.control_auroc,
        "selectivity_auroc": chosen.selectivity_auroc,
        "random_direction_auroc_mean": chosen.random_direction_auroc_mean,
        "random_direction_auroc_p95": chosen.random_direction_auroc_p95,
        "n": outcome.n,
        "n_positive": outcome.n_pos,
        "split": outcome.split,
        "per_hook": outcome.per_hook.iter().map(|h| json!({
            "hook": h.hook,
            "auroc": h.primary(a.method).auroc,
            "auroc_ci95": h.primary(a.method).auroc_ci95,
            "control_auroc": h.control_auroc,
            "selectivity_auroc": h.selectivity_auroc,
        })).collect::<Vec<_>>(),
    });
    let mut params_json = serde_json::to_value(&params).expect("serialisable");
    params_json["hooks_resolved"] = json!(hooks.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    let rec = EvidenceRecord::new(
        "linear_probe",
        &["weights_read", "activations_read"],
        a.claim.clone(),
        model.info.clone(),
        vec![data_ref],
        a.seed,
        params_json,
        results,
        artifacts,
        Reproduction::from_argv(argv, Some(a.seed)),
    )?;
    let ev_path = a.out.join("evidence.json");
    rec.write(&ev_path)?;

    println!(
        "{:<32} {:>7} {:>15} {:>6} {:>8} {:>7} {:>7} {:>7}",
        "hook", "AUROC", "95% CI", "acc", "rec@1%", "control", "select", "random"
    );
    for (i, h) in outcome.per_hook.iter().enumerate() {
        let m = h.primary(a.method);
        let ci = m
            .auroc_ci95
            .map_or("-".into(), |c| format!("[{:.3},{:.3}]", c[0], c[1]));
        println!(
            "{:<32} {:>7.3} {:>15} {:>6.3} {:>8} {:>7.3} {:>7.3} {:>7.3}{}",
            h.hook,
            m.auroc,
            ci,
            m.accuracy,
            fmt_opt(m.recall_at_1pct_fpr),
            h.control_auroc,
            h.selectivity_auroc,
            h.random_direction_auroc_mean,
            if i == outcome.chosen {
                "  <- chosen"
            } else {
                ""
            }
        );
    }
    println!(
        "chosen: {} ({} split, {} folds, seed {})",
        chosen.hook, outcome.split.kind, outcome.split.folds, a.seed
    );
    println!(
        "wrote {}, {}, {}, {}",
        probe_path.display(),
        dir_path.display(),
        svg_path.display(),
        ev_path.display()
    );
    Ok(())
}

/// A probe loaded back from a `probe` output directory.
///
/// Why: `apply` (and later the assurance layer) must score with exactly the saved probe.
pub struct SavedProbe {
    /// The parsed probe.json.
    pub json: serde_json::Value,
    /// Hook it reads.
    pub hook: HookPoint,
    /// Position it reads.
    pub position: Reduce,
    /// Method.
    pub method: Method,
    /// Raw-space weights.
    pub w: Vec<f64>,
    /// Bias.
    pub b: f64,
    /// Tokenisation used at training.
    pub text_format: TextFormat,
}

impl SavedProbe {
    /// Load `probe.json` and `direction.safetensors` from a directory.
    pub fn load(dir: &Path) -> Result<SavedProbe> {
        let pj = dir.join("probe.json");
        let s = std::fs::read_to_string(&pj).map_err(|e| MechError::io(&pj, e))?;
        let bad = |m: &str| MechError::Parse {
            path: pj.clone(),
            message: m.to_string(),
        };
        let json: serde_json::Value = serde_json::from_str(&s).map_err(|e| bad(&e.to_string()))?;
        let hook: HookPoint = json["chosen"]["hook"]
            .as_str()
            .ok_or_else(|| bad("missing chosen.hook"))?
            .parse()
            .map_err(|e: String| bad(&e))?;
        let position: Reduce = serde_json::from_value(json["chosen"]["position"].clone())
            .map_err(|e| bad(&e.to_string()))?;
        let method: Method = serde_json::from_value(json["chosen"]["method"].clone())
            .map_err(|e| bad(&e.to_string()))?;
        let text_format: TextFormat = serde_json::from_value(json["params"]["text_format"].clone())
            .map_err(|e| bad(&e.to_string()))?;
        let df = dir.join(
            json["direction_file"]
                .as_str()
                .unwrap_or("direction.safetensors"),
        );
        let tensors =
            candle_core::safetensors::load(&df, &Device::Cpu).map_err(|e| MechError::Parse {
                path: df.clone(),
                message: e.to_string(),
            })?;
        let get = |k: &str| -> Result<Vec<f64>> {
            tensors
                .get(k)
                .ok_or_else(|| MechError::Parse {
                    path: df.clone(),
                    message: format!("missing tensor `{k}`"),
                })?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()
                .map_err(MechError::from)
        };
        let w = get("w")?;
        let b = get("b")?.first().copied().unwrap_or(0.0);
        Ok(SavedProbe {
            json,
            hook,
            position,
            method,
            w,
            b,
            text_format,
        })
    }

    /// Model digest the probe was fitted on.
    pub fn model_digest(&self) -> Option<&str> {
        self.json["model"]["digest"].as_str()
    }
}

fn cmd_apply(a: &ApplyArgs, argv: &[String]) -> Result<()> {
    let sp = SavedProbe::load(&a.probe)?;
    let examples = probe::read_jsonl(&a.data, false)?;
    let data_digest = file_digest(&a.data, &a.data.display().to_string())?;
    let model_path = match &a.model {
        Some(p) => p.clone(),
        None => PathBuf::from(sp.json["model"]["path"].as_str().unwrap_or_default()),
    };
    let model = Model::load(&model_path)?;
    if let Some(d) = sp.model_digest().filter(|d| *d != model.info.digest) {
        return Err(MechError::Invalid(format!(
            "model at {} (digest {}) is not the model the probe was fitted on (digest {d})",
            model_path.display(),
            model.info.digest
        )));
    }
    model.check_hook(sp.hook)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let tokens = probe::tokenize(&model, &texts, &sp.text_format)?;
    let acts = probe::extract(&model, &tokens, &[sp.hook], sp.position, a.batch_size)?;
    let x = &acts[&sp.hook];
    if x.d != sp.w.len() {
        return Err(MechError::Invalid(format!(
            "probe has {} weights, activations have {}",
            sp.w.len(),
            x.d
        )));
    }
    let scores: Vec<f64> = (0..x.n)
        .map(|i| probe::linear::dot_row(&sp.w, x.row(i)) + sp.b)
        .collect();
    let out = a.out.clone().unwrap_or_else(|| a.probe.join("apply"));
    mkdir(&out)?;
    let mut lines = String::new();
    for (i, (e, s)) in examples.iter().zip(&scores).enumerate() {
        let mut row = json!({"index": i, "score": s, "predicted": if *s > 0.0 {1} else {0}});
        if sp.method == Method::Logreg {
            row["probability"] = json!(1.0 / (1.0 + (-s).exp()));
        }
        if let Some(l) = e.label {
            row["label"] = json!(l as u8);
        }
        lines += &(serde_json::to_string(&row).expect("serialisable") + "\n");
    }
    let scores_path = out.join("scores.jsonl");
    write_text(&scores_path, &lines)?;
    let labelled = examples.iter().all(|e| e.label.is_some());
    let mut results = json!({
        "n": examples.len(),
        "hook": sp.hook.to_string(),
        "predicted_positive": scores.iter().filter(|&&s| s > 0.0).count(),
    });
    if labelled {
        let y: Vec<f64> = examples.iter().map(|e| e.label.unwrap_or(0.0)).collect();
        let mut rng = crate::rng::Rng::new(0, 3000);
        results["auroc"] = json!(probe::metrics::auroc(&scores, &y));
        results["auroc_ci95"] = json!(probe::metrics::bootstrap_auroc_ci(
            &scores, &y, 1000, &mut rng
        ));
        results["accuracy"] = json!(probe::metrics::accuracy(&scores, &y, 0.0));
        results["recall_at_1pct_fpr"] = json!(probe::metrics::recall_at_fpr(&scores, &y, 0.01));
    }
    let artifacts = vec![
        file_digest(&scores_path, "scores.jsonl")?,
        file_digest(&a.probe.join("probe.json"), "probe/probe.json")?,
    ];
    let rec = EvidenceRecord::new(
        "probe_application",
        &["weights_read", "activations_read"],
        a.claim.clone(),
        model.info.clone(),
        vec![DataRef {
            role: "apply".into(),
            file: data_digest,
            rows: examples.len(),
        }],
        0,
        json!({"probe_dir": a.probe.display().to_string(), "hook": sp.hook.to_string(), "position": sp.position, "method": sp.method, "batch_size": a.batch_size, "bootstrap_seed": 0}),
        results.clone(),
        artifacts,
        Reproduction::from_argv(argv, None),
    )?;
    let ev_path = out.join("evidence.json");
    rec.write(&ev_path)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&results).expect("serialisable")
    );
    println!("wrote {} and {}", scores_path.display(), ev_path.display());
    Ok(())
}

fn cmd_inspect(a: &InspectArgs) -> Result<()> {
    let model = Model::load(&a.model)?;
    let hooks: Vec<String> = model.hook_points().iter().map(|h| h.to_string()).collect();
    if a.json {
        let v = json!({"model": model.info, "hooks": hooks,
            "tokenizer": model.tokenizer.as_ref().map(|t| json!({"source": t.source, "chat_template": t.chat_template.is_some()}))});
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(());
    }
    let i = &model.info;
    println!("model:        {}", i.path);
    println!("format:       {}", i.format);
    println!("architecture: {} (runs as {})", i.architecture, i.family);
    println!(
        "layers:       {}   d_model: {}   vocab: {}",
        i.n_layers, i.d_model, i.vocab_size
    );
    if i.dequantized {
        println!("weights:      dequantised to f32 from {:?}", i.quantization);
    }
    for f in &i.files {
        println!(
            "file:         {}  sha256:{}  {} bytes",
            f.path, f.sha256, f.bytes
        );
    }
    match &model.tokenizer {
        Some(t) => println!(
            "tokenizer:    {} (chat template: {})",
            t.source,
            if t.chat_template.is_some() {
                "yes"
            } else {
                "no"
            }
        ),
        None => println!("tokenizer:    none"),
    }
    println!("hooks ({}):", hooks.len());
    for h in hooks {
        println!("  {h}");
    }
    Ok(())
}
