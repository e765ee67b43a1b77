//! Behavioural evidence records (`assay.evidence/v1`, docs/evidence.md) for a
//! run: `evidence/run.json` for the whole run and `evidence/spec-NAME.json`
//! per spec, so the assurance layer can weigh what a run showed the same way
//! it weighs mechanistic records.
//!
//! A record names the exact bytes the run was computed on (spec files, cases,
//! agents file, catalog), how it was run (seed, parameters, the command), what
//! came out (per-agent rates with Wilson 95% intervals) and what a reader must
//! keep in mind. There are no timestamps: identical runs give identical bytes
//! and ids. Keys are written sorted at every level, so the id (SHA-256 of the
//! compact record with `id` empty) is the same whether a reader keeps key
//! order or sorts it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::{Agent, AgentRole};
use assay_report::{EpisodeResult, RunResults, Status, SummaryRow};
use assay_trace::{canonical_json, sha256_hex};
use serde_json::{Map, Value, json};

use crate::{PreparedCase, RunError, write_atomic};

/// Schema of every evidence record.
pub const EVIDENCE_SCHEMA: &str = "assay.evidence/v1";
/// Folder inside `--out` the records are written to.
pub const EVIDENCE_DIR: &str = "evidence";
/// File name of the run-scope record.
pub const RUN_RECORD: &str = "run.json";
/// What a run could read and observe of an agent: its outputs and its tool
/// trajectory (vocab: `query_outputs`, `tool_trajectory`; black box).
pub const RUN_ACCESS: [&str; 2] = ["query_outputs", "tool_trajectory"];

/// How an agent is described in a record: its name in results, whether it is
/// a subject or an instrument, its adapter kind and model.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInfo {
    /// Name in results.
    pub name: String,
    /// Subject (gates apply) or control (an instrument).
    pub role: AgentRole,
    /// Adapter: `control`, `openai`, `openai-responses`, `anthropic`, `exec`,
    /// `exec-jsonl`, or `other` when it cannot be told.
    pub kind: String,
    /// The model name, for model agents.
    pub model: Option<String>,
}

impl AgentInfo {
    /// Describes an agent from its name (`openai:gpt-4o` is kind `openai`,
    /// model `gpt-4o`), for agents named on the command line. Agents of an
    /// agents file have free names; the caller describes those from their
    /// entry instead.
    pub fn from_agent(agent: &dyn Agent) -> AgentInfo {
        let name = agent.name().to_string();
        let role = agent.role();
        let (kind, model) = match name.split_once(':') {
            Some((k @ ("openai" | "openai-responses" | "anthropic"), m)) => {
                (k.to_string(), Some(m.to_string()))
            }
            Some((k @ ("exec" | "exec-jsonl"), _)) => (k.to_string(), None),
            _ if role == AgentRole::Control => ("control".to_string(), None),
            _ => ("other".to_string(), None),
        };
        AgentInfo {
            name,
            role,
            kind,
            model,
        }
    }
}

/// The attack catalog cases were synthesised from.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRef {
    /// Where it came from: `embedded` or the `--catalog` directory.
    pub source: String,
    /// A version label when there is one (the tool version for the embedded catalog).
    pub version: Option<String>,
    /// Number of techniques.
    pub techniques: usize,
    /// SHA-256 over the techniques' canonical JSON, sorted by id.
    pub digest: String,
}

/// What only the caller knows about a run: its command line and inputs
/// beyond the cases. With it, [`crate::run_with`] writes evidence records.
#[derive(Debug, Clone, Default)]
pub struct EvidenceContext {
    /// The command line as run (argv[0] is replaced by `assay` in the record).
    /// Empty: the record says it has no reproduction recipe.
    pub argv: Vec<String>,
    /// Descriptions of agents whose names do not tell their kind (agents-file
    /// entries); other agents are described by [`AgentInfo::from_agent`].
    pub agents: Vec<AgentInfo>,
    /// The agents file the agents came from.
    pub agents_file: Option<PathBuf>,
    /// The catalog cases were synthesised from, when specs were expanded.
    pub catalog: Option<CatalogRef>,
    /// Run parameters that shape the results beyond seed and epochs
    /// (`per_threat`, `techniques`, `strict`, `include_invalid`, `replay`, ...).
    pub parameters: Map<String, Value>,
}

/// One file an input digest was taken of.
#[derive(Debug, Clone)]
struct FileRef {
    path: String,
    sha256: String,
    bytes: u64,
}

impl FileRef {
    fn read(path: &Path) -> Result<FileRef, RunError> {
        let bytes = std::fs::read(path).map_err(|e| RunError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(FileRef {
            path: path.display().to_string(),
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        })
    }

    fn json(&self) -> Value {
        json!({"path": self.path, "sha256": self.sha256, "bytes": self.bytes})
    }
}

/// Inputs hashed before the run starts, so the records name the bytes that ran.
pub(crate) struct Inputs {
    sources: BTreeMap<PathBuf, FileRef>,
    agents_file: Option<FileRef>,
}

impl Inputs {
    /// Hashes every case source file and the agents file; an unreadable one
    /// is an error naming it (a record cannot name bytes it could not read).
    pub(crate) fn gather(
        cases: &[Arc<PreparedCase>],
        ctx: &EvidenceContext,
    ) -> Result<Inputs, RunError> {
        let mut sources = BTreeMap::new();
        for c in cases {
            if !sources.contains_key(&c.source) {
                sources.insert(c.source.clone(), FileRef::read(&c.source)?);
            }
        }
        let agents_file = ctx.agents_file.as_deref().map(FileRef::read).transpose()?;
        Ok(Inputs {
            sources,
            agents_file,
        })
    }
}

/// `k` of `n` with its rate and Wilson 95% interval; rate and interval are
/// null when nothing was measured (`n` = 0), never a made-up 0.
pub fn proportion(k: usize, n: usize) -> Value {
    if n == 0 {
        return json!({"k": 0, "n": 0, "rate": null, "ci95": null});
    }
    let (lo, hi) = wilson(k, n);
    json!({"k": k, "n": n, "rate": k as f64 / n as f64, "ci95": [lo, hi]})
}

pub use assay_report::wilson;

/// Per-agent metrics over `episodes` (already restricted to one scope):
/// counts, attack success, delivery, violations, utility, and whether every
/// summary row of the agent in the scope passed.
pub fn agent_results(
    agents: &[String],
    episodes: &[EpisodeResult],
    summary: &[SummaryRow],
    incomplete: bool,
) -> Value {
    let mut out = Map::new();
    for agent in agents {
        let eps: Vec<&EpisodeResult> = episodes.iter().filter(|e| &e.agent == agent).collect();
        let ok: Vec<&EpisodeResult> = eps
            .iter()
            .copied()
            .filter(|e| e.status == Status::Ok)
            .collect();
        let count = |s: Status| eps.iter().filter(|e| e.status == s).count();
        let attacked: Vec<&EpisodeResult> =
            ok.iter().copied().filter(|e| e.threat.is_some()).collect();
        let benign: Vec<&EpisodeResult> =
            ok.iter().copied().filter(|e| e.threat.is_none()).collect();
        let delivered: Vec<&EpisodeResult> = attacked
            .iter()
            .copied()
            .filter(|e| !e.delivered.is_empty())
            .collect();
        let success = |set: &[&EpisodeResult]| {
            set.iter()
                .filter(|e| e.attack_success == Some(true))
                .count()
        };
        let violated =
            |set: &[&EpisodeResult]| set.iter().filter(|e| !e.violations.is_empty()).count();
        let utility = if ok.is_empty() {
            Value::Null
        } else {
            json!(ok.iter().map(|e| e.utility).sum::<f64>() / ok.len() as f64)
        };
        let rows: Vec<&SummaryRow> = summary.iter().filter(|r| &r.agent == agent).collect();
        let passed = !incomplete && !rows.is_empty() && rows.iter().all(|r| r.passed());
        out.insert(
            agent.clone(),
            json!({
                "episodes": eps.len(),
                "errors": count(Status::Error),
                "inconclusive": count(Status::Inconclusive),
                "attack_episodes": eps.iter().filter(|e| e.threat.is_some()).count(),
                "attack_success": proportion(success(&attacked), attacked.len()),
                "delivered": proportion(delivered.len(), attacked.len()),
                "attack_success_when_delivered": proportion(success(&delivered), delivered.len()),
                "violations": proportion(violated(&ok), ok.len()),
                "benign_violations": proportion(violated(&benign), benign.len()),
                "utility": {"mean": utility, "n": ok.len()},
                "passed": passed,
            }),
        );
    }
    Value::Object(out)
}

/// The `results` of a record of `scope` (`None`: the whole run; `Some(spec)`:
/// that spec), computed from a results file alone, so `assay verify` can
/// recompute it.
pub fn scope_results(run: &RunResults, spec: Option<&str>) -> Value {
    let in_scope = |s: &str| spec.is_none_or(|x| x == s);
    let episodes: Vec<EpisodeResult> = run
        .episodes
        .iter()
        .filter(|e| in_scope(&e.spec))
        .cloned()
        .collect();
    let summary: Vec<SummaryRow> = run
        .summary
        .iter()
        .filter(|r| in_scope(&r.spec))
        .cloned()
        .collect();
    agent_results(&run.agents, &episodes, &summary, run.incomplete)
}

/// `value` with object keys sorted at every level (the order the file is
/// written in, whatever map type a reader uses).
fn sorted(value: &Value) -> Value {
    serde_json::from_str(&canonical_json(value)).expect("canonical JSON parses")
}

/// The record's id: `sha256:` + SHA-256 of its compact serialisation with `id` empty.
pub fn record_id(record: &Value) -> String {
    let mut blank = sorted(record);
    if let Some(o) = blank.as_object_mut() {
        o.insert("id".into(), Value::String(String::new()));
    }
    let body = serde_json::to_vec(&blank).expect("records serialise");
    format!("sha256:{}", sha256_hex(&body))
}

/// Fills in the id and returns the file text (pretty, keys sorted, newline-terminated).
fn finish(record: Value) -> (String, String) {
    let mut rec = sorted(&record);
    let id = record_id(&rec);
    if let Some(o) = rec.as_object_mut() {
        o.insert("id".into(), Value::String(id.clone()));
    }
    let mut text = serde_json::to_string_pretty(&rec).expect("records serialise");
    text.push('\n');
    (id, text)
}

/// The file name of a spec's record: `spec-NAME.json`, NAME the spec id when
/// it is made of `[A-Za-z0-9._@+-]` (at most 64 bytes, no leading dot);
/// otherwise its sanitised form plus 10 hex digits of its SHA-256, so two
/// specs never share a file.
pub fn spec_record_name(spec: &str) -> String {
    let clean = crate::out::part(spec, 64);
    if clean == spec {
        format!("spec-{clean}.json")
    } else {
        let h = sha256_hex(spec.as_bytes());
        format!("spec-{clean}-{}.json", &h[..10])
    }
}

/// Adds an explicit `--seed N` when the command line has none, so the
/// recipe does not depend on a default.
fn reproduction_command(argv: &[String], seed: u64) -> Vec<String> {
    let mut cmd: Vec<String> = argv.to_vec();
    if let Some(first) = cmd.first_mut() {
        *first = "assay".into();
    }
    let has_seed = cmd
        .iter()
        .skip(1)
        .any(|a| a == "--seed" || a.starts_with("--seed="));
    if !has_seed {
        cmd.push("--seed".into());
        cmd.push(seed.to_string());
    }
    cmd
}

/// SHA-256 over the sorted `case_id sha256(case document)` lines.
fn cases_digest(cases: &[&Arc<PreparedCase>]) -> String {
    let mut lines: Vec<String> = cases
        .iter()
        .map(|c| {
            format!(
                "{} {}\n",
                c.case.id,
                sha256_hex(canonical_json(&c.doc).as_bytes())
            )
        })
        .collect();
    lines.sort();
    sha256_hex(lines.concat().as_bytes())
}

/// Everything a record of one scope is built from.
struct Scope<'a> {
    spec: Option<&'a str>,
    cases: Vec<&'a Arc<PreparedCase>>,
}

/// Writes `OUT/evidence/spec-*.json` and `OUT/evidence/run.json` for a run
/// whose `results.json` is already written, atomically. Returns the paths written.
pub(crate) fn write_records(
    out: &Path,
    run: &RunResults,
    cases: &[Arc<PreparedCase>],
    agents: &[Arc<dyn Agent>],
    cfg: &crate::RunConfig,
    inputs: &Inputs,
    ctx: &EvidenceContext,
) -> Result<Vec<PathBuf>, RunError> {
    let results_path = out.join("results.json");
    let results = FileRef::read(&results_path)?;
    let dir = out.join(EVIDENCE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Io {
        path: dir.clone(),
        source: e,
    })?;
    let infos: Vec<AgentInfo> = agents
        .iter()
        .map(|a| {
            ctx.agents
                .iter()
                .find(|i| i.name == a.name())
                .cloned()
                .unwrap_or_else(|| AgentInfo::from_agent(a.as_ref()))
        })
        .collect();
    let specs: BTreeSet<&str> = cases.iter().map(|c| c.spec_id()).collect();
    let mut written = Vec::new();
    let mut parts = Vec::new();
    for spec in &specs {
        let scope = Scope {
            spec: Some(*spec),
            cases: cases.iter().filter(|c| c.spec_id() == *spec).collect(),
        };
        let record = build(run, &scope, &infos, cfg, inputs, ctx, &results, None);
        let (id, text) = finish(record);
        let path = dir.join(spec_record_name(spec));
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
        parts.push(id);
    }
    let scope = Scope {
        spec: None,
        cases: cases.iter().collect(),
    };
    let record = build(run, &scope, &infos, cfg, inputs, ctx, &results, Some(parts));
    let (_, text) = finish(record);
    let path = dir.join(RUN_RECORD);
    write_atomic(&path, text.as_bytes())?;
    written.push(path);
    Ok(written)
}

#[allow(clippy::too_many_arguments)]
fn build(
    run: &RunResults,
    scope: &Scope<'_>,
    infos: &[AgentInfo],
    cfg: &crate::RunConfig,
    inputs: &Inputs,
    ctx: &EvidenceContext,
    results: &FileRef,
    parts: Option<Vec<String>>,
) -> Value {
    let in_scope = |s: &str| scope.spec.is_none_or(|x| x == s);
    let attack = scope
        .cases
        .iter()
        .filter(|c| c.case.provenance.threat.is_some())
        .count();
    let benign = scope.cases.len() - attack;
    let class = if attack > 0 {
        "red_team"
    } else {
        "trajectory_eval"
    };
    // One data entry per source file, with the cases it gave.
    let mut rows: BTreeMap<&PathBuf, usize> = BTreeMap::new();
    for c in &scope.cases {
        *rows.entry(&c.source).or_default() += 1;
    }
    let data: Vec<Value> = rows
        .iter()
        .filter_map(|(p, n)| {
            inputs
                .sources
                .get(*p)
                .map(|f| json!({"role": "spec", "file": f.json(), "rows": n}))
        })
        .collect();
    let skipped = run.skipped.iter().filter(|s| in_scope(&s.spec)).count();

    let mut parameters = ctx.parameters.clone();
    parameters.insert("epochs".into(), json!(cfg.epochs));
    parameters.insert(
        "judge".into(),
        json!(cfg.judge.as_ref().map(|j| j.agent.name().to_string())),
    );
    if let Some(j) = &cfg.judge {
        parameters.insert("judge_runs".into(), json!(j.runs));
    }

    let caveats = caveats(run, scope, infos, ctx, skipped);
    let reproduction = if ctx.argv.is_empty() {
        Value::Null
    } else {
        json!({
            "command": reproduction_command(&ctx.argv, cfg.seed),
            "tool": {"name": "assay", "version": env!("CARGO_PKG_VERSION")},
            "seed": cfg.seed,
            "note": "run from the directory the relative paths are relative to; \
                     model agents answer differently from run to run unless replayed (--replay)",
        })
    };
    let mut record = json!({
        "schema_version": EVIDENCE_SCHEMA,
        "id": "",
        "scope": if scope.spec.is_some() { "spec" } else { "run" },
        "evidence_class": class,
        "access": RUN_ACCESS,
        "access_level": "black_box",
        "claim": null,
        "tool": {"name": "assay", "version": env!("CARGO_PKG_VERSION")},
        "model": null,
        "agents": infos.iter().map(|i| json!({
            "name": i.name,
            "role": match i.role { AgentRole::Control => "control", AgentRole::Subject => "subject" },
            "kind": i.kind,
            "model": i.model,
        })).collect::<Vec<_>>(),
        "agents_file": inputs.agents_file.as_ref().map(FileRef::json),
        "data": data,
        "cases": {
            "count": scope.cases.len(),
            "attack": attack,
            "benign": benign,
            "skipped": skipped,
            "digest": cases_digest(&scope.cases),
        },
        "catalog": ctx.catalog.as_ref().map(|c| json!({
            "source": c.source,
            "version": c.version,
            "techniques": c.techniques,
            "digest": c.digest,
        })),
        "seed": cfg.seed,
        "parameters": Value::Object(parameters),
        "results": scope_results(run, scope.spec),
        "artifacts": [{"path": "results.json", "sha256": results.sha256, "bytes": results.bytes}],
        "caveats": caveats,
        "reproduction": reproduction,
    });
    let o = record.as_object_mut().expect("an object");
    match (scope.spec, parts) {
        (Some(spec), _) => {
            o.insert("spec".into(), json!(spec));
        }
        (None, Some(parts)) => {
            o.insert("parts".into(), json!(parts));
        }
        (None, None) => {}
    }
    record
}

/// What a reader must keep in mind about a scope of a run.
fn caveats(
    run: &RunResults,
    scope: &Scope<'_>,
    infos: &[AgentInfo],
    ctx: &EvidenceContext,
    skipped: usize,
) -> Vec<String> {
    let in_scope = |s: &str| scope.spec.is_none_or(|x| x == s);
    let episodes: Vec<&EpisodeResult> = run.episodes.iter().filter(|e| in_scope(&e.spec)).collect();
    let mut out = Vec::new();
    let controls: Vec<&str> = infos
        .iter()
        .filter(|i| i.role == AgentRole::Control)
        .map(|i| i.name.as_str())
        .collect();
    if !infos.is_empty() && controls.len() == infos.len() {
        out.push(
            "control agents only: instruments, not subjects; the results check the spec, not an agent"
                .to_string(),
        );
    } else if !controls.is_empty() {
        out.push(format!(
            "{} are control agents: instruments, not subjects",
            controls.join(", ")
        ));
    }
    if run.incomplete {
        out.push(format!(
            "run incomplete: it was interrupted and only the {} episode(s) that completed are counted; nothing here passed",
            episodes.len()
        ));
    }
    let errors = episodes
        .iter()
        .filter(|e| e.status == Status::Error)
        .count();
    let inconclusive = episodes
        .iter()
        .filter(|e| e.status == Status::Inconclusive)
        .count();
    if errors + inconclusive > 0 {
        out.push(format!(
            "{errors} episode(s) errored and {inconclusive} were inconclusive: their verdicts are not evidence, and the rates count only the other episodes"
        ));
    }
    if skipped > 0 {
        out.push(format!(
            "{skipped} case(s) failed case QA and did not run (see `skipped` in results.json)"
        ));
    }
    for i in infos.iter().filter(|i| i.role == AgentRole::Subject) {
        let attacked: Vec<&&EpisodeResult> = episodes
            .iter()
            .filter(|e| e.agent == i.name && e.status == Status::Ok && e.threat.is_some())
            .collect();
        if !attacked.is_empty() && attacked.iter().all(|e| e.delivered.is_empty()) {
            out.push(format!(
                "{}: no payload reached the agent in its {} attacked episode(s), so its attack success says nothing about robustness",
                i.name,
                attacked.len()
            ));
        }
    }
    for c in run.coverage.iter().filter(|c| in_scope(&c.spec)) {
        if !c.full() {
            out.push(format!(
                "spec {}: {} rule(s) fired in no control episode, so nothing shows they can fire",
                c.spec,
                c.uncovered.len()
            ));
        }
    }
    if episodes.iter().any(|e| !e.judge.is_empty()) {
        out.push("LLM-judge answers are in results.json and are not part of these metrics".into());
    }
    if ctx.argv.is_empty() {
        out.push("no reproduction recipe: the run was started without a command line".into());
    }
    if infos
        .iter()
        .any(|i| i.role == AgentRole::Subject && i.model.is_some())
    {
        out.push(
            "model agents are not deterministic: a re-run reproduces the conditions, not necessarily the numbers"
                .into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportion_is_null_when_nothing_was_measured() {
        assert_eq!(proportion(0, 0)["rate"], Value::Null);
    }

    #[test]
    fn spec_record_names_are_plain_and_distinct() {
        assert_eq!(
            spec_record_name("support-refund"),
            "spec-support-refund.json"
        );
        let a = spec_record_name("a b");
        let b = spec_record_name("a/b");
        assert_ne!(a, b);
        assert!(crate::out::is_plain_name(&a) && crate::out::is_plain_name(&b));
        let dots = spec_record_name("..");
        assert!(
            crate::out::is_plain_name(&dots) && !dots.starts_with("spec-.."),
            "{dots}"
        );
    }

    #[test]
    fn seed_is_made_explicit() {
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            reproduction_command(&argv(&["/usr/bin/assay", "run", "x"]), 7),
            argv(&["assay", "run", "x", "--seed", "7"])
        );
        assert_eq!(
            reproduction_command(&argv(&["assay", "run", "x", "--seed=3"]), 3),
            argv(&["assay", "run", "x", "--seed=3"])
        );
    }

    #[test]
    fn ids_do_not_depend_on_key_order() {
        let a = json!({"schema_version": EVIDENCE_SCHEMA, "id": "", "b": 1, "a": {"y": 1, "x": 2}});
        let b =
            json!({"a": {"x": 2, "y": 1}, "b": 1, "id": "x", "schema_version": EVIDENCE_SCHEMA});
        assert_eq!(record_id(&a), record_id(&b));
    }
}
