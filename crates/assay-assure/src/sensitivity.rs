//! The same case under alternative policies: which verdicts depend on the
//! policy's caps rather than on the evidence.

use serde::Serialize;

use crate::case::PropertyType;
use crate::compute::{Assessment, Status, assess};
use crate::data::{AccessVocabulary, Inventory, Policy};
use crate::load::LoadedCase;

/// Verdicts of every claim under every policy.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// Policies, the one in force first.
    pub policies: Vec<VariantRef>,
    /// Per claim.
    pub claims: Vec<ClaimSensitivity>,
}

/// One policy of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct VariantRef {
    /// Name.
    pub name: String,
    /// What differs from the policy in force.
    pub change: String,
}

/// One claim across policies.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimSensitivity {
    /// Claim id.
    pub id: String,
    /// Per policy, in the order of `policies`.
    pub outcomes: Vec<Outcome>,
    /// Whether the verdict is the same under every policy.
    pub stable: bool,
}

/// A claim's result under one policy.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Policy name.
    pub policy: String,
    /// Verdict.
    pub status: Status,
    /// Posterior (lower bound).
    pub posterior: f64,
    /// Max reachable with the classes present.
    pub max_reachable: f64,
}

/// A cap no evidence reaches: 100 bans.
const NO_CAP: f64 = 100.0;

/// The built-in variants: every behavioural class's support cap on non-observable
/// properties set to 0.1, 0.3 and 1.0 bans, and removed altogether.
pub fn builtin_variants(base: &Policy) -> Vec<(VariantRef, Policy)> {
    let mut out = Vec::new();
    for (name, cap) in [
        ("behavioural-cap-0.1", Some(0.1)),
        ("behavioural-cap-0.3", Some(0.3)),
        ("behavioural-cap-1.0", Some(1.0)),
        ("behavioural-uncapped", None),
    ] {
        let mut p = base.clone();
        p.name = name.to_string();
        for c in p.evidence_classes.iter_mut().filter(|c| c.behavioural) {
            for t in PropertyType::ALL {
                let v = cap.unwrap_or(NO_CAP);
                // Observable properties keep their cap unless every cap is removed.
                if t != PropertyType::Observable || cap.is_none() {
                    c.w_max.support.insert(t, v);
                }
            }
        }
        let change = match cap {
            Some(x) => {
                format!("support cap of behavioural classes on non-observable properties = {x} ban")
            }
            None => "no cap on behavioural classes (each item still discounted by λ)".to_string(),
        };
        out.push((
            VariantRef {
                name: name.to_string(),
                change,
            },
            p,
        ));
    }
    out
}

/// The verdicts of `base` (the case under the policy in force) beside the case
/// weighed under every variant.
pub fn sensitivity(
    loaded: &LoadedCase,
    base: &Assessment,
    variants: &[(VariantRef, Policy)],
    access: &AccessVocabulary,
    inventory: &Inventory,
) -> Sensitivity {
    let mut policies = vec![VariantRef {
        name: base.policy.name.clone(),
        change: "the policy in force".into(),
    }];
    let mut others = Vec::new();
    for (v, p) in variants {
        policies.push(v.clone());
        others.push(assess(loaded, p, access, inventory, &v.name));
    }
    let runs: Vec<&Assessment> = std::iter::once(base).chain(&others).collect();
    let claims = loaded
        .case
        .claims
        .iter()
        .map(|c| {
            let outcomes: Vec<Outcome> = runs
                .iter()
                .zip(&policies)
                .filter_map(|(a, p)| {
                    let cr = a.claims.iter().find(|x| x.id == c.id)?;
                    Some(Outcome {
                        policy: p.name.clone(),
                        status: cr.verdict.status,
                        posterior: cr.posterior,
                        max_reachable: cr.max_reachable,
                    })
                })
                .collect();
            let stable = outcomes.windows(2).all(|w| w[0].status == w[1].status);
            ClaimSensitivity {
                id: c.id.clone(),
                outcomes,
                stable,
            }
        })
        .collect();
    Sensitivity { policies, claims }
}
