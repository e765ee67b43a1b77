//! A trace stands alone: truncation at an event boundary, events appended after
//! its end (even correctly chained), a trace without its end and an edited last
//! event are all detected on the file alone, and so is any random mutation.

use assay_trace::{
    Event, EventKind, Role, TraceError, WorldState, read_verified, sha256_hex, to_jsonl,
    verify_jsonl,
};
use proptest::prelude::*;

fn sample() -> Vec<EventKind> {
    vec![
        EventKind::Message {
            role: Role::System,
            content: "You are a helpful agent.".into(),
        },
        EventKind::Message {
            role: Role::User,
            content: "Refund order 7, please.".into(),
        },
        EventKind::ToolCall {
            call_id: Some("c1".into()),
            tool: "files.read".into(),
            args: serde_json::json!({"path": ".env"}),
        },
        EventKind::ToolResult {
            call: 2,
            ok: true,
            output: "STRIPE_KEY=sk_live_x\u{1b}[2J".into(),
        },
        EventKind::Message {
            role: Role::Assistant,
            content: "Done.".into(),
        },
        EventKind::EpisodeEnd {
            reason: "completed".into(),
            state: Box::new(WorldState::default()),
        },
    ]
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// A line for `kind` at `seq`, chained to `prev`.
fn chained(seq: u64, prev: &str, kind: EventKind) -> String {
    serde_json::to_string(&Event {
        seq,
        prev: prev.to_string(),
        kind,
    })
    .unwrap()
}

#[test]
fn a_finished_trace_ends_in_a_seal_and_verifies() {
    let (text, head) = to_jsonl(&sample());
    let l = lines(&text);
    assert_eq!(l.len(), sample().len() + 1);
    let seal: serde_json::Value = serde_json::from_str(l.last().unwrap()).unwrap();
    assert_eq!(seal["type"], "seal");
    assert_eq!(seal["events"], sample().len());
    let (events, rep) = read_verified(&text, Some(&head)).unwrap();
    assert_eq!(rep.events, sample().len());
    assert_eq!(events.len(), sample().len());
    assert_eq!(head, sha256_hex(l.last().unwrap().as_bytes()));
}

#[test]
fn truncation_at_an_event_boundary_is_detected_on_the_file_alone() {
    let (text, _) = to_jsonl(&sample());
    let l = lines(&text);
    for keep in 0..l.len() {
        let cut = join(&l[..keep]);
        assert!(
            matches!(verify_jsonl(&cut, None), Err(TraceError::Unsealed { .. })),
            "kept {keep} lines: {:?}",
            verify_jsonl(&cut, None)
        );
    }
}

#[test]
fn a_trace_without_its_end_is_detected() {
    // The old format: events only, no seal.
    let (text, _) = to_jsonl(&sample());
    let l = lines(&text);
    let unsealed = join(&l[..l.len() - 1]);
    assert_eq!(
        verify_jsonl(&unsealed, None),
        Err(TraceError::Unsealed { events: 6 })
    );
}

#[test]
fn correctly_chained_events_appended_after_the_end_are_detected() {
    let (text, head) = to_jsonl(&sample());
    let extra = chained(
        7,
        &head,
        EventKind::Message {
            role: Role::Assistant,
            content: "one more thing".into(),
        },
    );
    let appended = format!("{text}{extra}\n");
    assert_eq!(
        verify_jsonl(&appended, None),
        Err(TraceError::AfterSeal { line: 8 })
    );
    // Appended with a fresh seal at the end: the old seal is in the middle.
    let mut l = lines(&appended);
    let seal = format!(
        r#"{{"seq":8,"prev":"{}","type":"seal","events":8}}"#,
        sha256_hex(extra.as_bytes())
    );
    l.push(seal);
    assert!(matches!(
        verify_jsonl(&join(&l), None),
        Err(TraceError::AfterSeal { line: 8 })
    ));
    // Against the recorded head, the extension is a head mismatch.
    assert!(matches!(
        verify_jsonl(&join(&l), Some(&head)),
        Err(TraceError::Head { .. })
    ));
}

#[test]
fn events_spliced_in_before_the_seal_break_the_seal() {
    let (text, _) = to_jsonl(&sample());
    let mut l = lines(&text);
    let seal = l.pop().unwrap();
    let last_hash = sha256_hex(l.last().unwrap().as_bytes());
    let extra = chained(
        6,
        &last_hash,
        EventKind::Message {
            role: Role::Assistant,
            content: "late".into(),
        },
    );
    l.push(extra);
    l.push(seal);
    let err = verify_jsonl(&join(&l), None).unwrap_err();
    assert!(matches!(err, TraceError::Chain { line: 8, .. }), "{err}");
}

#[test]
fn an_edited_last_event_is_detected_on_the_file_alone() {
    let (text, _) = to_jsonl(&sample());
    let mut l = lines(&text);
    let n = l.len();
    l[n - 2] = l[n - 2].replace("completed", "limit");
    assert!(matches!(
        verify_jsonl(&join(&l), None),
        Err(TraceError::Chain { .. })
    ));
    // The seal's count edited to match a dropped event.
    let mut l = lines(&text);
    l.remove(n - 2);
    let seal = l.pop().unwrap().replace("\"events\":6", "\"events\":5");
    l.push(seal);
    assert!(verify_jsonl(&join(&l), None).is_err());
}

#[test]
fn a_missing_final_newline_or_a_blank_line_is_a_modification() {
    let (text, _) = to_jsonl(&sample());
    assert!(matches!(
        verify_jsonl(text.trim_end(), None),
        Err(TraceError::Layout { .. })
    ));
    let with_blank = text.replacen('\n', "\n\n", 1);
    assert!(matches!(
        verify_jsonl(&with_blank, None),
        Err(TraceError::Layout { line: 2, .. })
    ));
}

/// A random change to a finished trace.
#[derive(Debug, Clone)]
enum Mutation {
    BitFlip { at: usize, bit: u8 },
    Drop { line: usize },
    Swap { a: usize, b: usize },
    Duplicate { line: usize },
    Truncate { at: usize },
    AppendChained,
    EditContent { line: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::BitFlip { at, bit }),
        any::<usize>().prop_map(|line| Mutation::Drop { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
        any::<usize>().prop_map(|line| Mutation::Duplicate { line }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        Just(Mutation::AppendChained),
        any::<usize>().prop_map(|line| Mutation::EditContent { line }),
    ]
}

/// Applies `m`; `None` when it happens to change nothing (a swap of a line with itself).
fn apply(text: &str, head: &str, m: &Mutation) -> Option<Vec<u8>> {
    let mut l = lines(text);
    let n = l.len();
    match *m {
        Mutation::BitFlip { at, bit } => {
            let mut b = text.as_bytes().to_vec();
            let i = at % b.len();
            b[i] ^= 1 << bit;
            return Some(b);
        }
        Mutation::Drop { line } => {
            l.remove(line % n);
        }
        Mutation::Swap { a, b } => {
            let (a, b) = (a % n, b % n);
            if l[a] == l[b] {
                return None;
            }
            l.swap(a, b);
        }
        Mutation::Duplicate { line } => {
            let i = line % n;
            let dup = l[i].clone();
            l.insert(i, dup);
        }
        Mutation::Truncate { at } => {
            return Some(text.as_bytes()[..at % text.len()].to_vec());
        }
        Mutation::AppendChained => {
            l.push(chained(
                n as u64,
                head,
                EventKind::Message {
                    role: Role::Assistant,
                    content: "appended".into(),
                },
            ));
        }
        Mutation::EditContent { line } => {
            let i = line % n;
            let mut v: serde_json::Value = serde_json::from_str(&l[i]).unwrap();
            v["injected"] = "x".into();
            l[i] = v.to_string();
        }
    }
    Some(join(&l).into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every mutation is detected by the trace alone, and against its head.
    #[test]
    fn every_mutation_is_detected(m in mutation()) {
        let (text, head) = to_jsonl(&sample());
        let Some(bytes) = apply(&text, &head, &m) else { return Ok(()); };
        prop_assume!(bytes != text.as_bytes());
        let Ok(mutated) = String::from_utf8(bytes) else {
            // Not UTF-8: not even readable as a trace.
            return Ok(());
        };
        prop_assert!(verify_jsonl(&mutated, None).is_err(), "undetected alone: {m:?}");
        prop_assert!(verify_jsonl(&mutated, Some(&head)).is_err(), "undetected with head: {m:?}");
    }
}
