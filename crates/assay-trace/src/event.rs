//! Event and effect types.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One line of a trace file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the trace, from 0. Verdicts cite these numbers.
    pub seq: u64,
    /// SHA-256 (hex) of the previous line's bytes; [`crate::GENESIS`] for the first.
    pub prev: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an event records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// First event: identity of the episode and the values needed to score it.
    EpisodeStart(Box<EpisodeStart>),
    /// A message between user and agent.
    Message {
        /// Who spoke.
        role: Role,
        /// What was said.
        content: String,
    },
    /// The agent asked for a tool.
    ToolCall {
        /// The agent's own id for the call, if it gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_id: Option<String>,
        /// Tool name as the agent wrote it.
        tool: String,
        /// Arguments as the agent wrote them.
        args: Value,
    },
    /// One observable consequence of a tool call.
    Effect {
        /// `seq` of the tool call that caused it.
        call: u64,
        /// The effect.
        effect: Effect,
    },
    /// A planted payload reached the agent in a tool result.
    InjectionDelivered {
        /// `seq` of the tool call whose result carried it.
        call: u64,
        /// Threat id the payload belongs to.
        threat: String,
        /// Slot the payload was planted in.
        slot: String,
    },
    /// What the agent got back from a tool call.
    ToolResult {
        /// `seq` of the tool call.
        call: u64,
        /// False when the tool refused or failed.
        ok: bool,
        /// Text returned to the agent.
        output: String,
    },
    /// Something went wrong outside the agent's control (harness, endpoint, grader).
    Error {
        /// Which component failed.
        source: String,
        /// What went wrong.
        message: String,
    },
    /// Output an external agent process wrote outside the protocol (stderr,
    /// stdout beyond its answer), kept for diagnosis.
    Log {
        /// `stdout` or `stderr`.
        stream: String,
        /// The text (a tail, if it was long).
        text: String,
    },
    /// A per-episode limit was hit and the episode was cut short.
    Limit {
        /// Which limit (`turns`, `tool_calls`, `wall_time`, or a resource cap such
        /// as `shell_output`, `tool_result`, `trace_bytes`).
        limit: String,
        /// The configured value.
        value: f64,
        /// What exceeded it, for resource caps (which end the episode as `error`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// Last event: why the episode ended and the final world state.
    EpisodeEnd {
        /// `completed`, `limit`, or `error`.
        reason: String,
        /// World state at the end, for success checks.
        state: Box<WorldState>,
    },
}

/// Speaker of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The system prompt.
    System,
    /// The (simulated) user.
    User,
    /// The agent.
    Assistant,
}

/// Identity of an episode plus everything scoring needs beyond the events.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpisodeStart {
    /// [`crate::SCHEMA_VERSION`].
    pub schema_version: String,
    /// Episode id, unique within a run.
    pub episode: String,
    /// Spec id.
    pub spec: String,
    /// SHA-256 of the spec's canonical JSON.
    pub spec_hash: String,
    /// Case id within the spec (`benign` or `THREAT@SLOT`).
    pub case: String,
    /// Agent name.
    pub agent: String,
    /// Repetition index.
    pub epoch: u32,
    /// Seed every random choice of the episode came from.
    pub seed: u64,
    /// Threat planted in this episode, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threat: Option<String>,
    /// Canary secrets: name → value generated for this episode.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Payloads planted in slots.
    #[serde(default)]
    pub payloads: Vec<Payload>,
    /// The case document the episode ran (spec, payloads, provenance), so the
    /// trace alone can be re-scored or turned into a regression case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_doc: Option<Arc<Value>>,
    /// `subject` or `control`: whether gates or control expectations judge the
    /// agent, recorded so a verifier can check the role results claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A payload planted in a slot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Payload {
    /// Threat id.
    pub threat: String,
    /// Slot name.
    pub slot: String,
    /// The text planted.
    pub text: String,
}

/// An observable effect. The kind says what happened; the fields say to what.
/// Field names per kind are documented in `docs/effects.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    /// What happened.
    pub kind: EffectKind,
    /// Details (path, host, recipient, ...), flat key → value.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Effect {
    /// Builds an effect from a kind and `(field, value)` pairs.
    pub fn new<I, K, V>(kind: EffectKind, fields: I) -> Effect
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<Value>,
    {
        Effect {
            kind,
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// A string field, if present.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// The effect vocabulary. Rules match effects, not tool names, so the same act
/// through different tools is the same event for a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectKind {
    /// Content of a file, mail, page, memory entry or table was read.
    Read,
    /// A file was created or changed.
    Write,
    /// A file was removed.
    Delete,
    /// A program ran (every `shell.exec` command).
    Exec,
    /// A request left the network boundary (host not allowlisted).
    Egress,
    /// A request to an allowlisted host.
    Request,
    /// A message was sent (mail).
    Send,
    /// Long-term memory was written.
    MemoryWrite,
    /// A package was installed.
    Install,
    /// File permissions changed.
    PermissionChange,
    /// The world refused an action (path escape, unknown tool, bad arguments, ...).
    Denied,
    /// A custom (declarative) tool was called.
    Call,
    /// The world could not model what was asked (a command, option or argument it
    /// does not implement). The episode cannot be judged safe: it is
    /// `inconclusive` unless a rule already fired.
    Unsupported,
}

impl EffectKind {
    /// Every kind, in documentation order.
    pub const ALL: [EffectKind; 13] = [
        EffectKind::Read,
        EffectKind::Write,
        EffectKind::Delete,
        EffectKind::Exec,
        EffectKind::Egress,
        EffectKind::Request,
        EffectKind::Send,
        EffectKind::MemoryWrite,
        EffectKind::Install,
        EffectKind::PermissionChange,
        EffectKind::Denied,
        EffectKind::Call,
        EffectKind::Unsupported,
    ];

    /// The snake_case name used in traces and specs.
    pub fn name(self) -> &'static str {
        match self {
            EffectKind::Read => "read",
            EffectKind::Write => "write",
            EffectKind::Delete => "delete",
            EffectKind::Exec => "exec",
            EffectKind::Egress => "egress",
            EffectKind::Request => "request",
            EffectKind::Send => "send",
            EffectKind::MemoryWrite => "memory_write",
            EffectKind::Install => "install",
            EffectKind::PermissionChange => "permission_change",
            EffectKind::Denied => "denied",
            EffectKind::Call => "call",
            EffectKind::Unsupported => "unsupported",
        }
    }

    /// Parses a snake_case name.
    pub fn from_name(s: &str) -> Option<EffectKind> {
        EffectKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The world at the end of an episode, as success checks see it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorldState {
    /// Every file: path → state.
    pub files: BTreeMap<String, FileState>,
    /// Mail sent by the agent, in order.
    pub outbox: Vec<SentMail>,
    /// Memory: key → value.
    pub memory: BTreeMap<String, String>,
    /// Record tables: name → rows.
    pub records: BTreeMap<String, Vec<BTreeMap<String, Value>>>,
    /// Installed packages (`name` or `name==version`), sorted.
    pub installed: Vec<String>,
    /// The inbox as rendered for the episode; recorded only when a check
    /// reads it (a `mail` check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbox: Vec<MailState>,
    /// Messages deleted from the inbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<MailState>,
    /// Key column of each record table that declares one: table → column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
    /// The state at the start of the episode; recorded only when a check
    /// compares against it (`unchanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Box<WorldState>>,
}

/// A message of the mailbox in the final state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MailState {
    /// Sender address.
    pub from: String,
    /// Recipient(s).
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
}

/// A file in the final state.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileState {
    /// Content of a regular file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Target of a symbolic link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink: Option<String>,
    /// Permission bits.
    pub mode: u32,
}

/// A mail the agent sent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SentMail {
    /// Recipient(s), comma-separated as given.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text.
    pub body: String,
}
