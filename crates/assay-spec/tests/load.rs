//! Loading examples and reporting bad input.

use std::path::{Path, PathBuf};

use assay_spec::{load_file, load_str};

fn examples() -> Vec<PathBuf> {
    assay_spec::spec_files(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]).unwrap()
}

#[test]
fn every_example_loads() {
    let ex = examples();
    assert!(!ex.is_empty());
    for p in ex {
        if let Err(e) = load_file(&p) {
            panic!(
                "{}:\n{}",
                p.display(),
                e.diagnostics
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

fn problems(text: &str) -> Vec<String> {
    match load_str(text, Path::new("t.yaml")) {
        Ok(_) => vec![],
        Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

const BASE: &str = r#"apiVersion: assay/v1
kind: Spec
id: t
title: T
agent: { tools: [files.read, mail.send] }
world:
  files:
    /a.txt: "hello {{slot:s1}}"
task:
  prompt: do it
  solution:
    - files.read: { path: /a.txt }
  success:
    - reply: { contains: hello }
threats:
  - id: th
    goal: g
    success: [ { send: { to: x@y.test } } ]
    slots: [s1]
"#;

#[test]
fn base_is_valid() {
    assert!(problems(BASE).is_empty(), "{:?}", problems(BASE));
}

#[test]
fn malformed_yaml_has_position() {
    let p = problems("apiVersion: assay/v1\nkind: [Spec\n");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("t.yaml:"), "{p:?}");
    assert!(p[0].contains("invalid YAML"));
}

#[test]
fn every_unknown_field_is_reported_with_hint() {
    let text = BASE
        .replace("title: T", "title: T\ntitel: X")
        .replace("prompt: do it", "prompt: do it\n  solutoin: []");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].contains("t.yaml:5:1: unknown field `titel`") && p[0].contains("did you mean `title`"),
        "{p:?}"
    );
    assert!(
        p[1].contains("unknown field `solutoin`") && p[1].contains("did you mean `solution`"),
        "{p:?}"
    );
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = BASE
        .replace("[files.read, mail.send]", "[files.read, mail.sned]")
        .replace("slots: [s1]", "slots: [s2]")
        .replace(
            "{ send: { to: x@y.test } }",
            "{ send: { to: { regex: \"(\" } } }",
        );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|d| d.contains("unknown tool `mail.sned`")
                && d.contains("did you mean `mail.send`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|d| d.contains("unknown slot `s2`") && d.contains("did you mean `s1`")),
        "{p:?}"
    );
    assert!(p.iter().any(|d| d.contains("invalid regex")), "{p:?}");
    assert!(
        p.iter().all(|d| !d.starts_with("t.yaml:1:1")),
        "positions should be precise: {p:?}"
    );
}

#[test]
fn wrong_types_and_bad_conditions() {
    let p = problems(&BASE.replace(
        "agent: { tools: [files.read, mail.send] }",
        "agent: { tools: files.read }",
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("invalid type"), "{p:?}");
    let p = problems(&BASE.replace("{ send: { to: x@y.test } }", "{ sendd: { to: x@y.test } }"));
    assert!(p.iter().any(|d| d.contains("did you mean `send`")), "{p:?}");
}

#[test]
fn unknown_resources_are_reported() {
    let text = BASE.replace(
        "success: [ { send: { to: x@y.test } } ]",
        "success:\n      - flow: { from: { secret: stripe }, to: send }\n      - flow: { from: { file: /b.txt }, to: egress }\n      - flow: { from: { sensitivity: secrte }, to: egress }",
    )
    .replace("- reply: { contains: hello }", "- reply: { contains: hello }\n    - record: { table: tikets, id: 1 }")
    .replace("hello {{slot:s1}}", "hello {{slot:s1}} {{secrte:k}}");
    let p = problems(&text);
    assert!(
        p.iter().any(|d| d.contains("unknown secret `stripe`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|d| d.contains("unknown file `/b.txt`") && d.contains("did you mean `/a.txt`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|d| d.contains("no resource carries sensitivity `secrte`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|d| d.contains("unknown record table `tikets`")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|d| d.contains("unknown placeholder `{{secrte:k}}`")
                && d.contains("did you mean `{{secret:k}}`")),
        "{p:?}"
    );
}

#[test]
fn arbitrary_text_never_panics() {
    for text in [
        "",
        "---",
        "[1,2]",
        "a: *x",
        "apiVersion: 3\nkind: 4",
        "\u{0}\u{1}",
        "a:\n  - b: [",
        "? complex\n: key",
    ] {
        let _ = load_str(text, Path::new("x.yaml"));
    }
}

#[test]
fn state_heads_and_state_checks_are_checked() {
    let with = |success: &str| {
        BASE.replace(
            "    success: [ { send: { to: x@y.test } } ]",
            &format!("    success: [ {success} ]"),
        )
        .replace(
            "  files:\n",
            "  records:\n    tx: { key: id, rows: [ { id: 1, to: a, tags: [x] } ] }\n  files:\n",
        )
    };
    let ok = [
        "{ state: { record: { table: tx, to: b } } }",
        "{ state: { record: { table: tx, tags: { contains: x }, count: 0 } } }",
        "{ state: { record: { table: tx, count: { min: 1, max: 2 } } } }",
        "{ state: { mail: { folder: sent, to: x@y.test } } }",
        "{ state: { unchanged: { except: [ \"records.tx#id=1\", mail.sent, files./tmp, memory ] } } }",
        "{ any: [ { state: { file: { path: /a.txt, exists: false } } }, { send: {} } ] }",
    ];
    for s in ok {
        assert_eq!(problems(&with(s)), Vec::<String>::new(), "{s}");
    }
    let bad = [
        (
            "{ state: { recrd: { table: tx } } }",
            "did you mean `record`?",
        ),
        ("{ state: { reply: hi } }", "unknown field `reply`"),
        (
            "{ state: { record: { table: txx } } }",
            "unknown record table `txx`",
        ),
        (
            "{ state: { record: { table: tx, too: b } } }",
            "did you mean `to`?",
        ),
        (
            "{ state: { mail: { folder: outbox } } }",
            "allowed here: inbox, sent, deleted",
        ),
        ("{ state: { mail: { form: a } } }", "did you mean `from`?"),
        (
            "{ state: { unchanged: { except: [ record.tx ] } } }",
            "did you mean `records`?",
        ),
        (
            "{ state: { unchanged: { except: [ records.txx ] } } }",
            "unknown record table `txx`",
        ),
        (
            "{ state: { unchanged: { except: [ \"records.tx#idd=1\" ] } } }",
            "did you mean `id`?",
        ),
        (
            "{ state: { record: { table: tx, count: { min: 3, max: 1 } } } }",
            "can never hold",
        ),
    ];
    for (s, want) in bad {
        let p = problems(&with(s));
        assert!(p.iter().any(|d| d.contains(want)), "{s}: {p:#?}");
    }
}

#[test]
fn table_keys_and_row_labels_are_checked() {
    let with = |table: &str| {
        BASE.replace(
            "  files:\n",
            &format!("  records:\n    t: {table}\n  files:\n"),
        )
    };
    assert!(
        problems(&with(
            "{ key: id, sensitivity_column: label, rows: [ { id: 1, label: private, v: [1, 2] } ] }"
        ))
        .is_empty()
    );
    let p = problems(&with("{ key: id, rows: [ { id: 1 }, { id: 1 } ] }"));
    assert!(p.iter().any(|d| d.contains("appears twice")), "{p:#?}");
    let p = problems(&with("{ key: id, rows: [ { id: 1 }, { idd: 2 } ] }"));
    assert!(p.iter().any(|d| d.contains("has no key `id`")), "{p:#?}");
    let p = problems(&with(
        "{ sensitivity_column: lable, rows: [ { label: x } ] }",
    ));
    assert!(
        p.iter().any(|d| d.contains("did you mean `label`?")),
        "{p:#?}"
    );
}
