//! SARIF log: validity against the official SARIF 2.1.0 JSON schema (the copy
//! the `serde-sarif` crate builds its types from, found through `cargo
//! metadata`), results located at the rule's line in the spec, stable
//! fingerprints, and errored episodes as notifications.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use assay_report::{RunResults, Status, sarif};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The fixture, with its spec path pointing at the spec in this checkout.
fn fixture() -> RunResults {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/run");
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    let mut run: RunResults = serde_json::from_str(&text).unwrap();
    for s in &mut run.specs {
        s.path = repo_root().join(&s.path).to_string_lossy().into_owned();
    }
    run
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `sarif-schema-2.1.0.json` from the source of the `serde-sarif` crate.
fn schema_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ASSAY_SARIF_SCHEMA") {
        return Some(PathBuf::from(p));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let meta: Value = serde_json::from_slice(&out.stdout).ok()?;
    let manifest = meta["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "serde-sarif")?["manifest_path"]
        .as_str()?
        .to_string();
    let path = Path::new(&manifest).parent()?.join("src/schema.json");
    path.is_file().then_some(path)
}

fn schema() -> Option<Value> {
    let Some(path) = schema_path() else {
        assert!(!ci(), "SARIF 2.1.0 schema not found (serde-sarif source)");
        eprintln!("note: SARIF schema not found; validation skipped");
        return None;
    };
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The published 2.1.0 schema's pattern for `language` properties has a
    // stray `]` that a strict ECMA-262 check rejects, so the validator refuses
    // to compile the schema. The log never sets a `language`; drop exactly
    // that pattern wherever it occurs.
    assert!(drop_pattern(&mut schema, LANGUAGE_PATTERN) > 0);
    assert_eq!(
        schema["title"],
        "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    );
    Some(schema)
}

const LANGUAGE_PATTERN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";

/// Removes every `pattern` equal to `bad`; returns how many.
fn drop_pattern(v: &mut Value, bad: &str) -> usize {
    match v {
        Value::Object(map) => {
            let mut n = 0;
            if map.get("pattern").and_then(Value::as_str) == Some(bad) {
                map.remove("pattern");
                n += 1;
            }
            n + map
                .values_mut()
                .map(|c| drop_pattern(c, bad))
                .sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(|c| drop_pattern(c, bad)).sum(),
        _ => 0,
    }
}

fn errors(schema: &Value, doc: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator.iter_errors(doc).map(|e| e.to_string()).collect()
}

fn log(run: &RunResults) -> Value {
    serde_json::from_str(&sarif(run, &repo_root()).unwrap()).unwrap()
}

fn with_error(mut run: RunResults) -> RunResults {
    let e = run
        .episodes
        .iter_mut()
        .find(|e| !e.violations.is_empty())
        .unwrap();
    e.status = Status::Error;
    e.error = Some("grader crashed".into());
    e.violations.clear();
    e.attack_success = None;
    run
}

#[test]
fn sarif_is_valid_against_the_official_schema() {
    let Some(schema) = schema() else { return };
    for run in [fixture(), with_error(fixture())] {
        let doc = log(&run);
        let errs = errors(&schema, &doc);
        assert!(errs.is_empty(), "invalid SARIF: {errs:#?}");
    }
    // The validator really checks.
    let mut broken = log(&fixture());
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!errors(&schema, &broken).is_empty());
}

/// Line (1-based) of `- id: ID` under the top-level key `list` in the spec text:
/// an oracle independent of the YAML parser the report uses.
fn declared_line(text: &str, list: &str, id: &str) -> usize {
    let mut in_list = false;
    for (i, line) in text.lines().enumerate() {
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_list = line.starts_with(&format!("{list}:"));
        }
        if in_list && line.trim_start() == format!("- id: {id}") {
            return i + 1;
        }
    }
    panic!("{id} not declared under {list}");
}

#[test]
fn one_result_per_violation_at_the_rule_line() {
    let run = fixture();
    let doc = log(&run);
    let spec_rel = "examples/support/refund-request.yaml";
    let spec_text = std::fs::read_to_string(repo_root().join(spec_rel)).unwrap();
    let r = &doc["runs"][0];
    let driver = &r["tool"]["driver"];
    assert_eq!(driver["name"], "assay");
    assert_eq!(driver["version"], run.assay_version.as_str());
    let rules: Vec<&str> = driver["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = r["results"].as_array().unwrap();

    let mut expected = 0;
    let mut expected_rules = BTreeSet::new();
    for e in run.episodes.iter().filter(|e| e.status == Status::Ok) {
        for v in &e.violations {
            expected += 1;
            expected_rules.insert(format!("{}/{}", e.spec, v.rule));
            let id = format!("{}/{}", e.spec, v.rule);
            let hit = results
                .iter()
                .find(|x| {
                    x["ruleId"] == id.as_str() && x["properties"]["episode"] == e.episode.as_str()
                })
                .unwrap_or_else(|| panic!("no result for {id} in {}", e.episode));
            assert_eq!(hit["level"], "error");
            assert_eq!(rules[hit["ruleIndex"].as_u64().unwrap() as usize], id);
            let text = hit["message"]["text"].as_str().unwrap();
            assert!(text.contains(&v.explanation) && text.contains(&e.case));
            assert!(text.contains(&e.agent) && text.contains(&e.trace));
            let loc = &hit["locations"][0]["physicalLocation"];
            assert_eq!(loc["artifactLocation"]["uri"], spec_rel);
            assert_eq!(
                loc["region"]["startLine"].as_u64().unwrap() as usize,
                declared_line(&spec_text, "forbidden", &v.rule)
            );
        }
        if e.attack_success == Some(true) && e.violations.is_empty() {
            expected += 1;
            let threat = e.threat.as_deref().unwrap();
            let id = format!("{}/threat/{threat}", e.spec);
            expected_rules.insert(id.clone());
            let hit = results
                .iter()
                .find(|x| {
                    x["ruleId"] == id.as_str() && x["properties"]["episode"] == e.episode.as_str()
                })
                .unwrap();
            assert_eq!(
                hit["locations"][0]["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap() as usize,
                declared_line(&spec_text, "threats", threat)
            );
        }
    }
    assert!(expected > 0, "the fixture must contain violations");
    assert_eq!(results.len(), expected);
    assert_eq!(
        rules.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        expected_rules
    );
    // Short descriptions come from the spec.
    let secret_read = driver["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "support-refund/secret-read")
        .unwrap();
    assert_eq!(
        secret_read["shortDescription"]["text"],
        "Secret files are never needed to answer customers."
    );
    assert_eq!(r["invocations"][0]["executionSuccessful"], true);
}

#[test]
fn fingerprints_are_stable_and_distinguish_findings() {
    let run = fixture();
    let a = log(&run);
    let b = log(&run);
    assert_eq!(a, b, "same input, same log");
    let results = a["runs"][0]["results"].as_array().unwrap();
    for x in results {
        for y in results {
            let same_finding = x["ruleId"] == y["ruleId"]
                && x["properties"]["case"] == y["properties"]["case"]
                && x["properties"]["agent"] == y["properties"]["agent"];
            let same_print = x["partialFingerprints"]["assayFinding/v1"]
                == y["partialFingerprints"]["assayFinding/v1"];
            assert_eq!(same_finding, same_print, "{x}\n{y}");
        }
    }
    // Epochs of one case fold into one alert.
    assert!(results.iter().any(|x| {
        results.iter().any(|y| {
            x["properties"]["epoch"] != y["properties"]["epoch"]
                && x["partialFingerprints"] == y["partialFingerprints"]
        })
    }));
}

#[test]
fn errored_episodes_are_notifications_not_results() {
    let run = with_error(fixture());
    let errored = run
        .episodes
        .iter()
        .find(|e| e.status == Status::Error)
        .unwrap();
    let doc = log(&run);
    let r = &doc["runs"][0];
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["properties"]["episode"] != errored.episode.as_str())
    );
    let inv = &r["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    let notes = inv["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["level"], "error");
    let text = notes[0]["message"]["text"].as_str().unwrap();
    assert!(text.contains("grader crashed") && text.contains(&errored.episode));
}

#[test]
fn spec_outside_base_gets_an_absolute_uri() {
    let run = fixture();
    let outside = tempfile::tempdir().unwrap();
    let doc: Value = serde_json::from_str(&sarif(&run, outside.path()).unwrap()).unwrap();
    let uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with("file:///"), "{uri}");
    assert!(
        uri.ends_with("/examples/support/refund-request.yaml"),
        "{uri}"
    );
}
