//! Trace lines without their `prev` hashes, and back.
//!
//! Every trace line carries the SHA-256 of the line before it: 64 hex digits
//! of pure entropy per event, which no compressor can shrink and which make
//! up half of a compressed trace. Each is a function of the bytes before it,
//! so the store keeps `"prev":""` and recomputes the hash on read. The chain
//! loses nothing: a changed line changes every hash after it and the head,
//! and the head is in the sealed verdict. A trace is only stored this way
//! when every line holds the hash of the line before it, so restoring gives
//! back its exact bytes; otherwise it is stored as is.

use assay_trace::{GENESIS, sha256_hex};

const KEY: &str = ",\"prev\":\"";

/// Where the `prev` value of `line` starts, if the line begins
/// `{"seq":DIGITS,"prev":"` as every line the trace writer emits does.
fn prev_at(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !rest[digits..].starts_with(KEY) {
        return None;
    }
    Some("{\"seq\":".len() + digits + KEY.len())
}

/// The trace with every `prev` value emptied, or None when the trace is not
/// a chain this module can restore exactly.
pub(crate) fn elide(trace: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(trace).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut prev = GENESIS.to_string();
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n')?;
        let at = prev_at(body)?;
        if !body[at..].starts_with(&prev) || !body[at + prev.len()..].starts_with('"') {
            return None;
        }
        out.push_str(&body[..at]);
        out.push_str(&body[at + prev.len()..]);
        out.push('\n');
        prev = sha256_hex(body.as_bytes());
    }
    // Restoring gives back `trace` by construction: each stored line is its
    // original minus a `prev` just checked to equal the hash `restore`
    // recomputes from the line before.
    let out = out.into_bytes();
    debug_assert_eq!(restore(&out).as_deref(), Some(trace));
    Some(out)
}

/// The exact trace bytes of an elided trace.
pub(crate) fn restore(stored: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(stored).ok()?;
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut prev = GENESIS.to_string();
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n')?;
        let at = prev_at(body)?;
        let start = out.len();
        out.push_str(&body[..at]);
        out.push_str(&prev);
        out.push_str(&body[at..]);
        prev = sha256_hex(&out.as_bytes()[start..]);
        out.push('\n');
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use assay_trace::{EventKind, Role, to_jsonl, verify_jsonl};

    #[test]
    fn a_real_chain_round_trips_and_a_foreign_text_is_kept_as_is() {
        let (text, head) = to_jsonl(&[
            EventKind::Message {
                role: Role::User,
                content: "refund order 7; \"prev\":\"x\" in content".into(),
            },
            EventKind::Message {
                role: Role::Assistant,
                content: "done".into(),
            },
        ]);
        let short = elide(text.as_bytes()).expect("elidable");
        assert!(short.len() + 3 * 64 == text.len(), "every prev emptied");
        let back = restore(&short).unwrap();
        assert_eq!(back, text.as_bytes());
        assert!(verify_jsonl(std::str::from_utf8(&back).unwrap(), Some(&head)).is_ok());
        // Not a chain (a broken prev, no trailing newline): stored as is.
        assert!(elide(text.replacen("\"prev\":\"0", "\"prev\":\"1", 1).as_bytes()).is_none());
        assert!(elide(text.trim_end().as_bytes()).is_none());
        assert!(elide(b"not json\n").is_none());
    }
}
