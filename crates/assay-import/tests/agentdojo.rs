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
