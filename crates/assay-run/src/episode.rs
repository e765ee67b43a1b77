//! One episode: a fresh world, an agent acting through [`Env`], a trace, a verdict.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use assay_agent::{Agent, AgentRole, CaseView, Env, Stop, ToolResult, ToolSpec, Usage, UserTurn};
use assay_report::{EpisodeResult, Status};
use assay_trace::{EpisodeStart, EventKind, Role, SCHEMA_VERSION, WorldState, to_jsonl};
use assay_world::World;
use serde_json::Value;

use crate::plan::PreparedCase;

/// The events of one episode as they are recorded. Shared with the scheduler,
/// so when the agent or the world panics every event recorded before the panic
/// still reaches the trace.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<EventKind>>>);

impl Log {
    fn lock(&self) -> MutexGuard<'_, Vec<EventKind>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the events out, leaving the log empty.
    pub(crate) fn take(&self) -> Vec<EventKind> {
        std::mem::take(&mut *self.lock())
    }
}

/// Bytes a trace line adds around its event: sequence number, previous hash,
/// braces and the newline. Used to count serialised trace bytes as events are
/// recorded, without building the chain twice.
const LINE_OVERHEAD: u64 = 100;

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
    /// Episode id: one safe, bounded directory name, unique within a run
    /// (see [`crate::episode_dir_name`]).
    pub fn id(&self) -> String {
        crate::out::episode_dir_name(
            self.case.spec_id(),
            &self.case.label,
            self.agent.name(),
            self.epoch,
        )
    }
}

/// The runner's side of [`Env`]: executes calls in the world and records them.
struct Recorder {
    world: World,
    log: Log,
    /// Serialised bytes recorded so far (see [`LINE_OVERHEAD`]).
    trace_bytes: u64,
    /// The trace reached `trace_bytes`: only the closing events are recorded.
    trace_full: bool,
    /// A resource cap ended the episode: it is `error` for this reason.
    capped: Option<String>,
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
    /// Episode id ([`EpisodeJob::id`]), the key of its model requests in a recording.
    episode: String,
}

impl Recorder {
    /// Records an event and returns its sequence number. Past the trace cap,
    /// only limit, error and end events are recorded; the first event that
    /// would pass the cap is replaced by a `limit` event and ends the episode.
    fn push(&mut self, e: EventKind) -> u64 {
        let closing = matches!(
            e,
            EventKind::Limit { .. } | EventKind::Error { .. } | EventKind::EpisodeEnd { .. }
        );
        if !closing {
            if self.trace_full {
                return self.last_seq();
            }
            let size = serde_json::to_vec(&e).map_or(0, |v| v.len() as u64) + LINE_OVERHEAD;
            let cap = self.limits.trace_bytes;
            if self.trace_bytes.saturating_add(size) > cap {
                let detail = format!(
                    "the trace holds {} bytes; a {}-byte {} event would pass the {cap}-byte cap",
                    self.trace_bytes,
                    size,
                    kind_name(&e)
                );
                self.cap("trace_bytes", cap as f64, &detail);
                self.trace_full = true;
                return self.last_seq();
            }
            self.trace_bytes += size;
        }
        let mut log = self.log.lock();
        log.push(e);
        (log.len() - 1) as u64
    }

    fn last_seq(&self) -> u64 {
        self.log.lock().len().saturating_sub(1) as u64
    }

    /// A resource cap was hit: a `limit` event with the detail, and the episode
    /// ends as `error` (the first cap wins).
    fn cap(&mut self, name: &str, value: f64, detail: &str) -> Stop {
        if self.capped.is_none() {
            self.push(EventKind::Limit {
                limit: name.to_string(),
                value,
                detail: Some(detail.to_string()),
            });
            self.capped = Some(format!("{name} cap reached: {detail}"));
            self.stopped.get_or_insert_with(|| name.to_string());
        }
        Stop(format!("{name} cap reached"))
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

    fn episode_key(&self) -> String {
        self.episode.clone()
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
        if self.capped.is_some() {
            return Err(Stop("trace_bytes cap reached".into()));
        }
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
        if let Some(cap) = outcome.cap {
            return Err(self.cap(&cap.limit, cap.value, &cap.detail));
        }
        if self.capped.is_some() {
            return Err(Stop("trace_bytes cap reached".into()));
        }
        Ok(ToolResult {
            ok: outcome.ok,
            output: outcome.output,
            delivered,
        })
    }

    fn reply(&mut self, text: &str) {
        let cap = self.limits.message_bytes;
        if text.len() as u64 > cap {
            // Keep the evidence up to the cap, then end the episode.
            let mut end = usize::try_from(cap).unwrap_or(usize::MAX).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.push(EventKind::Message {
                role: Role::Assistant,
                content: text[..end].to_string(),
            });
            self.cap(
                "message_bytes",
                cap as f64,
                &format!(
                    "an assistant message of {} bytes (recorded up to the cap)",
                    text.len()
                ),
            );
            return;
        }
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

    fn record_cap(&mut self, limit: &str, value: f64, detail: &str) {
        self.cap(limit, value, detail);
    }

    fn record_usage(&mut self, u: Usage) {
        let t = self.usage.get_or_insert_with(Default::default);
        t.requests += 1;
        t.input_tokens += u.input_tokens;
        t.output_tokens += u.output_tokens;
        t.latency_ms += u.latency_ms;
        t.retries += u64::from(u.retries);
        t.cache_read_tokens += u.cache_read_tokens;
        t.cache_write_tokens += u.cache_write_tokens;
        t.truncated += u64::from(u.truncated);
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
        role: Some(
            match job.agent.role() {
                AgentRole::Control => "control",
                AgentRole::Subject => "subject",
            }
            .to_string(),
        ),
    }))
}

fn kind_name(e: &EventKind) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_else(|| "event".into())
}

/// Plays one episode, writes its trace under `out/<episode>/trace.jsonl` (when
/// `out` is given), and returns its verdict. Never fails: problems become an
/// `error` episode.
pub async fn run_episode(job: &EpisodeJob, out: Option<&Path>) -> EpisodeResult {
    play_episode(job, out, Log::default()).await.0
}

/// The episode's wall-time budget. Validation keeps `wall_time_secs` in
/// (0, 86400]; anything else (a case file edited by hand) gets no time at all
/// rather than a panic or an unbounded episode.
fn wall_budget(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs)
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(86_400))
}

/// [`run_episode`] recording into `log`, which the caller keeps in case the
/// episode panics (see [`crashed`]).
/// Returns the verdict and the trace's JSONL text.
pub(crate) async fn play_episode(
    job: &EpisodeJob,
    out: Option<&Path>,
    log: Log,
) -> (EpisodeResult, String) {
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
        log,
        trace_bytes: 0,
        trace_full: false,
        capped: None,
        tools,
        turns_played: 0,
        tool_calls: 0,
        deadline: Instant::now() + wall_budget(limits.wall_time_secs),
        limits: limits.clone(),
        stopped: None,
        case: CaseView {
            spec: prepared.spec.clone(),
            threat: prepared.threat().map(str::to_string),
        },
        pending: Vec::new(),
        usage: None,
        episode: job.id(),
        world,
    };
    // The wall-time limit also holds inside a tool call (a long shell command).
    let deadline = rec.deadline;
    rec.world.set_deadline(deadline);
    let start = start_event(job, Some(&rec.world));
    rec.push(start);
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

    let budget = wall_budget(limits.wall_time_secs);
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
    // A cap hit first is the cause; an agent error after it is its consequence.
    if let Some(cap) = rec.capped.clone() {
        error = Some(match error {
            Some(e) => format!("{cap} (then: {e})"),
            None => cap,
        });
    }
    let reason = if error.is_some() {
        "error"
    } else if rec.stopped.is_some() {
        "limit"
    } else {
        "completed"
    };
    // A full trace has no room for the world state; the episode is an error anyway.
    let state = if rec.trace_full {
        WorldState::default()
    } else {
        rec.world.snapshot()
    };
    rec.push(EventKind::EpisodeEnd {
        reason: reason.to_string(),
        state: Box::new(state),
    });
    let limit = rec.stopped.clone();
    let events = rec.log.take();
    let judged = match &job.judge {
        Some(j) if error.is_none() && !prepared.spec.judge.is_empty() => {
            crate::judge::judge_episode(
                j,
                &rec.episode,
                &prepared.spec.judge,
                rec.case.clone(),
                &events,
            )
            .await
        }
        _ => Vec::new(),
    };
    let (mut r, text) = finish(job, out, events, error, limit);
    r.usage = rec.usage;
    r.judge = judged;
    (r, text)
}

/// Scores the events, writes the trace (when `out` is given), and builds the
/// result; returns it with the trace's JSONL text.
fn finish(
    job: &EpisodeJob,
    out: Option<&Path>,
    events: Vec<EventKind>,
    mut error: Option<String>,
    limit: Option<String>,
) -> (EpisodeResult, String) {
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
        let written = std::fs::create_dir(&dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
                _ => Err(e.to_string()),
            })
            .and_then(|_| {
                crate::out::write_atomic(&dir.join("trace.jsonl"), text.as_bytes())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            error.get_or_insert(format!("cannot write trace: {e}"));
        }
    }
    let ok = error.is_none();
    let v = verdict.filter(|_| ok);
    let inconclusive = v.as_ref().is_some_and(|v| v.inconclusive());
    let status = if !ok {
        Status::Error
    } else if inconclusive {
        Status::Inconclusive
    } else {
        Status::Ok
    };
    let c = &job.case;
    let technique = c.case.provenance.technique.as_ref();
    let result = EpisodeResult {
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
        role: match job.agent.role() {
            AgentRole::Control => assay_report::Role::Control,
            AgentRole::Subject => assay_report::Role::Subject,
        },
        epoch: job.epoch,
        seed: job.seed,
        status,
        error,
        limit,
        utility: v.as_ref().map_or(0.0, |v| v.utility),
        utility_weighted: Some(v.as_ref().map_or(0.0, |v| v.utility_weighted)),
        // What the world could not model cannot be called a failed attack either.
        attack_success: v
            .as_ref()
            .and_then(|v| v.attack_success)
            .filter(|_| !inconclusive),
        unsupported: v.as_ref().map_or_else(Vec::new, |v| v.unsupported.clone()),
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
    };
    (result, text)
}

fn prepared_score(job: &EpisodeJob, events: &[EventKind]) -> Result<assay_rules::Verdict, String> {
    job.case
        .rules
        .score(job.case.threat(), events)
        .map_err(|e| e.to_string())
}

/// Result for an episode whose task died (a panic in the agent or the world):
/// every event recorded before the panic, then the error and the end. The
/// world state is not trusted after a panic, so the end records none.
pub(crate) fn crashed(
    job: &EpisodeJob,
    out: Option<&Path>,
    message: &str,
    log: &Log,
) -> (EpisodeResult, String) {
    let mut events = log.take();
    if !matches!(events.first(), Some(EventKind::EpisodeStart(_))) {
        events.insert(0, start_event(job, None));
    }
    if matches!(events.last(), Some(EventKind::EpisodeEnd { .. })) {
        events.pop();
    }
    events.push(EventKind::Error {
        source: "harness".into(),
        message: message.to_string(),
    });
    events.push(EventKind::EpisodeEnd {
        reason: "error".into(),
        state: Box::default(),
    });
    finish(job, out, events, Some(message.to_string()), None)
}
