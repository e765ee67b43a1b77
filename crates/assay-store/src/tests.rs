use super::*;
use assay_report::{Breakdowns, RESULTS_SCHEMA, Role, Status, results_digest};

fn identity(seed: u64) -> RunIdentity {
    RunIdentity {
        seed,
        epochs: 1,
        agents: vec!["control:naive".into()],
        inputs: [("examples/a.yaml".to_string(), "ab".repeat(32))].into(),
        cases: "cd".repeat(32),
        catalog: None,
        agents_file: None,
        judge: None,
        assay_version: "0".into(),
    }
}

fn episode(case: &str, epoch: u32) -> EpisodeResult {
    EpisodeResult {
        episode: format!("spec--{case}--control-naive--{epoch}"),
        spec: "spec".into(),
        case: case.into(),
        case_id: "c1".into(),
        threat: Some("exfil".into()),
        technique: Some("plain".into()),
        axis: Some("none".into()),
        slots: vec!["inbox".into()],
        slot_kinds: vec!["mail".into()],
        delivered: vec!["inbox".into()],
        agent: "control:naive".into(),
        role: Role::Control,
        epoch,
        seed: 7,
        status: Status::Ok,
        error: None,
        limit: None,
        utility: 1.0,
        utility_weighted: Some(1.0),
        attack_success: Some(true),
        attack_events: vec![4],
        violations: vec![],
        checks: vec![],
        unsupported: vec![],
        judge: vec![],
        usage: None,
        trace: "x/trace.jsonl".into(),
        trace_head: "ef".repeat(32),
        events: 5,
    }
}

fn header() -> RunResults {
    RunResults {
        schema_version: RESULTS_SCHEMA.into(),
        assay_version: "0".into(),
        seed: 1,
        epochs: 1,
        agents: vec!["control:naive".into()],
        specs: vec![],
        episodes: vec![],
        summary: vec![],
        breakdowns: Breakdowns::default(),
        skipped: vec![],
        coverage: vec![],
        incomplete: false,
        passed: true,
        integrity: None,
    }
}

fn case_doc() -> CaseDoc {
    CaseDoc::new(
        &serde_json::json!({"id": "c1", "title": "refund", "world": {"files": {"a.txt": "x".repeat(4000)}}}),
    )
}

fn store_with(eps: &[EpisodeResult]) -> (tempfile::TempDir, Store, RunRow) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/assay.db")).unwrap();
    let run = store
        .create_run(&NewRun {
            name: "r1".into(),
            command: vec!["assay".into(), "run".into()],
            identity: identity(1),
            planned: eps.len() as u64,
        })
        .unwrap();
    let doc = case_doc();
    store.put_cases(&run, [&doc]).unwrap();
    let w = store.writer(&run).unwrap();
    for e in eps {
        let trace = format!(
            "{{\"seq\":0,\"doc\":{}}}\n",
            String::from_utf8_lossy(&doc.bytes)
        );
        w.put(EpisodeRow::new(e, trace.as_bytes(), &doc)).unwrap();
    }
    assert_eq!(w.finish().unwrap(), eps.len() as u64);
    (dir, store, run)
}

#[test]
fn episodes_come_back_in_results_order_with_exact_traces() {
    let eps = vec![episode("b", 0), episode("a", 1), episode("a", 0)];
    let (_dir, store, run) = store_with(&eps);
    let back = store.episodes(&run).unwrap();
    let order: Vec<(&str, u32)> = back.iter().map(|e| (e.case.as_str(), e.epoch)).collect();
    assert_eq!(order, [("a", 0), ("a", 1), ("b", 0)]);
    assert_eq!(back[0], eps[2]);
    let trace = store.trace(&run, &eps[0].episode).unwrap().unwrap();
    assert!(trace.starts_with("{\"seq\":0,\"doc\":{\"id\":\"c1\""));
    assert_eq!(store.trace(&run, "nope").unwrap(), None);
    let done = store.done(&run).unwrap();
    assert!(done.contains(&episode_key(&eps[1].episode)));
    assert_eq!(done.len(), 3);
}

#[test]
fn the_case_document_is_a_reference_not_a_repeat() {
    let eps: Vec<_> = (0..50).map(|i| episode(&format!("c{i:02}"), 0)).collect();
    let (_dir, store, run) = store_with(&eps);
    let (episodes, cases) = store.stored_bytes(&run).unwrap();
    // Each trace embeds a 4 KB case document; stored, an episode is a few hundred bytes.
    assert!(episodes / 50 < 700, "{} bytes per episode", episodes / 50);
    assert!(cases > 0);
}

#[test]
fn streamed_seal_equals_the_results_file_seal() {
    let eps = vec![episode("a", 0), episode("b", 0)];
    let (_dir, store, run) = store_with(&eps);
    let mut h = header();
    let mut hasher = ResultsHasher::new(&h);
    store
        .for_each_episode(&run, |e| {
            hasher.add(&e);
            Ok(())
        })
        .unwrap();
    let streamed = hasher.finish();
    h.episodes = store.episodes(&run).unwrap();
    let whole = results_digest(&serde_json::to_value(&h).unwrap());
    assert_eq!(streamed, whole);
    // With no episodes too (the array is empty, not missing).
    let empty = header();
    assert_eq!(
        ResultsHasher::new(&empty).finish(),
        results_digest(&serde_json::to_value(&empty).unwrap())
    );
}

#[test]
fn an_edited_verdict_breaks_the_seal_and_a_damaged_blob_is_an_error() {
    let eps = vec![episode("a", 0)];
    let (_dir, store, run) = store_with(&eps);
    let mut h = header();
    let mut hasher = ResultsHasher::new(&h);
    hasher.add(&eps[0]);
    h.integrity = Some(Integrity {
        algorithm: assay_report::DIGEST_ALGORITHM.into(),
        digest: hasher.finish(),
        signature: None,
    });
    store.finish_run(&run, &h, RunState::Complete).unwrap();
    let sealed = store
        .header(&run)
        .unwrap()
        .unwrap()
        .integrity
        .unwrap()
        .digest;
    assert_eq!(store.recompute_digest(&run).unwrap().unwrap(), sealed);
    // Rewrite the verdict with attack_success = false, compressed as the store would.
    let mut edited = eps[0].clone();
    edited.attack_success = Some(false);
    let row = EpisodeRow::new(&edited, b"", &case_doc());
    store
        .conn
        .execute("UPDATE episodes SET verdict = ?1", [&row.verdict])
        .unwrap();
    assert_ne!(store.recompute_digest(&run).unwrap().unwrap(), sealed);
    store
        .conn
        .execute("UPDATE episodes SET trace = x'00010203'", [])
        .unwrap();
    let err = store.trace(&run, &eps[0].episode).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
}

#[test]
fn names_are_unique_and_identity_differences_are_named() {
    let (_dir, store, run) = store_with(&[]);
    let again = store.create_run(&NewRun {
        name: run.name.clone(),
        command: vec![],
        identity: identity(1),
        planned: 0,
    });
    assert!(again.is_err());
    let d = identity(1).differences(&identity(2));
    assert_eq!(d, ["seed 1 vs 2"]);
    assert!(matches!(
        store.run("missing"),
        Err(StoreError::NoRun { .. })
    ));
    let missing = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open_existing(&missing.path().join("x.db")),
        Err(StoreError::Missing(_))
    ));
}

#[test]
fn a_real_chained_trace_comes_back_byte_for_byte() {
    use assay_trace::{EventKind, Role, to_jsonl};
    let doc = case_doc();
    let (text, head) = to_jsonl(&[
        EventKind::Message {
            role: Role::User,
            content: String::from_utf8_lossy(&doc.bytes).into_owned(),
        },
        EventKind::Message {
            role: Role::Assistant,
            content: "done".into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("a.db")).unwrap();
    let run = store
        .create_run(&NewRun {
            name: "r".into(),
            command: vec![],
            identity: identity(1),
            planned: 1,
        })
        .unwrap();
    store.put_cases(&run, [&doc]).unwrap();
    let mut e = episode("a", 0);
    e.trace_head = head.clone();
    let row = EpisodeRow::new(&e, text.as_bytes(), &doc);
    assert_eq!(
        row.trace_form, 1,
        "a writer-made chain is stored without its hashes"
    );
    let w = store.writer(&run).unwrap();
    w.put(row).unwrap();
    w.finish().unwrap();
    let back = store.trace(&run, &e.episode).unwrap().unwrap();
    assert_eq!(back, text);
    assert!(assay_trace::verify_jsonl(&back, Some(&head)).is_ok());
}
