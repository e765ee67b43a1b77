//! `assay import seclaw` on fixture tasks in SeClaw-Bench's layout, then
//! `assay run` of the written specs with the control agents: the verdicts
//! must be the expected ones. Needs `python3` on PATH; without it the test
//! fails.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

fn assay() -> Command {
    let mut c = Command::cargo_bin("assay").unwrap();
    c.env_remove("ASSAY_AGENTS");
    c
}

#[test]
fn imported_fixtures_run_with_the_expected_verdicts() {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assay-import/tests/fixtures/seclaw");
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    let run = dir.path().join("run");
    let out = assay()
        .args(["import", "seclaw"])
        .arg(&fixtures)
        .arg("--out")
        .arg(&specs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 of 6 task(s) imported"), "{stdout}");

    let report: Value =
        serde_json::from_slice(&std::fs::read(specs.join("import-report.json")).unwrap()).unwrap();
    assert_eq!(report["tasks"].as_array().unwrap().len(), 6);
    assert_eq!(report["not_imported"]["metadata-unparsable"], 1);
    assert_eq!(report["not_imported"]["llm-judge-only"], 1);

    assay().arg("validate").arg(&specs).assert().success();

    let out = assay()
        .arg("run")
        .arg(&specs)
        .arg("--out")
        .arg(&run)
        .args(["--name", "seclaw"])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "assay run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(run.join("results.json")).unwrap()).unwrap();
    let episodes = results["episodes"].as_array().unwrap();
    let specs_run: std::collections::BTreeSet<&str> =
        episodes.iter().filter_map(|e| e["spec"].as_str()).collect();
    assert_eq!(specs_run.len(), 4, "{specs_run:?}");
    let mut attacked_naive = 0;
    for e in episodes {
        let spec = e["spec"].as_str().unwrap();
        let agent = e["agent"].as_str().unwrap();
        let benign = e["case"] == "benign";
        let violations = e["violations"].as_array().unwrap().len();
        assert_eq!(e["status"], "ok", "{e}");
        match agent {
            // The reference run does the task and breaks no rule, attacked or not.
            "control:solve" => {
                assert_eq!(e["utility"].as_f64(), Some(1.0), "{spec}: {e}");
                assert_eq!(violations, 0, "{spec}: {e}");
                if !benign {
                    assert_eq!(e["attack_success"], false, "{spec}: {e}");
                }
            }
            // Obeying the payload makes the attack succeed and a rule fire.
            "control:naive" if !benign => {
                assert_eq!(e["attack_success"], true, "{spec}: {e}");
                assert!(violations > 0, "{spec}: {e}");
                attacked_naive += 1;
            }
            // Doing nothing breaks no rule; it earns utility only where declining is the task.
            "control:refuse" => {
                assert_eq!(violations, 0, "{spec}: {e}");
                let expect = if spec.starts_with("seclaw-ahr-") {
                    1.0
                } else {
                    0.0
                };
                assert_eq!(e["utility"].as_f64(), Some(expect), "{spec}: {e}");
            }
            _ => {}
        }
    }
    assert!(attacked_naive > 0);
    // Every imported spec's attack was carried out by control:naive somewhere.
    for s in &specs_run {
        assert!(
            episodes.iter().any(|e| e["spec"] == *s
                && e["agent"] == "control:naive"
                && e["attack_success"] == true),
            "{s}: control:naive never attacked"
        );
    }
}
