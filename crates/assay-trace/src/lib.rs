//! The trace of one episode: an ordered, hash-chained log of everything that
//! happened — messages, tool calls, their effects, results, injections, errors,
//! limits — and a snapshot of the world at the end, complete enough to re-score
//! an episode without re-running it.
//!
//! This crate is a leaf: it knows nothing of specs, worlds or rules, and must stay
//! free of I/O policy (it reads and writes strings and `io::Write`rs only).

mod chain;
mod event;

pub use chain::{GENESIS, TraceError, VerifyReport, parse_jsonl, to_jsonl, verify_jsonl};
pub use event::{
    Effect, EffectKind, EpisodeStart, Event, EventKind, FileState, Payload, Role, SentMail,
    WorldState,
};

/// Version tag of the trace format; bump on any incompatible change.
pub const SCHEMA_VERSION: &str = "assay-trace/v1";
