//! Versioned data the weighing reads: the access vocabulary, the policy (how much
//! weight each evidence class may carry per property type) and the inventory of
//! governance instruments. The built-in files ship in `data/`; a user can replace
//! the policy with their own file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::case::{Family, Polarity, PropertyType};
use crate::error::{AssureError, Problem};

/// The built-in access vocabulary.
pub const ACCESS_YAML: &str = include_str!("../data/access.yaml");
/// The built-in policy.
pub const POLICY_YAML: &str = include_str!("../data/policy.yaml");
/// The built-in instrument inventory.
pub const INSTRUMENTS_YAML: &str = include_str!("../data/instruments.yaml");

/// Capabilities and the named access levels built from them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessVocabulary {
    /// `assay.access/v1`.
    pub schema_version: String,
    /// Data version.
    pub version: String,
    /// Every capability.
    pub capabilities: Vec<Capability>,
    /// Named subsets (black_box, grey_box, white_box, outside_the_box).
    pub levels: BTreeMap<String, Level>,
}

/// One access capability.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// Its name.
    pub id: String,
    /// What it allows.
    pub text: String,
}

/// A named set of capabilities.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// What it means.
    pub text: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
}

impl AccessVocabulary {
    /// The built-in vocabulary.
    pub fn builtin() -> AccessVocabulary {
        serde_yaml_value(ACCESS_YAML, "data/access.yaml")
            .expect("the built-in access vocabulary is valid")
    }

    /// Whether `name` is a capability.
    pub fn is_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c.id == name)
    }

    /// Expands capability and level names into capabilities; unknown names are returned
    /// as errors.
    pub fn expand(&self, names: &[String]) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        for n in names {
            if self.is_capability(n) {
                out.insert(n.clone());
            } else if let Some(level) = self.levels.get(n) {
                out.extend(level.capabilities.iter().cloned());
            } else {
                return Err(n.clone());
            }
        }
        Ok(out)
    }

    /// Every capability and level name, for suggestions.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.capabilities.iter().map(|c| c.id.clone()).collect();
        v.extend(self.levels.keys().cloned());
        v
    }

    /// The named levels whose capabilities are all in `set`, for reports
    /// ("this assessment had black-box access").
    pub fn levels_within(&self, set: &BTreeSet<String>) -> Vec<String> {
        self.levels
            .iter()
            .filter(|(_, l)| l.capabilities.iter().all(|c| set.contains(c)))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// How much weight each evidence class may carry: the policy that bounds the weight
/// of behavioural evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `assay.policy/v1`.
    pub schema_version: String,
    /// Data version.
    pub version: String,
    /// Name shown in reports.
    pub name: String,
    /// Prior probability of a claim.
    pub prior: f64,
    /// Target when a claim states none.
    pub default_target: f64,
    /// Independence discount within a class.
    pub within_class_lambda: f64,
    /// Cap on the posterior while a rebutting or undercutting defeater is open.
    pub open_defeater_cap: f64,
    /// Access a verifier needs per property type.
    pub required_access: BTreeMap<PropertyType, Vec<String>>,
    /// Evidence classes.
    pub evidence_classes: Vec<EvidenceClass>,
}

/// One evidence class with its access and weight caps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceClass {
    /// Its name (the `evidence_class` of records).
    pub id: String,
    /// What it is.
    pub text: String,
    /// Whether it observes outputs only (sensitivity variants scale these).
    pub behavioural: bool,
    /// Access the class needs.
    pub min_access: Vec<String>,
    /// Likelihood ratio used when the case elicits none.
    pub default_likelihood_ratio: PerPolarity<f64>,
    /// Maximum weight in bans per polarity and property type.
    pub w_max: PerPolarity<BTreeMap<PropertyType, f64>>,
}

/// A value for each polarity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPolarity<T> {
    /// Supporting evidence.
    pub support: T,
    /// Counter-evidence.
    pub counter: T,
}

impl<T> PerPolarity<T> {
    /// The value for `p`.
    pub fn get(&self, p: Polarity) -> &T {
        match p {
            Polarity::Support => &self.support,
            Polarity::Counter => &self.counter,
        }
    }
}

impl EvidenceClass {
    /// The cap for a polarity and property type (0 when the policy gives none).
    pub fn cap(&self, p: Polarity, t: PropertyType) -> f64 {
        self.w_max.get(p).get(&t).copied().unwrap_or(0.0)
    }
}

impl Policy {
    /// The built-in policy.
    pub fn builtin() -> Policy {
        let p: Policy =
            serde_yaml_value(POLICY_YAML, "data/policy.yaml").expect("the built-in policy parses");
        p.check(&AccessVocabulary::builtin(), "data/policy.yaml")
            .expect("the built-in policy is valid");
        p
    }

    /// Reads and checks a policy file.
    pub fn load(path: &Path, access: &AccessVocabulary) -> Result<Policy, AssureError> {
        let text = std::fs::read_to_string(path).map_err(|e| AssureError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path.display().to_string();
        let p: Policy = serde_yaml_value(&text, &name)?;
        p.check(access, &name)?;
        Ok(p)
    }

    /// The class named `id`.
    pub fn class(&self, id: &str) -> Option<&EvidenceClass> {
        self.evidence_classes.iter().find(|c| c.id == id)
    }

    /// Every problem with the numbers and names, at once.
    pub fn check(&self, access: &AccessVocabulary, file: &str) -> Result<(), AssureError> {
        let mut problems = Vec::new();
        let mut bad = |place: String, msg: String| {
            problems.push(Problem::new(file, 0, 0, format!("{place}: {msg}"), None))
        };
        if self.schema_version != "assay.policy/v1" {
            bad(
                "schema_version".into(),
                format!("is {:?}; expected \"assay.policy/v1\"", self.schema_version),
            );
        }
        for (name, v) in [
            ("prior", self.prior),
            ("default_target", self.default_target),
            ("open_defeater_cap", self.open_defeater_cap),
        ] {
            if !(v > 0.0 && v < 1.0) {
                bad(
                    name.into(),
                    format!("{v} is not a probability strictly between 0 and 1"),
                );
            }
        }
        if !(0.0..=1.0).contains(&self.within_class_lambda) {
            bad(
                "within_class_lambda".into(),
                format!("{} is outside 0..=1", self.within_class_lambda),
            );
        }
        for t in PropertyType::ALL {
            match self.required_access.get(&t) {
                None => bad(
                    "required_access".into(),
                    format!("no entry for property type {}", t.as_str()),
                ),
                Some(names) => {
                    if let Err(n) = access.expand(names) {
                        bad(
                            format!("required_access.{}", t.as_str()),
                            format!("unknown capability {n:?}"),
                        );
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        for c in &self.evidence_classes {
            if !seen.insert(c.id.clone()) {
                bad(format!("evidence_classes.{}", c.id), "listed twice".into());
            }
            if let Err(n) = access.expand(&c.min_access) {
                bad(
                    format!("evidence_classes.{}.min_access", c.id),
                    format!("unknown capability {n:?}"),
                );
            }
            for p in [Polarity::Support, Polarity::Counter] {
                let lr = *c.default_likelihood_ratio.get(p);
                if !(lr.is_finite() && lr >= 1.0) {
                    bad(
                        format!("evidence_classes.{}.default_likelihood_ratio", c.id),
                        format!("{lr} must be a finite number ≥ 1"),
                    );
                }
                for t in PropertyType::ALL {
                    match c.w_max.get(p).get(&t) {
                        None => bad(
                            format!("evidence_classes.{}.w_max", c.id),
                            format!(
                                "no cap for {} evidence on {} properties",
                                polarity_name(p),
                                t.as_str()
                            ),
                        ),
                        Some(w) if !(w.is_finite() && *w >= 0.0) => bad(
                            format!("evidence_classes.{}.w_max", c.id),
                            format!("cap {w} must be a finite number ≥ 0"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AssureError::Invalid(problems))
        }
    }
}

/// `support` or `counter`.
pub fn polarity_name(p: Polarity) -> &'static str {
    match p {
        Polarity::Support => "support",
        Polarity::Counter => "counter",
    }
}

/// The inventory of governance instruments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// `assay.instruments/v1`.
    pub schema_version: String,
    /// Data version.
    pub version: String,
    /// Every instrument.
    pub instruments: Vec<Instrument>,
}

/// A governance instrument (law, code, standard, framework).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// Stable id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Where it applies.
    pub jurisdiction: String,
    /// law, regulation, code_of_practice, standard, framework, guideline, treaty, commitment.
    pub kind: String,
    /// Legally binding on the developer.
    pub binding: bool,
    /// Dates as sourced.
    #[serde(default)]
    pub dates: Option<String>,
    /// Verification mechanisms the text relies on.
    #[serde(default)]
    pub verification: Vec<String>,
    /// Capabilities the text guarantees an independent verifier.
    pub verifier_access: Vec<String>,
    /// Why that set.
    #[serde(default)]
    pub verifier_access_note: Option<String>,
    /// `confirmed` or `candidate`.
    pub confidence: String,
    /// Sources (at least one).
    pub sources: Vec<Source>,
    /// What it requires.
    pub requirements: Vec<Requirement>,
}

/// A cited source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Title.
    pub title: String,
    /// Address.
    pub url: String,
}

/// One requirement of an instrument.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// Stable id.
    pub id: String,
    /// Paraphrase.
    pub text: String,
    /// Property families it bears on (empty for pure process).
    pub properties: Vec<Family>,
    /// Capabilities a verifier needs to check it as stated.
    pub required_access: Vec<String>,
    /// Source.
    pub source: Source,
    /// `confirmed` or `candidate`.
    pub confidence: String,
}

impl Inventory {
    /// The built-in inventory.
    pub fn builtin() -> Inventory {
        let inv: Inventory = serde_yaml_value(INSTRUMENTS_YAML, "data/instruments.yaml")
            .expect("the built-in inventory parses");
        inv.check(&AccessVocabulary::builtin())
            .expect("the built-in inventory is valid");
        inv
    }

    /// Every row has a source and a confidence label; every capability is known.
    pub fn check(&self, access: &AccessVocabulary) -> Result<(), AssureError> {
        let file = "data/instruments.yaml";
        let mut problems = Vec::new();
        let mut ids = BTreeSet::new();
        for i in &self.instruments {
            let mut bad =
                |m: String| problems.push(Problem::new(file, 0, 0, format!("{}: {m}", i.id), None));
            if !ids.insert(i.id.clone()) {
                bad("instrument id listed twice".into());
            }
            if i.sources.is_empty() || i.sources.iter().any(|s| s.url.trim().is_empty()) {
                bad("has no source".into());
            }
            if !matches!(i.confidence.as_str(), "confirmed" | "candidate") {
                bad(format!(
                    "confidence {:?} is not confirmed or candidate",
                    i.confidence
                ));
            }
            if let Err(n) = access.expand(&i.verifier_access) {
                bad(format!("unknown capability {n:?} in verifier_access"));
            }
            for r in &i.requirements {
                if !ids.insert(r.id.clone()) {
                    bad(format!("requirement id {} listed twice", r.id));
                }
                if r.source.url.trim().is_empty() {
                    bad(format!("requirement {} has no source", r.id));
                }
                if !matches!(r.confidence.as_str(), "confirmed" | "candidate") {
                    bad(format!(
                        "requirement {} confidence {:?}",
                        r.id, r.confidence
                    ));
                }
                if let Err(n) = access.expand(&r.required_access) {
                    bad(format!("requirement {}: unknown capability {n:?}", r.id));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(AssureError::Invalid(problems))
        }
    }

    /// The instrument named `id`.
    pub fn instrument(&self, id: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.id == id)
    }

    /// The instrument holding requirement `id`, with the requirement.
    pub fn requirement(&self, id: &str) -> Option<(&Instrument, &Requirement)> {
        self.instruments
            .iter()
            .find_map(|i| i.requirements.iter().find(|r| r.id == id).map(|r| (i, r)))
    }
}

/// Parses YAML (through the spec crate's positioned parser) and deserialises it,
/// naming the file and the field on failure.
fn serde_yaml_value<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, AssureError> {
    let doc = assay_spec::yaml::parse(text).map_err(|(msg, pos)| {
        AssureError::Invalid(vec![Problem::new(
            file,
            pos.line,
            pos.col,
            format!("invalid YAML: {msg}"),
            None,
        )])
    })?;
    serde_path_to_error::deserialize(doc.value.clone()).map_err(|e| {
        let ptr = crate::error::path_to_pointer(e.path());
        let pos = doc.pos(&ptr);
        AssureError::Invalid(vec![Problem::new(
            file,
            pos.line,
            pos.col,
            format!("{ptr}: {}", e.inner()),
            None,
        )])
    })
}
