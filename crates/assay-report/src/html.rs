//! The self-contained HTML report: one file an auditor can open offline, with
//! the summary, breakdown charts with confidence intervals, the failing
//! episodes and their cited events, and an optional diff against a base run.
//!
//! Agents' outputs are attacker-controlled text, so nothing from the run is
//! ever written into the page as markup: the static parts are escaped here,
//! the data travels as JSON in a `<script type="application/json">` block with
//! every `<`, `>` and `&` escaped, and the page's script sets it as text only.
//! A Content-Security-Policy allows no network at all and only the page's own
//! script (pinned by its SHA-256), so even a missed escape could not run code
//! or load anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use assay_trace::Event;
use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::diff::{EpisodeKey, Verdict, VerdictChange, diff_runs};
use crate::metrics::{BreakdownRow, SummaryRow};
use crate::results::{EpisodeResult, Role, RunResults, Status, UsageTotals};
use crate::stats::wilson;

/// Failing episodes whose traces are embedded at most: traces dominate the
/// page's size, and a report of thousands of traces would not open.
pub const HTML_TRACE_CAP: usize = 200;

/// Longest text (in characters) kept from one field of an embedded event; a
/// tool output can be a whole file, and the page has to stay small.
pub const HTML_TEXT_CAP: usize = 4000;

const STYLE: &str = include_str!("html/report.css");
const SCRIPT: &str = include_str!("html/report.js");

/// True when an episode's verdict is a failure: it errored or was
/// inconclusive (never a pass), a forbidden rule fired, or the attack succeeded.
pub fn is_failing(e: &EpisodeResult) -> bool {
    e.status != Status::Ok || !e.violations.is_empty() || e.attack_success == Some(true)
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Inconclusive => "inconclusive",
    }
}

/// A verdict in one line.
fn verdict_words(e: &Verdict) -> String {
    let mut s = format!("{} · utility {:.2}", status_word(e.status), e.utility);
    let rules: BTreeSet<&str> = e.violations.iter().map(|v| v.rule.as_str()).collect();
    if !rules.is_empty() {
        let rules: Vec<&str> = rules.into_iter().collect();
        let _ = write!(s, " · violations: {}", rules.join(", "));
    }
    match e.attack_success {
        Some(true) => s.push_str(" · attack succeeded"),
        Some(false) => s.push_str(" · attack failed"),
        None => {}
    }
    s
}

/// One moved verdict as the page lists it.
fn change_value(c: &VerdictChange) -> Value {
    json!({
        "spec": c.key.spec,
        "case": c.key.case,
        "agent": c.key.agent,
        "epoch": c.key.epoch,
        "before": verdict_words(&c.base),
        "after": verdict_words(&c.head),
        "why": c.worse.iter().chain(&c.better).cloned().collect::<Vec<_>>(),
        "episode": c.head.episode,
    })
}

fn key_value(k: &EpisodeKey, episode: Option<&str>) -> Value {
    json!({
        "spec": k.spec, "case": k.case, "agent": k.agent, "epoch": k.epoch,
        "before": null, "after": null, "why": [], "episode": episode,
    })
}

/// The diff against `base` ([`diff_runs`]), shaped for the page.
fn diff_value(run: &RunResults, base: &RunResults) -> Value {
    let d = diff_runs(base, run);
    let episode_of = |k: &EpisodeKey| {
        run.episodes
            .iter()
            .find(|e| {
                e.spec == k.spec && e.case == k.case && e.agent == k.agent && e.epoch == k.epoch
            })
            .map(|e| e.episode.as_str())
    };
    json!({
        "base": {
            "seed": base.seed,
            "episodes": d.base_episodes,
            "digest": base.integrity.as_ref().map(|i| i.digest.clone()),
            "matched": d.matched,
            "unchanged": d.unchanged,
        },
        "lists": {
            "regressions": d.regressions.iter().map(change_value).collect::<Vec<_>>(),
            "improvements": d.improvements.iter().map(change_value).collect::<Vec<_>>(),
            "only_in_run": d.only_in_head.iter().map(|k| key_value(k, episode_of(k))).collect::<Vec<_>>(),
            "only_in_base": d.only_in_base.iter().map(|k| key_value(k, None)).collect::<Vec<_>>(),
        },
    })
}

/// Escapes text for HTML element content and quoted attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element: no `<` (so no `</script>`
/// or `<!--`), `>` or `&` survives as such; JSON.parse reads them back.
fn script_json(v: &Value) -> String {
    let text = serde_json::to_string(v).expect("JSON values always serialise");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// CSP source for an inline element's exact text.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// A utility, with its weighted form when check weights make them differ.
fn utility_cell(u: Option<f64>, w: Option<f64>) -> String {
    match (u, w) {
        (Some(a), Some(b)) if (a - b).abs() > 1e-9 => format!("{} (weighted {})", pct(u), pct(w)),
        _ => pct(u),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// Successes behind a rate over `n` trials (the rate is a mean of 0/1 values).
fn successes(rate: f64, n: usize) -> usize {
    ((rate * n as f64).round() as usize).min(n)
}

fn interval_row(key: &str, agent: &str, k: usize, n: usize) -> Value {
    let (lo, hi) = wilson(k, n);
    json!({
        "key": key,
        "agent": agent,
        "k": k,
        "n": n,
        "rate": k as f64 / n as f64,
        "lo": lo,
        "hi": hi,
    })
}

fn chart_rows(rows: &[BreakdownRow]) -> Vec<Value> {
    rows.iter()
        .filter(|r| r.attacked > 0)
        .filter_map(|r| {
            let rate = r.attack_success_rate?;
            Some(interval_row(
                &r.key,
                &r.agent,
                successes(rate, r.attacked),
                r.attacked,
            ))
        })
        .collect()
}

/// Attack success per threat id and agent, for results written before the
/// threat breakdown existed: the run has no severity, so the threat is the
/// category an attack belongs to.
fn category_rows(run: &RunResults) -> Vec<Value> {
    let mut g: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for e in &run.episodes {
        if e.status != Status::Ok {
            continue;
        }
        let Some(t) = &e.threat else { continue };
        let c = g.entry((t.as_str(), e.agent.as_str())).or_default();
        c.1 += 1;
        if e.attack_success == Some(true) {
            c.0 += 1;
        }
    }
    g.into_iter()
        .map(|((t, a), (k, n))| interval_row(t, a, k, n))
        .collect()
}

/// Cuts long strings of an embedded event, and drops the parts no reader of
/// the viewer needs (the final world state, the whole case document).
fn trim_value(v: &mut Value, cut: &mut bool) {
    match v {
        Value::String(s) => {
            let n = s.chars().count();
            if n > HTML_TEXT_CAP {
                let kept: String = s.chars().take(HTML_TEXT_CAP).collect();
                *s = format!("{kept}… [{} more characters cut]", n - HTML_TEXT_CAP);
                *cut = true;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| trim_value(x, cut)),
        Value::Object(o) => o.values_mut().for_each(|x| trim_value(x, cut)),
        _ => {}
    }
}

fn embed_events(events: &[Event]) -> (Value, bool) {
    let mut cut = false;
    let out = events
        .iter()
        .map(|ev| {
            let mut v = serde_json::to_value(ev).expect("events always serialise");
            if let Value::Object(o) = &mut v {
                o.remove("prev");
                if o.get("type").and_then(Value::as_str) == Some("episode_end") {
                    o.remove("state");
                }
                o.remove("case_doc");
            }
            trim_value(&mut v, &mut cut);
            v
        })
        .collect();
    (Value::Array(out), cut)
}

fn outcomes(e: &EpisodeResult) -> Vec<&'static str> {
    let mut o = Vec::new();
    match e.status {
        Status::Error => o.push("error"),
        Status::Inconclusive => o.push("inconclusive"),
        Status::Ok => {}
    }
    if e.attack_success == Some(true) {
        o.push("attack_success");
    }
    if !e.violations.is_empty() {
        o.push("violation");
    }
    o
}

fn episode_value(e: &EpisodeResult, trace: Option<usize>, note: Option<&str>) -> Value {
    json!({
        "episode": e.episode,
        "spec": e.spec,
        "case": e.case,
        "agent": e.agent,
        "role": if e.role == Role::Control { "control" } else { "subject" },
        "epoch": e.epoch,
        "threat": e.threat,
        "technique": e.technique,
        "axis": e.axis,
        "slot_kinds": e.slot_kinds,
        "status": status_word(e.status),
        "outcomes": outcomes(e),
        "utility": e.utility,
        "utility_weighted": e.utility_weighted,
        "attack_success": e.attack_success,
        "attack_events": e.attack_events,
        "unsupported": e.unsupported,
        "violations": e.violations.iter().map(|v| json!({
            "rule": v.rule,
            "severity": v.severity.name(),
            "events": v.events,
            "explanation": v.explanation,
        })).collect::<Vec<_>>(),
        "error": e.error,
        "limit": e.limit,
        "trace": trace,
        "trace_note": note,
    })
}

fn payload(
    run: &RunResults,
    traces: &dyn Fn(&EpisodeResult) -> Option<Vec<Event>>,
    base: Option<&RunResults>,
) -> Value {
    let failing: Vec<&EpisodeResult> = run.episodes.iter().filter(|e| is_failing(e)).collect();
    let mut embedded = Vec::new();
    let mut episodes = Vec::new();
    let mut missing = 0usize;
    let mut cut_any = false;
    for (i, e) in failing.iter().enumerate() {
        if i >= HTML_TRACE_CAP {
            episodes.push(episode_value(
                e,
                None,
                Some("trace not embedded: over the page's cap on embedded traces"),
            ));
            continue;
        }
        match traces(e) {
            Some(events) => {
                let (v, cut) = embed_events(&events);
                cut_any |= cut;
                episodes.push(episode_value(e, Some(embedded.len()), None));
                embedded.push(v);
            }
            None => {
                missing += 1;
                episodes.push(episode_value(e, None, Some("trace not available")));
            }
        }
    }
    let charts = json!([
        {"id": "technique", "title": "Attack success by technique", "rows": chart_rows(&run.breakdowns.by_technique)},
        {"id": "axis", "title": "Attack success by evasion axis", "rows": chart_rows(&run.breakdowns.by_axis)},
        {"id": "slot_kind", "title": "Attack success by slot kind", "rows": chart_rows(&run.breakdowns.by_slot_kind)},
        {"id": "category", "title": "Attack success by category (threat)", "rows": if run.breakdowns.by_threat.is_empty() { category_rows(run) } else { chart_rows(&run.breakdowns.by_threat) }},
    ]);
    let mut p = Map::new();
    p.insert("schema".into(), "assay-html/v1".into());
    p.insert("agents".into(), json!(run.agents));
    p.insert("episodes".into(), Value::Array(episodes));
    p.insert("traces".into(), Value::Array(embedded));
    p.insert("charts".into(), charts);
    p.insert(
        "notes".into(),
        json!({
            "episodes_total": run.episodes.len(),
            "failing": failing.len(),
            "passing_not_listed": run.episodes.len() - failing.len(),
            "trace_cap": HTML_TRACE_CAP,
            "traces_over_cap": failing.len().saturating_sub(HTML_TRACE_CAP),
            "traces_missing": missing,
            "text_cap": HTML_TEXT_CAP,
            "text_cut": cut_any,
        }),
    );
    p.insert(
        "diff".into(),
        base.map_or(Value::Null, |b| diff_value(run, b)),
    );
    Value::Object(p)
}

fn gate_cell(r: &SummaryRow) -> String {
    if let Some(c) = &r.control {
        let title = c.problems.join("\n");
        return if c.ok {
            "<span class=\"pass\">control ok</span>".to_string()
        } else {
            format!(
                "<span class=\"fail\" title=\"{}\">control: {} problem(s)</span>",
                esc(&title),
                c.problems.len()
            )
        };
    }
    if r.gates.is_empty() {
        return "<span class=\"dim\">no gates</span>".to_string();
    }
    r.gates
        .iter()
        .map(|g| {
            let bound = match (g.bound.min, g.bound.max) {
                (Some(lo), Some(hi)) => format!("in [{lo}, {hi}]"),
                (Some(lo), None) => format!("≥ {lo}"),
                (None, Some(hi)) => format!("≤ {hi}"),
                (None, None) => "any".to_string(),
            };
            let title = format!(
                "{} {} (measured {}){}",
                g.gate,
                bound,
                g.value.map_or("nothing".to_string(), |v| format!("{v:.3}")),
                g.reason
                    .as_ref()
                    .map_or(String::new(), |r| format!(": {r}"))
            );
            format!(
                "<span class=\"{}\" title=\"{}\">{} {}</span>",
                if g.passed { "pass" } else { "fail" },
                esc(&title),
                esc(&g.gate),
                if g.passed { "pass" } else { "fail" }
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn summary_table(run: &RunResults) -> String {
    let mut s = String::from(
        "<table id=\"summary\"><thead><tr><th>spec</th><th>agent</th><th>episodes</th>\
         <th>errors</th><th>inconclusive</th><th>utility</th><th>benign utility</th>\
         <th>utility under attack</th><th>attack success rate (95% CI)</th>\
         <th>violation rate</th><th>gates</th><th>tokens in / out</th></tr></thead><tbody>",
    );
    for r in &run.summary {
        let asr = match r.attack_success_rate {
            Some(rate) if r.attacked > 0 => {
                let k = successes(rate, r.attacked);
                let (lo, hi) = wilson(k, r.attacked);
                format!(
                    "{} <span class=\"dim\">{k}/{} [{:.0}–{:.0}%]</span>",
                    pct(Some(rate)),
                    r.attacked,
                    lo * 100.0,
                    hi * 100.0
                )
            }
            _ => pct(None),
        };
        let tokens = r.usage.map_or("–".to_string(), |u| {
            format!("{} / {}", u.input_tokens, u.output_tokens)
        });
        let role = if r.role == Role::Control {
            " <span class=\"tag\">control</span>"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<tr class=\"{}\" data-spec=\"{}\" data-agent=\"{}\"><td>{}</td><td>{}{role}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{asr}</td>\
             <td>{}</td><td>{}</td><td>{tokens}</td></tr>",
            if r.passed() { "row-pass" } else { "row-fail" },
            esc(&r.spec),
            esc(&r.agent),
            esc(&r.spec),
            esc(&r.agent),
            r.episodes,
            r.errors,
            r.inconclusive,
            utility_cell(r.utility, r.utility_weighted),
            pct(r.benign_utility),
            pct(r.utility_under_attack),
            pct(r.violation_rate),
            gate_cell(r),
        );
    }
    s.push_str("</tbody></table>");
    s
}

fn tokens_line(run: &RunResults) -> String {
    let total: Option<UsageTotals> =
        run.summary
            .iter()
            .filter_map(|r| r.usage)
            .reduce(|mut a, u| {
                a.add(&u);
                a
            });
    match total {
        None => "<p id=\"tokens\">Tokens: no agent in this run used a model.</p>".to_string(),
        Some(u) => format!(
            "<p id=\"tokens\">Tokens: {} requests, {} input, {} output, {} cache read, \
             {} cache write; {} replies truncated, {} retries.</p>",
            u.requests,
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.truncated,
            u.retries
        ),
    }
}

/// The whole report as one self-contained HTML page: summary per spec ×
/// agent with token totals, breakdown charts with 95% Wilson intervals,
/// filterable failing episodes with a trace viewer that highlights the cited
/// events, and, given `base`, which verdicts moved against it.
///
/// `traces` returns an episode's events (or `None` when they cannot be read);
/// it is called only for failing episodes, at most [`HTML_TRACE_CAP`] times.
/// The page loads nothing from anywhere, and the same inputs give the same
/// bytes.
pub fn html(
    run: &RunResults,
    traces: &dyn Fn(&EpisodeResult) -> Option<Vec<Event>>,
    base: Option<&RunResults>,
) -> String {
    let data = script_json(&payload(run, traces, base));
    let csp = format!(
        "default-src 'none'; img-src data:; style-src {}; script-src {}; \
         base-uri 'none'; form-action 'none'",
        csp_hash(STYLE),
        csp_hash(SCRIPT)
    );
    let verdict = if run.passed {
        "<span class=\"badge pass\">run passed</span>"
    } else {
        "<span class=\"badge fail\">run failed</span>"
    };
    let incomplete = if run.incomplete {
        "<p class=\"fail\">The run was interrupted: only completed episodes are shown.</p>"
    } else {
        ""
    };
    let specs = run
        .specs
        .iter()
        .map(|s| {
            format!(
                "<li><code>{}</code> <span class=\"dim\">{} · {}</span></li>",
                esc(&s.id),
                esc(&s.path),
                esc(s.hash.get(..12).unwrap_or(&s.hash))
            )
        })
        .collect::<String>();
    let digest = run
        .integrity
        .as_ref()
        .map_or("not sealed".to_string(), |i| {
            esc(&format!("{} {}", i.algorithm, i.digest))
        });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Assay report</title>\n<style>{STYLE}</style></head>\n<body>\n\
<header><h1>Assay report {verdict}</h1>\n\
<p class=\"dim\">assay {} · seed {} · {} epoch(s) · {} episode(s) · results digest: {digest}</p>\n\
<ul class=\"specs\">{specs}</ul>{incomplete}</header>\n\
<main>\n<section id=\"summary-section\"><h2>Summary</h2>\n{}\n{}</section>\n\
<section id=\"filters-section\"><h2>Filters</h2><div id=\"filters\"></div></section>\n\
<section id=\"charts-section\"><h2>Breakdowns</h2>\n\
<p class=\"dim\">Bars: attack success rate over scored attacked episodes; whiskers: 95% Wilson interval.</p>\n\
<div id=\"charts\"></div></section>\n\
<section id=\"diff-section\" hidden><h2>Against the base run</h2><div id=\"diff\"></div></section>\n\
<section id=\"episodes-section\"><h2>Failing episodes</h2><p id=\"episodes-note\" class=\"dim\"></p>\n\
<div class=\"split\"><ol id=\"episodes\"></ol><div id=\"viewer\"><p class=\"dim\">Select an episode to see its trace.</p></div></div>\n\
</section>\n</main>\n\
<noscript><p>The charts, episode list and trace viewer need JavaScript; the summary above does not.</p></noscript>\n\
<script type=\"application/json\" id=\"assay-data\">{data}</script>\n\
<script>{SCRIPT}</script>\n</body></html>\n",
        esc(&run.assay_version),
        run.seed,
        run.epochs,
        run.episodes.len(),
        summary_table(run),
        tokens_line(run),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{ep, run_of};

    fn violation(rule: &str) -> assay_rules::Violation {
        assay_rules::Violation {
            rule: rule.into(),
            description: None,
            severity: assay_spec::Severity::High,
            events: vec![1],
            explanation: "x".into(),
        }
    }

    fn data_of(page: &str) -> Value {
        let start = page.find("id=\"assay-data\">").unwrap() + "id=\"assay-data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        serde_json::from_str(&page[start..end]).unwrap()
    }

    #[test]
    fn hostile_text_cannot_close_the_data_block() {
        let mut e = ep(
            "s</script><script>alert(1)</script>",
            "a",
            Role::Subject,
            None,
        );
        e.status = Status::Error;
        e.error = Some("</script><!-- <b>&amp;".into());
        let run = run_of(vec![e.clone()]);
        let page = html(&run, &|_| None, None);
        assert!(!page.contains("<script>alert(1)"), "raw payload in page");
        assert_eq!(page.matches("</script>").count(), 2, "only our own closes");
        // The data block still reads back to the exact text.
        let d = data_of(&page);
        assert_eq!(d["episodes"][0]["spec"], e.spec.as_str());
        assert_eq!(d["episodes"][0]["error"], "</script><!-- <b>&amp;");
        // The summary table escapes it.
        assert!(page.contains("s&lt;/script&gt;&lt;script&gt;alert(1)"));
    }

    #[test]
    fn same_inputs_same_bytes_and_no_remote_urls() {
        let mut bad = ep("s", "a", Role::Subject, Some("t"));
        bad.attack_success = Some(true);
        bad.violations = vec![violation("r")];
        let run = run_of(vec![ep("s", "a", Role::Subject, None), bad]);
        let a = html(&run, &|_| Some(vec![]), None);
        let b = html(&run, &|_| Some(vec![]), None);
        assert_eq!(a, b);
        for loader in ["src=", "href=", "url(", "@import", "https://"] {
            assert!(!a.contains(loader), "{loader} in the page");
        }
        // The only URL is the SVG namespace name, which is never fetched.
        assert_eq!(
            a.matches("http://").count(),
            a.matches("http://www.w3.org/2000/svg").count()
        );
        let d = data_of(&a);
        assert_eq!(d["episodes"].as_array().unwrap().len(), 1, "only failing");
        assert_eq!(d["notes"]["passing_not_listed"], 1);
        let row = &d["charts"][0]["rows"][0];
        assert_eq!((row["k"].as_u64(), row["n"].as_u64()), (Some(1), Some(1)));
        let (lo, _) = wilson(1, 1);
        assert!((row["lo"].as_f64().unwrap() - lo).abs() < 1e-12);
    }

    #[test]
    fn csp_pins_the_page_script() {
        let page = html(&run_of(vec![]), &|_| None, None);
        assert!(page.contains(&csp_hash(SCRIPT)));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains("default-src 'none'"));
    }

    #[test]
    fn traces_are_capped_and_trimmed() {
        let mut eps = Vec::new();
        for i in 0..HTML_TRACE_CAP + 3 {
            let mut e = ep("s", "a", Role::Subject, Some("t"));
            e.episode = format!("e{i}");
            e.attack_success = Some(true);
            eps.push(e);
        }
        let calls = std::cell::Cell::new(0);
        let long = "y".repeat(HTML_TEXT_CAP + 10);
        let events = vec![Event {
            seq: 0,
            prev: "p".into(),
            kind: assay_trace::EventKind::Log {
                stream: "stderr".into(),
                text: long,
            },
        }];
        let page = html(
            &run_of(eps),
            &|_| {
                calls.set(calls.get() + 1);
                Some(events.clone())
            },
            None,
        );
        assert_eq!(calls.get(), HTML_TRACE_CAP);
        let d = data_of(&page);
        assert_eq!(d["traces"].as_array().unwrap().len(), HTML_TRACE_CAP);
        assert_eq!(d["notes"]["traces_over_cap"], 3);
        assert_eq!(d["notes"]["text_cut"], true);
        let text = d["traces"][0][0]["text"].as_str().unwrap();
        assert!(text.ends_with("[10 more characters cut]"), "{text}");
        assert!(d["episodes"][HTML_TRACE_CAP]["trace"].is_null());
    }

    #[test]
    fn diff_against_base_is_embedded() {
        let benign = ep("s", "a", Role::Subject, None);
        let attacked = ep("s", "a", Role::Subject, Some("t"));
        let mut solved = ep("s", "b", Role::Subject, None);
        solved.status = Status::Error;
        let gone = ep("s", "c", Role::Subject, None);
        let base = run_of(vec![benign.clone(), attacked.clone(), solved.clone(), gone]);
        let mut now_attacked = attacked.clone();
        now_attacked.attack_success = Some(true);
        let mut now_benign = benign.clone();
        now_benign.status = Status::Error;
        let mut now_solved = solved.clone();
        now_solved.status = Status::Ok;
        let new = ep("s", "d", Role::Subject, None);
        let run = run_of(vec![now_benign, now_attacked, now_solved, new]);
        let page = html(&run, &|_| None, Some(&base));
        let lists = &data_of(&page)["diff"]["lists"];
        let agents = |name: &str| {
            lists[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["agent"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(agents("regressions"), "a,a");
        assert_eq!(agents("improvements"), "b");
        assert_eq!(agents("only_in_run"), "d");
        assert_eq!(agents("only_in_base"), "c");
        let r = &lists["regressions"];
        assert!(r.as_array().unwrap().iter().any(|e| {
            e["before"].as_str().unwrap().contains("attack failed")
                && e["after"].as_str().unwrap().contains("attack succeeded")
        }));
        assert_eq!(lists["only_in_run"][0]["episode"], "s--d--benign");
        assert!(data_of(&html(&run, &|_| None, None))["diff"].is_null());
    }
}
