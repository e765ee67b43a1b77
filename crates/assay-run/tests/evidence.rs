//! Evidence records of a run (`evidence/run.json`, `evidence/spec-*.json`):
//! written after `results.json`, byte-identical for identical runs, naming
//! `results.json` by digest, removed by a forced re-run, checked by
//! `verify_run`, and marked when the run was interrupted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::Agent;
use assay_run::verify::{FindingKind, verify_run};
use assay_run::{
    Cancel, EvidenceContext, PreparedCase, RunConfig, RunOptions, prepare_out, run_with,
};
use serde_json::Value;

fn example(rel: &str) -> assay_spec::LoadedSpec {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel);
    assay_spec::load_file(&p).unwrap()
}

/// The benign twin and the `plain-instruction` attack cases of a spec.
fn cases(spec: &assay_spec::LoadedSpec, attacks: bool) -> Vec<Arc<PreparedCase>> {
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let opts = assay_synth::SynthOptions {
        techniques: Some(vec!["plain-instruction".into()]),
        ..Default::default()
    };
    let cases: Vec<_> = assay_synth::synthesize(spec, &catalog, &opts)
        .unwrap()
        .into_iter()
        .filter(|c| attacks || c.case.provenance.threat.is_none())
        .map(|c| (c.case, spec.path.clone()))
        .collect();
    assay_run::prepare(cases).unwrap()
}

fn controls() -> Vec<Arc<dyn Agent>> {
    ["control:solve", "control:naive", "control:refuse"]
        .iter()
        .map(|n| assay_agent::agent_from_name(n).unwrap())
        .collect()
}

fn cfg(out: &Path) -> RunConfig {
    RunConfig {
        seed: 0,
        epochs: 1,
        jobs: 2,
        out: Some(out.to_path_buf()),
        judge: None,
    }
}

fn ctx() -> EvidenceContext {
    EvidenceContext {
        argv: vec![
            "/usr/local/bin/assay".into(),
            "run".into(),
            "examples/support".into(),
            "--techniques".into(),
            "plain-instruction".into(),
        ],
        ..Default::default()
    }
}

fn play(cases: &[Arc<PreparedCase>], out: &Path, cancel: Cancel) -> assay_report::RunResults {
    let opts = RunOptions {
        cancel,
        evidence: Some(ctx()),
        ..Default::default()
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run_with(cases, &controls(), &cfg(out), vec![], opts))
        .unwrap()
}

fn read(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn sha256_file(p: &Path) -> String {
    assay_trace::sha256_hex(&std::fs::read(p).unwrap())
}

/// Two specs (one with attacks, one benign only) run by the control agents.
fn two_specs() -> Vec<Arc<PreparedCase>> {
    let mut all: Vec<Arc<PreparedCase>> = cases(&example("support/refund-request.yaml"), true);
    all.extend(cases(&example("ops/log-rotation.yaml"), false));
    all
}

fn evidence_files(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out.join("evidence"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_run_writes_run_and_spec_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases = two_specs();
    let run = play(&cases, &out, Cancel::new());
    let names: Vec<String> = evidence_files(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "run.json",
            "spec-ops-log-rotation.json",
            "spec-support-refund.json"
        ]
    );
    let rec = read(&out.join("evidence/run.json"));
    let refund = read(&out.join("evidence/spec-support-refund.json"));
    let logs = read(&out.join("evidence/spec-ops-log-rotation.json"));
    assert_eq!(rec["schema_version"], "assay.evidence/v1");
    assert_eq!(rec["scope"], "run");
    assert_eq!(rec["evidence_class"], "red_team");
    assert_eq!(refund["evidence_class"], "red_team");
    assert_eq!(
        logs["evidence_class"], "trajectory_eval",
        "benign cases only: trajectory scoring, not red teaming"
    );
    assert_eq!(refund["scope"], "spec");
    assert_eq!(refund["spec"], "support-refund");
    assert_eq!(rec["parts"], serde_json::json!([logs["id"], refund["id"]]));
    for r in [&rec, &refund, &logs] {
        assert_eq!(
            r["access"],
            serde_json::json!(["query_outputs", "tool_trajectory"])
        );
        assert_eq!(r["access_level"], "black_box");
        assert_eq!(r["model"], Value::Null);
        assert_eq!(r["claim"], Value::Null);
        assert_eq!(r["tool"]["name"], "assay");
        let id = r["id"].as_str().unwrap();
        assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
        // The record names the results file by digest.
        assert_eq!(r["artifacts"][0]["path"], "results.json");
        assert_eq!(
            r["artifacts"][0]["sha256"].as_str().unwrap(),
            sha256_file(&out.join("results.json"))
        );
        assert_eq!(
            r["caveats"][0],
            "control agents only: instruments, not subjects; the results check the spec, not an agent"
        );
        let cmd: Vec<&str> = r["reproduction"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            cmd,
            [
                "assay",
                "run",
                "examples/support",
                "--techniques",
                "plain-instruction",
                "--seed",
                "0"
            ]
        );
        assert_eq!(r["agents"][0]["kind"], "control");
        assert_eq!(r["agents"][0]["role"], "control");
    }
    // The data entry is the spec file, with its digest and the cases it gave.
    let refund_cases = cases
        .iter()
        .filter(|c| c.spec_id() == "support-refund")
        .count();
    assert_eq!(refund["data"][0]["role"], "spec");
    assert_eq!(refund["data"][0]["rows"], refund_cases);
    let spec_path = PathBuf::from(refund["data"][0]["file"]["path"].as_str().unwrap());
    assert_eq!(
        refund["data"][0]["file"]["sha256"].as_str().unwrap(),
        sha256_file(&spec_path)
    );
    assert_eq!(refund["cases"]["count"], refund_cases);
    assert_eq!(refund["cases"]["benign"], 1);
    assert_eq!(rec["cases"]["count"], cases.len());
    // Metrics agree with the results: naive obeys every payload it sees.
    let naive = &refund["results"]["control:naive"];
    let attacked = run
        .episodes
        .iter()
        .filter(|e| e.spec == "support-refund" && e.agent == "control:naive" && e.threat.is_some())
        .count();
    assert!(attacked > 0);
    assert_eq!(naive["attack_episodes"], attacked);
    assert_eq!(naive["attack_success"]["n"], attacked);
    assert_eq!(naive["attack_success"]["k"], attacked);
    assert_eq!(naive["attack_success"]["rate"], 1.0);
    let ci = naive["attack_success"]["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() > 0.0 && ci[1] == 1.0, "{ci:?}");
    assert_eq!(naive["passed"], true);
    let solve = &refund["results"]["control:solve"];
    assert_eq!(solve["utility"]["mean"], 1.0);
    assert_eq!(solve["violations"]["k"], 0);
    // The run verifies, records included.
    let v = verify_run(&out, None).unwrap();
    assert!(v.ok(), "{:?}", v.findings);
}

#[test]
fn identical_runs_give_identical_records() {
    let dir = tempfile::tempdir().unwrap();
    let cases = two_specs();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    play(&cases, &a, Cancel::new());
    play(&cases, &b, Cancel::new());
    let fa = evidence_files(&a);
    let fb = evidence_files(&b);
    assert_eq!(fa.len(), 3);
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.file_name(), y.file_name());
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{} differs between identical runs",
            x.display()
        );
    }
}

#[test]
fn force_removes_the_records_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    play(
        &cases(&example("ops/log-rotation.yaml"), false),
        &out,
        Cancel::new(),
    );
    let mine = out.join("evidence/notes.json");
    std::fs::write(
        &mine,
        "{\"schema_version\": \"assay.evidence/v1\", \"tool\": {\"name\": \"assay-mech\"}}",
    )
    .unwrap();
    let other = out.join("evidence/README");
    std::fs::write(&other, "mine").unwrap();
    assert!(prepare_out(&out, false).is_err());
    prepare_out(&out, true).unwrap();
    assert!(!out.join("evidence/run.json").exists());
    assert!(!out.join("evidence/spec-ops-log-rotation.json").exists());
    assert!(
        mine.is_file() && other.is_file(),
        "files the run did not write stay"
    );
    std::fs::remove_file(&mine).unwrap();
    std::fs::remove_file(&other).unwrap();
    // Without foreign files, a forced re-run leaves nothing of the old run.
    play(
        &cases(&example("ops/log-rotation.yaml"), false),
        &out,
        Cancel::new(),
    );
    prepare_out(&out, true).unwrap();
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn verify_reports_an_edited_results_file_or_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    play(
        &cases(&example("ops/log-rotation.yaml"), false),
        &out,
        Cancel::new(),
    );
    assert!(verify_run(&out, None).unwrap().ok());

    // results.json re-written (same content, other bytes): the digest in
    // every record no longer matches.
    let results = out.join("results.json");
    let original = std::fs::read(&results).unwrap();
    let mut edited = original.clone();
    edited.extend_from_slice(b"\n");
    std::fs::write(&results, &edited).unwrap();
    let v = verify_run(&out, None).unwrap();
    let artifact: Vec<_> = v
        .findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::EvidenceArtifact { .. }))
        .collect();
    assert_eq!(artifact.len(), 2, "{:?}", v.findings);
    std::fs::write(&results, &original).unwrap();
    assert!(verify_run(&out, None).unwrap().ok());

    // A record's verdict flipped: its id no longer matches, and the results
    // no longer follow from results.json.
    let spec = out.join("evidence/spec-ops-log-rotation.json");
    let text = std::fs::read_to_string(&spec).unwrap();
    let forged = text.replacen("\"passed\": true", "\"passed\": false", 1);
    assert_ne!(forged, text);
    std::fs::write(&spec, forged).unwrap();
    let v = verify_run(&out, None).unwrap();
    assert!(
        v.findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::EvidenceId { .. }))
    );
    assert!(
        v.findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::EvidenceResults))
    );
    std::fs::write(&spec, text).unwrap();

    // A spec record deleted: the run record lists a part that is gone.
    std::fs::remove_file(&spec).unwrap();
    let v = verify_run(&out, None).unwrap();
    assert!(
        v.findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::EvidenceParts(_))),
        "{:?}",
        v.findings
    );
}

#[test]
fn an_interrupted_run_is_marked_in_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cancel = Cancel::new();
    cancel.cancel();
    let run = play(
        &cases(&example("ops/log-rotation.yaml"), false),
        &out,
        cancel,
    );
    assert!(run.incomplete);
    for name in ["run.json", "spec-ops-log-rotation.json"] {
        let r = read(&out.join("evidence").join(name));
        let caveats: Vec<&str> = r["caveats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(
            caveats.iter().any(|c| c.starts_with("run incomplete")),
            "{name}: {caveats:?}"
        );
        for (_, agent) in r["results"].as_object().unwrap() {
            assert_eq!(agent["passed"], false, "an interrupted run passes nothing");
        }
    }
    assert!(
        verify_run(&out, None)
            .unwrap()
            .findings
            .iter()
            .all(|f| !matches!(
                f.kind,
                FindingKind::EvidenceId { .. }
                    | FindingKind::EvidenceArtifact { .. }
                    | FindingKind::EvidenceResults
                    | FindingKind::EvidenceParts(_)
            ))
    );
}

#[test]
fn without_a_context_no_records_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(assay_run::run(
        &cases(&example("ops/log-rotation.yaml"), false),
        &controls(),
        &cfg(&out),
        vec![],
    ))
    .unwrap();
    assert!(!out.join("evidence").exists());
    assert!(verify_run(&out, None).unwrap().ok());
}
