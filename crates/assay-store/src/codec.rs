//! zstd with a case document as raw dictionary.
//!
//! A fresh context per blob costs more than compressing one episode, so
//! contexts are reused: one per worker thread for compression (the
//! dictionary is loaded into it per blob, which keeps its tables sized for a
//! small trace), and one per reader for decompression, with the last case's
//! prepared dictionary (episodes of a case come together in results order).

use std::cell::RefCell;

use zstd::zstd_safe::{self, CCtx, DCtx, DDict};

use crate::{LEVEL, MAX_BLOB};

thread_local! {
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
}

/// `bytes` compressed at [`LEVEL`] with `dict` as raw-content dictionary
/// (none when empty).
pub(crate) fn compress(bytes: &[u8], dict: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(bytes.len()));
    CCTX.with_borrow_mut(|c| {
        c.set_parameter(zstd_safe::CParameter::CompressionLevel(LEVEL))?;
        c.load_dictionary(dict)?;
        c.compress2(&mut out, bytes)
    })
    .expect("zstd compresses in memory into a buffer of its bound");
    out
}

/// Reads blobs compressed with one case document at a time.
pub(crate) struct Unpacker {
    digest: String,
    ddict: Option<DDict<'static>>,
    dctx: DCtx<'static>,
}

impl Default for Unpacker {
    fn default() -> Self {
        Unpacker {
            digest: String::new(),
            ddict: None,
            dctx: DCtx::create(),
        }
    }
}

impl Unpacker {
    /// Whether the dictionary of case `digest` is the one loaded.
    pub(crate) fn holds(&self, digest: &str) -> bool {
        self.ddict.is_some() && self.digest == digest
    }

    /// Loads the dictionary of case `digest` (its document's bytes).
    pub(crate) fn load(&mut self, digest: &str, dict: &[u8]) {
        self.ddict = Some(DDict::create(dict));
        self.digest = digest.to_string();
    }

    /// Decompresses a blob written with the loaded dictionary.
    pub(crate) fn decompress(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let ddict = self.ddict.as_ref().expect("a dictionary is loaded first");
        let mut out = Vec::with_capacity(capacity(bytes)?);
        self.dctx
            .decompress_using_ddict(&mut out, bytes, ddict)
            .map_err(|code| zstd_safe::get_error_name(code).to_string())?;
        Ok(out)
    }

    /// Decompresses a blob written without a dictionary (a case document).
    pub(crate) fn decompress_plain(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(capacity(bytes)?);
        self.dctx
            .decompress(&mut out, bytes)
            .map_err(|code| zstd_safe::get_error_name(code).to_string())?;
        Ok(out)
    }
}

/// Room for a blob's content: the size its frame header records, refusing
/// anything past [`MAX_BLOB`] (a store is input too: a crafted blob must
/// not exhaust memory).
fn capacity(bytes: &[u8]) -> Result<usize, String> {
    match zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(n)) if n <= MAX_BLOB as u64 => Ok(n as usize),
        Ok(Some(n)) => Err(format!("the blob would decompress to {n} bytes")),
        Ok(None) => Err("the blob does not record its size".into()),
        Err(_) => Err("the blob is not a zstd frame".into()),
    }
}
