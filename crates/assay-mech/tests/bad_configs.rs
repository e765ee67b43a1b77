//! Model configurations with impossible dimensions are refused with the file and key,
//! never a division by zero or a panic.

use assay_mech::Model;
use assay_mech::synthetic::{TinyLlama, write_tiny_llama};
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};

fn tiny() -> TinyLlama {
    TinyLlama {
        d_model: 32,
        n_layers: 1,
        n_heads: 4,
        n_kv_heads: 4,
        d_mlp: 64,
        vocab: 30,
        tie: true,
        qkv_bias: false,
    }
}

#[test]
fn hf_config_with_zero_heads_is_an_error() {
    for key in ["num_attention_heads", "hidden_size", "num_hidden_layers"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        write_tiny_llama(&dir, &tiny(), 1).unwrap();
        let cfg_path = dir.join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
        cfg[key] = serde_json::json!(0);
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let err = Model::load(&dir)
            .err()
            .expect("a zero dimension must not load");
        let msg = err.to_string();
        assert!(
            msg.contains(key) && msg.contains("at least 1"),
            "{key}: {msg}"
        );
    }
}

#[test]
fn gguf_with_zero_head_count_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("zero.gguf");
    let arch = gguf_file::Value::String("llama".into());
    let d = gguf_file::Value::U32(32);
    let zero = gguf_file::Value::U32(0);
    let one = gguf_file::Value::U32(1);
    let md: Vec<(&str, &gguf_file::Value)> = vec![
        ("general.architecture", &arch),
        ("llama.embedding_length", &d),
        ("llama.attention.head_count", &zero),
        ("llama.block_count", &one),
        ("llama.feed_forward_length", &d),
    ];
    let embd = Tensor::zeros((30, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&embd, GgmlDType::F32).unwrap();
    let tensors: Vec<(&str, &QTensor)> = vec![("token_embd.weight", &q)];
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &md, &tensors).unwrap();
    drop(f);
    let err = Model::load(&path)
        .err()
        .expect("head_count 0 must not load");
    let msg = err.to_string();
    assert!(
        msg.contains("attention.head_count") && msg.contains("at least 1"),
        "{msg}"
    );
}
