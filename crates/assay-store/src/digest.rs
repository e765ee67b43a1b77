//! The results seal computed one episode at a time.
//!
//! `results.json` is sealed with SHA-256 over its canonical JSON (keys sorted
//! at every level, no whitespace). Sorted keys put `episodes` between
//! `epochs` and `incomplete`, so the same bytes can be hashed by writing the
//! header's fields in order and streaming the episodes where their array
//! goes: the store's seal and the exported file's seal are one digest, and
//! sealing a million episodes needs none of them in memory.

use assay_report::{EpisodeResult, RunResults};
use assay_trace::canonical_json;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Streams the canonical JSON of a results file into SHA-256.
pub struct ResultsHasher {
    hash: Sha256,
    /// Canonical text of the fields after `episodes`, written by `finish`.
    tail: String,
    first: bool,
}

impl ResultsHasher {
    /// Starts the digest of `header` (its `episodes` and `integrity` are ignored).
    pub fn new(header: &RunResults) -> ResultsHasher {
        let mut v = serde_json::to_value(header).expect("results serialise");
        let map = v.as_object_mut().expect("results are an object");
        map.remove("integrity");
        map.insert("episodes".into(), Value::Array(Vec::new()));
        let mut keys: Vec<String> = map.keys().cloned().collect();
        keys.sort();
        let mut head = String::from("{");
        let mut tail = String::new();
        let mut after = false;
        for (i, k) in keys.iter().enumerate() {
            let into = if after { &mut tail } else { &mut head };
            if i > 0 {
                into.push(',');
            }
            into.push_str(&serde_json::to_string(k).expect("strings serialise"));
            into.push(':');
            if k == "episodes" {
                into.push('[');
                after = true;
                tail.push(']');
            } else {
                into.push_str(&canonical_json(&map[k]));
            }
        }
        tail.push('}');
        let mut hash = Sha256::new();
        hash.update(head.as_bytes());
        ResultsHasher {
            hash,
            tail,
            first: true,
        }
    }

    /// Adds the next episode, in results order.
    pub fn add(&mut self, e: &EpisodeResult) {
        if !self.first {
            self.hash.update(b",");
        }
        self.first = false;
        let v = serde_json::to_value(e).expect("verdicts serialise");
        self.hash.update(canonical_json(&v).as_bytes());
    }

    /// The digest, lower-case hex.
    pub fn finish(mut self) -> String {
        self.hash.update(self.tail.as_bytes());
        hex::encode(self.hash.finalize())
    }
}

/// A 64-bit key of an episode id, for the set of episodes a resumed run
/// skips (a collision among a million ids has odds of about 1 in 30 million,
/// and would surface as a store error, not a lost episode).
pub fn episode_key(id: &str) -> u64 {
    let d = Sha256::digest(id.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}
