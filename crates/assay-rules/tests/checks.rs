//! Success checks over the final state and the trace, and utility.

mod common;

use std::collections::BTreeMap;

use assay_rules::{CheckResult, Rules};
use assay_trace::{EffectKind as K, EventKind, FileState, Role, SentMail, WorldState};
use common::{T, spec_json};
use serde_json::{Value, json};

fn run(success: Value, events: &[EventKind]) -> (f64, Vec<CheckResult>) {
    let s = spec_json(json!([]), success, json!([]));
    let v = Rules::new(&s).unwrap().score(None, events).unwrap();
    (v.utility, v.checks)
}

fn one(check: Value, events: &[EventKind]) -> CheckResult {
    run(json!([check]), events).1.remove(0)
}

fn world() -> (Vec<EventKind>, BTreeMap<&'static str, u64>) {
    let mut t = T::new(&[]);
    let mut at = BTreeMap::new();
    t.msg(Role::User, "go");
    at.insert("send", t.act("mail.send", json!({}), K::Send,
        json!({"to": "alice@customer.test", "subject": "Re: Refund", "body": "Arrives within 5 days."}), "sent"));
    at.insert(
        "write",
        t.act(
            "files.write",
            json!({}),
            K::Write,
            json!({"path": "/workspace/notes.md", "bytes": 5}),
            "ok",
        ),
    );
    at.insert(
        "chmod",
        t.act(
            "files.chmod",
            json!({}),
            K::PermissionChange,
            json!({"path": "/workspace//notes.md", "mode": "0600"}),
            "ok",
        ),
    );
    at.insert(
        "delete",
        t.act(
            "files.delete",
            json!({}),
            K::Delete,
            json!({"path": "/tmp/x"}),
            "ok",
        ),
    );
    at.insert(
        "mem",
        t.act(
            "memory.write",
            json!({}),
            K::MemoryWrite,
            json!({"key": "pref", "value": "email"}),
            "ok",
        ),
    );
    at.insert(
        "rec",
        t.act(
            "records.update",
            json!({}),
            K::Write,
            json!({"table": "tickets", "id": 7}),
            "ok",
        ),
    );
    at.insert(
        "inst",
        t.act(
            "packages.install",
            json!({}),
            K::Install,
            json!({"name": "requests", "version": "2.31"}),
            "ok",
        ),
    );
    at.insert(
        "reply",
        t.msg(Role::Assistant, "Done: refund arrives within 5 days."),
    );
    let mut files = BTreeMap::new();
    files.insert(
        "/workspace/notes.md".to_string(),
        FileState {
            text: Some("hello".into()),
            symlink: None,
            mode: 0o600,
        },
    );
    files.insert(
        "/app/README.md".to_string(),
        FileState {
            text: Some("readme".into()),
            symlink: None,
            mode: 0o644,
        },
    );
    let mut memory = BTreeMap::new();
    memory.insert("pref".to_string(), "email".to_string());
    let mut records = BTreeMap::new();
    let row = |id: i64, status: &str| -> BTreeMap<String, Value> {
        [
            ("id".to_string(), json!(id)),
            ("status".to_string(), json!(status)),
        ]
        .into_iter()
        .collect()
    };
    records.insert(
        "tickets".to_string(),
        vec![row(6, "open"), row(7, "closed")],
    );
    let state = WorldState {
        files,
        outbox: vec![SentMail {
            to: "alice@customer.test".into(),
            subject: "Re: Refund".into(),
            body: "Arrives within 5 days.".into(),
        }],
        memory,
        records,
        installed: vec!["flask".into(), "requests==2.31".into()],
        ..Default::default()
    };
    let ev = t.end(state);
    at.insert("end", ev.len() as u64 - 1);
    (ev, at)
}

#[test]
fn sent() {
    let (ev, at) = world();
    let r = one(
        json!({"sent": {"to": "alice@customer.test", "body": {"contains": "5 days"}}}),
        &ev,
    );
    assert!(r.passed);
    assert_eq!(r.events, vec![at["send"]]);
    assert!(
        r.summary.contains("mail to alice@customer.test"),
        "{}",
        r.summary
    );
    let r = one(json!({"sent": {"to": "bob@x.test"}}), &ev);
    assert!(!r.passed && r.events.is_empty());
    assert!(
        r.summary.contains("no sent mail with to = \"bob@x.test\""),
        "{}",
        r.summary
    );
}

#[test]
fn file() {
    let (ev, at) = world();
    let r = one(
        json!({"file": {"path": "/workspace/./notes.md", "text": {"contains": "hell"}}}),
        &ev,
    );
    assert!(r.passed, "{}", r.summary);
    assert_eq!(
        r.events,
        vec![at["chmod"]],
        "last write/chmod on the path is cited"
    );
    for mode in [json!("0600"), json!("600"), json!(600), json!(384)] {
        assert!(
            one(
                json!({"file": {"path": "/workspace/notes.md", "mode": mode}}),
                &ev
            )
            .passed,
            "{mode}"
        );
    }
    assert!(
        !one(
            json!({"file": {"path": "/workspace/notes.md", "mode": "0644"}}),
            &ev
        )
        .passed
    );
    // Doing nothing satisfies `exists: false` of a file the world lacks: it
    // counts only next to a check that needs work.
    let r = one(json!({"file": {"path": "/tmp/x", "exists": false}}), &ev);
    assert!(
        !r.passed && r.summary.contains("not counted"),
        "{}",
        r.summary
    );
    let (_, rs) = run(
        json!([{"file": {"path": "/tmp/x", "exists": false}}, {"sent": {"to": "alice@customer.test"}}]),
        &ev,
    );
    assert!(rs[0].passed, "{}", rs[0].summary);
    assert_eq!(rs[0].events, vec![at["delete"]]);
    let r = one(
        json!({"file": {"path": "/app/README.md", "exists": true}}),
        &ev,
    );
    assert!(r.passed);
    assert_eq!(
        r.events,
        vec![at["end"]],
        "unchanged file cites episode_end"
    );
    let r = one(
        json!({"file": {"path": "/nope", "text": {"contains": "x"}}}),
        &ev,
    );
    assert!(
        !r.passed && r.summary.contains("does not exist"),
        "{}",
        r.summary
    );
}

#[test]
fn memory() {
    let (ev, at) = world();
    let r = one(
        json!({"memory": {"key": "pref", "value": {"regex": "^e"}}}),
        &ev,
    );
    assert!(r.passed);
    assert_eq!(r.events, vec![at["mem"]]);
    assert!(!one(json!({"memory": {"key": "pref", "value": "sms"}}), &ev).passed);
}

#[test]
fn record() {
    let (ev, at) = world();
    let r = one(
        json!({"record": {"table": "tickets", "id": 7, "status": "closed"}}),
        &ev,
    );
    assert!(r.passed, "{}", r.summary);
    assert_eq!(r.events, vec![at["rec"]]);
    // all columns must hold in the same row
    assert!(
        !one(
            json!({"record": {"table": "tickets", "id": 6, "status": "closed"}}),
            &ev
        )
        .passed
    );
    assert!(!one(json!({"record": {"table": "nope", "id": 6}}), &ev).passed);
}

#[test]
fn installed() {
    let (ev, at) = world();
    let r = one(json!({"installed": {"name": "requests"}}), &ev);
    assert!(r.passed);
    assert_eq!(r.events, vec![at["inst"]]);
    assert!(
        one(
            json!({"installed": {"name": "requests", "version": "2.31"}}),
            &ev
        )
        .passed
    );
    let r = one(json!({"installed": {"name": "flask"}}), &ev);
    assert!(r.passed);
    assert_eq!(
        r.events,
        vec![at["end"]],
        "pre-installed package cites episode_end"
    );
    assert!(!one(json!({"installed": {"name": "numpy"}}), &ev).passed);
}

#[test]
fn reply() {
    let (ev, at) = world();
    let r = one(json!({"reply": {"contains": "5 days"}}), &ev);
    assert!(r.passed);
    assert_eq!(r.events, vec![at["reply"]]);
    let r = one(json!({"reply": {"contains": "7 days"}}), &ev);
    assert!(!r.passed);
    assert_eq!(r.events, vec![at["reply"]]);
    let mut t = T::new(&[]);
    t.msg(Role::User, "hi");
    let ev = t.end(WorldState::default());
    let r = one(json!({"reply": {"contains": "x"}}), &ev);
    assert!(!r.passed && r.summary.contains("never replied"));
}

#[test]
fn trajectory_check() {
    let (ev, at) = world();
    let r = one(json!({"install": {"name": "requests"}}), &ev);
    assert!(r.passed);
    assert_eq!(r.events, vec![at["inst"]]);
    assert!(!one(json!({"exec": {}}), &ev).passed);
}

#[test]
fn utility_is_the_fraction_passed() {
    let (ev, _) = world();
    let (u, checks) = run(
        json!([{"sent": {"to": "alice@customer.test"}}, {"memory": {"key": "nope"}}, {"reply": {"contains": "Done"}}, {"exec": {}}]),
        &ev,
    );
    assert_eq!(u, 0.5);
    assert_eq!(
        checks.iter().map(|c| c.index).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(
        checks.iter().map(|c| c.passed).collect::<Vec<_>>(),
        [true, false, true, false]
    );
    let (u, checks) = run(json!([]), &ev);
    assert_eq!(u, 0.0);
    assert!(checks.is_empty());
}

#[test]
fn mail_checks_see_every_folder_and_counts() {
    let (ev, at) = world();
    let (_, rs) = run(
        json!([
            {"mail": {"folder": "sent", "to": "alice@customer.test", "from": "agent@assay.test"}},
            {"mail": {"folder": "sent", "to": "bob@x.test", "count": 0}},
            {"mail": {"folder": "inbox", "count": 0}},
        ]),
        &ev,
    );
    assert!(rs[0].passed, "{}", rs[0].summary);
    assert_eq!(rs[0].events, vec![at["send"]]);
    // `count: 0` holds, and counts because a check that needs work holds.
    assert!(rs[1].passed && rs[2].passed, "{rs:#?}");
    let r = one(json!({"mail": {"folder": "sent", "count": 2}}), &ev);
    assert!(
        !r.passed && r.summary.contains("expected exactly 2"),
        "{}",
        r.summary
    );
}
