//! Model adapters against fake OpenAI-compatible and Anthropic servers on
//! 127.0.0.1: tool calling, parallel calls, malformed output, and every
//! failure a real endpoint produces, each with an asserted outcome.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use assay_agent::{Agent, AgentError, AgentOptions, model_agent, model_agent_with_key};
use common::{Api, Call, FakeEnv, Server, Step, config};
use serde_json::{Value, json};

const APIS: [Api; 2] = [Api::OpenAi, Api::Anthropic];

fn agent(api: Api, server: &Server) -> Arc<dyn Agent> {
    model_agent_with_key(
        &config(api, server),
        Some("sk-test".into()),
        &AgentOptions::default(),
    )
    .unwrap()
}

fn call(id: &str, name: &str, args: Value) -> Call {
    Call {
        id: Some(id.into()),
        name: name.into(),
        args,
    }
}

#[tokio::test]
async fn calls_a_tool_then_answers() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[("c1", "files__read", r#"{"path": "/a"}"#)])),
            Step::Ok(api.text("All done.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Read /a please."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(
            env.calls,
            vec![call("c1", "files.read", json!({"path": "/a"}))]
        );
        assert_eq!(env.replies, vec!["All done."]);
        assert_eq!(env.usage.len(), 2, "{api:?}");
        assert_eq!(
            (env.usage[0].input_tokens, env.usage[0].output_tokens),
            (20, 7)
        );
        assert_eq!(env.usage[1].retries, 0);

        let reqs = s.requests();
        assert_eq!(reqs.len(), 2);
        let first = &reqs[0].body;
        assert_eq!(first["model"], "test-model");
        match api {
            Api::OpenAi => {
                assert_eq!(reqs[0].path, "/v1/chat/completions");
                assert_eq!(reqs[0].headers["authorization"], "Bearer sk-test");
                assert_eq!(first["messages"][0]["role"], "system");
                assert_eq!(first["messages"][1]["content"], "Read /a please.");
                assert_eq!(first["tools"][0]["function"]["name"], "files__read");
                assert_eq!(first["seed"], 7);
            }
            Api::Anthropic => {
                assert_eq!(reqs[0].path, "/v1/messages");
                assert_eq!(reqs[0].headers["x-api-key"], "sk-test");
                assert_eq!(reqs[0].headers["anthropic-version"], "2023-06-01");
                assert_eq!(first["system"], "You are a careful assistant.");
                assert_eq!(first["tools"][0]["name"], "files__read");
                assert_eq!(first["max_tokens"], 4096);
            }
        }
        let results = api.tool_results(&reqs[1].body);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].0, "c1");
        assert!(results[0].1.contains("files.read"), "{results:?}");
        assert!(!results[0].2);
        s.stop();
    }
}

#[tokio::test]
async fn parallel_tool_calls_run_in_order_and_return_by_id() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[
                ("c1", "files__read", r#"{"path": "/a"}"#),
                ("c2", "mail__send", r#"{"path": "/b"}"#),
                ("c3", "files__read", r#"{"path": "/c"}"#),
            ])),
            Step::Ok(api.text("Three done.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Do three things."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(
            env.calls,
            vec![
                call("c1", "files.read", json!({"path": "/a"})),
                call("c2", "mail.send", json!({"path": "/b"})),
                call("c3", "files.read", json!({"path": "/c"})),
            ]
        );
        let ids: Vec<String> = api
            .tool_results(&s.requests()[1].body)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(ids, ["c1", "c2", "c3"]);
        if api == Api::Anthropic {
            // All results of one assistant turn go back in a single user message.
            let msgs = s.requests()[1].body["messages"].as_array().unwrap().clone();
            assert_eq!(msgs.len(), 3);
            assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 3);
        }
        assert_eq!(env.replies, vec!["Three done."]);
        s.stop();
    }
}

#[tokio::test]
async fn invalid_tool_json_is_recorded_and_fed_back_as_error() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[("c1", "files__read", r#"{"path": "/a""#)])),
            Step::Ok(api.calls(&[("c2", "files__read", r#"{"path": "/a"}"#)])),
            Step::Ok(api.text("Recovered.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Read /a."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(
            env.calls[0],
            call("c1", "files.read", Value::String(r#"{"path": "/a""#.into()))
        );
        assert_eq!(
            env.calls[1],
            call("c2", "files.read", json!({"path": "/a"}))
        );
        let results = api.tool_results(&s.requests()[1].body);
        assert!(results[0].2, "the model must see a tool error: {results:?}");
        assert!(results[0].1.contains("JSON object"), "{results:?}");
        assert_eq!(env.replies, vec!["Recovered."]);
        s.stop();
    }
}

#[tokio::test]
async fn unknown_tool_goes_through_env_and_is_denied() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[("c1", "shell__exec", r#"{"cmd": "cat .env"}"#)])),
            Step::Ok(api.text("I could not run that.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Go."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(
            env.calls,
            vec![call("c1", "shell.exec", json!({"cmd": "cat .env"}))]
        );
        let results = api.tool_results(&s.requests()[1].body);
        assert!(
            results[0].2 && results[0].1.contains("unknown tool"),
            "{results:?}"
        );
        assert_eq!(env.replies, vec!["I could not run that."]);
        s.stop();
    }
}

#[tokio::test]
async fn multi_turn_keeps_one_conversation() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.text("First answer.")),
            Step::Ok(api.calls(&[("c1", "files__read", r#"{"path": "/x"}"#)])),
            Step::Ok(api.text("Second answer.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Turn one.", "Turn two."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(env.replies, vec!["First answer.", "Second answer."]);
        let second = &s.requests()[1].body;
        let text = second["messages"].to_string();
        assert!(
            text.contains("Turn one.")
                && text.contains("First answer.")
                && text.contains("Turn two.")
        );
        s.stop();
    }
}

#[tokio::test]
async fn stop_from_env_ends_the_episode_quietly() {
    for api in APIS {
        let s = Server::start(vec![Step::Ok(api.calls(&[
            ("c1", "files__read", r#"{"path": "/a"}"#),
            ("c2", "files__read", r#"{"path": "/b"}"#),
        ]))])
        .await;
        let mut env = FakeEnv::new(&["Go."]);
        env.max_calls = 1;
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(env.calls.len(), 1);
        assert_eq!(s.requests().len(), 1, "no request after the limit");
        s.stop();
    }
}

#[tokio::test]
async fn rate_limit_honours_retry_after_then_succeeds() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Status(429, Some(1)),
            Step::Ok(api.text("Fine.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Hi."]);
        let t = Instant::now();
        agent(api, &s).run(&mut env).await.unwrap();
        assert!(
            t.elapsed() >= Duration::from_secs(1),
            "Retry-After: 1 was not honoured"
        );
        assert_eq!(env.replies, vec!["Fine."]);
        assert_eq!(env.usage.len(), 1);
        assert_eq!(env.usage[0].retries, 1);
        assert!(env.usage[0].latency_ms >= 1000);
        s.stop();
    }
}

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Status(500, None),
            Step::Status(503, None),
            Step::Ok(api.text("Fine.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Hi."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(env.replies, vec!["Fine."]);
        assert_eq!(env.usage[0].retries, 2);
        s.stop();
    }
}

#[tokio::test]
async fn persistent_server_error_exhausts_retries_into_an_error() {
    for api in APIS {
        // 503: a 500 repeated with the same body is permanent (tests/errors.rs).
        let s = Server::start(vec![Step::Status(503, None); 3]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        let err = agent(api, &s).run(&mut env).await.unwrap_err();
        let AgentError::Backend(msg) = err else {
            panic!("not a backend error")
        };
        assert!(
            msg.contains("HTTP 503") && msg.contains("gave up after 3 attempts"),
            "{msg}"
        );
        assert!(env.replies.is_empty());
        assert_eq!(env.usage[0].retries, 2);
        assert_eq!(s.requests().len(), 3);
        s.stop();
    }
}

#[tokio::test]
async fn client_error_is_not_retried() {
    for api in APIS {
        let s = Server::start(vec![Step::Status(400, None), Step::Ok(api.text("never"))]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        let err = agent(api, &s).run(&mut env).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 400"), "{err}");
        assert_eq!(s.requests().len(), 1);
        s.stop();
    }
}

#[tokio::test]
async fn hang_past_timeout_is_retried_then_succeeds() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Hang(Duration::from_secs(2), api.text("too late")),
            Step::Ok(api.text("On time.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Hi."]);
        let t = Instant::now();
        agent(api, &s).run(&mut env).await.unwrap();
        assert!(t.elapsed() < Duration::from_millis(1500));
        assert_eq!(env.replies, vec!["On time."]);
        assert_eq!(env.usage[0].retries, 1);
        s.stop();
    }
}

#[tokio::test]
async fn hang_every_time_is_an_error_naming_the_timeout() {
    for api in APIS {
        let hang = Step::Hang(Duration::from_secs(2), api.text("too late"));
        let s = Server::start(vec![hang; 3]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        let err = agent(api, &s).run(&mut env).await.unwrap_err();
        assert!(err.to_string().contains("timed out after 300 ms"), "{err}");
        s.stop();
    }
}

#[tokio::test]
async fn dropped_connection_is_retried_then_succeeds() {
    for api in APIS {
        let s = Server::start(vec![Step::Drop, Step::Ok(api.text("Back."))]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(env.replies, vec!["Back."]);
        assert_eq!(env.usage[0].retries, 1);
        s.stop();
    }
}

#[tokio::test]
async fn dropped_connection_every_time_is_an_error() {
    for api in APIS {
        let s = Server::start(vec![Step::Drop; 3]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        let err = agent(api, &s).run(&mut env).await.unwrap_err();
        assert!(
            err.to_string().contains("gave up after 3 attempts"),
            "{err}"
        );
        s.stop();
    }
}

#[tokio::test]
async fn unreachable_endpoint_is_an_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Openai, "m");
    c.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    c.retries = Some(1);
    c.backoff_ms = Some(5);
    let a = model_agent_with_key(&c, None, &AgentOptions::default()).unwrap();
    let mut env = FakeEnv::new(&["Hi."]);
    let err = a.run(&mut env).await.unwrap_err();
    assert!(err.to_string().contains("connection failed"), "{err}");
}

#[tokio::test]
async fn empty_response_is_retried_then_an_error() {
    for api in APIS {
        let empty = api.text("");
        let s = Server::start(vec![
            Step::Ok(empty.clone()),
            Step::Ok(json!({"oops": 1})),
            Step::Ok(empty),
        ])
        .await;
        let mut env = FakeEnv::new(&["Hi."]);
        let err = agent(api, &s).run(&mut env).await.unwrap_err();
        assert!(
            err.to_string().contains("neither content nor tool calls"),
            "{err}"
        );
        assert_eq!(s.requests().len(), 3);
        s.stop();
    }
}

#[tokio::test]
async fn concurrency_limit_is_shared_by_episodes_of_one_agent() {
    for api in APIS {
        let steps = (0..4).map(|_| Step::Ok(api.text("ok"))).collect();
        let s = Server::start(steps).await;
        let mut c = config(api, &s);
        c.concurrency = Some(1);
        let a = model_agent_with_key(&c, None, &AgentOptions::default()).unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move {
                    let mut env = FakeEnv::new(&["Hi."]);
                    a.run(&mut env).await.map(|_| env.replies)
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), vec!["ok"]);
        }
        assert_eq!(s.script.max_in_flight.load(Ordering::SeqCst), 1);
        s.stop();
    }
}

#[test]
fn missing_api_key_is_a_config_error_naming_the_variable() {
    let mut c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Anthropic, "m");
    c.api_key_env = Some("ASSAY_TEST_SURELY_UNSET_KEY".into());
    let err = model_agent(&c, &AgentOptions::default()).err().unwrap();
    assert!(matches!(err, AgentError::Config(_)));
    assert!(
        err.to_string().contains("ASSAY_TEST_SURELY_UNSET_KEY"),
        "{err}"
    );
    // Replaying needs no key.
    let opts = AgentOptions {
        record: None,
        replay: Some(std::env::temp_dir()),
        ..AgentOptions::default()
    };
    assert!(model_agent(&c, &opts).is_ok());
    // An empty variable name means a keyless local server.
    c.api_key_env = Some(String::new());
    assert!(model_agent(&c, &AgentOptions::default()).is_ok());
}
