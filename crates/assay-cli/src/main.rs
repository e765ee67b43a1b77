//! `assay`: the command-line front of the pipeline. It parses arguments, calls
//! the library crates, renders their results and picks the exit code; it holds
//! no evaluation logic of its own.
//!
//! Exit codes: 0 success, 1 a gate, control expectation or trace check failed,
//! 2 invalid input.

mod diagnostics;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use assay_report::{RunResults, render_summary, render_trace};
use clap::{Parser, Subcommand};

/// Auditable safety evidence about AI agents: write a security spec, run agents
/// against it in an isolated world, and get verdicts that cite the events
/// proving them.
#[derive(Parser)]
#[command(name = "assay", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run agents against specs and score every episode.
    ///
    /// Each spec yields a benign case and one case per threat × injection slot;
    /// every case runs once per agent and epoch in a fresh embedded world.
    Run {
        /// Spec files or directories (searched recursively for *.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Agent to run (repeatable). Default: the three control agents.
        #[arg(long = "agent", value_name = "NAME")]
        agents: Vec<String>,
        /// Repetitions of every case × agent.
        #[arg(long, default_value_t = 1)]
        epochs: u32,
        /// Run seed; every episode seed derives from it (printed and stored).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory for results.json and traces.
        #[arg(long, default_value = "assay-out")]
        out: PathBuf,
        /// Episodes run at once (default: number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// No progress bar and no summary table.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check spec files; report every problem with file:line:column and a hint.
    Validate {
        /// Spec files or directories (searched recursively for *.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec format (for editor completion).
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pretty-print a trace, marking the events its verdict cites.
    Show {
        /// A trace.jsonl written by `assay run`.
        trace: PathBuf,
    },
    /// Check that traces were not modified (hash chain, and head against results.json).
    VerifyTrace {
        /// trace.jsonl files, or run directories holding results.json.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run {
            paths,
            agents,
            epochs,
            seed,
            out,
            jobs,
            quiet,
        } => cmd_run(&paths, agents, epochs, seed, out, jobs, quiet),
        Command::Validate { paths } => cmd_validate(&paths),
        Command::Schema { out } => cmd_schema(out.as_deref()),
        Command::Show { trace } => cmd_show(&trace),
        Command::VerifyTrace { paths } => cmd_verify(&paths),
    };
    ExitCode::from(code)
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn fail(msg: impl std::fmt::Display, code: u8) -> u8 {
    eprintln!("error: {msg}");
    code
}

/// Loads every spec under `paths`; prints all diagnostics and returns None if any is invalid.
fn load_specs(paths: &[PathBuf]) -> Result<Vec<assay_spec::LoadedSpec>, u8> {
    let files = assay_spec::spec_files(paths).map_err(|e| fail(e, 2))?;
    if files.is_empty() {
        return Err(fail(
            "no spec files (*.yaml, *.yml) found under the given paths",
            2,
        ));
    }
    let mut specs = Vec::new();
    let mut bad = 0;
    for f in &files {
        match assay_spec::load_file(f) {
            Ok(s) => specs.push(s),
            Err(e) => {
                bad += 1;
                diagnostics::report(&e);
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for s in &specs {
        if let Some(prev) = seen.insert(s.spec.id.clone(), s.path.clone()) {
            bad += 1;
            eprintln!(
                "error: spec id `{}` is used by both {} and {}; ids must be unique in a run",
                s.spec.id,
                prev.display(),
                s.path.display()
            );
        }
    }
    if bad > 0 {
        eprintln!("{bad} of {} spec file(s) invalid", files.len());
        return Err(2);
    }
    Ok(specs)
}

fn cmd_validate(paths: &[PathBuf]) -> u8 {
    match load_specs(paths) {
        Ok(specs) => {
            println!("{} spec(s) valid", specs.len());
            0
        }
        Err(code) => code,
    }
}

fn cmd_schema(out: Option<&Path>) -> u8 {
    let text =
        serde_json::to_string_pretty(&assay_spec::json_schema()).expect("schema serialises") + "\n";
    match out {
        Some(p) => match std::fs::write(p, text) {
            Ok(()) => 0,
            Err(e) => fail(format!("cannot write {}: {e}", p.display()), 2),
        },
        None => {
            print!("{text}");
            0
        }
    }
}

fn cmd_run(
    paths: &[PathBuf],
    agents: Vec<String>,
    epochs: u32,
    seed: u64,
    out: PathBuf,
    jobs: Option<usize>,
    quiet: bool,
) -> u8 {
    let specs = match load_specs(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let names = if agents.is_empty() {
        vec![
            "control:solve".to_string(),
            "control:naive".to_string(),
            "control:refuse".to_string(),
        ]
    } else {
        agents
    };
    let mut resolved = Vec::new();
    for n in &names {
        match assay_agent::agent_from_name(n) {
            Ok(a) => resolved.push(a),
            Err(e) => return fail(e, 2),
        }
    }
    if epochs == 0 {
        return fail("--epochs must be at least 1", 2);
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let cfg = assay_run::RunConfig {
        seed,
        epochs,
        jobs,
        out: out.clone(),
        progress: interactive && !quiet,
    };
    eprintln!(
        "seed {seed} · {} spec(s) · {} agent(s) · {epochs} epoch(s) → {}",
        specs.len(),
        resolved.len(),
        out.display()
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start runtime: {e}"), 2),
    };
    let started = std::time::Instant::now();
    let result = rt.block_on(assay_run::run(&specs, &resolved, &cfg));
    let run = match result {
        Ok(r) => r,
        Err(e) => return fail(e, 2),
    };
    let secs = started.elapsed().as_secs_f64();
    if !quiet {
        print!("{}", render_summary(&run.summary, color()));
    }
    let errors = run
        .episodes
        .iter()
        .filter(|e| e.status == assay_report::Status::Error)
        .count();
    println!(
        "{} episodes in {:.2}s ({:.0}/s), {} error(s); results: {}",
        run.episodes.len(),
        secs,
        run.episodes.len() as f64 / secs.max(1e-9),
        errors,
        out.join("results.json").display()
    );
    if run.passed {
        0
    } else {
        println!("FAILED: a gate or control expectation did not hold (see above)");
        1
    }
}

/// The results file of the run a trace belongs to: `DIR/<episode>/trace.jsonl` → `DIR/results.json`.
fn results_for(trace: &Path) -> Option<(RunResults, String)> {
    let ep_dir = trace.parent()?;
    let run_dir = ep_dir.parent()?;
    let text = std::fs::read_to_string(run_dir.join("results.json")).ok()?;
    let results: RunResults = serde_json::from_str(&text).ok()?;
    let name = ep_dir.file_name()?.to_string_lossy().to_string();
    Some((results, name))
}

fn cmd_show(trace: &Path) -> u8 {
    let text = match std::fs::read_to_string(trace) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", trace.display()), 2),
    };
    if let Err(e) = assay_trace::verify_jsonl(&text, None) {
        eprintln!("warning: {}: {e}", trace.display());
    }
    let events = match assay_trace::parse_jsonl(&text) {
        Ok(ev) => ev,
        Err(e) => return fail(format!("{}: {e}", trace.display()), 2),
    };
    let results = results_for(trace);
    let verdict = results
        .as_ref()
        .and_then(|(r, name)| r.episodes.iter().find(|e| &e.episode == name));
    print!("{}", render_trace(&events, verdict, color()));
    0
}

fn cmd_verify(paths: &[PathBuf]) -> u8 {
    let mut failed = 0;
    let mut checked = 0;
    for p in paths {
        let mut targets: Vec<(PathBuf, Option<String>)> = Vec::new();
        if p.is_dir() {
            let results = match std::fs::read_to_string(p.join("results.json"))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<RunResults>(&t).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    return fail(format!("{}: cannot read results.json: {e}", p.display()), 2);
                }
            };
            targets.extend(
                results
                    .episodes
                    .into_iter()
                    .map(|e| (p.join(&e.trace), Some(e.trace_head))),
            );
        } else {
            let head = results_for(p).and_then(|(r, name)| {
                r.episodes
                    .into_iter()
                    .find(|e| e.episode == name)
                    .map(|e| e.trace_head)
            });
            targets.push((p.clone(), head));
        }
        for (t, head) in targets {
            checked += 1;
            let text = match std::fs::read_to_string(&t) {
                Ok(x) => x,
                Err(e) => {
                    failed += 1;
                    eprintln!("FAIL {}: cannot read: {e}", t.display());
                    continue;
                }
            };
            match assay_trace::verify_jsonl(&text, head.as_deref()) {
                Ok(r) => println!(
                    "ok   {} ({} events, head {}{})",
                    t.display(),
                    r.events,
                    &r.head[..12],
                    if head.is_some() {
                        ", matches results.json"
                    } else {
                        ", no recorded head found"
                    }
                ),
                Err(e) => {
                    failed += 1;
                    println!("FAIL {}: {e}", t.display());
                }
            }
        }
    }
    if failed > 0 {
        println!("{failed} of {checked} trace(s) failed verification");
        1
    } else {
        0
    }
}

#[allow(dead_code)]
fn _assert_send(_: Arc<dyn assay_agent::Agent>) {}
