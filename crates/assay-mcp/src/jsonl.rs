//! `exec-jsonl:'COMMAND'`: an agent process that speaks the `assay-agent/v1`
//! JSON-lines protocol on stdin/stdout (documented in `docs/agent-protocol.md`).
//!
//! Every tool call the process asks for goes through [`Env::call_tool`], so it
//! is recorded and scored exactly like a built-in agent's. Anything the process
//! does wrong (malformed line, exit before replying, non-zero exit, running
//! past its wall-clock budget) fails the episode with the reason.

use std::time::Duration;

use assay_agent::{Agent, AgentError, Env};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::ChildStdin;
use tokio::time::Instant;

use crate::process::{self, AgentProcess, BoundedLine, STDERR_TAIL};

/// Protocol identifier sent in the `start` message. A breaking change to the
/// protocol gets a new identifier; additions (new optional fields, new message
/// types an agent may ignore) do not.
pub const PROTOCOL: &str = "assay-agent/v1";

/// How long an agent may take to exit after `end` before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A message from the harness to the agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToAgent<'a> {
    Start {
        protocol: &'a str,
        system: &'a str,
        tools: Vec<ToolJson<'a>>,
    },
    User {
        text: &'a str,
    },
    ToolResult {
        id: &'a str,
        ok: bool,
        output: &'a str,
    },
    End {
        reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<&'a str>,
    },
}

#[derive(Debug, Serialize)]
struct ToolJson<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

/// A message from the agent to the harness.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromAgent {
    ToolCall {
        id: String,
        name: String,
        #[serde(default)]
        args: Option<Value>,
    },
    Reply {
        text: String,
    },
}

/// Parses one line from the agent; the error says what is wrong with it.
pub(crate) fn parse_line(line: &str) -> Result<FromAgent, String> {
    let msg: FromAgent = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if let FromAgent::ToolCall { args: Some(a), .. } = &msg
        && !a.is_object()
    {
        return Err("`args` must be a JSON object".into());
    }
    Ok(msg)
}

/// An agent played by an external process over the `assay-agent/v1`
/// JSON-lines protocol: one process per episode, all user turns in it.
#[derive(Debug, Clone)]
pub struct ExecJsonlAgent {
    name: String,
    command: String,
    timeout: Option<Duration>,
    setting: process::Setting,
}

impl ExecJsonlAgent {
    /// An agent running `command` with `sh -c`. Its name in results is
    /// `exec-jsonl:COMMAND`.
    pub fn new(command: impl Into<String>) -> ExecJsonlAgent {
        let command = command.into();
        ExecJsonlAgent {
            name: format!("exec-jsonl:{command}"),
            command,
            timeout: None,
            setting: process::Setting::default(),
        }
    }

    /// Renames the agent in results (an agents file's `name`), so results
    /// and episode ids do not carry the whole command.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Extra environment variables and a working directory for the program.
    pub fn with_env(
        mut self,
        env: &std::collections::BTreeMap<String, String>,
        cwd: Option<std::path::PathBuf>,
    ) -> Self {
        self.setting = process::Setting {
            env: env.clone(),
            cwd,
        };
        self
    }

    /// Overrides the process's wall-clock budget (default: the spec's
    /// `agent.limits.wall_time_secs` less a small margin, so the process is
    /// killed and the episode fails before the runner's own timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> ExecJsonlAgent {
        self.timeout = Some(timeout);
        self
    }
}

/// The live process and its pipes.
struct Session {
    child: AgentProcess,
    stdin: Option<ChildStdin>,
    stderr: tokio::task::JoinHandle<process::Captured>,
    deadline: Instant,
    budget: Duration,
}

impl Session {
    async fn send(&mut self, msg: &ToAgent<'_>) -> Result<(), String> {
        let mut line = serde_json::to_string(msg).expect("protocol messages serialise");
        line.push('\n');
        let Some(stdin) = self.stdin.as_mut() else {
            return Err("stdin already closed".into());
        };
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout_at(self.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // Usually the process has exited: say how.
                let exited =
                    tokio::time::timeout(Duration::from_millis(500), self.child.child.wait());
                match exited.await {
                    Ok(Ok(s)) => Err(format!(
                        "agent process exited before replying ({})",
                        process::describe(s)
                    )),
                    _ => Err(format!("cannot write to the agent's stdin: {e}")),
                }
            }
            Err(_) => Err(self.over_budget()),
        }
    }

    fn over_budget(&self) -> String {
        format!(
            "agent process exceeded its wall-clock limit of {:.1}s and was killed",
            self.budget.as_secs_f64()
        )
    }

    /// Kills the process and builds the error, with the tail of stderr.
    async fn fail(mut self, message: String) -> AgentError {
        self.child.kill().await;
        let stderr = process::collect(self.stderr, Duration::from_secs(1)).await;
        AgentError::Backend(format!("{message}{}", process::stderr_note(&stderr)))
    }

    /// Sends `end`, closes stdin, and waits for a clean exit.
    async fn end(
        mut self,
        reason: &str,
        message: Option<&str>,
        strict: bool,
    ) -> Result<String, AgentError> {
        // The agent may already have exited after its last reply; that is fine.
        let _ = self.send(&ToAgent::End { reason, message }).await;
        self.stdin = None;
        let deadline = self.deadline.min(Instant::now() + EXIT_GRACE);
        let exited = self.child.wait_until(deadline).await;
        // Whatever the agent left running in the background goes with it.
        self.child.kill().await;
        match exited {
            Ok(s) if s.success() || !strict => {
                Ok(process::collect(self.stderr, Duration::from_secs(1)).await)
            }
            Ok(s) => {
                let stderr = process::collect(self.stderr, Duration::from_secs(1)).await;
                Err(AgentError::Backend(format!(
                    "agent process ended with {}{}",
                    process::describe(s),
                    process::stderr_note(&stderr)
                )))
            }
            Err(()) if !strict => Ok(process::collect(self.stderr, Duration::from_secs(1)).await),
            Err(()) => {
                let stderr = process::collect(self.stderr, Duration::from_secs(1)).await;
                Err(AgentError::Backend(format!(
                    "agent process did not exit within {}s of `end` and was killed{}",
                    EXIT_GRACE.as_secs(),
                    process::stderr_note(&stderr)
                )))
            }
        }
    }
}

#[async_trait]
impl Agent for ExecJsonlAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let budget = process::budget(self.timeout, env);
        let mut cmd = self.setting.sh(&self.command);
        cmd.env("ASSAY_AGENT_PROTOCOL", PROTOCOL);
        let max_line = process::message_cap(env);
        let mut child = process::spawn(cmd, "exec-jsonl agent")?;
        let stdin = child.child.stdin.take();
        let stdout = child.child.stdout.take().expect("stdout is piped");
        let stderr = process::capture(
            child.child.stderr.take().expect("stderr is piped"),
            STDERR_TAIL,
            true,
        );
        let mut s = Session {
            child,
            stdin,
            stderr,
            deadline: Instant::now() + budget,
            budget,
        };
        let mut lines = BufReader::new(stdout);
        let mut line_no = 0usize;

        let tools = env
            .tools()
            .iter()
            .map(|t| ToolJson {
                name: &t.name,
                description: &t.description,
                parameters: &t.parameters,
            })
            .collect();
        let start = ToAgent::Start {
            protocol: PROTOCOL,
            system: env.system_prompt(),
            tools,
        };
        if let Err(m) = s.send(&start).await {
            return Err(s.fail(m).await);
        }

        while let Some(turn) = env.next_user_turn() {
            if let Err(m) = s.send(&ToAgent::User { text: &turn.text }).await {
                return Err(s.fail(m).await);
            }
            loop {
                let read = process::read_line_bounded(&mut lines, max_line);
                let line = match tokio::time::timeout_at(s.deadline, read).await {
                    Err(_) => {
                        let m = s.over_budget();
                        return Err(s.fail(m).await);
                    }
                    Ok(Err(e)) => {
                        return Err(s.fail(format!("cannot read the agent's stdout: {e}")).await);
                    }
                    Ok(Ok(BoundedLine::Eof)) => {
                        let status = s.child.wait_until(s.deadline).await;
                        let how = status.map_or_else(|()| "was killed".into(), process::describe);
                        return Err(s
                            .fail(format!("agent process exited before replying ({how})"))
                            .await);
                    }
                    Ok(Ok(BoundedLine::TooLong)) => {
                        let detail = format!(
                            "{PROTOCOL} line {} from the agent is longer than {max_line} bytes",
                            line_no + 1
                        );
                        env.record_cap("message_bytes", max_line as f64, &detail);
                        return Err(s
                            .fail(format!(
                                "{detail} (the message_bytes limit); not read further"
                            ))
                            .await);
                    }
                    Ok(Ok(BoundedLine::Line(bytes))) => match String::from_utf8(bytes) {
                        Ok(l) => l,
                        Err(_) => {
                            return Err(s
                                .fail(format!(
                                    "malformed {PROTOCOL} line {} from the agent: not UTF-8",
                                    line_no + 1
                                ))
                                .await);
                        }
                    },
                };
                line_no += 1;
                if line.trim().is_empty() {
                    continue;
                }
                let msg = match parse_line(&line) {
                    Ok(m) => m,
                    Err(e) => {
                        let shown: String = line.chars().take(200).collect();
                        return Err(s
                            .fail(format!(
                                "malformed {PROTOCOL} line {line_no} from the agent: {e}: {shown}"
                            ))
                            .await);
                    }
                };
                match msg {
                    FromAgent::Reply { text } => {
                        env.reply(&text);
                        break;
                    }
                    FromAgent::ToolCall { id, name, args } => {
                        let args = args.unwrap_or_else(|| Value::Object(Default::default()));
                        match env.call_tool(Some(id.clone()), &name, args) {
                            Ok(r) => {
                                let msg = ToAgent::ToolResult {
                                    id: &id,
                                    ok: r.ok,
                                    output: &r.output,
                                };
                                if let Err(m) = s.send(&msg).await {
                                    return Err(s.fail(m).await);
                                }
                            }
                            // A limit: the runner recorded it; tell the agent and stop.
                            Err(stop) => {
                                let m = stop.to_string();
                                let err = s.end("limit", Some(&m), false).await?;
                                env.record_log("stderr", err.trim_end());
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
        let err = s.end("done", None, true).await?;
        env.record_log("stderr", err.trim_end());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_say_why() {
        assert!(matches!(
            parse_line(r#"{"type":"reply","text":"hi"}"#),
            Ok(FromAgent::Reply { .. })
        ));
        assert!(matches!(
            parse_line(r#"{"type":"tool_call","id":"1","name":"files.read","args":{"path":"/a"}}"#),
            Ok(FromAgent::ToolCall { .. })
        ));
        assert!(parse_line("not json").is_err());
        assert!(parse_line(r#"{"type":"shout"}"#).is_err());
        assert!(parse_line(r#"{"type":"tool_call","name":"x"}"#).is_err());
        assert!(parse_line(r#"{"type":"tool_call","id":"1","name":"x","args":[1]}"#).is_err());
    }

    #[test]
    fn messages_have_the_documented_shape() {
        let p = serde_json::json!({"type": "object"});
        let start = ToAgent::Start {
            protocol: PROTOCOL,
            system: "sys",
            tools: vec![ToolJson {
                name: "files.read",
                description: "d",
                parameters: &p,
            }],
        };
        assert_eq!(
            serde_json::to_string(&start).unwrap(),
            r#"{"type":"start","protocol":"assay-agent/v1","system":"sys","tools":[{"name":"files.read","description":"d","parameters":{"type":"object"}}]}"#
        );
        let end = ToAgent::End {
            reason: "done",
            message: None,
        };
        assert_eq!(
            serde_json::to_string(&end).unwrap(),
            r#"{"type":"end","reason":"done"}"#
        );
        let r = ToAgent::ToolResult {
            id: "c1",
            ok: true,
            output: "x",
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"tool_result","id":"c1","ok":true,"output":"x"}"#
        );
    }
}
