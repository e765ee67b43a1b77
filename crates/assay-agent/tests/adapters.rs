//! Model adapters against fake Chat Completions, Anthropic Messages and
//! OpenAI Responses servers on 127.0.0.1: tool calling, parallel calls,
//! malformed and truncated output, random ids, cache tokens, request fields,
//! and every failure a real endpoint produces, each with an asserted outcome.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use assay_agent::{Agent, AgentError, AgentOptions, model_agent, model_agent_with_key};
use common::{Api, Call, FakeEnv, Server, Step, config};
use serde_json::{Value, json};

const APIS: [Api; 3] = [Api::OpenAi, Api::Anthropic, Api::Responses];

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
            Api::Responses => {
                assert_eq!(reqs[0].path, "/v1/responses");
                assert_eq!(reqs[0].headers["authorization"], "Bearer sk-test");
                assert_eq!(first["instructions"], "You are a careful assistant.");
                assert_eq!(first["input"][0]["role"], "user");
                assert_eq!(first["input"][0]["content"], "Read /a please.");
                assert_eq!(first["tools"][0]["name"], "files__read");
                assert_eq!(first["tools"][0]["type"], "function");
                assert_eq!(first["store"], false);
                assert!(first.get("seed").is_none());
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
        let text = second.to_string();
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

/// Hosted APIs hand out random tool-call ids: every result must go back under
/// the id the server gave in that very response, and the trace keeps it.
#[tokio::test]
async fn random_tool_call_ids_are_answered_by_the_ids_given() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[
                ("x", "files__read", r#"{"path": "/a"}"#),
                ("x", "files__read", r#"{"path": "/b"}"#),
            ])),
            Step::Ok(api.calls(&[("x", "mail__send", r#"{"path": "/c"}"#)])),
            Step::Ok(api.text("Done.")),
        ])
        .await;
        s.script.random_ids.store(true, Ordering::SeqCst);
        let mut env = FakeEnv::new(&["Go."]);
        agent(api, &s).run(&mut env).await.unwrap();
        let sent = s.script.sent.lock().unwrap().clone();
        let given: Vec<String> = sent[..2]
            .iter()
            .flat_map(|v| api.sent_calls(v))
            .map(|c| c.0)
            .collect();
        assert_eq!(given.len(), 3, "{api:?}");
        assert!(given.iter().all(|id| id != "x"), "ids were randomised");
        let traced: Vec<String> = env.calls.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(traced, given, "{api:?}");
        let reqs = s.requests();
        assert_eq!(reqs.len(), 3);
        let answered: Vec<String> = api
            .tool_results(&reqs[2].body)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(answered, given, "{api:?}");
        let history: Vec<String> = api
            .history_calls(&reqs[2].body)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(history, given, "{api:?}");
        assert_eq!(env.replies, vec!["Done."]);
        s.stop();
    }
}

/// A reply cut off in the middle of a tool call (`{"id": 12345`): the trace
/// keeps the raw text, the history holds `{}` (a server like llama.cpp
/// answers 500 to anything else, which the fake does too), the model is told
/// the call was not executed, and the episode goes on to end ok.
#[tokio::test]
async fn truncated_arguments_are_repaired_in_history_and_the_episode_goes_on() {
    for api in APIS {
        let raw = r#"{"id": 12345"#;
        let s = Server::start(vec![
            Step::Ok(api.truncated(api.calls(&[("c1", "files__read", raw)]))),
            Step::Ok(api.calls(&[("c2", "files__read", r#"{"path": "/a"}"#)])),
            Step::Ok(api.text("Recovered.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Read it."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(
            env.calls[0],
            call("c1", "files.read", Value::String(raw.into())),
            "{api:?}: the trace keeps the raw arguments"
        );
        assert_eq!(
            env.calls[1],
            call("c2", "files.read", json!({"path": "/a"}))
        );
        assert_eq!(env.replies, vec!["Recovered."]);
        let reqs = s.requests();
        assert_eq!(reqs.len(), 3, "{api:?}: no request was refused or retried");
        assert_eq!(s.script.invalid_json.load(Ordering::SeqCst), 0);
        for r in &reqs[1..] {
            let (id, args) = &api.history_calls(&r.body)[0];
            assert_eq!(id, "c1");
            match api {
                Api::Anthropic => assert_eq!(args, &json!({})),
                _ => assert_eq!(args, &json!("{}")),
            }
        }
        let results = api.tool_results(&reqs[1].body);
        assert!(results[0].2, "{api:?}: {results:?}");
        assert!(
            results[0].1.contains("not valid JSON") && results[0].1.contains("not executed"),
            "{results:?}"
        );
        assert!(results[0].1.contains(raw), "the model sees what it sent");
        let truncated: Vec<bool> = env.usage.iter().map(|u| u.truncated).collect();
        assert_eq!(truncated, [true, false, false], "{api:?}");
        s.stop();
    }
}

/// The fake refuses invalid history like llama.cpp, so the test above could
/// fail: an adapter that echoed `{"id": 12345` back would get HTTP 500.
#[tokio::test]
async fn fake_server_refuses_history_with_invalid_arguments() {
    let s = Server::start(vec![Step::Ok(Api::OpenAi.text("never"))]).await;
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "files__read", "arguments": "{\"id\": 12345"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Error: bad"}]});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", s.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(s.script.invalid_json.load(Ordering::SeqCst), 1);
    s.stop();
}

/// Arguments that are valid JSON but not an object (an array, a bare string)
/// are malformed too, for every provider.
#[tokio::test]
async fn non_object_arguments_are_malformed_calls() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.calls(&[("c1", "files__read", "[1, 2]")])),
            Step::Ok(api.calls(&[("c2", "files__read", r#""just a path""#)])),
            Step::Ok(api.text("Gave up.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Go."]);
        agent(api, &s).run(&mut env).await.unwrap();
        let args: Vec<Value> = env.calls.iter().map(|c| c.args.clone()).collect();
        let want = match api {
            // Anthropic sends `input` as JSON: the fake turns these texts into
            // an array (passed on as its JSON text) and a string (passed on).
            Api::Anthropic => vec![json!("[1,2]"), json!("just a path")],
            _ => vec![json!("[1, 2]"), json!(r#""just a path""#)],
        };
        assert_eq!(args, want, "{api:?}");
        let reqs = s.requests();
        assert_eq!(reqs.len(), 3);
        let results = api.tool_results(&reqs[2].body);
        assert!(
            results
                .iter()
                .all(|r| r.2 && r.1.contains("not valid JSON"))
        );
        s.stop();
    }
}

/// An empty reply cut off by the token limit is the turn's (empty) reply: not
/// retried, not an error, marked truncated; the next turn goes on.
#[tokio::test]
async fn empty_truncated_reply_is_the_turns_reply() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.truncated(api.text(""))),
            Step::Ok(api.text("Second.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["One.", "Two."]);
        agent(api, &s).run(&mut env).await.unwrap();
        assert_eq!(env.replies, vec!["", "Second."], "{api:?}");
        assert_eq!(s.requests().len(), 2, "{api:?}: not retried");
        assert!(env.usage[0].truncated && !env.usage[1].truncated);
        let second = s.requests()[1].body.to_string();
        assert!(second.contains("One.") && second.contains("Two."));
        if api != Api::OpenAi {
            // No empty assistant message: Anthropic would refuse it.
            let field = if api == Api::Anthropic {
                "messages"
            } else {
                "input"
            };
            let msgs = s.requests()[1].body[field].as_array().unwrap().clone();
            assert!(msgs.iter().all(|m| m["role"] == "user"), "{msgs:?}");
        }
        s.stop();
    }
}

/// Prompt caching: `input + cache read + cache write` is the whole prompt for
/// every provider (a 654-token prompt totals 654, never 1).
#[tokio::test]
async fn cache_tokens_are_counted_apart_and_total_the_prompt() {
    for api in APIS {
        let write = if api == Api::Anthropic { 650 } else { 0 };
        let s = Server::start(vec![
            Step::Ok(api.with_usage(
                api.calls(&[("c1", "files__read", r#"{"path": "/a"}"#)]),
                4,
                0,
                write,
                9,
            )),
            Step::Ok(api.with_usage(api.text("Done."), 1, 653, 0, 2)),
        ])
        .await;
        let mut env = FakeEnv::new(&["Go."]);
        agent(api, &s).run(&mut env).await.unwrap();
        let u = &env.usage;
        assert_eq!(
            (
                u[0].input_tokens,
                u[0].cache_read_tokens,
                u[0].cache_write_tokens,
                u[0].output_tokens
            ),
            (4, 0, write, 9),
            "{api:?}"
        );
        assert_eq!(
            (
                u[1].input_tokens,
                u[1].cache_read_tokens,
                u[1].cache_write_tokens,
                u[1].output_tokens
            ),
            (1, 653, 0, 2),
            "{api:?}"
        );
        let total = u[1].input_tokens + u[1].cache_read_tokens + u[1].cache_write_tokens;
        assert_eq!(total, 654, "{api:?}");
        s.stop();
    }
}

/// The raw usage blocks of each provider, as the real APIs write them.
#[tokio::test]
async fn provider_usage_fields_are_read_as_documented() {
    let cases = [
        (
            Api::OpenAi,
            json!({"prompt_tokens": 654, "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 640}}),
            (14, 640, 0),
        ),
        (
            Api::Anthropic,
            json!({"input_tokens": 1, "output_tokens": 5,
                "cache_read_input_tokens": 600, "cache_creation_input_tokens": 53}),
            (1, 600, 53),
        ),
        (
            Api::Responses,
            json!({"input_tokens": 654, "output_tokens": 5,
                "input_tokens_details": {"cached_tokens": 512}}),
            (142, 512, 0),
        ),
    ];
    for (api, usage, want) in cases {
        let mut reply = api.text("Hi.");
        reply["usage"] = usage;
        let s = Server::start(vec![Step::Ok(reply)]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        agent(api, &s).run(&mut env).await.unwrap();
        let u = env.usage[0];
        assert_eq!(
            (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens),
            want,
            "{api:?}"
        );
        assert_eq!(
            u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
            654
        );
        assert_eq!(u.output_tokens, 5);
        s.stop();
    }
}

/// The Responses API tool loop: `function_call` items go back with their
/// `call_id` and arguments, each answered by a `function_call_output`.
#[tokio::test]
async fn responses_api_tool_loop() {
    let api = Api::Responses;
    let s = Server::start(vec![
        Step::Ok(api.calls(&[
            ("call_a", "files__read", r#"{"path": "/a"}"#),
            ("call_b", "shell__exec", r#"{"cmd": "ls"}"#),
        ])),
        Step::Ok(api.text("Read it.")),
    ])
    .await;
    let mut c = config(api, &s);
    c.max_tokens = Some(300);
    c.temperature = Some(0.0);
    let a = model_agent_with_key(&c, Some("sk-test".into()), &AgentOptions::default()).unwrap();
    let mut env = FakeEnv::new(&["Read /a."]);
    a.run(&mut env).await.unwrap();
    let reqs = s.requests();
    assert_eq!(reqs.len(), 2);
    let first = &reqs[0].body;
    assert_eq!(first["max_output_tokens"], 300);
    assert_eq!(first["temperature"], 0.0);
    assert!(first.get("max_tokens").is_none() && first.get("messages").is_none());
    assert_eq!(
        first["tools"][1],
        json!({"type": "function", "name": "mail__send", "description": "The mail.send tool.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            "strict": false})
    );
    let input = reqs[1].body["input"].as_array().unwrap().clone();
    let kinds: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output"
        ]
    );
    assert_eq!(
        input[1],
        json!({"type": "function_call", "call_id": "call_a", "name": "files__read",
            "arguments": r#"{"path": "/a"}"#})
    );
    assert_eq!(input[3]["call_id"], "call_a");
    assert!(input[3]["output"].as_str().unwrap().contains("files.read"));
    assert_eq!(input[4]["call_id"], "call_b");
    assert!(
        input[4]["output"]
            .as_str()
            .unwrap()
            .starts_with("Error: unknown tool")
    );
    assert_eq!(
        env.calls,
        vec![
            call("call_a", "files.read", json!({"path": "/a"})),
            call("call_b", "shell.exec", json!({"cmd": "ls"})),
        ]
    );
    assert_eq!(env.replies, vec!["Read it."]);
    s.stop();
}

/// `extra_body` is merged last (it may override), `tool_choice` goes only
/// with requests that offer tools.
#[tokio::test]
async fn extra_body_and_tool_choice_reach_the_body() {
    for api in APIS {
        let choice = match api {
            Api::Anthropic => json!({"type": "any"}),
            _ => json!("required"),
        };
        let make = |s: &Server| {
            let mut c = config(api, s);
            c.temperature = Some(0.2);
            c.tool_choice = Some(choice.clone());
            c.extra_body = Some(
                json!({"top_p": 0.5, "temperature": 0.9, "metadata": {"run": "x"}})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            model_agent_with_key(&c, None, &AgentOptions::default()).unwrap()
        };
        let s = Server::start(vec![Step::Ok(api.text("A."))]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        make(&s).run(&mut env).await.unwrap();
        let body = &s.requests()[0].body;
        assert_eq!(body["top_p"], 0.5, "{api:?}");
        assert_eq!(body["temperature"], 0.9, "{api:?}: extra_body overrides");
        assert_eq!(body["metadata"], json!({"run": "x"}));
        assert_eq!(body["tool_choice"], choice, "{api:?}");
        s.stop();

        let s = Server::start(vec![Step::Ok(api.text("B."))]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        env.tools.clear();
        make(&s).run(&mut env).await.unwrap();
        let body = &s.requests()[0].body;
        assert!(body.get("tools").is_none(), "{api:?}");
        assert!(
            body.get("tool_choice").is_none(),
            "{api:?}: no tools, no tool_choice"
        );
        assert_eq!(body["top_p"], 0.5);
        s.stop();
    }
}

#[test]
fn extra_body_may_not_replace_what_the_case_defines() {
    for (field, value, hint) in [
        ("messages", json!([]), "conversation"),
        ("input", json!("x"), "conversation"),
        ("tools", json!([]), "tools"),
        ("system", json!("x"), "system prompt"),
        ("instructions", json!("x"), "system prompt"),
        ("model", json!("other"), "set `model`"),
        ("tool_choice", json!("auto"), "set `tool_choice`"),
        ("stream", json!(true), "streamed"),
    ] {
        let mut c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Openai, "m");
        let mut extra = serde_json::Map::new();
        extra.insert(field.into(), value);
        c.extra_body = Some(extra);
        let err = model_agent_with_key(&c, None, &AgentOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("`{field}`")) && err.contains(hint) && err.contains("agent `x`"),
            "{err}"
        );
    }
    let mut c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Openai, "m");
    c.extra_body = Some(
        json!({"stream": false, "top_p": 1})
            .as_object()
            .unwrap()
            .clone(),
    );
    assert!(model_agent_with_key(&c, None, &AgentOptions::default()).is_ok());

    let mut c = assay_agent::ModelConfig::new("x", assay_agent::Provider::Anthropic, "m");
    c.tool_choice = Some(json!("auto"));
    let err = model_agent_with_key(&c, None, &AgentOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tool_choice") && err.contains("{type: any}"),
        "{err}"
    );
    c.tool_choice = Some(json!({"type": "auto"}));
    assert!(model_agent_with_key(&c, None, &AgentOptions::default()).is_ok());
}

/// A server that omits call ids gets `call_1`, `call_2`, ... numbered across
/// the episode, the same for every provider.
#[tokio::test]
async fn missing_call_ids_get_fallback_ids_per_episode() {
    for api in APIS {
        let s = Server::start(vec![
            Step::Ok(api.without_ids(api.calls(&[
                ("x", "files__read", r#"{"path": "/a"}"#),
                ("x", "files__read", ""),
            ]))),
            Step::Ok(api.without_ids(api.calls(&[("x", "mail__send", "{}")]))),
            Step::Ok(api.text("Done.")),
        ])
        .await;
        let mut env = FakeEnv::new(&["Go."]);
        agent(api, &s).run(&mut env).await.unwrap();
        let ids: Vec<String> = env.calls.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(ids, ["call_1", "call_2", "call_3"], "{api:?}");
        // Empty arguments mean `{}` for every provider.
        assert_eq!(env.calls[1].args, json!({}), "{api:?}");
        let answered: Vec<String> = api
            .tool_results(&s.requests()[2].body)
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(answered, ids);
        s.stop();
    }
}

/// A world schema that is not an object goes out as `{"type": "object"}` for
/// every provider.
#[tokio::test]
async fn non_object_schema_falls_back_for_every_provider() {
    for api in APIS {
        let s = Server::start(vec![Step::Ok(api.text("ok"))]).await;
        let mut env = FakeEnv::new(&["Hi."]);
        env.tools[0].parameters = json!("not a schema");
        agent(api, &s).run(&mut env).await.unwrap();
        let tool = &s.requests()[0].body["tools"][0];
        let schema = match api {
            Api::OpenAi => &tool["function"]["parameters"],
            Api::Anthropic => &tool["input_schema"],
            Api::Responses => &tool["parameters"],
        };
        assert_eq!(schema, &json!({"type": "object"}), "{api:?}");
        s.stop();
    }
}

/// At temperature > 0 a server answers the same request differently each
/// time: every episode gets the reply the server gave it, nothing is reused.
#[tokio::test]
async fn replies_that_vary_per_request_reach_each_episode() {
    for api in APIS {
        let sampled = move |req: &Value| {
            assert_eq!(req["temperature"], 1.0);
            api.text(&format!("sample {}", common::random_hex()))
        };
        let s = Server::start((0..3).map(|_| Step::reply(sampled)).collect()).await;
        let mut c = config(api, &s);
        c.temperature = Some(1.0);
        let a = model_agent_with_key(&c, None, &AgentOptions::default()).unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut env = FakeEnv::new(&["Same question."]);
            a.run(&mut env).await.unwrap();
            got.extend(env.replies);
        }
        let reqs = s.requests();
        assert_eq!(reqs.len(), 3);
        assert!(
            reqs.iter().all(|r| r.body == reqs[0].body),
            "identical requests"
        );
        let sent: Vec<String> = s
            .script
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|v| match api {
                Api::OpenAi => v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .into(),
                Api::Anthropic => v["content"][0]["text"].as_str().unwrap().into(),
                Api::Responses => v["output"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .into(),
            })
            .collect();
        assert_eq!(got, sent, "{api:?}");
        assert!(got[0] != got[1] && got[1] != got[2]);
        s.stop();
    }
}
