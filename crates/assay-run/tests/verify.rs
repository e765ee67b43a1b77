//! Bound verdicts: `verify_run` catches every forgery of a finished run — edited,
//! dropped, reordered or appended events, truncation, bit flips, re-chained
//! traces with results.json edited to match, edited verdicts, deleted episodes,
//! a forged `passed` — and, when the run was signed, re-sealed forgeries too.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use assay_agent::{Agent, agent_from_name};
use assay_report::{IntegrityProblem, RunResults};
use assay_run::verify::{FindingKind, RunVerification, score_run, verify_run, verify_trace_file};
use assay_run::{RunConfig, run, write_results};
use assay_trace::{EventKind, PublicKey, SecretKey, TraceError, parse_jsonl, to_jsonl};
use proptest::prelude::*;
use serde_json::Value;

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel)
}

fn agents(names: &[&str]) -> Vec<Arc<dyn Agent>> {
    names.iter().map(|n| agent_from_name(n).unwrap()).collect()
}

/// A small run of `agents` over one spec (one technique), sealed (signed with
/// `key`) and written to `out`, as `assay run` does.
fn make_run(
    spec: &Path,
    agents: &[Arc<dyn Agent>],
    out: &Path,
    key: Option<&SecretKey>,
) -> RunResults {
    let loaded = assay_spec::load_file(spec).unwrap();
    let catalog = assay_synth::Catalog::embedded().unwrap();
    let opts = assay_synth::SynthOptions {
        techniques: Some(vec!["plain-instruction".into()]),
        per_threat: None,
        seed: 0,
        ..Default::default()
    };
    let cases: Vec<_> = assay_synth::synthesize(&loaded, &catalog, &opts)
        .unwrap()
        .into_iter()
        .map(|c| (c.case, loaded.path.clone()))
        .collect();
    let cases = assay_run::prepare(cases).unwrap();
    let cfg = RunConfig {
        seed: 0,
        epochs: 1,
        jobs: 2,
        out: Some(out.to_path_buf()),
        judge: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut r = rt.block_on(run(&cases, agents, &cfg, vec![])).unwrap();
    r.seal(key);
    write_results(out, &r).unwrap();
    r
}

fn controls() -> Vec<Arc<dyn Agent>> {
    agents(&["control:solve", "control:naive", "control:refuse"])
}

/// The key the signed reference run is signed with.
fn owner_key() -> SecretKey {
    SecretKey::from_bytes(&[42; 32])
}

/// Reference runs made once: unsigned and signed.
fn reference(signed: bool) -> &'static Path {
    static UNSIGNED: OnceLock<tempfile::TempDir> = OnceLock::new();
    static SIGNED: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cell = if signed { &SIGNED } else { &UNSIGNED };
    cell.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let key = owner_key();
        make_run(
            &example("support/refund-request.yaml"),
            &controls(),
            d.path(),
            signed.then_some(&key),
        );
        d
    })
    .path()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A fresh copy of a reference run to tamper with.
fn copy_of(signed: bool) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(reference(signed), d.path());
    d
}

fn results(dir: &Path) -> RunResults {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

fn raw_results(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

fn write_raw(dir: &Path, v: &Value) {
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(v).unwrap() + "\n",
    )
    .unwrap();
}

/// Re-seals results.json after an edit, as a forger without the key would.
fn reseal(dir: &Path, key: Option<&SecretKey>) {
    let mut r = results(dir);
    r.seal(key);
    write_results(dir, &r).unwrap();
}

/// Index of the first episode of `agent` with a violation.
fn violating(r: &RunResults) -> usize {
    r.episodes
        .iter()
        .position(|e| e.agent == "control:naive" && !e.violations.is_empty())
        .expect("the naive agent violates a rule")
}

/// Rewrites one episode's trace with `edit` applied to its events, re-chained
/// and re-sealed, and records the new head and count in results.json (without
/// re-sealing results). Returns the new head.
fn rechain(dir: &Path, ep: usize, edit: impl FnOnce(&mut Vec<EventKind>)) -> String {
    let mut v = raw_results(dir);
    let trace = v["episodes"][ep]["trace"].as_str().unwrap().to_string();
    let path = dir.join(&trace);
    let mut kinds: Vec<EventKind> = parse_jsonl(&std::fs::read_to_string(&path).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    edit(&mut kinds);
    let (text, head) = to_jsonl(&kinds);
    std::fs::write(&path, text).unwrap();
    v["episodes"][ep]["trace_head"] = head.clone().into();
    v["episodes"][ep]["events"] = kinds.len().into();
    write_raw(dir, &v);
    head
}

fn kinds_of(v: &RunVerification) -> Vec<&FindingKind> {
    v.findings.iter().map(|f| &f.kind).collect()
}

fn has(v: &RunVerification, pred: impl Fn(&FindingKind) -> bool) -> bool {
    v.findings.iter().any(|f| pred(&f.kind))
}

fn digest_mismatch(k: &FindingKind) -> bool {
    matches!(
        k,
        FindingKind::Integrity(IntegrityProblem::DigestMismatch { .. })
    )
}

fn differs(field: &'static str) -> impl Fn(&FindingKind) -> bool {
    move |k| matches!(k, FindingKind::VerdictDiffers { field: f, .. } if *f == field)
}

#[test]
fn a_finished_run_verifies_and_its_verdicts_rescore_identically() {
    for signed in [false, true] {
        let dir = reference(signed);
        let v = verify_run(dir, None).unwrap();
        assert!(v.ok(), "{:#?}", v.findings);
        assert!(v.episodes >= 6, "{}", v.episodes);
        assert_eq!(v.traces_verified, v.episodes);
        assert_eq!(v.verdicts_matched, v.episodes);
        assert!(v.integrity.digest.is_some());
        assert_eq!(v.integrity.signed_by.is_some(), signed);
    }
    let key = owner_key().public();
    let v = verify_run(reference(true), Some(&key)).unwrap();
    assert!(v.ok() && v.integrity.key_pinned, "{:#?}", v.findings);
    // An unsigned run does not satisfy a required key.
    let v = verify_run(reference(false), Some(&key)).unwrap();
    assert!(has(&v, |k| matches!(
        k,
        FindingKind::Integrity(IntegrityProblem::SignatureMissing(_))
    )));
}

#[test]
fn clearing_violations_is_detected() {
    let d = copy_of(false);
    let ep = violating(&results(d.path()));
    let mut v = raw_results(d.path());
    v["episodes"][ep]["violations"] = Value::Array(vec![]);
    write_raw(d.path(), &v);
    let found = verify_run(d.path(), None).unwrap();
    assert!(has(&found, digest_mismatch), "{:#?}", found.findings);
    // Re-sealed without a key: the re-scored trace still has the violation.
    reseal(d.path(), None);
    let found = verify_run(d.path(), None).unwrap();
    assert!(!has(&found, digest_mismatch));
    assert!(has(&found, differs("violations")), "{:#?}", found.findings);
}

#[test]
fn flipping_attack_success_is_detected() {
    let d = copy_of(false);
    let r = results(d.path());
    let ep = r
        .episodes
        .iter()
        .position(|e| e.attack_success == Some(true))
        .expect("an attack succeeded");
    let mut v = raw_results(d.path());
    v["episodes"][ep]["attack_success"] = false.into();
    v["episodes"][ep]["attack_events"] = Value::Array(vec![]);
    write_raw(d.path(), &v);
    assert!(has(&verify_run(d.path(), None).unwrap(), digest_mismatch));
    reseal(d.path(), None);
    let found = verify_run(d.path(), None).unwrap();
    assert!(
        has(&found, differs("attack_success")),
        "{:#?}",
        found.findings
    );
}

#[test]
fn deleting_an_episode_is_detected() {
    let d = copy_of(false);
    let ep = violating(&results(d.path()));
    let mut v = raw_results(d.path());
    let removed = v["episodes"].as_array_mut().unwrap().remove(ep);
    write_raw(d.path(), &v);
    let found = verify_run(d.path(), None).unwrap();
    assert!(has(&found, digest_mismatch));
    assert!(has(&found, |k| matches!(k, FindingKind::UntrackedTrace)));
    // Re-sealed, and its trace deleted too: the case × agent matrix has a hole.
    reseal(d.path(), None);
    std::fs::remove_dir_all(d.path().join(removed["episode"].as_str().unwrap())).unwrap();
    let found = verify_run(d.path(), None).unwrap();
    assert!(
        has(
            &found,
            |k| matches!(k, FindingKind::MissingEpisode { agent, .. } if agent == "control:naive")
        ),
        "{:#?}",
        found.findings
    );
}

#[test]
fn a_missing_trace_is_detected() {
    let d = copy_of(false);
    let r = results(d.path());
    std::fs::remove_file(d.path().join(&r.episodes[0].trace)).unwrap();
    let found = verify_run(d.path(), None).unwrap();
    assert!(has(&found, |k| matches!(k, FindingKind::TraceMissing(_))));
}

#[test]
fn setting_passed_true_is_detected() {
    // A run that fails: the spec's forbidden rule fires on the reference solution.
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(example("support/refund-request.yaml"))
        .unwrap()
        .replace(
            "when: { read: { sensitivity: secret } }",
            "when: { read: { source: web } }",
        );
    let spec_path = dir.path().join("s.yaml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.path().join("run");
    let r = make_run(&spec_path, &agents(&["control:solve"]), &out, None);
    assert!(!r.passed);
    assert!(verify_run(&out, None).unwrap().ok());
    let mut v = raw_results(&out);
    v["passed"] = true.into();
    write_raw(&out, &v);
    assert!(has(&verify_run(&out, None).unwrap(), digest_mismatch));
    reseal(&out, None);
    let found = verify_run(&out, None).unwrap();
    assert!(
        has(&found, |k| matches!(
            k,
            FindingKind::PassedUnsupported { .. }
        )),
        "{:#?}",
        found.findings
    );
}

#[test]
fn editing_the_last_event_is_detected() {
    let d = copy_of(false);
    let r = results(d.path());
    let path = d.path().join(&r.episodes[0].trace);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len();
    assert!(lines[n - 2].contains("\"episode_end\""));
    lines[n - 2] = lines[n - 2].replacen("\"completed\"", "\"limit\"", 1);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let found = verify_run(d.path(), None).unwrap();
    assert!(
        has(&found, |k| matches!(
            k,
            FindingKind::Trace(TraceError::Chain { .. })
        )),
        "{:#?}",
        found.findings
    );
    // On the file alone, too.
    assert!(!verify_trace_file(&path, None).unwrap().findings.is_empty());
}

#[test]
fn truncation_and_appended_events_are_detected() {
    let d = copy_of(false);
    let r = results(d.path());
    let path = d.path().join(&r.episodes[0].trace);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Cut at an event boundary (the seal dropped).
    std::fs::write(&path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    assert!(has(&verify_run(d.path(), None).unwrap(), |k| matches!(
        k,
        FindingKind::Trace(TraceError::Head { .. })
    )));
    // Alone (results.json moved away): unsealed.
    let alone = tempfile::tempdir().unwrap();
    std::fs::create_dir(alone.path().join("ep")).unwrap();
    let lone = alone.path().join("ep/trace.jsonl");
    std::fs::copy(&path, &lone).unwrap();
    assert!(matches!(
        verify_trace_file(&lone, None).unwrap().findings[0].kind,
        FindingKind::Trace(TraceError::Unsealed { .. })
    ));
    // A correctly chained event appended after the seal.
    let head = &r.episodes[0].trace_head;
    let extra = serde_json::to_string(&assay_trace::Event {
        seq: lines.len() as u64,
        prev: head.clone(),
        kind: EventKind::Message {
            role: assay_trace::Role::Assistant,
            content: "appended".into(),
        },
    })
    .unwrap();
    std::fs::write(&path, format!("{text}{extra}\n")).unwrap();
    assert!(has(&verify_run(d.path(), None).unwrap(), |k| matches!(
        k,
        FindingKind::Trace(TraceError::Head { .. })
    )));
    std::fs::write(&lone, format!("{text}{extra}\n")).unwrap();
    assert!(matches!(
        verify_trace_file(&lone, None).unwrap().findings[0].kind,
        FindingKind::Trace(TraceError::AfterSeal { .. })
    ));
}

#[test]
fn a_rechained_trace_with_results_edited_to_match_is_detected() {
    let d = copy_of(false);
    let r = results(d.path());
    let ep = violating(&r);
    let cited = r.episodes[ep].violations[0].events[0] as usize;
    // Drop the offending event, re-chain, record the new head and count.
    rechain(d.path(), ep, |k| {
        k.remove(cited);
    });
    let found = verify_run(d.path(), None).unwrap();
    assert!(has(&found, digest_mismatch), "{:#?}", found.findings);
    // Re-sealed without a key as well: the verdict no longer follows from the trace.
    reseal(d.path(), None);
    let found = verify_run(d.path(), None).unwrap();
    assert!(!found.ok());
    assert!(
        has(&found, differs("violations")),
        "{:#?}",
        kinds_of(&found)
    );
}

#[test]
fn a_consistent_forgery_needs_the_key() {
    // Drop the offending event, re-score, rewrite the verdict and re-seal: a
    // forgery consistent in every respect. Only the signature catches it.
    let d = copy_of(true);
    let r = results(d.path());
    let ep = violating(&r);
    let cited = r.episodes[ep].violations[0].events[0] as usize;
    rechain(d.path(), ep, |k| {
        k.remove(cited);
    });
    let (rescored, _) = score_run(d.path()).unwrap();
    let mut forged = rescored;
    let mallory = SecretKey::from_bytes(&[6; 32]);
    forged.seal(Some(&mallory));
    write_results(d.path(), &forged).unwrap();
    let owner = owner_key().public();
    let found = verify_run(d.path(), Some(&owner)).unwrap();
    assert!(
        has(&found, |k| matches!(
            k,
            FindingKind::Integrity(IntegrityProblem::KeyMismatch { .. })
        )),
        "{:#?}",
        found.findings
    );
    // Without a pinned key it is self-consistent: that is what a signature is for.
    assert!(verify_run(d.path(), None).unwrap().ok());
    // Re-sealed unsigned: the required signature is missing.
    forged.seal(None);
    write_results(d.path(), &forged).unwrap();
    assert!(has(
        &verify_run(d.path(), Some(&owner)).unwrap(),
        |k| matches!(
            k,
            FindingKind::Integrity(IntegrityProblem::SignatureMissing(_))
        )
    ));
}

#[test]
fn score_rescores_without_touching_the_run() {
    let d = copy_of(false);
    let before = std::fs::read(d.path().join("results.json")).unwrap();
    let (scored, changes) = score_run(d.path()).unwrap();
    assert!(changes.is_empty(), "{changes:?}");
    let original = results(d.path());
    assert_eq!(scored.episodes, original.episodes);
    assert_eq!(scored.passed, original.passed);
    assert!(scored.integrity.is_none());
    assert_eq!(
        std::fs::read(d.path().join("results.json")).unwrap(),
        before
    );
}

/// A random forgery of a finished run.
#[derive(Debug, Clone)]
enum Forgery {
    TraceBitFlip {
        ep: usize,
        at: usize,
        bit: u8,
    },
    ResultsBitFlip {
        at: usize,
        bit: u8,
    },
    EditEvent {
        ep: usize,
        line: usize,
    },
    DropEvent {
        ep: usize,
        line: usize,
    },
    SwapEvents {
        ep: usize,
        a: usize,
        b: usize,
    },
    AppendEvent {
        ep: usize,
    },
    Truncate {
        ep: usize,
        at: usize,
    },
    RechainWithResults {
        ep: usize,
        line: usize,
    },
    EditVerdict {
        ep: usize,
        what: u8,
        reseal: bool,
    },
    DeleteEpisode {
        ep: usize,
        reseal: bool,
    },
    /// Consistent in every respect, re-sealed without the owner's key.
    RechainResealed {
        ep: usize,
        line: usize,
        resign: bool,
    },
}

fn forgery() -> impl Strategy<Value = Forgery> {
    let n = any::<usize>();
    prop_oneof![
        (n, n, 0u8..8).prop_map(|(ep, at, bit)| Forgery::TraceBitFlip { ep, at, bit }),
        (n, 0u8..8).prop_map(|(at, bit)| Forgery::ResultsBitFlip { at, bit }),
        (n, n).prop_map(|(ep, line)| Forgery::EditEvent { ep, line }),
        (n, n).prop_map(|(ep, line)| Forgery::DropEvent { ep, line }),
        (n, n, n).prop_map(|(ep, a, b)| Forgery::SwapEvents { ep, a, b }),
        n.prop_map(|ep| Forgery::AppendEvent { ep }),
        (n, n).prop_map(|(ep, at)| Forgery::Truncate { ep, at }),
        (n, n).prop_map(|(ep, line)| Forgery::RechainWithResults { ep, line }),
        (n, 0u8..5, any::<bool>()).prop_map(|(ep, what, reseal)| Forgery::EditVerdict {
            ep,
            what,
            reseal
        }),
        (n, any::<bool>()).prop_map(|(ep, reseal)| Forgery::DeleteEpisode { ep, reseal }),
        (n, n, any::<bool>()).prop_map(|(ep, line, resign)| Forgery::RechainResealed {
            ep,
            line,
            resign
        }),
    ]
}

/// Applies a forgery; false when it would change nothing.
fn forge(dir: &Path, f: &Forgery) -> bool {
    let r = results(dir);
    let n = r.episodes.len();
    let trace_of = |ep: usize| dir.join(&r.episodes[ep % n].trace);
    let lines_of = |ep: usize| -> Vec<String> {
        std::fs::read_to_string(trace_of(ep))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let write_lines = |ep: usize, l: &[String]| {
        std::fs::write(trace_of(ep), l.join("\n") + "\n").unwrap();
    };
    match *f {
        Forgery::TraceBitFlip { ep, at, bit } => {
            let mut b = std::fs::read(trace_of(ep)).unwrap();
            let i = at % b.len();
            b[i] ^= 1 << bit;
            std::fs::write(trace_of(ep), b).unwrap();
        }
        Forgery::ResultsBitFlip { at, bit } => {
            let path = dir.join("results.json");
            let before = std::fs::read(&path).unwrap();
            let mut b = before.clone();
            let i = at % b.len();
            b[i] ^= 1 << bit;
            // A flip that leaves the same JSON value (an escape's letter case)
            // changes nothing a reader sees.
            let same = serde_json::from_slice::<Value>(&b).ok()
                == serde_json::from_slice::<Value>(&before).ok();
            if same {
                return false;
            }
            std::fs::write(&path, b).unwrap();
        }
        Forgery::EditEvent { ep, line } => {
            let mut l = lines_of(ep);
            let i = line % l.len();
            let mut v: Value = serde_json::from_str(&l[i]).unwrap();
            v["forged"] = true.into();
            l[i] = v.to_string();
            write_lines(ep, &l);
        }
        Forgery::DropEvent { ep, line } => {
            let mut l = lines_of(ep);
            let i = line % l.len();
            l.remove(i);
            write_lines(ep, &l);
        }
        Forgery::SwapEvents { ep, a, b } => {
            let mut l = lines_of(ep);
            let (a, b) = (a % l.len(), b % l.len());
            if l[a] == l[b] {
                return false;
            }
            l.swap(a, b);
            write_lines(ep, &l);
        }
        Forgery::AppendEvent { ep } => {
            let mut l = lines_of(ep);
            l.push(
                serde_json::to_string(&assay_trace::Event {
                    seq: l.len() as u64,
                    prev: r.episodes[ep % n].trace_head.clone(),
                    kind: EventKind::Message {
                        role: assay_trace::Role::Assistant,
                        content: "appended".into(),
                    },
                })
                .unwrap(),
            );
            write_lines(ep, &l);
        }
        Forgery::Truncate { ep, at } => {
            let b = std::fs::read(trace_of(ep)).unwrap();
            std::fs::write(trace_of(ep), &b[..at % b.len()]).unwrap();
        }
        Forgery::RechainWithResults { ep, line } => {
            rechain(dir, ep % n, |k| {
                let i = 1 + line % (k.len() - 1);
                k.remove(i);
            });
        }
        Forgery::EditVerdict {
            ep,
            what,
            reseal: re,
        } => {
            let mut v = raw_results(dir);
            let e = &mut v["episodes"][ep % n];
            let before = e.clone();
            match what {
                0 => e["violations"] = Value::Array(vec![]),
                1 => {
                    e["attack_success"] = match e["attack_success"].as_bool() {
                        Some(b) => (!b).into(),
                        None => true.into(),
                    }
                }
                2 => {
                    let u = e["utility"].as_f64().unwrap();
                    e["utility"] = (1.0 - u + 0.25).into();
                }
                3 => e["checks"] = Value::Array(vec![]),
                _ => e["status"] = "error".into(),
            }
            if *e == before {
                return false;
            }
            write_raw(dir, &v);
            if re {
                reseal(dir, None);
            }
        }
        Forgery::DeleteEpisode { ep, reseal: re } => {
            let mut v = raw_results(dir);
            v["episodes"].as_array_mut().unwrap().remove(ep % n);
            write_raw(dir, &v);
            if re {
                reseal(dir, None);
            }
        }
        Forgery::RechainResealed { ep, line, resign } => {
            rechain(dir, ep % n, |k| {
                let i = 1 + line % (k.len() - 1);
                k.remove(i);
            });
            let (mut forged, _) = score_run(dir).unwrap();
            let mallory = SecretKey::from_bytes(&[6; 32]);
            forged.seal(resign.then_some(&mallory));
            write_results(dir, &forged).unwrap();
        }
    }
    true
}

fn detected(dir: &Path, key: Option<&PublicKey>) -> bool {
    match verify_run(dir, key) {
        Ok(v) => !v.ok(),
        // results.json no longer readable as results: fails closed.
        Err(_) => true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Property (b): every forgery of an unsigned run except a fully consistent
    /// re-sealed one is detected; on a signed run verified with the owner's
    /// key, every forgery is.
    #[test]
    fn every_forgery_is_detected(f in forgery(), signed in any::<bool>()) {
        let d = copy_of(signed);
        prop_assume!(forge(d.path(), &f));
        if signed {
            let key = owner_key().public();
            prop_assert!(detected(d.path(), Some(&key)), "undetected on a signed run: {f:?}");
        }
        if !matches!(f, Forgery::RechainResealed { .. }) {
            prop_assert!(detected(d.path(), None), "undetected: {f:?}");
        }
    }
}
