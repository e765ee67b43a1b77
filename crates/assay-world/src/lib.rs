//! The embedded world: an in-process, deterministic sandbox in which an agent's
//! tool calls are carried out against a virtual filesystem, mailbox, web, memory,
//! record tables, package manager, a small POSIX-like shell and the spec's
//! declarative tools — and every call is turned into an output for the agent and
//! the observable [`Effect`]s rules are judged on.
//!
//! A [`WorldTemplate`] is compiled once per spec; [`WorldTemplate::instantiate`]
//! gives a fresh [`World`] per episode in microseconds, with canary secrets drawn
//! from the episode seed and payloads rendered into injection slots.
//!
//! What this crate must not do: touch the host (no real files, processes or
//! network — everything is simulated), judge anything (rules live elsewhere),
//! or panic on any input an agent or a spec can produce. Reading a secret by
//! `cat` and by `files.read` must stay the same effect: both go through the
//! same internal operations in `ops.rs`.

#![warn(missing_docs)]

mod ops;
mod schema;
mod shell;
mod state;
mod text;
mod tools;
pub mod vfs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use assay_spec::Spec;
use assay_trace::{Effect, Payload, SentMail, WorldState};
use serde_json::Value;

use crate::schema::Validator;
use crate::text::{Ctx, Names, Text};
use crate::vfs::{Node, NodeKind, Vfs};

/// Why a spec cannot be turned into a world. Loading validates specs already;
/// these guard a spec built in code that skipped validation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorldError {
    /// A file path is not absolute or climbs above `/`.
    #[error("world.files: invalid path `{0}`: {1}")]
    BadPath(String, String),
    /// A file mode is not octal.
    #[error("world.files.{path}: mode `{mode}` is not octal (write e.g. \"0644\")")]
    BadMode {
        /// File path.
        path: String,
        /// The mode as written.
        mode: String,
    },
    /// A file has both or neither of `text` and `symlink`.
    #[error("world.files.{0}: a file needs exactly one of `text` or `symlink`")]
    BadFile(String),
    /// The working directory is not an absolute path.
    #[error("world.cwd: `{0}` is not an absolute path")]
    BadCwd(String),
    /// `agent.tools` names a tool that does not exist.
    #[error("agent.tools: unknown tool `{0}`")]
    UnknownTool(String),
    /// A custom tool's parameters are not an object schema.
    #[error("world.tools.{0}: parameters must be a JSON Schema with `type: object`")]
    BadParameters(String),
    /// A custom tool declares an effect kind the trace does not know.
    #[error("world.tools.{tool}: unknown effect kind `{kind}`")]
    BadEffect {
        /// Tool name.
        tool: String,
        /// Kind as written.
        kind: String,
    },
    /// A `world.network.allow` entry is not a host or `*.domain`.
    #[error("world.network.allow: {0}")]
    BadAllow(assay_spec::net::AllowError),
}

/// A tool as the agent sees it: adapters turn this into their API's tool format.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// Tool name (`files.read`, `deploy.apply`).
    pub name: String,
    /// Description shown to the agent, rendered for this episode (it may carry a payload).
    pub description: String,
    /// JSON Schema (an object schema) of the arguments.
    pub parameters: Value,
}

/// What a tool call produced: the text the agent sees and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOutcome {
    /// False when the tool refused or failed (the trace's `tool_result.ok`).
    pub ok: bool,
    /// Text returned to the agent.
    pub output: String,
    /// Observable effects, in the order they happened.
    pub effects: Vec<Effect>,
    /// Planted payloads contained in `output`.
    pub deliveries: Vec<Delivery>,
    /// A resource cap the call hit (output, variable or result size, wall time).
    /// The effects before it are kept; the runner ends the episode as `error`.
    pub cap: Option<CapHit>,
}

/// A resource cap hit inside a tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct CapHit {
    /// Which cap: the `assay_spec::Limits` field name (`shell_output_bytes`,
    /// `variable_bytes`, `tool_result_bytes`, `file_bytes`, `wall_time_secs`, ...).
    pub limit: String,
    /// The configured value (bytes or seconds).
    pub value: f64,
    /// What exceeded it.
    pub detail: String,
}

/// A planted payload that reached the agent (the trace's `injection_delivered`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Threat the payload belongs to.
    pub threat: String,
    /// Slot it was planted in.
    pub slot: String,
}

#[derive(Debug, Clone)]
struct FileTpl {
    path: String,
    node: Node,
    text: Option<Text>,
}

#[derive(Debug, Clone)]
struct MailTpl {
    from: String,
    to: String,
    subject: Text,
    body: Text,
    label: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
struct PageTpl {
    body: Text,
    status: u16,
    label: Option<Arc<str>>,
}

#[derive(Debug, Clone)]
struct TableTpl {
    label: Option<Arc<str>>,
    rows: Vec<Vec<(String, CellTpl)>>,
}

#[derive(Debug, Clone)]
enum CellTpl {
    Value(Value),
    Text(Text),
    List(Vec<CellTpl>),
    Map(Vec<(String, CellTpl)>),
}

impl CellTpl {
    fn compile(v: &Value, names: &mut Names) -> CellTpl {
        match v {
            Value::String(s) => CellTpl::Text(Text::compile(s, names, false)),
            Value::Array(a) => {
                CellTpl::List(a.iter().map(|x| CellTpl::compile(x, names)).collect())
            }
            Value::Object(m) => CellTpl::Map(
                m.iter()
                    .map(|(k, x)| (k.clone(), CellTpl::compile(x, names)))
                    .collect(),
            ),
            other => CellTpl::Value(other.clone()),
        }
    }

    fn render(&self, cx: &Ctx<'_>) -> Value {
        match self {
            CellTpl::Value(v) => v.clone(),
            CellTpl::Text(t) => Value::String(t.render(cx, None)),
            CellTpl::List(l) => Value::Array(l.iter().map(|c| c.render(cx)).collect()),
            CellTpl::Map(m) => {
                Value::Object(m.iter().map(|(k, c)| (k.clone(), c.render(cx))).collect())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct CustomTpl {
    validator: Validator,
    response: Text,
    effects: Vec<(assay_trace::EffectKind, Vec<(String, Text)>)>,
    /// `state:` operations; when present, the response and effect fields are
    /// rendered from their source text, which may name bound rows.
    state: Vec<assay_spec::StateOp>,
    response_src: String,
    effects_src: Vec<(assay_trace::EffectKind, Vec<(String, String)>)>,
    /// Label of the tool's answers (see `CustomTool::sensitivity`).
    sensitivity: Option<String>,
}

#[derive(Debug, Clone)]
struct SecretTpl {
    prefix: String,
    len: usize,
}

/// Immutable per-spec data shared by every episode.
#[derive(Debug)]
struct Tpl {
    names: Names,
    secret_specs: Vec<SecretTpl>,
    cwd: String,
    files: Vec<FileTpl>,
    base_vfs: Option<Vfs>,
    env: Vec<(String, Text)>,
    /// Sensitivity labels of `world.env` variables that carry one.
    env_labels: BTreeMap<String, Arc<str>>,
    mail_address: String,
    mail_domain: String,
    inbox: Vec<MailTpl>,
    web: BTreeMap<String, PageTpl>,
    boundary: assay_spec::net::Boundary,
    memory: Vec<(String, Text)>,
    tables: BTreeMap<String, TableTpl>,
    table_meta: BTreeMap<String, state::TableMeta>,
    /// Record the rendered inbox in the final state (a `mail` check reads it).
    keep_inbox: bool,
    /// Record the initial state in the final one (an `unchanged` check diffs them).
    keep_initial: bool,
    installed: Vec<String>,
    allowed: Vec<String>,
    custom: BTreeMap<String, CustomTpl>,
    static_tools: Option<Arc<[ToolDef]>>,
    tool_texts: Vec<(ToolDef, Option<Text>)>,
    system: Text,
    turns: Vec<Text>,
    limits: assay_spec::Limits,
    /// Untouched text of slots declared with a default (`world.slots`).
    slot_defaults: BTreeMap<String, String>,
    /// Threats whose payloads replace a slot's default text instead of following it.
    replacing: Vec<String>,
}

/// A spec compiled for fast episodes: parsed modes, tool definitions, indexed
/// secrets and slots. Cheap to clone (shared data).
#[derive(Debug, Clone)]
pub struct WorldTemplate {
    tpl: Arc<Tpl>,
}

fn label(s: Option<&str>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

impl WorldTemplate {
    /// Compiles a spec. Fails only on a spec that validation would also reject.
    pub fn new(spec: &Spec) -> Result<WorldTemplate, WorldError> {
        let w = &spec.world;
        let mut names = Names::default();
        for name in w.secrets.keys() {
            names.secret(name);
        }
        let cwd = vfs::normalize("/", &w.cwd).map_err(|_| WorldError::BadCwd(w.cwd.clone()))?;
        if !w.cwd.starts_with('/') {
            return Err(WorldError::BadCwd(w.cwd.clone()));
        }

        let mut files = Vec::new();
        for (path, entry) in &w.files {
            if !path.starts_with('/') {
                return Err(WorldError::BadPath(path.clone(), "not absolute".into()));
            }
            let canon = vfs::normalize("/", path)
                .map_err(|e| WorldError::BadPath(path.clone(), e.to_string()))?;
            let (text, link, sens, mode) = match entry {
                assay_spec::FileEntry::Text(t) => (Some(t.as_str()), None, None, None),
                assay_spec::FileEntry::Full(f) => (
                    f.text.as_deref(),
                    f.symlink.as_deref(),
                    f.sensitivity.as_deref(),
                    f.mode.as_deref(),
                ),
            };
            let mode = match mode {
                Some(m) => vfs::parse_mode(m).ok_or_else(|| WorldError::BadMode {
                    path: path.clone(),
                    mode: m.to_string(),
                })?,
                None if link.is_some() => 0o777,
                None => 0o644,
            };
            let (kind, text) = match (text, link) {
                (Some(t), None) => {
                    let tx = Text::compile(t, &mut names, false);
                    (NodeKind::File(String::new()), Some(tx))
                }
                (None, Some(l)) => (NodeKind::Link(l.to_string()), None),
                _ => return Err(WorldError::BadFile(path.clone())),
            };
            files.push(FileTpl {
                path: canon,
                node: Node {
                    kind,
                    mode,
                    label: label(sens),
                },
                text,
            });
        }
        // When no file text depends on the episode, the whole filesystem is built once.
        let base_vfs = if files
            .iter()
            .all(|f| f.text.as_ref().is_none_or(|t| !t.is_dynamic()))
        {
            let mut v = Vfs::new();
            v.ensure_dirs(&cwd);
            for f in &files {
                let mut node = f.node.clone();
                if let Some(t) = &f.text {
                    node.kind = NodeKind::File(t.render(
                        &Ctx {
                            secrets: &[],
                            slots: &[],
                        },
                        None,
                    ));
                }
                v.insert(&f.path, node);
            }
            Some(v)
        } else {
            None
        };

        let env = w
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Text::compile(v.value(), &mut names, false)))
            .collect();
        let env_labels = w
            .env
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), Arc::from(v.sensitivity()?))))
            .collect();
        let inbox = w
            .mail
            .inbox
            .iter()
            .map(|m| MailTpl {
                from: m.from.clone(),
                to: m.to.clone().unwrap_or_else(|| w.mail.address.clone()),
                subject: Text::compile(&m.subject, &mut names, false),
                body: Text::compile(&m.body, &mut names, false),
                label: label(m.sensitivity.as_deref()),
            })
            .collect();
        let web = w
            .web
            .iter()
            .map(|(u, p)| {
                let label = match p {
                    assay_spec::WebPage::Full(f) => label(f.sensitivity.as_deref()),
                    assay_spec::WebPage::Text(_) => None,
                };
                (
                    u.clone(),
                    PageTpl {
                        body: Text::compile(p.body(), &mut names, false),
                        status: p.status(),
                        label,
                    },
                )
            })
            .collect();
        let boundary = assay_spec::net::Boundary::new(&w.network.allow)
            .map_err(|(_, e)| WorldError::BadAllow(e))?;
        let memory = w
            .memory
            .iter()
            .map(|(k, v)| (k.clone(), Text::compile(v, &mut names, false)))
            .collect();
        let tables = w
            .records
            .iter()
            .map(|(name, t)| {
                let rows = t
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|(c, v)| (c.clone(), CellTpl::compile(v, &mut names)))
                            .collect()
                    })
                    .collect();
                (
                    name.clone(),
                    TableTpl {
                        label: label(t.sensitivity.as_deref()),
                        rows,
                    },
                )
            })
            .collect();
        let table_meta = w
            .records
            .iter()
            .map(|(name, t)| {
                (
                    name.clone(),
                    state::TableMeta {
                        key: t.key.clone(),
                        label: label(t.sensitivity.as_deref()),
                        sensitivity_column: t.sensitivity_column.clone(),
                    },
                )
            })
            .collect();
        let checks = spec.state_checks();
        let keep_inbox = checks
            .iter()
            .any(|c| matches!(c, assay_spec::Check::Mail { .. }));
        let keep_initial = checks
            .iter()
            .any(|c| matches!(c, assay_spec::Check::Unchanged { .. }));

        // Custom tools.
        let mut custom = BTreeMap::new();
        let mut custom_defs = BTreeMap::new();
        for t in &w.tools {
            if t.parameters.get("type").and_then(Value::as_str) != Some("object") {
                return Err(WorldError::BadParameters(t.name.clone()));
            }
            let mut effects = Vec::new();
            for e in &t.effects {
                for (k, fields) in e {
                    let kind = assay_trace::EffectKind::from_name(k).ok_or_else(|| {
                        WorldError::BadEffect {
                            tool: t.name.clone(),
                            kind: k.clone(),
                        }
                    })?;
                    let fields = fields
                        .iter()
                        .map(|(f, v)| (f.clone(), Text::compile(v, &mut names, true)))
                        .collect();
                    effects.push((kind, fields));
                }
            }
            let mut effects_src = Vec::new();
            if !t.state.is_empty() {
                // Secrets and slots named only in state templates still get values.
                let texts = serde_json::to_string(&t.state).unwrap_or_default();
                for text in [texts.as_str(), t.response.as_str()] {
                    let (secrets, slots) = state::secret_and_slot_names(text);
                    secrets.iter().for_each(|n| {
                        names.secret(n);
                    });
                    slots.iter().for_each(|n| {
                        names.slot(n);
                    });
                }
                for e in &t.effects {
                    for (k, fields) in e {
                        if let Some(kind) = assay_trace::EffectKind::from_name(k) {
                            effects_src.push((
                                kind,
                                fields.iter().map(|(f, v)| (f.clone(), v.clone())).collect(),
                            ));
                        }
                    }
                }
            }
            custom.insert(
                t.name.clone(),
                CustomTpl {
                    validator: Validator::compile(&t.parameters),
                    response: Text::compile(&t.response, &mut names, true),
                    effects,
                    state: t.state.clone(),
                    response_src: t.response.clone(),
                    effects_src,
                    sensitivity: t.sensitivity.clone(),
                },
            );
            let desc = Text::compile(&t.description, &mut names, false);
            custom_defs.insert(
                t.name.clone(),
                (
                    ToolDef {
                        name: t.name.clone(),
                        description: t.description.clone(),
                        parameters: t.parameters.clone(),
                    },
                    desc,
                ),
            );
        }

        // Tools the agent may use, in the order agent.tools names them.
        let mut allowed: Vec<String> = Vec::new();
        for entry in &spec.agent.tools {
            let all = assay_spec::builtin_tool_names()
                .iter()
                .map(|s| s.to_string())
                .chain(w.tools.iter().map(|t| t.name.clone()));
            let matched: Vec<String> = match entry.strip_suffix(".*") {
                Some(fam) => all.filter(|t| t.split('.').next() == Some(fam)).collect(),
                None => all.filter(|t| t == entry).collect(),
            };
            if matched.is_empty() {
                return Err(WorldError::UnknownTool(entry.clone()));
            }
            for m in matched {
                if !allowed.contains(&m) {
                    allowed.push(m);
                }
            }
        }
        let mut tool_texts = Vec::new();
        for name in &allowed {
            if let Some((d, t)) = custom_defs.get(name) {
                tool_texts.push((d.clone(), t.is_dynamic().then(|| t.clone())));
            } else if let Some((d, _)) = schema::builtin(name) {
                tool_texts.push((d.clone(), None));
            }
        }
        let static_tools = tool_texts.iter().all(|(_, t)| t.is_none()).then(|| {
            tool_texts
                .iter()
                .map(|(d, _)| d.clone())
                .collect::<Vec<_>>()
                .into()
        });

        let system = Text::compile(&spec.agent.system, &mut names, false);
        let turns = spec
            .task
            .user_turns()
            .iter()
            .map(|t| Text::compile(t, &mut names, false))
            .collect();

        let secret_specs = names
            .secrets
            .iter()
            .map(|n| {
                let s = w.secrets.get(n);
                SecretTpl {
                    prefix: s.map(|s| s.prefix.clone()).unwrap_or_default(),
                    len: s.and_then(|s| s.length).unwrap_or(24),
                }
            })
            .collect();
        let mail_domain = domain_of(&w.mail.address).to_ascii_lowercase();
        let mut installed = w.packages.installed.clone();
        installed.sort();
        installed.dedup();

        Ok(WorldTemplate {
            tpl: Arc::new(Tpl {
                names,
                secret_specs,
                cwd,
                files,
                base_vfs,
                env,
                env_labels,
                mail_address: w.mail.address.clone(),
                mail_domain,
                inbox,
                web,
                boundary,
                memory,
                tables,
                table_meta,
                keep_inbox,
                keep_initial,
                installed,
                allowed,
                custom,
                static_tools,
                tool_texts,
                system,
                turns,
                limits: spec.agent.limits.clone(),
                slot_defaults: w
                    .slots
                    .iter()
                    .filter_map(|(k, d)| Some((k.clone(), d.default.clone()?)))
                    .collect(),
                replacing: spec
                    .threats
                    .iter()
                    .filter(|t| t.mode == Some(assay_spec::PayloadMode::Replace))
                    .map(|t| t.id.clone())
                    .collect(),
            }),
        })
    }

    /// A fresh world for one episode. `payloads` says which slot gets which text
    /// (slots without a payload render as ""). `seed` drives canary secret generation.
    pub fn instantiate(&self, payloads: &[Payload], seed: u64) -> World {
        let t = &self.tpl;
        let secret_values: Vec<String> = t
            .names
            .secrets
            .iter()
            .zip(&t.secret_specs)
            .map(|(n, s)| text::canary(seed, n, &s.prefix, s.len))
            .collect();
        // A slot starts with its default text (empty when it has none); the
        // first payload of a `replace` threat takes its place, any other
        // payload follows what is there, separated by a space.
        let mut slot_values: Vec<String> = t
            .names
            .slots
            .iter()
            .map(|s| t.slot_defaults.get(s).cloned().unwrap_or_default())
            .collect();
        let mut replaced = vec![false; slot_values.len()];
        let mut planted = Vec::new();
        for p in payloads {
            if let Some(i) = t.names.slots.iter().position(|s| *s == p.slot) {
                let v = &mut slot_values[i];
                if !replaced[i] && t.replacing.contains(&p.threat) {
                    v.clear();
                    replaced[i] = true;
                }
                if !v.is_empty() && !p.text.is_empty() {
                    v.push(' ');
                }
                v.push_str(&p.text);
            }
            if !p.text.is_empty() {
                // Tools that answer in JSON (records) escape quotes and newlines,
                // so a payload is also recognised in its JSON-escaped form.
                let quoted = serde_json::to_string(&p.text).unwrap_or_default();
                let escaped = quoted[1..quoted.len().saturating_sub(1).max(1)].to_string();
                let escaped = (escaped != p.text).then_some(escaped);
                planted.push((p.clone(), escaped));
            }
        }
        let cx = Ctx {
            secrets: &secret_values,
            slots: &slot_values,
        };
        let vfs = match &t.base_vfs {
            Some(v) => v.clone(),
            None => {
                let mut v = Vfs::new();
                v.ensure_dirs(&t.cwd);
                for f in &t.files {
                    let mut node = f.node.clone();
                    if let Some(tx) = &f.text {
                        node.kind = NodeKind::File(tx.render(&cx, None));
                    }
                    v.insert(&f.path, node);
                }
                v
            }
        };
        let env = t
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.render(&cx, None)))
            .collect();
        let memory = t
            .memory
            .iter()
            .map(|(k, v)| (k.clone(), v.render(&cx, None)))
            .collect();
        let records = t
            .tables
            .iter()
            .map(|(name, tb)| {
                let rows = tb
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .map(|(c, cell)| (c.clone(), cell.render(&cx)))
                            .collect()
                    })
                    .collect();
                (name.clone(), rows)
            })
            .collect();
        let tools = match &t.static_tools {
            Some(s) => s.clone(),
            None => t
                .tool_texts
                .iter()
                .map(|(d, tx)| {
                    let mut d = d.clone();
                    if let Some(tx) = tx {
                        d.description = tx.render(&cx, None);
                    }
                    d
                })
                .collect::<Vec<_>>()
                .into(),
        };
        let secrets = t
            .names
            .secrets
            .iter()
            .cloned()
            .zip(secret_values.iter().cloned())
            .collect();
        let slot_pairs = t
            .names
            .slots
            .iter()
            .cloned()
            .zip(slot_values.iter().cloned())
            .collect();
        let mut world = World {
            tpl: self.tpl.clone(),
            secret_values,
            secrets,
            slot_pairs,
            slot_values,
            planted,
            tools,
            vfs,
            env,
            outbox: Vec::new(),
            memory,
            records,
            installed: t.installed.iter().cloned().collect(),
            limits: t.limits.clone(),
            deadline: None,
            cap: None,
            initial: None,
        };
        if t.keep_initial {
            world.initial = Some(Box::new(world.snapshot()));
        }
        world
    }
}

/// Domain part of an address (after the last `@`), or the whole text.
fn domain_of(addr: &str) -> &str {
    let a = addr.trim();
    let a = a.rsplit('<').next().unwrap_or(a).trim_end_matches('>');
    a.rsplit('@').next().unwrap_or(a)
}

/// The world of one episode. Not shared between episodes; every call mutates it.
#[derive(Debug, Clone)]
pub struct World {
    tpl: Arc<Tpl>,
    secret_values: Vec<String>,
    secrets: BTreeMap<String, String>,
    /// Slot name → rendered value, for state templates.
    slot_pairs: Vec<(String, String)>,
    slot_values: Vec<String>,
    /// Planted payloads, each with its JSON-escaped form when that differs.
    planted: Vec<(Payload, Option<String>)>,
    tools: Arc<[ToolDef]>,
    vfs: Vfs,
    env: BTreeMap<String, String>,
    outbox: Vec<SentMail>,
    memory: BTreeMap<String, String>,
    records: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
    installed: BTreeSet<String>,
    /// Resource caps of this episode (the spec's `agent.limits`).
    limits: assay_spec::Limits,
    /// When the episode's wall time runs out; checked inside long calls.
    deadline: Option<std::time::Instant>,
    /// The cap hit by the call in progress; once set, the call stops.
    cap: Option<CapHit>,
    /// The state at the start, kept when a check diffs against it.
    initial: Option<Box<WorldState>>,
}

impl World {
    fn cx(&self) -> Ctx<'_> {
        Ctx {
            secrets: &self.secret_values,
            slots: &self.slot_values,
        }
    }

    /// Canary secrets of this episode, name → value: the trace records them so
    /// flow rules can look for them in sinks.
    pub fn secrets(&self) -> &BTreeMap<String, String> {
        &self.secrets
    }

    /// The tools the agent may use (`agent.tools` expanded), descriptions rendered.
    pub fn tools(&self) -> &[ToolDef] {
        &self.tools
    }

    /// The task's user turns with placeholders rendered.
    pub fn user_turns(&self) -> Vec<String> {
        let cx = self.cx();
        self.tpl.turns.iter().map(|t| t.render(&cx, None)).collect()
    }

    /// The agent's system prompt, rendered.
    pub fn system_prompt(&self) -> String {
        self.tpl.system.render(&self.cx(), None)
    }

    /// Carries out one tool call. Never panics; a bad call returns `ok: false`
    /// with a tool-like message and a `denied` effect. A call that hits a
    /// resource cap (see [`World::limits`]) stops there, keeps its effects so
    /// far, returns output cut with a marker, and reports the cap in
    /// [`CallOutcome::cap`].
    pub fn call(&mut self, tool: &str, args: &Value) -> CallOutcome {
        let mut fx = Vec::new();
        self.cap = None;
        let (mut ok, mut output) = self.dispatch(tool, args, &mut fx);
        let max = usize::try_from(self.limits.tool_result_bytes).unwrap_or(usize::MAX);
        if output.len() > max {
            let bytes = output.len();
            output.truncate(shell::floor_char(&output, max));
            self.hit_cap(
                "tool_result_bytes",
                self.limits.tool_result_bytes as f64,
                format!("{tool} returned {bytes} bytes"),
            );
        }
        let cap = self.cap.take();
        if let Some(c) = &cap {
            ok = false;
            if !output.is_empty() && !output.ends_with('\n') {
                output.push('\n');
            }
            output.push_str(&format!(
                "[assay: stopped, {} cap of {} reached: {}]",
                c.limit, c.value, c.detail
            ));
        }
        let deliveries = self.deliveries_in(&output);
        CallOutcome {
            ok,
            output,
            cap,
            effects: fx,
            deliveries,
        }
    }

    /// Sets when the episode's wall time runs out. Long calls (shell loops,
    /// pipelines, expansions) check it and stop with a `wall_time_secs` cap,
    /// so a single call cannot run past the episode's budget.
    pub fn set_deadline(&mut self, deadline: std::time::Instant) {
        self.deadline = Some(deadline);
    }

    /// The resource caps in force: the spec's `agent.limits`, applied when the
    /// world is instantiated, so every episode of a spec has the same bounds.
    pub fn limits(&self) -> &assay_spec::Limits {
        &self.limits
    }

    /// Replaces the caps (tests and callers that build worlds outside a spec run).
    pub fn set_limits(&mut self, limits: assay_spec::Limits) {
        self.limits = limits;
    }

    /// Records the first cap hit by the current call; later hits keep the first.
    pub(crate) fn hit_cap(&mut self, limit: &str, value: f64, detail: String) {
        if self.cap.is_none() {
            self.cap = Some(CapHit {
                limit: limit.to_string(),
                value,
                detail,
            });
        }
    }

    /// Whether the current call must stop: a cap was hit, or the deadline
    /// passed (which records the `wall_time_secs` cap).
    pub(crate) fn halted(&mut self) -> bool {
        if self.cap.is_some() {
            return true;
        }
        if let Some(d) = self.deadline
            && std::time::Instant::now() >= d
        {
            self.hit_cap(
                "wall_time_secs",
                self.limits.wall_time_secs,
                "the episode's wall time ran out inside the call".into(),
            );
            return true;
        }
        false
    }

    /// Payload deliveries contained in arbitrary text shown to the agent (tool list, user turn).
    pub fn deliveries_in(&self, text: &str) -> Vec<Delivery> {
        self.planted
            .iter()
            .filter(|(p, escaped)| {
                text.contains(p.text.as_str())
                    || escaped.as_deref().is_some_and(|e| text.contains(e))
            })
            .map(|(p, _)| Delivery {
                threat: p.threat.clone(),
                slot: p.slot.clone(),
            })
            .collect()
    }

    /// The world as success checks see it at the end of the episode.
    pub fn snapshot(&self) -> WorldState {
        let files = self
            .vfs
            .nodes
            .iter()
            .filter_map(|(p, n)| {
                let (text, symlink) = match &n.kind {
                    NodeKind::File(t) => (Some(t.clone()), None),
                    NodeKind::Link(l) => (None, Some(l.clone())),
                    NodeKind::Dir => return None,
                };
                Some((
                    p.clone(),
                    assay_trace::FileState {
                        text,
                        symlink,
                        mode: n.mode,
                    },
                ))
            })
            .collect();
        let inbox = if self.tpl.keep_inbox || self.tpl.keep_initial {
            let cx = self.cx();
            self.tpl
                .inbox
                .iter()
                .map(|m| assay_trace::MailState {
                    from: m.from.clone(),
                    to: m.to.clone(),
                    subject: m.subject.render(&cx, None),
                    body: m.body.render(&cx, None),
                })
                .collect()
        } else {
            Vec::new()
        };
        WorldState {
            files,
            outbox: self.outbox.clone(),
            memory: self.memory.clone(),
            records: self.records.clone(),
            installed: self.installed.iter().cloned().collect(),
            inbox,
            deleted: Vec::new(),
            keys: self
                .tpl
                .table_meta
                .iter()
                .filter_map(|(t, m)| Some((t.clone(), m.key.clone()?)))
                .collect(),
            initial: self.initial.clone(),
        }
    }
}
