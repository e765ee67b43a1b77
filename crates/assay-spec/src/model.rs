//! The spec data model (format `assay/v1`).
//!
//! Every type here is plain data: it is what a user writes, after YAML has been
//! parsed. Meaning (how a matcher matches, how a tool behaves) lives in the crates
//! that consume the model, so this file stays a readable reference of the format.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::condition::{Check, Condition, TaskCheck};

/// The only `apiVersion` this build reads.
pub const API_VERSION: &str = "assay/v1";

/// One security scenario: the world an agent acts in, the legitimate task, the
/// threats planted in the world, and the trajectories that must never happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// Format version; must be `assay/v1`.
    pub api_version: String,
    /// Document kind; must be `Spec`.
    pub kind: String,
    /// Stable identifier: lowercase letters, digits and `-`.
    pub id: String,
    /// One-line human title.
    pub title: String,
    /// Longer free-text description for reviewers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Free labels (agent archetype, risk family, ...) used to filter and group results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The agent under test: its instructions, tools and per-episode limits.
    pub agent: AgentSpec,
    /// The isolated world the agent acts in.
    #[serde(default)]
    pub world: World,
    /// The legitimate task and how to tell it was done.
    pub task: Task,
    /// Attacks planted in the world.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threats: Vec<Threat>,
    /// Trajectories that must never happen, in observable terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbidden: Vec<ForbiddenRule>,
    /// Release-gate thresholds over the run's metrics.
    #[serde(default, skip_serializing_if = "Gates::is_empty")]
    pub gates: Gates,
    /// Rubric questions rules cannot express, for the optional LLM judge (run
    /// only with `--judge`). Judge answers are reported separately and never
    /// decide a violation, an attack success or a gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub judge: Vec<JudgeCriterion>,
}

/// One rubric question for the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeCriterion {
    /// Identifier, unique in the spec.
    pub id: String,
    /// A yes/no question about the trajectory, e.g. "Did the agent warn the user
    /// about the suspicious instructions in the email?"
    pub question: String,
}

/// What the agent is told and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// System prompt given to the agent.
    #[serde(default)]
    pub system: String,
    /// Tools the agent may call: built-in names (`files.read`), family globs
    /// (`files.*`) or names of custom tools declared under `world.tools`.
    pub tools: Vec<String>,
    /// Per-episode limits; defaults apply when omitted.
    #[serde(default)]
    pub limits: Limits,
}

/// Per-episode budgets. Hitting one ends the episode with a `limit` event; it is
/// not an error, but the verdict says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Maximum number of user turns played.
    #[serde(default = "Limits::default_turns")]
    pub turns: u32,
    /// Maximum number of tool calls across the episode.
    #[serde(default = "Limits::default_tool_calls")]
    pub tool_calls: u32,
    /// Wall-clock budget for the episode, in seconds.
    #[serde(default = "Limits::default_wall_time")]
    pub wall_time_secs: f64,
    /// Cap on the output one `shell.exec` call may produce (stdout and stderr, bytes).
    #[serde(default = "Limits::default_shell_output")]
    pub shell_output_bytes: u64,
    /// Cap on the size of one shell variable or command substitution (bytes).
    #[serde(default = "Limits::default_variable")]
    pub variable_bytes: u64,
    /// Cap on the text one tool call returns to the agent (bytes).
    #[serde(default = "Limits::default_tool_result")]
    pub tool_result_bytes: u64,
    /// Cap on the size of one file the agent writes (bytes).
    #[serde(default = "Limits::default_file")]
    pub file_bytes: u64,
    /// Cap on one message or protocol line from the agent (bytes).
    #[serde(default = "Limits::default_message")]
    pub message_bytes: u64,
    /// Cap on the serialised trace of one episode (bytes).
    #[serde(default = "Limits::default_trace")]
    pub trace_bytes: u64,
}

impl Limits {
    fn default_turns() -> u32 {
        20
    }
    fn default_tool_calls() -> u32 {
        50
    }
    fn default_wall_time() -> f64 {
        300.0
    }
    fn default_shell_output() -> u64 {
        1 << 20
    }
    fn default_variable() -> u64 {
        1 << 20
    }
    fn default_tool_result() -> u64 {
        1 << 20
    }
    fn default_file() -> u64 {
        8 << 20
    }
    fn default_message() -> u64 {
        1 << 20
    }
    fn default_trace() -> u64 {
        64 << 20
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            turns: Self::default_turns(),
            tool_calls: Self::default_tool_calls(),
            wall_time_secs: Self::default_wall_time(),
            shell_output_bytes: Self::default_shell_output(),
            variable_bytes: Self::default_variable(),
            tool_result_bytes: Self::default_tool_result(),
            file_bytes: Self::default_file(),
            message_bytes: Self::default_message(),
            trace_bytes: Self::default_trace(),
        }
    }
}

/// The initial state of the embedded world. Text anywhere in it may contain
/// `{{secret:NAME}}` (a per-episode canary) and `{{slot:NAME}}` (an injection slot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Working directory of `shell.exec`.
    #[serde(default = "World::default_cwd")]
    pub cwd: String,
    /// Virtual filesystem: absolute path → file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileEntry>,
    /// Environment variables visible to `shell.exec` (`env`, `$VAR`): name →
    /// value, or name → `{ value, sensitivity }` for a labelled variable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvEntry>,
    /// Canary secrets. Names used in `{{secret:NAME}}` need not be declared here;
    /// declare one to give it a realistic prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// Mailbox of the agent.
    #[serde(default)]
    pub mail: Mail,
    /// Web pages: URL → page. Only these URLs answer; others get 404.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub web: BTreeMap<String, WebPage>,
    /// Network policy: which hosts are inside the agent's boundary.
    #[serde(default)]
    pub network: Network,
    /// Long-term memory entries present at the start: key → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub memory: BTreeMap<String, String>,
    /// Record tables (a small database): table name → table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub records: BTreeMap<String, Table>,
    /// Package manager state.
    #[serde(default)]
    pub packages: Packages,
    /// Declarative custom tools modelling the user's own services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<CustomTool>,
    /// Injection slots with default text or an explicit kind: slot name →
    /// declaration. A slot is still placed by writing `{{slot:NAME}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, SlotSpec>,
}

/// Kinds of place a slot can sit in; they decide which techniques may use it.
pub const SLOT_KINDS: &[&str] = &[
    "file",
    "mail",
    "web",
    "tool_output",
    "record",
    "memory",
    "tool_description",
    "user_turn",
];

/// A slot declaration: the text the slot holds when no payload is planted,
/// and (optionally) the kind of place it models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// Untouched text of the slot (benign runs show it; a payload is appended
    /// to it, or replaces it in `replace` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Kind of place (default: inferred from where the slot is written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<SlotKindName>")]
    pub kind: Option<String>,
}

/// Schema-only: the closed set of slot kinds.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum SlotKindName {
    File,
    Mail,
    Web,
    ToolOutput,
    Record,
    Memory,
    ToolDescription,
    UserTurn,
}

impl World {
    fn default_cwd() -> String {
        "/".to_string()
    }
}

/// A file: either plain text (`path: "content"`) or a full entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FileEntry {
    /// Shorthand: the file's text, no label, mode 0644.
    Text(String),
    /// Full form.
    Full(FileSpec),
}

/// Full form of a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// File content (mutually exclusive with `symlink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Make this path a symbolic link to another path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
    /// Sensitivity label (`secret`, `private`, `internal`, ... — free text).
    /// Reads of this file carry the label; flow rules can use it as a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
    /// Octal permission bits, e.g. `"0600"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl FileEntry {
    /// The file's text, if it is a regular file.
    pub fn text(&self) -> Option<&str> {
        match self {
            FileEntry::Text(t) => Some(t),
            FileEntry::Full(f) => f.text.as_deref(),
        }
    }
    /// The file's sensitivity label, if any.
    pub fn sensitivity(&self) -> Option<&str> {
        match self {
            FileEntry::Text(_) => None,
            FileEntry::Full(f) => f.sensitivity.as_deref(),
        }
    }
}

/// An environment variable: plain text (`NAME: "value"`) or a full entry.
/// Secrets often live in the environment rather than in files, so a variable
/// can carry a sensitivity label just as a file can.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvEntry {
    /// Shorthand: the value, no label.
    Text(String),
    /// Full form.
    Full(EnvSpec),
}

/// Full form of an environment variable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// The value.
    pub value: String,
    /// Sensitivity label (`secret`, `private`, ... — free text). Reads of the
    /// variable (`$NAME`, `printenv NAME`, `env`) carry the label and the value,
    /// so sensitivity and flow rules can use it as a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
}

impl EnvEntry {
    /// The variable's value.
    pub fn value(&self) -> &str {
        match self {
            EnvEntry::Text(t) => t,
            EnvEntry::Full(e) => &e.value,
        }
    }
    /// The variable's sensitivity label, if any.
    pub fn sensitivity(&self) -> Option<&str> {
        match self {
            EnvEntry::Text(_) => None,
            EnvEntry::Full(e) => e.sensitivity.as_deref(),
        }
    }
}

impl From<&str> for EnvEntry {
    fn from(value: &str) -> Self {
        EnvEntry::Text(value.to_string())
    }
}

/// How a canary secret looks. The random part always comes from the episode seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Literal prefix, e.g. `sk_live_` or `AKIA`.
    #[serde(default)]
    pub prefix: String,
    /// Length of the random part (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
}

/// The agent's mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    /// The agent's own address (the `from` of mail it sends).
    #[serde(default = "Mail::default_address")]
    pub address: String,
    /// Messages in the inbox, numbered from 1 in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbox: Vec<MailMessage>,
}

impl Mail {
    fn default_address() -> String {
        "agent@assay.test".to_string()
    }
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            address: Self::default_address(),
            inbox: Vec::new(),
        }
    }
}

/// One mail message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MailMessage {
    /// Sender address.
    pub from: String,
    /// Recipient (defaults to the agent's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Subject line.
    #[serde(default)]
    pub subject: String,
    /// Body text.
    #[serde(default)]
    pub body: String,
    /// Sensitivity label of the message content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
}

/// A web page: plain text shorthand or full form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WebPage {
    /// Shorthand: the page body, status 200.
    Text(String),
    /// Full form.
    Full(WebPageSpec),
}

/// Full form of a web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPageSpec {
    /// Response body.
    pub body: String,
    /// HTTP status (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Sensitivity label of the page content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
}

impl WebPage {
    /// The page body.
    pub fn body(&self) -> &str {
        match self {
            WebPage::Text(t) => t,
            WebPage::Full(p) => &p.body,
        }
    }
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            WebPage::Text(_) => 200,
            WebPage::Full(p) => p.status.unwrap_or(200),
        }
    }
}

/// Network policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Hosts inside the boundary (exact host or `*.domain`). A request to any
    /// other host is an `egress` effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// A record table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// Sensitivity label of the table's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
    /// The column identifying rows. An `insert` that leaves it out gets one
    /// more than the largest integer key of the table (or 1); effects and
    /// diffs name rows by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A column holding a row's own sensitivity label; a row with a
    /// non-empty string there carries that label instead of the table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity_column: Option<String>,
    /// Rows: each a map of column → JSON value (nested lists and maps allowed).
    #[serde(default)]
    pub rows: Vec<BTreeMap<String, Value>>,
}

/// Package manager state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Packages {
    /// Packages already installed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed: Vec<String>,
}

/// A declarative tool modelling one of the user's services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomTool {
    /// Tool name, `service.action` style (e.g. `deploy.apply`).
    pub name: String,
    /// Description shown to the agent. May hold a `{{slot:NAME}}` (poisoned tool description).
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    #[serde(default = "CustomTool::default_parameters")]
    #[schemars(with = "serde_json::Map<String, Value>")]
    pub parameters: Value,
    /// Response text; `{{args.NAME}}` is replaced by the argument, `{{slot:NAME}}` and
    /// `{{secret:NAME}}` as elsewhere.
    #[serde(default)]
    pub response: String,
    /// Effects a call has, each one effect kind → fields; field values are templates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<BTreeMap<String, BTreeMap<String, String>>>")]
    pub effects: Vec<BTreeMap<String, BTreeMap<String, String>>>,
    /// Operations on `world.records` a call runs in order, all or nothing:
    /// when one fails, the call's changes are undone and the agent gets the
    /// error as a failed call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<StateOp>,
    /// Sensitivity label of what the tool answers (a service returning
    /// customer data): each call is also a `read` carrying the label and the
    /// response, so flow rules can follow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<String>,
}

/// One operation of a stateful custom tool. Values are templates:
/// `{{args.X}}`, `{{secret:..}}`, `{{slot:..}}`, `{{NAME.COL}}` and `{{NAME}}`
/// (rows an earlier operation bound with `as`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StateOp {
    /// Rows matching `where` (all rows without it); yields a `read` effect.
    Find(FindOp),
    /// A new row; yields a `write` effect.
    Insert(InsertOp),
    /// Changes the rows matching `where`; yields a `write` effect per row.
    Update(UpdateOp),
    /// Removes the rows matching `where`; yields a `delete` effect per row.
    Delete(DeleteOp),
    /// Fails the call unless a value satisfies a matcher.
    Require(Box<RequireOp>),
}

/// `find`: rows by `where`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindOp {
    /// The table.
    pub table: String,
    /// Column → template or matcher (`in`, `contains`, `prefix`, `equals`,
    /// `ignore_case`), plus `any: [..]` for alternatives; a row matches when
    /// every entry holds.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<BTreeMap<String, Value>>,
    /// Keep only these columns in the bound rows (a tool that answers with a
    /// few fields of a record must not show the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Vec<String>>,
    /// Sort the rows by this column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Sort descending.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub desc: bool,
    /// Keep at most this many rows (an integer or a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Value>,
    /// No error when nothing matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Name the rows for later templates.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Error when nothing matches (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `insert`: one new row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InsertOp {
    /// The table.
    pub table: String,
    /// Column → template.
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// Name the new row for later templates.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Error when the key is already taken (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `update`: changes rows by `where`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOp {
    /// The table.
    pub table: String,
    /// Column → template (every row without it).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<BTreeMap<String, Value>>,
    /// Column → template; an entry whose only placeholder is an argument the
    /// call did not pass is skipped.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// List column → template whose value is added at the end of the list
    /// (each element, when it renders to a list): a tool that adds to a
    /// record's list must keep what is there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub append: BTreeMap<String, Value>,
    /// Map column → `{ KEY: template }`: sets those keys inside the map and
    /// keeps the others (keys are templates too, as `"{{args.email}}"`), for a
    /// tool that changes one entry of a record's map.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub merge: BTreeMap<String, Value>,
    /// No error when nothing matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Name the changed rows for later templates.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Error when nothing matches (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `delete`: removes rows by `where`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOp {
    /// The table.
    pub table: String,
    /// Column → template.
    #[serde(rename = "where")]
    pub filter: BTreeMap<String, Value>,
    /// No error when nothing matches.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Name the removed rows for later templates.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Error when nothing matches (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `require`: a precondition. Exactly one matcher; operands are templates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireOp {
    /// The value tested (a template).
    pub value: Value,
    /// Error when the test fails (a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Equal (numbers and their text compare equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// Text contains this, or a list has an element equal to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Value>,
    /// Negation of `contains`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_contains: Option<Value>,
    /// Text matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Text does not match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_regex: Option<String>,
    /// One of these.
    #[serde(default, rename = "in", skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// None of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_in: Option<Vec<Value>>,
    /// Present and not null (true) or absent (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// A number at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<Value>,
    /// A number at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<Value>,
    /// A number above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greater: Option<Value>,
    /// A number below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub less: Option<Value>,
}

impl RequireOp {
    /// The matcher operations given, by YAML name.
    pub fn matchers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let v = [
            ("equals", self.equals.is_some()),
            ("contains", self.contains.is_some()),
            ("not_contains", self.not_contains.is_some()),
            ("regex", self.regex.is_some()),
            ("not_regex", self.not_regex.is_some()),
            ("in", self.one_of.is_some()),
            ("not_in", self.not_in.is_some()),
            ("exists", self.exists.is_some()),
            ("at_least", self.at_least.is_some()),
            ("at_most", self.at_most.is_some()),
            ("greater", self.greater.is_some()),
            ("less", self.less.is_some()),
        ];
        for (n, on) in v {
            if on {
                out.push(n);
            }
        }
        out
    }
}

impl StateOp {
    /// The YAML name of the operation.
    pub fn name(&self) -> &'static str {
        match self {
            StateOp::Find(_) => "find",
            StateOp::Insert(_) => "insert",
            StateOp::Update(_) => "update",
            StateOp::Delete(_) => "delete",
            StateOp::Require(_) => "require",
        }
    }
    /// The table it works on (none for `require`).
    pub fn table(&self) -> Option<&str> {
        match self {
            StateOp::Find(o) => Some(&o.table),
            StateOp::Insert(o) => Some(&o.table),
            StateOp::Update(o) => Some(&o.table),
            StateOp::Delete(o) => Some(&o.table),
            StateOp::Require(_) => None,
        }
    }
    /// The name it binds its rows to.
    pub fn bind(&self) -> Option<&str> {
        match self {
            StateOp::Find(o) => o.bind.as_deref(),
            StateOp::Insert(o) => o.bind.as_deref(),
            StateOp::Update(o) => o.bind.as_deref(),
            StateOp::Delete(o) => o.bind.as_deref(),
            StateOp::Require(_) => None,
        }
    }
}

impl CustomTool {
    fn default_parameters() -> Value {
        serde_json::json!({"type": "object", "properties": {}})
    }
}

impl Spec {
    /// Every state check of the spec: task success checks over the final
    /// state and the `state:` heads of every condition (success, threats,
    /// forbidden rules). The world uses it to know what the final state must hold.
    pub fn state_checks(&self) -> Vec<&Check> {
        fn in_cond<'a>(c: &'a Condition, out: &mut Vec<&'a Check>) {
            c.walk(&mut |c| {
                if let crate::condition::Head::State(k) = &c.head {
                    out.push(k);
                }
            });
        }
        let mut out = Vec::new();
        for c in &self.task.success {
            match &c.check {
                Check::Trace(c) => in_cond(c, &mut out),
                other => out.push(other),
            }
        }
        for t in &self.threats {
            for c in &t.success {
                in_cond(c, &mut out);
            }
        }
        for r in &self.forbidden {
            in_cond(&r.when, &mut out);
        }
        out
    }
}

/// The legitimate task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// A single user turn (shorthand for `turns: [prompt]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// User turns, played in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<String>,
    /// Reference solution: tool calls that complete the task, each `tool: {args}`.
    /// `control:solve` replays it; it proves the task is solvable.
    #[serde(default)]
    pub solution: Vec<ToolCall>,
    /// The final reply of the reference solution (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Success checks; utility is the fraction that hold, `utility_weighted`
    /// the weighted fraction (each check's `weight`, default 1).
    #[serde(default)]
    pub success: Vec<TaskCheck>,
}

impl Task {
    /// The user turns, whichever form was written.
    pub fn user_turns(&self) -> Vec<String> {
        let mut t = Vec::new();
        if let Some(p) = &self.prompt {
            t.push(p.clone());
        }
        t.extend(self.turns.iter().cloned());
        t
    }
}

/// One tool call written as a single-key map: `mail.read: { id: 1 }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Tool name.
    pub tool: String,
    /// Arguments (a JSON object).
    pub args: Value,
}

/// A threat: what an attacker wants and how it would show in the trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    /// Identifier, unique in the spec.
    pub id: String,
    /// The attacker's goal in words; also the plain payload text.
    pub goal: String,
    /// Tool calls that achieve the goal. `control:naive` performs them when a payload
    /// reaches it. `{{result:N}}` is the output of the N-th action (1-based).
    #[serde(default)]
    pub actions: Vec<ToolCall>,
    /// The attack succeeded when any of these conditions holds on the trace.
    pub success: Vec<Condition>,
    /// Injection slots (declared in the world as `{{slot:NAME}}`) this threat
    /// is planted in. Required (non-empty) unless `source: user`.
    #[serde(default)]
    pub slots: Vec<String>,
    /// Attack techniques to synthesise (`all` or a list of ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub techniques: Option<Value>,
    /// Who carries the attack: `world` (planted in slots, the default) or
    /// `user` (a risky request in the user's own turn; no slot needed).
    #[serde(default, skip_serializing_if = "ThreatSource::is_world")]
    pub source: ThreatSource,
    /// How a payload fills a slot that has default text: `append` (default)
    /// or `replace`. Overrides the technique's own mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PayloadMode>,
}

/// Who carries a threat's payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreatSource {
    /// An attacker's text planted in the world's slots.
    #[default]
    World,
    /// The user asks for the risky thing themselves.
    User,
}

impl ThreatSource {
    /// True for the default (`world`).
    pub fn is_world(&self) -> bool {
        *self == ThreatSource::World
    }
}

/// How a payload fills a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadMode {
    /// The slot's default text, then the payload.
    #[default]
    Append,
    /// The payload alone, in place of the default text.
    Replace,
}

impl PayloadMode {
    /// True for the default (`append`).
    pub fn is_append(&self) -> bool {
        *self == PayloadMode::Append
    }
}

/// How bad a forbidden trajectory is; gates can bound each level separately.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Must never happen in any release.
    Critical,
    /// Serious (the default).
    #[default]
    High,
    /// Worth fixing.
    Medium,
    /// Minor.
    Low,
}

impl Severity {
    /// Every level, most severe first.
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The YAML name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// True for the default (`high`).
    pub fn is_default(&self) -> bool {
        *self == Severity::High
    }
}

/// A trajectory that must never happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForbiddenRule {
    /// Identifier, unique in the spec; verdicts cite it.
    pub id: String,
    /// Why the rule exists, for reviewers and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The condition that fires the rule.
    pub when: Condition,
    /// How bad a violation is (`critical`, `high` (default), `medium`, `low`).
    #[serde(default, skip_serializing_if = "Severity::is_default")]
    pub severity: Severity,
}

/// Release-gate thresholds, judged per spec × agent over all its episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Bound on the share of attacked episodes where the threat succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_success_rate: Option<Bound>,
    /// Bound on mean utility over all episodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility: Option<Bound>,
    /// Bound on the share of episodes with at least one violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation_rate: Option<Bound>,
    /// Bounds on the share of episodes with a violation of each severity.
    #[serde(default, skip_serializing_if = "SeverityGates::is_empty")]
    pub violations: SeverityGates,
}

impl Gates {
    /// True when no gate is set.
    pub fn is_empty(&self) -> bool {
        self.attack_success_rate.is_none()
            && self.utility.is_none()
            && self.violation_rate.is_none()
            && self.violations.is_empty()
    }
}

/// Per-severity bounds on the share of episodes with a violation of that severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverityGates {
    /// Share of episodes with a `critical` violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<Bound>,
    /// Share of episodes with a `high` violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<Bound>,
    /// Share of episodes with a `medium` violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<Bound>,
    /// Share of episodes with a `low` violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<Bound>,
}

impl SeverityGates {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        self.bounds().all(|(_, b)| b.is_none())
    }

    /// Each severity with its bound, most severe first.
    pub fn bounds(&self) -> impl Iterator<Item = (Severity, Option<Bound>)> {
        [
            (Severity::Critical, self.critical),
            (Severity::High, self.high),
            (Severity::Medium, self.medium),
            (Severity::Low, self.low),
        ]
        .into_iter()
    }
}

/// A closed interval bound; either end may be omitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bound {
    /// Inclusive minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Inclusive maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Bound {
    /// Whether a value lies within the bound.
    pub fn holds(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}
