//! `assay import`: other benchmarks' tasks as specs.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::fail;

/// Benchmarks `assay import` reads.
#[derive(Subcommand)]
pub enum ImportCommand {
    /// AgentDojo suites from an installed `agentdojo` Python package: one spec
    /// per user task, its injection tasks as threats, and import-report.json
    /// saying what could not be expressed and where the specs judge differently.
    Agentdojo {
        /// Suite: banking, slack, travel or workspace.
        #[arg(long)]
        suite: String,
        /// Benchmark version (default: the package's newest, e.g. v1.2.2).
        #[arg(long)]
        version: Option<String>,
        /// Python interpreter with agentdojo installed (default: $ASSAY_AGENTDOJO_PYTHON, else python3).
        #[arg(long, value_name = "PYTHON")]
        python: Option<PathBuf>,
        /// Output directory for the specs and import-report.json (created if missing; files of the same name are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// SeClaw-Bench tasks from a checkout: one spec per task it can express,
    /// and import-report.json naming every task, what could not be expressed
    /// and which known grader defects the specs do not reproduce.
    Seclaw {
        /// The repository root, its tasks/openclaw directory, or one task directory.
        path: PathBuf,
        /// Output directory for the specs and import-report.json (created if missing; files of the same name are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Python 3 interpreter that parses the tasks' Python sources (never runs them; default python3).
        #[arg(long, value_name = "PYTHON")]
        python: Option<PathBuf>,
    },
}

/// Runs an import subcommand; the exit code.
pub fn cmd_import(command: &ImportCommand) -> u8 {
    match command {
        ImportCommand::Agentdojo {
            suite,
            version,
            python,
            out,
        } => agentdojo(suite, version.as_deref(), python.as_deref(), out),
        ImportCommand::Seclaw { path, out, python } => seclaw(path, out, python.as_deref()),
    }
}

fn agentdojo(suite: &str, version: Option<&str>, python: Option<&Path>, out: &Path) -> u8 {
    let python = python
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ASSAY_AGENTDOJO_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"));
    let dump = match assay_import::agentdojo::dump(&python, suite, version) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string(), 2),
    };
    let import = match assay_import::agentdojo::import(&dump) {
        Ok(i) => i,
        Err(e) => return fail(e.to_string(), 2),
    };
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(format!("cannot create {}: {e}", out.display()), 2);
    }
    for s in &import.specs {
        let path = out.join(&s.file);
        if let Err(e) = std::fs::write(&path, &s.yaml) {
            return fail(format!("cannot write {}: {e}", path.display()), 2);
        }
    }
    let report = out.join("import-report.json");
    let text = serde_json::to_string_pretty(&import).expect("reports serialise") + "\n";
    if let Err(e) = std::fs::write(&report, text) {
        return fail(format!("cannot write {}: {e}", report.display()), 2);
    }
    let users = import
        .tasks
        .iter()
        .filter(|t| t.id.starts_with("user_task"))
        .count();
    let injections = import.tasks.len() - users;
    let threats_in = import
        .tasks
        .iter()
        .filter(|t| t.id.starts_with("injection_task") && t.imported)
        .count();
    println!(
        "AgentDojo {} {} (package {}): {} of {users} user task(s) and {threats_in} of {injections} injection task(s) imported into {}",
        import.suite,
        import.benchmark_version,
        import.agentdojo_version,
        import.specs.len(),
        out.display()
    );
    for t in import.tasks.iter().filter(|t| !t.imported) {
        println!("  not imported: {}: {}", t.id, t.notes.join("; "));
    }
    let differing = import
        .tasks
        .iter()
        .filter(|t| !t.differences.is_empty())
        .count();
    if differing > 0 {
        println!(
            "  {differing} task(s) judged differently from AgentDojo on purpose: see {}",
            report.display()
        );
    }
    if !import.unmapped_tools.is_empty() {
        println!("  tools not modelled: {}", import.unmapped_tools.join(", "));
    }
    if !import.uncovered_environment.is_empty() {
        println!(
            "  environment not carried over: {}",
            import.uncovered_environment.join(", ")
        );
    }
    0
}

fn seclaw(path: &Path, out: &Path, python: Option<&Path>) -> u8 {
    let python = python.map_or_else(|| PathBuf::from("python3"), Path::to_path_buf);
    let read = match assay_import::seclaw::read(&python, path) {
        Ok(r) => r,
        Err(e) => return fail(e.to_string(), 2),
    };
    let import = assay_import::seclaw::import(&read);
    if let Err(e) = std::fs::create_dir_all(out) {
        return fail(format!("cannot create {}: {e}", out.display()), 2);
    }
    for s in &import.specs {
        let p = out.join(&s.file);
        if let Err(e) = std::fs::write(&p, &s.yaml) {
            return fail(format!("cannot write {}: {e}", p.display()), 2);
        }
    }
    let report = out.join("import-report.json");
    let text = serde_json::to_string_pretty(&import).expect("reports serialise") + "\n";
    if let Err(e) = std::fs::write(&report, text) {
        return fail(format!("cannot write {}: {e}", report.display()), 2);
    }
    println!(
        "SeClaw-Bench: {} of {} task(s) imported into {}",
        import.tasks_imported,
        import.tasks_read,
        out.display()
    );
    for (code, n) in &import.not_imported {
        println!("  not imported ({code}): {n}");
    }
    for (code, n) in &import.defects {
        println!("  grader defect {code}: {n} task(s)");
    }
    println!("  details per task: {}", report.display());
    0
}
