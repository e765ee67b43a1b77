//! Small synthetic checkpoints written in exact Hugging Face layout.
//!
//! Why: tests need models whose ground truth is known (a label planted along a known
//! direction at a known layer) and parity fixtures that do not depend on downloaded weights.
//! Everything here goes through the same loader as real checkpoints.

// Index loops read more clearly than iterator chains in this numeric code.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::{MechError, Result};
use crate::rng::Rng;

/// A row-major matrix of f32 built in memory before being written.
#[derive(Debug, Clone)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Mat {
    /// Gaussian entries with standard deviation `std`.
    pub fn randn(rows: usize, cols: usize, std: f64, rng: &mut Rng) -> Mat {
        Mat {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|_| (rng.normal() * std) as f32)
                .collect(),
        }
    }
    /// All zeros.
    pub fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    /// All ones (a vector when `rows == 1`).
    pub fn ones(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![1.0; rows * cols],
        }
    }
    /// Project `dir` (unit) out of each row: `row -= (row·dir) dir` (the map no longer reads
    /// `dir` when used as `y = W x` with rows as input weights).
    pub fn project_out_rows(&mut self, dir: &[f32]) {
        for r in 0..self.rows {
            let row = &mut self.data[r * self.cols..(r + 1) * self.cols];
            let dot: f32 = row.iter().zip(dir).map(|(a, b)| a * b).sum();
            row.iter_mut().zip(dir).for_each(|(a, b)| *a -= dot * b);
        }
    }
    fn tensor(&self, vector: bool) -> Result<Tensor> {
        Ok(if vector {
            Tensor::from_vec(self.data.clone(), self.cols, &Device::Cpu)?
        } else {
            Tensor::from_vec(self.data.clone(), (self.rows, self.cols), &Device::Cpu)?
        })
    }
}

/// Named tensors to be written as one safetensors file.
#[derive(Default)]
pub struct TensorSet {
    map: HashMap<String, Tensor>,
}

impl TensorSet {
    /// Add a matrix.
    pub fn mat(&mut self, name: &str, m: &Mat) -> Result<()> {
        self.map.insert(name.into(), m.tensor(false)?);
        Ok(())
    }
    /// Add a vector (a `1 × n` [`Mat`]).
    pub fn vec(&mut self, name: &str, m: &Mat) -> Result<()> {
        self.map.insert(name.into(), m.tensor(true)?);
        Ok(())
    }
    /// Remove a tensor (used by tests that break checkpoints on purpose).
    pub fn remove(&mut self, name: &str) {
        self.map.remove(name);
    }
    /// Write to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.map, path)?;
        Ok(())
    }
}

/// Write a whitespace word-level `tokenizer.json` with the given words (ids in order).
pub fn write_word_tokenizer(path: &Path, words: &[String]) -> Result<()> {
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), json!(i)))
        .collect();
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": words[0]}
    });
    write_json(path, &tok)
}

/// Write pretty JSON.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| MechError::Invalid(e.to_string()))?;
    std::fs::write(path, s).map_err(|e| MechError::io(path, e))
}

/// Shape of a tiny Llama-family model.
#[derive(Debug, Clone)]
pub struct TinyLlama {
    /// Width.
    pub d_model: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Tie embeddings.
    pub tie: bool,
    /// Qwen2-style q/k/v biases.
    pub qkv_bias: bool,
}

/// Random weights for a tiny Llama in Hugging Face names, plus its `config.json`.
pub fn tiny_llama_weights(c: &TinyLlama, seed: u64) -> Result<(TensorSet, serde_json::Value)> {
    let mut rng = Rng::new(seed, 1);
    let d = c.d_model;
    let hd = d / c.n_heads;
    let mut ts = TensorSet::default();
    ts.mat(
        "model.embed_tokens.weight",
        &Mat::randn(c.vocab, d, 1.0, &mut rng),
    )?;
    for l in 0..c.n_layers {
        let p = format!("model.layers.{l}");
        let s = 1.0 / (d as f64).sqrt();
        let mut ln = Mat::ones(1, d);
        ln.data
            .iter_mut()
            .for_each(|x| *x += (rng.normal() * 0.1) as f32);
        ts.vec(&format!("{p}.input_layernorm.weight"), &ln)?;
        ts.vec(
            &format!("{p}.post_attention_layernorm.weight"),
            &Mat::ones(1, d),
        )?;
        ts.mat(
            &format!("{p}.self_attn.q_proj.weight"),
            &Mat::randn(c.n_heads * hd, d, s, &mut rng),
        )?;
        ts.mat(
            &format!("{p}.self_attn.k_proj.weight"),
            &Mat::randn(c.n_kv_heads * hd, d, s, &mut rng),
        )?;
        ts.mat(
            &format!("{p}.self_attn.v_proj.weight"),
            &Mat::randn(c.n_kv_heads * hd, d, s, &mut rng),
        )?;
        if c.qkv_bias {
            ts.vec(
                &format!("{p}.self_attn.q_proj.bias"),
                &Mat::randn(1, c.n_heads * hd, 0.1, &mut rng),
            )?;
            ts.vec(
                &format!("{p}.self_attn.k_proj.bias"),
                &Mat::randn(1, c.n_kv_heads * hd, 0.1, &mut rng),
            )?;
            ts.vec(
                &format!("{p}.self_attn.v_proj.bias"),
                &Mat::randn(1, c.n_kv_heads * hd, 0.1, &mut rng),
            )?;
        }
        ts.mat(
            &format!("{p}.self_attn.o_proj.weight"),
            &Mat::randn(d, c.n_heads * hd, s, &mut rng),
        )?;
        ts.mat(
            &format!("{p}.mlp.gate_proj.weight"),
            &Mat::randn(c.d_mlp, d, s, &mut rng),
        )?;
        ts.mat(
            &format!("{p}.mlp.up_proj.weight"),
            &Mat::randn(c.d_mlp, d, s, &mut rng),
        )?;
        ts.mat(
            &format!("{p}.mlp.down_proj.weight"),
            &Mat::randn(d, c.d_mlp, 1.0 / (c.d_mlp as f64).sqrt(), &mut rng),
        )?;
    }
    ts.vec("model.norm.weight", &Mat::ones(1, d))?;
    if !c.tie {
        ts.mat(
            "lm_head.weight",
            &Mat::randn(c.vocab, d, 1.0 / (d as f64).sqrt(), &mut rng),
        )?;
    }
    let cfg = json!({
        "architectures": [if c.qkv_bias {"Qwen2ForCausalLM"} else {"LlamaForCausalLM"}],
        "model_type": if c.qkv_bias {"qwen2"} else {"llama"},
        "hidden_size": d,
        "intermediate_size": c.d_mlp,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "vocab_size": c.vocab,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 256,
        "tie_word_embeddings": c.tie,
    });
    Ok((ts, cfg))
}

/// Write a tiny random Llama (or Qwen2 when `qkv_bias`) with a word-level tokenizer of
/// words `w0 .. w{vocab-1}` into `dir`.
pub fn write_tiny_llama(dir: &Path, c: &TinyLlama, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| MechError::io(dir, e))?;
    let (ts, cfg) = tiny_llama_weights(c, seed)?;
    ts.save(&dir.join("model.safetensors"))?;
    write_json(&dir.join("config.json"), &cfg)?;
    let words: Vec<String> = (0..c.vocab).map(|i| format!("w{i}")).collect();
    write_word_tokenizer(&dir.join("tokenizer.json"), &words)
}

/// Write a tiny random BERT encoder (bare tensor names, like all-MiniLM) into `dir`.
pub fn write_tiny_bert(
    dir: &Path,
    d: usize,
    n_layers: usize,
    n_heads: usize,
    vocab: usize,
    seed: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| MechError::io(dir, e))?;
    let mut rng = Rng::new(seed, 2);
    let mut ts = TensorSet::default();
    let d_mlp = 4 * d;
    let s = 1.0 / (d as f64).sqrt();
    ts.mat(
        "embeddings.word_embeddings.weight",
        &Mat::randn(vocab, d, 1.0, &mut rng),
    )?;
    ts.mat(
        "embeddings.position_embeddings.weight",
        &Mat::randn(64, d, 0.5, &mut rng),
    )?;
    ts.mat(
        "embeddings.token_type_embeddings.weight",
        &Mat::randn(2, d, 0.5, &mut rng),
    )?;
    let ln = |ts: &mut TensorSet, rng: &mut Rng, n: &str| -> Result<()> {
        let mut w = Mat::ones(1, d);
        w.data
            .iter_mut()
            .for_each(|x| *x += (rng.normal() * 0.1) as f32);
        ts.vec(&format!("{n}.weight"), &w)?;
        ts.vec(&format!("{n}.bias"), &Mat::randn(1, d, 0.1, rng))
    };
    ln(&mut ts, &mut rng, "embeddings.LayerNorm")?;
    for l in 0..n_layers {
        let p = format!("encoder.layer.{l}");
        for (n, o, i) in [
            ("attention.self.query", d, d),
            ("attention.self.key", d, d),
            ("attention.self.value", d, d),
            ("attention.output.dense", d, d),
            ("intermediate.dense", d_mlp, d),
            ("output.dense", d, d_mlp),
        ] {
            ts.mat(
                &format!("{p}.{n}.weight"),
                &Mat::randn(o, i, 1.0 / (i as f64).sqrt(), &mut rng),
            )?;
            ts.vec(
                &format!("{p}.{n}.bias"),
                &Mat::randn(1, o, s * 0.1, &mut rng),
            )?;
        }
        ln(
            &mut ts,
            &mut rng,
            &format!("{p}.attention.output.LayerNorm"),
        )?;
        ln(&mut ts, &mut rng, &format!("{p}.output.LayerNorm"))?;
    }
    ts.save(&dir.join("model.safetensors"))?;
    write_json(
        &dir.join("config.json"),
        &json!({
            "architectures": ["BertModel"], "model_type": "bert",
            "hidden_size": d, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
            "intermediate_size": d_mlp, "vocab_size": vocab, "max_position_embeddings": 64,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "initializer_range": 0.02, "pad_token_id": 0, "position_embedding_type": "absolute"
        }),
    )?;
    let words: Vec<String> = (0..vocab).map(|i| format!("w{i}")).collect();
    write_word_tokenizer(&dir.join("tokenizer.json"), &words)
}

/// What was planted by [`write_planted_llama`].
#[derive(Debug, Clone)]
pub struct Planted {
    /// The block whose attention writes the label.
    pub layer: usize,
    /// The unit direction the label is written along (residual-stream basis).
    pub direction: Vec<f32>,
    /// Words that mark label 1.
    pub positive_words: Vec<String>,
    /// Words that mark label 0 (paired one-to-one with the positive words; identical apart
    /// from the hidden feature).
    pub negative_words: Vec<String>,
    /// Words carrying no label.
    pub filler_words: Vec<String>,
    /// The word every text ends with (probes read its position).
    pub end_word: String,
}

fn unit(rng: &mut Rng, d: usize, orth: &[&[f32]]) -> Vec<f32> {
    let mut v: Vec<f32> = (0..d).map(|_| rng.normal() as f32).collect();
    for o in orth {
        let dot: f32 = v.iter().zip(o.iter()).map(|(a, b)| a * b).sum();
        v.iter_mut().zip(o.iter()).for_each(|(a, b)| *a -= dot * b);
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Write a small Llama whose residual stream carries a binary label along a known direction
/// from a known layer on, and nowhere before.
///
/// Construction: positive and negative marker words have identical embeddings except for
/// `±3·f` along a hidden feature direction `f`. Every block reads its inputs through maps
/// that are blind to `f` (f projected out of every q/k/v/gate/up input weight), so no block
/// can move label information — except one head of block `layer`, which attends uniformly
/// (zero query/key weights) and maps the `f` component of each token to `8·u` in the
/// output. At the final token the residual stream therefore carries the label along `u`
/// from `blocks.{layer}.hook_resid_mid` on, and is label-independent before.
pub fn write_planted_llama(dir: &Path, layer: usize, seed: u64) -> Result<Planted> {
    let d = 64;
    let n_layers = 6;
    let n_heads = 4;
    let hd = d / n_heads;
    let d_mlp = 128;
    if layer >= n_layers {
        return Err(MechError::Invalid(format!(
            "planted layer {layer} >= {n_layers}"
        )));
    }
    let n_pairs = 6;
    let n_fill = 24;
    let mut words = vec!["unk".to_string(), "end".to_string()];
    let pos: Vec<String> = (0..n_pairs).map(|i| format!("pos{i}")).collect();
    let neg: Vec<String> = (0..n_pairs).map(|i| format!("neg{i}")).collect();
    let fill: Vec<String> = (0..n_fill).map(|i| format!("fill{i}")).collect();
    words.extend(pos.iter().cloned());
    words.extend(neg.iter().cloned());
    words.extend(fill.iter().cloned());
    let vocab = words.len();
    let c = TinyLlama {
        d_model: d,
        n_layers,
        n_heads,
        n_kv_heads: n_heads,
        d_mlp,
        vocab,
        tie: true,
        qkv_bias: false,
    };
    let (mut ts, cfg) = tiny_llama_weights(&c, seed)?;
    let mut rng = Rng::new(seed, 3);
    let f = unit(&mut rng, d, &[]);
    let u = unit(&mut rng, d, &[&f]);
    // Embeddings: random, with f and u projected out; marker pairs share everything but ±3f.
    let mut emb = Mat::randn(vocab, d, 1.0, &mut rng);
    emb.project_out_rows(&f);
    emb.project_out_rows(&u);
    for i in 0..n_pairs {
        let (pi, ni) = (2 + i, 2 + n_pairs + i);
        for k in 0..d {
            let shared = emb.data[pi * d + k];
            emb.data[pi * d + k] = shared + 3.0 * f[k];
            emb.data[ni * d + k] = shared - 3.0 * f[k];
        }
    }
    ts.mat("model.embed_tokens.weight", &emb)?;
    let s = 1.0 / (d as f64).sqrt();
    for l in 0..n_layers {
        let p = format!("model.layers.{l}");
        // All norm weights 1 so the f component reaches the planted head unscaled.
        ts.vec(&format!("{p}.input_layernorm.weight"), &Mat::ones(1, d))?;
        let mut q = Mat::randn(d, d, s, &mut rng);
        let mut k = Mat::randn(d, d, s, &mut rng);
        let mut v = Mat::randn(d, d, s, &mut rng);
        let mut o = Mat::randn(d, d, s, &mut rng);
        let mut gate = Mat::randn(d_mlp, d, s, &mut rng);
        let mut up = Mat::randn(d_mlp, d, s, &mut rng);
        for m in [&mut q, &mut k, &mut v, &mut gate, &mut up] {
            m.project_out_rows(&f);
        }
        // No block writes along f or u except the planted head.
        let mut o_t = transpose(&o);
        o_t.project_out_rows(&f);
        o_t.project_out_rows(&u);
        o = transpose(&o_t);
        let mut down = Mat::randn(d, d_mlp, 1.0 / (d_mlp as f64).sqrt(), &mut rng);
        let mut down_t = transpose(&down);
        down_t.project_out_rows(&f);
        down_t.project_out_rows(&u);
        down = transpose(&down_t);
        if l == layer {
            // Head 0: uniform attention, value = f·x, output 8·value along u.
            for r in 0..hd {
                for cidx in 0..d {
                    q.data[r * d + cidx] = 0.0;
                    k.data[r * d + cidx] = 0.0;
                    v.data[r * d + cidx] = if r == 0 { f[cidx] } else { 0.0 };
                }
            }
            for row in 0..d {
                for cidx in 0..hd {
                    o.data[row * d + cidx] = if cidx == 0 { 8.0 * u[row] } else { 0.0 };
                }
            }
        }
        ts.mat(&format!("{p}.self_attn.q_proj.weight"), &q)?;
        ts.mat(&format!("{p}.self_attn.k_proj.weight"), &k)?;
        ts.mat(&format!("{p}.self_attn.v_proj.weight"), &v)?;
        ts.mat(&format!("{p}.self_attn.o_proj.weight"), &o)?;
        ts.mat(&format!("{p}.mlp.gate_proj.weight"), &gate)?;
        ts.mat(&format!("{p}.mlp.up_proj.weight"), &up)?;
        ts.mat(&format!("{p}.mlp.down_proj.weight"), &down)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| MechError::io(dir, e))?;
    ts.save(&dir.join("model.safetensors"))?;
    write_json(&dir.join("config.json"), &cfg)?;
    write_word_tokenizer(&dir.join("tokenizer.json"), &words)?;
    Ok(Planted {
        layer,
        direction: u,
        positive_words: pos,
        negative_words: neg,
        filler_words: fill,
        end_word: "end".into(),
    })
}

fn transpose(m: &Mat) -> Mat {
    let mut t = Mat::zeros(m.cols, m.rows);
    for r in 0..m.rows {
        for c in 0..m.cols {
            t.data[c * m.rows + r] = m.data[r * m.cols + c];
        }
    }
    t
}

/// Texts for a planted model: `n` rows of JSONL `{text, label, group}`, fillers with one to
/// three marker words of the row's class, ending with the end word. Groups of four rows share
/// a group id.
pub fn planted_dataset(p: &Planted, n: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut rng = Rng::new(seed, 4);
    (0..n)
        .map(|i| {
            let label = i % 2;
            let len = 6 + rng.below(6);
            let mut toks: Vec<String> = (0..len)
                .map(|_| p.filler_words[rng.below(p.filler_words.len())].clone())
                .collect();
            let markers = if label == 1 {
                &p.positive_words
            } else {
                &p.negative_words
            };
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(toks.len());
                toks[at] = markers[rng.below(markers.len())].clone();
            }
            toks.push(p.end_word.clone());
            json!({"text": toks.join(" "), "label": label, "group": format!("g{}", i / 4)})
        })
        .collect()
}
