//! The trace of one episode: an ordered, hash-chained log of everything that
//! happened — messages, tool calls, their effects, results, injections, errors,
//! limits — and a snapshot of the world at the end, complete enough to re-score
//! an episode without re-running it.
//!
//! Integrity: the trace is hash-chained and sealed (see `chain`), and the
//! canonical digests and ed25519 keys that bind a run's results to its traces
//! live here too, so every crate that checks them uses one implementation.
//!
//! This crate is a leaf: it knows nothing of specs, worlds or rules, and must stay
//! free of I/O policy (it reads and writes strings and `io::Write`rs only).

mod chain;
mod event;
mod sign;

pub use chain::{
    GENESIS, SEAL_TYPE, Seal, TraceError, VerifyReport, parse_jsonl, read_verified, sha256_hex,
    to_jsonl, verify_jsonl,
};
pub use event::{
    Effect, EffectKind, EpisodeStart, Event, EventKind, FileState, MailState, Payload, Role,
    SentMail, WorldState,
};
pub use sign::{
    KeyError, PUBLIC_KEY_LABEL, PublicKey, SECRET_KEY_LABEL, SecretKey, canonical_digest,
    canonical_json,
};

/// Version tag of the trace format; bump on any incompatible change.
pub const SCHEMA_VERSION: &str = "assay-trace/v2";
