//! The assurance layer: what the evidence Assay gathers proves about a safety
//! claim.
//!
//! An assurance case ([`case`]) names claims about a system and the evidence
//! offered for each. [`load`] reads and validates it, reading every evidence
//! record and checking that an independent party could reproduce it
//! ([`evidence`]). [`compute`] weighs the evidence under a policy ([`data`]) that
//! bounds how much each evidence class may carry for each property type, and
//! says per claim whether it is supported, fragile, unsupported, refuted or
//! undeveloped, and per governance instrument how much of it the case covers
//! and what access it lacks (the audit gap). [`sensitivity`] repeats the
//! weighing under other policies; [`report`] and [`gsn`] render the result for
//! auditors. [`bundle`] signs evidence files as in-toto statements in DSSE
//! envelopes.
//!
//! This crate reads evidence files; it never imports the run or mech crates,
//! so an assessment can be recomputed from artifacts alone.

pub mod bundle;
pub mod case;
pub mod compute;
pub mod data;
pub mod dsse;
pub mod error;
pub mod evidence;
pub mod gsn;
pub mod load;
pub mod report;
pub mod sensitivity;
pub mod statement;

use std::path::{Path, PathBuf};

pub use bundle::{Bundle, BundleError, BundleReport, sign_files, verify_bundle};
pub use compute::{Assessment, Status};
pub use dsse::{DsseError, Envelope, EnvelopeSignature, pae};
pub use error::{AssureError, Problem};
pub use statement::{STATEMENT_TYPE, Statement, Subject};

/// What to assess and how.
#[derive(Debug, Clone, Default)]
pub struct AssessOptions {
    /// A policy file replacing the case's and the built-in one.
    pub policy: Option<PathBuf>,
    /// Further policies for the sensitivity comparison (besides the built-in variants).
    pub alt_policies: Vec<PathBuf>,
}

/// Loads, validates and weighs a case, with the sensitivity comparison.
pub fn assess_case(
    path: &Path,
    opts: &AssessOptions,
) -> Result<(Assessment, load::LoadedCase), AssureError> {
    let access = data::AccessVocabulary::builtin();
    let inventory = data::Inventory::builtin();
    let loaded = load::load_case(path, opts.policy.as_deref(), &access, &inventory)?;
    let mut variants = sensitivity::builtin_variants(&loaded.policy);
    for p in &opts.alt_policies {
        let policy = data::Policy::load(p, &access)?;
        // A policy without a class the case uses would silently drop that evidence.
        let missing: Vec<String> = loaded
            .items
            .values()
            .map(|i| i.record.class().to_string())
            .filter(|c| policy.class(c).is_none())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(AssureError::Invalid(vec![Problem::new(
                &p.display().to_string(),
                0,
                0,
                format!(
                    "defines no evidence class {}, which the case's evidence uses",
                    missing.join(", ")
                ),
                Some("add the classes to the policy's evidence_classes".into()),
            )]));
        }
        variants.push((
            sensitivity::VariantRef {
                name: policy.name.clone(),
                change: format!("policy file {}", p.display()),
            },
            policy,
        ));
    }
    let mut a = compute::assess(
        &loaded,
        &loaded.policy,
        &access,
        &inventory,
        &loaded.policy_source,
    );
    a.sensitivity = Some(sensitivity::sensitivity(
        &loaded, &a, &variants, &access, &inventory,
    ));
    Ok((a, loaded))
}
