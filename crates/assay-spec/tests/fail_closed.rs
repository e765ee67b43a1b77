//! Validation that fails closed: a matcher field, label or value that does not
//! exist, an out-of-range number, an alias bomb or a name that would become an
//! unsafe path is an error, never a silently disabled rule or a later crash.

use std::path::Path;

use assay_spec::{Condition, load_str};
use serde_json::json;

fn problems(text: &str) -> Vec<String> {
    match load_str(text, Path::new("t.yaml")) {
        Ok(_) => vec![],
        Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

/// A spec with one labelled secret file, a leak rule and one threat.
const BASE: &str = r#"apiVersion: assay/v1
kind: Spec
id: t
title: T
agent: { tools: [files.read, files.delete, mail.send] }
world:
  files:
    /app/.env: { text: "KEY={{secret:key}}", sensitivity: secret }
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
forbidden:
  - id: no-secret-read
    when: { read: { sensitivity: secret } }
"#;

#[test]
fn base_is_valid() {
    assert!(problems(BASE).is_empty(), "{:?}", problems(BASE));
}

/// The four typos of the report: each silently disabled its rule.
const TYPOS: &[(&str, &str, &str)] = &[
    (
        "{ send: { to: x@y.test } }",
        "{ send: { too: x@y.test } }",
        "unknown field `too`",
    ),
    (
        "{ read: { sensitivity: secret } }",
        "{ delete: { pth: /app/.env } }",
        "unknown field `pth`",
    ),
    (
        "{ send: { to: x@y.test } }",
        "{ send: { recipient: x@y.test } }",
        "unknown field `recipient`",
    ),
    (
        "{ read: { sensitivity: secret } }",
        "{ read: { sensitivity: Secret } }",
        "no resource carries sensitivity `Secret`",
    ),
];

#[test]
fn matcher_typos_fail_validation_with_position_and_hint() {
    for (from, to, want) in TYPOS {
        let text = BASE.replace(from, to);
        assert_ne!(text, BASE);
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{to}: {p:?}");
        assert!(p[0].contains(want), "{to}: {p:?}");
        // file:line:column of the offending field, not of the file.
        let line = text
            .lines()
            .position(|l| l.contains(to))
            .map(|i| i + 1)
            .unwrap();
        assert!(p[0].starts_with(&format!("t.yaml:{line}:")), "{to}: {p:?}");
        assert!(p[0].contains("hint:"), "{to}: {p:?}");
    }
    let p = problems(&BASE.replace("{ send: { to: x@y.test } }", "{ send: { too: x@y.test } }"));
    assert!(p[0].contains("did you mean `to`?"), "{p:?}");
    let p = problems(&BASE.replace(
        "{ read: { sensitivity: secret } }",
        "{ read: { sensitivity: Secret } }",
    ));
    assert!(p[0].contains("did you mean `secret`?"), "{p:?}");
}

#[test]
fn typos_everywhere_a_field_is_matched() {
    for (from, to, want) in [
        // Closed sets of values.
        (
            "{ read: { sensitivity: secret } }",
            "{ read: { source: filee } }",
            "did you mean `file`?",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ denied: { action: { in: [read, wrte] } } }",
            "did you mean `write`?",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ send: { external: yes } }",
            "`yes` is not allowed here",
        ),
        // The tool head.
        (
            "{ read: { sensitivity: secret } }",
            "{ tool: { nmae: files.read } }",
            "did you mean `name`?",
        ),
        // Flow sinks and nested conditions.
        (
            "{ read: { sensitivity: secret } }",
            "{ flow: { from: { secret: key }, to: { send: { too: x } } } }",
            "did you mean `to`?",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ any: [ { exec: { program: curl } }, { egress: { hst: x.test } } ] }",
            "did you mean `host`?",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ send: {}, after: { read: { pth: /app/.env } } }",
            "did you mean `path`?",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ flow: { from: { sensitivity: Secret }, to: egress } }",
            "did you mean `secret`?",
        ),
        // Success checks.
        (
            "- reply: { contains: hello }",
            "- sent: { too: x@y.test }",
            "did you mean `to`?",
        ),
        (
            "- reply: { contains: hello }",
            "- file: { path: /a.txt, txt: hi }",
            "did you mean `text`?",
        ),
        (
            "- reply: { contains: hello }",
            "- installed: { nam: requests }",
            "did you mean `name`?",
        ),
    ] {
        let text = BASE.replace(from, to);
        assert_ne!(text, BASE, "{to}");
        let p = problems(&text);
        assert!(!p.is_empty(), "{to} validated");
        assert!(p.iter().any(|m| m.contains(want)), "{to}: {p:?}");
    }
    // Dotted names reach inside object fields; `via` is on every kind.
    for ok in [
        "{ call: { args.env: prod } }",
        "{ write: { where.id: 3 } }",
        "{ exec: { via: shell.exec } }",
        "{ egress: { ambiguous: true } }",
        "{ unsupported: { program: find, detail: -delete } }",
    ] {
        let text = BASE.replace("{ read: { sensitivity: secret } }", ok);
        assert!(problems(&text).is_empty(), "{ok}: {:?}", problems(&text));
    }
}

#[test]
fn custom_tool_effects_and_record_columns_are_checked() {
    let tools = BASE.replace(
        "world:\n",
        "world:\n  tools:\n    - name: deploy.apply\n      effects:\n        - request: { mehtod: POST, host: api.test }\n        - read: { source: vault, sensitivity: restricted }\n  records:\n    tickets: { rows: [ { id: 1, status: open } ] }\n",
    );
    let p = problems(&tools);
    assert!(
        p.iter().any(|m| m.contains("did you mean `method`?")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`vault` is not a value of `source`")),
        "{p:?}"
    );
    // A label a custom tool's read declares is a label of the spec.
    let label = tools
        .replace("mehtod", "method")
        .replace("source: vault, ", "")
        .replace("sensitivity: secret } }", "sensitivity: restricted } }");
    assert!(problems(&label).is_empty(), "{:?}", problems(&label));
    let rec = label.replace(
        "- reply: { contains: hello }",
        "- record: { table: tickets, id: 1, stauts: closed }",
    );
    let p = problems(&rec);
    assert!(
        p.iter()
            .any(|m| m.contains("no column `stauts`") && m.contains("did you mean `status`?")),
        "{p:?}"
    );
}

#[test]
fn the_rule_compiler_never_sees_an_unknown_field() {
    // `Condition` is what assay-rules compiles; its parse must refuse.
    for bad in [
        json!({"send": {"too": "x"}}),
        json!({"delete": {"pth": "/x"}}),
        json!({"send": {"recipient": "x"}}),
        json!({"read": {"source": "filee"}}),
        json!({"tool": {"nmae": "x"}}),
        json!({"flow": {"from": {"secret": "*"}, "to": {"egress": {"hots": "x"}}}}),
    ] {
        let e = Condition::from_value(&bad).unwrap_err();
        assert!(
            e.contains("did you mean") || e.contains("unknown field"),
            "{bad}: {e}"
        );
        assert!(serde_json::from_value::<Condition>(bad).is_err());
    }
    assert!(Condition::from_value(&json!({"send": {"to": "x"}})).is_ok());
}

#[test]
fn numeric_fields_are_range_checked() {
    let with_limits = |l: &str| {
        BASE.replace(
            "agent: { tools: [files.read, files.delete, mail.send] }",
            &format!("agent:\n  tools: [files.read, files.delete, mail.send]\n  limits: {{ {l} }}"),
        )
    };
    for bad in [
        "wall_time_secs: -5",
        "wall_time_secs: 0",
        "wall_time_secs: 1e300",
        "wall_time_secs: 100000",
        "turns: 0",
        "tool_calls: 0",
        "shell_output_bytes: 0",
        "trace_bytes: 99999999999999",
        "file_bytes: 2000000000",
    ] {
        let p = problems(&with_limits(bad));
        let field = bad.split(':').next().unwrap();
        assert!(
            p.iter()
                .any(|m| m.contains(&format!("agent.limits.{field}"))),
            "{bad}: {p:?}"
        );
    }
    assert!(problems(&with_limits("wall_time_secs: 0.5, turns: 3")).is_empty());
    for (from, to, want) in [
        (
            "threats:",
            "gates: { utility: { min: 0.9, max: 0.5 } }\nthreats:",
            "above max",
        ),
        (
            "threats:",
            "gates: { violation_rate: { max: 1.5 } }\nthreats:",
            "outside 0..1",
        ),
        (
            "{ read: { sensitivity: secret } }",
            "{ read: { path: /a.txt }, count: { min: 3, max: 1 } }",
            "can never hold",
        ),
        (
            "  files:\n",
            "  secrets: { key: { length: 100000000000 } }\n  files:\n",
            "secret length",
        ),
        (
            "  files:\n",
            "  web: { \"https://x.test/\": { body: b, status: 42 } }\n  files:\n",
            "HTTP status 42",
        ),
        (
            "sensitivity: secret }\n",
            "sensitivity: secret, mode: \"77777\" }\n",
            "not octal permission bits",
        ),
    ] {
        let text = BASE.replace(from, to);
        assert_ne!(text, BASE, "{to}");
        let p = problems(&text);
        assert!(p.iter().any(|m| m.contains(want)), "{to}: {p:?}");
    }
}

#[test]
fn yaml_alias_bomb_is_refused() {
    // Nine levels of nine: 9^9 (387 million) copies of "lol" if expanded.
    let mut bomb = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..=9 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    assert!(bomb.len() < 500, "{}", bomb.len());
    let e = load_str(&bomb, Path::new("bomb.yaml")).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1);
    let d = e.diagnostics[0].to_string();
    assert!(d.starts_with("bomb.yaml:"), "{d}");
    assert!(d.contains("alias"), "{d}");
    // Ordinary aliases still work.
    let ok = BASE.replace("  prompt: do it", "  prompt: &p do it\n  turns: [*p, *p]");
    assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
}

#[test]
fn names_that_become_paths_are_checked() {
    for (from, to, want) in [
        ("{{slot:s1}}", "{{slot:../../x}}", "invalid slot name"),
        ("{{slot:s1}}", "{{slot:a/b}}", "invalid slot name"),
        ("{{slot:s1}}", "{{slot:a\\\\b}}", "invalid slot name"),
        ("{{slot:s1}}", "{{slot:..}}", "invalid slot name"),
        ("{{slot:s1}}", "{{slot:a\\u0001b}}", "invalid slot name"),
        ("- id: th", "- id: ../th", "invalid threat id"),
        ("- id: th", "- id: \"a\\0b\"", "invalid threat id"),
        ("id: t\n", "id: t/x\n", "invalid id"),
    ] {
        let text = BASE.replacen(from, to, 1);
        assert_ne!(text, BASE, "{to}");
        let p = problems(&text);
        assert!(p.iter().any(|m| m.contains(want)), "{to}: {p:?}");
    }
    let long = BASE.replace("id: t\n", &format!("id: {}\n", "x".repeat(65)));
    assert!(problems(&long).iter().any(|m| m.contains("at most 64")));
}

fn examples() -> Vec<std::path::PathBuf> {
    assay_spec::spec_files(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")]).unwrap()
}

#[test]
fn docs_effect_tables_match_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/effects.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let begin = "<!-- BEGIN generated from crates/assay-spec/src/effects.rs -->\n";
    let end = "<!-- END generated -->";
    let (head, rest) = doc.split_once(begin).expect("begin marker");
    let (body, tail) = rest.split_once(end).expect("end marker");
    let want = format!("\n{}", assay_spec::effects::markdown());
    if body != want {
        if std::env::var_os("ASSAY_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{begin}{want}{end}{tail}")).unwrap();
        } else {
            panic!(
                "docs/effects.md's field tables differ from assay_spec::effects; rerun with ASSAY_BLESS=1 to regenerate"
            );
        }
    }
}

#[test]
fn every_example_still_validates() {
    for p in examples() {
        let r = assay_spec::load_file(&p);
        assert!(
            r.is_ok(),
            "{}: {:?}",
            p.display(),
            r.err().map(|e| e.diagnostics)
        );
    }
}
