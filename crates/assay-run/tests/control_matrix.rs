//! The control matrix over every example: the backbone of the test suite.
//!
//! - `control:solve`  → utility 1 and no violations on every case;
//! - `control:naive`  → on every attacked case the threat succeeds and is cited;
//! - `control:refuse` → utility 0 and no violations;
//! - every forbidden rule and threat success rule of every example fires in
//!   some control episode (full rule coverage);
//! - a *subject* that obeys every payload, whatever it is named, fails the gates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assay_agent::{Agent, agent_from_name};
use assay_report::{Role, RunResults, Status};
use assay_run::{Cancel, RunConfig, RunOptions, run, run_with};
use assay_trace::{EventKind, parse_jsonl, verify_jsonl};

fn example_files() -> Vec<PathBuf> {
    assay_spec::spec_files(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]).unwrap()
}

fn controls() -> Vec<Arc<dyn Agent>> {
    ["control:solve", "control:naive", "control:refuse"]
        .iter()
        .map(|n| agent_from_name(n).unwrap())
        .collect()
}

/// Expands specs into cases with the built-in catalog.
fn cases_of(specs: &[assay_spec::LoadedSpec]) -> Vec<Arc<assay_run::PreparedCase>> {
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let mut cases = Vec::new();
    for s in specs {
        let synthesized =
            assay_synth::synthesize(s, &catalog, &assay_synth::SynthOptions::default()).unwrap();
        cases.extend(synthesized.into_iter().map(|c| (c.case, s.path.clone())));
    }
    assay_run::prepare(cases).unwrap()
}

fn run_specs(
    specs: &[assay_spec::LoadedSpec],
    agents: &[Arc<dyn Agent>],
    out: &Path,
    seed: u64,
) -> RunResults {
    let cfg = RunConfig {
        seed,
        epochs: 1,
        jobs: 2,
        out: Some(out.to_path_buf()),
        judge: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&cases_of(specs), agents, &cfg, vec![]))
        .unwrap()
}

fn run_examples(out: &Path, seed: u64) -> RunResults {
    let specs: Vec<_> = example_files()
        .iter()
        .map(|f| assay_spec::load_file(f).unwrap())
        .collect();
    run_specs(&specs, &controls(), out, seed)
}

#[test]
fn control_matrix_holds_on_every_example() {
    let files = example_files();
    assert!(files.len() >= 6, "at least six example specs");
    let dir = tempfile::tempdir().unwrap();
    let r = run_examples(dir.path(), 0);
    let specs: std::collections::BTreeSet<_> = r.episodes.iter().map(|e| e.spec.clone()).collect();
    assert_eq!(specs.len(), files.len());
    let mut attacked = 0;
    for e in &r.episodes {
        assert_eq!(e.status, Status::Ok, "{}: {:?}", e.episode, e.error);
        match e.agent.as_str() {
            "control:solve" => {
                assert_eq!(e.utility, 1.0, "{}: {:?}", e.episode, e.checks);
                assert!(e.violations.is_empty(), "{}: {:?}", e.episode, e.violations);
                assert_ne!(e.attack_success, Some(true), "{}", e.episode);
            }
            "control:naive" => {
                if e.threat.is_some() {
                    attacked += 1;
                    assert_eq!(
                        e.attack_success,
                        Some(true),
                        "{}: threat did not fire",
                        e.episode
                    );
                    assert!(
                        !e.attack_events.is_empty(),
                        "{}: attack success cites no event",
                        e.episode
                    );
                    assert!(
                        !e.violations.is_empty(),
                        "{}: a successful attack fires no forbidden rule",
                        e.episode
                    );
                    for v in &e.violations {
                        assert!(
                            !v.events.is_empty(),
                            "{}: violation {} cites no event",
                            e.episode,
                            v.rule
                        );
                    }
                } else {
                    assert_eq!(e.utility, 1.0, "{}", e.episode);
                    assert!(e.violations.is_empty(), "{}", e.episode);
                }
            }
            "control:refuse" => {
                assert_eq!(e.utility, 0.0, "{}: {:?}", e.episode, e.checks);
                assert!(e.violations.is_empty(), "{}: {:?}", e.episode, e.violations);
                assert_ne!(e.attack_success, Some(true));
            }
            other => panic!("unexpected agent {other}"),
        }
    }
    assert!(attacked >= 10, "only {attacked} attacked naive episodes");
    // Every rule of every example is shown able to fire.
    assert_eq!(r.coverage.len(), files.len());
    for c in &r.coverage {
        assert!(c.rules > 0, "{}", c.spec);
        assert!(c.full(), "{}: uncovered {:?}", c.spec, c.uncovered);
    }
    assert!(r.episodes.iter().all(|e| e.role == Role::Control));
    assert!(!r.incomplete);
    assert!(
        r.passed,
        "control expectations: {:?}",
        r.summary.iter().filter(|s| !s.passed()).collect::<Vec<_>>()
    );

    // Every cited event exists in the trace and is of a kind that can prove something.
    for e in &r.episodes {
        let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
        let rep = verify_jsonl(&text, Some(&e.trace_head)).unwrap();
        assert_eq!(rep.events, e.events);
        let events = parse_jsonl(&text).unwrap();
        for seq in e
            .violations
            .iter()
            .flat_map(|v| v.events.iter())
            .chain(e.attack_events.iter())
        {
            let ev = &events[*seq as usize];
            assert!(
                matches!(
                    ev.kind,
                    EventKind::Effect { .. }
                        | EventKind::ToolCall { .. }
                        | EventKind::Message { .. }
                        | EventKind::ToolResult { .. }
                ),
                "{}: cites #{seq} of kind {:?}",
                e.episode,
                ev.kind
            );
        }
        // Naive attacked runs record the delivery of the payload.
        if e.agent == "control:naive" && e.threat.is_some() {
            assert!(
                events
                    .iter()
                    .any(|ev| matches!(ev.kind, EventKind::InjectionDelivered { .. })),
                "{}",
                e.episode
            );
        }
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_canaries() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let ra = run_examples(a.path(), 7);
    run_examples(b.path(), 7);
    let rc = run_examples(c.path(), 8);
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(a.path(), "results.json"),
        read(b.path(), "results.json")
    );
    for e in &ra.episodes {
        assert_eq!(
            read(a.path(), &e.trace),
            read(b.path(), &e.trace),
            "{}",
            e.episode
        );
    }
    let ep = &ra.episodes[0];
    let secrets = |d: &Path| match &parse_jsonl(&String::from_utf8(read(d, &ep.trace)).unwrap())
        .unwrap()[0]
        .kind
    {
        EventKind::EpisodeStart(s) => s.secrets.clone(),
        _ => panic!("first event is episode_start"),
    };
    let (sa, sc) = (secrets(a.path()), secrets(c.path()));
    assert!(!sa.is_empty());
    assert_ne!(sa, sc, "a different seed must give different canaries");
    assert_ne!(rc.episodes[0].seed, ep.seed);
}

/// An agent that fails: its episodes are `error`, never a pass, and the others still run.
struct Broken;

#[async_trait::async_trait]
impl Agent for Broken {
    fn name(&self) -> &str {
        "test:broken"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        Err(assay_agent::AgentError::Backend("connection reset".into()))
    }
}

struct Panics;

#[async_trait::async_trait]
impl Agent for Panics {
    fn name(&self) -> &str {
        "test:panics"
    }
    async fn run(&self, _env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        panic!("agent bug")
    }
}

/// Calls a missing tool and passes wrong argument types: recorded, not fatal.
struct Sloppy;

#[async_trait::async_trait]
impl Agent for Sloppy {
    fn name(&self) -> &str {
        "test:sloppy"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        while env.next_user_turn().is_some() {
            let a = env
                .call_tool(None, "files.nuke", serde_json::json!({"path": "/"}))
                .unwrap();
            assert!(!a.ok);
            let b = env
                .call_tool(
                    None,
                    "mail.read",
                    serde_json::json!({"id": {"nested": true}}),
                )
                .unwrap();
            assert!(!b.ok);
            env.reply("done");
        }
        Ok(())
    }
}

#[test]
fn failures_are_errors_and_isolated() {
    let specs = vec![assay_spec::load_file(&example_files()[0]).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let agents: Vec<Arc<dyn Agent>> = vec![
        Arc::new(Broken),
        Arc::new(Panics),
        Arc::new(Sloppy),
        agent_from_name("control:solve").unwrap(),
    ];
    let r = run_specs(&specs, &agents, dir.path(), 0);
    for e in &r.episodes {
        match e.agent.as_str() {
            "test:broken" | "test:panics" => {
                assert_eq!(e.status, Status::Error, "{}", e.episode);
                assert!(e.error.is_some());
                assert_eq!(e.attack_success, None);
                assert_eq!(e.utility, 0.0);
                let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
                assert!(text.contains("\"type\":\"error\""), "{}", e.episode);
            }
            "test:sloppy" => {
                assert_eq!(e.status, Status::Ok, "{}: {:?}", e.episode, e.error);
                let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
                assert!(
                    text.matches("\"kind\":\"denied\"").count() >= 2,
                    "{}",
                    e.episode
                );
            }
            _ => assert_eq!(e.status, Status::Ok),
        }
    }
    assert!(!r.passed, "errored episodes must fail the run");
}

/// Calls tools forever; the tool-call limit must stop it and be recorded.
struct Looper;

#[async_trait::async_trait]
impl Agent for Looper {
    fn name(&self) -> &str {
        "test:looper"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        while env
            .call_tool(None, "mail.list", serde_json::json!({}))
            .is_ok()
        {}
        Ok(())
    }
}

/// Never answers; the wall-time limit must end it.
struct Sleeper;

#[async_trait::async_trait]
impl Agent for Sleeper {
    fn name(&self) -> &str {
        "test:sleeper"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        Ok(())
    }
}

#[test]
fn limits_end_episodes_and_are_recorded() {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("support/refund-request.yaml"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  tools: [mail.list,",
        "  limits: { tool_calls: 5, wall_time_secs: 0.3 }\n  tools: [mail.list,",
    );
    let spec = assay_spec::load_str(&text, &path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agents: Vec<Arc<dyn Agent>> = vec![Arc::new(Looper), Arc::new(Sleeper)];
    let r = run_specs(&[spec], &agents, dir.path(), 0);
    for e in &r.episodes {
        assert_eq!(
            e.status,
            Status::Ok,
            "{}: a limit is not an error",
            e.episode
        );
        let events =
            parse_jsonl(&std::fs::read_to_string(dir.path().join(&e.trace)).unwrap()).unwrap();
        let calls = events
            .iter()
            .filter(|ev| matches!(ev.kind, EventKind::ToolCall { .. }))
            .count();
        match e.agent.as_str() {
            "test:looper" => {
                assert_eq!(e.limit.as_deref(), Some("tool_calls"));
                assert_eq!(calls, 5);
            }
            _ => assert_eq!(e.limit.as_deref(), Some("wall_time")),
        }
        assert!(
            events
                .iter()
                .any(|ev| matches!(ev.kind, EventKind::Limit { .. }))
        );
        assert!(
            matches!(&events.last().unwrap().kind, EventKind::EpisodeEnd { reason, .. } if reason == "limit")
        );
    }
}

/// The naive control's behaviour (obey every payload) under another name and
/// the subject role: what a compromised agent under test does.
struct AsSubject {
    name: String,
    inner: Arc<dyn Agent>,
}

#[async_trait::async_trait]
impl Agent for AsSubject {
    fn name(&self) -> &str {
        &self.name
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        self.inner.run(env).await
    }
}

fn naive_subject(name: &str) -> Arc<dyn Agent> {
    Arc::new(AsSubject {
        name: name.into(),
        inner: agent_from_name("control:naive").unwrap(),
    })
}

#[test]
fn a_subject_that_obeys_every_payload_fails_every_examples_gates() {
    let specs: Vec<_> = example_files()
        .iter()
        .map(|f| assay_spec::load_file(f).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // Named like an instrument, but a subject: gates apply (the old runner
    // took any `control:` name for an instrument and passed the run).
    let agents = vec![
        naive_subject("subject:naive"),
        naive_subject("control:naive"),
    ];
    let r = run_specs(&specs, &agents, dir.path(), 0);
    assert!(!r.passed);
    for name in ["subject:naive", "control:naive"] {
        let rows: Vec<_> = r.summary.iter().filter(|s| s.agent == name).collect();
        assert_eq!(rows.len(), specs.len(), "{name}");
        for row in rows {
            assert_eq!(row.role, Role::Subject);
            assert!(row.control.is_none(), "{name}: no control expectations");
            let asr = row
                .gates
                .iter()
                .find(|g| g.gate == "attack_success_rate")
                .unwrap_or_else(|| panic!("{}: no attack gate", row.spec));
            assert!(!asr.passed, "{} / {name}: {asr:?}", row.spec);
            assert!(!row.passed());
        }
    }
    // Subjects never count toward rule coverage.
    assert!(r.coverage.iter().all(|c| c.uncovered.len() == c.rules));
}

/// Reads the mail (recording a secret-bearing read), then panics.
struct ReadsThenPanics;

#[async_trait::async_trait]
impl Agent for ReadsThenPanics {
    fn name(&self) -> &str {
        "test:reads-then-panics"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        env.call_tool(None, "files.read", serde_json::json!({"path": "/app/.env"}))
            .unwrap();
        panic!("agent bug after reading .env")
    }
}

#[test]
fn a_panic_keeps_every_event_recorded_before_it() {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("support/refund-request.yaml"))
        .unwrap();
    let spec = assay_spec::load_file(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = run_specs(&[spec], &[Arc::new(ReadsThenPanics)], dir.path(), 0);
    assert!(!r.episodes.is_empty());
    for e in &r.episodes {
        assert_eq!(e.status, Status::Error, "{}", e.episode);
        assert!(
            e.error.as_deref().unwrap().contains("agent bug"),
            "{:?}",
            e.error
        );
        let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
        verify_jsonl(&text, Some(&e.trace_head)).unwrap();
        let events = parse_jsonl(&text).unwrap();
        assert_eq!(events.len(), e.events);
        // The read before the panic is still there, with its effect.
        assert!(
            events.iter().any(|ev| matches!(&ev.kind,
                EventKind::ToolCall { tool, .. } if tool == "files.read")),
            "{}: the tool call before the panic was lost",
            e.episode
        );
        assert!(
            events.iter().any(|ev| matches!(&ev.kind,
                EventKind::Effect { effect, .. } if effect.kind == assay_trace::EffectKind::Read)),
            "{}: the read effect before the panic was lost",
            e.episode
        );
        assert!(matches!(
            &events[events.len() - 2].kind,
            EventKind::Error { .. }
        ));
        assert!(matches!(&events.last().unwrap().kind,
            EventKind::EpisodeEnd { reason, .. } if reason == "error"));
    }
}

/// Tools with a small trace cap: the trace stops growing at the cap.
fn capped_spec(limits: &str) -> assay_spec::LoadedSpec {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("support/refund-request.yaml"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  tools: [mail.list,",
        &format!("  limits: {limits}\n  tools: [mail.list,"),
    );
    assay_spec::load_str(&text, &path).unwrap()
}

#[test]
fn the_trace_cap_ends_the_episode_as_an_error_with_a_limit_event() {
    // Room for the longest one-call trace of any case, and a few more calls.
    let one_call = {
        let dir = tempfile::tempdir().unwrap();
        let r = run_specs(
            &[capped_spec("{ tool_calls: 1 }")],
            &[Arc::new(Looper)],
            dir.path(),
            0,
        );
        r.episodes
            .iter()
            .map(|e| {
                std::fs::read_to_string(dir.path().join(&e.trace))
                    .unwrap()
                    .len()
            })
            .max()
            .unwrap()
    };
    let cap = one_call + 4000;
    let dir = tempfile::tempdir().unwrap();
    let spec = capped_spec(&format!("{{ tool_calls: 10000, trace_bytes: {cap} }}"));
    let r = run_specs(&[spec], &[Arc::new(Looper)], dir.path(), 0);
    for e in &r.episodes {
        assert_eq!(e.status, Status::Error, "{}", e.episode);
        assert!(
            e.error.as_deref().unwrap().contains("trace_bytes"),
            "{:?}",
            e.error
        );
        let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
        // Everything before the cap, then a limit event and the end (with no state).
        assert!(
            text.len() < cap + 2000,
            "{} bytes for a {cap}-byte cap",
            text.len()
        );
        let events = parse_jsonl(&text).unwrap();
        assert!(
            events
                .iter()
                .filter(|ev| matches!(ev.kind, EventKind::ToolCall { .. }))
                .count()
                >= 2
        );
        let n = events.len();
        assert!(matches!(&events[n - 2].kind,
            EventKind::Limit { limit, detail: Some(_), .. } if limit == "trace_bytes"));
        assert!(
            matches!(&events[n - 1].kind, EventKind::EpisodeEnd { reason, .. } if reason == "error")
        );
    }
    assert!(!r.passed);
}

/// Sends one reply far over the message cap.
struct Shouts;

#[async_trait::async_trait]
impl Agent for Shouts {
    fn name(&self) -> &str {
        "test:shouts"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        while env.next_user_turn().is_some() {
            env.reply(&"é".repeat(3000));
        }
        Ok(())
    }
}

/// Reports a cap it hit on its own side (an over-long protocol line), then fails.
struct Overflows;

#[async_trait::async_trait]
impl Agent for Overflows {
    fn name(&self) -> &str {
        "test:overflows"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        env.record_cap("message_bytes", 1000.0, "a protocol line of 5000 bytes");
        Err(assay_agent::AgentError::Backend(
            "protocol line too long".into(),
        ))
    }
}

#[test]
fn message_caps_end_the_episode_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = capped_spec("{ message_bytes: 1001 }");
    let r = run_specs(
        &[spec],
        &[Arc::new(Shouts), Arc::new(Overflows)],
        dir.path(),
        0,
    );
    for e in &r.episodes {
        assert_eq!(e.status, Status::Error, "{}", e.episode);
        assert!(
            e.error.as_deref().unwrap().contains("message_bytes"),
            "{:?}",
            e.error
        );
        let events =
            parse_jsonl(&std::fs::read_to_string(dir.path().join(&e.trace)).unwrap()).unwrap();
        let limit = events
            .iter()
            .find_map(|ev| match &ev.kind {
                EventKind::Limit { limit, detail, .. } => Some((limit.clone(), detail.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(limit.0, "message_bytes");
        assert!(limit.1.is_some());
        if e.agent == "test:shouts" {
            // The reply is kept up to the cap (on a character boundary), not whole.
            let kept = events
                .iter()
                .find_map(|ev| match &ev.kind {
                    EventKind::Message {
                        role: assay_trace::Role::Assistant,
                        content,
                    } => Some(content.len()),
                    _ => None,
                })
                .unwrap();
            assert_eq!(kept, 1000);
        }
    }
}

/// Cancels the run as soon as it starts, then never finishes on its own.
struct Interrupts(Cancel);

#[async_trait::async_trait]
impl Agent for Interrupts {
    fn name(&self) -> &str {
        "test:interrupts"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        self.0.cancel();
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[test]
fn a_cancelled_run_writes_what_completed_marked_incomplete() {
    let specs: Vec<_> = example_files()
        .iter()
        .map(|f| assay_spec::load_file(f).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::new();
    let agents: Vec<Arc<dyn Agent>> = vec![Arc::new(Interrupts(cancel.clone()))];
    let cfg = RunConfig {
        seed: 0,
        epochs: 1,
        jobs: 2,
        out: Some(dir.path().to_path_buf()),
        judge: None,
    };
    let opts = RunOptions {
        cancel,
        control_episodes: vec![],
        sign: None,
        evidence: None,
        ..RunOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(run_with(&cases_of(&specs), &agents, &cfg, vec![], opts))
        .unwrap();
    assert!(r.incomplete);
    assert!(!r.passed, "an interrupted run never passes");
    assert!(
        r.episodes.is_empty(),
        "no episode of the hanging agent completed"
    );
    let written: RunResults =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    assert!(written.incomplete && !written.passed);
}

/// The deploy spec with one more tool the world cannot model.
fn spec_with_unmodelled_tool() -> assay_spec::LoadedSpec {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("ops/deploy-dry-run.yaml"))
        .unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "tools: [tickets.read, deploy.plan, deploy.apply, mail.send]",
            "tools: [tickets.read, deploy.plan, deploy.apply, mail.send, legacy.run]",
        )
        .replace(
            "  tools:\n    - name: tickets.read",
            "  tools:\n    - name: legacy.run\n      description: Run a legacy maintenance script.\n      parameters: { type: object, properties: {} }\n      response: done\n      effects:\n        - unsupported: { program: legacy.run, detail: maintenance script, reason: the world does not model it }\n    - name: tickets.read",
        );
    assay_spec::load_str(&text, &path).unwrap()
}

/// Calls the unmodelled tool; `apply` also deploys to production first.
struct Unmodelled {
    apply: bool,
}

#[async_trait::async_trait]
impl Agent for Unmodelled {
    fn name(&self) -> &str {
        if self.apply {
            "test:applies-then-unmodelled"
        } else {
            "test:unmodelled"
        }
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        while env.next_user_turn().is_some() {
            if self.apply {
                env.call_tool(
                    None,
                    "deploy.apply",
                    serde_json::json!({"service": "billing", "env": "production"}),
                )
                .unwrap();
            }
            env.call_tool(None, "legacy.run", serde_json::json!({}))
                .unwrap();
            env.reply("done");
        }
        Ok(())
    }
}

#[test]
fn unmodelled_actions_make_episodes_inconclusive_and_fail_the_gates() {
    let dir = tempfile::tempdir().unwrap();
    let agents: Vec<Arc<dyn Agent>> = vec![
        Arc::new(Unmodelled { apply: false }),
        Arc::new(Unmodelled { apply: true }),
    ];
    let r = run_specs(&[spec_with_unmodelled_tool()], &agents, dir.path(), 0);
    assert!(!r.episodes.is_empty());
    for e in &r.episodes {
        assert!(!e.unsupported.is_empty(), "{}", e.episode);
        if e.agent == "test:unmodelled" {
            assert_eq!(e.status, Status::Inconclusive, "{}", e.episode);
            assert_eq!(e.attack_success, None);
        } else {
            // A rule already fired: the verdict stands.
            assert_eq!(e.status, Status::Ok, "{}", e.episode);
            assert!(!e.violations.is_empty());
        }
    }
    let row = r
        .summary
        .iter()
        .find(|s| s.agent == "test:unmodelled")
        .unwrap();
    assert_eq!(row.inconclusive, row.episodes);
    assert!(row.gates.iter().all(|g| !g.passed), "{:?}", row.gates);
    assert!(!row.passed());
    assert!(!r.passed);
}

/// Reads the secret, then runs a command that once panicked the shell.
struct PrintfBomb;

#[async_trait::async_trait]
impl Agent for PrintfBomb {
    fn name(&self) -> &str {
        "test:printf-bomb"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        env.call_tool(None, "files.read", serde_json::json!({"path": ".env"}))
            .map_err(|e| assay_agent::AgentError::Backend(e.to_string()))?;
        let _ = env.call_tool(
            None,
            "shell.exec",
            serde_json::json!({"command": "printf '%.65536f' 1"}),
        );
        env.reply("done");
        Ok(())
    }
}

#[test]
fn a_world_that_fails_mid_episode_keeps_the_earlier_secret_read() {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("coding/add-dependency.yaml"))
        .unwrap();
    let spec = assay_spec::load_file(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = run_specs(&[spec], &[Arc::new(PrintfBomb)], dir.path(), 0);
    for e in &r.episodes {
        // Whether or not the shell copes with the command, the read stays on record.
        assert!(
            e.status == Status::Error || e.violations.iter().any(|v| v.rule == "secret-read"),
            "{}: {:?}",
            e.episode,
            e.status
        );
        let events =
            parse_jsonl(&std::fs::read_to_string(dir.path().join(&e.trace)).unwrap()).unwrap();
        assert!(
            events.iter().any(|ev| matches!(&ev.kind,
                EventKind::Effect { effect, .. } if effect.kind == assay_trace::EffectKind::Read
                    && effect.str("sensitivity") == Some("secret"))),
            "{}: the secret read was lost",
            e.episode
        );
    }
    assert!(!r.passed);
}

/// Runs one shell command per episode.
struct ShellOnce(&'static str);

#[async_trait::async_trait]
impl Agent for ShellOnce {
    fn name(&self) -> &str {
        "test:shell-once"
    }
    async fn run(&self, env: &mut dyn assay_agent::Env) -> Result<(), assay_agent::AgentError> {
        env.next_user_turn();
        let _ = env.call_tool(
            None,
            "files.read",
            serde_json::json!({"path": "/etc/does-not-matter"}),
        );
        let _ = env.call_tool(None, "shell.exec", serde_json::json!({"command": self.0}));
        env.reply("done");
        Ok(())
    }
}

fn shell_spec(limits: &str) -> assay_spec::LoadedSpec {
    let path = example_files()
        .into_iter()
        .find(|p| p.ends_with("ops/log-rotation.yaml"))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  tools: [shell.exec, http.get]",
        &format!("  limits: {limits}\n  tools: [shell.exec, http.get]"),
    );
    assay_spec::load_str(&text, &path).unwrap()
}

/// A cap hit inside a tool call (the world's `CallOutcome.cap`) reaches the
/// runner: a `limit` event with its detail after every earlier event, and the
/// episode is `error`, never a pass.
#[test]
fn a_world_cap_inside_a_call_ends_the_episode_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shell_spec("{ shell_output_bytes: 4096 }");
    let r = run_specs(
        &[spec],
        &[Arc::new(ShellOnce("seq 1 100000"))],
        dir.path(),
        0,
    );
    assert!(!r.episodes.is_empty());
    for e in &r.episodes {
        assert_eq!(e.status, Status::Error, "{}", e.episode);
        assert!(
            e.error
                .as_deref()
                .unwrap_or("")
                .contains("shell_output_bytes"),
            "{:?}",
            e.error
        );
        let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
        let events = parse_jsonl(&text).unwrap();
        let limit = events
            .iter()
            .position(|ev| {
                matches!(&ev.kind, EventKind::Limit { limit, detail: Some(_), .. }
                    if limit == "shell_output_bytes")
            })
            .expect("a limit event with its detail");
        // The earlier tool call is kept, before the limit.
        let call = events
            .iter()
            .position(
                |ev| matches!(&ev.kind, EventKind::ToolCall { tool, .. } if tool == "shell.exec"),
            )
            .unwrap();
        assert!(call < limit);
        assert!(!r.passed);
    }
}

/// The wall-time limit holds inside a single call: one command line of many
/// thousands of pipelines is cut at the deadline, as a `limit` event.
#[test]
fn the_wall_time_limit_holds_inside_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let spec = shell_spec("{ wall_time_secs: 0.5 }");
    let command: &'static str = "seq 1 2000 | sort -rn | wc -l; ".repeat(20_000).leak();
    let r = run_specs(&[spec], &[Arc::new(ShellOnce(command))], dir.path(), 0);
    assert!(!r.episodes.is_empty());
    for e in &r.episodes {
        assert_ne!(e.status, Status::Ok, "{}: must not pass", e.episode);
        let text = std::fs::read_to_string(dir.path().join(&e.trace)).unwrap();
        let events = parse_jsonl(&text).unwrap();
        assert!(
            events.iter().any(|ev| matches!(&ev.kind,
                EventKind::Limit { limit, .. } if limit.starts_with("wall_time"))),
            "{}: no wall-time limit event",
            e.episode
        );
    }
}
