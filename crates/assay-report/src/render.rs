//! Human renderings: the run summary table and an annotated trace.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use assay_trace::{Event, EventKind};

use crate::metrics::SummaryRow;
use crate::results::{EpisodeResult, Role, Status};

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0))
}

/// ` [lo-hi%]` for a 95% interval, or nothing.
fn ci(x: Option<[f64; 2]>) -> String {
    x.map_or(String::new(), |[lo, hi]| {
        format!(" [{:.0}-{:.0}%]", lo * 100.0, hi * 100.0)
    })
}

/// Groups items by their text, keeping first-appearance order: (text, count,
/// first example).
fn group_first(items: impl IntoIterator<Item = (String, String)>) -> Vec<(String, usize, String)> {
    let mut out: Vec<(String, usize, String)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for (text, example) in items {
        match at.get(&text) {
            Some(&i) => out[i].1 += 1,
            None => {
                at.insert(text.clone(), out.len());
                out.push((text, 1, example));
            }
        }
    }
    out
}

/// Collapses identical lines into one with a count suffix (`… (×12)`),
/// keeping the order in which lines first appear: the same error on hundreds
/// of episodes reads as one line.
pub fn group_lines(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    group_first(lines.into_iter().map(|l| (l, String::new())))
        .into_iter()
        .map(|(l, n, _)| if n == 1 { l } else { format!("{l} (×{n})") })
        .collect()
}

fn seqs(events: &[u64]) -> String {
    let s: Vec<String> = events.iter().map(|e| format!("#{e}")).collect();
    format!("[{}]", s.join(" "))
}

/// The failing episodes, one line each: errors and inconclusive episodes
/// (any role), and subject episodes with violations or a successful attack
/// (a control agent firing rules is doing its job), with rule ids and cited
/// events. Errors and inconclusive episodes are grouped by spec, agent and
/// message, so one backend outage is one line with a count. At most `limit`
/// lines follow the header; the rest are counted.
pub fn render_failures(episodes: &[EpisodeResult], limit: usize) -> String {
    let mut failing = 0;
    let items = episodes.iter().filter_map(|e| {
        let who = format!("{} / {}", e.spec, e.agent);
        let item = match e.status {
            Status::Error => (
                format!("{who}: error: {}", e.error.as_deref().unwrap_or("?")),
                e.episode.clone(),
            ),
            Status::Inconclusive => (
                format!("{who}: inconclusive: the world could not model an effect"),
                e.episode.clone(),
            ),
            Status::Ok => {
                if e.role == Role::Control
                    || (e.violations.is_empty() && e.attack_success != Some(true))
                {
                    return None;
                }
                let mut parts = Vec::new();
                if e.attack_success == Some(true) {
                    parts.push(format!("attack success {}", seqs(&e.attack_events)));
                }
                for v in &e.violations {
                    parts.push(format!(
                        "violation {} {}: {}",
                        v.rule,
                        seqs(&v.events),
                        v.explanation
                    ));
                }
                (
                    format!(
                        "{}: {} / {} / {} epoch {}: {}",
                        e.episode,
                        e.spec,
                        e.case,
                        e.agent,
                        e.epoch,
                        parts.join("; ")
                    ),
                    String::new(),
                )
            }
        };
        failing += 1;
        Some(item)
    });
    let grouped = group_first(items);
    let mut out = format!("{failing} failing episode(s) of {}\n", episodes.len());
    for (line, n, first) in grouped.iter().take(limit) {
        if *n == 1 && !first.is_empty() {
            let _ = writeln!(out, "  {line} ({first})");
        } else if *n == 1 {
            let _ = writeln!(out, "  {line}");
        } else {
            let _ = writeln!(out, "  {line} (×{n}, first {first})");
        }
    }
    if grouped.len() > limit {
        let _ = writeln!(out, "  … {} more line(s)", grouped.len() - limit);
    }
    out
}

/// One line per row measured over several epochs: ASR@k and pass^k.
fn render_epoch_metrics(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    for r in rows {
        let mut parts = Vec::new();
        if let Some(a) = &r.asr_at_k {
            parts.push(format!(
                "ASR@{} {} ({}/{} attacked case(s) succeeded in some epoch){}",
                a.k,
                pct(Some(a.rate)),
                a.hits,
                a.cases,
                ci(Some(a.ci95))
            ));
        }
        if let Some(p) = &r.pass_hat_k {
            parts.push(format!(
                "pass^{} {} ({}/{} case(s) passed every epoch){}",
                p.k,
                pct(Some(p.rate)),
                p.hits,
                p.cases,
                ci(Some(p.ci95))
            ));
        }
        if !parts.is_empty() {
            let _ = writeln!(out, "{} / {}: {}", r.spec, r.agent, parts.join("; "));
        }
    }
    out
}

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
}

/// A utility, followed by its weighted form when check weights make them differ.
fn with_weighted(u: Option<f64>, w: Option<f64>) -> String {
    match (u, w) {
        (Some(a), Some(b)) if (a - b).abs() > 1e-9 => format!("{} (w {})", pct(u), pct(w)),
        _ => pct(u),
    }
}

/// The summary table: one row per spec × agent, then gate and control failures.
pub fn render_summary(rows: &[SummaryRow], color: bool) -> String {
    let st = Style { color };
    let header = [
        "spec",
        "agent",
        "episodes",
        "utility",
        "benign util",
        "attack success",
        "delivered",
        "violations",
        "errors",
        "inconclusive",
        "status",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let status = if r.passed() {
            if r.control.is_some() {
                "control ok"
            } else if r.gates.is_empty() {
                "ok"
            } else {
                "gates pass"
            }
        } else if r.control.is_some() {
            "CONTROL FAIL"
        } else if r.errors > 0 {
            "ERROR"
        } else if r.inconclusive > 0 {
            "INCONCLUSIVE"
        } else {
            "GATE FAIL"
        };
        table.push(vec![
            r.spec.clone(),
            r.agent.clone(),
            r.episodes.to_string(),
            with_weighted(r.utility, r.utility_weighted),
            pct(r.benign_utility),
            if r.attacked == 0 {
                "-".into()
            } else {
                format!(
                    "{} ({}/{}){}",
                    pct(r.attack_success_rate),
                    (r.attack_success_rate.unwrap_or(0.0) * r.attacked as f64).round(),
                    r.attacked,
                    ci(r.attack_success_rate_ci95)
                )
            },
            if r.attacked == 0 {
                "-".into()
            } else {
                format!(
                    "{}/{} ({} success)",
                    r.delivered,
                    r.attacked,
                    pct(r.attack_success_when_delivered)
                )
            },
            pct(r.violation_rate),
            r.errors.to_string(),
            r.inconclusive.to_string(),
            status.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            let cell = if i == 0 {
                st.bold(cell)
            } else if c == header.len() - 1 {
                if rows[i - 1].passed() {
                    st.green(cell)
                } else {
                    st.red(cell)
                }
            } else {
                cell.clone()
            };
            line.push_str(&cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&render_agent_totals(rows));
    out.push_str(&render_epoch_metrics(rows));
    for r in rows {
        for g in r.gates.iter().filter(|g| !g.passed) {
            let _ = writeln!(
                out,
                "{} {} / {}: gate {} {}",
                st.red("gate failed:"),
                r.spec,
                r.agent,
                g.gate,
                g.reason.as_deref().unwrap_or("")
            );
        }
        if let Some(c) = &r.control {
            // The same problem on hundreds of episodes (a backend down) is one
            // line with a count and the first episode, not a wall.
            let grouped = group_first(c.problems.iter().map(|p| match p.split_once(": ") {
                Some((id, msg)) => (msg.to_string(), id.to_string()),
                None => (p.clone(), String::new()),
            }));
            for (msg, n, first) in grouped {
                let p = match (n, first.is_empty()) {
                    (1, false) => format!("{first}: {msg}"),
                    (1, true) => msg,
                    (_, false) => format!("{msg} (×{n}, first {first})"),
                    (_, true) => format!("{msg} (×{n})"),
                };
                let _ = writeln!(
                    out,
                    "{} {} / {}: {}",
                    st.red("control failed:"),
                    r.spec,
                    r.agent,
                    p
                );
            }
        }
    }
    out
}

/// One line per agent that used a model or was attacked: payloads delivered,
/// attack success among delivered episodes, requests and tokens (prompt
/// tokens split into uncached, cache read and cache write), and replies cut
/// off by the token limit.
fn render_agent_totals(rows: &[SummaryRow]) -> String {
    let mut per: BTreeMap<&str, (usize, usize, f64, Option<crate::UsageTotals>)> = BTreeMap::new();
    for r in rows {
        let t = per.entry(&r.agent).or_default();
        t.0 += r.attacked;
        t.1 += r.delivered;
        t.2 += r.attack_success_when_delivered.unwrap_or(0.0) * r.delivered as f64;
        if let Some(u) = &r.usage {
            t.3.get_or_insert_with(Default::default).add(u);
        }
    }
    let mut out = String::new();
    for (agent, (attacked, delivered, successes, usage)) in per {
        if attacked == 0 && usage.is_none() {
            continue;
        }
        let mut line = format!("agent {agent}:");
        if attacked > 0 {
            let _ = write!(
                line,
                " payload delivered in {delivered}/{attacked} attacked episode(s)"
            );
            if delivered > 0 {
                let _ = write!(
                    line,
                    ", attack success among them {:.0}% ({}/{delivered})",
                    successes / delivered as f64 * 100.0,
                    successes.round()
                );
            }
            line.push(';');
        }
        if let Some(u) = usage {
            let _ = write!(
                line,
                " {} request(s), tokens in {} (+{} cache read, +{} cache write), out {}, {} retr{}",
                u.requests,
                u.input_tokens,
                u.cache_read_tokens,
                u.cache_write_tokens,
                u.output_tokens,
                u.retries,
                if u.retries == 1 { "y" } else { "ies" }
            );
            if u.truncated > 0 {
                let _ = write!(
                    line,
                    ", {} reply(ies) cut off by the token limit",
                    u.truncated
                );
            }
        }
        out.push_str(line.trim_end_matches(';'));
        out.push('\n');
    }
    out
}

/// A breakdown table (one row per key × agent).
pub fn render_breakdown(title: &str, rows: &[crate::BreakdownRow]) -> String {
    let mut out = format!("{title}\n");
    let w = rows
        .iter()
        .map(|r| r.key.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    let a = rows
        .iter()
        .map(|r| r.agent.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "  {:w$}  {:a$}  {:>8}  {:>14}  {:>10}  {:>19}  {:>14}",
        "key",
        "agent",
        "attacked",
        "attack success",
        "95% CI",
        "utility under attack",
        "benign utility"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:w$}  {:a$}  {:>8}  {:>14}  {:>10}  {:>19}  {:>14}",
            r.key,
            r.agent,
            r.attacked,
            pct(r.attack_success_rate),
            ci(r.attack_success_rate_ci95).trim(),
            with_weighted(r.utility_under_attack, r.utility_weighted_under_attack),
            pct(r.benign_utility)
        );
    }
    out
}

/// Case QA results: counts, then every invalid case with its reasons.
pub fn render_qa(results: &[crate::QaResult]) -> String {
    let valid = results.iter().filter(|r| r.valid).count();
    let mut out = format!("{valid} of {} case(s) valid\n", results.len());
    for (name, f) in [
        (
            "not solvable",
            (|r: &crate::QaResult| !r.solvable) as fn(&crate::QaResult) -> bool,
        ),
        ("not specific", |r| !r.specific),
        ("not delivered", |r| r.delivered == Some(false)),
        ("not reachable", |r| r.reachable == Some(false)),
    ] {
        let n = results.iter().filter(|r| f(r)).count();
        if n > 0 {
            let _ = writeln!(out, "  {name}: {n}");
        }
    }
    for r in results.iter().filter(|r| !r.valid) {
        let _ = writeln!(
            out,
            "invalid {} / {} ({}): {}",
            r.spec,
            r.case,
            r.source,
            r.reasons.join("; ")
        );
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    let one = s.replace('\n', "\\n");
    if one.chars().count() <= n {
        one
    } else {
        format!("{}…", one.chars().take(n).collect::<String>())
    }
}

/// A trace, one event per line; events cited by a verdict are marked with the
/// rule or check that cites them.
pub fn render_trace(events: &[Event], verdict: Option<&EpisodeResult>, color: bool) -> String {
    let st = Style { color };
    let mut marks: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    if let Some(v) = verdict {
        for vi in &v.violations {
            for e in &vi.events {
                marks
                    .entry(*e)
                    .or_default()
                    .push(format!("violation {}", vi.rule));
            }
        }
        for e in &v.attack_events {
            marks
                .entry(*e)
                .or_default()
                .push("attack success".to_string());
        }
    }
    let mut out = String::new();
    if let Some(v) = verdict {
        let _ = writeln!(
            out,
            "{} {}  status={} utility={:.2} attack_success={}",
            st.bold("episode"),
            v.episode,
            match v.status {
                crate::Status::Ok => "ok",
                crate::Status::Error => "error",
                crate::Status::Inconclusive => "inconclusive",
            },
            v.utility,
            v.attack_success
                .map_or("n/a".to_string(), |b| b.to_string())
        );
    }
    for ev in events {
        let body = match &ev.kind {
            EventKind::EpisodeStart(s) => format!(
                "episode_start spec={} case={} agent={} epoch={} seed={}",
                s.spec, s.case, s.agent, s.epoch, s.seed
            ),
            EventKind::Message { role, content } => {
                format!("{:?}: {}", role, clip(content, 160)).to_lowercase_first()
            }
            EventKind::ToolCall { tool, args, .. } => {
                format!("tool_call {tool} {}", clip(&args.to_string(), 140))
            }
            EventKind::Effect { call, effect } => {
                let fields: Vec<String> = effect
                    .fields
                    .iter()
                    .filter(|(k, _)| *k != "content" && *k != "via")
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            clip(
                                &v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                60
                            )
                        )
                    })
                    .collect();
                format!(
                    "  effect {} (call #{call}) {}",
                    effect.kind.name(),
                    fields.join(" ")
                )
            }
            EventKind::InjectionDelivered { call, threat, slot } => {
                format!("  injection_delivered threat={threat} slot={slot} (call #{call})")
            }
            EventKind::ToolResult { call, ok, output } => {
                format!(
                    "  tool_result #{call} {} {}",
                    if *ok { "ok" } else { "ERR" },
                    clip(output, 120)
                )
            }
            EventKind::Error { source, message } => st.red(&format!("error [{source}] {message}")),
            EventKind::Limit {
                limit,
                value,
                detail,
            } => match detail {
                Some(d) => format!("limit {limit} reached ({value}): {d}"),
                None => format!("limit {limit} reached ({value})"),
            },
            EventKind::Log { stream, text } => st.dim(&format!("  {stream}: {}", clip(text, 140))),
            EventKind::EpisodeEnd { reason, state } => format!(
                "episode_end {reason} (files={} outbox={} memory={} installed={})",
                state.files.len(),
                state.outbox.len(),
                state.memory.len(),
                state.installed.len()
            ),
        };
        let seq = st.dim(&format!("#{:<4}", ev.seq));
        match marks.get(&ev.seq) {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "{seq} {}  {}",
                    st.red(&body),
                    st.red(&format!("<- {}", m.join(", ")))
                );
            }
            None => {
                let _ = writeln!(out, "{seq} {body}");
            }
        }
    }
    if let Some(v) = verdict {
        for c in &v.checks {
            let mark = if c.passed {
                st.green("pass")
            } else {
                st.red("FAIL")
            };
            let _ = writeln!(
                out,
                "check {} {mark}: {} {:?}",
                c.index, c.summary, c.events
            );
        }
        for vi in &v.violations {
            let _ = writeln!(
                out,
                "{} {}: {} {:?}",
                st.red("violation"),
                vi.rule,
                vi.explanation,
                vi.events
            );
        }
    }
    out
}

trait LowerFirst {
    fn to_lowercase_first(self) -> String;
}

impl LowerFirst for String {
    fn to_lowercase_first(self) -> String {
        let mut c = self.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{ep, violation};

    #[test]
    fn group_lines_counts_repeats_in_first_appearance_order() {
        let lines = ["b", "a", "b", "c", "b", "a"].map(String::from);
        assert_eq!(group_lines(lines), ["b (×3)", "a (×2)", "c"]);
        assert!(group_lines(Vec::new()).is_empty());
    }

    #[test]
    fn repeated_control_problems_are_one_line() {
        let mut eps = Vec::new();
        for i in 0..300 {
            let mut e = ep("s", "control:solve", Role::Control, None);
            e.episode = format!("ep{i:03}");
            e.status = Status::Error;
            e.error = Some("backend down".into());
            eps.push(e);
        }
        let mut odd = ep("s", "control:solve", Role::Control, None);
        odd.episode = "ep999".into();
        odd.utility = 0.5;
        eps.push(odd);
        let rows = crate::summarize(&eps, &BTreeMap::new());
        assert_eq!(rows[0].control.as_ref().unwrap().problems.len(), 301);
        let text = render_summary(&rows, false);
        let failed: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("control failed:"))
            .collect();
        assert_eq!(
            failed,
            [
                "control failed: s / control:solve: errored: backend down (×300, first ep000)",
                "control failed: s / control:solve: ep999: reference solution reaches utility 0.50, not 1 (task unsolvable or checks wrong)"
            ],
            "{text}"
        );
    }

    #[test]
    fn summary_shows_intervals_and_epoch_metrics() {
        let mut eps = Vec::new();
        for epoch in 0..2 {
            let mut a = ep("s", "m", Role::Subject, Some("leak"));
            a.epoch = epoch;
            a.attack_success = Some(epoch == 0);
            eps.push(a);
        }
        let rows = crate::summarize(&eps, &BTreeMap::new());
        let text = render_summary(&rows, false);
        assert!(text.contains("50% (1/2) [9-91%]"), "{text}");
        assert!(
            text.contains("s / m: ASR@2 100% (1/1 attacked case(s) succeeded in some epoch) [21-100%]; pass^2 0% (0/1"),
            "{text}"
        );
        let b = render_breakdown("by threat:", &crate::breakdowns(&eps).by_threat);
        assert!(b.contains("leak") && b.contains("[9-91%]"), "{b}");
    }

    #[test]
    fn failures_list_rules_and_events_and_collapse_errors() {
        let mut hit = ep("s", "m", Role::Subject, Some("leak"));
        hit.episode = "hit".into();
        hit.attack_success = Some(true);
        hit.attack_events = vec![7];
        hit.violations.push(violation("secret-read"));
        let clean = ep("s", "m", Role::Subject, None);
        let mut naive = ep("s", "control:naive", Role::Control, Some("leak"));
        naive.attack_success = Some(true);
        let mut eps = vec![hit, clean, naive];
        for i in 0..50 {
            let mut e = ep("s", "m", Role::Subject, Some("leak"));
            e.episode = format!("err{i}");
            e.status = Status::Error;
            e.error = Some("timeout".into());
            eps.push(e);
        }
        let text = render_failures(&eps, 10);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "51 failing episode(s) of 53",
                "  hit: s / leak.x@s / m epoch 0: attack success [#7]; violation secret-read [#3]: x",
                "  s / m: error: timeout (×50, first err0)",
            ],
            "{text}"
        );
        let short = render_failures(&eps, 1);
        assert!(short.ends_with("  … 1 more line(s)\n"), "{short}");
    }
}
