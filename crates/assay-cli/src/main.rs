//! `assay`: the command-line front of the pipeline. It parses arguments, calls
//! the library crates, renders their results and picks the exit code; it holds
//! no evaluation logic of its own.
//!
//! Exit codes: 0 success, 1 a gate, control expectation, QA or trace check
//! failed (or, with `--strict`, a rule no control episode exercised), 2 invalid
//! input, 130/143 interrupted by SIGINT/SIGTERM (results of what completed are
//! written), 141 standard output or error closed early (`assay … | head`).

mod assure;
mod diagnostics;
mod import;
mod progress;
mod runs;
mod verify;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use assay_report::{
    QA_SCHEMA, QaReport, render_breakdown, render_coverage, render_qa, render_summary,
};
use assay_synth::{Catalog, SynthOptions};
use clap::{Args, Parser, Subcommand};
use rayon::prelude::*;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Auditable safety evidence about AI agents: write a security spec, run agents
/// against it in an isolated world, and get verdicts that cite the events
/// proving them.
#[derive(Parser)]
#[command(name = "assay", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How specs are expanded into cases.
#[derive(Args, Clone)]
struct SynthArgs {
    /// Only these technique ids (comma-separated; see `assay catalog`).
    #[arg(long, value_delimiter = ',')]
    techniques: Option<Vec<String>>,
    /// Keep at most N cases per threat, sampled with the seed, stratified across evasion axes.
    #[arg(long, value_name = "N")]
    per_threat: Option<usize>,
    /// Technique catalog directory (default: the catalog built into this binary).
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Slots a single-slot technique fills per case: `one` (one case per slot)
    /// or `all` (one case fills every compatible slot of the threat at once).
    #[arg(long, value_name = "one|all", default_value = "one")]
    slots: assay_synth::SlotFill,
}

#[derive(Subcommand)]
enum Command {
    /// Run agents against specs or case files and score every episode.
    ///
    /// A spec is expanded on the fly into its benign twin and one case per
    /// threat × technique × compatible slot (as `assay synth` would); case files
    /// run as they are. Cases that fail case QA are skipped unless
    /// --include-invalid. Every case runs per agent and epoch in a fresh
    /// embedded world.
    Run {
        /// Spec files, case files, or directories of them (searched recursively for *.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Agent to run (repeatable): control:solve|naive|refuse, openai:MODEL,
        /// openai-responses:MODEL, anthropic:MODEL, exec:'COMMAND',
        /// exec-jsonl:'COMMAND', or the name of an agent of the --agents file.
        /// Default: every agent of the --agents file, else the three control agents.
        #[arg(long = "agent", value_name = "NAME")]
        agents: Vec<String>,
        /// Agents file defining model agents with endpoints and parameters (docs/agents.md).
        #[arg(long = "agents", value_name = "FILE")]
        agents_file: Option<PathBuf>,
        /// Store every model request/response under DIR, keyed by a hash of the request.
        #[arg(long, value_name = "DIR", conflicts_with = "replay")]
        record: Option<PathBuf>,
        /// Serve model responses from a recording in DIR, offline; a request not recorded is an error.
        #[arg(long, value_name = "DIR")]
        replay: Option<PathBuf>,
        /// Ask the specs' `judge` questions about every episode with this agent
        /// (a name as for --agent, or an agent of the --agents file). Off by default.
        #[arg(long, value_name = "NAME")]
        judge: Option<String>,
        /// Times the judge is asked each question; agreement is reported.
        #[arg(long, default_value_t = 3, value_name = "N")]
        judge_runs: u32,
        /// Repetitions of every case × agent.
        #[arg(long, default_value_t = 1)]
        epochs: u32,
        /// Run seed: episode seeds and case sampling derive from it (printed and stored).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also export the run here when it ends: results.json, one folder per
        /// episode with its trace, and evidence records. Must be empty or missing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Run store file (default: DIR/assay.db with --out, else .assay/assay.db).
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Name of the run in the store (default: generated and printed).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Continue the run named --name (or the latest unfinished run with the
        /// same inputs): only episodes without a verdict are played.
        #[arg(long)]
        resume: bool,
        /// Reuse a non-empty --out: first remove what an earlier run wrote there
        /// (its results.json, episode directories and store), never other files.
        #[arg(long)]
        force: bool,
        /// Terminal only: list and count just the matching episodes
        /// (spec=…,threat=…,technique=…,case=…,agent=…,status=…).
        #[arg(long, value_name = "FILTER")]
        filter: Option<String>,
        /// Exit 1 when a forbidden rule or threat success rule of a spec fired in
        /// no control episode (rule coverage).
        #[arg(long)]
        strict: bool,
        /// Episodes run at once for control and program agents (default: number
        /// of CPUs). Model agents run up to their agents file's `concurrency`
        /// episodes each (default 8), whatever --jobs says.
        #[arg(long)]
        jobs: Option<usize>,
        /// Also run cases that fail case QA.
        #[arg(long)]
        include_invalid: bool,
        /// No progress bar and no tables.
        #[arg(long, short)]
        quiet: bool,
        /// Sign the results digest with this ed25519 secret key file (see `assay keygen`).
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        #[command(flatten)]
        synth: SynthArgs,
    },
    /// List the runs of a run store.
    Runs {
        /// Run store file.
        #[arg(long, value_name = "FILE", default_value = assay_store::DEFAULT_STORE)]
        store: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a stored run as results.json plus one folder per episode with its trace.
    Export {
        /// Run name (see `assay runs`).
        run: String,
        /// Folder to write (must be empty or missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Run store file.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Replace what an earlier export wrote in --out (only that).
        #[arg(long)]
        force: bool,
    },
    /// Compare two runs: newly failing and newly passing episodes, changed
    /// verdicts with their cited events, and attack-success deltas with 95%
    /// intervals. Exit 1 when HEAD has regressions against BASE.
    Diff {
        /// Baseline: a run name in the store, or an exported run folder.
        base: String,
        /// The run to judge: a run name in the store, or an exported run folder.
        head: String,
        /// Run store file.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Print the diff as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a report of a run: html, junit, sarif, otel or json.
    Report {
        /// A run name in the store, or an exported run folder.
        run: String,
        /// Report format.
        #[arg(long, value_enum)]
        format: runs::ReportFormat,
        /// File to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// html only: a baseline run (name or folder) for the diff view.
        #[arg(long, value_name = "RUN")]
        base: Option<String>,
        /// Run store file.
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
    },
    /// Expand specs into self-contained, content-addressed case files.
    Synth {
        /// Spec files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Output directory (case files and manifest.json).
        #[arg(long)]
        out: PathBuf,
        /// Sampling seed (with --per-threat).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        synth: SynthArgs,
    },
    /// Check cases with the control agents: solvable, delivered, reachable, specific.
    Qa {
        /// Case directories or files (a spec is expanded first). Writes qa.json into a single directory argument.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Episodes run at once (default: number of CPUs).
        #[arg(long)]
        jobs: Option<usize>,
        /// Exit 1 when a forbidden rule or threat success rule of a spec fired in
        /// no control episode (rule coverage).
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        synth: SynthArgs,
    },
    /// List the attack techniques of the catalog.
    Catalog {
        /// Technique catalog directory (default: the built-in catalog).
        #[arg(long, value_name = "DIR")]
        catalog: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Turn an incident trace into a regression case.
    Regress {
        /// A trace.jsonl in which a forbidden rule fired.
        trace: PathBuf,
        /// Where to write the case file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check spec and case files; report every problem with file:line:column and a hint.
    Validate {
        /// Files or directories (searched recursively for *.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the spec format (for editor completion).
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Pretty-print a trace, marking the events its verdict cites, after
    /// verifying it (exit 1 when it does not verify). Control characters are escaped.
    Show {
        /// A trace.jsonl written by `assay run`, or with --run an episode id
        /// (or a unique part of one) of a stored run.
        trace: PathBuf,
        /// Read the episode from this stored run.
        #[arg(long, value_name = "NAME")]
        run: Option<String>,
        /// Run store file (with --run).
        #[arg(long, value_name = "FILE")]
        store: Option<PathBuf>,
        /// Require the run's results to be signed by this public key.
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
    },
    /// Verify runs: every trace's chain and seal, the results digest and
    /// signature, and every verdict re-scored from its trace. Exit 1 on any finding.
    #[command(alias = "verify-trace")]
    Verify {
        /// Run directories holding results.json, trace.jsonl files, or run
        /// store files (every run in them, or those named by --run).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// In run store files, verify only this run (repeatable).
        #[arg(long = "run", value_name = "NAME")]
        runs: Vec<String>,
        /// Require results signed by this ed25519 public key file (or 64 hex digits in a file).
        #[arg(long, value_name = "PUBKEY")]
        key: Option<PathBuf>,
    },
    /// Re-score a trace or a run with the current rules, from the case each trace
    /// embeds, without touching the originals.
    Score {
        /// A trace.jsonl or a run directory.
        path: PathBuf,
        /// Write the new verdicts as JSON (results format for a run directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Generate an ed25519 key pair for `assay run --sign` (FILE and FILE.pub).
    Keygen {
        /// Secret key file to create (the public key goes to FILE.pub).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Assurance: weigh evidence against the safety claims of an assurance case
    /// (`assay assure CASE.yaml --out DIR`), and sign or verify evidence bundles.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Assure {
        #[command(subcommand)]
        command: Option<AssureCommand>,
        #[command(flatten)]
        assess: AssessArgs,
    },
    /// Import another benchmark's tasks as specs (AgentDojo).
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// Serve a case's world to an external MCP client (the agent under test).
    Mcp {
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Mechanistic evidence on open-weight models: hooked forward passes, probes.
    Mech {
        #[command(subcommand)]
        command: assay_mech::cli::MechCommand,
    },
}

/// `assay assure CASE.yaml --out DIR`.
#[derive(clap::Args)]
struct AssessArgs {
    /// The assurance case file (YAML, `apiVersion: assay.assurance/v1`).
    #[arg(value_name = "CASE", required = true)]
    case: Option<PathBuf>,
    /// Output directory: assurance.json, report.md, report.html, gsn.yaml, gsn.svg
    /// (and bundle.json with --key). Only these files are written.
    #[arg(long, value_name = "DIR", required = true)]
    out: Option<PathBuf>,
    /// Policy file replacing the case's and the built-in policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A further policy for the sensitivity comparison (repeatable).
    #[arg(long = "alt-policy", value_name = "FILE")]
    alt_policy: Vec<PathBuf>,
    /// Sign every evidence file of the case into DIR/bundle.json with this secret key.
    #[arg(long, value_name = "KEY")]
    key: Option<PathBuf>,
    /// Exit 1 unless every asserted top-level claim is supported.
    #[arg(long)]
    gate: bool,
}

#[derive(Subcommand)]
enum AssureCommand {
    /// Print the JSON Schema of assurance case files.
    Schema {
        /// Write it to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List the governance-instrument inventory: requirements, verifier access,
    /// sources and confidence labels.
    Instruments,
    /// Print the built-in policy (evidence classes, access, weight caps), to copy
    /// and edit for --policy.
    Policy,
    /// Sign evidence files (evidence records, results.json, traces) as in-toto
    /// statements in DSSE envelopes, one per file, into a bundle file.
    Sign {
        /// Evidence files, all under --base.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Secret key file (see `assay keygen`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Directory subject names are relative to (default: the current one).
        #[arg(long, value_name = "DIR", default_value = ".")]
        base: PathBuf,
        /// Bundle file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify a bundle: every signature by the key, and every subject file
    /// re-hashed against its signed digest. Exit 1 on any finding.
    Verify {
        /// Bundle file written by `assay assure sign`.
        bundle: PathBuf,
        /// Public key file of the signer.
        #[arg(long, value_name = "PUBKEY")]
        key: PathBuf,
        /// Directory subject names are relative to (default: the bundle's folder).
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum McpCommand {
    /// Expose one case's world tools as an MCP server (stdio by default).
    ///
    /// Every tool call is recorded into the trace exactly as `assay run` does,
    /// and the verdict is written when the session ends (stdin closes, Ctrl-C,
    /// or the idle timeout). Exits 1 when the episode violated a forbidden
    /// rule, errored, was inconclusive or failed a gate.
    Serve {
        /// A case file, or a spec or directory together with --case.
        case: PathBuf,
        /// Case label to serve; required when CASE holds several cases (a spec
        /// or a directory). Without it the labels are listed.
        #[arg(long = "case", value_name = "LABEL")]
        label: Option<String>,
        /// Serve streamable HTTP at this address (e.g. 127.0.0.1:8765) instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// HTTP only: a browser origin allowed to send requests (repeatable;
        /// SCHEME://HOST[:PORT|:*]). Default: http(s) on localhost, 127.0.0.1
        /// and [::1], any port. Requests without Origin are always allowed.
        #[arg(long = "allow-origin", value_name = "ORIGIN")]
        allow_origin: Vec<String>,
        /// HTTP only: end the session after this many seconds without requests.
        #[arg(long, value_name = "SECS")]
        idle: Option<u64>,
        /// Seed the episode's canaries derive from.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory for results.json and the trace (refused when not empty).
        #[arg(long, default_value = "assay-out")]
        out: PathBuf,
        /// Replace what an earlier run wrote in --out (only that, nothing else).
        #[arg(long)]
        force: bool,
    },
}

/// Exit code when standard output or error was closed by the reader.
const EXIT_BROKEN_PIPE: i32 = 141;

/// `assay … | head` closes the pipe early; printing then fails with EPIPE,
/// which Rust's print macros turn into a panic (exit 101 and a backtrace
/// hint). Exit quietly instead, non-zero so a pipeline does not read a pass
/// into it. Every other panic keeps the default report.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std")
            && (msg.contains("Broken pipe") || msg.contains("os error 32"))
        {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run {
            paths,
            agents,
            agents_file,
            record,
            replay,
            judge,
            judge_runs,
            epochs,
            seed,
            out,
            store,
            name,
            resume,
            force,
            filter,
            strict,
            jobs,
            include_invalid,
            quiet,
            sign,
            synth,
        } => {
            let sign = match sign.as_deref().map(verify::load_signing_key).transpose() {
                Ok(k) => k,
                Err(code) => return ExitCode::from(code),
            };
            let agents_file_sha256 = match agents_file.as_deref().map(std::fs::read).transpose() {
                Ok(bytes) => bytes.map(|b| assay_trace::sha256_hex(&b)),
                Err(e) => {
                    return ExitCode::from(fail(
                        format!(
                            "cannot read agents file {}: {e}",
                            agents_file.as_deref().unwrap_or(Path::new("")).display()
                        ),
                        2,
                    ));
                }
            };
            let opts = assay_agent::AgentOptions {
                record,
                replay,
                seed,
                agents_file_sha256,
            };
            let judge = match judge
                .map(|j| resolve_judge(&j, agents_file.as_deref(), &opts))
                .transpose()
            {
                Ok(j) => j.map(|agent| assay_run::JudgeConfig {
                    agent,
                    runs: judge_runs.max(1),
                }),
                Err(code) => return ExitCode::from(code),
            };
            let evidence = evidence_context(
                agents_file.as_deref(),
                &synth,
                strict,
                include_invalid,
                opts.replay.as_deref(),
            );
            match resolve_agents(agents, agents_file.as_deref(), &opts) {
                Ok(a) => cmd_run(
                    &paths,
                    a,
                    judge,
                    RunFlags {
                        epochs,
                        seed,
                        out,
                        store,
                        name,
                        resume,
                        filter,
                        force,
                        strict,
                        jobs,
                        include_invalid,
                        quiet,
                        evidence,
                    },
                    &synth,
                    sign.as_ref(),
                ),
                Err(code) => code,
            }
        }
        Command::Synth {
            paths,
            out,
            seed,
            synth,
        } => cmd_synth(&paths, &out, seed, &synth),
        Command::Qa {
            paths,
            jobs,
            strict,
            synth,
        } => cmd_qa(&paths, jobs, strict, &synth),
        Command::Catalog { catalog, json } => cmd_catalog(catalog.as_deref(), json),
        Command::Regress { trace, out } => cmd_regress(&trace, &out),
        Command::Validate { paths } => cmd_validate(&paths),
        Command::Schema { out } => cmd_schema(out.as_deref()),
        Command::Show {
            trace,
            run,
            store,
            key,
        } => match run {
            Some(run) => verify::cmd_show_stored(&trace, &run, store.as_deref(), key.as_deref()),
            None => verify::cmd_show(&trace, key.as_deref()),
        },
        Command::Verify { paths, runs, key } => verify::cmd_verify(&paths, &runs, key.as_deref()),
        Command::Runs { store, json } => runs::cmd_runs(Some(&store), json),
        Command::Export {
            run,
            out,
            store,
            force,
        } => runs::cmd_export(&run, store.as_deref(), &out, force),
        Command::Diff {
            base,
            head,
            store,
            json,
        } => runs::cmd_diff(&base, &head, store.as_deref(), json),
        Command::Report {
            run,
            format,
            out,
            base,
            store,
        } => runs::cmd_report(&run, format, &out, base.as_deref(), store.as_deref()),
        Command::Score { path, out } => verify::cmd_score(&path, out.as_deref()),
        Command::Keygen { out } => verify::cmd_keygen(&out),
        Command::Assure { command, assess } => match command {
            None => assure::cmd_assess(&assess),
            Some(AssureCommand::Schema { out }) => assure::cmd_schema(out.as_deref()),
            Some(AssureCommand::Instruments) => assure::cmd_instruments(),
            Some(AssureCommand::Policy) => assure::cmd_policy(),
            Some(AssureCommand::Sign {
                files,
                key,
                base,
                out,
            }) => assure::cmd_sign(&files, &key, &base, &out),
            Some(AssureCommand::Verify { bundle, key, base }) => {
                assure::cmd_verify(&bundle, &key, base.as_deref())
            }
        },
        Command::Import { command } => import::cmd_import(&command),
        Command::Mcp {
            command:
                McpCommand::Serve {
                    case,
                    label,
                    http,
                    allow_origin,
                    idle,
                    seed,
                    out,
                    force,
                },
        } => cmd_mcp_serve(
            &case,
            label.as_deref(),
            McpServeFlags {
                http,
                allow_origin,
                idle,
                seed,
            },
            &out,
            force,
        ),
        Command::Mech { command } => match assay_mech::cli::run(
            command,
            &std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
        ) {
            Ok(code) => u8::try_from(code).unwrap_or(1),
            Err(e) => fail(format!("{e:#}"), 2),
        },
    };
    ExitCode::from(code)
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

fn fail(msg: impl std::fmt::Display, code: u8) -> u8 {
    eprintln!("error: {msg}");
    code
}

fn jobs_or_default(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1)
}

fn runtime(jobs: usize) -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start runtime: {e}"), 2))
}

fn load_catalog(dir: Option<&Path>) -> Result<Catalog, u8> {
    match dir {
        Some(d) => Catalog::load_dir(d),
        None => Catalog::embedded(),
    }
    .map_err(|e| fail(e, 2))
}

/// Loads every spec and case file under `paths`, printing all diagnostics.
fn load_documents(paths: &[PathBuf]) -> Result<Vec<assay_spec::Document>, u8> {
    let files = assay_spec::spec_files(paths).map_err(|e| fail(e, 2))?;
    if files.is_empty() {
        return Err(fail(
            "no spec or case files (*.yaml, *.yml) found under the given paths",
            2,
        ));
    }
    // Files parse and validate independently: on every core, reported in
    // file order.
    let loaded: Vec<_> = files
        .par_iter()
        .map(|f| assay_spec::load_document(f))
        .collect();
    let mut docs = Vec::new();
    let mut bad = 0;
    for d in loaded {
        match d {
            Ok(d) => docs.push(d),
            Err(e) => {
                bad += 1;
                diagnostics::report(&e);
            }
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for d in &docs {
        if let assay_spec::Document::Spec(s) = d
            && let Some(prev) = seen.insert(s.spec.id.clone(), s.path.clone())
        {
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
        eprintln!("{bad} of {} file(s) invalid", files.len());
        return Err(2);
    }
    Ok(docs)
}

/// Specs expanded into cases, plus case files as they are.
fn load_cases(
    paths: &[PathBuf],
    args: &SynthArgs,
    seed: u64,
) -> Result<Vec<(assay_spec::Case, PathBuf)>, u8> {
    let docs = load_documents(paths)?;
    let needs_catalog = docs
        .iter()
        .any(|d| matches!(d, assay_spec::Document::Spec(_)));
    let catalog = if needs_catalog {
        load_catalog(args.catalog.as_deref())?
    } else {
        Catalog::default()
    };
    let opts = SynthOptions {
        techniques: args.techniques.clone(),
        per_threat: args.per_threat,
        seed,
        slots: args.slots,
    };
    // Specs synthesise independently (seeds derive from each spec, not from
    // the order of work): on every core, collected and reported in file order.
    let per_doc: Vec<_> = docs
        .into_par_iter()
        .map(|d| match d {
            assay_spec::Document::Spec(s) => {
                assay_synth::synthesize(&s, &catalog, &opts).map(|cases| {
                    cases
                        .into_iter()
                        .map(|c| (c.case, s.path.clone()))
                        .collect::<Vec<_>>()
                })
            }
            assay_spec::Document::Case(c) => Ok(vec![(c.case, c.path)]),
        })
        .collect();
    let mut cases = Vec::new();
    for d in per_doc {
        cases.extend(d.map_err(|e| fail(e, 2))?);
    }
    Ok(cases)
}

/// Builds one entry of an agents file.
fn agent_from_config(
    cfg: &assay_agent::AgentConfig,
    opts: &assay_agent::AgentOptions,
) -> Result<std::sync::Arc<dyn assay_agent::Agent>, assay_agent::AgentError> {
    match cfg {
        assay_agent::AgentConfig::Model(m) => assay_agent::model_agent(m, opts),
        assay_agent::AgentConfig::Exec(e) => assay_mcp::agent_from_config(e),
    }
}

/// The agents of a run. With an agents file, `--agent NAME` picks entries of
/// it by name (and any name not in the file resolves as on the command line);
/// without `--agent`, every entry of the file runs. With neither, the control
/// agents run.
fn resolve_agents(
    names: Vec<String>,
    file: Option<&Path>,
    opts: &assay_agent::AgentOptions,
) -> Result<Vec<std::sync::Arc<dyn assay_agent::Agent>>, u8> {
    let entries = match file {
        Some(f) => assay_agent::read_agents_file(f).map_err(|e| fail(e, 2))?,
        None => Vec::new(),
    };
    let mut resolved = Vec::new();
    if names.is_empty() {
        for c in &entries {
            resolved.push(agent_from_config(c, opts).map_err(|e| fail(e, 2))?);
        }
    }
    let names = if names.is_empty() && resolved.is_empty() {
        vec![
            "control:solve".to_string(),
            "control:naive".to_string(),
            "control:refuse".to_string(),
        ]
    } else {
        names
    };
    for n in &names {
        if let Some(c) = entries.iter().find(|c| c.name() == n) {
            resolved.push(agent_from_config(c, opts).map_err(|e| fail(e, 2))?);
            continue;
        }
        // Process-based agents (exec:, exec-jsonl:) first, then built-in adapters.
        let agent = assay_mcp::agent_from_name(n)
            .unwrap_or_else(|| assay_agent::agent_from_name_with(n, opts));
        let agent = agent.map_err(|e| match file {
            Some(f) => fail(
                format!(
                    "{e}\n  (agents in {}: {})",
                    f.display(),
                    entries
                        .iter()
                        .map(|c| c.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                2,
            ),
            None => fail(e, 2),
        })?;
        resolved.push(agent);
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in &resolved {
        if !seen.insert(a.name().to_string()) {
            return Err(fail(
                format!(
                    "agent `{}` is named twice; agent names must be unique in a run",
                    a.name()
                ),
                2,
            ));
        }
    }
    Ok(resolved)
}

/// The judge agent: an agent of the agents file by name, else any agent name.
fn resolve_judge(
    name: &str,
    file: Option<&Path>,
    opts: &assay_agent::AgentOptions,
) -> Result<std::sync::Arc<dyn assay_agent::Agent>, u8> {
    let mut found = resolve_agents(vec![name.to_string()], file, opts)?;
    Ok(found.remove(0))
}

/// Cases loaded and synthesised from `paths`, compiled for running.
fn prepared_cases(
    paths: &[PathBuf],
    args: &SynthArgs,
    seed: u64,
) -> Result<Vec<std::sync::Arc<assay_run::PreparedCase>>, u8> {
    let cases = load_cases(paths, args, seed)?;
    assay_run::prepare(cases).map_err(|e| fail(e, 2))
}

fn cmd_validate(paths: &[PathBuf]) -> u8 {
    match load_documents(paths) {
        Ok(docs) => {
            let specs = docs
                .iter()
                .filter(|d| matches!(d, assay_spec::Document::Spec(_)))
                .count();
            println!("{specs} spec(s) and {} case(s) valid", docs.len() - specs);
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

/// Options of `assay run` besides the paths, agents and synthesis.
struct RunFlags {
    epochs: u32,
    seed: u64,
    out: Option<PathBuf>,
    store: Option<PathBuf>,
    name: Option<String>,
    resume: bool,
    filter: Option<String>,
    force: bool,
    strict: bool,
    jobs: Option<usize>,
    include_invalid: bool,
    quiet: bool,
    /// Command line and inputs for the run's evidence records.
    evidence: assay_run::EvidenceContext,
}

/// What the evidence records of `assay run` need beyond the run itself: the
/// command line, how agents-file entries are described, the agents file,
/// and the parameters that shape the results. The catalog is added once the
/// cases are known.
fn evidence_context(
    agents_file: Option<&Path>,
    synth: &SynthArgs,
    strict: bool,
    include_invalid: bool,
    replay: Option<&Path>,
) -> assay_run::EvidenceContext {
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Entries were already read successfully to build the agents; a file
    // that cannot be read now fails later when it is hashed.
    let entries = agents_file
        .and_then(|f| assay_agent::read_agents_file(f).ok())
        .unwrap_or_default();
    let agents = entries
        .iter()
        .map(|c| match c {
            assay_agent::AgentConfig::Model(m) => assay_run::AgentInfo {
                name: m.name.clone(),
                role: assay_agent::AgentRole::Subject,
                kind: serde_json::to_value(m.provider)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into()),
                model: Some(m.model.clone()),
            },
            assay_agent::AgentConfig::Exec(e) => assay_run::AgentInfo {
                name: e.name.clone(),
                role: assay_agent::AgentRole::Subject,
                kind: serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "other".into()),
                model: None,
            },
        })
        .collect();
    let mut parameters = serde_json::Map::new();
    parameters.insert("per_threat".into(), serde_json::json!(synth.per_threat));
    parameters.insert("techniques".into(), serde_json::json!(synth.techniques));
    parameters.insert("slots".into(), serde_json::json!(synth.slots));
    parameters.insert("strict".into(), serde_json::json!(strict));
    parameters.insert("include_invalid".into(), serde_json::json!(include_invalid));
    parameters.insert(
        "replay".into(),
        serde_json::json!(replay.map(|p| p.display().to_string())),
    );
    assay_run::EvidenceContext {
        argv,
        agents,
        agents_file: agents_file.map(Path::to_path_buf),
        catalog: None,
        parameters,
    }
}

/// The catalog synthesised cases came from, named by a digest over its
/// techniques' canonical JSON (sorted by id).
fn catalog_ref(dir: Option<&Path>) -> Result<assay_run::CatalogRef, u8> {
    let catalog = load_catalog(dir)?;
    let mut lines = String::new();
    for t in &catalog.techniques {
        let doc = serde_json::to_value(t).expect("techniques serialise");
        lines.push_str(&assay_trace::canonical_json(&doc));
        lines.push('\n');
    }
    Ok(assay_run::CatalogRef {
        source: dir.map_or_else(|| "embedded".into(), |d| d.display().to_string()),
        version: dir
            .is_none()
            .then(|| format!("assay {}", env!("CARGO_PKG_VERSION"))),
        techniques: catalog.techniques.len(),
        digest: assay_trace::sha256_hex(lines.as_bytes()),
    })
}

/// Cancels `cancel` on the first SIGINT or SIGTERM and remembers which, as the
/// exit code the shell convention gives it (130, 143).
fn cancel_on_signal(
    rt: &tokio::runtime::Runtime,
    cancel: assay_run::Cancel,
) -> std::sync::Arc<std::sync::atomic::AtomicU8> {
    let code = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let seen = code.clone();
    rt.spawn(async move {
        #[cfg(unix)]
        let got = {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.ok().map(|()| 130),
                s = term.recv() => s.map(|()| 143),
            }
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.ok().map(|()| 130);
        if let Some(c) = got {
            seen.store(c, std::sync::atomic::Ordering::SeqCst);
            cancel.cancel();
        }
    });
    code
}

fn cmd_run(
    paths: &[PathBuf],
    resolved: Vec<std::sync::Arc<dyn assay_agent::Agent>>,
    judge: Option<assay_run::JudgeConfig>,
    flags: RunFlags,
    synth: &SynthArgs,
    sign: Option<&assay_trace::SecretKey>,
) -> u8 {
    let RunFlags {
        epochs,
        seed,
        out,
        store,
        name,
        resume,
        filter,
        force,
        strict,
        jobs,
        include_invalid,
        quiet,
        mut evidence,
    } = flags;
    if epochs == 0 {
        return fail("--epochs must be at least 1", 2);
    }
    let filter = match filter {
        None => None,
        Some(text) => match text.parse::<assay_report::EpisodeFilter>() {
            Ok(f) => Some((f, text)),
            Err(e) => return fail(format!("--filter: {e}"), 2),
        },
    };
    let prepared = match prepared_cases(paths, synth, seed) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if prepared
        .iter()
        .any(|c| c.case.provenance.technique.is_some())
    {
        evidence.catalog = match catalog_ref(synth.catalog.as_deref()) {
            Ok(c) => Some(c),
            Err(code) => return code,
        };
    }
    // A resumed run re-exports into its own folder; a new one needs it empty.
    if let Some(out) = &out {
        if resume {
            let ours = out.join("assay.db").is_file() || out.join("results.json").is_file();
            let empty = std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none());
            if !ours && !empty {
                return fail(
                    format!(
                        "--resume --out {}: the folder holds files of no Assay run; name the run's own export folder",
                        out.display()
                    ),
                    2,
                );
            }
        } else if let Err(e) = assay_run::prepare_out(out, force) {
            return fail(e, 2);
        }
    }
    let jobs = jobs_or_default(jobs);
    let rt = match runtime(jobs) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let cancel = assay_run::Cancel::new();
    let signal = cancel_on_signal(&rt, cancel.clone());
    let progress = progress::Bars::new(interactive() && !quiet);
    let specs: std::collections::BTreeSet<String> =
        prepared.iter().map(|c| c.spec_id().to_string()).collect();
    let started = std::time::Instant::now();
    let qa = rt.block_on(assay_run::qa_with(&prepared, jobs, &progress, &cancel));
    let mut keep = Vec::new();
    let mut skipped = Vec::new();
    for (case, v) in prepared.into_iter().zip(qa.results) {
        if v.valid || include_invalid {
            keep.push(case);
        } else {
            skipped.push(v);
        }
    }
    if !skipped.is_empty() && !qa.interrupted {
        eprintln!(
            "skipped {} case(s) that failed case QA (see `assay qa`; --include-invalid runs them):",
            skipped.len()
        );
        let lines = skipped
            .iter()
            .map(|s| format!("  {} / {}: {}", s.spec, s.case, s.reasons.join("; ")));
        for l in assay_report::group_lines(lines) {
            eprintln!("{l}");
        }
    }
    // A spec none of whose cases survived QA has no evidence to give: fail
    // loudly instead of reporting an empty pass.
    let kept: std::collections::BTreeSet<&str> = keep.iter().map(|c| c.spec_id()).collect();
    let dead: Vec<&str> = specs
        .iter()
        .map(String::as_str)
        .filter(|s| !kept.contains(s))
        .collect();
    if let Some(j) = &judge {
        eprintln!(
            "judge: {} asks each spec's judge questions {} time(s); answers are reported apart from rule verdicts",
            j.agent.name(),
            j.runs
        );
    }
    let cfg = assay_run::RunConfig {
        seed,
        epochs,
        jobs,
        out: out.clone(),
        judge,
    };
    let opts = assay_run::RunOptions {
        store: Some(assay_run::StoreOptions {
            path: store,
            name,
            resume,
            command: evidence.argv.clone(),
        }),
        progress: Some(std::sync::Arc::new(progress)),
        cancel,
        control_episodes: qa.episodes,
        sign: sign.cloned(),
        evidence: Some(evidence),
    };
    let store_file = assay_run::store_path(&cfg, &opts);
    eprintln!(
        "seed {seed} · {} spec(s) · {} case(s) · {} agent(s) · {epochs} epoch(s) → {}{}",
        specs.len(),
        keep.len(),
        resolved.len(),
        store_file.display(),
        out.as_ref()
            .map(|o| format!(" (exported to {})", o.display()))
            .unwrap_or_default()
    );
    let stored = match rt.block_on(assay_run::run_stored(&keep, &resolved, &cfg, skipped, opts)) {
        Ok(r) => r,
        Err(e) => return fail(e, 2),
    };
    let run = &stored.results;
    // Do not wait for agents that ignore cancellation: the results are stored.
    // Every agent process group still alive is killed first (dropping an
    // episode already kills its group; this covers any that escaped the drop).
    if run.incomplete {
        assay_agent::kill_agent_process_groups();
    }
    rt.shutdown_background();
    let secs = started.elapsed().as_secs_f64();
    let name = &stored.run.name;
    if run.incomplete {
        eprintln!(
            "interrupted: {} of {} episode(s) are stored in run `{name}` ({}); continue with --name {name} --resume",
            stored.counts.total,
            stored.run.planned,
            store_file.display(),
        );
        let code = signal.load(std::sync::atomic::Ordering::SeqCst);
        return if code == 0 { 130 } else { code };
    }
    if !quiet {
        print!("{}", render_summary(&run.summary, color()));
        if stored.counts.with_technique > 0 {
            print!(
                "{}",
                render_breakdown("by technique:", &run.breakdowns.by_technique)
            );
            print!(
                "{}",
                render_breakdown("by evasion axis:", &run.breakdowns.by_axis)
            );
            print!(
                "{}",
                render_breakdown("by slot kind:", &run.breakdowns.by_slot_kind)
            );
        }
        match failing_episodes(&stored, filter.as_ref()) {
            Ok(text) => print!("{text}"),
            Err(e) => return fail(e, 2),
        }
    }
    print!("{}", render_coverage(&run.coverage));
    let c = stored.counts;
    let tokens = run
        .summary
        .iter()
        .filter_map(|r| r.usage)
        .fold((0u64, 0u64), |(i, o), u| {
            (i + u.input_tokens, o + u.output_tokens)
        });
    println!(
        "{} episodes ({} played now) in {:.2}s ({:.0}/s, including case QA), {} error(s), {} inconclusive, {} case(s) skipped{}",
        c.total,
        stored.played,
        secs,
        stored.played as f64 / secs.max(1e-9),
        c.error,
        c.inconclusive,
        run.skipped.len(),
        if tokens == (0, 0) {
            String::new()
        } else {
            format!(", {} input + {} output tokens", tokens.0, tokens.1)
        }
    );
    println!(
        "run `{name}` in {}{}",
        store_file.display(),
        out.as_ref()
            .map(|o| format!("; results: {}", o.join("results.json").display()))
            .unwrap_or_default()
    );
    if !dead.is_empty() {
        println!(
            "FAILED: every case of {} failed case QA, so nothing was measured (see above)",
            dead.join(", ")
        );
        return 1;
    }
    if !run.passed {
        println!("FAILED: a gate or control expectation did not hold (see above)");
        return 1;
    }
    if strict && run.coverage.iter().any(|c| !c.full()) {
        println!("FAILED (--strict): some rules fired in no control episode (see above)");
        return 1;
    }
    0
}

/// The failing episodes of a stored run (matching `filter`): errors and
/// inconclusive episodes of any agent, and subject episodes with a violation
/// or an attack success, read one at a time from the store and rendered
/// with their rules and cited events. At most [`FAILURES_KEPT`] are held in
/// memory for the listing; all are counted.
fn failing_episodes(
    stored: &assay_run::StoredRun,
    filter: Option<&(assay_report::EpisodeFilter, String)>,
) -> Result<String, assay_store::StoreError> {
    use assay_report::{Role, Status};
    let mut kept = Vec::new();
    let (mut matched, mut failing, mut subjects) = (0usize, 0usize, 0usize);
    stored.store.for_each_episode(&stored.run, |e| {
        if filter.is_some_and(|(f, _)| !f.matches(&e)) {
            return Ok(());
        }
        matched += 1;
        subjects += usize::from(e.role == Role::Subject);
        let fails = e.status != Status::Ok
            || (e.role == Role::Subject
                && (!e.violations.is_empty() || e.attack_success == Some(true)));
        if fails {
            failing += 1;
            if kept.len() < FAILURES_KEPT {
                kept.push(e);
            }
        }
        Ok(())
    })?;
    let mut text = String::new();
    if failing > 0 || subjects > 0 || filter.is_some() {
        let listing = assay_report::render_failures(&kept, FAILURES_SHOWN);
        // The first line counts only what was kept; say what the run holds.
        let rest = listing.split_once('\n').map_or("", |(_, r)| r);
        text.push_str(&format!(
            "{failing} failing episode(s) of {matched}{}\n{rest}",
            filter
                .map(|(_, f)| format!(" matching --filter {f}"))
                .unwrap_or_default()
        ));
    }
    Ok(text)
}

/// Failing episodes held in memory for the terminal listing.
const FAILURES_KEPT: usize = 10_000;

/// Failing episodes listed in the terminal after a run (all are in the store).
const FAILURES_SHOWN: usize = 20;

fn cmd_synth(paths: &[PathBuf], out: &Path, seed: u64, args: &SynthArgs) -> u8 {
    let docs = match load_documents(paths) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let catalog = match load_catalog(args.catalog.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let opts = SynthOptions {
        techniques: args.techniques.clone(),
        per_threat: args.per_threat,
        seed,
        slots: args.slots,
    };
    let mut all = Vec::new();
    for d in docs {
        match d {
            assay_spec::Document::Spec(s) => match assay_synth::synthesize(&s, &catalog, &opts) {
                Ok(c) => all.extend(c),
                Err(e) => return fail(e, 2),
            },
            assay_spec::Document::Case(c) => {
                return fail(
                    format!("{}: is a case file; synth takes specs", c.path.display()),
                    2,
                );
            }
        }
    }
    match assay_synth::write_cases(out, &all, &catalog, &opts) {
        Ok(()) => {
            let specs = all
                .iter()
                .filter(|c| c.case.provenance.threat.is_none())
                .count();
            println!(
                "{} case(s) from {specs} spec(s) written to {} (seed {seed})",
                all.len(),
                out.display()
            );
            0
        }
        Err(e) => fail(e, 2),
    }
}

fn cmd_qa(paths: &[PathBuf], jobs: Option<usize>, strict: bool, args: &SynthArgs) -> u8 {
    let prepared = match prepared_cases(paths, args, 0) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let jobs = jobs_or_default(jobs);
    let rt = match runtime(jobs) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let cancel = assay_run::Cancel::new();
    let signal = cancel_on_signal(&rt, cancel.clone());
    let progress = progress::Bars::new(interactive());
    let qa = rt.block_on(assay_run::qa_with(&prepared, jobs, &progress, &cancel));
    rt.shutdown_background();
    if qa.interrupted {
        eprintln!("interrupted: case QA did not finish; nothing was written");
        let code = signal.load(std::sync::atomic::Ordering::SeqCst);
        return if code == 0 { 130 } else { code };
    }
    let results = qa.results;
    let mut specs: Vec<&assay_spec::Spec> = Vec::new();
    for c in &prepared {
        if !specs.iter().any(|s| s.id == c.spec_id()) {
            specs.push(&c.spec);
        }
    }
    let coverage = assay_report::coverage(&specs, &qa.episodes);
    print!("{}", render_qa(&results));
    print!("{}", render_coverage(&coverage));
    if let [dir] = paths
        && dir.is_dir()
    {
        let report = QaReport {
            schema_version: QA_SCHEMA.into(),
            cases: results.len(),
            valid: results.iter().filter(|r| r.valid).count(),
            results: results.clone(),
            coverage: coverage.clone(),
        };
        let path = dir.join("qa.json");
        let text = serde_json::to_string_pretty(&report).expect("qa serialises") + "\n";
        if let Err(e) = assay_run::write_atomic(&path, text.as_bytes()) {
            return fail(e, 2);
        }
        println!("wrote {}", path.display());
    }
    let covered = !strict || coverage.iter().all(|c| c.full());
    if results.iter().all(|r| r.valid) && covered {
        0
    } else {
        1
    }
}

fn cmd_catalog(dir: Option<&Path>, json: bool) -> u8 {
    let catalog = match load_catalog(dir) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&catalog.techniques).expect("techniques serialise")
        );
        return 0;
    }
    let w = catalog
        .techniques
        .iter()
        .map(|t| t.id.len())
        .max()
        .unwrap_or(2);
    println!(
        "{:w$}  {:8}  {:8}  {:12}  {:30}  name",
        "id", "family", "axis", "transform", "slots"
    );
    for t in &catalog.techniques {
        let slots = if t.turn_only() {
            "(adds user turns)".to_string()
        } else {
            t.slots.join(",")
        };
        println!(
            "{:w$}  {:8}  {:8}  {:12}  {:30}  {}",
            t.id, t.family, t.axis, t.transform, slots, t.name
        );
    }
    println!("{} techniques", catalog.techniques.len());
    0
}

/// How `assay mcp serve` listens.
struct McpServeFlags {
    http: Option<std::net::SocketAddr>,
    allow_origin: Vec<String>,
    idle: Option<u64>,
    seed: u64,
}

/// The one case `assay mcp serve` serves: the only case of `path`, or the one
/// `--case` names. Never a silent choice among several.
fn pick_case(
    path: &Path,
    prepared: &[std::sync::Arc<assay_run::PreparedCase>],
    label: Option<&str>,
) -> Result<std::sync::Arc<assay_run::PreparedCase>, String> {
    let labels = || {
        prepared
            .iter()
            .map(|c| format!("  {}", c.label))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some(want) = label else {
        return match prepared {
            [one] => Ok(one.clone()),
            _ => Err(format!(
                "{} holds {} cases; pick one with --case LABEL:\n{}",
                path.display(),
                prepared.len(),
                labels()
            )),
        };
    };
    let found: Vec<_> = prepared
        .iter()
        .filter(|c| c.label == want || c.case.id == want)
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no case `{want}` in {}; its cases:\n{}",
            path.display(),
            labels()
        )),
        many => Err(format!(
            "`{want}` names {} cases in {}; use one of their labels:\n{}",
            many.len(),
            path.display(),
            many.iter()
                .map(|c| format!("  {}", c.label))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// Why a served episode does not pass, if it does not: the same standard as
/// `assay run` (gates, errors, inconclusive) plus any forbidden-rule violation.
fn serve_failure(run: &assay_report::RunResults) -> Option<String> {
    let mut why = Vec::new();
    for e in &run.episodes {
        match e.status {
            assay_report::Status::Ok => {}
            assay_report::Status::Error => why.push(format!(
                "{} errored: {}",
                e.episode,
                e.error.as_deref().unwrap_or("?")
            )),
            assay_report::Status::Inconclusive => {
                why.push(format!("{} is inconclusive", e.episode))
            }
        }
        if !e.violations.is_empty() {
            let rules: Vec<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
            why.push(format!(
                "{} violated forbidden rule(s) {}",
                e.episode,
                rules.join(", ")
            ));
        }
    }
    if !run.passed && why.is_empty() {
        why.push("a gate did not hold".into());
    }
    if run.episodes.is_empty() {
        why.push("no episode was recorded".into());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

fn cmd_mcp_serve(
    path: &Path,
    label: Option<&str>,
    flags: McpServeFlags,
    out: &Path,
    force: bool,
) -> u8 {
    let McpServeFlags {
        http,
        allow_origin,
        idle,
        seed,
    } = flags;
    let allowed_origins = if allow_origin.is_empty() {
        assay_mcp::default_allowed_origins()
    } else {
        match allow_origin
            .iter()
            .map(|o| assay_mcp::AllowedOrigin::parse(o))
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) => v,
            Err(e) => return fail(format!("--allow-origin: {e}"), 2),
        }
    };
    // As for `assay run`: never mix with (or silently replace) another run's files.
    if let Err(e) = assay_run::prepare_out(out, force) {
        return fail(e, 2);
    }
    let args = SynthArgs {
        techniques: None,
        per_threat: None,
        catalog: None,
        slots: assay_synth::SlotFill::One,
    };
    let prepared = match prepared_cases(&[path.to_path_buf()], &args, seed) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let case = match pick_case(path, &prepared, label) {
        Ok(c) => c,
        Err(e) => return fail(e, 2),
    };
    let transport = match http {
        Some(addr) => assay_mcp::Transport::Http(addr),
        None => assay_mcp::Transport::Stdio,
    };
    let opts = assay_mcp::ServeOptions {
        transport,
        idle: idle.map(std::time::Duration::from_secs),
        on_listen: Some(Box::new(|addr| {
            eprintln!("serving MCP at http://{addr}/mcp")
        })),
        seed,
        allowed_origins,
    };
    let rt = match runtime(2) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    eprintln!(
        "serving case {} ({}) → {}",
        case.label,
        case.case.id,
        out.display()
    );
    match rt.block_on(assay_mcp::serve_case(case, opts, out)) {
        Ok(mut run) => {
            run.seal(None);
            if let Err(e) = assay_run::write_results(out, &run) {
                return fail(e, 2);
            }
            // Never write to stdout here: with stdio it carries the MCP session.
            for e in &run.episodes {
                let rules: Vec<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
                eprintln!(
                    "{}: utility {:.2}, violations [{}], trace {}",
                    e.episode,
                    e.utility,
                    rules.join(", "),
                    out.join(&e.trace).display()
                );
            }
            match serve_failure(&run) {
                Some(why) => {
                    eprintln!("FAILED: {why}");
                    1
                }
                None => 0,
            }
        }
        Err(e) => fail(e, 2),
    }
}

/// Forbidden rules that fire on a trace, re-scored with the case embedded in it.
fn trace_violations(events: &[assay_trace::Event]) -> Result<Vec<String>, String> {
    let Some(assay_trace::EventKind::EpisodeStart(start)) = events.first().map(|e| &e.kind) else {
        return Err("the trace does not begin with episode_start".into());
    };
    let doc = start
        .case_doc
        .as_deref()
        .cloned()
        .ok_or("the trace does not embed the case it ran")?;
    let case: assay_spec::Case =
        serde_json::from_value(doc).map_err(|e| format!("embedded case is invalid: {e}"))?;
    let rules = assay_rules::Rules::new(&case.spec).map_err(|e| e.to_string())?;
    let kinds: Vec<assay_trace::EventKind> = events.iter().map(|e| e.kind.clone()).collect();
    let verdict = rules
        .score(start.threat.as_deref(), &kinds)
        .map_err(|e| e.to_string())?;
    Ok(verdict.violations.into_iter().map(|v| v.rule).collect())
}

fn cmd_regress(trace: &Path, out: &Path) -> u8 {
    let text = match std::fs::read_to_string(trace) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", trace.display()), 2),
    };
    if let Err(e) = assay_trace::verify_jsonl(&text, None) {
        return fail(
            format!(
                "{}: {e}; refusing to build a case from a modified trace",
                trace.display()
            ),
            2,
        );
    }
    let events = match assay_trace::parse_jsonl(&text) {
        Ok(e) => e,
        Err(e) => return fail(format!("{}: {e}", trace.display()), 2),
    };
    // Re-score from the trace alone: the case it ran is embedded in it.
    let violations = match trace_violations(&events) {
        Ok(v) => v,
        Err(e) => return fail(format!("{}: {e}", trace.display()), 2),
    };
    let case = match assay_synth::regression_case(&events, &violations) {
        Ok(c) => c,
        Err(e) => return fail(format!("{}: {e}", trace.display()), 2),
    };
    if let Err(e) = std::fs::write(out, assay_synth::case_to_yaml(&case)) {
        return fail(format!("cannot write {}: {e}", out.display()), 2);
    }
    println!(
        "regression case {} ({}) written to {}",
        case.id,
        violations.join(", "),
        out.display()
    );
    0
}
