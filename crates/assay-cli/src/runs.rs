//! Commands on stored runs: `assay runs`, `assay export`, `assay diff` and
//! `assay report`, and the store side of `assay verify` and `assay show`.
//! The store and the formats live in the libraries; this module resolves
//! names, prints and picks exit codes.

use std::path::{Path, PathBuf};

use assay_report::{EpisodeResult, RunResults};
use assay_store::{RunRow, RunState, Store};
use assay_trace::Event;

use crate::fail;

/// A run named on the command line: a run in the store, or a folder holding
/// an exported run (`results.json` and its traces).
pub(crate) enum RunSource {
    /// A stored run.
    Stored(Box<(Store, RunRow)>),
    /// An exported folder.
    Folder(PathBuf),
}

impl RunSource {
    /// Resolves `name`: an existing folder is an export, anything else a run
    /// name in `store` (default [`assay_store::DEFAULT_STORE`]).
    pub(crate) fn open(name: &str, store: Option<&Path>) -> Result<RunSource, u8> {
        let p = Path::new(name);
        if p.is_dir() {
            if !p.join("results.json").is_file() {
                return Err(fail(
                    format!(
                        "{} is a folder without results.json (not an exported run)",
                        p.display()
                    ),
                    2,
                ));
            }
            return Ok(RunSource::Folder(p.to_path_buf()));
        }
        let store = open_store(store)?;
        let run = store.run(name).map_err(|e| fail(e, 2))?;
        Ok(RunSource::Stored(Box::new((store, run))))
    }

    /// The whole results, episodes included.
    pub(crate) fn results(&self) -> Result<RunResults, u8> {
        match self {
            RunSource::Stored(stored) => match stored.0.results(&stored.1) {
                Ok(Some(r)) => {
                    check_seal(&r, &self.label())?;
                    Ok(r)
                }
                Ok(None) => Err(fail(
                    format!(
                        "run `{}` was never sealed (killed before it ended); continue it with `assay run … --name {} --resume`",
                        stored.1.name, stored.1.name
                    ),
                    2,
                )),
                Err(e) => Err(fail(e, 2)),
            },
            RunSource::Folder(dir) => {
                let path = dir.join("results.json");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display()), 2))?;
                let r: RunResults = serde_json::from_str(&text).map_err(|e| {
                    fail(
                        format!("{}: not an Assay results file: {e}", path.display()),
                        2,
                    )
                })?;
                check_seal(&r, &self.label())?;
                Ok(r)
            }
        }
    }

    /// The trace events of one episode, when available.
    pub(crate) fn events(&self, e: &EpisodeResult) -> Option<Vec<Event>> {
        let text = match self {
            RunSource::Stored(stored) => stored.0.trace(&stored.1, &e.episode).ok().flatten()?,
            RunSource::Folder(dir) => {
                if !crate::runs::plain_relative(&e.trace) {
                    return None;
                }
                std::fs::read_to_string(dir.join(&e.trace)).ok()?
            }
        };
        assay_trace::parse_jsonl(&text).ok()
    }

    /// How the run is called in messages.
    pub(crate) fn label(&self) -> String {
        match self {
            RunSource::Stored(stored) => {
                format!("run `{}` ({})", stored.1.name, stored.0.path().display())
            }
            RunSource::Folder(dir) => dir.display().to_string(),
        }
    }
}

/// Refuses results whose seal does not hold or that are incomplete: a
/// comparison or report of edited or partial verdicts would read as sound.
fn check_seal(r: &RunResults, label: &str) -> Result<(), u8> {
    let raw = serde_json::to_value(r).expect("results serialise");
    let (_, problems) = assay_report::check_integrity(&raw, None);
    if let Some(p) = problems.first() {
        return Err(fail(format!("{label}: {p}; run `assay verify` on it"), 2));
    }
    if r.incomplete {
        return Err(fail(
            format!("{label} is incomplete (interrupted); resume it before comparing or reporting"),
            2,
        ));
    }
    Ok(())
}

/// True for a relative path with only normal components (a trace path read
/// from a results file must stay inside its folder).
pub(crate) fn plain_relative(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn open_store(store: Option<&Path>) -> Result<Store, u8> {
    let path = store.unwrap_or(Path::new(assay_store::DEFAULT_STORE));
    Store::open_existing(path).map_err(|e| fail(e, 2))
}

/// True when `path` is a SQLite file (a run store), by its header.
pub(crate) fn is_store_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

/// `assay runs [--store FILE] [--json]`.
pub(crate) fn cmd_runs(store: Option<&Path>, json: bool) -> u8 {
    let store = match open_store(store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runs = match store.runs() {
        Ok(r) => r,
        Err(e) => return fail(e, 2),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).expect("runs serialise")
        );
        return 0;
    }
    if runs.is_empty() {
        println!("no runs in {}", store.path().display());
        return 0;
    }
    println!(
        "{:<36} {:<20} {:<11} {:>17} {:<6} {:>6} agents",
        "name", "created", "state", "episodes", "result", "seed"
    );
    for r in &runs {
        println!(
            "{:<36} {:<20} {:<11} {:>17} {:<6} {:>6} {}",
            r.name,
            r.created,
            match r.state {
                RunState::Complete => "complete",
                RunState::Interrupted => "interrupted",
                RunState::Running => "unfinished",
            },
            format!("{}/{}", r.stored, r.planned),
            match r.passed {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            },
            r.identity.seed,
            r.identity.agents.join(",")
        );
    }
    println!("{} run(s) in {}", runs.len(), store.path().display());
    0
}

/// `assay export RUN --out DIR [--store FILE] [--force]`.
pub(crate) fn cmd_export(run: &str, store: Option<&Path>, out: &Path, force: bool) -> u8 {
    let store = match open_store(store) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let row = match store.run(run) {
        Ok(r) => r,
        Err(e) => return fail(e, 2),
    };
    let inside = |p: &Path| std::fs::canonicalize(p).ok();
    if let (Some(dir), Some(db)) = (inside(out), inside(store.path()))
        && db.starts_with(&dir)
    {
        return fail(
            format!(
                "{} holds the store {}; export into another folder",
                out.display(),
                store.path().display()
            ),
            2,
        );
    }
    if let Err(e) = assay_run::prepare_out(out, force) {
        return fail(e, 2);
    }
    match assay_run::export(&store, &row, out) {
        Ok(r) => {
            println!(
                "exported run `{}`: {} episode(s) to {}",
                row.name,
                r.episodes.len(),
                out.join("results.json").display()
            );
            0
        }
        Err(e) => fail(e, 2),
    }
}

/// `assay diff BASE HEAD [--store FILE] [--json]`: exit 1 when HEAD has
/// regressions against BASE.
pub(crate) fn cmd_diff(base: &str, head: &str, store: Option<&Path>, json: bool) -> u8 {
    let (a, b) = match (RunSource::open(base, store), RunSource::open(head, store)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let (ra, rb) = match (a.results(), b.results()) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    let d = assay_report::diff_runs(&ra, &rb);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).expect("diffs serialise")
        );
    } else {
        println!("{} → {}", a.label(), b.label());
        print!("{}", assay_report::render_diff(&d));
    }
    let n = d.regressions();
    if n > 0 {
        eprintln!("{n} regression(s) against {}", a.label());
        1
    } else {
        0
    }
}

/// Output formats of `assay report`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    /// One self-contained page: summary, charts with intervals, failing
    /// episodes with a trace viewer, filters, and a diff view with --base.
    Html,
    /// JUnit XML: one test case per spec × case × agent.
    Junit,
    /// SARIF 2.1.0: one result per violation, at the rule's line in the spec.
    Sarif,
    /// OpenTelemetry GenAI spans as OTLP JSON, one trace per episode.
    Otel,
    /// The results file (`results.json`), episodes included.
    Json,
}

/// `assay report RUN --format F --out FILE [--base RUN] [--store FILE]`.
pub(crate) fn cmd_report(
    run: &str,
    format: ReportFormat,
    out: &Path,
    base: Option<&str>,
    store: Option<&Path>,
) -> u8 {
    if base.is_some() && !matches!(format, ReportFormat::Html) {
        return fail("--base only applies to --format html", 2);
    }
    let src = match RunSource::open(run, store) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let results = match src.results() {
        Ok(r) => r,
        Err(c) => return c,
    };
    let traces = |e: &EpisodeResult| src.events(e);
    let text = match format {
        ReportFormat::Html => {
            let base = match base.map(|b| RunSource::open(b, store).and_then(|s| s.results())) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(c)) => return c,
            };
            Ok(assay_report::html(&results, &traces, base.as_ref()))
        }
        ReportFormat::Junit => assay_report::junit(&results).map_err(|e| e.to_string()),
        ReportFormat::Sarif => {
            let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            assay_report::sarif(&results, &here).map_err(|e| e.to_string())
        }
        ReportFormat::Otel => assay_report::otel(&results, &traces).map_err(|e| e.to_string()),
        ReportFormat::Json => {
            let mut t = serde_json::to_string_pretty(&results).expect("results serialise");
            t.push('\n');
            Ok(t)
        }
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot render the report: {e}"), 2),
    };
    if let Err(e) = assay_run::write_atomic(out, text.as_bytes()) {
        return fail(e, 2);
    }
    println!(
        "{:?} report of {} ({} episode(s)) written to {}",
        format,
        src.label(),
        results.episodes.len(),
        out.display()
    );
    0
}
