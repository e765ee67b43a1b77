//! Record/replay keyed by episode: epochs and cases that send identical
//! requests each keep their own replies, a recording replays offline against
//! a server that chose random ids, and a changed request, a missing entry or a
//! recording of another run is an error that says where.

#[path = "common/http_fakes.rs"]
mod http_fakes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::{Agent, AgentError, AgentOptions, ModelConfig, model_agent_with_key};
use http_fakes::{Api, KeyedEnv, RandomServer, dead_port_url, random};
use serde_json::Value;

const SHA: &str = "5f0c6a9d1e2b3c4d5f0c6a9d1e2b3c4d5f0c6a9d1e2b3c4d5f0c6a9d1e2b3c4d";
const TURNS: [&str; 2] = ["Please help.", "Anything else?"];

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "assay-agent-rr-{tag}-{}-{:x}",
        std::process::id(),
        random()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn recording(dir: &Path) -> AgentOptions {
    AgentOptions {
        record: Some(dir.to_path_buf()),
        replay: None,
        seed: 42,
        agents_file_sha256: Some(SHA.into()),
    }
}

fn replaying(dir: &Path) -> AgentOptions {
    AgentOptions {
        record: None,
        replay: Some(dir.to_path_buf()),
        seed: 42,
        agents_file_sha256: Some(SHA.into()),
    }
}

/// The same agent pointed at a port nothing listens on: any request that
/// leaves the machine fails.
fn offline(cfg: &ModelConfig, api: Api) -> ModelConfig {
    let mut c = cfg.clone();
    c.base_url = api.config(&dead_port_url()).base_url;
    c
}

async fn play(agent: &Arc<dyn Agent>, key: &str, turns: &[&str]) -> Result<KeyedEnv, String> {
    let mut env = KeyedEnv::new(key, turns);
    match agent.run(&mut env).await {
        Ok(()) => Ok(env),
        Err(AgentError::Backend(m)) => Err(m),
        Err(other) => panic!("not a backend error: {other}"),
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Records three epochs of two cases whose requests are identical, against a
/// server with random ids and replies; returns the live envs by key.
async fn record_epochs(api: Api, dir: &Path) -> (ModelConfig, Vec<(String, KeyedEnv)>) {
    let s = RandomServer::start().await;
    let cfg = api.config(&s.url);
    let a = model_agent_with_key(&cfg, Some("sk-secret".into()), &recording(dir)).unwrap();
    let mut live = Vec::new();
    for case in ["support/refund--a", "support/refund--b"] {
        for epoch in 0..3 {
            let key = format!("{case}/http-test-agent/{epoch}");
            let env = play(&a, &key, &TURNS).await.unwrap();
            assert_eq!(env.replies.len(), 2);
            assert_eq!(env.calls.len(), 2);
            live.push((key, env));
        }
    }
    assert_eq!(s.count(), 6 * 4, "{api:?}: a call and a reply per turn");
    s.stop();
    (cfg, live)
}

#[tokio::test]
async fn every_epoch_replays_its_own_replies_offline() {
    for api in Api::ALL {
        let dir = temp_dir(&format!("epochs-{api:?}"));
        let (cfg, live) = record_epochs(api, &dir).await;
        // Temperature > 0: every episode got different replies and ids.
        let mut all: Vec<&String> = live.iter().flat_map(|(_, e)| &e.replies).collect();
        all.sort();
        all.dedup();
        assert_eq!(
            all.len(),
            12,
            "{api:?}: the fake answered each request anew"
        );

        // The manifest states the run; no entry holds the key.
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest["run_seed"], 42);
        assert_eq!(manifest["agents_file_sha256"], SHA);
        assert_eq!(manifest["assay_version"], env!("CARGO_PKG_VERSION"));
        let recorded = files(&dir);
        assert_eq!(recorded.len(), 1 + 6 * 4, "{recorded:?}");
        for f in &recorded {
            assert!(!std::fs::read_to_string(f).unwrap().contains("sk-secret"));
            assert!(!f.file_name().unwrap().to_string_lossy().ends_with(".tmp"));
        }

        // Offline, in another order: each episode gets back its own replies
        // and the tool calls (with the server's ids) it made live.
        let b = model_agent_with_key(&offline(&cfg, api), None, &replaying(&dir)).unwrap();
        for (key, env) in live.iter().rev() {
            let again = play(&b, key, &TURNS).await.unwrap();
            assert_eq!(again.replies, env.replies, "{api:?} {key}");
            assert_eq!(again.calls, env.calls, "{api:?} {key}");
            let tokens = |e: &KeyedEnv| e.usage.iter().map(|u| u.input_tokens).collect::<Vec<_>>();
            assert_eq!(tokens(&again), tokens(env));
            assert!(again.usage.iter().all(|u| u.retries == 0));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_changed_request_names_the_first_difference() {
    for api in Api::ALL {
        let dir = temp_dir(&format!("changed-{api:?}"));
        let (cfg, _) = record_epochs(api, &dir).await;
        let b = model_agent_with_key(&offline(&cfg, api), None, &replaying(&dir)).unwrap();
        let key = "support/refund--a/http-test-agent/1";
        let err = play(&b, key, &["Please help!", "Anything else?"])
            .await
            .err()
            .expect("a changed prompt does not replay");
        assert!(
            err.contains(&format!("request 1 (turn 1) of episode `{key}` differs")),
            "{err}"
        );
        assert!(
            err.contains(" at /messages/"),
            "names a JSON pointer: {err}"
        );
        assert!(
            err.contains("recorded \"Please help.\", now \"Please help!\""),
            "{err}"
        );
        // A model option changed: the pointer says which.
        let mut warmer = offline(&cfg, api);
        warmer.temperature = Some(1.0);
        let c = model_agent_with_key(&warmer, None, &replaying(&dir)).unwrap();
        let err = play(&c, key, &TURNS).await.err().unwrap();
        assert!(
            err.contains("at /temperature: recorded 0.8, now 1.0"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_missing_entry_names_the_place() {
    let api = Api::OpenAi;
    let dir = temp_dir("missing");
    let (cfg, _) = record_epochs(api, &dir).await;
    let b = model_agent_with_key(&offline(&cfg, api), None, &replaying(&dir)).unwrap();
    // An episode that was never recorded (another epoch).
    let err = play(&b, "support/refund--a/http-test-agent/3", &TURNS)
        .await
        .err()
        .unwrap();
    assert!(
        err.contains(
            "request 1 (turn 1) of episode `support/refund--a/http-test-agent/3` is not in the \
             recording"
        ),
        "{err}"
    );
    assert!(err.contains(&dir.display().to_string()), "{err}");
    assert!(err.contains("--record"), "{err}");
    // A recorded episode that now goes on longer: its first two turns replay,
    // the third is missing.
    let err = play(
        &b,
        "support/refund--b/http-test-agent/0",
        &["Please help.", "Anything else?", "One more thing."],
    )
    .await
    .err()
    .unwrap();
    assert!(err.contains("request 5 (turn 3)"), "{err}");
    assert!(err.contains("0005.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites every recorded request of `dir` with `edit`.
fn edit_requests(dir: &Path, edit: impl Fn(&str) -> String) {
    for f in files(dir) {
        if f.file_name().unwrap() == "manifest.json" {
            continue;
        }
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let req = edit(&doc["request"].to_string());
        doc["request"] = serde_json::from_str(&req).unwrap();
        std::fs::write(&f, doc.to_string()).unwrap();
    }
}

#[tokio::test]
async fn server_chosen_ids_do_not_matter_but_structure_does() {
    for api in Api::ALL {
        let dir = temp_dir(&format!("ids-{api:?}"));
        let (cfg, live) = record_epochs(api, &dir).await;
        let prefix = match api {
            Api::OpenAi => "call_",
            Api::Anthropic => "toolu_",
        };
        // Other ids in the recorded requests than the ones sent now (as when
        // an adapter invents ids of its own): the replay still matches.
        edit_requests(&dir, |r| r.replace(&format!("\"{prefix}"), "\"other_"));
        let b = model_agent_with_key(&offline(&cfg, api), None, &replaying(&dir)).unwrap();
        for (key, env) in &live {
            let again = play(&b, key, &TURNS).await.unwrap();
            assert_eq!(again.replies, env.replies);
        }
        // A result that answers another call than recorded is a change. In
        // the recording, give every result a fresh id of its own.
        let (field, quote) = match api {
            Api::OpenAi => ("tool_call_id", "\"tool_call_id\":\"other_"),
            Api::Anthropic => ("tool_use_id", "\"tool_use_id\":\"other_"),
        };
        edit_requests(&dir, |r| r.replace(quote, &format!("\"{field}\":\"stray_")));
        let (key, _) = &live[0];
        let err = play(&b, key, &TURNS).await.err().unwrap();
        assert!(err.contains("request 2 (turn 1)"), "{err}");
        assert!(
            err.contains(&format!("/{field}: recorded \"<id 2>\", now \"<id 1>\"")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_recording_of_another_run_is_refused() {
    let api = Api::Anthropic;
    let dir = temp_dir("manifest");
    let (cfg, live) = record_epochs(api, &dir).await;
    let off = offline(&cfg, api);
    let key = &live[0].0;
    let mut other_file = replaying(&dir);
    other_file.agents_file_sha256 = Some("0".repeat(64));
    let b = model_agent_with_key(&off, None, &other_file).unwrap();
    let err = play(&b, key, &TURNS).await.err().unwrap();
    assert!(err.contains(SHA) && err.contains(&"0".repeat(64)), "{err}");
    assert!(err.contains("agents file"), "{err}");
    let mut no_file = replaying(&dir);
    no_file.agents_file_sha256 = None;
    let b = model_agent_with_key(&off, None, &no_file).unwrap();
    let err = play(&b, key, &TURNS).await.err().unwrap();
    assert!(err.contains(SHA) && err.contains("(none"), "{err}");
    let mut other_seed = replaying(&dir);
    other_seed.seed = 7;
    let b = model_agent_with_key(&off, None, &other_seed).unwrap();
    let err = play(&b, key, &TURNS).await.err().unwrap();
    assert!(err.contains("run seed 42, this run's is 7"), "{err}");
    // Recording another run into it is refused too, before any request.
    let s = RandomServer::start().await;
    let mut live_cfg = cfg.clone();
    live_cfg.base_url = api.config(&s.url).base_url;
    let mut rec = recording(&dir);
    rec.seed = 7;
    let c = model_agent_with_key(&live_cfg, None, &rec).unwrap();
    let err = play(&c, key, &TURNS).await.err().unwrap();
    assert!(err.contains("run seed 42, this run's is 7"), "{err}");
    assert_eq!(s.count(), 0, "refused before any request");
    s.stop();
    // A directory without a manifest is not a recording.
    let empty = temp_dir("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let b = model_agent_with_key(&off, None, &replaying(&empty)).unwrap();
    let err = play(&b, key, &TURNS).await.err().unwrap();
    assert!(err.contains("has no manifest.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}

#[tokio::test]
async fn episode_keys_never_escape_the_directory() {
    let api = Api::OpenAi;
    let dir = temp_dir("escape");
    let s = RandomServer::start().await;
    let cfg = api.config(&s.url);
    let a = model_agent_with_key(&cfg, None, &recording(&dir)).unwrap();
    let long = "k".repeat(4000);
    let keys = ["../../escape", "/etc/passwd", "..", long.as_str(), "a/b\\c"];
    for key in keys {
        play(&a, key, &["Hi."]).await.unwrap();
    }
    s.stop();
    let root = dir.canonicalize().unwrap();
    let recorded = files(&dir);
    assert_eq!(recorded.len(), 1 + keys.len() * 2);
    for f in &recorded {
        assert!(f.canonicalize().unwrap().starts_with(&root), "{f:?}");
        assert!(f.file_name().unwrap().len() < 100);
    }
    let b = model_agent_with_key(&offline(&cfg, api), None, &replaying(&dir)).unwrap();
    for key in keys {
        play(&b, key, &["Hi."]).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_and_replay_together_is_a_config_error() {
    let c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Openai, "m");
    let both = AgentOptions {
        record: Some("a".into()),
        replay: Some("b".into()),
        ..AgentOptions::default()
    };
    assert!(matches!(
        model_agent_with_key(&c, None, &both).err(),
        Some(AgentError::Config(_))
    ));
}
