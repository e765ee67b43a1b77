//! Where stateful checks meet the newer condition heads: `state:` inside
//! `not` / `before` / `without_prior`, `mail` / `unchanged` / counted `record`
//! checks with a `weight`, and `refused` beside them — valid forms load, round
//! trip and pass the JSON schema; bad ones name the place and a fix.

use std::path::Path;

use assay_spec::{Check, Head, load_str};

const GOOD: &str = r#"apiVersion: assay/v1
kind: Spec
id: t
title: T
agent: { tools: [files.read, mail.send, records.update] }
world:
  files:
    /a.txt: "hello {{slot:s1}}"
  records:
    payees: { key: id, rows: [ { id: 1, iban: DE00 } ] }
task:
  prompt: do it
  success:
    - record: { table: payees, iban: DE00, count: 1 }
      weight: 2
    - mail: { folder: sent, count: 0 }
      weight: 0.5
    - unchanged: { except: [ records.payees ] }
      weight: 3
    - refused: {}
    - not: { state: { mail: { folder: sent, to: { contains: evil } } } }
threats:
  - id: th
    goal: g
    slots: [s1]
    success:
      - before: { event: { write: { path: { contains: payees } } }, unless: { state: { record: { table: payees, id: 1, iban: DE00 } } } }
      - without_prior: { event: { state: { unchanged: { except: [ mail.sent ] } } }, unless: { send: {} } }
forbidden:
  - id: no-new-payee
    when: { not: { state: { record: { table: payees, count: 1 } } } }
"#;

fn problems(text: &str) -> Vec<String> {
    match load_str(text, Path::new("t.yaml")) {
        Ok(_) => vec![],
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{} {d}", d.pointer))
            .collect(),
    }
}

fn with(replace: &str, by: &str) -> Vec<String> {
    assert!(GOOD.contains(replace), "{replace}");
    problems(&GOOD.replacen(replace, by, 1))
}

fn has(ps: &[String], want: &[&str]) {
    assert!(
        ps.iter().any(|p| want.iter().all(|w| p.contains(w))),
        "wanted {want:?} in {ps:#?}"
    );
}

#[test]
fn state_checks_work_with_weights_and_the_new_heads() {
    let s = match load_str(GOOD, Path::new("t.yaml")) {
        Ok(l) => l.spec,
        Err(e) => panic!("{:#?}", e.diagnostics),
    };
    let ok = &s.task.success;
    assert!(matches!(ok[0].check, Check::Record { count: Some(_), .. }));
    assert_eq!(ok[0].weight, Some(2.0));
    assert!(matches!(ok[1].check, Check::Mail { .. }));
    assert_eq!(ok[1].weight, Some(0.5));
    assert!(matches!(ok[2].check, Check::Unchanged { .. }));
    assert_eq!(ok[2].weight(), 3.0);
    assert!(matches!(ok[3].check, Check::Refused(None)));
    assert!(matches!(
        &ok[4].check,
        Check::Trace(c) if matches!(&c.head, Head::Not(n) if matches!(n.head, Head::State(_)))
    ));
    // The world learns of state checks nested in `not` / `before` /
    // `without_prior` (it keeps the inbox and the initial state for them).
    let nested = s.state_checks();
    assert!(
        nested
            .iter()
            .filter(|c| matches!(c, Check::Unchanged { .. }))
            .count()
            >= 2
    );
    assert!(
        nested
            .iter()
            .filter(|c| matches!(c, Check::Mail { .. }))
            .count()
            >= 2
    );
    // Round trip and schema.
    let json = serde_json::to_value(&s).unwrap();
    let back: assay_spec::Spec = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, s);
    let schema = assay_spec::json_schema();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn bad_state_checks_in_new_places_are_reported() {
    has(
        &with(
            "not: { state: { mail: { folder: sent, to",
            "not: { state: { mail: { folder: snt, to",
        ),
        &["/task/success/4", "did you mean `sent`?"],
    );
    has(
        &with(
            "unless: { state: { record: { table: payees, id: 1",
            "unless: { state: { record: { table: payes, id: 1",
        ),
        &[
            "/threats/0/success/0/before/unless/state",
            "unknown record table `payes`",
            "did you mean `payees`?",
        ],
    );
    has(
        &with(
            "unless: { state: { record: { table: payees, id: 1, iban",
            "unless: { state: { record: { table: payees, id: 1, ibn",
        ),
        &[
            "/threats/0/success/0/before/unless/state",
            "did you mean `iban`?",
        ],
    );
    has(
        &with("except: [ mail.sent ]", "except: [ mail.snt ]"),
        &[
            "/threats/0/success/1",
            "without_prior.event: state:",
            "did you mean `sent`?",
        ],
    );
    has(
        &with(
            "when: { not: { state: { record: { table: payees, count: 1 } } } }",
            "when: { not: { state: { record: { table: payees, count: { min: 2, max: 1 } } } } }",
        ),
        &["can never hold"],
    );
    // A weight beside a state check is checked like any other.
    has(
        &with("      weight: 3\n", "      weight: -1\n"),
        &["/task/success/2/weight", "positive"],
    );
    // `refused` judges replies: it is a task check, not a `state:` head.
    let p = with(
        "not: { state: { mail: { folder: sent, to: { contains: evil } } } }",
        "not: { state: { refused: {} } }",
    );
    assert!(!p.is_empty(), "a refused state head must not load");
    has(&p, &["/task/success/4"]);
}

#[test]
fn a_refused_state_head_points_to_assistant() {
    let e = assay_spec::Condition::from_value(&serde_json::json!({"state": {"refused": {}}}))
        .unwrap_err();
    assert!(e.contains("assistant"), "{e}");
    let e = assay_spec::Condition::from_value(&serde_json::json!({"state": {"unchanges": {}}}))
        .unwrap_err();
    assert!(e.contains("did you mean `unchanged`"), "{e}");
}
