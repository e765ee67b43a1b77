//! The exported JSON Schema, checked with an independent validator: every
//! example is accepted, and matcher typos are rejected as editors would show.

use std::path::Path;

use assay_spec::{json_schema, yaml};
use serde_json::Value;

fn examples() -> Vec<(std::path::PathBuf, Value)> {
    assay_spec::spec_files(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")])
        .unwrap()
        .into_iter()
        .map(|p| {
            let v = yaml::parse_value(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&json_schema()).expect("the schema is a valid JSON Schema")
}

#[test]
fn every_example_is_accepted() {
    let v = validator();
    for (p, doc) in examples() {
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", p.display());
    }
}

/// A spec whose forbidden rule's condition is `when`.
fn with_rule(when: Value) -> Value {
    let (_, mut doc) = examples()
        .into_iter()
        .find(|(_, d)| d["forbidden"].as_array().is_some_and(|l| !l.is_empty()))
        .unwrap();
    doc["forbidden"][0]["when"] = when;
    doc
}

#[test]
fn matcher_typos_are_rejected() {
    let v = validator();
    for bad in [
        serde_json::json!({"send": {"too": "x@y.test"}}),
        serde_json::json!({"delete": {"pth": "/app/.env"}}),
        serde_json::json!({"send": {"recipient": "x@y.test"}}),
        serde_json::json!({"read": {"source": "filee"}}),
        serde_json::json!({"denied": {"action": {"in": ["read", "wrte"]}}}),
        serde_json::json!({"tool": {"nmae": "files.read"}}),
        serde_json::json!({"flow": {"from": {"secret": "*"}, "to": {"send": {"too": "x"}}}}),
        serde_json::json!({"any": [{"egress": {"hots": "x.test"}}]}),
    ] {
        assert!(!v.is_valid(&with_rule(bad.clone())), "schema accepts {bad}");
    }
    for good in [
        serde_json::json!({"send": {"to": "x@y.test"}}),
        serde_json::json!({"call": {"args.env": "prod"}}),
        serde_json::json!({"read": {"source": {"in": ["file", "env"]}, "via": "shell.exec"}}),
        serde_json::json!({"egress": {"ambiguous": true}}),
        // Labels are per spec: the static schema cannot know them (only
        // `assay validate` rejects `Secret` when the label is `secret`).
        serde_json::json!({"read": {"sensitivity": "Secret"}}),
    ] {
        let doc = with_rule(good.clone());
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "schema rejects {good}: {errors:?}");
    }
}

#[test]
fn check_typos_are_rejected() {
    let v = validator();
    let (_, base) = examples().into_iter().next().unwrap();
    for bad in [
        serde_json::json!({"sent": {"too": "x"}}),
        serde_json::json!({"file": {"path": "/a", "txt": "x"}}),
        serde_json::json!({"installed": {"nam": "x"}}),
    ] {
        let mut doc = base.clone();
        doc["task"]["success"] = Value::Array(vec![bad.clone()]);
        assert!(!v.is_valid(&doc), "schema accepts {bad}");
    }
}
