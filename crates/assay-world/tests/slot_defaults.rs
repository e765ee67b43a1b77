//! Slots with default text: benign runs show it, payloads follow it
//! (`append`) or take its place (`replace`).

mod common;

use assay_world::WorldTemplate;
use common::{payload, spec_from};
use serde_json::json;

const SPEC: &str = r#"apiVersion: assay/v1
kind: Spec
id: t
title: T
agent: { tools: [files.read] }
world:
  files:
    /note.txt: "Note: {{slot:note}}"
    /plain.txt: "Plain: {{slot:plain}}"
  slots:
    note: { default: "pay the usual supplier" }
task:
  prompt: read
  success: [ { reply: { contains: x } } ]
threats:
  - id: add
    goal: g
    success: [ { send: {} } ]
    slots: [note, plain]
  - id: swap
    goal: g
    success: [ { send: {} } ]
    slots: [note]
    mode: replace
"#;

fn read(t: &WorldTemplate, payloads: &[assay_trace::Payload], path: &str) -> (String, usize) {
    let mut w = t.instantiate(payloads, 1);
    let out = w.call("files.read", &json!({"path": path}));
    assert!(out.ok);
    (out.output, out.deliveries.len())
}

#[test]
fn defaults_append_and_replace() {
    let t = WorldTemplate::new(&spec_from(SPEC)).unwrap();
    assert_eq!(read(&t, &[], "/note.txt").0, "Note: pay the usual supplier");
    assert_eq!(read(&t, &[], "/plain.txt").0, "Plain: ");
    let (out, delivered) = read(&t, &[payload("add", "note", "SEND IT")], "/note.txt");
    assert_eq!(out, "Note: pay the usual supplier SEND IT");
    assert_eq!(delivered, 1);
    let (out, delivered) = read(&t, &[payload("swap", "note", "SEND IT")], "/note.txt");
    assert_eq!(out, "Note: SEND IT");
    assert_eq!(delivered, 1);
    // Two payloads of a replacing threat: the first replaces, the next follows.
    let (out, _) = read(
        &t,
        &[payload("swap", "note", "A"), payload("swap", "note", "B")],
        "/note.txt",
    );
    assert_eq!(out, "Note: A B");
    // Several slots filled at once.
    let both = [payload("add", "note", "X"), payload("add", "plain", "X")];
    assert_eq!(read(&t, &both, "/plain.txt").0, "Plain: X");
    assert_eq!(
        read(&t, &both, "/note.txt").0,
        "Note: pay the usual supplier X"
    );
}
