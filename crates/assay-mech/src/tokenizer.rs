//! Tokenizers from `tokenizer.json` or GGUF metadata, with the model's chat template.

use std::path::Path;

use candle_core::quantized::gguf_file;
use serde_json::Value;

use crate::error::{MechError, Result};

/// One chat message for [`ModelTokenizer::apply_chat_template`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Message text.
    pub content: String,
}

/// A model's tokenizer plus the metadata needed to format prompts the way it was trained.
///
/// Why: activations of instruction-tuned models depend on the chat format; probing a chat
/// model on raw text and on templated text are different experiments, so both must be
/// possible and recorded.
pub struct ModelTokenizer {
    /// The underlying tokenizer.
    pub inner: tokenizers::Tokenizer,
    /// Jinja chat template shipped with the model, if any.
    pub chat_template: Option<String>,
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// `tokenizer.json` or `gguf`.
    pub source: String,
}

fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl ModelTokenizer {
    /// Load `tokenizer.json`, taking the chat template and special tokens from
    /// `tokenizer_config.json` when given.
    pub fn from_hf(path: &Path, config: Option<&Value>) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| MechError::Tokenizer(format!("{}: {e}", path.display())))?;
        let chat_template = config.and_then(|c| match c.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(a)) => a
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .or_else(|| a.first())
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        });
        Ok(ModelTokenizer {
            inner,
            chat_template,
            bos_token: config.and_then(|c| token_text(c.get("bos_token"))),
            eos_token: config.and_then(|c| token_text(c.get("eos_token"))),
            source: "tokenizer.json".into(),
        })
    }

    /// Wrap a tokenizer built from GGUF metadata.
    ///
    /// candle's GGUF pipeline for plain gpt2-style BPE uses a byte-level pre-tokenizer that
    /// adds a prefix space, which llama.cpp and the models' own `tokenizer.json` files do
    /// not: the first word would get a different id. We replace it with the Hugging Face
    /// equivalent (no prefix space; SmolLM's individual-digit split), checked against
    /// `transformers` by `tests/smollm2_tokenizer.rs`.
    pub fn from_gguf(mut inner: tokenizers::Tokenizer, ct: &gguf_file::Content) -> Self {
        use tokenizers::pre_tokenizers::{
            PreTokenizerWrapper, byte_level::ByteLevel, digits::Digits, sequence::Sequence,
        };
        let pre = ct
            .metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("gpt2");
        if !matches!(pre, "qwen2" | "llama3" | "smaug-bpe" | "lfm2") {
            let byte_level: PreTokenizerWrapper = ByteLevel::new(false, true, true).into();
            let wrapper: PreTokenizerWrapper = if pre == "smollm" {
                Sequence::new(vec![Digits::new(true).into(), byte_level]).into()
            } else {
                byte_level
            };
            inner.with_pre_tokenizer(Some(wrapper));
        }
        let tokens = ct
            .metadata
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok());
        let tok = |key: &str| -> Option<String> {
            let id = ct.metadata.get(key)?.to_u32().ok()? as usize;
            tokens?.get(id)?.to_string().ok().cloned()
        };
        ModelTokenizer {
            chat_template: ct
                .metadata
                .get("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok())
                .cloned(),
            bos_token: tok("tokenizer.ggml.bos_token_id"),
            eos_token: tok("tokenizer.ggml.eos_token_id"),
            inner,
            source: "gguf".into(),
        }
    }

    /// Token ids for a text.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| MechError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text for token ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| MechError::Tokenizer(e.to_string()))
    }

    /// The id used to pad batches (never attended to, so any valid id works).
    pub fn pad_id(&self) -> u32 {
        self.inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| {
                self.eos_token
                    .as_deref()
                    .and_then(|t| self.inner.token_to_id(t))
            })
            .unwrap_or(0)
    }

    /// Render messages with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tpl = self
            .chat_template
            .as_deref()
            .ok_or_else(|| MechError::Tokenizer("the model ships no chat template".into()))?;
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", tpl)
            .map_err(|e| MechError::Tokenizer(format!("chat template: {e}")))?;
        let t = env
            .get_template("chat")
            .map_err(|e| MechError::Tokenizer(format!("chat template: {e}")))?;
        t.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        })
        .map_err(|e| MechError::Tokenizer(format!("chat template: {e}")))
    }
}
