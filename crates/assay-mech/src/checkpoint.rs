//! Raw named tensors of a checkpoint, as stored (GGUF dequantised to f32).
//!
//! Why: comparing two checkpoints tensor by tensor needs every stored tensor under its own
//! name, including ones the forward pass folds away (a tied unembedding) — which
//! [`crate::Model`] does not expose. Reading goes through the same candle readers as the
//! model loader, so the bytes compared are the bytes a forward pass would use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};

use crate::error::{MechError, Result};

/// Every tensor of one checkpoint, by stored name.
///
/// Why: a name-keyed, sorted map makes "same tensor names and shapes" a direct comparison
/// and iteration deterministic.
pub struct Checkpoint {
    /// The path given.
    pub path: PathBuf,
    /// `hf_safetensors` or `gguf` (as in [`crate::ModelInfo::format`]).
    pub format: String,
    /// Tensors by stored name. GGUF tensors are dequantised to f32; llama.cpp's q/k row
    /// permutation is left as stored (a row permutation changes neither norms nor singular
    /// values, and both sides of a comparison are in the same layout).
    pub tensors: BTreeMap<String, Tensor>,
}

/// Which files make up the checkpoint at `path`, resolved as [`crate::Model::load`] does.
fn resolve(path: &Path) -> Result<(String, Vec<PathBuf>)> {
    let bad = |m: &str| MechError::ModelFormat {
        path: path.into(),
        message: m.into(),
    };
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "gguf") {
            return Ok(("gguf".into(), vec![path.into()]));
        }
        return Err(bad(
            "a model file must be .gguf; for safetensors give the directory holding config.json",
        ));
    }
    if !path.is_dir() {
        return Err(bad("no such file or directory"));
    }
    let list = |ext: &str| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| MechError::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        Ok(v)
    };
    if path.join("config.json").is_file() {
        let shards = list("safetensors")?;
        if shards.is_empty() {
            return Err(bad("no *.safetensors files next to config.json"));
        }
        return Ok(("hf_safetensors".into(), shards));
    }
    match list("gguf")?.as_slice() {
        [one] => Ok(("gguf".into(), vec![one.clone()])),
        [] => Err(bad(
            "found neither config.json (Hugging Face layout) nor a .gguf file",
        )),
        _ => Err(bad("several .gguf files; name the one to load")),
    }
}

impl Checkpoint {
    /// Read every tensor of a Hugging Face directory or GGUF file. Never touches the network.
    pub fn read(path: &Path) -> Result<Checkpoint> {
        let device = Device::Cpu;
        let (format, files) = resolve(path)?;
        let mut tensors = BTreeMap::new();
        if format == "gguf" {
            let file = &files[0];
            let mut f = std::fs::File::open(file).map_err(|e| MechError::io(file, e))?;
            let ct = gguf_file::Content::read(&mut f).map_err(|e| MechError::ModelFormat {
                path: file.clone(),
                message: format!("not a readable GGUF file: {e}"),
            })?;
            let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
            names.sort();
            for name in names {
                let q = ct
                    .tensor(&mut f, name, &device)
                    .map_err(|e| MechError::ModelFormat {
                        path: file.clone(),
                        message: format!("tensor {name}: {e}"),
                    })?;
                tensors.insert(name.clone(), q.dequantize(&device)?);
            }
        } else {
            for s in &files {
                let part = candle_core::safetensors::load(s, &device).map_err(|e| {
                    MechError::ModelFormat {
                        path: s.clone(),
                        message: e.to_string(),
                    }
                })?;
                tensors.extend(part);
            }
        }
        Ok(Checkpoint {
            path: path.into(),
            format,
            tensors,
        })
    }
}

/// The block index a stored tensor name belongs to: its first all-digit dot-separated
/// segment (`model.layers.3.mlp.up_proj.weight`, `blk.3.ffn_up.weight`, `h.3.attn.c_attn.weight`,
/// `encoder.layer.3....` → 3); `None` for embeddings, final norms and heads.
pub fn layer_of(name: &str) -> Option<usize> {
    name.split('.')
        .find(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::layer_of;

    #[test]
    fn layer_names_of_every_layout() {
        assert_eq!(layer_of("model.layers.12.mlp.up_proj.weight"), Some(12));
        assert_eq!(layer_of("blk.0.attn_q.weight"), Some(0));
        assert_eq!(layer_of("h.7.attn.c_attn.bias"), Some(7));
        assert_eq!(layer_of("encoder.layer.3.output.dense.weight"), Some(3));
        assert_eq!(layer_of("model.embed_tokens.weight"), None);
        assert_eq!(layer_of("token_embd.weight"), None);
    }
}
