//! `synth --out DIR` never writes or deletes outside DIR, and removes only
//! files it wrote itself.

use std::path::{Path, PathBuf};

use assay_spec::load_str;
use assay_synth::{Catalog, SynthCase, SynthOptions, synthesize, write_cases};
use proptest::prelude::*;

fn one_technique() -> SynthOptions {
    SynthOptions {
        techniques: Some(vec!["plain-instruction".into()]),
        ..Default::default()
    }
}

fn spec_text(spec: &str, threat: &str, slot: &str) -> String {
    format!(
        r#"apiVersion: assay/v1
kind: Spec
id: {spec}
title: T
agent: {{ tools: [files.read, mail.send] }}
world:
  files:
    /a.txt: {slot_text}
task:
  prompt: do it
  solution:
    - files.read: {{ path: /a.txt }}
  success:
    - reply: {{ contains: hello }}
threats:
  - id: {threat}
    goal: g
    success: [ {{ send: {{ to: x@y.test }} }} ]
    slots: [{slot}]
"#,
        slot_text = serde_json::to_string(&format!("hello {{{{slot:{slot}}}}}")).unwrap(),
        spec = serde_json::to_string(spec).unwrap(),
        threat = serde_json::to_string(threat).unwrap(),
        slot = serde_json::to_string(slot).unwrap(),
    )
}

fn cases_of(text: &str) -> Option<Vec<SynthCase>> {
    let loaded = load_str(text, Path::new("t.yaml")).ok()?;
    Some(synthesize(&loaded, &Catalog::embedded().unwrap(), &one_technique()).unwrap())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_manifest_is_refused_and_nothing_outside_is_deleted() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let victim = root.path().join("victim");
    let absolute = root.path().join("x");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::write(&absolute, "keep me too").unwrap();
    let inside = out.join("mine.yaml");
    std::fs::write(&inside, "old case").unwrap();
    let manifest = serde_json::json!({
        "schema_version": "assay-synth/v1",
        "cases": [
            {"file": absolute.to_str().unwrap()},
            {"file": "../victim"},
            {"file": "mine.yaml"},
        ]
    });
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();
    let cases = cases_of(&spec_text("s", "th", "s1")).unwrap();
    let e = write_cases(
        &out,
        &cases,
        &Catalog::embedded().unwrap(),
        &one_technique(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("refusing to remove anything"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(&absolute).unwrap(), "keep me too");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "old case");
}

#[test]
fn only_files_still_holding_their_digest_are_removed() {
    let out = tempfile::tempdir().unwrap();
    let catalog = Catalog::embedded().unwrap();
    let first = cases_of(&spec_text("first", "th", "s1")).unwrap();
    write_cases(out.path(), &first, &catalog, &one_technique()).unwrap();
    let written = files_under(out.path());
    assert_eq!(written.len(), first.len() + 1, "{written:?}");
    // The user edits one case file and drops a file of their own beside them.
    let edited = out.path().join(&first[1].file);
    std::fs::write(&edited, "my notes").unwrap();
    let own = out.path().join("first/notes.txt");
    std::fs::write(&own, "mine").unwrap();
    let second = cases_of(&spec_text("second", "th", "s1")).unwrap();
    write_cases(out.path(), &second, &catalog, &one_technique()).unwrap();
    // The untouched file of the first synthesis is gone; the edited one and
    // the user's own file stay.
    assert!(!out.path().join(&first[0].file).exists());
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "my notes");
    assert_eq!(std::fs::read_to_string(&own).unwrap(), "mine");
    for c in &second {
        assert!(out.path().join(&c.file).exists());
    }
}

#[test]
fn unsafe_case_paths_are_never_written() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let mut cases = cases_of(&spec_text("s", "th", "s1")).unwrap();
    cases[1].file = "../../x.yaml".into();
    let e = write_cases(
        &out,
        &cases,
        &Catalog::embedded().unwrap(),
        &one_technique(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a plain relative path"), "{e}");
    assert!(!root.path().join("x.yaml").exists());
    assert!(!out.exists(), "nothing is written when one path is unsafe");
}

#[cfg(unix)]
#[test]
fn writes_never_follow_a_symlink_out_of_the_directory() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("s")).unwrap();
    let cases = cases_of(&spec_text("s", "th", "s1")).unwrap();
    let e = write_cases(
        &out,
        &cases,
        &Catalog::embedded().unwrap(),
        &one_technique(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert!(files_under(&elsewhere).is_empty());
}

#[test]
fn a_slot_named_to_climb_out_fails_validation() {
    assert!(cases_of(&spec_text("s", "th", "../../x")).is_none());
    assert!(cases_of(&spec_text("s", "../th", "s1")).is_none());
    assert!(cases_of(&spec_text("../s", "th", "s1")).is_none());
}

/// Names mixing safe characters with separators, dots, NUL, control
/// characters and non-ASCII text, short and very long. Two in three are
/// plain ids, so most generated specs validate and reach the writer.
fn name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-z0-9][a-z0-9_-]{0,8}",
        1 => Just("..".to_string()),
        1 => Just("/".to_string()),
        1 => Just("\\".to_string()),
        1 => Just("\0".to_string()),
        1 => Just(".".to_string()),
        1 => Just("\u{1b}[2J".to_string()),
        1 => "\\PC{1,3}",
        1 => "[a-z]{60,80}",
    ];
    let hostile = prop::collection::vec(piece, 1..4).prop_map(|v| v.concat());
    prop_oneof![2 => "[a-z0-9][a-z0-9_-]{0,12}", 1 => hostile]
}

#[test]
fn the_longest_valid_names_are_written() {
    // The case once refused: a 64-byte slot after a technique id passes the
    // 64-byte bound on one name but not on the joined file name.
    let slot = "s".repeat(64);
    let cases = cases_of(&spec_text("7122t_-9_-eu-", "5_k_7", &slot)).expect("valid");
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out");
    write_cases(
        &out,
        &cases,
        &Catalog::embedded().unwrap(),
        &one_technique(),
    )
    .unwrap();
    assert_eq!(files_under(&out).len(), cases.len() + 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Property (c): random spec, threat and slot names either fail
    /// validation or give synth output paths that stay inside `--out`; a
    /// name that passed validation is always written (validation and the
    /// writer agree on what a safe name is).
    #[test]
    fn random_names_never_leave_out(spec in name(), threat in name(), slot in name()) {
        let Some(cases) = cases_of(&spec_text(&spec, &threat, &slot)) else {
            return Ok(());
        };
        let root = tempfile::tempdir().unwrap();
        let out = root.path().join("out");
        let written = write_cases(&out, &cases, &Catalog::embedded().unwrap(), &one_technique());
        prop_assert!(written.is_ok(), "valid names refused: {:?}", written.err().map(|e| e.to_string()));
        let canon = out.canonicalize().unwrap();
        for c in &cases {
            let p = out.join(&c.file).canonicalize().unwrap();
            prop_assert!(p.starts_with(&canon), "{} escapes", c.file);
        }
        // Nothing was created beside `out`.
        let beside: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().path()).collect();
        prop_assert_eq!(beside, vec![out.clone()]);
        prop_assert_eq!(files_under(&out).len(), cases.len() + 1);
    }
}

#[test]
fn a_case_file_with_hostile_provenance_names_is_refused() {
    // The runner names episode directories after provenance; a hand-made case
    // with a matching content id must not smuggle a path in through it.
    let cases = cases_of(&spec_text("s", "th", "s1")).unwrap();
    let good = assay_synth::case_to_yaml(&cases[1].case);
    assert!(assay_spec::load_document_str(&good, Path::new("c.yaml")).is_ok());
    for edit in [
        |c: &mut assay_spec::Case| c.provenance.slots[0].name = "../../x".into(),
        |c: &mut assay_spec::Case| c.provenance.spec = "a/b".into(),
        |c: &mut assay_spec::Case| c.provenance.technique.as_mut().unwrap().id = "..".into(),
    ] {
        let mut case = cases[1].case.clone();
        edit(&mut case);
        let text = assay_synth::case_to_yaml(&case.with_content_id());
        assert!(
            assay_spec::load_document_str(&text, Path::new("c.yaml")).is_err(),
            "{text}"
        );
    }
}
