//! One episode: a fresh world, an agent acting through [`Env`], a trace, a verdict.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assay_agent::{Agent, CaseView, Env, Stop, ToolResult, ToolSpec, Usage, UserTurn};
use assay_report::{EpisodeResult, Status};
use assay_trace::{EpisodeStart, EventKind, Role, SCHEMA_VERSION, to_jsonl};
use assay_world::World;
use serde_json::Value;

use crate::plan::PreparedCase;

/// Everything needed to play one episode.
#[derive(Clone)]
pub struct EpisodeJob {
    /// The compiled case.
    pub case: Arc<PreparedCase>,
    /// The agent.
    pub agent: Arc<dyn Agent>,
    /// Repetition index.
    pub epoch: u32,
    /// Episode seed.
    pub seed: u64,
    /// The judge, when the run asks for one.
    pub judge: Option<Arc<crate::JudgeConfig>>,
}

impl EpisodeJob {
    /// Episode id: safe as a directory name, unique within a run.
    pub fn id(&self) -> String {
        let agent: String = self
            .agent
            .name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!(
            "{}--{}--{}--{}",
            self.case.spec_id(),
            self.case.label,
            agent,
            self.epoch
        )
    }
}

/// The runner's side of [`Env`]: executes calls in the world and records them.
struct Recorder {
    world: World,
    events: Vec<EventKind>,
    tools: Vec<ToolSpec>,
    system: String,
    turns: std::vec::IntoIter<String>,
    turns_played: u32,
    tool_calls: u32,
    limits: assay_spec::Limits,
    deadline: Instant,
    stopped: Option<String>,
    case: CaseView,
    /// Deliveries through tool descriptions, handed to the agent with the first turn.
    pending: Vec<String>,
    /// Model usage summed over the episode (None until an adapter reports any).
    usage: Option<assay_report::UsageTotals>,
}

impl Recorder {
    fn push(&mut self, e: EventKind) -> u64 {
        self.events.push(e);
        (self.events.len() - 1) as u64
    }

    fn limit(&mut self, name: &str, value: f64) -> Stop {
        if self.stopped.is_none() {
            self.push(EventKind::Limit {
                limit: name.to_string(),
                value,
                detail: None,
            });
            self.stopped = Some(name.to_string());
        }
        Stop(format!("{name} limit reached"))
    }

    fn deliveries(&mut self, at: u64, text: &str) -> Vec<String> {
        let mut threats = Vec::new();
        for d in self.world.deliveries_in(text) {
            self.push(EventKind::InjectionDelivered {
                call: at,
                threat: d.threat.clone(),
                slot: d.slot,
            });
            threats.push(d.threat);
        }
        threats
    }
}

impl Env for Recorder {
    fn system_prompt(&self) -> &str {
        &self.system
    }

    fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    fn next_user_turn(&mut self) -> Option<UserTurn> {
        if self.stopped.is_some() {
            return None;
        }
        let text = self.turns.next()?;
        if self.turns_played >= self.limits.turns {
            self.limit("turns", f64::from(self.limits.turns));
            return None;
        }
        self.turns_played += 1;
        let at = self.push(EventKind::Message {
            role: Role::User,
            content: text.clone(),
        });
        let mut delivered = std::mem::take(&mut self.pending);
        delivered.extend(self.deliveries(at, &text));
        Some(UserTurn { text, delivered })
    }

    fn call_tool(
        &mut self,
        call_id: Option<String>,
        name: &str,
        args: Value,
    ) -> Result<ToolResult, Stop> {
        if let Some(s) = &self.stopped {
            return Err(Stop(format!("{s} limit reached")));
        }
        if Instant::now() > self.deadline {
            return Err(self.limit("wall_time", self.limits.wall_time_secs));
        }
        if self.tool_calls >= self.limits.tool_calls {
            return Err(self.limit("tool_calls", f64::from(self.limits.tool_calls)));
        }
        self.tool_calls += 1;
        let at = self.push(EventKind::ToolCall {
            call_id,
            tool: name.to_string(),
            args: args.clone(),
        });
        let outcome = self.world.call(name, &args);
        for effect in outcome.effects {
            self.push(EventKind::Effect { call: at, effect });
        }
        let mut delivered = Vec::new();
        for d in outcome.deliveries {
            self.push(EventKind::InjectionDelivered {
                call: at,
                threat: d.threat.clone(),
                slot: d.slot,
            });
            delivered.push(d.threat);
        }
        self.push(EventKind::ToolResult {
            call: at,
            ok: outcome.ok,
            output: outcome.output.clone(),
        });
        Ok(ToolResult {
            ok: outcome.ok,
            output: outcome.output,
            delivered,
        })
    }

    fn reply(&mut self, text: &str) {
        self.push(EventKind::Message {
            role: Role::Assistant,
            content: text.to_string(),
        });
    }

    fn case(&self) -> &CaseView {
        &self.case
    }

    fn record_log(&mut self, stream: &str, text: &str) {
        if !text.is_empty() {
            self.push(EventKind::Log {
                stream: stream.to_string(),
                text: text.to_string(),
            });
        }
    }

    fn record_usage(&mut self, u: Usage) {
        let t = self.usage.get_or_insert_with(Default::default);
        t.requests += 1;
        t.input_tokens += u.input_tokens;
        t.output_tokens += u.output_tokens;
        t.latency_ms += u.latency_ms;
        t.retries += u64::from(u.retries);
    }
}

fn start_event(job: &EpisodeJob, world: Option<&World>) -> EventKind {
    let c = &job.case;
    EventKind::EpisodeStart(Box::new(EpisodeStart {
        schema_version: SCHEMA_VERSION.to_string(),
        episode: job.id(),
        spec: c.spec_id().to_string(),
        spec_hash: c.case.provenance.spec_hash.clone(),
        case: c.case.id.clone(),
        agent: job.agent.name().to_string(),
        epoch: job.epoch,
        seed: job.seed,
        threat: c.threat().map(str::to_string),
        secrets: world.map(|w| w.secrets().clone()).unwrap_or_default(),
        payloads: c.payloads.clone(),
        case_doc: Some(c.doc.clone()),
    }))
}

/// Plays one episode, writes its trace under `out/<episode>/trace.jsonl` (when
/// `out` is given), and returns its verdict. Never fails: problems become an
/// `error` episode.
pub async fn run_episode(job: &EpisodeJob, out: Option<&Path>) -> EpisodeResult {
    let prepared = &job.case;
    let world = prepared.world.instantiate(&prepared.payloads, job.seed);
    let limits = prepared.spec.agent.limits.clone();
    let tools = world
        .tools()
        .iter()
        .map(|t| ToolSpec {
            name: t.name.clone(),
            description: t.description.clone(),
            parameters: t.parameters.clone(),
        })
        .collect::<Vec<_>>();
    let mut rec = Recorder {
        system: world.system_prompt(),
        turns: world.user_turns().into_iter(),
        events: Vec::with_capacity(64),
        tools,
        turns_played: 0,
        tool_calls: 0,
        deadline: Instant::now() + Duration::from_secs_f64(limits.wall_time_secs),
        limits: limits.clone(),
        stopped: None,
        case: CaseView {
            spec: prepared.spec.clone(),
            threat: prepared.threat().map(str::to_string),
        },
        pending: Vec::new(),
        usage: None,
        world,
    };
    rec.events.push(start_event(job, Some(&rec.world)));
    let sys = rec.system.clone();
    let at = rec.push(EventKind::Message {
        role: Role::System,
        content: sys,
    });
    let descriptions: String = rec
        .tools
        .iter()
        .map(|t| t.description.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    rec.pending = rec.deliveries(at, &descriptions);

    let budget = Duration::from_secs_f64(limits.wall_time_secs);
    let mut error = None;
    match tokio::time::timeout(budget, job.agent.run(&mut rec)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            rec.push(EventKind::Error {
                source: "agent".into(),
                message: e.to_string(),
            });
            error = Some(e.to_string());
        }
        Err(_) => {
            rec.limit("wall_time", limits.wall_time_secs);
        }
    }
    let reason = if error.is_some() {
        "error"
    } else if rec.stopped.is_some() {
        "limit"
    } else {
        "completed"
    };
    let state = rec.world.snapshot();
    rec.push(EventKind::EpisodeEnd {
        reason: reason.to_string(),
        state: Box::new(state),
    });
    let limit = rec.stopped.clone();
    let judged = match &job.judge {
        Some(j) if error.is_none() && !prepared.spec.judge.is_empty() => {
            crate::judge::judge_episode(j, &prepared.spec.judge, rec.case.clone(), &rec.events)
                .await
        }
        _ => Vec::new(),
    };
    let mut r = finish(job, out, rec.events, error, limit);
    r.usage = rec.usage;
    r.judge = judged;
    r
}

/// Scores the events, writes the trace, and builds the result.
fn finish(
    job: &EpisodeJob,
    out: Option<&Path>,
    events: Vec<EventKind>,
    mut error: Option<String>,
    limit: Option<String>,
) -> EpisodeResult {
    let id = job.id();
    let verdict = match prepared_score(job, &events) {
        Ok(v) => Some(v),
        Err(e) => {
            error.get_or_insert(format!("grading failed: {e}"));
            None
        }
    };
    let mut delivered: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            EventKind::InjectionDelivered { slot, .. } => Some(slot.clone()),
            _ => None,
        })
        .collect();
    delivered.sort();
    delivered.dedup();
    let (text, head) = to_jsonl(&events);
    if let Some(out) = out {
        let dir = out.join(&id);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join("trace.jsonl"), &text));
        if let Err(e) = written {
            error.get_or_insert(format!("cannot write trace: {e}"));
        }
    }
    let ok = error.is_none();
    let v = verdict.filter(|_| ok);
    let c = &job.case;
    let technique = c.case.provenance.technique.as_ref();
    EpisodeResult {
        episode: id.clone(),
        spec: c.spec_id().to_string(),
        case: c.label.clone(),
        case_id: c.case.id.clone(),
        threat: c.threat().map(str::to_string),
        technique: technique.map(|t| t.id.clone()),
        axis: technique.map(|t| t.axis.clone()),
        slots: c
            .case
            .provenance
            .slots
            .iter()
            .map(|s| s.name.clone())
            .collect(),
        slot_kinds: c.slot_kinds.clone(),
        delivered,
        agent: job.agent.name().to_string(),
        epoch: job.epoch,
        seed: job.seed,
        status: if ok { Status::Ok } else { Status::Error },
        error,
        limit,
        utility: v.as_ref().map_or(0.0, |v| v.utility),
        attack_success: v.as_ref().and_then(|v| v.attack_success),
        attack_events: v
            .as_ref()
            .map_or_else(Vec::new, |v| v.attack_events.clone()),
        violations: v.as_ref().map_or_else(Vec::new, |v| v.violations.clone()),
        checks: v.as_ref().map_or_else(Vec::new, |v| v.checks.clone()),
        usage: None,
        judge: Vec::new(),
        trace: format!("{id}/trace.jsonl"),
        trace_head: head,
        events: events.len(),
    }
}

fn prepared_score(job: &EpisodeJob, events: &[EventKind]) -> Result<assay_rules::Verdict, String> {
    job.case
        .rules
        .score(job.case.threat(), events)
        .map_err(|e| e.to_string())
}

/// Result for an episode whose task died (panic): a minimal trace recording the error.
pub(crate) fn crashed(job: &EpisodeJob, out: Option<&Path>, message: &str) -> EpisodeResult {
    let events = vec![
        start_event(job, None),
        EventKind::Error {
            source: "harness".into(),
            message: message.to_string(),
        },
    ];
    finish(job, out, events, Some(message.to_string()), None)
}
