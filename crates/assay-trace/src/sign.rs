//! Digests over a canonical JSON encoding, and ed25519 keys and signatures,
//! so a run's results can commit to every verdict and trace head with one
//! digest that a key holder signs.
//!
//! Key files are text. A secret key file holds one line
//! `assay-ed25519-secret-key <64 hex digits>` (the 32-byte RFC 8032 secret
//! seed); a public key file holds `assay-ed25519-public-key <64 hex digits>`
//! (the 32-byte RFC 8032 public key). A public key is also accepted as the bare
//! 64 hex digits, as stored in `results.json`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::chain::sha256_hex;

/// Label of a secret key file's line.
pub const SECRET_KEY_LABEL: &str = "assay-ed25519-secret-key";
/// Label of a public key file's line.
pub const PUBLIC_KEY_LABEL: &str = "assay-ed25519-public-key";

/// Why a key or signature could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text is not in the documented format.
    #[error("not an {expected} key file: {message}")]
    Format {
        /// Which kind of key was expected.
        expected: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The operating system gave no randomness for a new key.
    #[error("cannot generate a key: {0}")]
    Random(String),
    /// A signature is malformed.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A signature does not verify under the key.
    #[error("the signature does not verify under public key {0}")]
    BadSignature(String),
}

/// Writes `v` as JSON with object keys sorted (by code point) at every level
/// and no insignificant whitespace: the same value always gives the same
/// bytes, whatever order its maps were built in.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("strings serialise"));
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

/// SHA-256 (hex) of [`canonical_json`] of `v`.
pub fn canonical_digest(v: &Value) -> String {
    sha256_hex(canonical_json(v).as_bytes())
}

fn parse_hex32(text: &str, expected: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = hex::decode(text).map_err(|e| KeyError::Format {
        expected,
        message: format!("the key is not hex: {e}"),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| KeyError::Format {
        expected,
        message: format!("the key has {} bytes, not 32", b.len()),
    })
}

fn labelled<'a>(text: &'a str, label: &str, expected: &'static str) -> Result<&'a str, KeyError> {
    let line = text.trim();
    match line.split_once(char::is_whitespace) {
        Some((l, key)) if l == label => Ok(key.trim()),
        _ => Err(KeyError::Format {
            expected,
            message: format!("expected one line `{label} <64 hex digits>`"),
        }),
    }
}

/// An ed25519 signing key. Never printed by `Debug`.
#[derive(Clone)]
pub struct SecretKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public().to_hex())
    }
}

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The key from its 32-byte secret seed.
    pub fn from_bytes(seed: &[u8; 32]) -> SecretKey {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads a secret key file's text (`assay-ed25519-secret-key HEX`).
    pub fn from_text(text: &str) -> Result<SecretKey, KeyError> {
        let key = labelled(text, SECRET_KEY_LABEL, "ed25519 secret")?;
        Ok(SecretKey::from_bytes(&parse_hex32(key, "ed25519 secret")?))
    }

    /// The text of a secret key file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_KEY_LABEL} {}\n", hex::encode(self.0.to_bytes()))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `message`; the signature as 128 hex digits.
    pub fn sign(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer;
        hex::encode(self.0.sign(message).to_bytes())
    }
}

/// An ed25519 public key, to check signatures.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl PublicKey {
    /// Reads a public key: a public key file's text, or the bare 64 hex digits.
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        const WHAT: &str = "ed25519 public";
        let t = text.trim();
        let key = if t.starts_with(PUBLIC_KEY_LABEL) {
            labelled(t, PUBLIC_KEY_LABEL, WHAT)?
        } else if t.starts_with(SECRET_KEY_LABEL) {
            return Err(KeyError::Format {
                expected: WHAT,
                message: "this is a secret key; give its public key file".into(),
            });
        } else {
            t
        };
        let bytes = parse_hex32(key, WHAT)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| KeyError::Format {
                expected: WHAT,
                message: e.to_string(),
            })
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The text of a public key file.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_LABEL} {}\n", self.to_hex())
    }

    /// Checks a signature (128 hex digits) over `message`, strictly (no
    /// malleable or small-order encodings).
    pub fn verify(&self, message: &[u8], signature_hex: &str) -> Result<(), KeyError> {
        let bytes = hex::decode(signature_hex).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::Malformed(format!("{} bytes, not 64", b.len())))?;
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.0
            .verify_strict(message, &sig)
            .map_err(|_| KeyError::BadSignature(self.to_hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": "s\u{1b}"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"s\u001b","y":[1,{"p":1,"q":2}]},"b":1}"#
        );
        let mut m = serde_json::Map::new();
        m.insert(
            "a".into(),
            json!({"x": "s\u{1b}", "y": [1, {"p": 1, "q": 2}]}),
        );
        m.insert("b".into(), json!(1));
        let b = Value::Object(m);
        assert_eq!(canonical_digest(&a), canonical_digest(&b));
        assert_ne!(canonical_digest(&a), canonical_digest(&json!({"b": 2})));
    }

    #[test]
    fn keys_roundtrip_and_signatures_verify() {
        let k = SecretKey::from_bytes(&[7; 32]);
        let again = SecretKey::from_text(&k.to_text()).unwrap();
        assert_eq!(again.public(), k.public());
        let p = PublicKey::from_text(&k.public().to_text()).unwrap();
        assert_eq!(PublicKey::from_text(&p.to_hex()).unwrap(), p);
        let sig = k.sign(b"digest");
        p.verify(b"digest", &sig).unwrap();
        assert!(matches!(
            p.verify(b"digesT", &sig),
            Err(KeyError::BadSignature(_))
        ));
        let other = SecretKey::from_bytes(&[8; 32]).public();
        assert!(other.verify(b"digest", &sig).is_err());
        assert!(PublicKey::from_text(&k.to_text()).is_err());
        assert!(SecretKey::from_text(&p.to_text()).is_err());
        assert!(matches!(
            p.verify(b"digest", "zz"),
            Err(KeyError::Malformed(_))
        ));
    }

    #[test]
    fn generated_keys_differ() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.public(), b.public());
    }
}
