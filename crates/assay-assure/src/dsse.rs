//! DSSE (Dead Simple Signing Envelope) v1: the signature covers the
//! pre-authentication encoding of the payload type and the payload, so a
//! signature over one type can never be replayed as another.

use assay_trace::{PublicKey, SecretKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// A signed payload: what the DSSE specification calls an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload, base64 (standard alphabet, padded).
    pub payload: String,
    /// How to read the payload (`application/vnd.in-toto+json` for statements).
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One signature per signer.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Which key signed: the hex ed25519 public key, so a verifier can pick
    /// the right key without being told.
    pub keyid: String,
    /// The ed25519 signature over [`pae`], base64.
    pub sig: String,
}

/// Why an envelope does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// The payload or a signature is not valid base64.
    #[error("the envelope's {what} is not valid base64")]
    Base64 {
        /// `payload` or `signature`.
        what: &'static str,
    },
    /// No signature of the envelope is by the given key.
    #[error("no signature of the envelope is by key {keyid}")]
    NoSignatureByKey {
        /// The key looked for.
        keyid: String,
    },
    /// The signature by the key does not match the payload and type.
    #[error("the signature by key {keyid} does not match the payload")]
    BadSignature {
        /// The key whose signature failed.
        keyid: String,
    },
}

/// The pre-authentication encoding: `DSSEv1 LEN(type) type LEN(body) body`,
/// lengths in ASCII decimal bytes, fields separated by one space.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Signs `payload` as `payload_type` with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SecretKey) -> Envelope {
        let sig_hex = key.sign(&pae(payload_type, payload));
        let sig = hex::decode(&sig_hex).expect("a signature in hex");
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![EnvelopeSignature {
                keyid: key.public().to_hex(),
                sig: STANDARD.encode(sig),
            }],
        }
    }

    /// Checks the signature by `key` and returns the payload it covers.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, DsseError> {
        let payload = STANDARD
            .decode(&self.payload)
            .map_err(|_| DsseError::Base64 { what: "payload" })?;
        let keyid = key.to_hex();
        let s = self
            .signatures
            .iter()
            .find(|s| s.keyid == keyid)
            .ok_or_else(|| DsseError::NoSignatureByKey {
                keyid: keyid.clone(),
            })?;
        let sig = STANDARD
            .decode(&s.sig)
            .map_err(|_| DsseError::Base64 { what: "signature" })?;
        key.verify(&pae(&self.payload_type, &payload), &hex::encode(sig))
            .map_err(|_| DsseError::BadSignature { keyid })?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the DSSE protocol description.
    #[test]
    fn pae_matches_the_specification_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn a_signed_envelope_verifies_and_any_flipped_byte_fails() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let env = Envelope::sign("application/vnd.in-toto+json", b"{\"a\":1}", &key);
        assert_eq!(env.verify(&key.public()).unwrap(), b"{\"a\":1}");
        // Another payload under the same signature.
        let mut forged = env.clone();
        forged.payload = STANDARD.encode(b"{\"a\":2}");
        assert!(matches!(
            forged.verify(&key.public()),
            Err(DsseError::BadSignature { .. })
        ));
        // Another type under the same signature.
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(retyped.verify(&key.public()).is_err());
        // Every single bit of the signature matters.
        let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
        for i in 0..sig.len() {
            let mut bad = sig.clone();
            bad[i] ^= 1;
            let mut e = env.clone();
            e.signatures[0].sig = STANDARD.encode(&bad);
            assert!(e.verify(&key.public()).is_err(), "byte {i}");
        }
        // Another key finds no signature of its own.
        let other = SecretKey::from_bytes(&[8; 32]);
        assert!(matches!(
            env.verify(&other.public()),
            Err(DsseError::NoSignatureByKey { .. })
        ));
    }
}
