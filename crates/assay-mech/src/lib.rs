//! `assay-mech`: mechanistic evidence about open-weight models.
//!
//! It loads models from local files (Hugging Face safetensors directories for the Llama
//! family, GPT-2 and BERT; GGUF for the Llama family, dequantised to f32), runs its own forward
//! passes with TransformerLens-named hook points (caching and interventions), fits linear
//! probes with honest baselines, and writes evidence records for the assurance layer.
//!
//! It must not download anything (no hub access, ever), must not depend on any other Assay
//! crate, and must not present a result without the digests, seed and parameters needed to
//! reproduce it.

#![deny(missing_docs)]

pub mod arch;
pub mod behave;
pub mod checkpoint;
pub mod cli;
pub mod diff;
pub mod digest;
pub mod error;
pub mod evidence;
pub mod hooks;
pub mod model;
pub mod organism;
pub mod patch;
pub mod probe;
pub mod rng;
pub mod svg;
pub mod synthetic;
pub mod tokenizer;
pub mod weights;

pub use error::{MechError, Result};
pub use hooks::{Action, ActivationCache, HookPoint, Intervention, Position, Reduce, RunPlan};
pub use model::{Batch, Model, ModelInfo, RunOutput};

/// Tool version recorded in evidence.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
