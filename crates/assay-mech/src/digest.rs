//! SHA-256 digests of files and bytes, for evidence records.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{MechError, Result};

/// Digest of one input file.
///
/// Why: evidence must name exactly which bytes it was computed on, so an auditor can check
/// that a probe result belongs to the model and data they were shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileDigest {
    /// Path as given (or file name within a model directory).
    pub path: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Hash a file by streaming it.
pub fn file_digest(path: &Path, display: &str) -> Result<FileDigest> {
    let mut f = std::fs::File::open(path).map_err(|e| MechError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| MechError::io(path, e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok(FileDigest {
        path: display.to_string(),
        sha256: hex(&h.finalize()),
        bytes: n,
    })
}

/// Hex SHA-256 of bytes.
pub fn bytes_digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// One digest standing for a set of files (hash of their sorted `name:sha256` lines).
pub fn combined_digest(files: &[FileDigest]) -> String {
    let mut lines: Vec<String> = files
        .iter()
        .map(|f| format!("{}:{}\n", f.path, f.sha256))
        .collect();
    lines.sort();
    bytes_digest(lines.concat().as_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
