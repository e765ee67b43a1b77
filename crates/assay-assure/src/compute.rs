//! The weighing: capped weights per item, an independence discount per class, a
//! posterior per claim, the best posterior the evidence classes could ever
//! reach, the access and weight gaps, Baconian defeater counts, and a verdict
//! propagated through subclaims with bounds that assume no independence.
//!
//! Weights are in bans (log10 of a likelihood ratio). Every number in the output
//! carries the inputs it came from (`derivation`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::case::{Claim, Decomposition, DefeaterStatus, DefeaterType, Polarity};
use crate::data::{AccessVocabulary, Inventory, Policy, polarity_name};
use crate::evidence::Check;
use crate::load::LoadedCase;

/// Schema of `assurance.json`.
pub const ASSESSMENT_SCHEMA: &str = "assay.assurance-result/v1";

/// log10 odds of a probability.
pub fn log_odds(p: f64) -> f64 {
    (p / (1.0 - p)).log10()
}

/// The probability of log10 odds.
pub fn prob(l: f64) -> f64 {
    1.0 / (1.0 + 10f64.powf(-l))
}

/// Rounds for output so reports and JSON agree digit for digit.
fn r(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The verdict on a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The posterior reaches the target on reproducible evidence, with no open defeater.
    Supported,
    /// Asserted, but the evidence cannot carry it (see the prongs).
    Fragile,
    /// The posterior falls short of the target, and nothing structural forbids closing the gap.
    Unsupported,
    /// Counter-evidence drives the posterior to 1 − target or below.
    Refuted,
    /// No evidence and no subclaims.
    Undeveloped,
}

impl Status {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Supported => "supported",
            Status::Fragile => "fragile",
            Status::Unsupported => "unsupported",
            Status::Refuted => "refuted",
            Status::Undeveloped => "undeveloped",
        }
    }

    /// How bad it is for a requirement answered by this claim (higher is worse).
    fn severity(self) -> u8 {
        match self {
            Status::Supported => 0,
            Status::Undeveloped => 1,
            Status::Unsupported => 2,
            Status::Fragile => 3,
            Status::Refuted => 4,
        }
    }
}

/// The two prongs of fragile assurance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Prongs {
    /// (i) Evidence the claim rests on cannot be reproduced by an independent party
    /// (digests do not match, files missing, no recipe).
    pub non_reproducible: bool,
    /// (ii) The evidence classes present cannot reach the target for this property
    /// type, however much evidence of them there is.
    pub inferential_gap: bool,
}

/// A verdict with its reasons.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The status.
    pub status: Status,
    /// Which fragility prongs hold (reported for every status).
    pub prongs: Prongs,
    /// Why, in sentences that cite the numbers and ids.
    pub reasons: Vec<String>,
}

impl Verdict {
    /// The status with the fragility prongs that hold, e.g. `fragile (inferential gap)`:
    /// the one wording the terminal, the reports and the GSN diagram share.
    pub fn label(&self) -> String {
        if self.status != Status::Fragile {
            return self.status.as_str().to_string();
        }
        let mut p = Vec::new();
        if self.prongs.non_reproducible {
            p.push("non-reproducible");
        }
        if self.prongs.inferential_gap {
            p.push("inferential gap");
        }
        format!("fragile ({})", p.join(", "))
    }
}

/// One evidence item as read and checked, independent of any claim.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// Case id.
    pub id: String,
    /// The record file.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
    /// The record's own id.
    pub record_id: String,
    /// Its class.
    pub evidence_class: String,
    /// Access it used.
    pub access: Vec<String>,
    /// `support` or `counter`.
    pub polarity: Polarity,
    /// Who produced it, if the case says.
    pub producer: Option<crate::case::Producer>,
    /// Every check passed.
    pub reproducible: bool,
    /// The checks.
    pub checks: Vec<Check>,
    /// The stated finding and whether it holds.
    pub finding: Option<FindingReport>,
}

/// A stated finding checked against the record.
#[derive(Debug, Clone, Serialize)]
pub struct FindingReport {
    /// JSON Pointer.
    pub metric: String,
    /// The value in the record.
    pub value: f64,
    /// Lower bound.
    pub at_least: Option<f64>,
    /// Upper bound.
    pub at_most: Option<f64>,
    /// Whether the value is within the bounds.
    pub holds: bool,
}

/// An item's weight for one claim.
#[derive(Debug, Clone, Serialize)]
pub struct ItemWeight {
    /// Evidence id.
    pub id: String,
    /// Class.
    pub evidence_class: String,
    /// Polarity.
    pub polarity: Polarity,
    /// The likelihood ratio used.
    pub likelihood_ratio: f64,
    /// `case` (elicited) or `policy default`.
    pub likelihood_ratio_source: String,
    /// log10 of it.
    pub raw_bans: f64,
    /// The policy cap for this class, polarity and property type.
    pub cap_bans: f64,
    /// Where the cap comes from in the policy.
    pub cap_source: String,
    /// min(raw, cap), or 0 when not counted.
    pub weight_bans: f64,
    /// Whether it counts.
    pub counted: bool,
    /// Why not, when it does not.
    pub note: Option<String>,
}

/// A class's combined weight for one claim and polarity.
#[derive(Debug, Clone, Serialize)]
pub struct ClassWeight {
    /// Class.
    pub evidence_class: String,
    /// Polarity.
    pub polarity: Polarity,
    /// Items combined, strongest first.
    pub items: Vec<String>,
    /// The strongest item's weight.
    pub max_bans: f64,
    /// Sum of the others.
    pub rest_bans: f64,
    /// The independence discount λ.
    pub lambda: f64,
    /// max + λ × rest, before the cap.
    pub uncapped_bans: f64,
    /// The class cap for the property type: the most this class can ever carry.
    pub cap_bans: f64,
    /// min(uncapped, cap).
    pub combined_bans: f64,
}

/// Access for a claim.
#[derive(Debug, Clone, Serialize)]
pub struct AccessReport {
    /// Capabilities a verifier needs.
    pub required: Vec<String>,
    /// Where `required` comes from.
    pub required_source: String,
    /// Capabilities the evidence used.
    pub used: Vec<String>,
    /// Named levels fully within `used`.
    pub levels_used: Vec<String>,
    /// required − used: the access gap.
    pub missing: Vec<String>,
}

/// Defeater counts (eliminative argumentation).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DefeaterCounts {
    /// Identified.
    pub identified: usize,
    /// Eliminated.
    pub eliminated: usize,
    /// Accepted as residual doubt.
    pub accepted: usize,
    /// Still open.
    pub open: usize,
    /// `eliminated/identified`.
    pub baconian: String,
    /// Their ids.
    pub ids: Vec<String>,
}

/// Everything computed for one claim.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimReport {
    /// Id.
    pub id: String,
    /// Statement.
    pub statement: String,
    /// Family.
    pub family: crate::case::Family,
    /// Property type.
    pub property_type: crate::case::PropertyType,
    /// Whether someone relies on it.
    pub asserted: bool,
    /// Target probability τ.
    pub target: f64,
    /// Prior.
    pub prior: f64,
    /// Subclaims and how they combine, if any.
    pub subclaims: Vec<String>,
    /// Decomposition, if any.
    pub decomposition: Option<Decomposition>,
    /// Per item weights (direct evidence).
    pub items: Vec<ItemWeight>,
    /// Per class combined weights.
    pub classes: Vec<ClassWeight>,
    /// Posterior (the lower bound for a decomposed claim).
    pub posterior: f64,
    /// Bounds on the posterior that need no independence assumption.
    pub posterior_bounds: [f64; 2],
    /// The highest posterior the evidence classes present could reach, each at its cap.
    pub max_reachable: f64,
    /// The highest posterior reachable with every class whose access the evidence already used.
    pub max_reachable_at_access: f64,
    /// Classes counted in `max_reachable_at_access`.
    pub classes_at_access: Vec<String>,
    /// Access required, used and missing.
    pub access: AccessReport,
    /// max(0, logodds(τ) − logodds(max_reachable_at_access)): weight no evidence at this access can supply.
    pub weight_gap_bans: f64,
    /// max(0, logodds(τ) − logodds(posterior)): weight the present evidence falls short by.
    pub evidence_gap_bans: f64,
    /// Defeaters on the claim, its evidence and (for decomposed claims) its subclaims.
    pub defeaters: DefeaterCounts,
    /// The verdict.
    pub verdict: Verdict,
    /// How every number was obtained, step by step.
    pub derivation: Vec<String>,
}

/// Coverage and audit gap of one instrument.
#[derive(Debug, Clone, Serialize)]
pub struct InstrumentReport {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// `confirmed` or `candidate`.
    pub confidence: String,
    /// Binding.
    pub binding: bool,
    /// What the text guarantees a verifier.
    pub verifier_access: Vec<String>,
    /// Per requirement.
    pub requirements: Vec<RequirementReport>,
    /// Requirements bearing on model properties.
    pub bearing_on_properties: usize,
    /// Of those, answered by some claim.
    pub answered: usize,
    /// Of those, answered and supported.
    pub supported: usize,
    /// supported / bearing_on_properties.
    pub coverage: Option<f64>,
    /// Union over requirements of capabilities required but not used by the evidence.
    pub access_missing: Vec<String>,
    /// Union over requirements of capabilities required but not guaranteed by the text.
    pub access_not_guaranteed: Vec<String>,
    /// Largest weight gap at the access the text guarantees, over answered requirements.
    pub max_weight_gap_at_guaranteed_access_bans: Option<f64>,
}

/// One requirement of an instrument against the case.
#[derive(Debug, Clone, Serialize)]
pub struct RequirementReport {
    /// Id.
    pub id: String,
    /// Paraphrase.
    pub text: String,
    /// Families.
    pub properties: Vec<crate::case::Family>,
    /// `confirmed` or `candidate`.
    pub confidence: String,
    /// Claims answering it.
    pub answered_by: Vec<String>,
    /// `answers` (the case says so), `family` (matched by property family) or `none`.
    pub matched_by: String,
    /// `process` (no model property), `unanswered`, or the worst verdict of its claims.
    pub status: String,
    /// Access a verifier needs for it.
    pub required_access: Vec<String>,
    /// Access the answering evidence used.
    pub access_used: Vec<String>,
    /// required − used.
    pub access_missing: Vec<String>,
    /// required − what the instrument guarantees a verifier: the audit gap in access.
    pub access_not_guaranteed: Vec<String>,
    /// Weight no evidence obtainable at the guaranteed access can supply (worst answering claim).
    pub weight_gap_at_guaranteed_access_bans: Option<f64>,
}

/// The full result (`assurance.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// [`ASSESSMENT_SCHEMA`].
    pub schema_version: String,
    /// Producer.
    pub tool: ToolRef,
    /// The case file.
    pub case: CaseRef,
    /// The policy in force.
    pub policy: PolicyRef,
    /// Data versions.
    pub data: DataRef,
    /// The system under assessment.
    pub system: crate::case::System,
    /// Evidence items.
    pub evidence: Vec<ItemReport>,
    /// Claims, in file order.
    pub claims: Vec<ClaimReport>,
    /// Claims that are nobody's subclaim.
    pub top_level: Vec<String>,
    /// Instruments the case answers to.
    pub instruments: Vec<InstrumentReport>,
    /// Evidence listed but cited by no claim.
    pub unused_evidence: Vec<String>,
    /// Verdicts under alternative policies.
    pub sensitivity: Option<crate::sensitivity::Sensitivity>,
}

/// Producer of an assessment.
#[derive(Debug, Clone, Serialize)]
pub struct ToolRef {
    /// `assay-assure`.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The case an assessment is of.
#[derive(Debug, Clone, Serialize)]
pub struct CaseRef {
    /// Name.
    pub name: String,
    /// File.
    pub file: String,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// The policy an assessment used.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRef {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// File or `built-in`.
    pub source: String,
}

/// Data versions.
#[derive(Debug, Clone, Serialize)]
pub struct DataRef {
    /// Access vocabulary version.
    pub access: String,
    /// Instrument inventory version.
    pub instruments: String,
}

/// Weighs a loaded case under `policy`.
pub fn assess(
    loaded: &LoadedCase,
    policy: &Policy,
    access: &AccessVocabulary,
    inventory: &Inventory,
    policy_source: &str,
) -> Assessment {
    let case = &loaded.case;
    let evidence: Vec<ItemReport> = case
        .evidence
        .iter()
        .filter_map(|e| {
            let it = loaded.items.get(&e.id)?;
            let finding = e.finding.as_ref().and_then(|f| {
                let value = it.record.value.pointer(&f.metric)?.as_f64()?;
                let holds = f.at_least.is_none_or(|lo| value >= lo)
                    && f.at_most.is_none_or(|hi| value <= hi);
                Some(FindingReport {
                    metric: f.metric.clone(),
                    value,
                    at_least: f.at_least,
                    at_most: f.at_most,
                    holds,
                })
            });
            Some(ItemReport {
                id: e.id.clone(),
                file: it.record.path.display().to_string(),
                sha256: it.record.sha256.clone(),
                record_id: it.record.id().to_string(),
                evidence_class: it.record.class().to_string(),
                access: it.record.access(),
                polarity: e.polarity,
                producer: e.producer.clone(),
                reproducible: it.reproducible(),
                checks: it.checks.clone(),
                finding,
            })
        })
        .collect();
    let items_by_id: BTreeMap<&str, &ItemReport> =
        evidence.iter().map(|i| (i.id.as_str(), i)).collect();
    let mut done: BTreeMap<String, ClaimReport> = BTreeMap::new();
    let order = topo_order(case);
    for id in &order {
        let claim = case
            .claims
            .iter()
            .find(|c| &c.id == id)
            .expect("ordered ids are claims");
        let report = if claim.subclaims.is_empty() {
            leaf(claim, loaded, policy, access, &items_by_id)
        } else {
            parent(claim, loaded, policy, access, &done)
        };
        done.insert(id.clone(), report);
    }
    let claims: Vec<ClaimReport> = case
        .claims
        .iter()
        .filter_map(|c| done.remove(&c.id))
        .collect();
    let subs: BTreeSet<&str> = case
        .claims
        .iter()
        .flat_map(|c| c.subclaims.iter().map(String::as_str))
        .collect();
    let top_level = case
        .claims
        .iter()
        .filter(|c| !subs.contains(c.id.as_str()))
        .map(|c| c.id.clone())
        .collect();
    let cited: BTreeSet<&str> = case
        .claims
        .iter()
        .flat_map(|c| c.evidence.iter().map(String::as_str))
        .collect();
    let unused_evidence = case
        .evidence
        .iter()
        .filter(|e| !cited.contains(e.id.as_str()))
        .map(|e| e.id.clone())
        .collect();
    let instruments = case
        .instruments
        .iter()
        .filter_map(|id| inventory.instrument(id))
        .map(|inst| instrument_report(inst, case, &claims, policy, access))
        .collect();
    Assessment {
        schema_version: ASSESSMENT_SCHEMA.into(),
        tool: ToolRef {
            name: "assay-assure".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        case: CaseRef {
            name: case.name.clone(),
            file: loaded.path.display().to_string(),
            sha256: loaded.sha256.clone(),
        },
        policy: PolicyRef {
            name: policy.name.clone(),
            version: policy.version.clone(),
            source: policy_source.to_string(),
        },
        data: DataRef {
            access: access.version.clone(),
            instruments: inventory.version.clone(),
        },
        system: case.system.clone(),
        evidence,
        claims,
        top_level,
        instruments,
        unused_evidence,
        sensitivity: None,
    }
}

/// Claims ordered so every subclaim comes before its parent (the case is acyclic).
fn topo_order(case: &crate::case::AssuranceCase) -> Vec<String> {
    let by_id = crate::case::claims_by_id(case);
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        id: &str,
        by_id: &BTreeMap<&str, &Claim>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(id.to_string()) {
            return;
        }
        if let Some(c) = by_id.get(id) {
            for s in &c.subclaims {
                visit(s, by_id, seen, out);
            }
        }
        out.push(id.to_string());
    }
    for c in &case.claims {
        visit(&c.id, &by_id, &mut seen, &mut out);
    }
    out
}

fn target_prior(claim: &Claim, policy: &Policy) -> (f64, f64) {
    (
        claim.target.unwrap_or(policy.default_target),
        claim.prior.unwrap_or(policy.prior),
    )
}

fn required_access(
    claim: &Claim,
    policy: &Policy,
    access: &AccessVocabulary,
) -> (BTreeSet<String>, String) {
    match &claim.required_access {
        Some(names) => (
            access.expand(names).unwrap_or_default(),
            "the claim's required_access".into(),
        ),
        None => (
            access
                .expand(
                    policy
                        .required_access
                        .get(&claim.property_type)
                        .map_or(&[][..], Vec::as_slice),
                )
                .unwrap_or_default(),
            format!("policy required_access.{}", claim.property_type.as_str()),
        ),
    }
}

/// Defeaters aimed at a claim or at the evidence it cites.
fn defeaters_on<'a>(
    claim: &Claim,
    case: &'a crate::case::AssuranceCase,
) -> Vec<&'a crate::case::Defeater> {
    case.defeaters
        .iter()
        .filter(|d| {
            d.target == claim.id
                || (d.kind == DefeaterType::Undermining && claim.evidence.contains(&d.target))
        })
        .collect()
}

fn count(defs: &[&crate::case::Defeater]) -> DefeaterCounts {
    let eliminated = defs
        .iter()
        .filter(|d| d.status == DefeaterStatus::Eliminated)
        .count();
    let accepted = defs
        .iter()
        .filter(|d| d.status == DefeaterStatus::Accepted)
        .count();
    let open = defs
        .iter()
        .filter(|d| d.status == DefeaterStatus::Open)
        .count();
    DefeaterCounts {
        identified: defs.len(),
        eliminated,
        accepted,
        open,
        baconian: format!("{eliminated}/{}", defs.len()),
        ids: defs.iter().map(|d| d.id.clone()).collect(),
    }
}

fn access_report(
    required: BTreeSet<String>,
    source: String,
    used: BTreeSet<String>,
    access: &AccessVocabulary,
) -> AccessReport {
    AccessReport {
        missing: required.difference(&used).cloned().collect(),
        required: required.into_iter().collect(),
        required_source: source,
        levels_used: access.levels_within(&used),
        used: used.into_iter().collect(),
    }
}

/// Classes whose access is within `used`, and the best posterior they could give.
fn reachable_at(
    used: &BTreeSet<String>,
    claim: &Claim,
    prior: f64,
    policy: &Policy,
    access: &AccessVocabulary,
) -> (Vec<String>, f64) {
    let mut classes = Vec::new();
    let mut l = log_odds(prior);
    for c in &policy.evidence_classes {
        let need = access.expand(&c.min_access).unwrap_or_default();
        if need.is_subset(used) {
            classes.push(c.id.clone());
            l += c.cap(Polarity::Support, claim.property_type);
        }
    }
    (classes, prob(l))
}

fn leaf(
    claim: &Claim,
    loaded: &LoadedCase,
    policy: &Policy,
    access: &AccessVocabulary,
    items_by_id: &BTreeMap<&str, &ItemReport>,
) -> ClaimReport {
    let case = &loaded.case;
    let (target, prior) = target_prior(claim, policy);
    let t = claim.property_type;
    let mut derivation = vec![format!(
        "prior {prior} → log-odds {:.3} ban ({})",
        log_odds(prior),
        if claim.prior.is_some() {
            "the claim's prior"
        } else {
            "policy prior"
        }
    )];
    let defs = defeaters_on(claim, case);
    let mut open_issues: Vec<String> = defs
        .iter()
        .filter(|d| d.status == DefeaterStatus::Open && d.kind != DefeaterType::Undermining)
        .map(|d| {
            format!(
                "open {} defeater {}: {}",
                kind_name(d.kind),
                d.id,
                d.text.trim()
            )
        })
        .collect();
    let mut items = Vec::new();
    let mut used = BTreeSet::new();
    let mut classes_present = BTreeSet::new();
    for eid in &claim.evidence {
        let Some(item) = items_by_id.get(eid.as_str()) else {
            continue;
        };
        let eref = case
            .evidence
            .iter()
            .find(|e| &e.id == eid)
            .expect("cited evidence exists");
        used.extend(item.access.iter().cloned());
        let Some(class) = policy.class(&item.evidence_class) else {
            continue;
        };
        classes_present.insert(class.id.clone());
        let p = item.polarity;
        let (lr, lr_source) = match eref.likelihood_ratio {
            Some(x) => (x, "case".to_string()),
            None => (
                *class.default_likelihood_ratio.get(p),
                format!("policy default for {} {}", class.id, polarity_name(p)),
            ),
        };
        let raw = lr.log10();
        let cap = class.cap(p, t);
        let mut note = None;
        if let Some(d) = defs.iter().find(|d| {
            d.kind == DefeaterType::Undermining
                && &d.target == eid
                && d.status == DefeaterStatus::Open
        }) {
            note = Some(format!(
                "undermined by open defeater {}: {}",
                d.id,
                d.text.trim()
            ));
        }
        if let Some(f) = &item.finding
            && !f.holds
        {
            let msg = format!(
                "stated finding does not hold: {} is {} (wanted{}{})",
                f.metric,
                f.value,
                f.at_least.map(|x| format!(" ≥ {x}")).unwrap_or_default(),
                f.at_most.map(|x| format!(" ≤ {x}")).unwrap_or_default()
            );
            open_issues.push(format!("evidence {eid}: {msg}"));
            note = Some(msg);
        }
        let counted = note.is_none();
        let weight = if counted { raw.min(cap) } else { 0.0 };
        items.push(ItemWeight {
            id: eid.clone(),
            evidence_class: class.id.clone(),
            polarity: p,
            likelihood_ratio: r(lr),
            likelihood_ratio_source: lr_source,
            raw_bans: r(raw),
            cap_bans: r(cap),
            cap_source: format!(
                "policy evidence_classes.{}.w_max.{}.{}",
                class.id,
                polarity_name(p),
                t.as_str()
            ),
            weight_bans: r(weight),
            counted,
            note,
        });
    }
    // Combine within each class and polarity.
    let mut groups: BTreeMap<(String, Polarity), Vec<(String, f64)>> = BTreeMap::new();
    for it in items.iter().filter(|i| i.counted) {
        groups
            .entry((it.evidence_class.clone(), it.polarity))
            .or_default()
            .push((it.id.clone(), it.weight_bans));
    }
    let mut classes = Vec::new();
    let mut l = log_odds(prior);
    for ((cid, p), mut ws) in groups {
        ws.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let class = policy.class(&cid).expect("grouped classes exist");
        let max = ws[0].1;
        let rest: f64 = ws[1..].iter().map(|w| w.1).sum();
        let uncapped = max + policy.within_class_lambda * rest;
        let cap = class.cap(p, t);
        let combined = uncapped.min(cap);
        derivation.push(format!(
            "{cid} {}: {} → {max:.3} + {} × {rest:.3} = {uncapped:.3}, class cap {cap:.3} (policy evidence_classes.{cid}.w_max.{}.{}) → {combined:.3} ban",
            polarity_name(p),
            ws.iter().map(|(i, w)| format!("{i} {w:.3}")).collect::<Vec<_>>().join(", "),
            policy.within_class_lambda,
            polarity_name(p),
            t.as_str()
        ));
        l += match p {
            Polarity::Support => combined,
            Polarity::Counter => -combined,
        };
        classes.push(ClassWeight {
            evidence_class: cid,
            polarity: p,
            items: ws.iter().map(|w| w.0.clone()).collect(),
            max_bans: r(max),
            rest_bans: r(rest),
            lambda: policy.within_class_lambda,
            uncapped_bans: r(uncapped),
            cap_bans: r(cap),
            combined_bans: r(combined),
        });
    }
    let mut posterior = prob(l);
    derivation.push(format!(
        "posterior log-odds {l:.3} ban → P = {posterior:.4}"
    ));
    if !open_issues.is_empty() && posterior > policy.open_defeater_cap {
        posterior = policy.open_defeater_cap;
        derivation.push(format!(
            "capped at {} (policy open_defeater_cap) while {} issue(s) stay open",
            policy.open_defeater_cap,
            open_issues.len()
        ));
    }
    // The structural ceiling: every class present at its support cap.
    let mut lmax = log_odds(prior);
    for c in &classes_present {
        lmax += policy.class(c).map_or(0.0, |k| k.cap(Polarity::Support, t));
    }
    let max_reachable = prob(lmax);
    derivation.push(format!(
        "max reachable with classes present ({}): log-odds {:.3} + their {} support caps = {lmax:.3} → P = {max_reachable:.4}",
        classes_present.iter().cloned().collect::<Vec<_>>().join(", "),
        log_odds(prior),
        t.as_str()
    ));
    let (req, req_src) = required_access(claim, policy, access);
    let (classes_at_access, max_at_access) = reachable_at(&used, claim, prior, policy, access);
    derivation.push(format!(
        "max reachable at the access used ({}): classes {} → P = {max_at_access:.4}",
        used.iter().cloned().collect::<Vec<_>>().join(", "),
        classes_at_access.join(", ")
    ));
    let access_r = access_report(req, req_src, used, access);
    let weight_gap = (log_odds(target) - log_odds(max_at_access)).max(0.0);
    let evidence_gap = (log_odds(target) - log_odds(posterior)).max(0.0);
    // Prongs.
    let nonrepro: Vec<&ItemWeight> = items
        .iter()
        .filter(|i| i.counted && i.weight_bans > 0.0 && i.polarity == Polarity::Support)
        .filter(|i| {
            items_by_id
                .get(i.id.as_str())
                .is_some_and(|x| !x.reproducible)
        })
        .collect();
    let prongs = Prongs {
        non_reproducible: !nonrepro.is_empty(),
        inferential_gap: max_reachable < target,
    };
    let mut reasons = Vec::new();
    if prongs.inferential_gap && !classes_present.is_empty() {
        reasons.push(format!(
            "inferential gap: the classes present ({}) can at most reach P = {max_reachable:.3} for a {} property, below the target {target}, however many items of them are added",
            classes_present.iter().cloned().collect::<Vec<_>>().join(", "),
            t.as_str()
        ));
    }
    for i in &nonrepro {
        let x = items_by_id[i.id.as_str()];
        let bad: Vec<String> = x
            .checks
            .iter()
            .filter(|c| !c.ok())
            .map(|c| format!("{} {} {}: {}", c.what, c.subject, c.outcome, c.detail))
            .collect();
        reasons.push(format!(
            "not reproducible: evidence {} ({})",
            i.id,
            bad.join("; ")
        ));
    }
    reasons.extend(open_issues.iter().cloned());
    if !access_r.missing.is_empty() {
        reasons.push(format!(
            "access gap: {} required but not used",
            access_r.missing.join(", ")
        ));
    }
    let status = if claim.evidence.is_empty() {
        reasons.insert(0, "no evidence and no subclaims".into());
        Status::Undeveloped
    } else if posterior <= 1.0 - target {
        let counters: Vec<String> = classes
            .iter()
            .filter(|c| c.polarity == Polarity::Counter)
            .map(|c| {
                format!(
                    "{} −{:.3} ban ({})",
                    c.evidence_class,
                    c.combined_bans,
                    c.items.join(", ")
                )
            })
            .collect();
        reasons.insert(
            0,
            format!(
                "counter-evidence drives the posterior to {posterior:.4} ≤ 1 − target = {:.4}: {}",
                1.0 - target,
                counters.join("; ")
            ),
        );
        Status::Refuted
    } else if posterior >= target && !prongs.non_reproducible && open_issues.is_empty() {
        reasons.insert(0, format!("posterior {posterior:.4} ≥ target {target} on reproducible evidence with no open defeater"));
        Status::Supported
    } else if claim.asserted && (prongs.non_reproducible || prongs.inferential_gap) {
        Status::Fragile
    } else {
        reasons.insert(
            0,
            format!("posterior {posterior:.4} < target {target}: {evidence_gap:.3} ban short"),
        );
        Status::Unsupported
    };
    ClaimReport {
        id: claim.id.clone(),
        statement: claim.statement.clone(),
        family: claim.family,
        property_type: t,
        asserted: claim.asserted,
        target,
        prior,
        subclaims: Vec::new(),
        decomposition: None,
        items,
        classes,
        posterior: r(posterior),
        posterior_bounds: [r(posterior), r(posterior)],
        max_reachable: r(max_reachable),
        max_reachable_at_access: r(max_at_access),
        classes_at_access,
        access: access_r,
        weight_gap_bans: r(weight_gap),
        evidence_gap_bans: r(evidence_gap),
        defeaters: count(&defs),
        verdict: Verdict {
            status,
            prongs,
            reasons,
        },
        derivation,
    }
}

fn kind_name(k: DefeaterType) -> &'static str {
    match k {
        DefeaterType::Rebutting => "rebutting",
        DefeaterType::Undermining => "undermining",
        DefeaterType::Undercutting => "undercutting",
    }
}

fn parent(
    claim: &Claim,
    loaded: &LoadedCase,
    policy: &Policy,
    access: &AccessVocabulary,
    done: &BTreeMap<String, ClaimReport>,
) -> ClaimReport {
    let case = &loaded.case;
    let (target, prior) = target_prior(claim, policy);
    let kids: Vec<&ClaimReport> = claim.subclaims.iter().filter_map(|s| done.get(s)).collect();
    let decomposition = claim.decomposition.unwrap_or(Decomposition::Conjunctive);
    let mut derivation = Vec::new();
    let (mut lo, mut hi, reach, reach_access) = match decomposition {
        Decomposition::Conjunctive => {
            let doubt: f64 = kids.iter().map(|k| 1.0 - k.posterior_bounds[0]).sum();
            let lo = (1.0 - doubt).max(0.0);
            let hi = kids
                .iter()
                .map(|k| k.posterior_bounds[1])
                .fold(1.0, f64::min);
            let reach = (1.0 - kids.iter().map(|k| 1.0 - k.max_reachable).sum::<f64>()).max(0.0);
            let reach_a = (1.0
                - kids
                    .iter()
                    .map(|k| 1.0 - k.max_reachable_at_access)
                    .sum::<f64>())
            .max(0.0);
            derivation.push(format!(
                "conjunctive (Fréchet bounds, no independence assumed): lower = max(0, 1 − Σ doubts) = 1 − ({}) = {lo:.4}; upper = min({}) = {hi:.4}",
                kids.iter().map(|k| format!("{:.4}", 1.0 - k.posterior_bounds[0])).collect::<Vec<_>>().join(" + "),
                kids.iter().map(|k| format!("{} {:.4}", k.id, k.posterior_bounds[1])).collect::<Vec<_>>().join(", ")
            ));
            (lo, hi, reach, reach_a)
        }
        Decomposition::Diverse => {
            let lo = kids
                .iter()
                .map(|k| k.posterior_bounds[0])
                .fold(0.0, f64::max);
            let reach = kids.iter().map(|k| k.max_reachable).fold(0.0, f64::max);
            let reach_a = kids
                .iter()
                .map(|k| k.max_reachable_at_access)
                .fold(0.0, f64::max);
            derivation.push(format!(
                "diverse (each subclaim suffices): lower = max({}) = {lo:.4}; upper = 1 (a failed leg does not refute the parent)",
                kids.iter().map(|k| format!("{} {:.4}", k.id, k.posterior_bounds[0])).collect::<Vec<_>>().join(", ")
            ));
            (lo, 1.0, reach, reach_a)
        }
    };
    let own_defs: Vec<&crate::case::Defeater> = case
        .defeaters
        .iter()
        .filter(|d| d.target == claim.id)
        .collect();
    let open: Vec<String> = own_defs
        .iter()
        .filter(|d| d.status == DefeaterStatus::Open)
        .map(|d| {
            format!(
                "open {} defeater {}: {}",
                kind_name(d.kind),
                d.id,
                d.text.trim()
            )
        })
        .collect();
    if !open.is_empty() {
        lo = lo.min(policy.open_defeater_cap);
        hi = hi.min(policy.open_defeater_cap);
        derivation.push(format!(
            "capped at {} (policy open_defeater_cap) while {} defeater(s) stay open",
            policy.open_defeater_cap,
            open.len()
        ));
    }
    let mut used = BTreeSet::new();
    for k in &kids {
        used.extend(k.access.used.iter().cloned());
    }
    let (req, src) = required_access(claim, policy, access);
    let access_r = access_report(req, src, used, access);
    let non_reproducible = match decomposition {
        Decomposition::Conjunctive => kids.iter().any(|k| k.verdict.prongs.non_reproducible),
        Decomposition::Diverse => kids
            .iter()
            .max_by(|a, b| a.posterior_bounds[0].total_cmp(&b.posterior_bounds[0]))
            .is_some_and(|k| k.verdict.prongs.non_reproducible),
    };
    let prongs = Prongs {
        non_reproducible,
        inferential_gap: reach < target,
    };
    let mut reasons = Vec::new();
    if prongs.inferential_gap {
        reasons.push(format!("inferential gap: the subclaims can at most give P ≥ {reach:.3} ({} bound), below the target {target}", if decomposition == Decomposition::Conjunctive { "Fréchet" } else { "best leg" }));
    }
    if non_reproducible {
        reasons.push("a subclaim it rests on is not reproducible".into());
    }
    reasons.extend(open.iter().cloned());
    let weak: Vec<String> = kids
        .iter()
        .filter(|k| k.verdict.status != Status::Supported)
        .map(|k| format!("{} is {}", k.id, k.verdict.status.as_str()))
        .collect();
    let status = if kids.iter().all(|k| k.verdict.status == Status::Undeveloped) {
        reasons.insert(0, "every subclaim is undeveloped".into());
        Status::Undeveloped
    } else if hi <= 1.0 - target {
        reasons.insert(
            0,
            format!(
                "upper bound {hi:.4} ≤ 1 − target: a conjunct is refuted ({})",
                weak.join(", ")
            ),
        );
        Status::Refuted
    } else if lo >= target
        && !non_reproducible
        && open.is_empty()
        && match decomposition {
            Decomposition::Conjunctive => weak.is_empty(),
            Decomposition::Diverse => kids.iter().any(|k| k.verdict.status == Status::Supported),
        }
    {
        reasons.insert(0, format!("lower bound {lo:.4} ≥ target {target}"));
        Status::Supported
    } else if claim.asserted && (prongs.non_reproducible || prongs.inferential_gap) {
        if !weak.is_empty() {
            reasons.push(format!("subclaims: {}", weak.join(", ")));
        }
        Status::Fragile
    } else {
        let mut why = format!("bounds [{lo:.4}, {hi:.4}] do not reach the target {target}");
        if decomposition == Decomposition::Conjunctive && hi < target {
            why.push_str(&format!(": bounded above by {}", weak.join(", ")));
        } else if decomposition == Decomposition::Conjunctive
            && kids.iter().all(|k| k.verdict.status == Status::Supported)
        {
            why.push_str(": the subclaims' doubts add up without an independence assumption; raise their targets or decompose differently");
        }
        reasons.insert(0, why);
        Status::Unsupported
    };
    let mut all_defs: Vec<&crate::case::Defeater> = own_defs.clone();
    let mut ids: BTreeSet<String> = own_defs.iter().map(|d| d.id.clone()).collect();
    for k in &kids {
        for id in &k.defeaters.ids {
            if ids.insert(id.clone())
                && let Some(d) = case.defeaters.iter().find(|d| &d.id == id)
            {
                all_defs.push(d);
            }
        }
    }
    let weight_gap = (log_odds(target) - log_odds(reach_access.clamp(1e-12, 1.0 - 1e-12))).max(0.0);
    let evidence_gap = (log_odds(target) - log_odds(lo.clamp(1e-12, 1.0 - 1e-12))).max(0.0);
    ClaimReport {
        id: claim.id.clone(),
        statement: claim.statement.clone(),
        family: claim.family,
        property_type: claim.property_type,
        asserted: claim.asserted,
        target,
        prior,
        subclaims: claim.subclaims.clone(),
        decomposition: Some(decomposition),
        items: Vec::new(),
        classes: Vec::new(),
        posterior: r(lo),
        posterior_bounds: [r(lo), r(hi)],
        max_reachable: r(reach),
        max_reachable_at_access: r(reach_access),
        classes_at_access: Vec::new(),
        access: access_r,
        weight_gap_bans: r(weight_gap),
        evidence_gap_bans: r(evidence_gap),
        defeaters: count(&all_defs),
        verdict: Verdict {
            status,
            prongs,
            reasons,
        },
        derivation,
    }
}

fn instrument_report(
    inst: &crate::data::Instrument,
    case: &crate::case::AssuranceCase,
    claims: &[ClaimReport],
    policy: &Policy,
    access: &AccessVocabulary,
) -> InstrumentReport {
    let guaranteed = access.expand(&inst.verifier_access).unwrap_or_default();
    let mut reqs = Vec::new();
    for req in &inst.requirements {
        let required = access.expand(&req.required_access).unwrap_or_default();
        let explicit: Vec<&ClaimReport> = claims
            .iter()
            .filter(|c| {
                case.claims
                    .iter()
                    .any(|cc| cc.id == c.id && cc.answers.contains(&req.id))
            })
            .collect();
        let (answering, matched_by) = if !explicit.is_empty() {
            (explicit, "answers")
        } else {
            let by_family: Vec<&ClaimReport> = claims
                .iter()
                .filter(|c| req.properties.contains(&c.family))
                .collect();
            if by_family.is_empty() {
                (by_family, "none")
            } else {
                (by_family, "family")
            }
        };
        let mut used = BTreeSet::new();
        for c in &answering {
            used.extend(c.access.used.iter().cloned());
        }
        let status = if req.properties.is_empty() && answering.is_empty() {
            "process".to_string()
        } else if answering.is_empty() {
            "unanswered".to_string()
        } else {
            answering
                .iter()
                .map(|c| c.verdict.status)
                .max_by_key(|s| s.severity())
                .map_or("unanswered", Status::as_str)
                .to_string()
        };
        let gap = answering
            .iter()
            .map(|c| {
                let claim = case
                    .claims
                    .iter()
                    .find(|cc| cc.id == c.id)
                    .expect("claim exists");
                let (_, p) = reachable_at(&guaranteed, claim, c.prior, policy, access);
                r((log_odds(c.target) - log_odds(p)).max(0.0))
            })
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        reqs.push(RequirementReport {
            id: req.id.clone(),
            text: req.text.clone(),
            properties: req.properties.clone(),
            confidence: req.confidence.clone(),
            answered_by: answering.iter().map(|c| c.id.clone()).collect(),
            matched_by: matched_by.into(),
            status,
            access_missing: required.difference(&used).cloned().collect(),
            access_not_guaranteed: required.difference(&guaranteed).cloned().collect(),
            required_access: required.into_iter().collect(),
            access_used: used.into_iter().collect(),
            weight_gap_at_guaranteed_access_bans: gap,
        });
    }
    let bearing: Vec<&RequirementReport> =
        reqs.iter().filter(|r| !r.properties.is_empty()).collect();
    let answered = bearing.iter().filter(|r| !r.answered_by.is_empty()).count();
    let supported = bearing.iter().filter(|r| r.status == "supported").count();
    let union = |f: fn(&RequirementReport) -> &Vec<String>| -> Vec<String> {
        reqs.iter()
            .filter(|r| !r.answered_by.is_empty() || !r.properties.is_empty())
            .flat_map(|r| f(r).iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    InstrumentReport {
        id: inst.id.clone(),
        title: inst.title.clone(),
        confidence: inst.confidence.clone(),
        binding: inst.binding,
        verifier_access: guaranteed.into_iter().collect(),
        bearing_on_properties: bearing.len(),
        answered,
        supported,
        coverage: if bearing.is_empty() {
            None
        } else {
            Some(r(supported as f64 / bearing.len() as f64))
        },
        access_missing: union(|r| &r.access_missing),
        access_not_guaranteed: union(|r| &r.access_not_guaranteed),
        max_weight_gap_at_guaranteed_access_bans: reqs
            .iter()
            .filter_map(|r| r.weight_gap_at_guaranteed_access_bans)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x)))),
        requirements: reqs,
    }
}
