//! The assurance layer: what the evidence Assay gathers proves about a safety
//! claim. This first part is the evidence bundle an auditor can check without
//! trusting whoever handed it over: every evidence file becomes an in-toto
//! Statement v1 naming the file by digest, wrapped in a DSSE envelope signed
//! with ed25519, and verification re-hashes every subject and checks every
//! signature.
//!
//! This crate reads evidence files; it never imports the run or mech crates,
//! so an assessment can be recomputed from artifacts alone.

pub mod bundle;
pub mod dsse;
pub mod statement;

pub use bundle::{Bundle, BundleError, BundleReport, sign_files, verify_bundle};
pub use dsse::{DsseError, Envelope, EnvelopeSignature, pae};
pub use statement::{STATEMENT_TYPE, Statement, Subject};
