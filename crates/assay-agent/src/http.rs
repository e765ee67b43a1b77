//! The HTTP machinery every model adapter shares: per-request timeout, retries
//! with seeded exponential backoff and jitter (honouring `Retry-After`), a
//! concurrency limit per endpoint, and record/replay of request/response pairs.
//!
//! Adapters only build request bodies and read response bodies; everything that
//! makes a run survive a real endpoint lives here, once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::AgentError;

/// Longest wait a `Retry-After` header may impose, so a hostile or confused
/// server cannot stall a run for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Longest computed backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How one endpoint is reached.
pub(crate) struct EndpointConfig {
    pub base_url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub retries: u32,
    pub concurrency: usize,
    pub backoff: Duration,
    pub seed: u64,
    pub record: Option<PathBuf>,
    pub replay: Option<PathBuf>,
    /// Run seed and agents-file digest, stated in a recording's manifest.
    #[allow(dead_code)]
    pub run_seed: u64,
    #[allow(dead_code)]
    pub agents_file_sha256: Option<String>,
    /// Consecutive failed requests that open the circuit (0: never).
    #[allow(dead_code)]
    pub breaker: u32,
    /// Largest response body read, in bytes; a longer one fails the request.
    pub response_bytes: u64,
}

/// One endpoint, shared by every episode of the agent that owns it.
pub(crate) struct Endpoint {
    cfg: EndpointConfig,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    rng: Mutex<u64>,
}

/// Where a request sits: its episode and its place in the conversation. A
/// recording keys entries by this, never by the request body alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestAt {
    /// [`crate::Env::episode_key`] of the episode.
    pub episode: String,
    /// User turn, from 1.
    pub turn: u32,
    /// Request within the episode, from 1.
    pub index: u32,
}

/// A response accepted by the adapter, with what it cost to get.
pub(crate) struct Reply {
    pub body: Value,
    pub retries: u32,
    pub latency_ms: u64,
}

/// Why a request finally failed, with what was spent on it.
pub(crate) struct Failure {
    pub reason: String,
    pub retries: u32,
    pub latency_ms: u64,
    /// Set when the failure is a resource cap: (limit value, detail).
    pub cap: Option<(u64, String)>,
}

/// Outcome of one attempt.
enum Attempt {
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fatal(String),
    /// The response body is longer than `response_bytes`: not retried (a
    /// server that sent one oversized answer will likely send another).
    TooLarge(String),
}

impl Endpoint {
    /// Builds the client. Fails only if the TLS backend cannot start.
    pub fn new(cfg: EndpointConfig) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| AgentError::Config(format!("cannot build HTTP client: {e}")))?;
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let rng = Mutex::new(cfg.seed ^ 0x9E37_79B9_7F4A_7C15);
        Ok(Self {
            cfg,
            client,
            permits,
            rng,
        })
    }

    /// POSTs `body` to `base_url + path` and returns the first response that
    /// `check` accepts. Transport errors, timeouts, 408/429/5xx, non-JSON bodies
    /// and bodies `check` rejects are retried; other 4xx fail at once.
    pub async fn post(
        &self,
        at: &RequestAt,
        path: &str,
        body: &Value,
        check: impl Fn(&Value) -> Result<(), String>,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        let url = format!("{}{}", self.cfg.base_url.trim_end_matches('/'), path);
        let url_path = reqwest::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| path.to_string());
        let _ = at;
        let key = request_key(&url_path, body);
        let elapsed = |s: Instant| s.elapsed().as_millis() as u64;

        if let Some(dir) = &self.cfg.replay {
            let fail = |reason: String| Failure {
                reason,
                retries: 0,
                latency_ms: elapsed(start),
                cap: None,
            };
            let body = match replay(dir, &key, &url_path, self.cfg.response_bytes) {
                Ok(b) => b,
                Err(Replayed::TooLarge(detail)) => {
                    return Err(Failure {
                        reason: detail.clone(),
                        retries: 0,
                        latency_ms: elapsed(start),
                        cap: Some((self.cfg.response_bytes, detail)),
                    });
                }
                Err(Replayed::Failed(reason)) => return Err(fail(reason)),
            };
            check(&body).map_err(|e| fail(format!("recorded response {key} is malformed: {e}")))?;
            return Ok(Reply {
                body,
                retries: 0,
                latency_ms: elapsed(start),
            });
        }

        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _permit = self.permits.acquire().await.map_err(|_| Failure {
                    reason: "endpoint closed".into(),
                    retries: attempt,
                    latency_ms: elapsed(start),
                    cap: None,
                })?;
                self.once(&url, body).await
            };
            let (reason, retry_after) = match outcome {
                Ok(v) => match check(&v) {
                    Ok(()) => {
                        if let Some(dir) = &self.cfg.record {
                            record(dir, &key, &url_path, body, &v).map_err(|reason| Failure {
                                reason,
                                retries: attempt,
                                latency_ms: elapsed(start),
                                cap: None,
                            })?;
                        }
                        return Ok(Reply {
                            body: v,
                            retries: attempt,
                            latency_ms: elapsed(start),
                        });
                    }
                    Err(e) => (format!("malformed response: {e}"), None),
                },
                Err(Attempt::Retry {
                    reason,
                    retry_after,
                }) => (reason, retry_after),
                Err(Attempt::Fatal(reason)) => {
                    return Err(Failure {
                        reason,
                        retries: attempt,
                        latency_ms: elapsed(start),
                        cap: None,
                    });
                }
                Err(Attempt::TooLarge(detail)) => {
                    return Err(Failure {
                        reason: detail.clone(),
                        retries: attempt,
                        latency_ms: elapsed(start),
                        cap: Some((self.cfg.response_bytes, detail)),
                    });
                }
            };
            if attempt >= self.cfg.retries {
                return Err(Failure {
                    reason: format!(
                        "{reason} (gave up after {} attempt{})",
                        attempt + 1,
                        if attempt == 0 { "" } else { "s" }
                    ),
                    retries: attempt,
                    latency_ms: elapsed(start),
                    cap: None,
                });
            }
            let wait = retry_after
                .map(|d| d.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| self.backoff(attempt));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One attempt, bounded by the per-request timeout (connect to last byte).
    async fn once(&self, url: &str, body: &Value) -> Result<Value, Attempt> {
        let mut req = self.client.post(url).timeout(self.cfg.timeout).json(body);
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        let mut resp = req.send().await.map_err(|e| self.transport(&e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = self.read_body(&mut resp).await?;
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            return Err(Attempt::Retry {
                reason: format!("HTTP {status}: {}", snippet(&text)),
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(format!("HTTP {status}: {}", snippet(&text))));
        }
        serde_json::from_str(&text).map_err(|e| Attempt::Retry {
            reason: format!("response is not JSON ({e}): {}", snippet(&text)),
            retry_after: None,
        })
    }

    /// Reads the response body chunk by chunk, never holding more than
    /// `response_bytes` of it: a declared or actual longer body fails the
    /// request as soon as that is known, without reading the rest.
    async fn read_body(&self, resp: &mut reqwest::Response) -> Result<String, Attempt> {
        let limit = self.cfg.response_bytes;
        let too_large = |what: String| {
            Attempt::TooLarge(format!(
                "response body {what} exceeds the limit of {limit} bytes (response_bytes); \
                 not read further"
            ))
        };
        if let Some(len) = resp.content_length().filter(|l| *l > limit) {
            return Err(too_large(format!("of {len} bytes (Content-Length)")));
        }
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(&e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large(format!(
                    "of at least {} bytes",
                    body.len() + chunk.len()
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    fn transport(&self, e: &reqwest::Error) -> Attempt {
        let reason = if e.is_timeout() {
            format!(
                "request timed out after {} ms",
                self.cfg.timeout.as_millis()
            )
        } else {
            let mut s = format!("connection failed: {e}");
            let mut src = std::error::Error::source(e);
            while let Some(c) = src {
                s.push_str(&format!(": {c}"));
                src = c.source();
            }
            s
        };
        Attempt::Retry {
            reason,
            retry_after: None,
        }
    }

    /// Exponential backoff with jitter in [50%, 100%], drawn from the seeded
    /// generator so a run's waits are reproducible.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .cfg
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(MAX_BACKOFF);
        let r = {
            let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            splitmix(&mut s)
        };
        let frac = 0.5 + (r >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        base.mul_f64(frac)
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}...")
    } else {
        t
    }
}

/// JSON with object keys sorted at every level: the same request always hashes
/// the same, whatever order its fields were built in.
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), canonical(&o[k]));
            }
            Value::Object(m)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// Key of a request in a recording: SHA-256 of the URL path, a newline, and
/// the canonical JSON body. Host, port and headers (the API key) are left out
/// so a recording replays against any base URL and never holds a secret.
pub(crate) fn request_key(url_path: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(url_path.as_bytes());
    h.update(b"\n");
    h.update(canonical(body).to_string().as_bytes());
    hex::encode(h.finalize())
}

fn record(dir: &Path, key: &str, url_path: &str, req: &Value, resp: &Value) -> Result<(), String> {
    let doc = json!({
        "schema_version": 1,
        "key": key,
        "path": url_path,
        "request": canonical(req),
        "response": resp,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create recording directory {}: {e}", dir.display()))?;
    // Concurrent episodes often send the same first request: each writer needs
    // its own temporary file, and the last rename wins with identical content.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, dir.join(format!("{key}.json"))))
        .map_err(|e| format!("cannot write recording {key} in {}: {e}", dir.display()))
}

/// Why a recorded response could not be served.
enum Replayed {
    /// The recording is larger than the response limit (a cap, like a live
    /// oversized body).
    TooLarge(String),
    /// Missing, unreadable or malformed.
    Failed(String),
}

fn replay(dir: &Path, key: &str, url_path: &str, limit: u64) -> Result<Value, Replayed> {
    let file = dir.join(format!("{key}.json"));
    // The recording wraps the body with the request; allow for that, but never
    // read a file that could not hold an acceptable response.
    let allowed = limit.saturating_mul(2).saturating_add(1 << 20);
    if let Ok(m) = std::fs::metadata(&file)
        && m.len() > allowed
    {
        return Err(Replayed::TooLarge(format!(
            "recording {} has {} bytes, more than a response within the limit of {limit} \
             bytes (response_bytes) can need; not read",
            file.display(),
            m.len()
        )));
    }
    replay_read(&file, key, url_path, dir).map_err(Replayed::Failed)
}

fn replay_read(file: &Path, key: &str, url_path: &str, dir: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "request {key} to {url_path} is not in the recording {}; record it with --record",
                dir.display()
            )
        } else {
            format!("cannot read recording {}: {e}", file.display())
        }
    })?;
    let mut doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("recording {} is not JSON: {e}", file.display()))?;
    match doc.get_mut("response") {
        Some(v) => Ok(v.take()),
        None => Err(format!("recording {} has no `response`", file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_field_order() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        let b = json!({"messages": [{"content": "x", "role": "user"}], "model": "m"});
        assert_eq!(request_key("/v1/x", &a), request_key("/v1/x", &b));
        assert_ne!(request_key("/v1/x", &a), request_key("/v1/y", &a));
    }

    #[test]
    fn backoff_is_seeded_and_bounded() {
        let mk = |seed| {
            Endpoint::new(EndpointConfig {
                base_url: "http://127.0.0.1:1".into(),
                headers: vec![],
                timeout: Duration::from_millis(10),
                retries: 3,
                concurrency: 1,
                backoff: Duration::from_millis(100),
                seed,
                record: None,
                replay: None,
                run_seed: 0,
                agents_file_sha256: None,
                breaker: 5,
                response_bytes: 1 << 20,
            })
            .unwrap()
        };
        let (a, b) = (mk(7), mk(7));
        for i in 0..5 {
            let (x, y) = (a.backoff(i), b.backoff(i));
            assert_eq!(x, y);
            let base = Duration::from_millis(100) * (1 << i);
            assert!(x >= base / 2 && x <= base, "{x:?} vs {base:?}");
        }
    }
}
