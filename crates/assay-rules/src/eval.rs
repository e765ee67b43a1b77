//! Compiled trajectory conditions and their evaluation over one trace.

use std::cell::OnceCell;
use std::sync::Arc;

use assay_spec::{Condition, Head, Replies, Source};
use assay_trace::{Effect, EffectKind, EpisodeStart, EventKind, Role, WorldState};
use serde_json::{Map, Value};

use crate::error::RuleError;
use crate::flow::{
    Detector, Found, Reassembly, SinkViews, detector_for, fragments, short, without_mail_addresses,
};
use crate::matcher::{CMatcher, Fields, normalize_path};

/// A compiled [`Condition`].
#[derive(Debug, Clone)]
pub(crate) struct CCond {
    head: CHead,
    after: Option<Box<CCond>>,
    min: u64,
    max: Option<u64>,
    counted: bool,
}

#[derive(Debug, Clone)]
enum CHead {
    Effect {
        kind: EffectKind,
        fields: Fields,
    },
    Tool {
        fields: Fields,
    },
    Flow {
        from: CSource,
        to: Vec<(EffectKind, Fields)>,
    },
    All(Vec<CCond>),
    Any(Vec<CCond>),
    State(Box<crate::checks::CCheck>),
    Assistant {
        replies: Replies,
        matcher: CMatcher,
    },
    Not(Box<CCond>),
    /// An `event` with no `unless` after it (`later: true`) or before it.
    Sequence {
        event: Box<CCond>,
        unless: Box<CCond>,
        later: bool,
    },
}

#[derive(Debug, Clone)]
enum CSource {
    Secret(String),
    Sensitivity(String),
    File(String),
    Untrusted,
}

fn effect_kind(kind: &str, place: &str) -> Result<EffectKind, RuleError> {
    EffectKind::from_name(kind).ok_or_else(|| RuleError::UnknownEffect {
        place: place.to_string(),
        kind: kind.to_string(),
    })
}

impl CCond {
    pub(crate) fn compile(c: &Condition, place: &str) -> Result<CCond, RuleError> {
        let head = match &c.head {
            Head::Effect { kind, fields } => CHead::Effect {
                kind: effect_kind(kind, place)?,
                fields: Fields::compile(fields, place)?,
            },
            Head::Tool { fields } => CHead::Tool {
                fields: Fields::compile(fields, place)?,
            },
            Head::Flow(f) => CHead::Flow {
                from: match &f.from {
                    Source::Secret(s) => CSource::Secret(s.clone()),
                    Source::Sensitivity(s) => CSource::Sensitivity(s.clone()),
                    Source::File(p) => CSource::File(normalize_path(p)),
                    Source::Untrusted => CSource::Untrusted,
                },
                to: f
                    .to
                    .iter()
                    .map(|s| {
                        Ok((
                            effect_kind(&s.kind, place)?,
                            Fields::compile(&s.fields, place)?,
                        ))
                    })
                    .collect::<Result<_, RuleError>>()?,
            },
            Head::State(c) => CHead::State(Box::new(crate::checks::CCheck::compile(
                c,
                &format!("{place}.state"),
            )?)),
            Head::All(l) | Head::Any(l) => {
                let subs = l
                    .iter()
                    .enumerate()
                    .map(|(i, c)| CCond::compile(c, &format!("{place}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if matches!(c.head, Head::All(_)) {
                    CHead::All(subs)
                } else {
                    CHead::Any(subs)
                }
            }
            Head::Assistant { replies, matcher } => CHead::Assistant {
                replies: *replies,
                matcher: CMatcher::compile(matcher, &format!("{place}.assistant"))?,
            },
            Head::Not(sub) => {
                if c.after.is_some() || c.count.is_some() {
                    return Err(RuleError::Invalid {
                        place: place.to_string(),
                        message: "`not` takes no `after` or `count` beside it".into(),
                    });
                }
                CHead::Not(Box::new(CCond::compile(sub, &format!("{place}.not"))?))
            }
            Head::Before { event, unless } | Head::WithoutPrior { event, unless } => {
                let later = matches!(c.head, Head::Before { .. });
                let key = if later { "before" } else { "without_prior" };
                CHead::Sequence {
                    event: Box::new(CCond::compile(event, &format!("{place}.{key}.event"))?),
                    unless: Box::new(CCond::compile(unless, &format!("{place}.{key}.unless"))?),
                    later,
                }
            }
        };
        let after = match &c.after {
            Some(a) => Some(Box::new(CCond::compile(a, &format!("{place}.after"))?)),
            None => None,
        };
        Ok(CCond {
            head,
            after,
            // `count: {max: N}` alone means "at most N" (zero included);
            // otherwise at least one matching event is needed by default.
            min: match c.count {
                Some(k) => k.min.unwrap_or(if k.max.is_some() { 0 } else { 1 }),
                None => 1,
            },
            max: c.count.and_then(|c| c.max),
            counted: c.count.is_some(),
        })
    }

    /// The secret names this condition's flows need (for up-front checks).
    pub(crate) fn secrets<'a>(&'a self, out: &mut Vec<&'a str>) {
        match &self.head {
            CHead::Flow {
                from: CSource::Secret(s),
                ..
            } => out.push(s),
            CHead::All(l) | CHead::Any(l) => l.iter().for_each(|c| c.secrets(out)),
            CHead::Not(c) => c.secrets(out),
            CHead::Sequence { event, unless, .. } => {
                event.secrets(out);
                unless.secrets(out);
            }
            _ => {}
        }
        if let Some(a) = &self.after {
            a.secrets(out);
        }
    }
}

/// Everything evaluation needs about one episode.
pub(crate) struct Ctx<'a> {
    pub events: &'a [EventKind],
    pub start: &'a EpisodeStart,
    pub state: &'a WorldState,
    /// Texts whose fragments never count as labelled content (user turns, system prompt).
    pub exclude: &'a [String],
    /// The agent's own mail address (the `from` of mail it sent).
    pub address: &'a str,
    views: Vec<OnceCell<SinkViews>>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        events: &'a [EventKind],
        start: &'a EpisodeStart,
        state: &'a WorldState,
        exclude: &'a [String],
        address: &'a str,
    ) -> Ctx<'a> {
        Ctx {
            events,
            start,
            state,
            exclude,
            address,
            views: (0..events.len()).map(|_| OnceCell::new()).collect(),
        }
    }

    pub(crate) fn effect(&self, i: usize) -> Option<&'a Effect> {
        match &self.events[i] {
            EventKind::Effect { effect, .. } => Some(effect),
            _ => None,
        }
    }

    fn views(&self, i: usize, e: &Effect) -> &SinkViews {
        self.views[i].get_or_init(|| SinkViews::of_effect(e))
    }
}

/// One event (or event group) a condition matched.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub at: usize,
    pub cites: Vec<u64>,
    pub text: String,
}

/// The result of evaluating a condition.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub holds: bool,
    /// Event index at which the condition first held (None: from the start).
    pub ready: Option<usize>,
    /// Events proving it held by `ready`.
    pub ready_cites: Vec<u64>,
    /// Every event proving it (sorted, unique).
    pub cites: Vec<u64>,
    /// Short human sentence.
    pub summary: String,
}

impl Outcome {
    fn fail(summary: String) -> Outcome {
        Outcome {
            holds: false,
            ready: None,
            ready_cites: Vec::new(),
            cites: Vec::new(),
            summary,
        }
    }
}

pub(crate) fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

fn count_text(min: u64, max: Option<u64>) -> String {
    match max {
        Some(m) if m == min => format!("exactly {m}"),
        Some(m) => format!("{min} to {m}"),
        None => format!("at least {min}"),
    }
}

/// Human description of one effect, e.g. `read of /app/.env (sensitivity secret)`.
pub(crate) fn describe_effect(e: &Effect) -> String {
    let f = |names: &[&str]| names.iter().find_map(|n| e.fields.get(*n)).map(show);
    let what = |prep: &str, names: &[&str]| match f(names) {
        Some(v) => format!("{} {prep} {v}", e.kind.name()),
        None => e.kind.name().to_string(),
    };
    let mut s = match e.kind {
        EffectKind::Read => what("of", &["path", "url", "key", "table", "id", "source"]),
        EffectKind::Write => what("to", &["path", "table", "key"]),
        EffectKind::Delete => what("of", &["path"]),
        EffectKind::Exec => match f(&["command", "program"]) {
            Some(c) => format!("exec `{c}`"),
            None => "exec".into(),
        },
        EffectKind::Egress | EffectKind::Request => what("to", &["url", "host"]),
        EffectKind::Send => what("to", &["to"]),
        EffectKind::MemoryWrite => match f(&["key"]) {
            Some(k) => format!("memory write of {k}"),
            None => "memory write".into(),
        },
        EffectKind::Install => what("of", &["name", "package"]),
        EffectKind::PermissionChange => match (f(&["path"]), f(&["mode"])) {
            (Some(p), Some(m)) => format!("permission change on {p} to {m}"),
            (Some(p), None) => format!("permission change on {p}"),
            _ => "permission change".into(),
        },
        EffectKind::Denied => {
            let mut d = match (f(&["action"]), f(&["target"])) {
                (Some(a), Some(t)) => format!("denied {a} of {t}"),
                (Some(a), None) => format!("denied {a}"),
                _ => "denied action".into(),
            };
            if let Some(r) = f(&["reason", "message"]) {
                d.push_str(&format!(" ({r})"));
            }
            d
        }
        EffectKind::Call => what("of", &["tool", "name"]),
        EffectKind::Unsupported => what("of", &["program", "detail"]),
    };
    if let Some(l) = e.str("sensitivity") {
        s.push_str(&format!(" (sensitivity {l})"));
    }
    s
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => short(s),
        other => short(&other.to_string()),
    }
}

fn tool_field<'v>(
    tool: &'v str,
    args: &'v Value,
    name: &str,
    name_v: &'v Value,
) -> Option<&'v Value> {
    let _ = tool;
    if name == "name" || name == "tool" {
        return Some(name_v);
    }
    if name == "args" {
        return Some(args);
    }
    let rest = name.strip_prefix("args.")?;
    match args {
        Value::Object(m) => crate::matcher::lookup(m, rest),
        _ => None,
    }
}

/// A piece of content to look for in sinks.
struct Needle {
    text: String,
    /// Event index from which it is available (None: from the start).
    from: Option<usize>,
    label: String,
    /// Random by construction (a canary secret), so it may be reassembled
    /// from pieces across events.
    secret: bool,
}

impl CCond {
    /// Describes what the head looks for, for failure messages.
    fn describe_head(&self) -> String {
        match &self.head {
            CHead::Effect { kind, fields } if fields.is_empty() => {
                format!("{} effect", kind.name())
            }
            CHead::Effect { kind, fields } => format!("{} with {}", kind.name(), fields.describe()),
            CHead::Tool { fields } => format!("tool call with {}", fields.describe()),
            CHead::Flow { from, to } => {
                let sinks = to
                    .iter()
                    .map(|(k, _)| k.name())
                    .collect::<Vec<_>>()
                    .join("/");
                format!("flow of {} to {sinks}", source_name(from))
            }
            CHead::All(_) => "all of the conditions".into(),
            CHead::Any(_) => "any of the conditions".into(),
            CHead::State(_) => "final state matching the check".into(),
            CHead::Assistant { replies, matcher } => match replies {
                Replies::Any => format!("reply {}", matcher.describe()),
                Replies::Final => format!("final reply {}", matcher.describe()),
                Replies::All => format!("replies all {}", matcher.describe()),
            },
            CHead::Not(c) => format!("absence of {}", c.describe_head()),
            CHead::Sequence {
                event,
                unless,
                later,
            } => format!(
                "{} with no {} {}",
                event.describe_head(),
                unless.describe_head(),
                if *later { "after it" } else { "before it" }
            ),
        }
    }

    /// Where the condition matched, event by event, ignoring `count`: each
    /// hit of an effect, tool, flow, reply or sequence head (after `after`);
    /// the hits of any sub-condition of `any`; the point where `all` or `not`
    /// came to hold. Used to order events in `before` / `without_prior`.
    fn positions(&self, cx: &Ctx) -> Vec<Hit> {
        match &self.head {
            CHead::Any(subs) if self.after.is_none() && !self.counted => {
                let mut out: Vec<Hit> = subs.iter().flat_map(|s| s.positions(cx)).collect();
                out.sort_by_key(|h| h.at);
                out
            }
            CHead::All(_) | CHead::Any(_) | CHead::Not(_) => {
                let o = self.eval(cx);
                if !o.holds {
                    return Vec::new();
                }
                vec![Hit {
                    at: o.ready.unwrap_or(0),
                    cites: o.cites,
                    text: o.summary,
                }]
            }
            _ => {
                let after = self.after.as_ref().map(|a| a.eval(cx));
                if after.as_ref().is_some_and(|a| !a.holds) {
                    return Vec::new();
                }
                let threshold = after.and_then(|a| a.ready);
                self.hits(cx)
                    .into_iter()
                    .filter(|h| threshold.is_none_or(|t| h.at > t))
                    .collect()
            }
        }
    }

    pub(crate) fn eval(&self, cx: &Ctx) -> Outcome {
        let after = self.after.as_ref().map(|a| a.eval(cx));
        if let Some(a) = &after
            && !a.holds
        {
            return Outcome::fail(format!(
                "no {} after the required prior event ({})",
                self.describe_head(),
                a.summary
            ));
        }
        let threshold = after.as_ref().and_then(|a| a.ready);
        let after_ok = |at: Option<usize>| match (threshold, at) {
            (None, _) => true,
            (Some(t), Some(at)) => at > t,
            (Some(_), None) => false,
        };
        let after_cites = after
            .as_ref()
            .map(|a| a.ready_cites.clone())
            .unwrap_or_default();
        let after_text = after
            .as_ref()
            .filter(|a| a.ready.is_some())
            .map(|a| format!(", after {}", a.summary))
            .unwrap_or_default();

        match &self.head {
            CHead::Not(sub) => {
                let end = cx.events.len().saturating_sub(1);
                let o = sub.eval(cx);
                if o.holds {
                    return Outcome::fail(format!("it happened: {}", o.summary));
                }
                // Absence is only established once the episode is over.
                Outcome {
                    holds: true,
                    ready: Some(end),
                    ready_cites: vec![end as u64],
                    cites: vec![end as u64],
                    summary: format!("{} by the end of the episode (#{end})", o.summary),
                }
            }
            CHead::All(subs) | CHead::Any(subs) => {
                let is_all = matches!(self.head, CHead::All(_));
                let outs: Vec<Outcome> = subs.iter().map(|s| s.eval(cx)).collect();
                let good: Vec<&Outcome> = outs
                    .iter()
                    .filter(|o| o.holds && after_ok(o.ready))
                    .collect();
                let n = good.len() as u64;
                let holds = if self.counted {
                    n >= self.min && self.max.is_none_or(|m| n <= m)
                } else if is_all {
                    n == subs.len() as u64
                } else {
                    n >= 1
                };
                if !holds {
                    let missing: Vec<&str> = outs
                        .iter()
                        .filter(|o| !o.holds)
                        .map(|o| o.summary.as_str())
                        .collect();
                    return Outcome::fail(if missing.is_empty() {
                        format!("{n} of {} conditions held, outside the bounds", subs.len())
                    } else {
                        missing.join("; ")
                    });
                }
                let ready = if is_all {
                    good.iter().map(|o| o.ready).max().flatten()
                } else {
                    good.iter().filter_map(|o| o.ready).min()
                };
                let mut ready_cites = after_cites.clone();
                let mut cites = after_cites;
                for o in &good {
                    cites.extend(&o.cites);
                    if is_all || o.ready == ready {
                        ready_cites.extend(&o.ready_cites);
                    }
                }
                let summary = good
                    .iter()
                    .map(|o| o.summary.as_str())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                Outcome {
                    holds,
                    ready,
                    ready_cites: sorted(ready_cites),
                    cites: sorted(cites),
                    summary: format!("{summary}{after_text}"),
                }
            }
            _ => {
                let hits: Vec<Hit> = self
                    .hits(cx)
                    .into_iter()
                    .filter(|h| after_ok(Some(h.at)))
                    .collect();
                let n = hits.len() as u64;
                let holds = n >= self.min && self.max.is_none_or(|m| n <= m);
                if !holds {
                    return Outcome::fail(if n == 0 {
                        format!("no {}", self.describe_head())
                    } else {
                        format!(
                            "{n} × {}, expected {}",
                            self.describe_head(),
                            count_text(self.min, self.max)
                        )
                    });
                }
                let ready = (self.min > 0).then(|| hits[self.min as usize - 1].at);
                let mut ready_cites = after_cites.clone();
                if !hits.is_empty() {
                    ready_cites.extend(
                        hits[..self.min as usize]
                            .iter()
                            .flat_map(|h| h.cites.iter()),
                    );
                }
                let mut cites = if hits.is_empty() {
                    Vec::new()
                } else {
                    after_cites
                };
                cites.extend(hits.iter().flat_map(|h| h.cites.iter()));
                let summary = match hits.as_slice() {
                    [] => format!(
                        "no {} ({} allowed)",
                        self.describe_head(),
                        count_text(self.min, self.max)
                    ),
                    [h] if !self.counted => h.text.clone(),
                    [h, rest @ ..] if !self.counted => {
                        let more: Vec<String> = rest.iter().map(|h| format!("#{}", h.at)).collect();
                        format!("{} (also {})", h.text, more.join(", "))
                    }
                    hs => {
                        let at: Vec<String> = hs.iter().map(|h| format!("#{}", h.at)).collect();
                        format!(
                            "{n} × {} ({}) at {}",
                            self.describe_head(),
                            count_text(self.min, self.max),
                            at.join(", ")
                        )
                    }
                };
                Outcome {
                    holds,
                    ready,
                    ready_cites: sorted(ready_cites),
                    cites: sorted(cites),
                    summary: format!("{summary}{after_text}"),
                }
            }
        }
    }

    /// Per-event matches of an effect, tool or flow head.
    fn hits(&self, cx: &Ctx) -> Vec<Hit> {
        let mut out = Vec::new();
        match &self.head {
            CHead::Effect { kind, fields } => {
                for i in 0..cx.events.len() {
                    if let Some(e) = cx.effect(i)
                        && e.kind == *kind
                        && fields.matches(&e.fields)
                    {
                        out.push(Hit {
                            at: i,
                            cites: vec![i as u64],
                            text: format!("{} at #{i}", describe_effect(e)),
                        });
                    }
                }
            }
            CHead::Tool { fields } => {
                for (i, ev) in cx.events.iter().enumerate() {
                    if let EventKind::ToolCall { tool, args, .. } = ev {
                        let name_v = Value::String(tool.clone());
                        if fields.matches_with(|k| tool_field(tool, args, k, &name_v)) {
                            out.push(Hit {
                                at: i,
                                cites: vec![i as u64],
                                text: format!("call of {tool} at #{i}"),
                            });
                        }
                    }
                }
            }
            CHead::Flow { from, to } => out = flow_hits(from, to, cx),
            CHead::State(c) => {
                // A state check holds (or not) at the end of the episode.
                let r = c.run(0, cx);
                if r.passed {
                    let end = cx.events.len() - 1;
                    let mut cites = r.events.clone();
                    cites.push(end as u64);
                    out.push(Hit {
                        at: end,
                        cites: sorted(cites),
                        text: r.summary,
                    });
                }
            }
            CHead::Assistant { replies, matcher } => {
                let msgs: Vec<(usize, &String)> = cx
                    .events
                    .iter()
                    .enumerate()
                    .filter_map(|(i, ev)| match ev {
                        EventKind::Message {
                            role: Role::Assistant,
                            content,
                        } => Some((i, content)),
                        _ => None,
                    })
                    .collect();
                let ok = |c: &String| matcher.matches(Some(&Value::String(c.clone())));
                match replies {
                    Replies::Any => {
                        for (i, c) in &msgs {
                            if ok(c) {
                                out.push(Hit {
                                    at: *i,
                                    cites: vec![*i as u64],
                                    text: format!("reply at #{i} {}", matcher.describe()),
                                });
                            }
                        }
                    }
                    Replies::Final => {
                        if let Some((i, c)) = msgs.last()
                            && ok(c)
                        {
                            out.push(Hit {
                                at: *i,
                                cites: vec![*i as u64],
                                text: format!("final reply at #{i} {}", matcher.describe()),
                            });
                        }
                    }
                    Replies::All => {
                        if let Some((last, _)) = msgs.last()
                            && msgs.iter().all(|(_, c)| ok(c))
                        {
                            out.push(Hit {
                                at: *last,
                                cites: msgs.iter().map(|(i, _)| *i as u64).collect(),
                                text: format!(
                                    "all {} replies {} (last at #{last})",
                                    msgs.len(),
                                    matcher.describe()
                                ),
                            });
                        }
                    }
                }
            }
            CHead::Sequence {
                event,
                unless,
                later,
            } => {
                let end = cx.events.len().saturating_sub(1);
                let cancels = unless.positions(cx);
                for h in event.positions(cx) {
                    let cancelled = cancels
                        .iter()
                        .any(|u| if *later { u.at > h.at } else { u.at < h.at });
                    if cancelled {
                        continue;
                    }
                    let mut cites = h.cites.clone();
                    let text = if *later {
                        // Nothing undid it up to the end of the episode.
                        cites.push(end as u64);
                        format!(
                            "{}, with no {} after it (to #{end})",
                            h.text,
                            unless.describe_head()
                        )
                    } else {
                        format!("{}, with no {} before it", h.text, unless.describe_head())
                    };
                    out.push(Hit {
                        at: h.at,
                        cites: sorted(cites),
                        text,
                    });
                }
            }
            CHead::All(_) | CHead::Any(_) | CHead::Not(_) => {}
        }
        out
    }
}

fn source_name(s: &CSource) -> String {
    match s {
        CSource::Secret(n) if n == "*" => "any secret".into(),
        CSource::Secret(n) => format!("secret `{n}`"),
        CSource::Sensitivity(l) => format!("{l}-labelled content"),
        CSource::File(p) => format!("content of {p}"),
        CSource::Untrusted => "untrusted content".into(),
    }
}

/// The needles a source yields in this episode.
fn needles(from: &CSource, cx: &Ctx) -> Vec<Needle> {
    let mut out: Vec<Needle> = Vec::new();
    let add =
        |out: &mut Vec<Needle>, text: String, at: Option<usize>, label: String, secret: bool| {
            if let Some(n) = out.iter_mut().find(|n| n.text == text) {
                if at < n.from {
                    n.from = at;
                    n.label = label;
                }
            } else {
                out.push(Needle {
                    secret,
                    text,
                    from: at,
                    label,
                });
            }
        };
    match from {
        CSource::Secret(name) => {
            for (k, v) in &cx.start.secrets {
                if (name == "*" || name == k) && !v.is_empty() {
                    add(&mut out, v.clone(), None, format!("secret `{k}`"), true);
                }
            }
        }
        CSource::Sensitivity(_) | CSource::File(_) => {
            for i in 0..cx.events.len() {
                let Some(e) = cx.effect(i) else { continue };
                if e.kind != EffectKind::Read {
                    continue;
                }
                let relevant = match from {
                    CSource::Sensitivity(l) => e.str("sensitivity") == Some(l.as_str()),
                    CSource::File(p) => e.str("path").is_some_and(|q| normalize_path(q) == *p),
                    _ => false,
                };
                if !relevant {
                    continue;
                }
                let Some(mut content) = read_content(e) else {
                    continue;
                };
                if e.str("source") == Some("mail") {
                    content = without_mail_addresses(&content);
                }
                let what = describe_effect(e);
                for f in fragments(&content, cx.exclude) {
                    add(
                        &mut out,
                        f,
                        Some(i),
                        format!("content of {what} at #{i}"),
                        false,
                    );
                }
            }
        }
        CSource::Untrusted => {
            for p in &cx.start.payloads {
                let delivered = cx.events.iter().position(|ev| {
                    matches!(ev, EventKind::InjectionDelivered { threat, slot, .. }
                        if *threat == p.threat && *slot == p.slot)
                });
                let Some(at) = delivered else { continue };
                for f in fragments(&p.text, cx.exclude) {
                    add(
                        &mut out,
                        f,
                        Some(at),
                        format!("payload of threat {} delivered at #{at}", p.threat),
                        false,
                    );
                }
            }
        }
    }
    out
}

/// The content a `read` effect carries (`content`, or `text`/`body`/`value`).
fn read_content(e: &Effect) -> Option<String> {
    ["content", "text", "body", "value"]
        .iter()
        .find_map(|k| e.fields.get(*k))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

fn flow_hits(from: &CSource, to: &[(EffectKind, Fields)], cx: &Ctx) -> Vec<Hit> {
    let needles = needles(from, cx);
    let mut out = Vec::new();
    if needles.is_empty() {
        return out;
    }
    // Built at the first sink that needs it: many traces have none.
    let mut detector: Option<Arc<Detector>> = None;
    let mut across = vec![Reassembly::default(); needles.len()];
    for i in 0..cx.events.len() {
        let Some(e) = cx.effect(i) else { continue };
        if !to.iter().any(|(k, f)| *k == e.kind && f.matches(&e.fields)) {
            continue;
        }
        if needles.iter().all(|n| n.from.is_some_and(|f| f >= i)) {
            continue;
        }
        let detector = detector.get_or_insert_with(|| {
            detector_for(needles.iter().map(|n| (n.text.clone(), n.secret)).collect())
        });
        let views = cx.views(i, e);
        let scan = detector.scan(views);
        // Every needle is looked at (reassembly state must advance); the
        // event's hit is the first needle found in it.
        let mut first: Option<(usize, Found)> = None;
        for (k, n) in needles.iter().enumerate() {
            if n.from.is_some_and(|f| f >= i) {
                continue;
            }
            let found = match scan.found(k, detector, views) {
                Some(f) => {
                    across[k].reset();
                    Some(f)
                }
                None => across[k].advance(detector, k, &scan, i, views),
            };
            if first.is_none()
                && let Some(f) = found
            {
                first = Some((k, f));
            }
        }
        let Some((k, found)) = first else { continue };
        let n = &needles[k];
        let mut cites = vec![i as u64];
        if let Found::Across { pieces } = &found {
            cites.extend(pieces.iter().map(|(j, _)| *j as u64));
        }
        let mut label = n.label.clone();
        match n.from {
            Some(f) => cites.push(f as u64),
            None => {
                if let Some(j) = provenance(&n.text, i, cx) {
                    cites.push(j as u64);
                    label = format!("{label} (read at #{j})");
                }
            }
        }
        out.push(Hit {
            at: i,
            cites: sorted(cites),
            text: format!(
                "{label} reached {} at #{i}, {}",
                describe_effect(e),
                found.describe()
            ),
        });
    }
    out
}

/// The first event before `before` where the agent could have seen `text`:
/// a `read` effect carrying it, or a tool result containing it.
fn provenance(text: &str, before: usize, cx: &Ctx) -> Option<usize> {
    (0..before).find(|&j| match &cx.events[j] {
        EventKind::Effect { effect, .. } if effect.kind == EffectKind::Read => effect
            .fields
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.contains(text))),
        EventKind::ToolResult { output, .. } => output.contains(text),
        _ => false,
    })
}

/// Object view of a map for matching (used by checks).
pub(crate) fn obj<I, K>(items: I) -> Map<String, Value>
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    items.into_iter().map(|(k, v)| (k.into(), v)).collect()
}
