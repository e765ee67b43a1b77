//! Loading models from Hugging Face directories or GGUF files, and running them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Tensor};
use serde_json::Value;

use crate::arch::bert::{Bert, BertConfig};
use crate::arch::gpt2::{Gpt2, Gpt2Config};
use crate::arch::llama::{
    Llama, Llama3RopeScaling, LlamaConfig, LlamaNames, RopeScaling, unpermute_qk,
};
use crate::digest::{FileDigest, combined_digest, file_digest};
use crate::error::{MechError, Result};
use crate::hooks::{ActivationCache, HookCtx, HookPoint, RunPlan};
use crate::tokenizer::ModelTokenizer;
use crate::weights::Weights;

/// The device forward passes run on: CPU, or the first CUDA GPU when built with the `cuda`
/// feature and one is present.
///
/// Why: the project must run everywhere on CPU; a GPU is an optional speed-up.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = Device::cuda_if_available(0) {
            return d;
        }
    }
    Device::Cpu
}

/// Where a model came from and what exactly was loaded.
///
/// Why: evidence must say which files (by digest), in which format, and whether the weights
/// analysed are a dequantisation of a quantised checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// The path given to the loader.
    pub path: String,
    /// `hf_safetensors` or `gguf`.
    pub format: String,
    /// Architecture as named by the checkpoint (`llama`, `qwen2`, `gpt2`, `bert`, ...).
    pub architecture: String,
    /// Which forward code runs it: `llama`, `gpt2` or `bert`.
    pub family: String,
    /// Every file read, with digests.
    pub files: Vec<FileDigest>,
    /// Digest over all files.
    pub digest: String,
    /// Number of blocks.
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Whether weights were dequantised (GGUF) to f32 before analysis.
    pub dequantized: bool,
    /// Count of tensors per stored type (`Q4_1`, `Q8_0`, `F32`, ...) for GGUF.
    pub quantization: BTreeMap<String, usize>,
    /// The dtype computations run in.
    pub compute_dtype: String,
    /// Whether the model produces logits (`true`) or hidden states (encoders).
    pub has_lm_head: bool,
}

enum Arch {
    Llama(Llama),
    Gpt2(Gpt2),
    Bert(Bert),
}

/// A loaded model with its tokenizer (if one was found) and provenance.
///
/// Why: the single handle every mech operation (probes, patching, diffing) works through.
pub struct Model {
    /// Provenance and shape.
    pub info: ModelInfo,
    /// The tokenizer shipped with the model, if any.
    pub tokenizer: Option<ModelTokenizer>,
    arch: Arch,
    device: Device,
}

/// Right-padded token ids for a batch of prompts.
///
/// Why: batching is where CPU throughput comes from; lengths keep padding out of every
/// result (attention masks, "last token", means).
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[batch, seq]` u32 ids, padded on the right.
    pub ids: Tensor,
    /// Real length of each row.
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Pad rows with `pad_id` to the longest one.
    pub fn from_token_ids(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Batch> {
        if rows.is_empty() {
            return Err(MechError::Invalid("empty batch".into()));
        }
        if let Some(i) = rows.iter().position(|r| r.is_empty()) {
            return Err(MechError::Invalid(format!("prompt {i} has no tokens")));
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut flat = Vec::with_capacity(rows.len() * t);
        for r in rows {
            flat.extend_from_slice(r);
            flat.extend(std::iter::repeat_n(pad_id, t - r.len()));
        }
        Ok(Batch {
            ids: Tensor::from_vec(flat, (rows.len(), t), device)?,
            lengths: rows.iter().map(Vec::len).collect(),
        })
    }
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct RunOutput {
    /// Logits `[batch, seq, vocab]` (decoders) or final hidden states `[batch, seq, d]`
    /// (encoders), when the plan asked for output.
    pub output: Option<Tensor>,
    /// The activations the plan asked to cache.
    pub cache: ActivationCache,
}

impl Model {
    /// Load from a Hugging Face directory (`config.json`, `*.safetensors`, optional
    /// `tokenizer.json`) or a `.gguf` file (or a directory holding exactly one). Never
    /// touches the network.
    ///
    /// `ASSAY_MECH_FUSED_KERNELS=0` in the environment turns the fused CPU kernels off (see
    /// [`Model::set_fused_kernels`]), so any command can be rerun on the composite path.
    pub fn load(path: &Path) -> Result<Model> {
        let mut model = Self::load_on(path, &default_device())?;
        if std::env::var("ASSAY_MECH_FUSED_KERNELS").is_ok_and(|v| v == "0") {
            model.set_fused_kernels(false);
        }
        Ok(model)
    }

    /// As [`Model::load`], on a given device.
    pub fn load_on(path: &Path, device: &Device) -> Result<Model> {
        if path.is_file() {
            if path.extension().is_some_and(|e| e == "gguf") {
                return load_gguf(path, device);
            }
            return Err(MechError::ModelFormat {
                path: path.into(),
                message: "a model file must be .gguf; for safetensors give the directory holding config.json".into(),
            });
        }
        if !path.is_dir() {
            return Err(MechError::ModelFormat {
                path: path.into(),
                message: "no such file or directory".into(),
            });
        }
        if path.join("config.json").is_file() {
            return load_hf(path, device);
        }
        let ggufs = list_ext(path, "gguf")?;
        match ggufs.as_slice() {
            [one] => load_gguf(one, device),
            [] => Err(MechError::ModelFormat {
                path: path.into(),
                message: "found neither config.json (Hugging Face layout) nor a .gguf file".into(),
            }),
            _ => Err(MechError::ModelFormat {
                path: path.into(),
                message: "several .gguf files; name the one to load".into(),
            }),
        }
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Turn the fused CPU kernels (attention, SwiGLU) on or off; they are on by default.
    ///
    /// Why: the composite-op path is the reference the fused kernels are tested against, and
    /// a user who suspects a kernel can rerun without it.
    pub fn set_fused_kernels(&mut self, on: bool) {
        if let Arch::Llama(m) = &mut self.arch {
            m.fused = on;
        }
    }

    /// Every hook point of this model, in forward order.
    pub fn hook_points(&self) -> Vec<HookPoint> {
        match &self.arch {
            Arch::Llama(m) => m.hook_points(),
            Arch::Gpt2(m) => m.hook_points(),
            Arch::Bert(m) => m.hook_points(),
        }
    }

    /// The tokenizer, or an error saying the model shipped none.
    pub fn tokenizer(&self) -> Result<&ModelTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| {
            MechError::Tokenizer(format!(
                "model at {} has no tokenizer (expected tokenizer.json or GGUF tokenizer metadata)",
                self.info.path
            ))
        })
    }

    /// Check a hook point exists, listing the valid ones if not.
    pub fn check_hook(&self, hook: HookPoint) -> Result<()> {
        let valid = self.hook_points();
        if valid.contains(&hook) {
            Ok(())
        } else {
            Err(MechError::UnknownHook {
                name: hook.to_string(),
                valid: valid.iter().map(|h| h.to_string()).collect(),
            })
        }
    }

    /// Run one forward pass with hooks.
    pub fn run(&self, batch: &Batch, plan: &RunPlan) -> Result<RunOutput> {
        for h in plan
            .cache
            .keys()
            .chain(plan.interventions.iter().map(|i| &i.hook))
        {
            self.check_hook(*h)?;
        }
        let (_, t) = batch.ids.dims2()?;
        let mut ctx = HookCtx::new(plan, &batch.lengths, t, &self.device);
        let stop = plan.last_needed_layer(self.info.n_layers);
        let ids = batch.ids.to_device(&self.device)?;
        let output = match &self.arch {
            Arch::Llama(m) => m.forward(&ids, &batch.lengths, &mut ctx, stop)?,
            Arch::Gpt2(m) => m.forward(&ids, &batch.lengths, &mut ctx, stop)?,
            Arch::Bert(m) => m.forward(&ids, &batch.lengths, &mut ctx, stop)?,
        };
        Ok(RunOutput {
            output,
            cache: ctx.cache,
        })
    }

    /// Read residual-stream vectors `[..., d_model]` through the final norm and the
    /// unembedding, giving logits `[..., vocab]` (the logit lens).
    ///
    /// Why: differences between two models' activations are interpreted by the tokens they
    /// push towards; encoders have no unembedding and are refused.
    pub fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_device(&self.device)?;
        match &self.arch {
            Arch::Llama(m) => m.unembed(&x),
            Arch::Gpt2(m) => m.unembed(&x),
            Arch::Bert(_) => Err(MechError::Invalid(format!(
                "model at {} is an encoder ({}) without an unembedding; reading vectors as tokens needs a decoder",
                self.info.path, self.info.architecture
            ))),
        }
    }

    /// Tokenize texts (with the tokenizer's special tokens) into a padded batch.
    pub fn batch_texts(&self, texts: &[&str]) -> Result<Batch> {
        let tok = self.tokenizer()?;
        let rows = texts
            .iter()
            .map(|t| tok.encode(t, true))
            .collect::<Result<Vec<_>>>()?;
        Batch::from_token_ids(&rows, tok.pad_id(), &self.device)
    }
}

/// Resuming a forward pass part-way through (decoders).
impl Model {
    /// Run the rest of a forward pass from a residual stream given at `start`.
    ///
    /// `start` is `blocks.{l}.hook_resid_pre`, `hook_resid_mid` or `hook_resid_post`;
    /// `resid` `[batch, seq, d_model]` is taken as that hook's value (after any edit) and the
    /// pass continues with whatever follows it, visiting later hooks as [`Model::run`] would.
    /// `lengths` are the rows' real lengths as in [`Batch`].
    ///
    /// Why: activation patching at block `l` changes nothing before it, so the unpatched
    /// prefix is computed once and every patched variant resumes from there.
    pub fn run_from(
        &self,
        start: HookPoint,
        resid: &Tensor,
        lengths: &[usize],
        plan: &RunPlan,
    ) -> Result<RunOutput> {
        self.resume(start, resid, lengths, plan, false)
    }

    /// As [`Model::run_from`], but the output is always computed (whatever
    /// `plan.want_output` says) and holds only each row's last-position logits, `[batch, vocab]`.
    ///
    /// Why: a metric read at the last token needs the unembedding only there.
    pub fn last_logits_from(
        &self,
        start: HookPoint,
        resid: &Tensor,
        lengths: &[usize],
        plan: &RunPlan,
    ) -> Result<RunOutput> {
        self.resume(start, resid, lengths, plan, true)
    }

    fn resume(
        &self,
        start: HookPoint,
        resid: &Tensor,
        lengths: &[usize],
        plan: &RunPlan,
        last_only: bool,
    ) -> Result<RunOutput> {
        use crate::arch::{Resume, ResumeStage};
        let n = self.info.n_layers;
        let from = match start {
            HookPoint::ResidPre(l) if l < n => Resume {
                layer: l,
                stage: ResumeStage::Attn,
            },
            HookPoint::ResidMid(l) if l < n => Resume {
                layer: l,
                stage: ResumeStage::Mlp,
            },
            HookPoint::ResidPost(l) if l < n => Resume {
                layer: l + 1,
                stage: ResumeStage::Pre,
            },
            other => {
                return Err(MechError::Invalid(format!(
                    "cannot resume a forward pass at `{other}`: give blocks.L.hook_resid_pre, \
                     blocks.L.hook_resid_mid or blocks.L.hook_resid_post with L below {n}"
                )));
            }
        };
        let (b, t, d) = resid.dims3().map_err(|_| {
            MechError::Invalid(format!(
                "the residual stream to resume from must be [batch, seq, d_model], got {:?}",
                resid.dims()
            ))
        })?;
        if d != self.info.d_model {
            return Err(MechError::Invalid(format!(
                "the residual stream to resume from has width {d}, the model's d_model is {}",
                self.info.d_model
            )));
        }
        if lengths.len() != b || lengths.iter().any(|&len| len == 0 || len > t) {
            return Err(MechError::Invalid(format!(
                "lengths {lengths:?} do not fit a residual stream of {b} rows × {t} positions"
            )));
        }
        for h in plan
            .cache
            .keys()
            .chain(plan.interventions.iter().map(|i| &i.hook))
        {
            self.check_hook(*h)?;
            if *h <= start {
                return Err(MechError::Invalid(format!(
                    "hook {h} comes before the resume point {start}, so a resumed pass never \
                     reaches it; cache or edit it in the run that produced the residual stream"
                )));
            }
        }
        let mut ctx = HookCtx::new(plan, lengths, t, &self.device);
        let stop = if last_only {
            None
        } else {
            plan.last_needed_layer(n)
        };
        let x = resid.to_device(&self.device)?;
        let output = match &self.arch {
            Arch::Llama(m) => m.forward_from(x, from, lengths, &mut ctx, stop, last_only)?,
            Arch::Gpt2(m) => m.forward_from(x, from, lengths, &mut ctx, stop, last_only)?,
            Arch::Bert(_) => {
                return Err(MechError::Invalid(format!(
                    "model at {} is an encoder (bert); resuming a forward pass is implemented \
                     for decoders (llama, gpt2) only",
                    self.info.path
                )));
            }
        };
        Ok(RunOutput {
            output,
            cache: ctx.cache,
        })
    }
}

fn list_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| MechError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    Ok(v)
}

fn read_json(path: &Path) -> Result<Value> {
    let s = std::fs::read_to_string(path).map_err(|e| MechError::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| MechError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

/// A dimension from `config.json`. Every dimension read here (sizes, counts of heads,
/// layers, positions) must be at least 1: a zero would divide by zero or build empty
/// tensors later, so it is refused with the file and key.
fn cfg_usize(cfg: &Value, keys: &[&str], path: &Path) -> Result<usize> {
    for k in keys {
        if let Some(v) = cfg.get(*k).and_then(Value::as_u64) {
            if v == 0 {
                return Err(MechError::ModelFormat {
                    path: path.join("config.json"),
                    message: format!("config.json `{k}` is 0; it must be at least 1"),
                });
            }
            return usize::try_from(v).map_err(|_| MechError::ModelFormat {
                path: path.join("config.json"),
                message: format!("config.json `{k}` = {v} does not fit this machine"),
            });
        }
    }
    Err(MechError::ModelFormat {
        path: path.into(),
        message: format!("config.json lacks `{}`", keys[0]),
    })
}

fn cfg_f64(cfg: &Value, key: &str, default: f64) -> f64 {
    cfg.get(key).and_then(Value::as_f64).unwrap_or(default)
}

/// The rotary base and scaling of a Llama-family `config.json`: older files put them in
/// `rope_theta` and `rope_scaling`, newer ones in `rope_parameters`.
fn rope_config(cfg: &Value, path: &Path, max_pos: usize) -> Result<(f64, Option<RopeScaling>)> {
    let params = ["rope_parameters", "rope_scaling"]
        .iter()
        .find_map(|k| cfg.get(*k).filter(|v| v.is_object()));
    let theta = cfg
        .get("rope_theta")
        .and_then(Value::as_f64)
        .or_else(|| {
            params
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64)
        })
        .unwrap_or(10000.0);
    let Some(rs) = params else {
        return Ok((theta, None));
    };
    let bad = |message: String| MechError::ModelFormat {
        path: path.into(),
        message,
    };
    let kind = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |k: &str| rs.get(k).and_then(Value::as_f64);
    let factor = || {
        num("factor").ok_or_else(|| {
            bad(format!(
                "rope scaling `{kind}` needs a numeric `factor`; add it to the rope_scaling block"
            ))
        })
    };
    let orig = rs
        .get("original_max_position_embeddings")
        .and_then(Value::as_u64)
        .map_or(max_pos, |v| v as usize);
    let scaling = match kind {
        "default" => None,
        "llama3" => Some(RopeScaling::Llama3(
            serde_json::from_value::<Llama3RopeScaling>(rs.clone())
                .map_err(|e| bad(format!("rope_scaling: {e}")))?,
        )),
        "linear" => Some(RopeScaling::Linear { factor: factor()? }),
        "dynamic" => Some(RopeScaling::Dynamic {
            factor: factor()?,
            original_max_position_embeddings: orig,
        }),
        "yarn" => {
            let factor = factor()?;
            let mscale = |scale: f64, m: f64| {
                if scale <= 1.0 {
                    1.0
                } else {
                    0.1 * m * scale.ln() + 1.0
                }
            };
            let attention_factor = match (
                num("attention_factor"),
                num("mscale"),
                num("mscale_all_dim"),
            ) {
                (Some(a), _, _) => a,
                (None, Some(m), Some(a)) if m != 0.0 && a != 0.0 => {
                    mscale(factor, m) / mscale(factor, a)
                }
                _ => mscale(factor, 1.0),
            };
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: orig,
                beta_fast: num("beta_fast").unwrap_or(32.0),
                beta_slow: num("beta_slow").unwrap_or(1.0),
                attention_factor,
                truncate: rs.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            })
        }
        other => {
            return Err(bad(format!(
                "rope scaling type `{other}` is not supported (supported: default, linear, \
                 dynamic, yarn, llama3)"
            )));
        }
    };
    Ok((theta, scaling))
}

/// Which blocks use sliding-window attention: `layer_types` when the config lists them,
/// else Mistral's `sliding_window` (every block) or Qwen2's `use_sliding_window` (blocks from
/// `max_window_layers` on).
fn sliding_windows(
    cfg: &Value,
    model_type: &str,
    n_layers: usize,
    path: &Path,
) -> Result<Vec<Option<usize>>> {
    let window = cfg
        .get("sliding_window")
        .and_then(Value::as_u64)
        .map(|w| w as usize);
    let Some(w) = window else {
        return Ok(vec![None; n_layers]);
    };
    if let Some(types) = cfg.get("layer_types").and_then(Value::as_array) {
        if types.len() != n_layers {
            return Err(MechError::ModelFormat {
                path: path.into(),
                message: format!(
                    "layer_types lists {} blocks but num_hidden_layers is {n_layers}",
                    types.len()
                ),
            });
        }
        return Ok(types
            .iter()
            .map(|t| (t.as_str() == Some("sliding_attention")).then_some(w))
            .collect());
    }
    Ok(match model_type {
        "mistral" | "mixtral" => vec![Some(w); n_layers],
        "qwen2" if cfg.get("use_sliding_window").and_then(Value::as_bool) == Some(true) => {
            let from = cfg
                .get("max_window_layers")
                .and_then(Value::as_u64)
                .map_or(0, |v| v as usize);
            (0..n_layers).map(|l| (l >= from).then_some(w)).collect()
        }
        _ => vec![None; n_layers],
    })
}

fn load_hf(dir: &Path, device: &Device) -> Result<Model> {
    let cfg_path = dir.join("config.json");
    let cfg = read_json(&cfg_path)?;
    let model_type = cfg
        .get("model_type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            cfg.get("architectures")
                .and_then(|a| a.get(0))
                .and_then(Value::as_str)
                .map(|s| s.to_lowercase())
        })
        .unwrap_or_default();
    let family = match model_type.as_str() {
        "llama" | "mistral" | "qwen2" => "llama",
        "gpt2" => "gpt2",
        "bert" => "bert",
        other => {
            return Err(MechError::UnsupportedArchitecture {
                found: if other.is_empty() {
                    "(config.json names no model_type)".into()
                } else {
                    other.into()
                },
            });
        }
    };
    let shards = list_ext(dir, "safetensors")?;
    if shards.is_empty() {
        return Err(MechError::ModelFormat {
            path: dir.into(),
            message: "no *.safetensors files next to config.json".into(),
        });
    }
    let mut files = vec![file_digest(&cfg_path, "config.json")?];
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for s in &shards {
        let name = s
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        files.push(file_digest(s, &name)?);
        let part =
            candle_core::safetensors::load(s, device).map_err(|e| MechError::ModelFormat {
                path: s.clone(),
                message: e.to_string(),
            })?;
        map.extend(part);
    }
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = if tok_path.is_file() {
        files.push(file_digest(&tok_path, "tokenizer.json")?);
        let tc = dir.join("tokenizer_config.json");
        let tc = if tc.is_file() {
            files.push(file_digest(&tc, "tokenizer_config.json")?);
            Some(read_json(&tc)?)
        } else {
            None
        };
        Some(ModelTokenizer::from_hf(&tok_path, tc.as_ref())?)
    } else {
        None
    };
    let p = dir;
    let (arch, n_layers, d_model, vocab, has_head) = match family {
        "llama" => {
            let d = cfg_usize(&cfg, &["hidden_size"], p)?;
            let n_heads = cfg_usize(&cfg, &["num_attention_heads"], p)?;
            let n_layers = cfg_usize(&cfg, &["num_hidden_layers"], p)?;
            let max_pos = cfg_usize(&cfg, &["max_position_embeddings"], p).unwrap_or(2048);
            let (rope_theta, rope_scaling) = rope_config(&cfg, &cfg_path, max_pos)?;
            let sliding_window = sliding_windows(&cfg, &model_type, n_layers, &cfg_path)?;
            let lc = LlamaConfig {
                d_model: d,
                n_layers,
                n_heads,
                n_kv_heads: cfg_usize(&cfg, &["num_key_value_heads"], p).unwrap_or(n_heads),
                head_dim: cfg_usize(&cfg, &["head_dim"], p).unwrap_or(d / n_heads),
                d_mlp: cfg_usize(&cfg, &["intermediate_size"], p)?,
                vocab_size: cfg_usize(&cfg, &["vocab_size"], p)?,
                rms_norm_eps: cfg_f64(&cfg, "rms_norm_eps", 1e-6),
                rope_theta,
                rope_scaling,
                sliding_window,
                max_position_embeddings: max_pos,
                tie_word_embeddings: cfg
                    .get("tie_word_embeddings")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                qkv_bias: model_type == "qwen2"
                    || cfg
                        .get("attention_bias")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
            };
            Llama::validate(&lc)?;
            let w = Weights::new(map, &[""], device);
            let m = Llama::new(lc.clone(), &w, &LlamaNames::hf())?;
            (Arch::Llama(m), lc.n_layers, lc.d_model, lc.vocab_size, true)
        }
        "gpt2" => {
            if cfg
                .get("scale_attn_by_inverse_layer_idx")
                .and_then(Value::as_bool)
                == Some(true)
                || cfg.get("reorder_and_upcast_attn").and_then(Value::as_bool) == Some(true)
            {
                return Err(MechError::ModelFormat {
                    path: cfg_path,
                    message: "GPT-2 variants with scale_attn_by_inverse_layer_idx or reorder_and_upcast_attn are not supported".into(),
                });
            }
            let act = cfg
                .get("activation_function")
                .and_then(Value::as_str)
                .unwrap_or("gelu_new");
            if act != "gelu_new" && act != "gelu_pytorch_tanh" {
                return Err(MechError::ModelFormat {
                    path: cfg_path,
                    message: format!("GPT-2 activation `{act}` is not supported (gelu_new only)"),
                });
            }
            let d = cfg_usize(&cfg, &["n_embd", "hidden_size"], p)?;
            let gc = Gpt2Config {
                d_model: d,
                n_layers: cfg_usize(&cfg, &["n_layer", "num_hidden_layers"], p)?,
                n_heads: cfg_usize(&cfg, &["n_head", "num_attention_heads"], p)?,
                d_mlp: cfg_usize(&cfg, &["n_inner"], p).unwrap_or(4 * d),
                vocab_size: cfg_usize(&cfg, &["vocab_size"], p)?,
                n_positions: cfg_usize(&cfg, &["n_positions", "max_position_embeddings"], p)?,
                layer_norm_eps: cfg_f64(&cfg, "layer_norm_epsilon", 1e-5),
            };
            let w = Weights::new(map, &["", "transformer."], device);
            let m = Gpt2::new(gc.clone(), &w)?;
            (Arch::Gpt2(m), gc.n_layers, gc.d_model, gc.vocab_size, true)
        }
        _ => {
            let bc = BertConfig {
                d_model: cfg_usize(&cfg, &["hidden_size"], p)?,
                n_layers: cfg_usize(&cfg, &["num_hidden_layers"], p)?,
                n_heads: cfg_usize(&cfg, &["num_attention_heads"], p)?,
                d_mlp: cfg_usize(&cfg, &["intermediate_size"], p)?,
                vocab_size: cfg_usize(&cfg, &["vocab_size"], p)?,
                max_position_embeddings: cfg_usize(&cfg, &["max_position_embeddings"], p)?,
                type_vocab_size: cfg_usize(&cfg, &["type_vocab_size"], p).unwrap_or(2),
                layer_norm_eps: cfg_f64(&cfg, "layer_norm_eps", 1e-12),
                hidden_act: cfg
                    .get("hidden_act")
                    .and_then(Value::as_str)
                    .unwrap_or("gelu")
                    .to_string(),
            };
            if let Some(pe) = cfg
                .get("position_embedding_type")
                .and_then(Value::as_str)
                .filter(|pe| *pe != "absolute")
            {
                return Err(MechError::ModelFormat {
                    path: cfg_path,
                    message: format!("BERT position_embedding_type `{pe}` is not supported"),
                });
            }
            let w = Weights::new(map, &["", "bert."], device);
            let m = Bert::new(bc.clone(), &w)?;
            (Arch::Bert(m), bc.n_layers, bc.d_model, bc.vocab_size, false)
        }
    };
    let digest = combined_digest(&files);
    Ok(Model {
        info: ModelInfo {
            path: dir.display().to_string(),
            format: "hf_safetensors".into(),
            architecture: model_type,
            family: family.into(),
            files,
            digest,
            n_layers,
            d_model,
            vocab_size: vocab,
            dequantized: false,
            quantization: BTreeMap::new(),
            compute_dtype: "f32".into(),
            has_lm_head: has_head,
        },
        tokenizer,
        arch,
        device: device.clone(),
    })
}

fn load_gguf(path: &Path, device: &Device) -> Result<Model> {
    let mut f = std::fs::File::open(path).map_err(|e| MechError::io(path, e))?;
    let ct = gguf_file::Content::read(&mut f).map_err(|e| MechError::ModelFormat {
        path: path.into(),
        message: format!("not a readable GGUF file: {e}"),
    })?;
    let md = |k: &str| ct.metadata.get(k);
    let arch = md("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    let interleaved = match arch.as_str() {
        "llama" | "mistral" => true,
        "qwen2" => false,
        other => {
            return Err(MechError::UnsupportedArchitecture {
                found: format!("{other} (GGUF)"),
            });
        }
    };
    let need_u = |k: &str| -> Result<usize> {
        let v = md(&format!("{arch}.{k}"))
            .and_then(|v| v.to_u64().ok().or_else(|| v.to_u32().ok().map(u64::from)))
            .ok_or_else(|| MechError::ModelFormat {
                path: path.into(),
                message: format!("GGUF metadata lacks `{arch}.{k}`"),
            })?;
        // Every count read here is a dimension: zero would divide by zero later.
        if v == 0 {
            return Err(MechError::ModelFormat {
                path: path.into(),
                message: format!("GGUF metadata `{arch}.{k}` is 0; it must be at least 1"),
            });
        }
        usize::try_from(v).map_err(|_| MechError::ModelFormat {
            path: path.into(),
            message: format!("GGUF metadata `{arch}.{k}` = {v} does not fit this machine"),
        })
    };
    let opt_f = |k: &str| md(&format!("{arch}.{k}")).and_then(|v| v.to_f32().ok());
    let d = need_u("embedding_length")?;
    let n_heads = need_u("attention.head_count")?;
    let n_kv = need_u("attention.head_count_kv").unwrap_or(n_heads);
    let vocab = ct
        .tensor_infos
        .get("token_embd.weight")
        .map(|t| t.shape.dims()[0])
        .ok_or_else(|| MechError::MissingTensors {
            missing: vec!["token_embd.weight".into()],
        })?;
    let head_dim = need_u("attention.key_length")
        .or_else(|_| need_u("rope.dimension_count"))
        .unwrap_or(d / n_heads);
    let lc = LlamaConfig {
        d_model: d,
        n_layers: need_u("block_count")?,
        n_heads,
        n_kv_heads: n_kv,
        head_dim,
        d_mlp: need_u("feed_forward_length")?,
        vocab_size: vocab,
        rms_norm_eps: opt_f("attention.layer_norm_rms_epsilon")
            .map(f64::from)
            .unwrap_or(1e-5),
        rope_theta: opt_f("rope.freq_base").map(f64::from).unwrap_or(10000.0),
        rope_scaling: None,
        sliding_window: vec![None; need_u("block_count")?],
        max_position_embeddings: need_u("context_length").unwrap_or(2048),
        tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
        qkv_bias: ct.tensor_infos.contains_key("blk.0.attn_q.bias"),
    };
    Llama::validate(&lc)?;
    let mut quant: BTreeMap<String, usize> = BTreeMap::new();
    let mut map = HashMap::new();
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &ct.tensor_infos[name];
        *quant.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
        let q = ct
            .tensor(&mut f, name, device)
            .map_err(|e| MechError::ModelFormat {
                path: path.into(),
                message: format!("tensor {name}: {e}"),
            })?;
        let mut t = q.dequantize(device)?;
        if interleaved && name.ends_with(".weight") {
            if name.contains(".attn_q.") {
                t = unpermute_qk(&t, n_heads)?;
            } else if name.contains(".attn_k.") {
                t = unpermute_qk(&t, n_kv)?;
            }
        }
        map.insert(name.clone(), t);
    }
    let w = Weights::new(map, &[""], device);
    let m = Llama::new(lc.clone(), &w, &LlamaNames::gguf())?;
    let tokenizer = match tokenizers::Tokenizer::from_gguf(&ct) {
        Ok(t) => Some(ModelTokenizer::from_gguf(t, &ct)),
        Err(_) => None,
    };
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let files = vec![file_digest(path, &name)?];
    let digest = combined_digest(&files);
    let dequantized = quant.keys().any(|k| k != "F32");
    Ok(Model {
        info: ModelInfo {
            path: path.display().to_string(),
            format: "gguf".into(),
            architecture: arch,
            family: "llama".into(),
            files,
            digest,
            n_layers: lc.n_layers,
            d_model: d,
            vocab_size: vocab,
            dequantized,
            quantization: quant,
            compute_dtype: "f32".into(),
            has_lm_head: true,
        },
        tokenizer,
        arch: Arch::Llama(m),
        device: device.clone(),
    })
}
