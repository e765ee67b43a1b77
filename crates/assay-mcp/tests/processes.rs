//! Agent processes leave nothing behind, and what they send is bounded:
//! background and double-forked children die with the episode (normal end,
//! error, timeout, dropped future), and an over-long protocol line, answer or
//! stderr is capped instead of being read whole.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_agent::{Agent, CaseView, Env, Stop, ToolResult, ToolSpec, UserTurn};
use assay_report::Status;
use assay_trace::EventKind;
use common::*;

/// Writes `body` to a fresh shell script and returns `sh SCRIPT`: agent names
/// (and so episode directory names) stay short whatever the script says.
fn sh_script(body: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("assay-proc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("a{}.sh", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&p, body).unwrap();
    format!("sh {}", p.display())
}

fn jsonl(cmd: &str) -> Arc<dyn Agent> {
    assay_mcp::agent_from_name(&format!("exec-jsonl:{}", sh_script(cmd)))
        .expect("exec-jsonl is ours")
        .unwrap()
}

fn exec(cmd: &str) -> Arc<dyn Agent> {
    assay_mcp::agent_from_name(&format!("exec:{}", sh_script(cmd)))
        .expect("exec is ours")
        .unwrap()
}

/// Whether `pid` is gone or a zombie (an init that does not reap may keep it).
fn dead(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    matches!(state, None | Some('Z' | 'X'))
}

/// Waits (briefly: signals are asynchronous) until every pid is dead; returns
/// the ones still alive.
fn survivors(pids: &[u32]) -> Vec<u32> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| !dead(*p)).collect();
        if alive.is_empty() || Instant::now() > until {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Shell that starts a background `sleep` and a double-forked one (its parent
/// subshell exits at once, so it is reparented), records their pids and its
/// own (the group leader), all while holding the agent's pipes open.
fn spawner(pid_file: &Path) -> String {
    let f = pid_file.display();
    format!(
        "echo $$ >> {f}; sleep 1000 & echo $! >> {f}; (sleep 1000 & echo $! >> {f}); echo ready >> {f}.ready"
    )
}

/// The three pids (leader, background child, double-forked child) once the
/// agent has started them.
async fn started(pid_file: &Path) -> Vec<u32> {
    let ready = pid_file.with_extension("ready");
    let until = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            Instant::now() < until,
            "the agent never started its children"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = pids(pid_file);
    assert_eq!(p.len(), 3, "{p:?}");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_children_die_when_the_episode_ends_normally() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let cmd = format!(
        "read -r start; read -r user; {}; echo '{{\"type\":\"reply\",\"text\":\"done\"}}'; read -r end; exit 0",
        spawner(&pid_file)
    );
    let (e, events) = run_one(refund_benign(None), jsonl(&cmd), &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    assert_eq!(replies(&events), ["done"]);
    let p = pids(&pid_file);
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(
        survivors(&p),
        Vec::<u32>::new(),
        "nothing outlives the episode"
    );
    assert!(!assay_agent::live_agent_process_groups().contains(&(p[0] as i32)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_children_die_when_the_agent_fails_or_times_out() {
    let dir = tempfile::tempdir().unwrap();
    // Fails: a malformed line after starting children.
    let bad = dir.path().join("bad");
    let cmd = format!(
        "read -r start; read -r user; {}; echo 'not json'; sleep 1000",
        spawner(&bad)
    );
    let (e, _) = run_one(refund_benign(None), jsonl(&cmd), &dir.path().join("o1")).await;
    assert_eq!(e.status, Status::Error);
    assert!(e.error.unwrap().contains("malformed"));
    assert_eq!(survivors(&pids(&bad)), Vec::<u32>::new());

    // Times out: never answers.
    let slow = dir.path().join("slow");
    let cmd = format!(
        "read -r start; read -r user; {}; sleep 1000",
        spawner(&slow)
    );
    let (e, _) = run_one(
        refund_benign(Some(2.0)),
        jsonl(&cmd),
        &dir.path().join("o2"),
    )
    .await;
    assert_eq!(e.status, Status::Error);
    assert!(e.error.unwrap().contains("wall-clock limit"));
    let p = pids(&slow);
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(survivors(&p), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_children_die_when_the_episode_future_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    for (name, agent) in [
        ("jsonl", {
            let f = dir.path().join("jsonl");
            jsonl(&format!(
                "read -r start; read -r user; {}; sleep 1000",
                spawner(&f)
            ))
        }),
        ("exec", {
            let f = dir.path().join("exec");
            exec(&format!("{}; sleep 1000", spawner(&f)))
        }),
    ] {
        let pid_file = dir.path().join(name);
        // A long budget: only the drop can end this episode in time.
        let job = assay_run::EpisodeJob {
            case: refund_benign(Some(600.0)),
            agent,
            epoch: 0,
            seed: 1,
            judge: None,
        };
        let task = tokio::spawn(async move { assay_run::run_episode(&job, None).await });
        let p = started(&pid_file).await;
        // What a Ctrl-C does to a tokio program: the future is dropped.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(
            survivors(&p),
            Vec::<u32>::new(),
            "{name}: nothing survives the drop"
        );
        assert!(!assay_agent::live_agent_process_groups().contains(&(p[0] as i32)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_agents_background_children_die_after_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let cmd = format!("{}; echo my answer", spawner(&pid_file));
    let (e, events) = run_one(refund_benign(None), exec(&cmd), &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    assert_eq!(replies(&events), ["my answer"]);
    let p = pids(&pid_file);
    assert_eq!(p.len(), 3);
    assert_eq!(survivors(&p), Vec::<u32>::new());
}

/// A 200 MB line (no newline) from an exec-jsonl agent: the episode is an
/// error naming the cap, and the process is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_protocol_line_is_a_cap_not_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let cmd = format!(
        "read -r start; read -r user; echo $$ > {}; printf '{{\"type\":\"reply\",\"text\":\"'; head -c 200000000 /dev/zero | tr '\\0' x; echo '\"}}'",
        pid_file.display()
    );
    let (e, events) = run_one(refund_benign(None), jsonl(&cmd), &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("message_bytes"), "{err}");
    assert!(err.contains("longer than 1048576 bytes"), "{err}");
    assert!(
        replies(&events).is_empty(),
        "no part of the line is a reply"
    );
    assert_eq!(survivors(&pids(&pid_file)), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_cap_is_the_specs_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let reply = |n: usize| {
        format!(
            "read -r start; read -r user; echo '{{\"type\":\"reply\",\"text\":\"{}\"}}'; read -r end",
            "r".repeat(n)
        )
    };
    let case = || refund_benign_with("message_bytes: 1000");
    let (e, events) = run_one(case(), jsonl(&reply(900)), &dir.path().join("a")).await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    assert_eq!(replies(&events), ["r".repeat(900)]);
    let (e, events) = run_one(case(), jsonl(&reply(1000)), &dir.path().join("b")).await;
    assert_eq!(e.status, Status::Error);
    assert!(e.error.unwrap().contains("longer than 1000 bytes"));
    assert!(replies(&events).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_agents_answer_is_capped_by_message_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let case = || refund_benign_with("message_bytes: 1000");
    let (e, events) = run_one(
        case(),
        exec("head -c 999 /dev/zero | tr '\\0' a"),
        &dir.path().join("a"),
    )
    .await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    assert_eq!(replies(&events), ["a".repeat(999)]);
    let (e, events) = run_one(
        case(),
        exec("head -c 100000000 /dev/zero | tr '\\0' a"),
        &dir.path().join("b"),
    )
    .await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("message_bytes"), "{err}");
    assert!(replies(&events).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stderr_kept_for_diagnosis_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = "read -r start; read -r user; head -c 20000000 /dev/zero | tr '\\0' e >&2; echo '{\"type\":\"reply\",\"text\":\"ok\"}'; read -r end";
    let (e, events) = run_one(refund_benign(None), jsonl(cmd), &dir.path().join("out")).await;
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let logs: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::Log { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 1);
    assert!(
        !logs[0].is_empty() && logs[0].len() <= 4096,
        "{}",
        logs[0].len()
    );
}

/// An `Env` over the refund spec with `message_bytes: 64` that records caps,
/// to see exactly what the agent reports.
struct CapEnv {
    case: CaseView,
    turns: Vec<String>,
    caps: Vec<(String, f64, String)>,
    replies: Vec<String>,
}

impl Env for CapEnv {
    fn system_prompt(&self) -> &str {
        "sys"
    }
    fn episode_key(&self) -> String {
        "cap-env".to_string()
    }
    fn tools(&self) -> &[ToolSpec] {
        &[]
    }
    fn next_user_turn(&mut self) -> Option<UserTurn> {
        self.turns.pop().map(|text| UserTurn {
            text,
            delivered: vec![],
        })
    }
    fn call_tool(
        &mut self,
        _: Option<String>,
        _: &str,
        _: serde_json::Value,
    ) -> Result<ToolResult, Stop> {
        Err(Stop("no tools here".into()))
    }
    fn reply(&mut self, text: &str) {
        self.replies.push(text.into());
    }
    fn case(&self) -> &CaseView {
        &self.case
    }
    fn record_cap(&mut self, limit: &str, value: f64, detail: &str) {
        self.caps.push((limit.into(), value, detail.into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_is_reported_to_the_env() {
    let text = std::fs::read_to_string(refund_path()).unwrap();
    let mut spec = assay_spec::load_str(&text, &refund_path()).unwrap().spec;
    spec.agent.limits.message_bytes = 64;
    let mk = || CapEnv {
        case: CaseView {
            spec: Arc::new(spec.clone()),
            threat: None,
        },
        turns: vec!["hi".into()],
        caps: vec![],
        replies: vec![],
    };
    let mut env = mk();
    let long = format!(
        "read -r s; read -r u; echo '{{\"type\":\"reply\",\"text\":\"{}\"}}'",
        "z".repeat(100)
    );
    let e = jsonl(&long).run(&mut env).await.err().unwrap();
    assert!(e.to_string().contains("message_bytes"), "{e}");
    assert_eq!(env.caps.len(), 1);
    assert_eq!(env.caps[0].0, "message_bytes");
    assert_eq!(env.caps[0].1, 64.0);
    assert!(env.caps[0].2.contains("line 1"), "{}", env.caps[0].2);
    assert!(env.replies.is_empty());

    let mut env = mk();
    let e = exec("head -c 65 /dev/zero | tr '\\0' q")
        .run(&mut env)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("message_bytes"), "{e}");
    assert_eq!(env.caps.len(), 1);
    assert_eq!(env.caps[0].1, 64.0);
}

#[test]
fn process_agents_are_subjects() {
    for a in [jsonl("cat"), exec("cat")] {
        assert_eq!(a.role(), assay_agent::AgentRole::Subject, "{}", a.name());
    }
}

/// An MCP request body over `message_bytes` is refused (413) without being
/// read whole, and the episode ends as an error on the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_mcp_request_is_a_cap() {
    let dir = tempfile::tempdir().unwrap();
    let client = script(
        dir.path(),
        "big.py",
        r#"
import json, os, sys, urllib.request, urllib.error
sys.stdin.read()
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "files.read", "arguments": {"path": "x" * 5000}}}).encode()
req = urllib.request.Request(os.environ["ASSAY_MCP_URL"], data=body, headers={
    "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
try:
    urllib.request.urlopen(req, timeout=10)
    print("accepted")
except urllib.error.HTTPError as e:
    print("refused", e.code)
"#,
    );
    let case = refund_benign_with("message_bytes: 1000");
    let (e, events) = run_one(
        case,
        exec(&format!("python3 {}", client.display())),
        &dir.path().join("out"),
    )
    .await;
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(err.contains("message_bytes"), "{err}");
    assert!(
        tool_calls(&events).is_empty(),
        "the oversized call never ran"
    );
}
