//! SARIF 2.1.0: the run's findings as static-analysis results, so GitHub code
//! scanning (and any SARIF viewer) shows each violation at the spec line that
//! declares the rule it broke.
//!
//! - `tool.driver` is assay with its version; its `rules` are the forbidden
//!   rules and threat success rules that fired in the run, each described by
//!   the rule's `description` (or the threat's `goal`) from the spec.
//! - One result per violation per episode, level `error`, located at the spec
//!   file and the line where the rule is declared (read with the spec loader's
//!   position-keeping YAML parser). A threat that succeeded without any
//!   forbidden rule firing is a result too, located at the threat.
//! - Rule ids are qualified by the spec (`SPEC/RULE` for a forbidden rule,
//!   `SPEC/threat/THREAT` for a threat success rule): two specs may reuse a
//!   rule id with different meanings, and a code-scanning rule must mean one
//!   thing.
//! - Each result carries a `partialFingerprints` entry, a hash of spec, case,
//!   agent and rule, so code scanning recognises the same finding across runs
//!   (the epochs of a case are one alert).
//! - Errored and inconclusive episodes are not findings: they are
//!   `toolExecutionNotifications` of the invocation, and make
//!   `executionSuccessful` false.
//!
//! URIs are made relative to `base` (normally the repository root) when the
//! spec file lies under it, as code scanning requires; otherwise they are
//! absolute `file://` URIs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_sarif::sarif::{
    ArtifactLocation, Invocation, Location, Message, MultiformatMessageString, Notification,
    PhysicalLocation, PropertyBag, Region, ReportingDescriptor, Result as SarifResult, ResultKind,
    ResultLevel, Run, Sarif, Tool, ToolComponent,
};
use sha2::{Digest, Sha256};

use crate::results::{EpisodeResult, RunResults, SpecRef, Status};

/// The schema URI written into the log's `$schema`.
const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// Name of the partial fingerprint assay writes.
const FINGERPRINT_KEY: &str = "assayFinding/v1";

/// Why a SARIF log could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SarifError {
    /// JSON serialisation failed.
    #[error("cannot write SARIF JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Renders a run as a SARIF 2.1.0 log (see the module docs). Spec files are
/// read (relative paths from the current directory) to find the lines of
/// rules; spec URIs are made relative to `base`.
pub fn sarif(run: &RunResults, base: &Path) -> Result<String, SarifError> {
    let mut specs: BTreeMap<&str, SpecSource> = BTreeMap::new();
    for s in &run.specs {
        specs.insert(&s.id, SpecSource::load(s, base));
    }

    let mut rules: Vec<ReportingDescriptor> = Vec::new();
    let mut rule_index: BTreeMap<String, usize> = BTreeMap::new();
    let mut results: Vec<SarifResult> = Vec::new();
    let mut notifications: Vec<Notification> = Vec::new();

    for e in &run.episodes {
        let source = specs.get(e.spec.as_str());
        match e.status {
            Status::Error | Status::Inconclusive => {
                notifications.push(notification(e, source));
                continue;
            }
            Status::Ok => {}
        }
        for v in &e.violations {
            let id = format!("{}/{}", e.spec, v.rule);
            let index = *rule_index.entry(id.clone()).or_insert_with(|| {
                let text = v
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Forbidden rule `{}` fired", v.rule));
                rules.push(descriptor(&id, &v.rule, &text, "forbidden"));
                rules.len() - 1
            });
            let text = format!(
                "Forbidden rule `{}` fired in case `{}` for agent `{}` (epoch {}, seed {}): {} (trace events {}; trace {})",
                v.rule,
                e.case,
                e.agent,
                e.epoch,
                e.seed,
                v.explanation,
                list(&v.events),
                e.trace
            );
            let line = source.and_then(|s| s.line("/forbidden", &v.rule));
            results.push(result(
                e,
                &id,
                index,
                &v.rule,
                text,
                source,
                line,
                level_of(v.severity),
            ));
        }
        if e.attack_success == Some(true) && e.violations.is_empty() {
            let threat = e.threat.as_deref().unwrap_or("unknown-threat");
            let id = format!("{}/threat/{threat}", e.spec);
            let index = *rule_index.entry(id.clone()).or_insert_with(|| {
                let goal = source
                    .and_then(|s| s.field("/threats", threat, "goal"))
                    .unwrap_or_else(|| format!("Threat `{threat}` must not reach its goal"));
                rules.push(descriptor(
                    &id,
                    threat,
                    &format!("Attack goal reached: {goal}"),
                    "threat",
                ));
                rules.len() - 1
            });
            let text = format!(
                "Threat `{threat}` reached its goal in case `{}` for agent `{}` (epoch {}, seed {}) with no forbidden rule firing (trace events {}; trace {})",
                e.case,
                e.agent,
                e.epoch,
                e.seed,
                list(&e.attack_events),
                e.trace
            );
            let line = source.and_then(|s| s.line("/threats", threat));
            let rule = format!("threat/{threat}");
            results.push(result(
                e,
                &id,
                index,
                &rule,
                text,
                source,
                line,
                ResultLevel::Error,
            ));
        }
    }

    let mut driver_props = BTreeMap::new();
    driver_props.insert("seed".to_string(), Value::from(run.seed.to_string()));
    driver_props.insert("passed".to_string(), Value::from(run.passed));
    driver_props.insert("incomplete".to_string(), Value::from(run.incomplete));
    let invocation = Invocation::builder()
        .execution_successful(notifications.is_empty() && !run.incomplete)
        .tool_execution_notifications(notifications)
        .build();
    let driver = ToolComponent::builder()
        .name("assay")
        .version(run.assay_version.clone())
        .semantic_version(run.assay_version.clone())
        .rules(rules)
        .build();
    let run_out = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .invocations(vec![invocation])
        .results(results)
        .properties(
            PropertyBag::builder()
                .additional_properties(driver_props)
                .build(),
        )
        .build();
    let log = Sarif::builder()
        .version(Value::from("2.1.0"))
        .schema(SCHEMA_URI)
        .runs(vec![run_out])
        .build();
    Ok(serde_json::to_string_pretty(&log)?)
}

fn list(events: &[u64]) -> String {
    if events.is_empty() {
        return "none cited".into();
    }
    events
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn descriptor(id: &str, name: &str, text: &str, kind: &str) -> ReportingDescriptor {
    let mut props = BTreeMap::new();
    props.insert("kind".to_string(), Value::from(kind));
    ReportingDescriptor::builder()
        .id(id)
        .name(name)
        .short_description(MultiformatMessageString::builder().text(text).build())
        .properties(
            PropertyBag::builder()
                .tags(vec!["security".to_string(), kind.to_string()])
                .additional_properties(props)
                .build(),
        )
        .build()
}

/// Stable across runs: the same spec, case, agent and rule give the same hash.
fn fingerprint(e: &EpisodeResult, rule: &str) -> String {
    let mut h = Sha256::new();
    for part in [&e.spec, &e.case, &e.agent, rule] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn location(source: Option<&SpecSource>, line: Option<usize>) -> Option<Location> {
    let source = source?;
    let artifact = ArtifactLocation::builder().uri(source.uri.clone()).build();
    let physical = match line {
        Some(l) => PhysicalLocation::builder()
            .artifact_location(artifact)
            .region(Region::builder().start_line(l as i64).build())
            .build(),
        None => PhysicalLocation::builder()
            .artifact_location(artifact)
            .build(),
    };
    Some(Location::builder().physical_location(physical).build())
}

/// SARIF level of a violation: critical and high are errors, medium a
/// warning, low a note.
fn level_of(s: assay_spec::Severity) -> ResultLevel {
    match s {
        assay_spec::Severity::Critical | assay_spec::Severity::High => ResultLevel::Error,
        assay_spec::Severity::Medium => ResultLevel::Warning,
        assay_spec::Severity::Low => ResultLevel::Note,
    }
}

#[allow(clippy::too_many_arguments)]
fn result(
    e: &EpisodeResult,
    id: &str,
    index: usize,
    rule: &str,
    text: String,
    source: Option<&SpecSource>,
    line: Option<usize>,
    level: ResultLevel,
) -> SarifResult {
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(FINGERPRINT_KEY.to_string(), fingerprint(e, rule));
    let mut props = BTreeMap::new();
    for (k, v) in [
        ("episode", &e.episode),
        ("spec", &e.spec),
        ("case", &e.case),
        ("agent", &e.agent),
        ("trace", &e.trace),
    ] {
        props.insert(k.to_string(), Value::from(v.as_str()));
    }
    props.insert("epoch".to_string(), Value::from(e.epoch));
    let locations: Vec<Location> = location(source, line).into_iter().collect();
    SarifResult::builder()
        .rule_id(id)
        .rule_index(index as i64)
        .level(level)
        .kind(ResultKind::Fail)
        .message(Message::builder().text(text).build())
        .locations(locations)
        .partial_fingerprints(fingerprints)
        .properties(PropertyBag::builder().additional_properties(props).build())
        .build()
}

fn notification(e: &EpisodeResult, source: Option<&SpecSource>) -> Notification {
    let (level, text) = match e.status {
        Status::Error => (
            "error",
            format!(
                "Episode {} (spec `{}`, case `{}`, agent `{}`, epoch {}) errored; its verdict is void: {} (trace {})",
                e.episode,
                e.spec,
                e.case,
                e.agent,
                e.epoch,
                e.error.as_deref().unwrap_or("no reason recorded"),
                e.trace
            ),
        ),
        _ => (
            "warning",
            format!(
                "Episode {} (spec `{}`, case `{}`, agent `{}`, epoch {}) is inconclusive: the world could not model what the agent did (trace events {}; trace {})",
                e.episode,
                e.spec,
                e.case,
                e.agent,
                e.epoch,
                list(&e.unsupported),
                e.trace
            ),
        ),
    };
    let locations: Vec<Location> = location(source, None).into_iter().collect();
    Notification::builder()
        .level(Value::from(level))
        .message(Message::builder().text(text).build())
        .locations(locations)
        .build()
}

/// A spec file as SARIF sees it: its URI and, when it could be read, its
/// parsed YAML with positions.
struct SpecSource {
    uri: String,
    doc: Option<assay_spec::yaml::Located>,
}

impl SpecSource {
    fn load(spec: &SpecRef, base: &Path) -> SpecSource {
        let path = Path::new(&spec.path);
        let doc = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| assay_spec::yaml::parse(&text).ok());
        SpecSource {
            uri: uri_for(path, base),
            doc,
        }
    }

    /// Index of the item of the list at `list` (`/forbidden`, `/threats`)
    /// whose `id` is `id`.
    fn index(&self, list: &str, id: &str) -> Option<usize> {
        let items = self.doc.as_ref()?.value.pointer(list)?.as_array()?;
        items
            .iter()
            .position(|item| item.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Line where the item with `id` is declared in the list at `list`.
    fn line(&self, list: &str, id: &str) -> Option<usize> {
        let i = self.index(list, id)?;
        let doc = self.doc.as_ref()?;
        let ptr = format!("{list}/{i}/id");
        doc.positions.get(&ptr).map(|p| p.line)
    }

    /// A string field of the item with `id` in the list at `list`.
    fn field(&self, list: &str, id: &str, field: &str) -> Option<String> {
        let i = self.index(list, id)?;
        let v = self.doc.as_ref()?.value.pointer(list)?.get(i)?.get(field)?;
        v.as_str().map(str::to_string)
    }
}

/// `path` relative to `base` with `/` separators when it lies under `base`,
/// else an absolute `file://` URI (relative paths are taken from the current
/// directory).
fn uri_for(path: &Path, base: &Path) -> String {
    let absolute = |p: &Path| -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        joined.canonicalize().unwrap_or(joined)
    };
    let abs = absolute(path);
    let base = absolute(base);
    match abs.strip_prefix(&base) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => {
            let text = abs.to_string_lossy().replace('\\', "/");
            if text.starts_with('/') {
                format!("file://{text}")
            } else {
                format!("file:///{text}")
            }
        }
    }
}
