//! Error policy: which failures are retried (and how many requests that
//! costs), rate limits with `Retry-After`, a server that answers the same
//! request with the same 500 every time, and the per-agent circuit breaker
//! against a dead endpoint.

#[path = "common/http_fakes.rs"]
mod http_fakes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_agent::{Agent, AgentError, AgentOptions, ModelConfig, model_agent_with_key};
use http_fakes::{Answer, Api, Hangup, KeyedEnv, Scripted, dead_port_url, text};

fn agent(cfg: &ModelConfig) -> Arc<dyn Agent> {
    model_agent_with_key(cfg, None, &AgentOptions::default()).unwrap()
}

/// Runs one single-turn episode; the backend error message, if it failed.
async fn episode(agent: &Arc<dyn Agent>, key: &str) -> (KeyedEnv, Option<String>) {
    let mut env = KeyedEnv::new(key, &["Hello?"]);
    let err = agent.run(&mut env).await.err().map(|e| match e {
        AgentError::Backend(m) => m,
        other => panic!("not a backend error: {other}"),
    });
    (env, err)
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for api in Api::ALL {
        for status in [400, 401, 403, 404, 409, 413, 422] {
            let s = Scripted::start(vec![
                Answer::error(status, "refused"),
                Answer::ok(text(api, "never reached")),
            ])
            .await;
            let mut cfg = api.config(&s.url);
            cfg.retries = Some(4);
            let (env, err) = episode(&agent(&cfg), "ep").await;
            let err = err.expect("a client error fails the episode");
            assert_eq!(s.count(), 1, "{api:?} {status}: one request, no retry");
            assert!(err.contains("client error"), "{err}");
            assert!(err.contains(&format!("HTTP {status}")), "{err}");
            assert!(err.contains("not retried"), "{err}");
            assert_eq!(env.usage.len(), 1);
            assert_eq!(env.usage[0].retries, 0);
            s.stop();
        }
    }
}

#[tokio::test]
async fn permanent_server_errors_are_not_retried() {
    for status in [501, 505] {
        let s = Scripted::start(vec![Answer::error(status, "no")]).await;
        let mut cfg = Api::OpenAi.config(&s.url);
        cfg.retries = Some(4);
        let (_, err) = episode(&agent(&cfg), "ep").await;
        let err = err.unwrap();
        assert_eq!(s.count(), 1, "{status}");
        assert!(err.contains("permanent server error"), "{err}");
        assert!(err.contains(&format!("HTTP {status}")), "{err}");
        s.stop();
    }
}

#[tokio::test]
async fn unavailable_then_success_is_retried() {
    for api in Api::ALL {
        for status in [503, 502, 504, 408] {
            let s = Scripted::start(vec![
                Answer::error(status, "busy"),
                Answer::ok(text(api, "Fine.")),
            ])
            .await;
            let (env, err) = episode(&agent(&api.config(&s.url)), "ep").await;
            assert_eq!(err, None, "{api:?} {status}");
            assert_eq!(env.replies, ["Fine."]);
            assert_eq!(s.count(), 2);
            assert_eq!(env.usage[0].retries, 1);
            s.stop();
        }
    }
}

#[tokio::test]
async fn retries_stop_at_the_budget_and_say_so() {
    // A server in trouble: a different 500 body each time, then 503s.
    let s = Scripted::start(vec![
        Answer::error(500, "a"),
        Answer::error(500, "b"),
        Answer::error(503, "c"),
    ])
    .await;
    let (env, err) = episode(&agent(&Api::OpenAi.config(&s.url)), "ep").await;
    let err = err.unwrap();
    assert_eq!(s.count(), 3, "retries: 2 means three attempts");
    assert!(err.contains("retryable server error HTTP 503"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert_eq!(env.usage[0].retries, 2);
    s.stop();
}

#[tokio::test]
async fn rate_limits_wait_for_retry_after() {
    for api in Api::ALL {
        let s = Scripted::start(vec![
            Answer::error(429, "slow down").with("retry-after", "1"),
            Answer::ok(text(api, "Now.")),
        ])
        .await;
        let mut cfg = api.config(&s.url);
        cfg.backoff_ms = Some(1); // the computed backoff alone would be ~1 ms
        let (env, err) = episode(&agent(&cfg), "ep").await;
        assert_eq!(err, None);
        assert_eq!(env.replies, ["Now."]);
        let t = s.times();
        assert_eq!(t.len(), 2);
        let gap = t[1] - t[0];
        assert!(
            gap >= Duration::from_millis(950),
            "{api:?}: waited only {gap:?} after Retry-After: 1"
        );
        s.stop();
    }
    // A rate limit that never lifts is named as one.
    let s = Scripted::start(vec![
        Answer::error(429, "quota").with("retry-after-ms", "5"),
        Answer::error(429, "quota").with("retry-after-ms", "5"),
        Answer::error(429, "quota").with("retry-after-ms", "5"),
    ])
    .await;
    let (_, err) = episode(&agent(&Api::Anthropic.config(&s.url)), "ep").await;
    let err = err.unwrap();
    assert!(err.contains("rate limited HTTP 429"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    s.stop();
}

#[tokio::test]
async fn the_same_500_twice_is_permanent() {
    // llama.cpp answers a history it cannot parse with the same 500 each time.
    let body = r#"{"error":{"code":500,"message":"Failed to parse tool call arguments as JSON","type":"server_error"}}"#;
    let same = Answer {
        status: 500,
        headers: vec![],
        body: body.into(),
    };
    let s = Scripted::start(vec![same.clone(), same.clone(), same.clone(), same]).await;
    let mut cfg = Api::OpenAi.config(&s.url);
    cfg.retries = Some(4);
    let (env, err) = episode(&agent(&cfg), "ep").await;
    let err = err.unwrap();
    assert_eq!(s.count(), 2, "stopped after the second identical answer");
    assert!(err.contains("permanent server error"), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("Failed to parse tool call arguments"), "{err}");
    assert!(err.contains("same HTTP 500 answer twice"), "{err}");
    assert_eq!(env.usage[0].retries, 1);
    s.stop();

    // Different 500 bodies (a server in trouble) are retried to success.
    let s = Scripted::start(vec![
        Answer::error(500, "worker 1 crashed"),
        Answer::error(500, "worker 2 crashed"),
        Answer::ok(text(Api::OpenAi, "Made it.")),
    ])
    .await;
    let mut cfg = Api::OpenAi.config(&s.url);
    cfg.retries = Some(4);
    let (env, err) = episode(&agent(&cfg), "ep").await;
    assert_eq!(err, None);
    assert_eq!(env.replies, ["Made it."]);
    assert_eq!(s.count(), 3);
    s.stop();
}

#[tokio::test]
async fn malformed_success_responses_are_retried() {
    for api in Api::ALL {
        let s = Scripted::start(vec![
            Answer::ok(serde_json::json!({"unexpected": true})),
            Answer {
                status: 200,
                headers: vec![],
                body: "<html>gateway</html>".into(),
            },
            Answer::ok(text(api, "Proper.")),
        ])
        .await;
        let (env, err) = episode(&agent(&api.config(&s.url)), "ep").await;
        assert_eq!(err, None, "{api:?}");
        assert_eq!(env.replies, ["Proper."]);
        assert_eq!(s.count(), 3);
        s.stop();
    }
}

#[tokio::test]
async fn a_dead_endpoint_trips_the_breaker() {
    for api in Api::ALL {
        let mut cfg = api.config(&dead_port_url());
        cfg.retries = Some(2);
        cfg.breaker = Some(5);
        let a = agent(&cfg);
        let start = Instant::now();
        let mut errors = Vec::new();
        let mut retries = Vec::new();
        for i in 0..67 {
            let (env, err) = episode(&a, &format!("spec/case-{i}/agent/0")).await;
            assert_eq!(env.usage.len(), 1, "one request per episode");
            retries.push(env.usage[0].retries);
            errors.push(err.expect("every episode fails"));
        }
        for e in &errors[..5] {
            assert!(e.contains("transport error"), "{e}");
            assert!(e.contains("gave up after 3 attempts"), "{e}");
            assert!(!e.contains("circuit open"), "{e}");
        }
        for e in &errors[5..] {
            assert!(
                e.contains("circuit open after 5 consecutive failures; last: transport error"),
                "{e}"
            );
        }
        // breaker × (retries + 1) attempts, then none: the later requests
        // fail before anything is sent, with no retry.
        assert_eq!(retries[..5], [2; 5], "{api:?}");
        assert!(retries[5..].iter().all(|r| *r == 0), "{api:?}");
        // Generous: 67 × 3 attempts with backoff would still be fast here; the
        // counts above are the real assertion.
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}

#[tokio::test]
async fn the_breaker_counts_connections_exactly() {
    // A live port whose backend hangs up: every attempt is one connection.
    let h = Hangup::start().await;
    let mut cfg = Api::OpenAi.config(&h.url);
    cfg.retries = Some(2);
    cfg.breaker = Some(5);
    let a = agent(&cfg);
    for i in 0..67 {
        let (_, err) = episode(&a, &format!("ep-{i}")).await;
        assert!(err.is_some());
    }
    assert_eq!(
        h.count(),
        5 * 3,
        "breaker × (retries + 1) connections in all"
    );
    h.stop();

    // Episodes at once, as many as the runner plays of this agent
    // (`concurrency`, 8): those in flight when the circuit opens stop at
    // their next attempt.
    let h = Hangup::start().await;
    let mut cfg = Api::Anthropic.config(&h.url);
    cfg.retries = Some(2);
    cfg.breaker = Some(5);
    cfg.concurrency = Some(8);
    let a = agent(&cfg);
    let slots = Arc::new(tokio::sync::Semaphore::new(a.concurrency().unwrap()));
    let runs = (0..67).map(|i| {
        let (a, slots) = (a.clone(), slots.clone());
        async move {
            let _slot = slots.acquire().await.unwrap();
            episode(&a, &format!("ep-{i}")).await.1
        }
    });
    let errors = futures_util::future::join_all(runs).await;
    assert!(errors.iter().all(Option::is_some));
    let open = errors
        .iter()
        .flatten()
        .filter(|e| e.contains("circuit open after 5 consecutive failures"))
        .count();
    assert!(open >= 67 - 12, "{open} episodes ended by the open circuit");
    let n = h.count();
    assert!(
        (15..=(5 + 8 - 1) * 3).contains(&n),
        "{n} connections; at most (breaker + concurrency - 1) × attempts"
    );
    h.stop();
}

#[tokio::test]
async fn client_errors_trip_the_breaker_and_a_success_resets_it() {
    let ok = || Answer::ok(text(Api::OpenAi, "ok"));
    let e401 = || Answer::error(401, "invalid api key");
    let s = Scripted::start(vec![e401(), e401(), ok(), e401(), e401(), e401()]).await;
    let mut cfg = Api::OpenAi.config(&s.url);
    cfg.breaker = Some(3);
    let a = agent(&cfg);
    let mut errs = Vec::new();
    for i in 0..8 {
        errs.push(episode(&a, &format!("ep-{i}")).await.1);
    }
    assert!(errs[2].is_none(), "the success in between");
    assert_eq!(
        s.count(),
        6,
        "two failures, a success, three failures, then nothing"
    );
    for e in &errs[6..] {
        let e = e.as_deref().unwrap();
        assert!(
            e.contains("circuit open after 3 consecutive failures; last: client error HTTP 401"),
            "{e}"
        );
        assert!(e.contains("invalid api key"), "{e}");
    }
    s.stop();

    // breaker: 0 never opens.
    let s = Scripted::start((0..10).map(|_| e401()).collect()).await;
    let mut cfg = Api::OpenAi.config(&s.url);
    cfg.breaker = Some(0);
    let a = agent(&cfg);
    for i in 0..10 {
        let e = episode(&a, &format!("ep-{i}")).await.1.unwrap();
        assert!(!e.contains("circuit"), "{e}");
    }
    assert_eq!(s.count(), 10);
    s.stop();
}
