//! Loading an assurance case: YAML with positions, the JSON Schema, then every
//! reference (evidence files, claims, defeaters, instruments, capabilities) —
//! all problems reported at once, each with file, line and a fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use assay_spec::suggest::did_you_mean;
use assay_spec::yaml::{self, Located};
use assay_trace::sha256_hex;
use serde_json::Value;

use crate::case::{AssuranceCase, CASE_API_VERSION, CASE_KIND, DefeaterType, case_schema};
use crate::data::{AccessVocabulary, Inventory, Policy};
use crate::error::{AssureError, Problem};
use crate::evidence::{Check, Hasher, Record, check_record, read_record};

/// A case whose every reference resolved, with its evidence read and checked.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The case.
    pub case: AssuranceCase,
    /// The file.
    pub path: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Evidence by case id.
    pub items: BTreeMap<String, LoadedItem>,
    /// The policy in force (the case's `policy:` file, or the built-in one).
    pub policy: Policy,
    /// Where the policy came from.
    pub policy_source: String,
}

/// One evidence item of a case, read and checked.
#[derive(Debug, Clone)]
pub struct LoadedItem {
    /// The record.
    pub record: Record,
    /// Integrity and reproducibility checks.
    pub checks: Vec<Check>,
}

impl LoadedItem {
    /// Reproducible: every check passed (pin, id, digests, recipe).
    pub fn reproducible(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }
}

/// Reads, validates and resolves a case. `policy` replaces the case's own policy
/// file when given.
pub fn load_case(
    path: &Path,
    policy: Option<&Path>,
    access: &AccessVocabulary,
    inventory: &Inventory,
) -> Result<LoadedCase, AssureError> {
    let text = std::fs::read_to_string(path).map_err(|e| AssureError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let file = path.display().to_string();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let doc = yaml::parse(&text).map_err(|(msg, pos)| {
        AssureError::Invalid(vec![Problem::new(
            &file,
            pos.line,
            pos.col,
            format!("invalid YAML: {msg}"),
            Some("check indentation, and quote strings that contain `: `".into()),
        )])
    })?;
    let mut v = Validator {
        file: file.clone(),
        doc,
        problems: Vec::new(),
    };
    v.schema_pass();
    if !v.problems.is_empty() {
        return Err(AssureError::Invalid(v.problems));
    }
    let case: AssuranceCase = match serde_path_to_error::deserialize(v.doc.value.clone()) {
        Ok(c) => c,
        Err(e) => {
            let ptr = crate::error::path_to_pointer(e.path());
            v.at(&ptr, e.inner().to_string(), None);
            return Err(AssureError::Invalid(v.problems));
        }
    };
    // The policy: --policy, else the case's, else the built-in one.
    let (policy, policy_source) = match (policy, &case.policy) {
        (Some(p), _) => (Policy::load(p, access)?, p.display().to_string()),
        (None, Some(rel)) => {
            let p = dir.join(rel);
            (Policy::load(&p, access)?, p.display().to_string())
        }
        (None, None) => (Policy::builtin(), "built-in".to_string()),
    };
    let items = v.semantic(&case, &dir, &policy, access, inventory);
    if !v.problems.is_empty() {
        return Err(AssureError::Invalid(v.problems));
    }
    Ok(LoadedCase {
        case,
        path: path.to_path_buf(),
        sha256: sha256_hex(text.as_bytes()),
        items,
        policy,
        policy_source,
    })
}

struct Validator {
    file: String,
    doc: Located,
    problems: Vec<Problem>,
}

impl Validator {
    fn at(&mut self, ptr: &str, message: String, hint: Option<String>) {
        let pos = self.doc.pos(ptr);
        self.problems
            .push(Problem::new(&self.file, pos.line, pos.col, message, hint));
    }

    /// Structure and types, every violation at once.
    fn schema_pass(&mut self) {
        static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        let schema = SCHEMA.get_or_init(case_schema);
        let validator = jsonschema::validator_for(schema).expect("the case schema is valid");
        let value = self.doc.value.clone();
        if !value.is_object() {
            self.at(
                "",
                "an assurance case is a map".into(),
                Some(format!(
                    "start the file with `apiVersion: {CASE_API_VERSION}`"
                )),
            );
            return;
        }
        let mut found: Vec<(String, String)> = validator
            .iter_errors(&value)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect();
        found.sort();
        found.dedup();
        for (ptr, msg) in found {
            let field = ptr.rsplit('/').next().unwrap_or("");
            let got = self.doc.value.pointer(&ptr).cloned();
            if let (Some(allowed), Some(Value::String(got))) = (enum_values(field), &got) {
                let hint = match did_you_mean(got, allowed.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? allowed: {}", allowed.join(", ")),
                    None => format!("allowed: {}", allowed.join(", ")),
                };
                self.at(&ptr, format!("unknown {field} {got:?}"), Some(hint));
                continue;
            }
            let hint = hint_for(&msg);
            self.at(&ptr, msg, hint);
        }
        for (key, want) in [("apiVersion", CASE_API_VERSION), ("kind", CASE_KIND)] {
            if let Some(got) = value.get(key).and_then(Value::as_str)
                && got != want
            {
                self.at(
                    &format!("/{key}"),
                    format!("{key} is {got:?}"),
                    Some(format!("write `{key}: {want}`")),
                );
            }
        }
    }

    /// References and meaning; returns the evidence read.
    fn semantic(
        &mut self,
        case: &AssuranceCase,
        dir: &Path,
        policy: &Policy,
        access: &AccessVocabulary,
        inventory: &Inventory,
    ) -> BTreeMap<String, LoadedItem> {
        // Ids: unique across every kind, and usable in GSN exports.
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        let mut all_ids = Vec::new();
        for (i, c) in case.claims.iter().enumerate() {
            all_ids.push((format!("/claims/{i}/id"), c.id.clone()));
        }
        for (i, e) in case.evidence.iter().enumerate() {
            all_ids.push((format!("/evidence/{i}/id"), e.id.clone()));
        }
        for (i, n) in case.assumptions.iter().enumerate() {
            all_ids.push((format!("/assumptions/{i}/id"), n.id.clone()));
        }
        for (i, n) in case.justifications.iter().enumerate() {
            all_ids.push((format!("/justifications/{i}/id"), n.id.clone()));
        }
        for (i, d) in case.defeaters.iter().enumerate() {
            all_ids.push((format!("/defeaters/{i}/id"), d.id.clone()));
        }
        for (ptr, id) in &all_ids {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                self.at(
                    ptr,
                    format!("id {id:?} may hold only letters, digits, `-`, `_` and `.`"),
                    None,
                );
            }
            if let Some(first) = ids.insert(id.clone(), ptr.clone()) {
                let pos = self.doc.pos(&first);
                self.at(
                    ptr,
                    format!("id {id:?} is already used (line {})", pos.line),
                    Some("give every claim, evidence item, note and defeater its own id".into()),
                );
            }
        }
        let claim_ids: Vec<&str> = case.claims.iter().map(|c| c.id.as_str()).collect();
        let evidence_ids: Vec<&str> = case.evidence.iter().map(|e| e.id.as_str()).collect();

        // System identities.
        for (i, m) in case.system.models.iter().enumerate() {
            if !is_hex64(&m.digest) {
                self.at(
                    &format!("/system/models/{i}/digest"),
                    format!("digest {:?} is not a hex SHA-256", m.digest),
                    Some("copy `model.digest` from an evidence record about this model".into()),
                );
            }
        }
        for (i, a) in case.system.agents.iter().enumerate() {
            if let Some(d) = &a.agents_file_sha256
                && !is_hex64(d)
            {
                self.at(
                    &format!("/system/agents/{i}/agents_file_sha256"),
                    format!("{d:?} is not a hex SHA-256"),
                    None,
                );
            }
            if let Some(m) = &a.model
                && !case.system.models.iter().any(|x| &x.name == m)
            {
                self.at(
                    &format!("/system/agents/{i}/model"),
                    format!("model {m:?} is not in system.models"),
                    None,
                );
            }
        }

        // Evidence: read, check shape, class, access, identity, finding.
        let mut items = BTreeMap::new();
        let mut hasher = Hasher::default();
        let class_names: Vec<&str> = policy
            .evidence_classes
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        for (i, e) in case.evidence.iter().enumerate() {
            let base = format!("/evidence/{i}");
            let file = match (&e.file, &e.run, &e.spec) {
                (Some(f), None, None) => dir.join(f),
                (None, Some(r), None) => dir.join(r).join("evidence").join("run.json"),
                (None, Some(r), Some(s)) => {
                    dir.join(r).join("evidence").join(format!("spec-{s}.json"))
                }
                (Some(_), Some(_), _) => {
                    self.at(
                        &base,
                        format!("evidence {} gives both `file` and `run`", e.id),
                        Some("keep one".into()),
                    );
                    continue;
                }
                (Some(_), None, Some(_)) => {
                    self.at(
                        &format!("{base}/spec"),
                        "`spec` selects a record of a `run`; with `file` it means nothing".into(),
                        Some("remove `spec`, or use `run:` instead of `file:`".into()),
                    );
                    continue;
                }
                (None, _, _) => {
                    self.at(
                        &base,
                        format!("evidence {} names no `file` or `run`", e.id),
                        Some(
                            "add `file: path/to/evidence.json` (relative to the case file)".into(),
                        ),
                    );
                    continue;
                }
            };
            let file_ptr = if e.file.is_some() {
                format!("{base}/file")
            } else {
                format!("{base}/run")
            };
            if let Some(p) = &e.sha256
                && !is_hex64(p)
            {
                self.at(
                    &format!("{base}/sha256"),
                    format!("{p:?} is not a hex SHA-256"),
                    None,
                );
            }
            if let Some(lr) = e.likelihood_ratio
                && !(lr.is_finite() && lr >= 1.0)
            {
                self.at(
                    &format!("{base}/likelihood_ratio"),
                    format!("likelihood_ratio {lr} must be a finite number ≥ 1"),
                    Some("it says how many times likelier the observation is on the polarity's side; counter-evidence uses `polarity: counter` with a ratio ≥ 1".into()),
                );
            }
            let record = match read_record(&file) {
                Ok(r) => r,
                Err(err) => {
                    self.at(&file_ptr, err.to_string(), Some("point at an `evidence.json` written by `assay mech …` or an `assay run` output's `evidence/` folder".into()));
                    continue;
                }
            };
            let class = record.class().to_string();
            if policy.class(&class).is_none() {
                let hint = did_you_mean(&class, class_names.iter().copied())
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.at(
                    &file_ptr,
                    format!("unknown evidence class {class:?} in {}", file.display()),
                    Some(format!(
                        "{hint}known classes: {}; a policy file (--policy) can add one",
                        class_names.join(", ")
                    )),
                );
            }
            for cap in record.access() {
                if !access.is_capability(&cap) {
                    let hint =
                        did_you_mean(&cap, access.capabilities.iter().map(|c| c.id.as_str()))
                            .map(|s| format!("did you mean `{s}`?"));
                    self.at(
                        &file_ptr,
                        format!("unknown access capability {cap:?} in {}", file.display()),
                        hint,
                    );
                }
            }
            // Identity: evidence must be about the system under assessment.
            let digests = record.model_digests();
            if !digests.is_empty() {
                let declared: Vec<&str> = case
                    .system
                    .models
                    .iter()
                    .map(|m| m.digest.as_str())
                    .collect();
                if !digests
                    .iter()
                    .any(|d| declared.iter().any(|x| x.eq_ignore_ascii_case(d)))
                {
                    self.at(
                        &file_ptr,
                        format!(
                            "evidence {} is about model {} but the system under assessment declares {}",
                            e.id,
                            digests.join(" / "),
                            if declared.is_empty() { "no model".to_string() } else { declared.join(", ") }
                        ),
                        Some("add the model to `system.models` with this digest, or offer evidence about the declared model".into()),
                    );
                }
            }
            if record.is_run_record() {
                let subjects = record.subject_agents();
                if subjects.is_empty() {
                    self.at(&file_ptr, format!("evidence {} records only control agents: they are instruments that check the spec, not the system under assessment", e.id), Some("offer a run of the agent under assessment (`assay run … --agent …`)".into()));
                } else if !case.system.agents.is_empty() {
                    let hit = case
                        .system
                        .agents
                        .iter()
                        .find(|a| subjects.contains(&a.name));
                    match hit {
                        None => self.at(&file_ptr, format!("evidence {} measured agent(s) {} but the system under assessment declares {}", e.id, subjects.join(", "), case.system.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")), None),
                        Some(a) => {
                            if let (Some(want), Some(got)) = (&a.agents_file_sha256, record.agents_file_sha256())
                                && !want.eq_ignore_ascii_case(&got)
                            {
                                self.at(&file_ptr, format!("evidence {} ran agent {} from an agents file with sha256 {got}; the case pins {want}", e.id, a.name), None);
                            }
                        }
                    }
                } else {
                    self.at(
                        &file_ptr,
                        format!(
                            "evidence {} is a run of agent(s) {} but `system.agents` is empty",
                            e.id,
                            subjects.join(", ")
                        ),
                        Some("name the agents under assessment in `system.agents`".into()),
                    );
                }
            }
            if let Some(f) = &e.finding {
                let fptr = format!("{base}/finding");
                if f.at_least.is_none() && f.at_most.is_none() {
                    self.at(
                        &fptr,
                        "a finding needs `at_least`, `at_most` or both".into(),
                        None,
                    );
                }
                match record.value.pointer(&f.metric) {
                    Some(v) if v.is_number() => {}
                    Some(v) => self.at(
                        &format!("{fptr}/metric"),
                        format!("{} in {} is {}, not a number", f.metric, file.display(), v),
                        None,
                    ),
                    None => {
                        let hint = top_level_numbers(&record.value);
                        self.at(
                            &format!("{fptr}/metric"),
                            format!("{} does not exist in {}", f.metric, file.display()),
                            Some(format!("numbers in the record include: {hint}")),
                        );
                    }
                }
            }
            let root = e
                .root
                .as_ref()
                .map_or_else(|| dir.to_path_buf(), |r| dir.join(r));
            let checks = check_record(&record, e.sha256.as_deref(), &root, &mut hasher);
            items.insert(e.id.clone(), LoadedItem { record, checks });
        }

        // Claims.
        for (i, c) in case.claims.iter().enumerate() {
            let base = format!("/claims/{i}");
            for (field, val) in [("target", c.target), ("prior", c.prior)] {
                if let Some(p) = val
                    && !(p > 0.0 && p < 1.0)
                {
                    self.at(
                        &format!("{base}/{field}"),
                        format!("{field} {p} is not a probability strictly between 0 and 1"),
                        None,
                    );
                }
            }
            if let Some(req) = &c.required_access
                && let Err(n) = access.expand(req)
            {
                let hint = did_you_mean(&n, access.names().iter().map(String::as_str))
                    .map(|s| format!("did you mean `{s}`?"));
                self.at(
                    &format!("{base}/required_access"),
                    format!("unknown access capability {n:?}"),
                    hint.or(Some(format!("known: {}", access.names().join(", ")))),
                );
            }
            for (j, eid) in c.evidence.iter().enumerate() {
                if !evidence_ids.contains(&eid.as_str()) {
                    let hint = did_you_mean(eid, evidence_ids.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    self.at(
                        &format!("{base}/evidence/{j}"),
                        format!(
                            "claim {} cites evidence {eid:?}, which the case does not list",
                            c.id
                        ),
                        hint,
                    );
                }
            }
            let mut seen = BTreeSet::new();
            for (j, eid) in c.evidence.iter().enumerate() {
                if !seen.insert(eid) {
                    self.at(
                        &format!("{base}/evidence/{j}"),
                        format!("evidence {eid} is cited twice by claim {}", c.id),
                        None,
                    );
                }
            }
            // One record must not be counted twice through two ids, nor a run record with its parts.
            let recs: Vec<(&String, &LoadedItem)> = c
                .evidence
                .iter()
                .filter_map(|e| items.get(e).map(|it| (e, it)))
                .collect();
            for (a, (ea, ia)) in recs.iter().enumerate() {
                for (eb, ib) in recs.iter().skip(a + 1) {
                    if ia.record.id() == ib.record.id() {
                        self.at(&format!("{base}/evidence"), format!("evidence {ea} and {eb} are the same record ({}): it would be counted twice", ia.record.id()), None);
                    } else if ia.record.parts().iter().any(|p| p == ib.record.id())
                        || ib.record.parts().iter().any(|p| p == ia.record.id())
                    {
                        self.at(&format!("{base}/evidence"), format!("evidence {ea} and {eb}: one is a run record that already aggregates the other; it would be counted twice"), Some("cite the run record or its per-spec records, not both".into()));
                    }
                }
            }
            for (j, sid) in c.subclaims.iter().enumerate() {
                if !claim_ids.contains(&sid.as_str()) {
                    let hint = did_you_mean(sid, claim_ids.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    self.at(
                        &format!("{base}/subclaims/{j}"),
                        format!("subclaim {sid:?} is not a claim of this case"),
                        hint,
                    );
                }
            }
            if !c.subclaims.is_empty() && c.decomposition.is_none() {
                self.at(&format!("{base}/subclaims"), format!("claim {} has subclaims but no `decomposition`", c.id), Some("add `decomposition: conjunctive` (every subclaim needed) or `diverse` (any one suffices)".into()));
            }
            if c.subclaims.is_empty() && c.decomposition.is_some() {
                self.at(
                    &format!("{base}/decomposition"),
                    format!("claim {} has a decomposition but no subclaims", c.id),
                    None,
                );
            }
            if !c.subclaims.is_empty() && !c.evidence.is_empty() {
                self.at(&format!("{base}/evidence"), format!("claim {} has both subclaims and direct evidence", c.id), Some("move the evidence into a subclaim of its own, so the decomposition says how it combines".into()));
            }
            for (j, rid) in c.answers.iter().enumerate() {
                match inventory.requirement(rid) {
                    None => {
                        let all: Vec<&str> = inventory
                            .instruments
                            .iter()
                            .flat_map(|i| i.requirements.iter().map(|r| r.id.as_str()))
                            .collect();
                        let hint = did_you_mean(rid, all.iter().copied()).map(|s| {
                            format!("did you mean `{s}`? `assay assure instruments` lists them")
                        });
                        self.at(
                            &format!("{base}/answers/{j}"),
                            format!("unknown instrument requirement {rid:?}"),
                            hint.or(Some(
                                "`assay assure instruments` lists every requirement id".into(),
                            )),
                        );
                    }
                    Some((inst, _)) => {
                        if !case.instruments.contains(&inst.id) {
                            self.at(&format!("{base}/answers/{j}"), format!("requirement {rid} belongs to instrument {}, which `instruments` does not list", inst.id), Some(format!("add {} to `instruments`", inst.id)));
                        }
                    }
                }
            }
        }
        // Cycles among subclaims.
        if let Some(cycle) = find_cycle(case) {
            let i = case
                .claims
                .iter()
                .position(|c| c.id == cycle[0])
                .unwrap_or(0);
            self.at(
                &format!("/claims/{i}/subclaims"),
                format!("subclaims form a cycle: {}", cycle.join(" → ")),
                Some("a claim cannot be argued from itself; break the cycle".into()),
            );
        }
        for (kind, notes) in [
            ("assumptions", &case.assumptions),
            ("justifications", &case.justifications),
        ] {
            for (i, n) in notes.iter().enumerate() {
                for (j, cid) in n.claims.iter().enumerate() {
                    if !claim_ids.contains(&cid.as_str()) {
                        self.at(
                            &format!("/{kind}/{i}/claims/{j}"),
                            format!("{cid:?} is not a claim of this case"),
                            did_you_mean(cid, claim_ids.iter().copied())
                                .map(|s| format!("did you mean `{s}`?")),
                        );
                    }
                }
            }
        }
        for (i, d) in case.defeaters.iter().enumerate() {
            let ptr = format!("/defeaters/{i}/target");
            match d.kind {
                DefeaterType::Undermining => {
                    if !evidence_ids.contains(&d.target.as_str()) {
                        self.at(
                            &ptr,
                            format!(
                                "an undermining defeater attacks an evidence item; {:?} is not one",
                                d.target
                            ),
                            did_you_mean(&d.target, evidence_ids.iter().copied())
                                .map(|s| format!("did you mean `{s}`?")),
                        );
                    }
                }
                DefeaterType::Rebutting | DefeaterType::Undercutting => {
                    if !claim_ids.contains(&d.target.as_str()) {
                        self.at(&ptr, format!("a rebutting or undercutting defeater attacks a claim; {:?} is not one", d.target), did_you_mean(&d.target, claim_ids.iter().copied()).map(|s| format!("did you mean `{s}`?")));
                    }
                }
            }
        }
        for (i, id) in case.instruments.iter().enumerate() {
            if inventory.instrument(id).is_none() {
                let hint = did_you_mean(id, inventory.instruments.iter().map(|x| x.id.as_str()))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "`assay assure instruments` lists the inventory".into());
                self.at(
                    &format!("/instruments/{i}"),
                    format!("unknown instrument {id:?}"),
                    Some(hint),
                );
            }
        }
        items
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn top_level_numbers(v: &Value) -> String {
    let mut out = Vec::new();
    if let Some(r) = v.get("results").and_then(Value::as_object) {
        for (k, x) in r {
            if x.is_number() {
                out.push(format!("/results/{k}"));
            }
        }
    }
    if out.is_empty() {
        "(none under /results)".into()
    } else {
        out.join(", ")
    }
}

/// The values of the case's enumerated fields, by key name.
fn enum_values(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "property_type" => &[
            "observable",
            "dispositional",
            "latent",
            "long_horizon_agentic",
        ],
        "family" => &[
            "absence_of_hidden_objectives",
            "loss_of_control_precursors",
            "bounded_catastrophic_capability",
            "other",
        ],
        "polarity" => &["support", "counter"],
        "decomposition" => &["conjunctive", "diverse"],
        "type" => &["rebutting", "undermining", "undercutting"],
        "status" => &["open", "eliminated", "accepted"],
        "role" => &["first_party", "contracted", "independent", "regulator"],
        _ => return None,
    })
}

fn hint_for(msg: &str) -> Option<String> {
    if msg.contains("is not of type") && msg.contains("\"string\"") {
        return Some(
            "quote the value: YAML reads unquoted digits (and forms like 1e5) as a number".into(),
        );
    }
    if msg.contains("is not one of") {
        Some("use one of the listed values".into())
    } else if msg.contains("Additional properties are not allowed") {
        Some(
            "remove or correct the misspelt key; `assay assure schema` prints every allowed key"
                .into(),
        )
    } else if msg.contains("is a required property") {
        Some("add the missing key".into())
    } else {
        None
    }
}

/// A cycle among subclaims, as the ids along it (first repeated at the end).
fn find_cycle(case: &AssuranceCase) -> Option<Vec<String>> {
    let by_id = crate::case::claims_by_id(case);
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        id: &'a str,
        by_id: &BTreeMap<&'a str, &'a crate::case::Claim>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(id) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|s| *s == id).unwrap_or(0);
                let mut cyc: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cyc.push(id.to_string());
                return Some(cyc);
            }
            _ => {}
        }
        state.insert(id, 1);
        stack.push(id);
        if let Some(c) = by_id.get(id) {
            for s in &c.subclaims {
                if by_id.contains_key(s.as_str())
                    && let Some(cyc) = visit(s.as_str(), by_id, state, stack)
                {
                    return Some(cyc);
                }
            }
        }
        stack.pop();
        state.insert(id, 2);
        None
    }
    for c in &case.claims {
        let mut stack = Vec::new();
        if let Some(cyc) = visit(c.id.as_str(), &by_id, &mut state, &mut stack) {
            return Some(cyc);
        }
    }
    None
}
