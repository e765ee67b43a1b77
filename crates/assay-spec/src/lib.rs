//! The security spec: the model of format `assay/v1`, YAML loading that keeps
//! source positions, validation that reports every problem with file, line,
//! column and a hint, and the JSON Schema editors use for completion.
//!
//! This crate is a leaf. It describes scenarios; it must not execute them (no
//! world, no agents, no scoring) and must not panic on any input.

pub mod condition;
mod files;
mod load;
pub mod model;
pub mod suggest;
pub mod template;
mod yaml;

pub use condition::{Check, Condition, Count, Flow, Head, MatchOp, Matcher, Sink, Source};
pub use files::spec_files;
pub use load::{
    Diagnostic, LoadError, LoadedSpec, builtin_tool_names, json_schema, load_file, load_str,
    spec_hash,
};
pub use model::*;
