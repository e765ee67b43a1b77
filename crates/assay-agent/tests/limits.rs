//! Response bodies are read with a limit: a model endpoint that answers with
//! hundreds of megabytes (declared or streamed) fails the episode as a cap
//! instead of being held whole in memory and passing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use assay_agent::{
    AgentOptions, DEFAULT_RESPONSE_BYTES, ModelConfig, Provider, model_agent_with_key,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use common::FakeEnv;

/// 300 MB, the size from the report of an endpoint whose body was accepted whole.
const HUGE: u64 = 300_000_000;
const CHUNK: usize = 1 << 16;

#[derive(Clone, Copy)]
enum Shape {
    /// A `Content-Length` of 300 MB, then the bytes.
    Declared,
    /// Chunked transfer, no length announced.
    Chunked,
}

struct Huge {
    shape: Shape,
    /// Bytes the server handed to the connection, to show the client stopped early.
    produced: AtomicU64,
}

/// A valid Chat Completions body whose content is 300 MB of `x`: a client
/// reading it whole would accept it as a (very long) answer.
async fn huge(State(h): State<Arc<Huge>>) -> Response {
    let head = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":""#.to_vec();
    let tail = br#""}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.to_vec();
    let filler = HUGE - head.len() as u64 - tail.len() as u64;
    let chunks = filler.div_ceil(CHUNK as u64);
    let h2 = h.clone();
    let body = futures_util::stream::iter(0..chunks + 2).map(move |i| {
        let b = if i == 0 {
            Bytes::from(head.clone())
        } else if i == chunks + 1 {
            Bytes::from(tail.clone())
        } else {
            let n = if i == chunks {
                (filler - (chunks - 1) * CHUNK as u64) as usize
            } else {
                CHUNK
            };
            Bytes::from(vec![b'x'; n])
        };
        h2.produced.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(b)
    });
    let mut r = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    if let Shape::Declared = h.shape {
        r = r.header("content-length", HUGE.to_string());
    }
    r.body(Body::from_stream(body)).unwrap()
}

use futures_util::StreamExt;

async fn serve(shape: Shape) -> (String, Arc<Huge>) {
    let h = Arc::new(Huge {
        shape,
        produced: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(huge))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), h)
}

fn cfg(base_url: String) -> ModelConfig {
    let mut c = ModelConfig::new("huge-body", Provider::Openai, "m");
    c.base_url = Some(base_url);
    c.timeout_secs = Some(60.0);
    c.retries = Some(3);
    c.backoff_ms = Some(5);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mb_body_is_an_error_not_an_answer() {
    for shape in [Shape::Declared, Shape::Chunked] {
        let (url, h) = serve(shape).await;
        let agent = model_agent_with_key(&cfg(url), None, &AgentOptions::default()).unwrap();
        let mut env = FakeEnv::new(&["Hello?"]);
        let e = agent
            .run(&mut env)
            .await
            .expect_err("an oversized body fails");
        let msg = e.to_string();
        assert!(msg.contains("response_bytes"), "{msg}");
        assert!(env.replies.is_empty(), "nothing of the body became a reply");
        assert_eq!(env.caps.len(), 1, "{:?}", env.caps);
        let (limit, value, detail) = &env.caps[0];
        assert_eq!(limit, "response_bytes");
        assert_eq!(*value, DEFAULT_RESPONSE_BYTES as f64);
        assert!(detail.contains("exceeds the limit"), "{detail}");
        // Not retried: one request, one usage record.
        assert_eq!(env.usage.len(), 1);
        assert_eq!(env.usage[0].retries, 0);
        // The client stopped reading long before the end of the body.
        let produced = h.produced.load(Ordering::Relaxed);
        assert!(
            produced < HUGE / 4,
            "the server got to send {produced} bytes"
        );
        if let Shape::Chunked = shape {
            assert!(detail.contains("at least"), "{detail}");
        } else {
            assert!(detail.contains("Content-Length"), "{detail}");
        }
    }
}

#[tokio::test]
async fn the_limit_is_configurable_per_agent() {
    let answer = |n: usize| {
        serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "y".repeat(n)}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}
        })
    };
    let s = common::Server::start(vec![
        common::Step::Ok(answer(100)),
        common::Step::Ok(answer(5000)),
    ])
    .await;
    let mut c = common::config(common::Api::OpenAi, &s);
    c.response_bytes = Some(2000);
    c.timeout_secs = Some(5.0);
    let agent = model_agent_with_key(&c, None, &AgentOptions::default()).unwrap();
    // A body under the limit is an answer.
    let mut env = FakeEnv::new(&["one"]);
    agent.run(&mut env).await.unwrap();
    assert_eq!(env.replies, ["y".repeat(100)]);
    assert!(env.caps.is_empty());
    // A body over it is a cap, whatever its content.
    let mut env = FakeEnv::new(&["two"]);
    let e = agent.run(&mut env).await.err().unwrap();
    assert!(e.to_string().contains("2000 bytes"), "{e}");
    assert_eq!(env.caps.len(), 1);
    assert_eq!(env.caps[0].1, 2000.0);
    assert_eq!(s.requests().len(), 2, "the oversized answer is not retried");
    // Zero is not a limit anyone means.
    c.response_bytes = Some(0);
    assert!(model_agent_with_key(&c, None, &AgentOptions::default()).is_err());
}

#[tokio::test]
async fn an_oversized_recording_is_not_read() {
    let dir = tempfile_dir();
    let c = {
        let mut c = ModelConfig::new("rec", Provider::Openai, "m");
        c.base_url = Some("http://127.0.0.1:9/v1".into());
        c.response_bytes = Some(1000);
        c
    };
    let opts = AgentOptions {
        record: None,
        replay: Some(dir.clone()),
        ..AgentOptions::default()
    };
    // A recording of this run (seed 0, no agents file) without the entry.
    let manifest = serde_json::json!({"schema_version": 2, "assay_version": "test",
        "run_seed": 0, "agents_file_sha256": null});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let agent = model_agent_with_key(&c, None, &opts).unwrap();
    // Find the entry's file by running once: the error names it.
    let mut env = FakeEnv::new(&["hi"]);
    let e = agent.run(&mut env).await.err().unwrap().to_string();
    let file = e
        .split("(no ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the error names the missing file")
        .to_string();
    let file = std::path::PathBuf::from(file);
    let big = serde_json::json!({"schema_version": 2, "response": {
        "choices": [{"message": {"role": "assistant", "content": "z".repeat(5 << 20)}}]
    }});
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, big.to_string()).unwrap();
    let mut env = FakeEnv::new(&["hi"]);
    let e = agent.run(&mut env).await.err().unwrap().to_string();
    assert!(e.contains("response_bytes"), "{e}");
    assert_eq!(env.caps.len(), 1);
    assert!(env.replies.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "assay-agent-limits-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
