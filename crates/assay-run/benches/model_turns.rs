//! Harness overhead per model turn: the OpenAI-compatible adapter driving real
//! episodes (world, trace, scoring) against a scripted Chat Completions server
//! on 127.0.0.1 that answers instantly. The server's own handler time is
//! measured and subtracted, so the figure is what Assay adds per model turn
//! (HTTP client, JSON, tool execution, recording, scoring).
//!
//! Run: `cargo bench -p assay-run --bench model_turns`; it prints
//! "harness µs per model turn" after criterion's own figures.
// `criterion_group!` generates a public function no doc comment can reach.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use assay_run::{RunConfig, run};
use axum::{Json, Router, extract::State, routing::post};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    server_ns: AtomicU64,
}

/// One tool call, then an answer.
async fn completions(State(c): State<Arc<Counters>>, Json(req): Json<Value>) -> Json<Value> {
    let t = Instant::now();
    let used_tool = req["messages"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
    let message = if used_tool {
        json!({"role": "assistant", "content": "Your refund will arrive within 5 days."})
    } else {
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "mail__read", "arguments": "{\"id\": 1}"}}]})
    };
    let body = json!({"id": "x", "object": "chat.completion", "model": req["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}});
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.server_ns
        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
    Json(body)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let counters = Arc::new(Counters::default());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(counters.clone());
    rt.spawn(async move { axum::serve(listener, app).await.expect("serve") });

    let spec_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/support/refund-request.yaml");
    let spec = assay_spec::load_file(&spec_path).expect("spec");
    let catalog = assay_synth::Catalog::embedded().expect("catalog");
    let opts = assay_synth::SynthOptions {
        techniques: Some(vec!["plain-instruction".into(), "base64-encoded".into()]),
        ..Default::default()
    };
    let cases: Vec<_> = assay_synth::synthesize(&spec, &catalog, &opts)
        .expect("synth")
        .into_iter()
        .map(|c| (c.case, spec_path.clone()))
        .collect();
    let cases = assay_run::prepare(cases).expect("prepare");
    let cfg: assay_agent::ModelConfig = serde_json::from_value(json!({
        "name": "bench", "provider": "openai", "model": "bench-1",
        "base_url": format!("http://{addr}/v1"), "api_key_env": "", "concurrency": 4
    }))
    .expect("config");
    let agent =
        assay_agent::model_agent_with_key(&cfg, None, &assay_agent::AgentOptions::default())
            .expect("agent");
    let agents = vec![agent];
    let dir = tempfile::tempdir().expect("tempdir");
    let run_cfg = RunConfig {
        seed: 0,
        epochs: 4,
        jobs: 4,
        out: Some(dir.path().to_path_buf()),
        judge: None,
    };

    let before = counters.requests.load(Ordering::Relaxed);
    rt.block_on(run(&cases, &agents, &run_cfg, vec![]))
        .expect("run");
    let per_run = counters.requests.load(Ordering::Relaxed) - before;

    let mut g = c.benchmark_group("model-turns");
    g.throughput(Throughput::Elements(per_run));
    g.sample_size(20);
    let (r0, s0) = (
        counters.requests.load(Ordering::Relaxed),
        counters.server_ns.load(Ordering::Relaxed),
    );
    let started = Instant::now();
    g.bench_function(format!("{per_run} model turns"), |b| {
        b.iter(|| {
            rt.block_on(run(&cases, &agents, &run_cfg, vec![]))
                .expect("run")
        });
    });
    g.finish();
    let wall = started.elapsed().as_nanos() as f64;
    let requests = (counters.requests.load(Ordering::Relaxed) - r0) as f64;
    let server = (counters.server_ns.load(Ordering::Relaxed) - s0) as f64;
    // Episodes overlap (jobs = 4), so divide wall time by requests: time per turn
    // as a user experiences throughput, with the server's handler time removed.
    println!(
        "harness µs per model turn: {:.1} (wall {:.1} µs/turn, server handler {:.1} µs/turn, {} turns; includes criterion's warm-up)",
        (wall - server) / requests / 1000.0,
        wall / requests / 1000.0,
        server / requests / 1000.0,
        requests
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
