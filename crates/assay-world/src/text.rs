//! World text compiled once per spec: `{{secret:..}}`, `{{slot:..}}` and
//! `{{args..}}` placeholders become indexed segments, so rendering an episode is
//! a few string pushes instead of a scan.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One piece of compiled text.
#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Secret(usize),
    Slot(usize),
    Arg(Vec<String>),
}

/// Text with its placeholders resolved to indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Text {
    segs: Vec<Seg>,
}

/// Names of the secrets and slots met while compiling, in first-seen order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names {
    pub secrets: Vec<String>,
    pub slots: Vec<String>,
}

impl Names {
    pub fn secret(&mut self, name: &str) -> usize {
        index_of(&mut self.secrets, name)
    }
    pub fn slot(&mut self, name: &str) -> usize {
        index_of(&mut self.slots, name)
    }
}

fn index_of(v: &mut Vec<String>, name: &str) -> usize {
    if let Some(i) = v.iter().position(|n| n == name) {
        return i;
    }
    v.push(name.to_string());
    v.len() - 1
}

/// Values of one episode that placeholders render to.
pub(crate) struct Ctx<'a> {
    pub secrets: &'a [String],
    pub slots: &'a [String],
}

impl Text {
    /// Compiles `src`; `args` says whether `{{args.X}}` is meaningful here.
    pub fn compile(src: &str, names: &mut Names, args: bool) -> Text {
        let mut segs = Vec::new();
        let mut last = 0;
        for p in assay_spec::template::placeholders(src) {
            let seg = match p.kind {
                "secret" => Seg::Secret(names.secret(p.name)),
                "slot" => Seg::Slot(names.slot(p.name)),
                "args" if args => Seg::Arg(p.name.split('.').map(str::to_string).collect()),
                _ => continue,
            };
            if p.span.start > last {
                segs.push(Seg::Lit(src[last..p.span.start].to_string()));
            }
            segs.push(seg);
            last = p.span.end;
        }
        if last < src.len() {
            segs.push(Seg::Lit(src[last..].to_string()));
        }
        Text { segs }
    }

    /// True when rendering can differ between episodes or calls.
    pub fn is_dynamic(&self) -> bool {
        self.segs.iter().any(|s| !matches!(s, Seg::Lit(_)))
    }

    /// Renders with the episode's values and, for custom tools, the call's arguments.
    pub fn render(&self, cx: &Ctx<'_>, args: Option<&Value>) -> String {
        if let [Seg::Lit(s)] = self.segs.as_slice() {
            return s.clone();
        }
        let mut out = String::new();
        for s in &self.segs {
            match s {
                Seg::Lit(l) => out.push_str(l),
                Seg::Secret(i) => out.push_str(cx.secrets.get(*i).map_or("", String::as_str)),
                Seg::Slot(i) => out.push_str(cx.slots.get(*i).map_or("", String::as_str)),
                Seg::Arg(path) => {
                    let mut v = args;
                    for k in path {
                        v = v.and_then(|v| match v {
                            Value::Object(m) => m.get(k),
                            Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                            _ => None,
                        });
                    }
                    match v {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => out.push_str(s),
                        Some(other) => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        out
    }
}

/// Longest random part a secret may ask for; guards against absurd specs.
const MAX_SECRET_LEN: usize = 4096;

/// The canary value of secret `name` in the episode seeded with `seed`:
/// `prefix` + `len` alphanumerics from a ChaCha20 stream keyed by SHA-256(seed, name).
pub(crate) fn canary(seed: u64, name: &str, prefix: &str, len: usize) -> String {
    const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = Sha256::new();
    h.update(b"assay-world/secret\0");
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    let mut rng = ChaCha20Rng::from_seed(h.finalize().into());
    let len = len.min(MAX_SECRET_LEN);
    let mut s = String::with_capacity(prefix.len() + len);
    s.push_str(prefix);
    let mut n = 0;
    while n < len {
        for b in rng.next_u64().to_le_bytes() {
            // Rejection sampling keeps the alphabet uniform: 248 = 4 * 62.
            if b < 248 && n < len {
                s.push(ALNUM[(b % 62) as usize] as char);
                n += 1;
            }
        }
    }
    s
}
