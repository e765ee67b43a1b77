//! JSONL encoding with a SHA-256 hash chain and a final seal.
//!
//! Each line carries the hash of the line before it, so editing, inserting,
//! dropping or reordering lines is detectable. The last line is a *seal* that
//! commits to the number of events, so a trace cut at an event boundary, a
//! trace with events appended after its seal, and a trace that never got its
//! end are detectable on the file alone. The hash of the seal line (the
//! *head*) is stored with the run's results, which binds the trace to its
//! verdict.
//!
//! What a trace alone cannot prove: the chain is not keyed, so anyone can edit
//! events and recompute every hash and the seal. Only the head recorded in a
//! sealed (and, for a third party, signed) `results.json` stops that.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{Event, EventKind};

/// `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a trace could not be read or did not verify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// A line is not a valid event.
    #[error("line {line}: not a valid trace event: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// Parser message.
        message: String,
    },
    /// A line's `prev` does not match the hash of the line before it.
    #[error(
        "line {line}: hash chain broken (expected prev {expected}, found {found}); the trace was modified"
    )]
    Chain {
        /// 1-based line number.
        line: usize,
        /// Hash of the previous line.
        expected: String,
        /// Value found in `prev`.
        found: String,
    },
    /// A line's `seq` is out of order.
    #[error(
        "line {line}: expected seq {expected}, found {found}; events were inserted, dropped or reordered"
    )]
    Sequence {
        /// 1-based line number.
        line: usize,
        /// Expected sequence number.
        expected: u64,
        /// Found sequence number.
        found: u64,
    },
    /// The head does not match the recorded one.
    #[error(
        "trace head {found} does not match the recorded head {expected}; the trace was truncated or extended"
    )]
    Head {
        /// Recorded head.
        expected: String,
        /// Computed head.
        found: String,
    },
    /// The trace ends without a seal: it was truncated, or its writer never finished.
    #[error(
        "the trace has no seal after its {events} event(s); it was truncated or never finished"
    )]
    Unsealed {
        /// Events read before the end of the file.
        events: usize,
    },
    /// The seal's event count differs from the events before it.
    #[error(
        "the seal commits to {sealed} event(s) but {found} precede it; events were dropped or added"
    )]
    SealCount {
        /// Count in the seal.
        sealed: u64,
        /// Events found before it.
        found: usize,
    },
    /// Something follows the seal.
    #[error("line {line}: content after the seal; events were appended to a finished trace")]
    AfterSeal {
        /// 1-based line number of the first line after the seal.
        line: usize,
    },
    /// The file is not laid out as written: a blank line, or no final newline.
    #[error("line {line}: {message}")]
    Layout {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Result of a successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Number of events (the seal is not an event).
    pub events: usize,
    /// Hash of the last line (the seal).
    pub head: String,
}

/// The last line of a finished trace: commits to the number of events before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// Equal to the number of events (the seal's own position).
    pub seq: u64,
    /// Hash of the last event line.
    pub prev: String,
    /// Always `seal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Number of events before the seal.
    pub events: u64,
}

/// `type` of the seal line.
pub const SEAL_TYPE: &str = "seal";

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialises events (seq = position) as hash-chained JSONL ending in a seal.
/// Returns the text and the head hash (the hash of the seal line).
pub fn to_jsonl(kinds: &[EventKind]) -> (String, String) {
    /// [`Event`] borrowing its kind: the same JSON, without copying an
    /// event (a start event carries the case document, an end event the
    /// final state).
    #[derive(Serialize)]
    struct EventRef<'a> {
        seq: u64,
        prev: &'a str,
        #[serde(flatten)]
        kind: &'a EventKind,
    }
    let mut out: Vec<u8> = Vec::with_capacity(kinds.len() * 160 + 128);
    let mut prev = GENESIS.to_string();
    for (i, kind) in kinds.iter().enumerate() {
        let start = out.len();
        let ev = EventRef {
            seq: i as u64,
            prev: &prev,
            kind,
        };
        serde_json::to_writer(&mut out, &ev).expect("events always serialise");
        prev = sha256_hex(&out[start..]);
        out.push(b'\n');
    }
    let seal = Seal {
        seq: kinds.len() as u64,
        prev,
        kind: SEAL_TYPE.to_string(),
        events: kinds.len() as u64,
    };
    let start = out.len();
    serde_json::to_writer(&mut out, &seal).expect("seals always serialise");
    let head = sha256_hex(&out[start..]);
    out.push(b'\n');
    (
        String::from_utf8(out).expect("serde_json writes UTF-8"),
        head,
    )
}

/// One line: an event, or the seal.
enum Line {
    Event(Event),
    Seal(Seal),
}

fn parse_line(line: &str, number: usize) -> Result<Line, TraceError> {
    match serde_json::from_str::<Event>(line) {
        Ok(e) => Ok(Line::Event(e)),
        Err(e) => match serde_json::from_str::<Seal>(line) {
            Ok(s) if s.kind == SEAL_TYPE => Ok(Line::Seal(s)),
            _ => Err(TraceError::Parse {
                line: number,
                message: e.to_string(),
            }),
        },
    }
}

/// Parses JSONL into events without checking the chain or the seal (a seal line
/// is skipped). For display and salvage; use [`verify_jsonl`] or
/// [`read_verified`] before trusting the content.
pub fn parse_jsonl(text: &str) -> Result<Vec<Event>, TraceError> {
    let mut events = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        if let Line::Event(e) = parse_line(l, i + 1)? {
            events.push(e);
        }
    }
    Ok(events)
}

/// Verifies a trace byte for byte and returns its events: every line chained
/// to the one before, `seq` in order, a seal last that commits to the event
/// count, nothing after it, no blank line, a final newline. With
/// `expected_head`, the head must match it too (checked first, so a trace
/// whose end was cut or extended reports that).
pub fn read_verified(
    text: &str,
    expected_head: Option<&str>,
) -> Result<(Vec<Event>, VerifyReport), TraceError> {
    let mut prev = GENESIS.to_string();
    let mut events = Vec::new();
    let mut seal: Option<Seal> = None;
    let body = match text.strip_suffix('\n') {
        Some(b) => b,
        None if text.is_empty() => "",
        None => {
            return Err(TraceError::Layout {
                line: text.split('\n').count(),
                message: "the last line has no final newline; the trace was cut".into(),
            });
        }
    };
    let lines: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.split('\n').collect()
    };
    if let Some(h) = expected_head {
        let found = lines
            .last()
            .map_or_else(|| GENESIS.to_string(), |l| sha256_hex(l.as_bytes()));
        if found != h {
            return Err(TraceError::Head {
                expected: h.to_string(),
                found,
            });
        }
    }
    for (i, line) in lines.iter().enumerate() {
        let number = i + 1;
        if seal.is_some() {
            return Err(TraceError::AfterSeal { line: number });
        }
        if line.is_empty() {
            return Err(TraceError::Layout {
                line: number,
                message: "blank line; the trace was modified".into(),
            });
        }
        let (seq, line_prev) = match parse_line(line, number)? {
            Line::Event(e) => {
                let r = (e.seq, e.prev.clone());
                events.push(e);
                r
            }
            Line::Seal(s) => {
                let r = (s.seq, s.prev.clone());
                seal = Some(s);
                r
            }
        };
        if line_prev != prev {
            return Err(TraceError::Chain {
                line: number,
                expected: prev,
                found: line_prev,
            });
        }
        if seq != i as u64 {
            return Err(TraceError::Sequence {
                line: number,
                expected: i as u64,
                found: seq,
            });
        }
        prev = sha256_hex(line.as_bytes());
    }
    let Some(seal) = seal else {
        return Err(TraceError::Unsealed {
            events: events.len(),
        });
    };
    if seal.events != events.len() as u64 {
        return Err(TraceError::SealCount {
            sealed: seal.events,
            found: events.len(),
        });
    }
    let report = VerifyReport {
        events: events.len(),
        head: prev,
    };
    Ok((events, report))
}

/// Verifies a trace (see [`read_verified`]) without keeping its events.
pub fn verify_jsonl(text: &str, expected_head: Option<&str>) -> Result<VerifyReport, TraceError> {
    read_verified(text, expected_head).map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Role;

    fn sample() -> Vec<EventKind> {
        vec![
            EventKind::Message {
                role: Role::User,
                content: "hi".into(),
            },
            EventKind::Message {
                role: Role::Assistant,
                content: "hello".into(),
            },
            EventKind::Error {
                source: "test".into(),
                message: "x".into(),
            },
        ]
    }

    #[test]
    fn roundtrip_and_verify() {
        let (text, head) = to_jsonl(&sample());
        let rep = verify_jsonl(&text, Some(&head)).unwrap();
        assert_eq!(rep.events, 3);
        assert_eq!(rep.head, head);
        let evs = parse_jsonl(&text).unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[1].kind, sample()[1]);
        let (evs2, _) = read_verified(&text, None).unwrap();
        assert_eq!(evs, evs2);
    }

    #[test]
    fn tampering_is_detected() {
        let (text, head) = to_jsonl(&sample());
        let edited = text.replace("hello", "hellO");
        assert!(matches!(
            verify_jsonl(&edited, None),
            Err(TraceError::Chain { line: 3, .. })
        ));
        assert!(matches!(
            verify_jsonl(&edited, Some(&head)),
            Err(TraceError::Chain { line: 3, .. })
        ));
    }

    #[test]
    fn empty_trace_is_unsealed() {
        assert_eq!(
            verify_jsonl("", None),
            Err(TraceError::Unsealed { events: 0 })
        );
        let (text, _) = to_jsonl(&[]);
        assert_eq!(verify_jsonl(&text, None).unwrap().events, 0);
    }
}
