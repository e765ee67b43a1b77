//! Importers: other benchmarks' tasks as Assay specs.
//!
//! An importer reads a benchmark as its own tools describe it (AgentDojo
//! through its Python package, SeClaw-Bench from a checkout) and writes one
//! spec per task it can express, with a report naming every task, tool or
//! check it could not carry over and why. An imported spec is loaded back
//! through Assay's own validation before it is written, so an importer can
//! never hand the runner a spec the loader would refuse.

pub mod agentdojo;
mod python;
pub mod seclaw;
mod yaml;

pub use yaml::to_yaml;
