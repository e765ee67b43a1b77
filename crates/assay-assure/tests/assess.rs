//! Planted ground truth: cases whose right verdict is known by construction,
//! and bad inputs that must be refused with file and line.

use std::path::{Path, PathBuf};

use assay_assure::compute::{Assessment, ClaimReport};
use assay_assure::{AssessOptions, AssureError, Status, assess_case};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MODEL: &str = "ab11111111111111111111111111111111111111111111111111111111111111";

/// Writes an evidence record with a data file, its digest and a recipe, and the
/// id computed the way producers compute it.
fn record(dir: &Path, name: &str, class: &str, access: &[&str], recipe: bool) -> PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).unwrap();
    let data = sub.join("data.jsonl");
    std::fs::write(&data, format!("{{\"row\": \"{name}\"}}\n")).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&data).unwrap()));
    let mut rec = json!({
        "schema_version": "assay.evidence/v1",
        "id": "",
        "evidence_class": class,
        "access": access,
        "access_level": "black_box",
        "claim": null,
        "tool": {"name": "test", "version": "0"},
        "model": {"path": "m", "digest": MODEL, "files": []},
        "data": [{"role": "behaviour", "file": {"path": format!("{name}/data.jsonl"), "sha256": sha, "bytes": 13}, "rows": 1}],
        "seed": 0,
        "parameters": {},
        "results": {"accuracy": 1.0, "auroc": 0.98},
        "artifacts": [],
        "caveats": []
    });
    if recipe {
        rec.as_object_mut().unwrap().insert(
            "reproduction".into(),
            json!({"command": ["assay", "mech", "behave", "--seed", "0"], "tool": {"name": "test", "version": "0"}, "seed": 0, "note": ""}),
        );
    }
    let id = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(serde_json::to_vec(&rec).unwrap()))
    );
    rec["id"] = Value::String(id);
    let path = sub.join("evidence.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rec).unwrap()).unwrap();
    path
}

struct Item<'a> {
    id: &'a str,
    class: &'a str,
    access: &'a [&'a str],
    polarity: &'a str,
    lr: f64,
    recipe: bool,
}

fn item<'a>(id: &'a str, class: &'a str, polarity: &'a str, lr: f64) -> Item<'a> {
    let access: &'a [&'a str] = match class {
        "linear_probe" => &["weights_read", "activations_read"],
        "activation_patching" => &["activations_read", "activations_write"],
        _ => &["query_outputs"],
    };
    Item {
        id,
        class,
        access,
        polarity,
        lr,
        recipe: true,
    }
}

/// A case with one claim over `items`, written into `dir`.
fn write_case(dir: &Path, property_type: &str, items: &[Item], extra: &str) -> PathBuf {
    let mut ev = String::new();
    let mut ids = Vec::new();
    for it in items {
        record(dir, it.id, it.class, it.access, it.recipe);
        ev.push_str(&format!(
            "  - id: {}\n    file: {}/evidence.json\n    polarity: {}\n    likelihood_ratio: {}\n",
            it.id, it.id, it.polarity, it.lr
        ));
        ids.push(it.id);
    }
    let text = format!(
        "apiVersion: assay.assurance/v1\nkind: AssuranceCase\nname: planted\nsystem:\n  models:\n    - name: m\n      digest: {MODEL}\nevidence:\n{ev}claims:\n  - id: claim\n    statement: the planted claim\n    family: absence_of_hidden_objectives\n    property_type: {property_type}\n    target: 0.95\n    evidence: [{}]\n{extra}",
        ids.join(", ")
    );
    let path = dir.join("case.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn assess(path: &Path) -> Assessment {
    match assess_case(path, &AssessOptions::default()) {
        Ok((a, _)) => a,
        Err(e) => panic!("{e}"),
    }
}

fn claim<'a>(a: &'a Assessment, id: &str) -> &'a ClaimReport {
    a.claims.iter().find(|c| c.id == id).unwrap()
}

#[test]
fn a_latent_claim_on_behavioural_evidence_is_fragile_however_many_items() {
    for n in [1usize, 10, 300] {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
        let items: Vec<Item> = names
            .iter()
            .map(|s| item(s, "behavioural_eval", "support", 1000.0))
            .collect();
        let a = assess(&write_case(dir.path(), "latent", &items, ""));
        let c = claim(&a, "claim");
        assert_eq!(
            c.verdict.status,
            Status::Fragile,
            "n = {n}: {:?}",
            c.verdict
        );
        assert!(c.verdict.prongs.inferential_gap && !c.verdict.prongs.non_reproducible);
        // The behavioural cap for latent properties bounds the posterior at odds 10^0.3.
        assert!(
            c.posterior <= 0.6662 && c.max_reachable <= 0.6662,
            "{}",
            c.posterior
        );
        assert_eq!(c.classes[0].combined_bans, 0.3);
        assert!(c.access.missing.contains(&"activations_read".to_string()));
    }
}

#[test]
fn an_observable_claim_with_enough_behavioural_evidence_is_supported() {
    let dir = tempfile::tempdir().unwrap();
    let items = [
        item("b1", "behavioural_eval", "support", 30.0),
        item("b2", "behavioural_eval", "support", 30.0),
    ];
    let a = assess(&write_case(dir.path(), "observable", &items, ""));
    let c = claim(&a, "claim");
    assert_eq!(c.verdict.status, Status::Supported, "{:?}", c.verdict);
    // log10(30) + 0.1 × log10(30) = 1.625 ban → P = 0.9768.
    assert!((c.posterior - 0.976816).abs() < 1e-4, "{}", c.posterior);
    // Too little of it is unsupported, not fragile: more evidence could close the gap.
    let dir = tempfile::tempdir().unwrap();
    let a = assess(&write_case(
        dir.path(),
        "observable",
        &[item("b1", "behavioural_eval", "support", 2.0)],
        "",
    ));
    assert_eq!(claim(&a, "claim").verdict.status, Status::Unsupported);
}

#[test]
fn digests_that_do_not_match_or_no_recipe_make_the_claim_fragile_on_reproducibility() {
    // Edited data file.
    let dir = tempfile::tempdir().unwrap();
    let items = [item("b1", "behavioural_eval", "support", 100.0)];
    let case = write_case(dir.path(), "observable", &items, "");
    assert_eq!(
        claim(&assess(&case), "claim").verdict.status,
        Status::Supported
    );
    std::fs::write(dir.path().join("b1/data.jsonl"), "{\"row\": \"edited\"}\n").unwrap();
    let a = assess(&case);
    let c = claim(&a, "claim");
    assert_eq!(c.verdict.status, Status::Fragile);
    assert!(c.verdict.prongs.non_reproducible && !c.verdict.prongs.inferential_gap);
    assert!(
        c.verdict
            .reasons
            .iter()
            .any(|r| r.contains("b1/data.jsonl") && r.contains("mismatch")),
        "{:?}",
        c.verdict.reasons
    );
    // An edited record (its id no longer matches).
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), "observable", &items, "");
    let p = dir.path().join("b1/evidence.json");
    let text = std::fs::read_to_string(&p).unwrap().replace("0.98", "0.99");
    std::fs::write(&p, text).unwrap();
    let c = claim(&assess(&case), "claim").clone();
    assert!(c.verdict.prongs.non_reproducible, "{:?}", c.verdict);
    // No reproduction recipe.
    let dir = tempfile::tempdir().unwrap();
    let mut it = item("b1", "behavioural_eval", "support", 100.0);
    it.recipe = false;
    let a = assess(&write_case(dir.path(), "observable", &[it], ""));
    let c = claim(&a, "claim");
    assert_eq!(c.verdict.status, Status::Fragile);
    assert!(c.verdict.prongs.non_reproducible);
    assert!(
        c.verdict
            .reasons
            .iter()
            .any(|r| r.contains("reproduction recipe"))
    );
    // A pinned file that changed.
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(dir.path(), "observable", &items, "");
    let text = std::fs::read_to_string(&case).unwrap().replace(
        "file: b1/evidence.json\n",
        &format!("file: b1/evidence.json\n    sha256: {}\n", "a".repeat(64)),
    );
    std::fs::write(&case, text).unwrap();
    assert!(
        claim(&assess(&case), "claim")
            .verdict
            .prongs
            .non_reproducible
    );
}

#[test]
fn counter_evidence_refutes() {
    let dir = tempfile::tempdir().unwrap();
    let items = [
        item("b1", "behavioural_eval", "support", 2.0),
        item("probe", "linear_probe", "counter", 10.0),
        item("patch", "activation_patching", "counter", 20.0),
    ];
    let a = assess(&write_case(dir.path(), "latent", &items, ""));
    let c = claim(&a, "claim");
    assert_eq!(c.verdict.status, Status::Refuted, "{:?}", c.verdict);
    // 0.3 − 0.8 (probe cap) − 1.2 (patching cap) = −1.7 ban.
    assert!((c.posterior - 0.019563).abs() < 1e-5, "{}", c.posterior);
    assert!(
        c.verdict.reasons[0].contains("linear_probe")
            && c.verdict.reasons[0].contains("activation_patching")
    );
}

#[test]
fn a_finding_that_does_not_hold_counts_nothing_and_blocks_support() {
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(
        dir.path(),
        "observable",
        &[item("b1", "behavioural_eval", "support", 100.0)],
        "",
    );
    let text = std::fs::read_to_string(&case).unwrap().replace(
        "likelihood_ratio: 100\n",
        "likelihood_ratio: 100\n    finding: {metric: /results/accuracy, at_most: 0.5}\n",
    );
    std::fs::write(&case, text).unwrap();
    let a = assess(&case);
    let c = claim(&a, "claim");
    assert!(!c.items[0].counted);
    assert_ne!(c.verdict.status, Status::Supported);
    assert!(
        c.verdict
            .reasons
            .iter()
            .any(|r| r.contains("does not hold"))
    );
}

#[test]
fn white_box_requirement_answered_with_black_box_evidence_names_exactly_the_missing_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let items = [item("b1", "behavioural_eval", "support", 2.0)];
    let case = write_case(
        dir.path(),
        "latent",
        &items,
        "    answers: [EU-AIA-ART55-1A]\ninstruments: [EU-AIA-ART55]\n",
    );
    let a = assess(&case);
    let inst = &a.instruments[0];
    let req = inst
        .requirements
        .iter()
        .find(|r| r.id == "EU-AIA-ART55-1A")
        .unwrap();
    assert_eq!(req.matched_by, "answers");
    assert_eq!(req.access_used, vec!["query_outputs"]);
    assert_eq!(
        req.access_missing,
        vec![
            "activations_read",
            "activations_write",
            "finetune",
            "sampling_params",
            "weights_read"
        ]
    );
    // The text guarantees a verifier query access only: the same capabilities are its audit gap.
    assert_eq!(req.access_not_guaranteed, req.access_missing);
    assert_eq!(req.status, "fragile");
    assert!(req.weight_gap_at_guaranteed_access_bans.unwrap() > 0.0);
    // Process requirements are not counted as model properties.
    assert!(inst.requirements.iter().any(|r| r.status == "process"));
}

#[test]
fn an_unsupported_conjunct_bounds_its_parent() {
    let dir = tempfile::tempdir().unwrap();
    record(
        dir.path(),
        "strong",
        "behavioural_eval",
        &["query_outputs"],
        true,
    );
    record(
        dir.path(),
        "weak",
        "behavioural_eval",
        &["query_outputs"],
        true,
    );
    let text = format!(
        "apiVersion: assay.assurance/v1\nkind: AssuranceCase\nname: conj\nsystem:\n  models:\n    - {{name: m, digest: {MODEL}}}\nevidence:\n  - {{id: strong, file: strong/evidence.json, polarity: support, likelihood_ratio: 10000}}\n  - {{id: weak, file: weak/evidence.json, polarity: support, likelihood_ratio: 2}}\nclaims:\n  - id: top\n    statement: both hold\n    family: other\n    property_type: observable\n    decomposition: conjunctive\n    subclaims: [a, b]\n  - {{id: a, statement: a holds, family: other, property_type: observable, evidence: [strong]}}\n  - {{id: b, statement: b holds, family: other, property_type: observable, evidence: [weak]}}\n  - id: either\n    statement: one holds\n    family: other\n    property_type: observable\n    decomposition: diverse\n    subclaims: [a, b]\n"
    );
    let case = dir.path().join("case.yaml");
    std::fs::write(&case, text).unwrap();
    let a = assess(&case);
    let (ca, cb, top) = (claim(&a, "a"), claim(&a, "b"), claim(&a, "top"));
    assert_eq!(ca.verdict.status, Status::Supported);
    assert_eq!(cb.verdict.status, Status::Unsupported);
    assert_ne!(top.verdict.status, Status::Supported);
    assert!(
        top.posterior_bounds[1] <= cb.posterior + 1e-9,
        "{:?}",
        top.posterior_bounds
    );
    // Fréchet lower bound: 1 − (doubt a + doubt b).
    let lo = 1.0 - (1.0 - ca.posterior) - (1.0 - cb.posterior);
    assert!((top.posterior_bounds[0] - lo).abs() < 1e-5);
    assert!(
        top.verdict
            .reasons
            .iter()
            .any(|r| r.contains("b is unsupported")),
        "{:?}",
        top.verdict.reasons
    );
    // A diverse decomposition is carried by its best leg.
    assert_eq!(claim(&a, "either").verdict.status, Status::Supported);
}

#[test]
fn behavioural_caps_in_the_sensitivity_table_move_the_latent_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("b{i}")).collect();
    let items: Vec<Item> = names
        .iter()
        .map(|s| item(s, "behavioural_eval", "support", 10.0))
        .collect();
    let a = assess(&write_case(dir.path(), "latent", &items, ""));
    let s = a.sensitivity.unwrap();
    let row = &s.claims[0];
    let by: std::collections::BTreeMap<&str, Status> = row
        .outcomes
        .iter()
        .map(|o| (o.policy.as_str(), o.status))
        .collect();
    assert_eq!(by["default"], Status::Fragile);
    assert_eq!(by["behavioural-cap-0.1"], Status::Fragile);
    assert_eq!(by["behavioural-cap-1.0"], Status::Fragile);
    // 1 + 0.1 × 39 = 4.9 ban uncapped: the policy, not the evidence, decides.
    assert_eq!(by["behavioural-uncapped"], Status::Supported);
    assert!(!row.stable);
}

fn problems(path: &Path) -> String {
    match assess_case(path, &AssessOptions::default()) {
        Err(AssureError::Invalid(p)) => p
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} was accepted", path.display()),
    }
}

#[test]
fn bad_inputs_are_refused_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = write_case(
        d,
        "latent",
        &[item("b1", "behavioural_eval", "support", 2.0)],
        "",
    );
    let good = std::fs::read_to_string(&base).unwrap();
    let case = d.join("case.yaml");
    let check = |text: String, want: &[&str]| {
        std::fs::write(&case, &text).unwrap();
        let out = problems(&case);
        for w in want {
            assert!(
                out.contains(w),
                "wanted {w:?} in:\n{out}\n--- case:\n{text}"
            );
        }
        assert!(out.contains("case.yaml:"), "{out}");
    };
    // Unknown property type (with the valid ones listed) and a misspelt key, at once.
    check(
        good.replace("property_type: latent", "property_type: latnt")
            .replace("statement:", "statment:"),
        &[
            "unknown property_type \"latnt\"",
            "did you mean `latent`",
            "statment",
            "case.yaml:14:",
        ],
    );
    // Unknown evidence class in a record.
    record(d, "odd", "vibes_check", &["query_outputs"], true);
    check(
        good.replace("file: b1/evidence.json", "file: odd/evidence.json"),
        &["unknown evidence class \"vibes_check\"", "case.yaml:10:"],
    );
    // Unknown capability, in a claim and in a record.
    check(
        good.replace(
            "    target: 0.95\n",
            "    target: 0.95\n    required_access: [activation_read]\n",
        ),
        &[
            "unknown access capability \"activation_read\"",
            "did you mean `activations_read`",
        ],
    );
    record(d, "cap", "behavioural_eval", &["query_output"], true);
    check(
        good.replace("file: b1/evidence.json", "file: cap/evidence.json"),
        &["unknown access capability \"query_output\""],
    );
    // Unknown instrument.
    check(
        format!("{good}instruments: [EU-AIA-ART56]\n"),
        &[
            "unknown instrument \"EU-AIA-ART56\"",
            "did you mean `EU-AIA-ART5",
        ],
    );
    // Missing file, and a file that is not an evidence record.
    check(
        good.replace("file: b1/evidence.json", "file: nowhere/evidence.json"),
        &["cannot read", "nowhere/evidence.json", "case.yaml:10:"],
    );
    std::fs::write(d.join("results.json"), "{\"episodes\": []}").unwrap();
    check(
        good.replace("file: b1/evidence.json", "file: results.json"),
        &["is not an evidence record", "schema_version"],
    );
    // A cycle among subclaims.
    let cyc = "apiVersion: assay.assurance/v1\nkind: AssuranceCase\nname: c\nsystem: {}\nclaims:\n  - {id: x, statement: s, family: other, property_type: observable, decomposition: conjunctive, subclaims: [y]}\n  - {id: y, statement: s, family: other, property_type: observable, decomposition: diverse, subclaims: [z]}\n  - {id: z, statement: s, family: other, property_type: observable, decomposition: diverse, subclaims: [x]}\n".to_string();
    check(cyc, &["cycle: x → y → z → x", "case.yaml:6:"]);
    // Evidence about another model.
    check(
        good.replace(MODEL, &"2".repeat(64)),
        &["is not of type", "quote the value"],
    );
    check(
        good.replace(MODEL, &format!("cd{}", "2".repeat(62))),
        &["is about model ab11", "system under assessment"],
    );
    // Unknown evidence id cited by a claim, an undermining defeater aimed at a claim.
    check(
        good.replace("evidence: [b1]", "evidence: [b2]")
            + "defeaters:\n  - {id: d, type: undermining, target: claim, status: open, text: t}\n",
        &[
            "cites evidence \"b2\"",
            "did you mean `b1`",
            "undermining defeater attacks an evidence item",
        ],
    );
}

#[test]
fn policies_are_checked_and_change_the_weighing() {
    let dir = tempfile::tempdir().unwrap();
    let case = write_case(
        dir.path(),
        "latent",
        &[item("b1", "behavioural_eval", "support", 1000.0)],
        "",
    );
    // A policy that lets behavioural evidence carry latent claims: the same case becomes supported.
    let lax = assay_assure::data::POLICY_YAML
        .replace("name: default", "name: lax")
        .replace("support: {observable: 2.0, dispositional: 1.0, latent: 0.3, long_horizon_agentic: 0.3}", "support: {observable: 2.0, dispositional: 1.0, latent: 3.0, long_horizon_agentic: 0.3}");
    let lax_path = dir.path().join("lax.yaml");
    std::fs::write(&lax_path, &lax).unwrap();
    let (a, _) = assess_case(
        &case,
        &AssessOptions {
            policy: Some(lax_path.clone()),
            alt_policies: vec![],
        },
    )
    .unwrap();
    assert_eq!(a.policy.name, "lax");
    assert_eq!(claim(&a, "claim").verdict.status, Status::Supported);
    // A broken policy names its file and the field.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        assay_assure::data::POLICY_YAML.replace("prior: 0.5", "prior: 1.5"),
    )
    .unwrap();
    let err = assess_case(
        &case,
        &AssessOptions {
            policy: Some(bad.clone()),
            alt_policies: vec![],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.yaml") && err.contains("prior"), "{err}");
    // An alternative policy without a class the case uses is refused, not silently applied.
    let thin = dir.path().join("thin.yaml");
    let text = assay_assure::data::POLICY_YAML;
    let start = text.find("  - id: behavioural_eval").unwrap();
    let end = text.find("  - id: red_team").unwrap();
    std::fs::write(&thin, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let err = assess_case(
        &case,
        &AssessOptions {
            policy: None,
            alt_policies: vec![thin],
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("thin.yaml") && err.contains("behavioural_eval"),
        "{err}"
    );
}
