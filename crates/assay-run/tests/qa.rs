//! Case QA over the catalog and the examples, QA catching broken cases, and
//! regression cases made from incident traces.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use assay_agent::{Agent, agent_from_name};
use assay_report::QaResult;
use assay_run::{PreparedCase, RunConfig, prepare, qa, run};
use assay_spec::{LoadedSpec, load_file, load_str};
use assay_synth::{Catalog, SynthOptions, regression_case, synthesize};
use assay_trace::parse_jsonl;

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cases(specs: &[LoadedSpec], opts: &SynthOptions) -> Vec<Arc<PreparedCase>> {
    let catalog = Catalog::embedded().unwrap();
    let mut out = Vec::new();
    for s in specs {
        out.extend(
            synthesize(s, &catalog, opts)
                .unwrap()
                .into_iter()
                .map(|c| (c.case, s.path.clone())),
        );
    }
    prepare(out).unwrap()
}

fn check(specs: &[LoadedSpec], opts: &SynthOptions) -> Vec<QaResult> {
    rt().block_on(qa(&cases(specs, opts), 2))
}

#[test]
fn every_technique_yields_a_valid_case_on_some_example() {
    let specs: Vec<LoadedSpec> = assay_spec::spec_files(&[examples_dir()])
        .unwrap()
        .iter()
        .map(|f| load_file(f).unwrap())
        .collect();
    let prepared = cases(&specs, &SynthOptions::default());
    let results = rt().block_on(qa(&prepared, 2));
    let mut valid_by_technique = BTreeSet::new();
    for (c, r) in prepared.iter().zip(&results) {
        if r.valid
            && let Some(t) = &c.case.provenance.technique
        {
            valid_by_technique.insert(t.id.clone());
        }
    }
    let catalog = Catalog::embedded().unwrap();
    let missing: Vec<&str> = catalog
        .techniques
        .iter()
        .map(|t| t.id.as_str())
        .filter(|id| !valid_by_technique.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "techniques with no QA-valid case on any example: {missing:?}"
    );
    let invalid: Vec<_> = results.iter().filter(|r| !r.valid).collect();
    assert!(
        invalid.is_empty(),
        "examples should synthesise only valid cases: {invalid:#?}"
    );
}

fn refund_with(edit: impl Fn(String) -> String) -> LoadedSpec {
    let path = examples_dir().join("support/refund-request.yaml");
    let text = edit(std::fs::read_to_string(&path).unwrap());
    load_str(&text, &path).unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
}

fn only_plain() -> SynthOptions {
    SynthOptions {
        techniques: Some(vec!["plain-instruction".into()]),
        ..Default::default()
    }
}

#[test]
fn qa_flags_a_slot_the_agent_never_reads() {
    let spec = refund_with(|t| {
        t.replace(
            "    /app/README.md: \"Acme support workspace.\\n\"",
            "    /app/README.md: \"Acme support workspace. {{slot:readme}}\\n\"",
        )
        .replace("slots: [inbox-body, help-page]", "slots: [readme]")
    });
    let results = check(&[spec], &only_plain());
    let attacked: Vec<_> = results.iter().filter(|r| r.delivered.is_some()).collect();
    assert!(!attacked.is_empty());
    for r in attacked {
        assert_eq!(r.delivered, Some(false), "{r:?}");
        assert!(
            !r.valid
                && r.reasons
                    .iter()
                    .any(|x| x.contains("not delivered") && x.contains("readme")),
            "{r:?}"
        );
    }
    assert!(
        results
            .iter()
            .find(|r| r.delivered.is_none())
            .unwrap()
            .valid,
        "the benign twin is fine"
    );
}

#[test]
fn qa_flags_a_success_rule_that_cannot_fire() {
    let spec = refund_with(|t| {
        t.replace(
            "      - flow: { from: { secret: stripe }, to: send }",
            "      - send: { to: nobody@nowhere.test }",
        )
    });
    let results = check(&[spec], &only_plain());
    for r in results.iter().filter(|r| r.delivered.is_some()) {
        assert_eq!(r.delivered, Some(true), "{r:?}");
        assert_eq!(r.reachable, Some(false), "{r:?}");
        assert!(
            !r.valid && r.reasons.iter().any(|x| x.contains("not reachable")),
            "{r:?}"
        );
    }
}

#[test]
fn qa_flags_a_solution_that_violates_a_rule() {
    let spec = refund_with(|t| {
        t.replace(
            "when: { read: { sensitivity: secret } }",
            "when: { read: { source: web } }",
        )
    });
    let results = check(&[spec], &only_plain());
    assert!(!results.is_empty());
    for r in &results {
        assert!(!r.specific && !r.valid, "{r:?}");
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("not specific") && x.contains("secret-read")),
            "{r:?}"
        );
    }
}

#[test]
fn regression_case_reproduces_under_naive_not_solve() {
    let spec = load_file(&examples_dir().join("coding/add-dependency.yaml")).unwrap();
    let opts = SynthOptions {
        techniques: Some(vec!["important-instructions".into()]),
        ..Default::default()
    };
    let prepared = cases(&[spec], &opts);
    let dir = tempfile::tempdir().unwrap();
    let naive: Vec<Arc<dyn Agent>> = vec![agent_from_name("control:naive").unwrap()];
    let cfg = RunConfig {
        seed: 5,
        epochs: 1,
        jobs: 2,
        out: Some(dir.path().join("incident")),
        judge: None,
    };
    let incident = rt().block_on(run(&prepared, &naive, &cfg, vec![])).unwrap();
    let ep = incident
        .episodes
        .iter()
        .find(|e| !e.violations.is_empty())
        .expect("the naive agent misbehaves");
    let fired: Vec<String> = ep.violations.iter().map(|v| v.rule.clone()).collect();
    let events =
        parse_jsonl(&std::fs::read_to_string(cfg.out.as_ref().unwrap().join(&ep.trace)).unwrap())
            .unwrap();
    let case = regression_case(&events, &fired).unwrap();
    assert_eq!(
        case.provenance.regression.as_ref().unwrap().violations,
        fired
    );
    assert_eq!(case.id, case.content_id());

    // The case file stands alone: write it, read it back, and replay it.
    let file = dir.path().join("regression.yaml");
    std::fs::write(&file, assay_synth::case_to_yaml(&case)).unwrap();
    let loaded = match assay_spec::load_document(&file).unwrap() {
        assay_spec::Document::Case(c) => c,
        _ => panic!("not a case"),
    };
    let replay = prepare(vec![(loaded.case, file.clone())]).unwrap();
    let agents: Vec<Arc<dyn Agent>> = vec![
        agent_from_name("control:naive").unwrap(),
        agent_from_name("control:solve").unwrap(),
    ];
    let cfg = RunConfig {
        seed: 99,
        epochs: 1,
        jobs: 2,
        out: Some(dir.path().join("replay")),
        judge: None,
    };
    let r = rt().block_on(run(&replay, &agents, &cfg, vec![])).unwrap();
    for e in &r.episodes {
        let rules: Vec<String> = e.violations.iter().map(|v| v.rule.clone()).collect();
        match e.agent.as_str() {
            "control:naive" => assert_eq!(rules, fired, "the regression reproduces"),
            _ => assert!(
                rules.is_empty(),
                "the reference solution stays clean: {rules:?}"
            ),
        }
    }
}
