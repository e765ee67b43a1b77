//! The security spec: the model of format `assay/v1`, YAML loading that keeps
//! source positions, validation that reports every problem with file, line,
//! column and a hint, and the JSON Schema editors use for completion.
//!
//! This crate is a leaf. It describes scenarios; it must not execute them (no
//! world, no agents, no scoring) and must not panic on any input.

pub mod case;
pub mod condition;
pub mod effects;
mod files;
mod load;
pub mod model;
pub mod names;
pub mod net;
mod stateops;
pub mod suggest;
pub mod template;
pub mod yaml;

pub use case::{CASE_KIND, Case, CasePayload, Provenance, Regression, SlotRef, TechniqueRef};
pub use condition::{
    Check, Condition, Count, Flow, Head, MatchOp, Matcher, Replies, Sink, Source, TaskCheck,
};
pub use files::spec_files;
pub use load::limits;
pub use load::{
    Diagnostic, Document, LoadError, LoadedCase, LoadedSpec, builtin_tool_names, case_schema,
    json_schema, load_document, load_document_str, load_file, load_str, slot_kind_of_pointer,
    slot_kinds, spec_hash,
};
pub use model::*;
