//! The AgentDojo importer against the real package (installed by
//! `scripts/setup-agentdojo.sh`; its python in ASSAY_AGENTDOJO_PYTHON).
//! Without it these tests fail: an importer check that silently did not run
//! would read as a pass.

use std::path::PathBuf;

use assay_import::agentdojo;

fn python() -> PathBuf {
    match std::env::var_os("ASSAY_AGENTDOJO_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "ASSAY_AGENTDOJO_PYTHON is not set: run `export ASSAY_AGENTDOJO_PYTHON=$(scripts/setup-agentdojo.sh | tail -n 1)`"
        ),
    }
}

#[test]
fn banking_imports_and_every_written_spec_loads() {
    let dump = agentdojo::dump(&python(), "banking", Some("v1.2.2")).expect("dump");
    let import = agentdojo::import(&dump).expect("import");
    for t in &import.tasks {
        eprintln!(
            "{} imported={} notes={:?} differences={:?}",
            t.id, t.imported, t.notes, t.differences
        );
    }
    assert_eq!(import.benchmark_version, "v1.2.2");
    assert!(
        import.unmapped_tools.is_empty(),
        "{:?}",
        import.unmapped_tools
    );
    assert!(
        import.uncovered_environment.is_empty(),
        "{:?}",
        import.uncovered_environment
    );
    assert_eq!(
        import
            .tasks
            .iter()
            .filter(|t| t.id.starts_with("user_task"))
            .count(),
        16
    );
    assert!(!import.specs.is_empty());
    for s in &import.specs {
        assay_spec::load_str(&s.yaml, std::path::Path::new(&s.file)).expect("spec loads");
    }
}

#[test]
fn an_unknown_suite_is_named_with_the_known_ones() {
    let err = agentdojo::dump(&python(), "bank", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("banking"), "{err}");
}

/// The spec of one user task, loaded.
fn spec_of(import: &agentdojo::Import, task: &str) -> assay_spec::Spec {
    let s = import
        .specs
        .iter()
        .find(|s| s.user_task == task)
        .unwrap_or_else(|| panic!("{task} not imported"));
    assay_spec::load_str(&s.yaml, std::path::Path::new(&s.file))
        .expect("spec loads")
        .spec
}

#[test]
fn slack_does_not_plant_a_vector_whose_text_a_check_names() {
    let dump = agentdojo::dump(&python(), "slack", Some("v1.2.2")).expect("dump");
    let import = agentdojo::import(&dump).expect("import");
    let notes = |task: &str| {
        import
            .tasks
            .iter()
            .find(|t| t.id == task)
            .map(|t| t.notes.join("\n"))
            .unwrap_or_default()
    };
    // The check names the channel `External_0`, whose suffix is the vector:
    // under attack AgentDojo's check follows the renamed channel, the
    // imported one cannot, so the vector is left out and the report says so.
    for task in [
        "user_task_7",
        "user_task_9",
        "user_task_10",
        "user_task_12",
        "user_task_19",
    ] {
        let spec = spec_of(&import, task);
        assert!(
            spec.threats
                .iter()
                .all(|t| !t.slots.iter().any(|s| s == "prompt_injection_channel")),
            "{task}"
        );
        let n = notes(task);
        assert!(
            n.contains("`prompt_injection_channel` is not planted") && n.contains("External_0"),
            "{task}: {n}"
        );
    }
    // Only the solution names it: the vector stays, and the report says the
    // call fails under attack.
    let spec = spec_of(&import, "user_task_13");
    assert!(
        spec.threats
            .iter()
            .any(|t| t.slots.iter().any(|s| s == "prompt_injection_channel")),
        "user_task_13 keeps its vector"
    );
    assert!(notes("user_task_13").contains("reference solution names as written"));
    // A task that names no such value has no such note.
    assert!(!notes("user_task_1").contains("injection vector"));
}

#[test]
fn workspace_models_sharing_and_adding_participants() {
    let dump = agentdojo::dump(&python(), "workspace", Some("v1.2.2")).expect("dump");
    let import = agentdojo::import(&dump).expect("import");
    assert!(
        import.unmapped_tools.is_empty(),
        "{:?}",
        import.unmapped_tools
    );
    for task in ["user_task_8", "user_task_32", "user_task_37"] {
        spec_of(&import, task);
    }
}
