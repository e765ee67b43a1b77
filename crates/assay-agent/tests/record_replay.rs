//! Record/replay: a recorded episode replays to the same calls and replies
//! with the server gone, and a request missing from the recording is an error.

mod common;

use std::path::PathBuf;

use assay_agent::{AgentError, AgentOptions, model_agent_with_key};
use common::{Api, FakeEnv, Server, Step, config};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "assay-agent-{tag}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn recorded_run_replays_identically_offline() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let dir = temp_dir(&format!("{api:?}"));
        let s = Server::start(vec![
            Step::Status(503, None),
            Step::Ok(api.calls(&[
                ("c1", "files__read", r#"{"path": "/a"}"#),
                ("c2", "mail__send", r#"{"path": "/b""#),
            ])),
            Step::Ok(api.text("Done once.")),
            Step::Ok(api.text("Done twice.")),
        ])
        .await;
        let cfg = config(api, &s);
        let rec = AgentOptions {
            record: Some(dir.clone()),
            replay: None,
            ..AgentOptions::default()
        };
        let a = model_agent_with_key(&cfg, Some("sk-secret".into()), &rec).unwrap();
        let mut live = FakeEnv::new(&["One.", "Two."]);
        a.run(&mut live).await.unwrap();
        s.stop();

        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(files.len(), 3, "one file per distinct accepted request");
        for f in files {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            assert!(
                !text.contains("sk-secret"),
                "a recording must not hold the key"
            );
        }

        // Replay: the server is stopped and the URL points nowhere useful.
        let mut offline = cfg.clone();
        offline.base_url = Some(match api {
            Api::OpenAi | Api::Responses => "http://127.0.0.1:9/v1".into(),
            Api::Anthropic => "http://127.0.0.1:9".into(),
        });
        let rep = AgentOptions {
            record: None,
            replay: Some(dir.clone()),
            ..AgentOptions::default()
        };
        let b = model_agent_with_key(&offline, None, &rep).unwrap();
        let mut replayed = FakeEnv::new(&["One.", "Two."]);
        b.run(&mut replayed).await.unwrap();
        assert_eq!(replayed.calls, live.calls);
        assert_eq!(replayed.replies, live.replies);
        assert_eq!(replayed.replies, vec!["Done once.", "Done twice."]);
        let tokens = |e: &FakeEnv| e.usage.iter().map(|u| u.input_tokens).collect::<Vec<_>>();
        assert_eq!(tokens(&replayed), tokens(&live));

        // A request that was never recorded is an error that says so.
        let mut other = FakeEnv::new(&["Something else."]);
        let err = b.run(&mut other).await.unwrap_err();
        let AgentError::Backend(msg) = err else {
            panic!("not a backend error")
        };
        assert!(msg.contains("is not in the recording"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
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
