//! JSONL encoding with a SHA-256 hash chain: each line carries the hash of the
//! line before it, so editing, inserting, dropping or reordering lines is
//! detectable. The hash of the last line (the *head*) is stored with the run's
//! results, which also makes truncation detectable.

use sha2::{Digest, Sha256};

use crate::event::{Event, EventKind};

/// `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a trace could not be read or did not verify.
#[derive(Debug, thiserror::Error)]
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
}

/// Result of a successful verification.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    /// Number of events.
    pub events: usize,
    /// Hash of the last line.
    pub head: String,
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serialises events (seq = position) as hash-chained JSONL. Returns the text
/// and the head hash.
pub fn to_jsonl(kinds: &[EventKind]) -> (String, String) {
    let mut out = String::with_capacity(kinds.len() * 160);
    let mut prev = GENESIS.to_string();
    for (i, kind) in kinds.iter().enumerate() {
        let ev = Event {
            seq: i as u64,
            prev,
            kind: kind.clone(),
        };
        let line = serde_json::to_string(&ev).expect("events always serialise");
        prev = sha_hex(line.as_bytes());
        out.push_str(&line);
        out.push('\n');
    }
    (out, prev)
}

/// Parses JSONL into events without checking the chain.
pub fn parse_jsonl(text: &str) -> Result<Vec<Event>, TraceError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TraceError::Parse {
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Parses and verifies the chain; with `expected_head`, also checks the head.
pub fn verify_jsonl(text: &str, expected_head: Option<&str>) -> Result<VerifyReport, TraceError> {
    let mut prev = GENESIS.to_string();
    let mut n = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ev: Event = serde_json::from_str(line).map_err(|e| TraceError::Parse {
            line: i + 1,
            message: e.to_string(),
        })?;
        if ev.prev != prev {
            return Err(TraceError::Chain {
                line: i + 1,
                expected: prev,
                found: ev.prev,
            });
        }
        if ev.seq != n as u64 {
            return Err(TraceError::Sequence {
                line: i + 1,
                expected: n as u64,
                found: ev.seq,
            });
        }
        prev = sha_hex(line.as_bytes());
        n += 1;
    }
    if let Some(h) = expected_head
        && h != prev
    {
        return Err(TraceError::Head {
            expected: h.to_string(),
            found: prev,
        });
    }
    Ok(VerifyReport {
        events: n,
        head: prev,
    })
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
        let evs = parse_jsonl(&text).unwrap();
        assert_eq!(evs[1].kind, sample()[1]);
    }

    #[test]
    fn tampering_is_detected() {
        let (text, head) = to_jsonl(&sample());
        let edited = text.replace("hello", "hellO");
        assert!(matches!(
            verify_jsonl(&edited, None),
            Err(TraceError::Chain { line: 3, .. })
        ));
        let dropped: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
        assert!(verify_jsonl(&dropped, None).is_ok());
        assert!(matches!(
            verify_jsonl(&dropped, Some(&head)),
            Err(TraceError::Head { .. })
        ));
    }
}
