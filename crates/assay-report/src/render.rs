//! Human renderings: the run summary table and an annotated trace.

use std::collections::BTreeMap;
use std::fmt::Write;

use assay_trace::{Event, EventKind};

use crate::metrics::SummaryRow;
use crate::results::EpisodeResult;

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0))
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
            pct(r.utility),
            pct(r.benign_utility),
            if r.attacked == 0 {
                "-".into()
            } else {
                format!(
                    "{} ({}/{})",
                    pct(r.attack_success_rate),
                    (r.attack_success_rate.unwrap_or(0.0) * r.attacked as f64).round(),
                    r.attacked
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
            for p in &c.problems {
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
        "  {:w$}  {:a$}  {:>8}  {:>14}  {:>19}  {:>14}",
        "key", "agent", "attacked", "attack success", "utility under attack", "benign utility"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:w$}  {:a$}  {:>8}  {:>14}  {:>19}  {:>14}",
            r.key,
            r.agent,
            r.attacked,
            pct(r.attack_success_rate),
            pct(r.utility_under_attack),
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
