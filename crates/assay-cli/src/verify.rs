//! `assay verify`, `assay score`, `assay show` and `assay keygen`: the
//! commands that check a finished run, re-score it, display one episode, and
//! make the key that signs results. The checking itself lives in
//! `assay_run::verify`; this module prints and picks exit codes.

use std::path::{Path, PathBuf};

use assay_report::{EpisodeResult, Status, render_trace};
use assay_run::verify::{
    Finding, Rescored, TraceVerification, apply_rescore, rescore, score_run, verify_run,
    verify_trace_file,
};
use assay_trace::{Event, PublicKey, SecretKey};
use serde_json::Value;

use crate::{color, fail};

/// Makes text safe to print on a terminal: control characters (C0 including
/// ESC, CR and newline, DEL, C1) and bidirectional overrides become visible
/// escapes, so trace content cannot move the cursor, recolour, retitle or
/// reorder what the auditor reads. Tabs stay.
pub(crate) fn escape_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
            }
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                let _ =
                    std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Every string (and object key) of a JSON value escaped for the terminal.
fn escape_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(escape_terminal(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(escape_value).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (escape_terminal(&k), escape_value(v)))
                .collect(),
        ),
        other => other,
    }
}

/// An event with every string escaped for the terminal.
fn escaped_event(e: &Event) -> Event {
    serde_json::to_value(e)
        .ok()
        .and_then(|j| serde_json::from_value(escape_value(j)).ok())
        .unwrap_or_else(|| Event {
            seq: e.seq,
            prev: String::new(),
            kind: assay_trace::EventKind::Log {
                stream: "assay".into(),
                text: "(event not displayable)".into(),
            },
        })
}

/// A verdict with every string escaped for the terminal.
fn escaped_result(e: &EpisodeResult) -> Option<EpisodeResult> {
    serde_json::to_value(e)
        .ok()
        .and_then(|j| serde_json::from_value(escape_value(j)).ok())
}

/// A displayable result built from a re-scoring alone (no results.json).
fn result_from_rescore(r: &Rescored) -> EpisodeResult {
    EpisodeResult {
        episode: r.episode.clone(),
        spec: r.spec.clone(),
        case: r.case_id.clone(),
        case_id: r.case_id.clone(),
        threat: r.threat.clone(),
        technique: None,
        axis: None,
        slots: vec![],
        slot_kinds: vec![],
        delivered: r.delivered.clone(),
        agent: r.agent.clone(),
        role: r.role.unwrap_or_default(),
        epoch: r.epoch,
        seed: r.seed,
        status: r.status,
        error: r.error.clone(),
        limit: r.limit.clone(),
        utility: r.utility,
        utility_weighted: Some(r.utility_weighted),
        attack_success: r.attack_success,
        attack_events: r.attack_events.clone(),
        violations: r.violations.clone(),
        checks: r.checks.clone(),
        unsupported: r.unsupported.clone(),
        judge: vec![],
        usage: None,
        trace: String::new(),
        trace_head: String::new(),
        events: 0,
    }
}

/// Reads a public key file (or bare hex) for `--key`.
pub(crate) fn load_public_key(path: Option<&Path>) -> Result<Option<PublicKey>, u8> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read key {}: {e}", path.display()), 2))?;
    PublicKey::from_text(&text)
        .map(Some)
        .map_err(|e| fail(format!("{}: {e}", path.display()), 2))
}

/// Reads the secret key file `assay run --sign KEY` signs results with.
pub(crate) fn load_signing_key(path: &Path) -> Result<SecretKey, u8> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read key {}: {e}", path.display()), 2))?;
    SecretKey::from_text(&text).map_err(|e| fail(format!("{}: {e}", path.display()), 2))
}

/// Prints findings, identical lines grouped with a count (a store edited in
/// one place can make hundreds of episodes fail the same way).
fn print_findings(findings: &[Finding]) {
    let lines = findings
        .iter()
        .map(|f| format!("FAIL {}", escape_terminal(&f.to_string())));
    for l in assay_report::group_lines(lines) {
        println!("{l}");
    }
}

/// One line per verified run.
fn run_line(what: &str, v: &assay_run::verify::RunVerification, key_given: bool) -> String {
    let verdict = if v.ok() { "ok  " } else { "FAIL" };
    format!(
        "{verdict} {what}: {} episode(s), {} trace(s) verified, {} verdict(s) re-scored and matched; {}; {} finding(s)",
        v.episodes,
        v.traces_verified,
        v.verdicts_matched,
        seal_line(&v.integrity, key_given, &v.findings),
        v.findings.len()
    )
}

fn seal_line(
    integrity: &assay_report::IntegrityStatus,
    key_given: bool,
    findings: &[Finding],
) -> String {
    match (&integrity.digest, &integrity.signed_by) {
        (Some(d), Some(k)) if integrity.key_pinned => {
            format!(
                "results digest {}…, signed by the given key {}…",
                &d[..12],
                &k[..12]
            )
        }
        (Some(d), Some(k)) => format!(
            "results digest {}…, signed by {}… (a key found in the file proves nothing about who signed: pass --key)",
            &d[..12],
            &k[..12]
        ),
        (Some(d), None) => format!(
            "results digest {}…, unsigned (anyone could re-seal an edited run; sign with `assay run --sign KEY`)",
            &d[..12]
        ),
        (None, _) if !findings.is_empty() || key_given => "results seal does not hold".into(),
        (None, _) => "results not sealed".into(),
    }
}

/// `assay verify PATH… [--run NAME]… [--key PUBKEY]`: 0 when everything
/// verifies, 1 on any finding, 2 when an input cannot be read at all. Ends
/// with one line totalling everything checked.
pub(crate) fn cmd_verify(paths: &[PathBuf], runs: &[String], key: Option<&Path>) -> u8 {
    let key = match load_public_key(key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let mut findings_total = 0usize;
    let (mut n_runs, mut n_episodes, mut n_traces) = (0usize, 0usize, 0usize);
    for p in paths {
        if p.is_dir() {
            let v = match verify_run(p, key.as_ref()) {
                Ok(v) => v,
                Err(e) => return fail(e, 2),
            };
            print_findings(&v.findings);
            findings_total += v.findings.len();
            n_runs += 1;
            n_episodes += v.episodes;
            n_traces += v.traces_verified;
            println!("{}", run_line(&p.display().to_string(), &v, key.is_some()));
        } else if crate::runs::is_store_file(p) {
            let store = match assay_store::Store::open_existing(p) {
                Ok(s) => s,
                Err(e) => return fail(e, 2),
            };
            let rows = match (runs.is_empty(), store.runs()) {
                (_, Err(e)) => return fail(e, 2),
                (true, Ok(all)) => all,
                (false, Ok(_)) => {
                    let mut picked = Vec::new();
                    for name in runs {
                        match store.run(name) {
                            Ok(r) => picked.push(r),
                            Err(e) => return fail(e, 2),
                        }
                    }
                    picked
                }
            };
            if rows.is_empty() {
                println!("FAIL {}: the store holds no run", p.display());
                findings_total += 1;
            }
            for row in rows {
                let v = match assay_run::verify::verify_stored(&store, &row, key.as_ref()) {
                    Ok(v) => v,
                    Err(e) => return fail(e, 2),
                };
                print_findings(&v.findings);
                findings_total += v.findings.len();
                n_runs += 1;
                n_episodes += v.episodes;
                n_traces += v.traces_verified;
                println!(
                    "{}",
                    run_line(
                        &format!("{} run `{}`", p.display(), row.name),
                        &v,
                        key.is_some()
                    )
                );
            }
        } else {
            let v = match verify_trace_file(p, key.as_ref()) {
                Ok(v) => v,
                Err(e) => return fail(e, 2),
            };
            print_findings(&v.findings);
            findings_total += v.findings.len();
            n_traces += usize::from(v.findings.is_empty());
            if v.findings.is_empty() {
                println!(
                    "ok   {} ({} events{})",
                    p.display(),
                    v.events.len(),
                    match (&v.recorded, &v.integrity) {
                        (Some(_), Some(i)) => format!(
                            ", head and verdict match results.json; {}",
                            seal_line(i, key.is_some(), &[])
                        ),
                        _ => ", chain and seal hold; no results.json found to bind it".into(),
                    }
                );
            }
        }
    }
    println!(
        "{}: {n_runs} run(s), {n_episodes} episode(s), {n_traces} trace(s) verified, {findings_total} finding(s)",
        if findings_total == 0 {
            "verified"
        } else {
            "NOT VERIFIED"
        }
    );
    if findings_total > 0 { 1 } else { 0 }
}

/// `assay show EPISODE --run NAME [--store FILE]`: a stored episode's trace,
/// verified against its stored verdict first, as [`cmd_show`] shows a file.
pub(crate) fn cmd_show_stored(
    episode: &Path,
    run: &str,
    store: Option<&Path>,
    key: Option<&Path>,
) -> u8 {
    let key = match load_public_key(key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let store = match assay_store::Store::open_existing(
        store.unwrap_or(Path::new(assay_store::DEFAULT_STORE)),
    ) {
        Ok(s) => s,
        Err(e) => return fail(e, 2),
    };
    let row = match store.run(run) {
        Ok(r) => r,
        Err(e) => return fail(e, 2),
    };
    let want = episode.to_string_lossy();
    let mut found: Vec<EpisodeResult> = Vec::new();
    if let Err(e) = store.for_each_episode(&row, |e| {
        if e.episode == want || e.episode.contains(want.as_ref()) {
            found.push(e);
        }
        Ok(())
    }) {
        return fail(e, 2);
    }
    if let Some(exact) = found.iter().position(|e| e.episode == want) {
        found = vec![found.swap_remove(exact)];
    }
    let recorded = match found.len() {
        1 => found.remove(0),
        0 => return fail(format!("no episode matching `{want}` in run `{run}`"), 2),
        n => {
            let names: Vec<&str> = found.iter().take(10).map(|e| e.episode.as_str()).collect();
            return fail(
                format!(
                    "`{want}` matches {n} episodes of run `{run}`; be more specific: {}",
                    names.join(", ")
                ),
                2,
            );
        }
    };
    let text = match store.trace(&row, &recorded.episode) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return fail(
                format!("episode {} has no stored trace", recorded.episode),
                1,
            );
        }
        Err(e) => return fail(e, 2),
    };
    let (mut findings, rescored) = assay_run::verify::check_stored_episode(&recorded, &text);
    // The run's seal must hold (signed by --key when given), as for a file:
    // a trace edited together with its verdict's head shows up here.
    {
        match store.results(&row) {
            Ok(Some(r)) => {
                let raw = serde_json::to_value(&r).expect("results serialise");
                let (_, problems) = assay_report::check_integrity(&raw, key.as_ref());
                findings.extend(problems.into_iter().map(|p| Finding {
                    episode: None,
                    path: None,
                    kind: assay_run::verify::FindingKind::Integrity(p),
                }));
            }
            Ok(None) => findings.push(Finding {
                episode: None,
                path: None,
                kind: assay_run::verify::FindingKind::Integrity(
                    assay_report::IntegrityProblem::Unsealed,
                ),
            }),
            Err(e) => return fail(e, 2),
        }
    }
    let events = assay_trace::parse_jsonl(&text).unwrap_or_default();
    let verdict = match &rescored {
        Some(r) => apply_rescore(&recorded, r),
        None => recorded.clone(),
    };
    if !findings.is_empty() {
        println!(
            "!!! NOT VERIFIED: episode {} of run `{run}` does not verify; do not trust it !!!",
            recorded.episode
        );
        print_findings(&findings);
        println!();
    }
    let events: Vec<Event> = events.iter().map(escaped_event).collect();
    let verdict = escaped_result(&verdict);
    print!("{}", render_trace(&events, verdict.as_ref(), color()));
    if findings.is_empty() { 0 } else { 1 }
}

/// `assay show TRACE [--key PUBKEY]`: the trace with the events its verdict
/// cites, after verifying it; exit 1 (and a loud banner) when it does not verify.
pub(crate) fn cmd_show(trace: &Path, key: Option<&Path>) -> u8 {
    let key = match load_public_key(key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let v: TraceVerification = match verify_trace_file(trace, key.as_ref()) {
        Ok(v) => v,
        Err(e) => return fail(e, 2),
    };
    // Show the verdict the trace supports: the recorded one when it matches,
    // otherwise the re-scored one (and say so).
    let verdict = match (&v.recorded, &v.rescored) {
        (Some(rec), Some(r)) => Some(apply_rescore(rec, r)),
        (None, Some(r)) => Some(result_from_rescore(r)),
        (Some(rec), None) => Some(rec.clone()),
        (None, None) => None,
    };
    let banner = !v.findings.is_empty();
    if banner {
        println!(
            "!!! NOT VERIFIED: {} does not verify; do not trust it !!!",
            trace.display()
        );
        print_findings(&v.findings);
        if v.rescored.is_some() {
            println!("!!! the verdict below is re-scored from the trace, not the one recorded !!!");
        }
        println!();
    }
    let events: Vec<Event> = v.events.iter().map(escaped_event).collect();
    let verdict = verdict.as_ref().and_then(escaped_result);
    print!("{}", render_trace(&events, verdict.as_ref(), color()));
    if let Some(vd) = &verdict
        && vd.status != Status::Ok
    {
        println!(
            "status: {}{}",
            match vd.status {
                Status::Ok => "ok",
                Status::Error => "error",
                Status::Inconclusive => "inconclusive",
            },
            vd.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    if banner {
        eprintln!(
            "error: {} does not verify ({} finding(s)); see above",
            trace.display(),
            v.findings.len()
        );
        1
    } else {
        0
    }
}

/// `assay score TRACE|RUN_DIR [--out FILE]`: re-scores with the current rules
/// from the case each trace embeds, prints what changed, and writes new
/// results with `--out`; the originals are never touched.
pub(crate) fn cmd_score(path: &Path, out: Option<&Path>) -> u8 {
    let doc = if path.is_dir() {
        let (results, changes) = match score_run(path) {
            Ok(x) => x,
            Err(e) => return fail(e, 2),
        };
        for c in &changes {
            for (field, old, new) in &c.changed {
                println!(
                    "changed {}: {field} {} -> {}",
                    c.episode,
                    escape_terminal(old),
                    escape_terminal(new)
                );
            }
        }
        println!(
            "{} episode(s) re-scored, {} changed; passed: {}",
            results.episodes.len(),
            changes.len(),
            results.passed
        );
        serde_json::to_value(&results).expect("results serialise")
    } else {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return fail(format!("cannot read {}: {e}", path.display()), 2),
        };
        let events = match assay_trace::read_verified(&text, None) {
            Ok((events, _)) => events,
            Err(e) => {
                return fail(
                    format!(
                        "{}: {e}; refusing to score a modified trace",
                        path.display()
                    ),
                    1,
                );
            }
        };
        let r = match rescore(&events) {
            Ok(r) => r,
            Err(e) => return fail(format!("{}: {e}", path.display()), 2),
        };
        let e = result_from_rescore(&r);
        let rules: Vec<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
        println!(
            "{}: status {}, utility {:.2}, attack_success {}, violations [{}]",
            escape_terminal(&e.episode),
            serde_json::to_string(&e.status).expect("status serialises"),
            e.utility,
            e.attack_success.map_or("n/a".into(), |b| b.to_string()),
            escape_terminal(&rules.join(", "))
        );
        serde_json::json!({
            "schema_version": "assay-score/v1",
            "trace": path.display().to_string(),
            "episodes": [e],
        })
    };
    if let Some(out) = out {
        let text = serde_json::to_string_pretty(&doc).expect("json serialises") + "\n";
        if let Err(e) = std::fs::write(out, text) {
            return fail(format!("cannot write {}: {e}", out.display()), 2);
        }
        println!("wrote {}", out.display());
    }
    0
}

/// `assay keygen --out FILE`: a new ed25519 key; the secret in FILE (owner
/// read/write only), the public key in FILE.pub. Never overwrites.
pub(crate) fn cmd_keygen(out: &Path) -> u8 {
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    for p in [out, public_path.as_path()] {
        if p.exists() {
            return fail(
                format!("{} exists; refusing to overwrite a key", p.display()),
                2,
            );
        }
    }
    let key = match SecretKey::generate() {
        Ok(k) => k,
        Err(e) => return fail(e, 2),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = opts.open(out).and_then(|mut f| {
        use std::io::Write;
        f.write_all(key.to_text().as_bytes())
    });
    if let Err(e) = written {
        return fail(format!("cannot write {}: {e}", out.display()), 2);
    }
    if let Err(e) = std::fs::write(&public_path, key.public().to_text()) {
        return fail(format!("cannot write {}: {e}", public_path.display()), 2);
    }
    println!(
        "secret key: {} (keep it private; `assay run --sign {}`)\npublic key: {} ({}; `assay verify RUN_DIR --key {}`)",
        out.display(),
        out.display(),
        public_path.display(),
        key.public().to_hex(),
        public_path.display()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_bidi_characters() {
        assert_eq!(escape_terminal("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_terminal("x\ry\nz\tw"), "x\\ry\\nz\tw");
        assert_eq!(escape_terminal("\u{9b}31m"), "\\x9b31m");
        assert_eq!(escape_terminal("\u{7f}"), "\\x7f");
        assert_eq!(escape_terminal("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert_eq!(escape_terminal("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn escaping_reaches_keys_and_nested_values() {
        let v = serde_json::json!({"k\u{1b}": ["\u{7}", {"x": "\u{1b}]0;t\u{7}"}]});
        let text = escape_value(v).to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text}"
        );
    }
}
