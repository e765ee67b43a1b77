//! Error type for the whole crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model, running it or fitting a probe.
///
/// Why: callers (the CLI, the assurance layer) must be able to tell a user *what* is wrong
/// with their input — a missing tensor, an unknown hook, single-class data — instead of a
/// panic or an opaque tensor-library message.
#[derive(Debug, thiserror::Error)]
pub enum MechError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON or JSONL document could not be parsed.
    #[error("{path}: {message}")]
    Parse {
        /// The file involved.
        path: PathBuf,
        /// What was wrong, with a line number where there is one.
        message: String,
    },
    /// The model directory or file does not look like any format we load.
    #[error("cannot load model from {path}: {message}")]
    ModelFormat {
        /// What was given.
        path: PathBuf,
        /// What is missing or wrong, and what we expected.
        message: String,
    },
    /// The architecture is recognised as such but not implemented here.
    #[error(
        "unsupported architecture `{found}`; supported: llama, mistral, qwen2 (HF or GGUF), gpt2, bert"
    )]
    UnsupportedArchitecture {
        /// The architecture string found in the model's metadata.
        found: String,
    },
    /// The checkpoint lacks tensors the architecture needs.
    #[error("missing tensors in checkpoint ({} missing), first ones: {}", missing.len(), missing.iter().take(8).cloned().collect::<Vec<_>>().join(", "))]
    MissingTensors {
        /// Every tensor name that was looked for and not found.
        missing: Vec<String>,
    },
    /// A tensor exists but has the wrong shape for the configuration.
    #[error("tensor `{name}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The tensor name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A hook name or pattern matched no hook point of this model.
    #[error("unknown hook `{name}` for this model; valid hooks are: {}", valid.join(", "))]
    UnknownHook {
        /// What the user asked for.
        name: String,
        /// Every hook point the model has.
        valid: Vec<String>,
    },
    /// The model has no tokenizer we could load.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The data is not usable for the requested operation.
    #[error("data: {0}")]
    Data(String),
    /// Invalid arguments or an internally inconsistent request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An error raised by the tensor library.
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

impl MechError {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MechError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = MechError> = std::result::Result<T, E>;
