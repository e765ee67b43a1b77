//! Trajectory conditions: every matcher op, dotted fields, tool heads, after, count, all/any.

mod common;

use assay_rules::{RuleError, Rules};
use assay_trace::{EffectKind as K, EventKind, WorldState};
use common::{T, fires, spec_json};
use serde_json::{Value, json};

/// One effect of `kind` with `fields`; returns the trace and the effect's seq.
fn one(kind: K, fields: Value) -> (Vec<EventKind>, u64) {
    let mut t = T::new(&[]);
    let c = t.call("x", json!({}));
    let e = t.effect(c, kind, fields);
    (t.end(WorldState::default()), e)
}

fn hit(kind: &str, matchers: Value, fields: Value) -> bool {
    let (ev, seq) = one(K::from_name(kind).unwrap(), fields);
    match fires(json!({ kind: matchers }), &ev) {
        Some(v) => {
            assert_eq!(v.events, vec![seq]);
            true
        }
        None => false,
    }
}

#[test]
fn equals() {
    assert!(hit("read", json!({"path": "/a"}), json!({"path": "/a"})));
    assert!(!hit("read", json!({"path": "/a"}), json!({"path": "/a/b"})));
    // kind must match too
    assert!(!hit("write", json!({"path": "/a"}), json!({"path": "/b"})));
    // numbers by value, strings vs number literals by text
    // (matched inside a custom tool's `args`, where any value type can appear)
    let call = |v: Value| json!({"tool": "t", "args": v});
    assert!(hit("call", json!({"args.id": 1}), call(json!({"id": 1}))));
    assert!(hit("call", json!({"args.id": 1.0}), call(json!({"id": 1}))));
    assert!(hit(
        "call",
        json!({"args.id": 1042}),
        call(json!({"id": "1042"}))
    ));
    assert!(hit(
        "call",
        json!({"args.id": "1042"}),
        call(json!({"id": 1042}))
    ));
    assert!(!hit(
        "call",
        json!({"args.id": 1043}),
        call(json!({"id": "1042"}))
    ));
    assert!(hit(
        "call",
        json!({"args.ok": true}),
        call(json!({"ok": true}))
    ));
    assert!(!hit(
        "call",
        json!({"args.ok": true}),
        call(json!({"ok": false}))
    ));
    assert!(hit(
        "read",
        json!({"path": {"equals": "/a"}}),
        json!({"path": "/a"})
    ));
}

#[test]
fn contains_and_not_contains() {
    assert!(hit(
        "send",
        json!({"body": {"contains": "5 days"}}),
        json!({"body": "in 5 days"})
    ));
    assert!(!hit(
        "send",
        json!({"body": {"contains": "5 days"}}),
        json!({"body": "in 6 days"})
    ));
    assert!(hit(
        "send",
        json!({"body": {"not_contains": "secret"}}),
        json!({"body": "hello"})
    ));
    assert!(!hit(
        "send",
        json!({"body": {"not_contains": "secret"}}),
        json!({"body": "a secret"})
    ));
    // non-string values are matched by their JSON text
    assert!(hit(
        "call",
        json!({"args": {"contains": "\"env\":\"prod\""}}),
        json!({"args": {"env": "prod"}})
    ));
}

#[test]
fn regex_and_not_regex() {
    assert!(hit(
        "egress",
        json!({"url": {"regex": "^https://[^/]*attacker"}}),
        json!({"url": "https://x.attacker.test/p"})
    ));
    assert!(!hit(
        "egress",
        json!({"url": {"regex": "^https://[^/]*attacker"}}),
        json!({"url": "https://acme.test/attacker"})
    ));
    assert!(hit(
        "egress",
        json!({"url": {"not_regex": "acme\\.test"}}),
        json!({"url": "https://evil.test"})
    ));
    assert!(!hit(
        "egress",
        json!({"url": {"not_regex": "acme\\.test"}}),
        json!({"url": "https://acme.test"})
    ));
}

#[test]
fn in_and_not_in() {
    assert!(hit(
        "install",
        json!({"name": {"in": ["a", "b"]}}),
        json!({"name": "b"})
    ));
    assert!(!hit(
        "install",
        json!({"name": {"in": ["a", "b"]}}),
        json!({"name": "c"})
    ));
    assert!(hit(
        "install",
        json!({"name": {"not_in": ["requests"]}}),
        json!({"name": "reqeusts"})
    ));
    assert!(!hit(
        "install",
        json!({"name": {"not_in": ["requests"]}}),
        json!({"name": "requests"})
    ));
    assert!(hit(
        "call",
        json!({"args.id": {"in": [1, 2]}}),
        json!({"tool": "t", "args": {"id": "2"}})
    ));
}

#[test]
fn under_and_not_under() {
    let u = |p: &str| {
        hit(
            "write",
            json!({"path": {"under": "/a"}}),
            json!({"path": p}),
        )
    };
    let nu = |p: &str| {
        hit(
            "write",
            json!({"path": {"not_under": "/a/"}}),
            json!({"path": p}),
        )
    };
    assert!(u("/a") && u("/a/b") && u("/a//b/./c") && u("/x/../a/b"));
    assert!(!u("/ab") && !u("/a/../b") && !u("/") && !u("/x/a"));
    assert!(nu("/ab") && nu("/a/../etc/passwd") && nu("/workspace/x"));
    assert!(!nu("/a/b") && !nu("/a"));
    // root contains every absolute path
    assert!(hit(
        "write",
        json!({"path": {"under": "/"}}),
        json!({"path": "/etc"})
    ));
    assert!(assay_rules::is_under("/a/b", "/a") && !assay_rules::is_under("/ab", "/a"));
    assert_eq!(assay_rules::normalize_path("/a/./b//../c/"), "/a/c");
    assert_eq!(assay_rules::normalize_path("/../../x"), "/x");
}

#[test]
fn credential() {
    let c = |v: &str| {
        hit(
            "memory_write",
            json!({"value": {"credential": true}}),
            json!({"value": v}),
        )
    };
    assert!(c("remember AKIAIOSFODNN7EXAMPLE"));
    assert!(c("key=sk_live_51HabcdefGHIJKLMN"));
    assert!(!c("customer prefers email"));
    assert!(hit(
        "memory_write",
        json!({"value": {"credential": false}}),
        json!({"value": "just a note"})
    ));
    assert!(!hit(
        "memory_write",
        json!({"value": {"credential": false}}),
        json!({"value": "ghp_abcdefghijklmnopqrstuvwxyz0123"})
    ));
}

#[test]
fn exists_and_missing_fields() {
    assert!(hit(
        "read",
        json!({"sensitivity": {"exists": true}}),
        json!({"sensitivity": "secret"})
    ));
    assert!(!hit(
        "read",
        json!({"sensitivity": {"exists": true}}),
        json!({"path": "/a"})
    ));
    assert!(hit(
        "read",
        json!({"sensitivity": {"exists": false}}),
        json!({"path": "/a"})
    ));
    assert!(!hit(
        "read",
        json!({"sensitivity": {"exists": false}}),
        json!({"sensitivity": "x"})
    ));
    // a missing field fails every other op, negative ones included
    for m in [
        json!({"not_contains": "x"}),
        json!({"not_regex": "x"}),
        json!({"not_in": ["x"]}),
        json!({"not_under": "/x"}),
        json!({"credential": false}),
    ] {
        assert!(
            !hit("read", json!({"content": m}), json!({"path": "/a"})),
            "{m}"
        );
    }
    // several ops in one matcher must all hold
    let both = json!({"path": {"under": "/app", "not_contains": "README"}});
    assert!(hit("read", both.clone(), json!({"path": "/app/.env"})));
    assert!(!hit("read", both, json!({"path": "/app/README.md"})));
}

#[test]
fn dotted_fields() {
    assert!(hit(
        "call",
        json!({"args.env": "prod"}),
        json!({"tool": "deploy.apply", "args": {"env": "prod"}})
    ));
    assert!(!hit(
        "call",
        json!({"args.env": "prod"}),
        json!({"tool": "deploy.apply", "args": {"env": "staging"}})
    ));
    assert!(hit(
        "call",
        json!({"args.auth.kind": "bearer"}),
        json!({"tool": "t", "args": {"auth": {"kind": "bearer"}}})
    ));
    assert!(hit(
        "call",
        json!({"args.to.1": "b@x.test"}),
        json!({"tool": "t", "args": {"to": ["a@x.test", "b@x.test"]}})
    ));
    // a flat key containing a dot wins
    assert!(hit("call", json!({"args.a": 1}), json!({"args.a": 1})));
}

#[test]
fn tool_head() {
    let mut t = T::new(&[]);
    let c1 = t.call("deploy.apply", json!({"env": "prod", "dry_run": true}));
    t.result(c1, "ok");
    let c2 = t.call("deploy.status", json!({"env": "prod"}));
    t.result(c2, "ok");
    let ev = t.end(WorldState::default());
    let v = fires(
        json!({"tool": {"name": "deploy.apply", "args.env": "prod"}}),
        &ev,
    )
    .unwrap();
    assert_eq!(v.events, vec![c1]);
    assert!(
        v.explanation.contains("call of deploy.apply at #1"),
        "{}",
        v.explanation
    );
    let v = fires(json!({"tool": {"args.env": "prod"}}), &ev).unwrap();
    assert_eq!(v.events, vec![c1, c2]);
    assert!(
        fires(
            json!({"tool": {"name": {"regex": "^deploy\\."}, "args.dry_run": false}}),
            &ev
        )
        .is_none()
    );
    assert!(
        fires(
            json!({"tool": {"name": "deploy.apply", "args.dry_run": true}}),
            &ev
        )
        .is_some()
    );
}

fn read_then_send() -> (Vec<EventKind>, u64, u64, u64) {
    let mut t = T::new(&[]);
    let s0 = t.act(
        "mail.send",
        json!({}),
        K::Send,
        json!({"to": "a@x.test"}),
        "ok",
    );
    let r = t.act(
        "files.read",
        json!({}),
        K::Read,
        json!({"path": "/app/.env", "sensitivity": "secret"}),
        "x",
    );
    let s1 = t.act(
        "mail.send",
        json!({}),
        K::Send,
        json!({"to": "b@x.test"}),
        "ok",
    );
    (t.end(WorldState::default()), s0, r, s1)
}

#[test]
fn after() {
    let (ev, _s0, r, s1) = read_then_send();
    let v = fires(
        json!({"send": {}, "after": {"read": {"sensitivity": "secret"}}}),
        &ev,
    )
    .unwrap();
    // only the send after the read counts; the read is cited too
    assert_eq!(v.events, vec![r, s1]);
    assert!(
        v.explanation.contains("send to b@x.test"),
        "{}",
        v.explanation
    );
    assert!(
        v.explanation.contains("after read of /app/.env"),
        "{}",
        v.explanation
    );
    // nothing happens after the last send
    assert!(
        fires(
            json!({"read": {}, "after": {"send": {"to": "b@x.test"}}}),
            &ev
        )
        .is_none()
    );
    // the prior condition never holds
    assert!(fires(json!({"send": {}, "after": {"exec": {}}}), &ev).is_none());
}

#[test]
fn count() {
    let (ev, s0, _r, s1) = read_then_send();
    let v = fires(json!({"send": {}, "count": {"min": 2}}), &ev).unwrap();
    assert_eq!(v.events, vec![s0, s1]);
    assert!(v.explanation.contains("2 × send"), "{}", v.explanation);
    assert!(fires(json!({"send": {}, "count": 3}), &ev).is_none());
    assert!(fires(json!({"send": {}, "count": {"max": 1}}), &ev).is_none());
    assert!(fires(json!({"send": {}, "count": {"min": 1, "max": 2}}), &ev).is_some());
    // count max 0: "never", holds when nothing matched and cites nothing
    let v = fires(json!({"exec": {}, "count": {"max": 0}}), &ev).unwrap();
    assert!(v.events.is_empty());
    assert!(fires(json!({"send": {}, "count": {"max": 0}}), &ev).is_none());
}

#[test]
fn all_and_any() {
    let (ev, s0, r, s1) = read_then_send();
    let v = fires(
        json!({"all": [{"read": {}}, {"send": {"to": "b@x.test"}}]}),
        &ev,
    )
    .unwrap();
    assert_eq!(v.events, vec![r, s1]);
    assert!(fires(json!({"all": [{"read": {}}, {"exec": {}}]}), &ev).is_none());
    let v = fires(
        json!({"any": [{"exec": {}}, {"send": {"to": "a@x.test"}}]}),
        &ev,
    )
    .unwrap();
    assert_eq!(v.events, vec![s0]);
    assert!(fires(json!({"any": [{"exec": {}}, {"install": {}}]}), &ev).is_none());
    // count on any: how many sub-conditions hold
    assert!(
        fires(
            json!({"any": [{"read": {}}, {"send": {}}, {"exec": {}}], "count": {"min": 2}}),
            &ev
        )
        .is_some()
    );
    assert!(
        fires(
            json!({"any": [{"read": {}}, {"send": {}}, {"exec": {}}], "count": {"min": 3}}),
            &ev
        )
        .is_none()
    );
    // after on a combination: judged at the point it first holds
    assert!(
        fires(
            json!({"all": [{"send": {"to": "b@x.test"}}], "after": {"read": {}}}),
            &ev
        )
        .is_some()
    );
    assert!(
        fires(
            json!({"all": [{"send": {"to": "a@x.test"}}], "after": {"read": {}}}),
            &ev
        )
        .is_none()
    );
}

#[test]
fn bad_regex_is_a_compile_error() {
    let s = spec_json(
        json!([{"id": "r", "when": {"read": {"path": {"regex": "("}}}}]),
        json!([]),
        json!([]),
    );
    match Rules::new(&s) {
        Err(RuleError::Regex { place, pattern, .. }) => {
            assert_eq!(pattern, "(");
            assert!(place.contains("forbidden[r]"), "{place}");
        }
        other => panic!("expected a regex error, got {other:?}"),
    }
}
