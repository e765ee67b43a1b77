//! The HTTP machinery every model adapter shares: per-request timeout, error
//! classification and retries with seeded exponential backoff and jitter
//! (honouring `Retry-After`), a concurrency limit and a circuit breaker per
//! endpoint, and record/replay keyed by episode (see `recording.rs`).
//!
//! Adapters only build request bodies and read response bodies; everything that
//! makes a run survive a real endpoint lives here, once.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::AgentError;
use crate::recording::{Mode, Provenance, Recording, Replayed};

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
    pub run_seed: u64,
    pub agents_file_sha256: Option<String>,
    /// Consecutive failed requests that open the circuit (0: never).
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
    breaker: Mutex<Breaker>,
    recording: Option<Recording>,
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

/// What an HTTP status says about retrying the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// A passing server condition (408, 500, 502, 503, 504, 529, ...): retried.
    Retryable,
    /// 429: retried after the server's `Retry-After` when it gives one.
    RateLimit,
    /// A server error that retrying cannot fix (501, 505, ...): not retried.
    Permanent,
    /// The request itself is refused (400, 401, 403, 404, 422, ...): not retried.
    Client,
}

impl ErrorClass {
    /// Words that start a failure reason of this class.
    fn label(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable server error",
            ErrorClass::RateLimit => "rate limited",
            ErrorClass::Permanent => "permanent server error",
            ErrorClass::Client => "client error",
        }
    }
}

/// Classifies a non-2xx status. 500 is retryable here; [`Endpoint::post`]
/// stops retrying when the same request gets the same 500 body twice.
pub(crate) fn classify(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimit,
        408 => ErrorClass::Retryable,
        400..=499 => ErrorClass::Client,
        // 520-524: a CDN could not reach a live origin; 529: Anthropic
        // overloaded; 598/599: proxy network timeouts.
        500 | 502 | 503 | 504 | 520..=524 | 529 | 598 | 599 => ErrorClass::Retryable,
        // 501 Not Implemented, 505 HTTP Version, 506-511 configuration
        // errors, and anything outside 4xx/5xx after redirects were followed.
        _ => ErrorClass::Permanent,
    }
}

/// Outcome of one attempt.
enum Attempt {
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        /// The body of an HTTP 500, to spot a server that answers the same
        /// request with the same error every time.
        error_500: Option<String>,
    },
    Fatal(String),
    /// The response body is longer than `response_bytes`: not retried (a
    /// server that sent one oversized answer will likely send another).
    TooLarge(String),
}

/// Consecutive final failures of an endpoint's requests.
#[derive(Default)]
struct Breaker {
    consecutive: u32,
    last: String,
    open: bool,
}

impl Endpoint {
    /// Builds the client. Fails only if the TLS backend cannot start.
    pub fn new(cfg: EndpointConfig) -> Result<Self, AgentError> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| AgentError::Config(format!("cannot build HTTP client: {e}")))?;
        let permits = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
        let rng = Mutex::new(cfg.seed ^ 0x9E37_79B9_7F4A_7C15);
        let provenance = Provenance {
            run_seed: cfg.run_seed,
            agents_file_sha256: cfg.agents_file_sha256.clone(),
        };
        let recording = match (&cfg.record, &cfg.replay) {
            (Some(_), Some(_)) => {
                return Err(AgentError::Config(
                    "--record and --replay cannot be used together".into(),
                ));
            }
            (Some(d), None) => Some(Recording::new(d.clone(), Mode::Record, provenance)),
            (None, Some(d)) => Some(Recording::new(d.clone(), Mode::Replay, provenance)),
            (None, None) => None,
        };
        Ok(Self {
            cfg,
            client,
            permits,
            rng,
            breaker: Mutex::new(Breaker::default()),
            recording,
        })
    }

    /// POSTs `body` to `base_url + path` and returns the first response that
    /// `check` accepts. Retryable errors (transport, timeouts, 408, 5xx that
    /// may pass), rate limits (429), non-JSON bodies and bodies `check`
    /// rejects are retried; client and permanent errors fail at once. When
    /// replaying, the response comes from the recording entry for `at`.
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
        let fail = |reason: String, retries: u32| Failure {
            reason,
            retries,
            latency_ms: start.elapsed().as_millis() as u64,
            cap: None,
        };

        if let Some(rec) = self.recording.as_ref().filter(|r| r.is_replay()) {
            let body = match rec.load(at, &url_path, body, self.cfg.response_bytes) {
                Ok(b) => b,
                Err(Replayed::TooLarge(detail)) => {
                    return Err(Failure {
                        cap: Some((self.cfg.response_bytes, detail.clone())),
                        ..fail(detail, 0)
                    });
                }
                Err(Replayed::Failed(reason)) => return Err(fail(reason, 0)),
            };
            check(&body).map_err(|e| {
                fail(
                    format!(
                        "recorded response {} is malformed: {e}",
                        rec.entry_path(at).display()
                    ),
                    0,
                )
            })?;
            return Ok(Reply {
                body,
                retries: 0,
                latency_ms: start.elapsed().as_millis() as u64,
            });
        }

        if let Some(rec) = &self.recording {
            rec.ensure_ready().map_err(|reason| fail(reason, 0))?;
        }
        let mut attempt = 0u32;
        let mut last_500: Option<String> = None;
        loop {
            let outcome = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| fail("endpoint closed".into(), attempt))?;
                // Checked before every attempt: a request that waited for a
                // permit or a backoff while the circuit opened sends nothing.
                if let Some(reason) = self.circuit_open() {
                    return Err(fail(reason, attempt));
                }
                self.once(&url, body).await
            };
            let (reason, retry_after) = match outcome {
                Ok(v) => match check(&v) {
                    Ok(()) => {
                        self.succeeded();
                        if let Some(rec) = &self.recording {
                            rec.store(at, &url_path, body, &v)
                                .map_err(|reason| fail(reason, attempt))?;
                        }
                        return Ok(Reply {
                            body: v,
                            retries: attempt,
                            latency_ms: start.elapsed().as_millis() as u64,
                        });
                    }
                    Err(e) => {
                        last_500 = None;
                        (format!("malformed response: {e}"), None)
                    }
                },
                Err(Attempt::Retry {
                    reason,
                    retry_after,
                    error_500,
                }) => {
                    if error_500.is_some() && error_500 == last_500 {
                        let reason = format!(
                            "permanent server error: {} (the same request got the same HTTP \
                             500 answer twice in a row, so the server rejects this request \
                             itself; not retried further)",
                            reason.trim_start_matches("retryable server error ")
                        );
                        self.failed(&reason);
                        return Err(fail(reason, attempt));
                    }
                    last_500 = error_500;
                    (reason, retry_after)
                }
                Err(Attempt::Fatal(reason)) => {
                    self.failed(&reason);
                    return Err(fail(reason, attempt));
                }
                Err(Attempt::TooLarge(detail)) => {
                    self.failed(&detail);
                    return Err(Failure {
                        cap: Some((self.cfg.response_bytes, detail.clone())),
                        ..fail(detail, attempt)
                    });
                }
            };
            if attempt >= self.cfg.retries {
                let reason = format!(
                    "{reason} (gave up after {} attempt{})",
                    attempt + 1,
                    if attempt == 0 { "" } else { "s" }
                );
                self.failed(&reason);
                return Err(fail(reason, attempt));
            }
            let wait = retry_after
                .map(|d| d.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| self.backoff(attempt));
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// The reason every request fails while the circuit is open, if it is.
    fn circuit_open(&self) -> Option<String> {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open.then(|| {
            format!(
                "circuit open after {} consecutive failures; last: {} (this agent's \
                 remaining requests fail without being sent)",
                b.consecutive, b.last
            )
        })
    }

    /// Counts a request that finally failed; opens the circuit at `breaker`.
    fn failed(&self, reason: &str) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if b.open {
            return;
        }
        b.consecutive += 1;
        b.last = reason.to_string();
        if self.cfg.breaker > 0 && b.consecutive >= self.cfg.breaker {
            b.open = true;
        }
    }

    /// A request succeeded: the count of consecutive failures starts again.
    fn succeeded(&self) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if !b.open {
            b.consecutive = 0;
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
        let retry_after = retry_after(resp.headers(), SystemTime::now());
        let text = self.read_body(&mut resp).await?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| Attempt::Retry {
                reason: format!("malformed response: not JSON ({e}): {}", snippet(&text)),
                retry_after: None,
                error_500: None,
            });
        }
        let class = classify(status.as_u16());
        let shown = format!("{} HTTP {status}: {}", class.label(), snippet(&text));
        match class {
            ErrorClass::Retryable | ErrorClass::RateLimit => Err(Attempt::Retry {
                reason: shown,
                retry_after,
                error_500: (status.as_u16() == 500).then_some(text),
            }),
            ErrorClass::Permanent => Err(Attempt::Fatal(format!(
                "{shown} (not retried: retrying cannot fix it)"
            ))),
            ErrorClass::Client => Err(Attempt::Fatal(format!(
                "{shown} (not retried: the server refuses the request itself; check the \
                 agent's key, model, base_url and options)"
            ))),
        }
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
                "timeout: request timed out after {} ms",
                self.cfg.timeout.as_millis()
            )
        } else {
            let mut s = format!("transport error: connection failed: {e}");
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
            error_500: None,
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

/// The wait a server asks for: `retry-after-ms` (OpenAI), else `Retry-After`
/// as seconds or as an HTTP date (IMF-fixdate) relative to `now`.
fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(s) = number("retry-after") {
        return Some(Duration::from_secs_f64(s.min(1e9)));
    }
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let at = http_date(text)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP
/// date format servers may send; anything else is `None`.
fn http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let year: i64 = year.parse().ok().filter(|y| *y >= 1970)?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        for s in [400, 401, 403, 404, 409, 413, 422, 451] {
            assert_eq!(classify(s), ErrorClass::Client, "{s}");
        }
        for s in [408, 500, 502, 503, 504, 529] {
            assert_eq!(classify(s), ErrorClass::Retryable, "{s}");
        }
        for s in [501, 505, 507, 511, 304] {
            assert_eq!(classify(s), ErrorClass::Permanent, "{s}");
        }
        assert_eq!(classify(429), ErrorClass::RateLimit);
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_770); // 06 Nov 1994 08:49:30
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        assert_eq!(
            retry_after(&h(&[("retry-after", "2")]), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(
                &h(&[("retry-after", "1.5"), ("retry-after-ms", "250")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            retry_after(&h(&[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]), now),
            Some(Duration::from_secs(7))
        );
        // A date in the past means now; garbage means no hint.
        assert_eq!(
            retry_after(&h(&[("retry-after", "Sat, 05 Nov 1994 08:49:37 GMT")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&h(&[("retry-after", "-3")]), now), None);
        assert_eq!(
            http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(
            http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_835_438_400))
        );
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
