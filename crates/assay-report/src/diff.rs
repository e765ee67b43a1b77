//! Run diff: what changed between two runs of the same cases, episode by
//! episode and rate by rate.
//!
//! Episodes are matched by spec, case label, agent and epoch. A matched pair
//! whose verdict got worse is a regression (a pass became a failure, or a new
//! rule fires); one that got better is an improvement. Attack-success rates
//! per technique, axis, slot kind and threat come with Wilson intervals on
//! each side and a Newcombe interval on their difference, so a change of one
//! episode in five is not read as a trend.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use assay_rules::Violation;
use serde::Serialize;

use crate::aggregate::{Dim, keys};
use crate::metrics::ci95;
use crate::results::{EpisodeResult, RunResults, Status};
use crate::stats::wilson;

/// What identifies an episode across runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EpisodeKey {
    /// Spec id.
    pub spec: String,
    /// Case label.
    pub case: String,
    /// Agent name.
    pub agent: String,
    /// Repetition index.
    pub epoch: u32,
}

impl EpisodeKey {
    fn of(e: &EpisodeResult) -> Self {
        EpisodeKey {
            spec: e.spec.clone(),
            case: e.case.clone(),
            agent: e.agent.clone(),
            epoch: e.epoch,
        }
    }
}

/// One side's verdict of a changed episode, with the events that prove it,
/// so a reviewer can open both traces at the right lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Episode id (its directory in the run).
    pub episode: String,
    /// `ok`, `error` or `inconclusive`.
    pub status: Status,
    /// Why it errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Task utility.
    pub utility: f64,
    /// Whether the threat succeeded.
    pub attack_success: Option<bool>,
    /// Events proving the attack succeeded.
    pub attack_events: Vec<u64>,
    /// Forbidden rules that fired, with their cited events and explanation.
    pub violations: Vec<Violation>,
}

impl Verdict {
    fn of(e: &EpisodeResult) -> Self {
        Verdict {
            episode: e.episode.clone(),
            status: e.status,
            error: e.error.clone(),
            utility: e.utility,
            attack_success: e.attack_success,
            attack_events: e.attack_events.clone(),
            violations: e.violations.clone(),
        }
    }
}

/// A matched episode whose verdict changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictChange {
    /// The episode.
    pub key: EpisodeKey,
    /// What got worse from base to head (non-empty for a regression).
    pub worse: Vec<String>,
    /// What got better.
    pub better: Vec<String>,
    /// Verdict in the base run.
    pub base: Verdict,
    /// Verdict in the head run.
    pub head: Verdict,
}

/// An attack-success rate on one side: counts, rate, 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Attacked episodes where the threat succeeded.
    pub successes: usize,
    /// Scored attacked episodes.
    pub attacked: usize,
    /// `successes / attacked`.
    pub rate: f64,
    /// 95% Wilson interval of `rate`.
    pub ci95: [f64; 2],
}

/// The attack-success rate of one group (technique, axis, slot kind or
/// threat × agent) in both runs, and how it moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateDelta {
    /// Technique id, axis, slot kind or threat id.
    pub key: String,
    /// Agent name.
    pub agent: String,
    /// Rate in the base run (absent when the group was not attacked there).
    pub base: Option<Rate>,
    /// Rate in the head run.
    pub head: Option<Rate>,
    /// `head - base`, when both exist.
    pub delta: Option<f64>,
    /// 95% interval of the difference (Newcombe's hybrid score method).
    pub delta_ci95: Option<[f64; 2]>,
}

/// Everything that changed between a base run and a head run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDiff {
    /// Episodes in the base run.
    pub base_episodes: usize,
    /// Episodes in the head run.
    pub head_episodes: usize,
    /// Episodes present in both.
    pub matched: usize,
    /// Matched episodes whose verdict did not change.
    pub unchanged: usize,
    /// Matched episodes that got worse: newly failing.
    pub regressions: Vec<VerdictChange>,
    /// Matched episodes that only got better: newly passing.
    pub improvements: Vec<VerdictChange>,
    /// Episodes only in the base run (cases or agents removed).
    pub only_in_base: Vec<EpisodeKey>,
    /// Episodes only in the head run (cases or agents added).
    pub only_in_head: Vec<EpisodeKey>,
    /// Attack success per technique × agent.
    pub by_technique: Vec<RateDelta>,
    /// Attack success per evasion axis × agent.
    pub by_axis: Vec<RateDelta>,
    /// Attack success per slot kind × agent.
    pub by_slot_kind: Vec<RateDelta>,
    /// Attack success per threat × agent.
    pub by_threat: Vec<RateDelta>,
}

impl RunDiff {
    /// Number of newly failing episodes: what a CI gate on a diff counts.
    pub fn regressions(&self) -> usize {
        self.regressions.len()
    }
}

/// 95% interval of the difference `p1 - p2` of two independent proportions
/// `k1/n1` and `k2/n2`, by Newcombe's hybrid score method (method 10 of
/// Newcombe 1998), built from the two Wilson intervals. Unlike the Wald
/// interval it stays inside [-1, 1] and behaves at 0 and n successes.
/// Both `n` must be positive.
pub fn newcombe(k1: usize, n1: usize, k2: usize, n2: usize) -> (f64, f64) {
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let (l1, u1) = wilson(k1, n1);
    let (l2, u2) = wilson(k2, n2);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    (lo.max(-1.0), hi.min(1.0))
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Error => "error",
        Status::Inconclusive => "inconclusive",
    }
}

/// What got worse and what got better from `b` to `h`.
fn compare(b: &EpisodeResult, h: &EpisodeResult) -> (Vec<String>, Vec<String>) {
    let (mut worse, mut better) = (Vec::new(), Vec::new());
    if b.status != h.status {
        let line = format!("{} → {}", status_name(b.status), status_name(h.status));
        match (b.status, h.status) {
            (Status::Ok, _) => worse.push(line),
            (_, Status::Ok) => better.push(line),
            // error ↔ inconclusive: neither is a pass; still a change to see.
            _ => worse.push(line),
        }
    }
    let (bs, hs) = (
        b.attack_success == Some(true),
        h.attack_success == Some(true),
    );
    if hs && !bs {
        worse.push("attack succeeds".into());
    } else if bs && !hs {
        better.push("attack no longer succeeds".into());
    }
    let rules = |e: &EpisodeResult| -> BTreeSet<String> {
        e.violations.iter().map(|v| v.rule.clone()).collect()
    };
    let (br, hr) = (rules(b), rules(h));
    for r in hr.difference(&br) {
        worse.push(format!("violates {r}"));
    }
    for r in br.difference(&hr) {
        better.push(format!("no longer violates {r}"));
    }
    if b.status == Status::Ok && h.status == Status::Ok && b.utility != h.utility {
        let line = format!("utility {:.2} → {:.2}", b.utility, h.utility);
        if h.utility < b.utility {
            worse.push(line);
        } else {
            better.push(line);
        }
    }
    (worse, better)
}

type Counts = BTreeMap<(Dim, String, String), (usize, usize)>;

/// Attack successes and scored attacked episodes per breakdown group.
fn attack_counts(episodes: &[EpisodeResult]) -> Counts {
    let mut m = Counts::new();
    for e in episodes
        .iter()
        .filter(|e| e.status == Status::Ok && e.threat.is_some())
    {
        for (dim, key) in keys(e) {
            let c = m
                .entry((dim, key.to_string(), e.agent.clone()))
                .or_default();
            c.0 += usize::from(e.attack_success == Some(true));
            c.1 += 1;
        }
    }
    m
}

fn rate(c: Option<&(usize, usize)>) -> Option<Rate> {
    let &(k, n) = c?;
    Some(Rate {
        successes: k,
        attacked: n,
        rate: k as f64 / n as f64,
        ci95: ci95(k, n)?,
    })
}

/// Compares two runs episode by episode (matched by spec, case label, agent
/// and epoch) and rate by rate.
pub fn diff_runs(base: &RunResults, head: &RunResults) -> RunDiff {
    let index = |r: &RunResults| -> BTreeMap<EpisodeKey, usize> {
        let mut m = BTreeMap::new();
        for (i, e) in r.episodes.iter().enumerate() {
            m.entry(EpisodeKey::of(e)).or_insert(i);
        }
        m
    };
    let (bi, hi) = (index(base), index(head));
    let mut d = RunDiff {
        base_episodes: base.episodes.len(),
        head_episodes: head.episodes.len(),
        matched: 0,
        unchanged: 0,
        regressions: Vec::new(),
        improvements: Vec::new(),
        only_in_base: bi
            .keys()
            .filter(|k| !hi.contains_key(*k))
            .cloned()
            .collect(),
        only_in_head: hi
            .keys()
            .filter(|k| !bi.contains_key(*k))
            .cloned()
            .collect(),
        by_technique: Vec::new(),
        by_axis: Vec::new(),
        by_slot_kind: Vec::new(),
        by_threat: Vec::new(),
    };
    for (key, &i) in &bi {
        let Some(&j) = hi.get(key) else { continue };
        d.matched += 1;
        let (b, h) = (&base.episodes[i], &head.episodes[j]);
        let (worse, better) = compare(b, h);
        if worse.is_empty() && better.is_empty() {
            d.unchanged += 1;
            continue;
        }
        let change = VerdictChange {
            key: key.clone(),
            base: Verdict::of(b),
            head: Verdict::of(h),
            worse,
            better,
        };
        if change.worse.is_empty() {
            d.improvements.push(change);
        } else {
            d.regressions.push(change);
        }
    }
    let (bc, hc) = (attack_counts(&base.episodes), attack_counts(&head.episodes));
    let groups: BTreeSet<&(Dim, String, String)> = bc.keys().chain(hc.keys()).collect();
    for g in groups {
        let (b, h) = (rate(bc.get(g)), rate(hc.get(g)));
        let (delta, delta_ci95) = match (b, h) {
            (Some(b), Some(h)) => {
                let (lo, hi) = newcombe(h.successes, h.attacked, b.successes, b.attacked);
                (Some(h.rate - b.rate), Some([lo, hi]))
            }
            _ => (None, None),
        };
        let row = RateDelta {
            key: g.1.clone(),
            agent: g.2.clone(),
            base: b,
            head: h,
            delta,
            delta_ci95,
        };
        match g.0 {
            Dim::Technique => d.by_technique.push(row),
            Dim::Axis => d.by_axis.push(row),
            Dim::SlotKind => d.by_slot_kind.push(row),
            Dim::Threat => d.by_threat.push(row),
        }
    }
    d
}

fn events(seqs: &[u64]) -> String {
    let s: Vec<String> = seqs.iter().map(|s| format!("#{s}")).collect();
    format!("[{}]", s.join(" "))
}

/// A verdict on one line: status, utility, attack success and violations
/// with their cited events.
fn verdict_line(v: &Verdict) -> String {
    let mut parts = vec![status_name(v.status).to_string()];
    if let Some(e) = &v.error {
        parts[0] = format!("error: {e}");
    }
    parts.push(format!("utility {:.2}", v.utility));
    if v.attack_success == Some(true) {
        parts.push(format!("attack success {}", events(&v.attack_events)));
    }
    if v.violations.is_empty() {
        parts.push("no violation".into());
    }
    for vi in &v.violations {
        parts.push(format!(
            "violation {} {}: {}",
            vi.rule,
            events(&vi.events),
            vi.explanation
        ));
    }
    parts.join("; ")
}

/// Epoch lists as `0`, `0, 2`, or `0-4`.
fn epochs_text(epochs: &[u32]) -> String {
    let contiguous = epochs.windows(2).all(|w| w[1] == w[0] + 1);
    match epochs {
        [one] => format!("epoch {one}"),
        [first, .., last] if contiguous => format!("epochs {first}-{last}"),
        _ => {
            let s: Vec<String> = epochs.iter().map(u32::to_string).collect();
            format!("epochs {}", s.join(", "))
        }
    }
}

/// Groups items that differ only in their epoch: one entry per
/// (identity, text), with the epochs it covers, in first-appearance order.
fn by_epochs<'a>(
    items: impl IntoIterator<Item = (&'a EpisodeKey, String)>,
) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for (k, text) in items {
        let head = format!("{} / {} / {}", k.spec, k.case, k.agent);
        let id = format!("{head}\n{text}");
        match at.get(&id) {
            Some(&i) => out[i].1.push(k.epoch),
            None => {
                at.insert(id.clone(), out.len());
                out.push((id, vec![k.epoch]));
            }
        }
    }
    out
}

fn render_changes(out: &mut String, title: &str, changes: &[VerdictChange]) {
    if changes.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title} ({}):", changes.len());
    let items = changes.iter().map(|c| {
        let mut what = c.worse.clone();
        what.extend(c.better.iter().map(|b| format!("(better: {b})")));
        let text = format!(
            "{}\n    base: {}\n    head: {}",
            what.join(", "),
            verdict_line(&c.base),
            verdict_line(&c.head)
        );
        (&c.key, text)
    });
    for (id, epochs) in by_epochs(items) {
        let (who, rest) = id.split_once('\n').unwrap_or((&id, ""));
        let (what, detail) = rest.split_once('\n').unwrap_or((rest, ""));
        let _ = writeln!(out, "  {who} ({}): {what}", epochs_text(&epochs));
        if !detail.is_empty() {
            let _ = writeln!(out, "{detail}");
        }
    }
}

fn render_only(out: &mut String, title: &str, keys: &[EpisodeKey]) {
    if keys.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}, {} episode(s):", keys.len());
    for (id, epochs) in by_epochs(keys.iter().map(|k| (k, String::new()))) {
        let who = id.split_once('\n').map_or(id.as_str(), |(w, _)| w);
        let _ = writeln!(out, "  {who} ({})", epochs_text(&epochs));
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

fn rate_text(r: &Option<Rate>) -> String {
    r.map_or("-".into(), |r| {
        format!(
            "{} ({}/{}) [{}, {}]",
            pct(r.rate),
            r.successes,
            r.attacked,
            pct(r.ci95[0]),
            pct(r.ci95[1])
        )
    })
}

fn render_rates(out: &mut String, title: &str, rows: &[RateDelta]) {
    let moved: Vec<&RateDelta> = rows
        .iter()
        .filter(|r| {
            r.delta != Some(0.0) || r.base.map(|b| b.attacked) != r.head.map(|h| h.attacked)
        })
        .collect();
    if moved.is_empty() {
        return;
    }
    let table: Vec<[String; 5]> = moved
        .iter()
        .map(|r| {
            let delta = match (r.delta, r.delta_ci95) {
                (Some(d), Some([lo, hi])) => format!(
                    "{:+.0}% [{:+.0}%, {:+.0}%]",
                    d * 100.0,
                    lo * 100.0,
                    hi * 100.0
                ),
                _ if r.base.is_none() => "added".into(),
                _ => "removed".into(),
            };
            [
                r.key.clone(),
                r.agent.clone(),
                rate_text(&r.base),
                rate_text(&r.head),
                delta,
            ]
        })
        .collect();
    let header = ["key", "agent", "base", "head", "change (95% CI)"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            std::iter::once(&header)
                .chain(&table)
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let _ = writeln!(out, "attack success {title}:");
    for row in std::iter::once(&header).chain(&table) {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(line, " {cell:w$} ", w = widths[c]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let same = rows.len() - moved.len();
    if same > 0 {
        let _ = writeln!(out, "  ({same} unchanged row(s) not shown)");
    }
}

/// The diff for a terminal: counts, newly failing episodes first, then newly
/// passing ones, added and removed episodes, then the attack-success rates
/// that moved. Episodes that differ only in their epoch share one line.
pub fn render_diff(d: &RunDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} matched episode(s): {} newly failing, {} newly passing, {} unchanged; {} only in base, {} only in head",
        d.matched,
        d.regressions.len(),
        d.improvements.len(),
        d.unchanged,
        d.only_in_base.len(),
        d.only_in_head.len()
    );
    render_changes(&mut out, "newly failing", &d.regressions);
    render_changes(&mut out, "newly passing", &d.improvements);
    render_only(&mut out, "only in head (added)", &d.only_in_head);
    render_only(&mut out, "only in base (removed)", &d.only_in_base);
    render_rates(&mut out, "by technique", &d.by_technique);
    render_rates(&mut out, "by evasion axis", &d.by_axis);
    render_rates(&mut out, "by slot kind", &d.by_slot_kind);
    render_rates(&mut out, "by threat", &d.by_threat);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::{ep, run_of as run, violation};
    use crate::results::Role;

    fn episodes() -> Vec<EpisodeResult> {
        let mut out = Vec::new();
        for (i, threat) in [None, Some("leak"), Some("wipe")].into_iter().enumerate() {
            for epoch in 0..3 {
                let mut e = ep("s", "m", Role::Subject, threat);
                e.epoch = epoch;
                e.episode = format!("ep{i}-{epoch}");
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn newcombe_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17:873-890, Table II,
        // method 10: 56/70 - 48/80 → [0.0524, 0.3339]; 9/10 - 3/10 →
        // [0.1705, 0.8090]; 5/56 - 0/29 → [-0.0381, 0.1926].
        for ((k1, n1, k2, n2), (lo, hi)) in [
            ((56, 70, 48, 80), (0.0524, 0.3339)),
            ((9, 10, 3, 10), (0.1705, 0.8090)),
            ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ] {
            let (l, h) = newcombe(k1, n1, k2, n2);
            assert!(
                (l - lo).abs() < 5e-5 && (h - hi).abs() < 5e-5,
                "{k1}/{n1} - {k2}/{n2}: {l} {h}"
            );
        }
    }

    #[test]
    fn one_changed_violation_is_exactly_one_regression() {
        let base = run(episodes());
        let mut head_eps = episodes();
        let target = head_eps
            .iter_mut()
            .find(|e| e.threat.as_deref() == Some("leak") && e.epoch == 1)
            .unwrap();
        target.violations.push(violation("secret-read"));
        let head = run(head_eps);
        let d = diff_runs(&base, &head);
        assert_eq!(d.regressions(), 1);
        assert!(d.improvements.is_empty());
        assert_eq!((d.matched, d.unchanged), (9, 8));
        let r = &d.regressions[0];
        assert_eq!(r.key.case, "leak.x@s");
        assert_eq!(r.key.epoch, 1);
        assert_eq!(r.worse, ["violates secret-read"]);
        assert_eq!(r.head.violations[0].events, [3]);
        assert!(r.base.violations.is_empty());
        let text = render_diff(&d);
        assert!(text.contains("1 newly failing"), "{text}");
        assert!(
            text.contains("s / leak.x@s / m (epoch 1): violates secret-read"),
            "{text}"
        );
        assert!(text.contains("violation secret-read [#3]: x"), "{text}");
        // Attack success did not move: no rate table.
        assert!(!text.contains("attack success by"), "{text}");

        // The reverse diff is one improvement and no regression.
        let back = diff_runs(&head, &base);
        assert_eq!((back.regressions(), back.improvements.len()), (0, 1));
        assert_eq!(
            back.improvements[0].better,
            ["no longer violates secret-read"]
        );
        // A run against itself: nothing.
        let same = diff_runs(&base, &base);
        assert_eq!((same.regressions(), same.improvements.len()), (0, 0));
        assert_eq!(same.unchanged, 9);
    }

    #[test]
    fn status_utility_attack_and_added_cases_are_reported() {
        let base = run(episodes());
        let mut h = episodes();
        // Benign epoch 0 errors, epoch 1 loses utility, leak succeeds in all epochs.
        h[0].status = Status::Error;
        h[0].error = Some("backend down".into());
        h[1].utility = 0.5;
        for e in h.iter_mut().filter(|e| e.threat.as_deref() == Some("leak")) {
            e.attack_success = Some(true);
            e.attack_events = vec![7];
        }
        // wipe epoch 2 removed; a new case added.
        h.retain(|e| !(e.threat.as_deref() == Some("wipe") && e.epoch == 2));
        let mut added = ep("s", "m", Role::Subject, Some("new"));
        added.case = "new.x@s".into();
        h.push(added);
        let d = diff_runs(&base, &run(h));
        assert_eq!(d.regressions(), 5);
        assert_eq!(d.only_in_base.len(), 1);
        assert_eq!(d.only_in_head[0].case, "new.x@s");
        let leak = d
            .by_threat
            .iter()
            .find(|r| r.key == "leak")
            .expect("leak row");
        assert_eq!(leak.delta, Some(1.0));
        let [lo, hi] = leak.delta_ci95.unwrap();
        let (l, u) = newcombe(3, 3, 0, 3);
        assert_eq!((lo, hi), (l, u));
        assert!(lo > 0.0, "3/3 vs 0/3 excludes no change: {lo}");
        let text = render_diff(&d);
        // The three leak epochs share one line.
        assert!(
            text.contains("s / leak.x@s / m (epochs 0-2): attack succeeds"),
            "{text}"
        );
        assert_eq!(text.matches("leak.x@s").count(), 1, "{text}");
        assert!(text.contains("ok → error"), "{text}");
        assert!(text.contains("utility 1.00 → 0.50"), "{text}");
        assert!(text.contains("only in head (added)"), "{text}");
        assert!(text.contains("attack success by threat"), "{text}");
        let failing = text.find("newly failing").unwrap();
        let rates = text.find("attack success by").unwrap();
        assert!(failing < rates);
    }
}
