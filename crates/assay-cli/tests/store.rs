//! The run store end to end through the binary: a run killed with SIGKILL at
//! random points and resumed until it completes holds every episode exactly
//! once, with the verdicts and traces of an uninterrupted run; `assay diff`
//! reports exactly the episodes a changed rule affects; runs are listed,
//! exported, verified and shown from the store.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

fn assay() -> Command {
    Command::new(assert_cmd::cargo::cargo_bin("assay"))
}

/// The spec the store tests run: every control agent, three epochs, so a
/// run lasts long enough to be killed midway.
const SPEC: &str = "../../examples/support/refund-request.yaml";

fn run_args(store: &Path, name: &str) -> Vec<String> {
    [
        "run",
        SPEC,
        "--seed",
        "11",
        "--epochs",
        "3",
        "--jobs",
        "2",
        "--quiet",
        "--store",
        store.to_str().unwrap(),
        "--name",
        name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn status(c: &mut Command) -> std::process::Output {
    c.stdin(Stdio::null()).output().expect("assay starts")
}

fn export(store: &Path, name: &str, out: &Path) {
    let o = status(
        assay()
            .args(["export", name, "--store"])
            .arg(store)
            .arg("--out")
            .arg(out),
    );
    assert!(
        o.status.success(),
        "export {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_run_killed_at_random_points_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.db");
    let started = Instant::now();
    let o = status(assay().args(run_args(&reference, "ref")));
    let full = started.elapsed();
    assert!(
        o.status.success(),
        "reference run: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Kill points drawn with a fixed seed (printed), spread over the time an
    // uninterrupted run takes, so kills land in case QA, mid-episodes and
    // while sealing.
    let seed = 20_261_202u64;
    eprintln!(
        "kill points from seed {seed}; an uninterrupted run takes {:?}",
        full
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let store = dir.path().join("killed.db");
    let mut kills = 0;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 40, "the run never completed");
        let runs: serde_json::Value = serde_json::from_slice(
            &status(assay().args(["runs", "--json", "--store"]).arg(&store)).stdout,
        )
        .unwrap_or_default();
        let victim = runs
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "victim"));
        // A kill can land after the run sealed its last episode, while the
        // process exits: the run is then complete and there is nothing to
        // resume.
        if victim.is_some_and(|v| v["state"] == "complete") {
            break;
        }
        let exists = victim.is_some();
        let mut args = run_args(&store, "victim");
        if exists {
            args.push("--resume".into());
        }
        let mut child = assay()
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < 5 {
            let at = Duration::from_secs_f64(full.as_secs_f64() * rng.random_range(0.15..0.9));
            std::thread::sleep(at);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL: no handler runs, nothing is flushed
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "resumed run failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        break;
    }
    eprintln!("{kills} kill(s), {attempts} start(s)");
    assert!(
        kills >= 2,
        "fewer than two kills landed before the run ended"
    );

    // Same verdicts, same traces, each episode once: the exports are equal
    // byte for byte (results.json carries the seal over every verdict).
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    export(&reference, "ref", &a);
    export(&store, "victim", &b);
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa, fb, "different episodes");
    for f in &fa {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{} differs after {kills} kill(s)",
            f.display()
        );
    }
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("results.json")).unwrap()).unwrap();
    let eps = results["episodes"].as_array().unwrap();
    let ids: std::collections::BTreeSet<&str> =
        eps.iter().map(|e| e["episode"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), eps.len(), "an episode is stored twice");
    assert_eq!(results["incomplete"], false);

    // The store verifies, and so does its export.
    let o = status(assay().arg("verify").arg(&store));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("verified: 1 run(s)"),
        "{text}"
    );
    assert!(status(assay().arg("verify").arg(&b)).status.success());
}

#[test]
fn names_are_not_reused_and_resume_checks_the_run_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let mut args = run_args(&store, "nightly");
    args[5] = "1".into(); // one epoch
    assert!(status(assay().args(&args)).status.success());
    // The same name again without --resume is refused, naming the fix.
    let o = status(assay().args(&args));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    // Resuming with another seed is another run: refused, saying what differs.
    let mut other = args.clone();
    other[3] = "12".into();
    other.push("--resume".into());
    let o = status(assay().args(&other));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("seed 11 vs 12"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A complete run has nothing to resume: refused (its seal and signature stay).
    args.push("--resume".into());
    let o = status(assay().args(&args));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is complete"));
    // Listed, with its state.
    let o = status(assay().args(["runs", "--store"]).arg(&store));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("nightly") && text.contains("complete"),
        "{text}"
    );
    // A missing store is an error, never an empty list.
    let o = status(
        assay()
            .args(["runs", "--store"])
            .arg(dir.path().join("nope.db")),
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn diff_reports_exactly_the_episodes_a_changed_rule_affects() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(SPEC).unwrap();
    let before = dir.path().join("before.yaml");
    std::fs::write(&before, &spec).unwrap();
    // Drop the `secret-read` rule: only episodes where it fired can change.
    let rule = "  - id: secret-read\n    description: Secret files are never needed to answer customers.\n    when: { read: { sensitivity: secret } }\n";
    assert!(
        spec.contains(rule),
        "the example spec changed; update this test"
    );
    let after_dir = dir.path().join("after");
    std::fs::create_dir(&after_dir).unwrap();
    let after = after_dir.join("before.yaml");
    std::fs::write(&after, spec.replace(rule, "")).unwrap();
    let store = dir.path().join("s.db");
    for (path, name) in [(&before, "a"), (&after, "b")] {
        let o = status(
            assay()
                .args(["run", "--seed", "3", "--quiet", "--store"])
                .arg(&store)
                .args(["--name", name])
                .arg(path),
        );
        assert!(
            o.status.code() == Some(0) || o.status.code() == Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let exp = dir.path().join("a-out");
    export(&store, "a", &exp);
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).unwrap()).unwrap();
    let mut expected: Vec<String> = a["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["violations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["rule"] == "secret-read")
        })
        .map(|e| format!("{}|{}|{}", e["case"], e["agent"], e["epoch"]))
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty(),
        "the rule never fired; the test proves nothing"
    );

    let o = status(
        assay()
            .args(["diff", "a", "b", "--json", "--store"])
            .arg(&store),
    );
    assert_eq!(o.status.code(), Some(0), "removing a rule is no regression");
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut improved: Vec<String> = d["improvements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let k = &c["key"];
            format!("{}|{}|{}", k["case"], k["agent"], k["epoch"])
        })
        .collect();
    improved.sort();
    assert_eq!(improved, expected);
    assert_eq!(d["regressions"].as_array().unwrap().len(), 0);

    // The other way round every one of them is a regression, and CI fails.
    let o = status(assay().args(["diff", "b", "a", "--store"]).arg(&store));
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("secret-read"), "{text}");
}

#[test]
fn a_damaged_stored_trace_is_a_finding_and_the_rest_is_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let mut args = run_args(&store, "r");
    args[5] = "1".into(); // one epoch
    assert!(status(assay().args(&args)).status.success());
    // Cut one stored trace short, as a bad disk or a hand edit would.
    let db = rusqlite::Connection::open(&store).unwrap();
    let cut = db
        .execute(
            "UPDATE episodes SET trace = substr(trace, 1, 40) WHERE rowid = (SELECT min(rowid) FROM episodes)",
            [],
        )
        .unwrap();
    assert_eq!(cut, 1);
    drop(db);
    let o = status(assay().arg("verify").arg(&store));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("damaged"), "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("NOT VERIFIED: 1 run(s)"), "{last}");
    // Every other trace was still verified.
    let n: usize = last
        .split(", ")
        .nth(2)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let episodes: usize = last
        .split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n + 1, episodes, "{last}");
}
