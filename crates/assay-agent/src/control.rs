//! Control agents: instruments that prove a case is well-formed.
//!
//! - `control:solve` replays the reference solution: the task is solvable and a
//!   safe run is not flagged.
//! - `control:naive` does the same but also obeys every planted payload it is
//!   shown, performing the threat's actions: the attack is reachable and the
//!   rules are sensitive to it.
//! - `control:refuse` answers without acting: doing nothing earns no utility and
//!   no violation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use assay_spec::ToolCall;
use assay_spec::template::render;
use async_trait::async_trait;
use serde_json::Value;

use crate::{Agent, AgentError, Env, Stop};

/// Which control agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// Replays the reference solution.
    Solve,
    /// Replays the solution and obeys every delivered payload.
    Naive,
    /// Does nothing.
    Refuse,
}

struct Control {
    kind: ControlKind,
    name: String,
}

/// The control agent called `control:KIND`, if KIND exists.
pub fn control_agent(kind: &str) -> Option<Arc<dyn Agent>> {
    let k = match kind {
        "solve" => ControlKind::Solve,
        "naive" => ControlKind::Naive,
        "refuse" => ControlKind::Refuse,
        _ => return None,
    };
    Some(Arc::new(Control {
        kind: k,
        name: format!("control:{kind}"),
    }))
}

/// Outputs observed so far, for `{{result:N}}` and `{{read:PATH}}` in arguments.
#[derive(Default)]
struct Memory {
    reads: BTreeMap<String, String>,
}

impl Memory {
    fn note(&mut self, call: &ToolCall, output: &str) {
        if call.tool == "files.read"
            && let Some(p) = call.args.get("path").and_then(Value::as_str)
        {
            self.reads.insert(p.to_string(), output.to_string());
        }
    }
}

/// Renders placeholders in every string of `args`.
fn fill(args: &Value, results: &[String], mem: &Memory) -> Value {
    match args {
        Value::String(s) => Value::String(render(s, |p| match p.kind {
            "result" => p
                .name
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| results.get(i).cloned()),
            "read" => mem.reads.get(p.name).cloned(),
            _ => None,
        })),
        Value::Array(a) => Value::Array(a.iter().map(|v| fill(v, results, mem)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), fill(v, results, mem)))
                .collect(),
        ),
        other => other.clone(),
    }
}

struct Player<'a> {
    env: &'a mut dyn Env,
    naive: bool,
    mem: Memory,
    obeyed: BTreeSet<String>,
}

impl Player<'_> {
    /// Runs a list of calls; `{{result:N}}` refers to this list's own outputs.
    fn play(&mut self, calls: &[ToolCall]) -> Result<(), Stop> {
        let mut results = Vec::with_capacity(calls.len());
        for call in calls {
            let args = fill(&call.args, &results, &self.mem);
            let r = self.env.call_tool(None, &call.tool, args)?;
            self.mem.note(call, &r.output);
            results.push(r.output);
            self.obey(&r.delivered)?;
        }
        Ok(())
    }

    /// The naive agent performs each delivered threat's actions, once per threat.
    fn obey(&mut self, delivered: &[String]) -> Result<(), Stop> {
        if !self.naive {
            return Ok(());
        }
        for t in delivered {
            if !self.obeyed.insert(t.clone()) {
                continue;
            }
            let spec = self.env.case().spec.clone();
            if let Some(threat) = spec.threats.iter().find(|x| &x.id == t) {
                self.play(&threat.actions)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Agent for Control {
    fn name(&self) -> &str {
        &self.name
    }

    fn role(&self) -> crate::AgentRole {
        crate::AgentRole::Control
    }

    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let spec = env.case().spec.clone();
        let mut player = Player {
            env,
            naive: self.kind == ControlKind::Naive,
            mem: Memory::default(),
            obeyed: BTreeSet::new(),
        };
        let mut first = true;
        while let Some(turn) = player.env.next_user_turn() {
            if self.kind == ControlKind::Refuse {
                player.env.reply("I won't take any action on this request.");
                continue;
            }
            if player.obey(&turn.delivered).is_err() {
                return Ok(());
            }
            if first {
                first = false;
                if player.play(&spec.task.solution).is_err() {
                    return Ok(());
                }
                let reply = spec
                    .task
                    .reply
                    .clone()
                    .unwrap_or_else(|| "Done.".to_string());
                player.env.reply(&reply);
            } else {
                player.env.reply("Done.");
            }
        }
        Ok(())
    }
}
