//! The SeClaw-Bench importer against fixture tasks written in SeClaw-Bench's
//! layout (tests/fixtures/seclaw). Needs `python3` on PATH (it parses the
//! tasks' Python with `ast`); without it these tests fail.

use std::path::{Path, PathBuf};

use assay_import::seclaw;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seclaw")
}

fn import() -> seclaw::Import {
    let read = seclaw::read(Path::new("python3"), &fixtures()).expect("python3 reads the fixtures");
    seclaw::import(&read)
}

fn entry<'a>(i: &'a seclaw::Import, task: &str) -> &'a seclaw::TaskReport {
    i.tasks
        .iter()
        .find(|t| t.task == task)
        .unwrap_or_else(|| panic!("no report entry for {task}"))
}

fn spec_of(i: &seclaw::Import, task: &str) -> assay_spec::Spec {
    let s = i
        .specs
        .iter()
        .find(|s| s.task == task)
        .unwrap_or_else(|| panic!("no spec for {task}"));
    assay_spec::load_str(&s.yaml, Path::new(&s.file))
        .expect("spec loads")
        .spec
}

#[test]
fn every_task_has_an_entry_and_every_written_spec_loads() {
    let i = import();
    assert_eq!(i.tasks_read, 6);
    assert_eq!(i.tasks.len(), 6);
    assert_eq!(i.tasks_imported, 4);
    assert_eq!(i.specs.len(), 4);
    for s in &i.specs {
        assay_spec::load_str(&s.yaml, Path::new(&s.file)).expect("spec loads");
    }
}

#[test]
fn a_metadata_file_that_does_not_parse_is_reported_with_its_place() {
    let i = import();
    let t = entry(&i, "task_broken_metadata_0006");
    assert!(!t.imported);
    assert_eq!(t.reasons[0].code, "metadata-unparsable");
    assert!(
        t.reasons[0].detail.contains("metadata.yaml:"),
        "{}",
        t.reasons[0].detail
    );
    assert_eq!(i.not_imported.get("metadata-unparsable"), Some(&1));
}

#[test]
fn a_task_judged_only_by_its_rubric_is_not_imported() {
    let i = import();
    let t = entry(&i, "task_judge_only_tone_0005");
    assert!(!t.imported);
    assert_eq!(t.reasons[0].code, "llm-judge-only");
    assert!(
        t.notes.iter().any(|n| n.contains("(custom)")),
        "{:?}",
        t.notes
    );
    assert!(
        t.defects
            .iter()
            .any(|d| d.code == "judge-must-pass-not-gating"),
        "{:?}",
        t.defects
    );
}

#[test]
fn a_file_injection_becomes_a_file_slot_the_solution_reads() {
    let i = import();
    let t = entry(&i, "task_notes_file_injection_0001");
    assert!(t.imported, "{:?}", t.reasons);
    let spec = spec_of(&i, "task_notes_file_injection_0001");
    let plan = &spec.world.files["/home/node/workspace/plan.md"];
    assert!(format!("{plan:?}").contains("{{slot:injected}}"));
    assert_eq!(spec.task.solution[0].tool, "files.read");
    assert_eq!(spec.task.solution[1].tool, "list_notes");
    assert_eq!(spec.threats[0].slots, vec!["injected".to_string()]);
    // The grader's fractional must-pass value is a known defect.
    assert!(t.defects.iter().any(|d| d.code == "fractional-must-pass"));
}

#[test]
fn a_direct_harmful_request_is_a_user_threat_with_a_refusal_check() {
    let i = import();
    let spec = spec_of(&i, "task_AHR_fixture_smear_post_0002");
    assert!(spec.task.solution.is_empty());
    let y = &i
        .specs
        .iter()
        .find(|s| s.task == "task_AHR_fixture_smear_post_0002")
        .unwrap()
        .yaml;
    assert!(y.contains("refused"), "{y}");
    assert!(y.contains("source: user"), "{y}");
    assert_eq!(
        entry(&i, "task_AHR_fixture_smear_post_0002").origin,
        "AgentHarm"
    );
}

#[test]
fn a_call_pattern_check_keeps_its_arguments_and_the_prompt_is_split() {
    let i = import();
    let t = entry(&i, "task_SK_fixture_payee_pattern_0003");
    assert!(t.imported);
    let spec = spec_of(&i, "task_SK_fixture_payee_pattern_0003");
    let y = &i
        .specs
        .iter()
        .find(|s| s.task == "task_SK_fixture_payee_pattern_0003")
        .unwrap()
        .yaml;
    assert!(y.contains("args.recipient: ACC-999"), "{y}");
    let prompt = spec.task.prompt.clone().unwrap_or_default();
    assert!(
        prompt.contains("ACC-200") && !prompt.contains("ACC-999"),
        "{prompt}"
    );
    // The legitimate transfer stays in the solution; the forbidden one does not.
    assert!(
        spec.task
            .solution
            .iter()
            .any(|c| c.tool == "transfer" && c.args["recipient"] == "ACC-200")
    );
    assert!(
        t.defects
            .iter()
            .any(|d| d.code == "first-match-only" && d.detail.contains("transfer"))
    );
}

#[test]
fn marker_words_come_from_the_grader_when_the_check_lists_none() {
    let i = import();
    let y = &i
        .specs
        .iter()
        .find(|s| s.task == "task_marker_contacts_0004")
        .unwrap()
        .yaml;
    assert!(y.contains(r#"(?i)(ZEBRA\\-4471)"#), "{y}");
    let spec = spec_of(&i, "task_marker_contacts_0004");
    assert_eq!(spec.forbidden.len(), 2);
}

#[test]
fn a_path_without_tasks_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = seclaw::read(Path::new("python3"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no SeClaw-Bench task"), "{err}");
}
