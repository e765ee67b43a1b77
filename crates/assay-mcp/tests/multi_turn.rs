//! External agents across user turns, on a case synthesised with the temporal
//! `split-user-turns` technique (the payload is cut over two user turns): an
//! `exec-jsonl` process receives every turn in one process, an `exec`
//! program restarted per turn gets the conversation so far. Also agents-file
//! entries (name, env, cwd, timeout) built with `agent_from_config`.

mod common;

use std::time::Instant;

use assay_report::Status;
use common::*;

/// Remembers every user turn and answers each with all of them so far.
const JSONL_ECHO: &str = r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
start = json.loads(sys.stdin.readline())
assert start["protocol"] == "assay-agent/v1", start
heard = []
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "user":
        heard.append(m["text"])
        send({"type": "reply", "text": "turn %d; heard: %s" % (len(heard), " || ".join(heard))})
    elif m["type"] == "end":
        break
"#;

/// One run per turn: answers with the turn number, the prompt it got, and
/// what the conversation file holds.
const EXEC_ECHO: &str = r#"
import json, os, sys
prompt = sys.stdin.read()
conv = json.load(open(os.environ["ASSAY_CONVERSATION_FILE"]))
turn = int(os.environ["ASSAY_TURN"])
assert conv["format"] == "assay-conversation/v1" and conv["turn"] == turn, conv
msgs = conv["messages"]
assert msgs[-1]["role"] == "user", msgs
print("ack-%d" % turn)
print("messages=%d" % len(msgs))
print("roles=" + ",".join(m["role"] for m in msgs))
print("first=" + msgs[0]["content"].splitlines()[0])
print("PROMPT<<" + prompt + ">>")
"#;

fn case_turns() -> (std::sync::Arc<assay_run::PreparedCase>, Vec<String>) {
    let case = refund_with_technique("split-user-turns");
    let dir = tempfile::tempdir().unwrap();
    // The user turns as the runner hands them out, from a run of the
    // control agent that only answers.
    let rt_turns = {
        let refuse = assay_agent::agent_from_name("control:refuse").unwrap();
        let out = dir.path().join("turns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_, events) = rt.block_on(run_one(case.clone(), refuse, &out));
        user_messages(&events)
    };
    assert!(rt_turns.len() >= 2, "a multi-turn case: {rt_turns:?}");
    (case, rt_turns)
}

/// The first line of a turn's text (turn texts are long; a line is enough to
/// recognise one).
fn head(text: &str) -> &str {
    text.lines().next().unwrap()
}

#[test]
fn a_jsonl_agent_sees_every_earlier_turn() {
    let (case, turns) = case_turns();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "echo.py", JSONL_ECHO);
    let agent = assay_mcp::agent_from_name(&format!("exec-jsonl:python3 {}", s.display()))
        .unwrap()
        .unwrap();
    let (e, events) = rt.block_on(run_one(case, agent, &dir.path().join("out")));
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let replies = replies(&events);
    assert_eq!(
        replies.len(),
        turns.len(),
        "one reply per turn: {replies:?}"
    );
    assert!(replies[1].starts_with("turn 2; heard: "), "{}", replies[1]);
    assert!(
        replies[1].contains(head(&turns[0])),
        "turn 2 sees turn 1 ({:?}): {}",
        head(&turns[0]),
        replies[1]
    );
    assert!(replies[1].contains(head(&turns[1])), "{}", replies[1]);
    assert!(
        !replies[0].contains(head(&turns[1])),
        "turn 1 cannot know turn 2"
    );
}

#[test]
fn an_exec_agent_gets_the_conversation_so_far_on_later_turns() {
    let (case, turns) = case_turns();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "echo.py", EXEC_ECHO);
    let agent = assay_mcp::agent_from_name(&format!("exec:python3 {}", s.display()))
        .unwrap()
        .unwrap();
    let (e, events) = rt.block_on(run_one(case, agent, &dir.path().join("out")));
    assert_eq!(e.status, Status::Ok, "{:?}", e.error);
    let replies = replies(&events);
    assert_eq!(
        replies.len(),
        turns.len(),
        "one reply per turn: {replies:?}"
    );

    // Turn 1: the prompt is the turn's text alone; the file holds one message.
    assert!(
        replies[0].starts_with("ack-1\nmessages=1\nroles=user\n"),
        "{}",
        replies[0]
    );
    assert!(
        replies[0].contains(&format!("PROMPT<<{}>>", turns[0])),
        "{}",
        replies[0]
    );

    // Turn 2: the earlier turn and the agent's own answer to it are in the
    // prompt (between markers) and in the file, the new message last.
    let r = &replies[1];
    assert!(
        r.starts_with("ack-2\nmessages=3\nroles=user,assistant,user\n"),
        "{r}"
    );
    assert!(r.contains(&format!("first={}", head(&turns[0]))), "{r}");
    let prompt = &r[r.find("PROMPT<<").unwrap()..];
    let t1 = prompt.find("=== user (turn 1) ===").expect(prompt);
    let a1 = prompt
        .find("=== assistant (turn 1) ===\nack-1")
        .expect(prompt);
    let t2 = prompt
        .find("=== user (turn 2, new message) ===")
        .expect(prompt);
    assert!(t1 < a1 && a1 < t2, "{prompt}");
    assert!(prompt[t1..a1].contains(head(&turns[0])), "{prompt}");
    assert!(prompt[t2..].contains(head(&turns[1])), "{prompt}");
}

/// An agents file with both kinds of program: the name is used in results,
/// `env` and `cwd` reach the program, and `timeout_secs` kills it as `error`.
#[test]
fn agents_file_programs_get_their_env_cwd_name_and_timeout() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("marker.txt"), "in-the-cwd").unwrap();
    script(
        &work,
        "jsonl.py",
        r#"
import json, os, sys
sys.stdin.readline()
for line in sys.stdin:
    m = json.loads(line)
    if m["type"] == "user":
        text = "%s %s" % (os.environ.get("GREETING"), open("marker.txt").read())
        sys.stdout.write(json.dumps({"type": "reply", "text": text}) + "\n"); sys.stdout.flush()
    elif m["type"] == "end":
        break
"#,
    );
    script(
        &work,
        "exec.sh",
        "cat > /dev/null\nprintf '%s %s' \"$GREETING\" \"$(cat marker.txt)\"\n",
    );
    script(&work, "sleepy.sh", "cat > /dev/null\nexec sleep 30\n");
    let file = dir.path().join("agents.yaml");
    std::fs::write(
        &file,
        r#"agents:
  - { name: py-jsonl, kind: exec-jsonl, command: "python3 jsonl.py", cwd: work, env: { GREETING: hello-jsonl } }
  - { name: sh-exec, kind: exec, command: "sh exec.sh", cwd: work, env: { GREETING: hello-exec } }
  - { name: sleepy, kind: exec, command: "sh sleepy.sh", cwd: work, timeout_secs: 0.5 }
"#,
    )
    .unwrap();
    let configs = assay_agent::read_agents_file(&file).unwrap();
    let agents: Vec<_> = configs
        .iter()
        .map(|c| match c {
            assay_agent::AgentConfig::Exec(e) => assay_mcp::agent_from_config(e).unwrap(),
            other => panic!("not a program: {other:?}"),
        })
        .collect();
    let names: Vec<&str> = agents.iter().map(|a| a.name()).collect();
    assert_eq!(names, ["py-jsonl", "sh-exec", "sleepy"]);

    let case = refund_benign(None);
    for (agent, want) in agents[..2].iter().zip(["hello-jsonl", "hello-exec"]) {
        let out = dir.path().join(format!("out-{}", agent.name()));
        let (e, events) = rt.block_on(run_one(case.clone(), agent.clone(), &out));
        assert_eq!(e.status, Status::Ok, "{}: {:?}", agent.name(), e.error);
        assert_eq!(e.agent, agent.name());
        assert_eq!(replies(&events), [format!("{want} in-the-cwd")]);
    }

    let started = Instant::now();
    let (e, _) = rt.block_on(run_one(
        case,
        agents[2].clone(),
        &dir.path().join("out-sleepy"),
    ));
    assert_eq!(e.agent, "sleepy");
    assert_eq!(e.status, Status::Error);
    let err = e.error.unwrap();
    assert!(
        err.contains("wall-clock limit of 0.5s and was killed"),
        "{err}"
    );
    // The spec's own budget is far longer: the entry's timeout did the kill.
    assert!(started.elapsed().as_secs_f64() < 20.0);
}

/// A bad agents-file entry is refused with the entry's name and the fix.
#[test]
fn a_bad_program_entry_is_refused() {
    let cfg = assay_agent::ExecConfig {
        name: "bad".into(),
        kind: assay_agent::ExecKind::Exec,
        command: "true".into(),
        env: Default::default(),
        cwd: None,
        timeout_secs: Some(-1.0),
    };
    let err = assay_mcp::agent_from_config(&cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("agent `bad`") && err.contains("positive"),
        "{err}"
    );
}
