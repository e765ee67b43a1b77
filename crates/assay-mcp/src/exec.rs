//! `exec:'COMMAND'`: an MCP-capable agent program, run once per user turn
//! against an MCP server that serves the episode's tools on 127.0.0.1.
//!
//! The program finds the server through an MCP configuration file in the
//! common `mcpServers` shape; its final stdout is its answer to the turn.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use assay_agent::{Agent, AgentError, Env};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::process::{self, STDERR_TAIL};
use crate::server::{EnvServer, HttpServer, Pumped, pump};

/// Name of the server in the generated MCP configuration.
pub const SERVER_NAME: &str = "assay";

/// Where an `exec` agent finds the task prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptMode {
    /// Written to the process's stdin, which is then closed.
    Stdin,
    /// Substituted for `{prompt}` in the command, as one shell-quoted word.
    Arg,
    /// Written to a file whose path is substituted for `{prompt_file}` (also
    /// in `ASSAY_PROMPT_FILE`).
    File,
}

impl PromptMode {
    /// The mode a command implies: `{prompt_file}` → file, `{prompt}` → argument,
    /// neither → stdin.
    pub fn implied_by(command: &str) -> PromptMode {
        if command.contains("{prompt_file}") {
            PromptMode::File
        } else if command.contains("{prompt}") {
            PromptMode::Arg
        } else {
            PromptMode::Stdin
        }
    }
}

/// An MCP-capable agent program: per user turn, one run of `sh -c COMMAND`
/// with an MCP configuration pointing at the episode's tools.
#[derive(Debug, Clone)]
pub struct ExecAgent {
    name: String,
    command: String,
    prompt: PromptMode,
    timeout: Option<Duration>,
    setting: process::Setting,
}

impl ExecAgent {
    /// An agent running `command`; the prompt mode is implied by its
    /// placeholders (see [`PromptMode::implied_by`]). Its name in results is
    /// `exec:COMMAND`.
    pub fn new(command: impl Into<String>) -> ExecAgent {
        let command = command.into();
        ExecAgent {
            name: format!("exec:{command}"),
            prompt: PromptMode::implied_by(&command),
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

    /// Overrides where the prompt goes.
    pub fn with_prompt_mode(mut self, mode: PromptMode) -> ExecAgent {
        self.prompt = mode;
        self
    }

    /// Overrides the wall-clock budget of the episode's processes (default:
    /// the spec's `agent.limits.wall_time_secs` less a small margin).
    pub fn with_timeout(mut self, timeout: Duration) -> ExecAgent {
        self.timeout = Some(timeout);
        self
    }

    /// The shell command for one turn, placeholders substituted.
    fn render(&self, prompt: &str, files: &TurnFiles, config: &str, url: &str) -> String {
        let mut c = self
            .command
            .replace("{prompt_file}", &process::shell_quote(&files.prompt))
            .replace(
                "{conversation_file}",
                &process::shell_quote(&files.conversation),
            )
            .replace("{mcp_config}", &process::shell_quote(config))
            .replace("{mcp_url}", &process::shell_quote(url));
        if self.prompt == PromptMode::Arg {
            c = c.replace("{prompt}", &process::shell_quote(prompt));
        }
        c
    }
}

/// Paths of the files written for one turn.
struct TurnFiles {
    /// The turn's prompt (what stdin or `{prompt}` also carry).
    prompt: String,
    /// The conversation so far as JSON ([`conversation_json`]).
    conversation: String,
}

/// Identifier of the conversation file's format (`format` field).
pub const CONVERSATION_FORMAT: &str = "assay-conversation/v1";

/// One message of an episode's conversation as an `exec` agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationMessage {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// The user turn's text, or the agent's recorded answer.
    pub content: String,
}

/// The prompt of a turn: the turn's text alone on the first turn; on later
/// turns a transcript of the earlier turns and replies (each block between
/// marker lines naming role and turn), then the new message. A process that
/// starts fresh on every turn needs the transcript, or a multi-turn
/// conversation cannot build up.
pub fn turn_prompt(history: &[ConversationMessage], text: &str) -> String {
    if history.is_empty() {
        return text.to_string();
    }
    let mut p = String::from(
        "[assay: this task continues a conversation. The earlier turns are quoted between the markers below; answer only the new message at the end.]\n\n",
    );
    let mut turn = 0;
    for m in history {
        if m.role == "user" {
            turn += 1;
        }
        p.push_str(&format!("=== {} (turn {turn}) ===\n", m.role));
        p.push_str(&m.content);
        p.push_str("\n\n");
    }
    p.push_str("=== end of the earlier turns ===\n\n");
    p.push_str(&format!("=== user (turn {}, new message) ===\n", turn + 1));
    p.push_str(text);
    p
}

/// The conversation file's content: every message of the episode so far, the
/// current user turn last, in the common chat `messages` shape.
pub fn conversation_json(history: &[ConversationMessage], text: &str) -> serde_json::Value {
    let mut messages: Vec<serde_json::Value> = history
        .iter()
        .map(|m| serde_json::json!({ "role": m.role, "content": m.content }))
        .collect();
    messages.push(serde_json::json!({ "role": "user", "content": text }));
    let turn = history.iter().filter(|m| m.role == "user").count() + 1;
    serde_json::json!({ "format": CONVERSATION_FORMAT, "turn": turn, "messages": messages })
}

/// The MCP configuration file's content for a server at `url`.
pub fn mcp_config(url: &str) -> serde_json::Value {
    serde_json::json!({ "mcpServers": { SERVER_NAME: { "type": "http", "url": url } } })
}

#[async_trait]
impl Agent for ExecAgent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(&self, env: &mut dyn Env) -> Result<(), AgentError> {
        let budget = process::budget(self.timeout, env);
        let deadline = Instant::now() + budget;
        let (server, mut rx) = EnvServer::new(env.tools(), env.system_prompt().to_string());
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let http = HttpServer::start(
            server,
            addr,
            process::message_cap(env),
            crate::origin::default_allowed_origins(),
        )
        .await
        .map_err(|e| AgentError::Backend(format!("cannot start the MCP server: {e}")))?;
        let result = self.turns(env, &mut rx, &http, deadline, budget).await;
        drop(rx);
        http.shutdown().await;
        result
    }
}

impl ExecAgent {
    async fn turns(
        &self,
        env: &mut dyn Env,
        rx: &mut tokio::sync::mpsc::Receiver<crate::server::ToolRequest>,
        http: &HttpServer,
        deadline: Instant,
        budget: Duration,
    ) -> Result<(), AgentError> {
        let io = |what: &str, e: std::io::Error| AgentError::Backend(format!("{what}: {e}"));
        let dir = tempfile::tempdir().map_err(|e| io("cannot create a temp dir", e))?;
        let url = http.url();
        let config = dir.path().join("mcp.json");
        let text = serde_json::to_string_pretty(&mcp_config(&url)).expect("config serialises");
        std::fs::write(&config, text).map_err(|e| io("cannot write the MCP config", e))?;
        let config = config.display().to_string();
        let mut n = 0;
        let mut history: Vec<ConversationMessage> = Vec::new();
        while let Some(user) = env.next_user_turn() {
            n += 1;
            let prompt = turn_prompt(&history, &user.text);
            let prompt_file = dir.path().join(format!("prompt-{n}.txt"));
            std::fs::write(&prompt_file, &prompt)
                .map_err(|e| io("cannot write the prompt file", e))?;
            let conversation = dir.path().join(format!("conversation-{n}.json"));
            let json = serde_json::to_string_pretty(&conversation_json(&history, &user.text))
                .expect("conversation serialises");
            std::fs::write(&conversation, json)
                .map_err(|e| io("cannot write the conversation file", e))?;
            let files = TurnFiles {
                prompt: prompt_file.display().to_string(),
                conversation: conversation.display().to_string(),
            };
            let mut cmd = self
                .setting
                .sh(&self.render(&prompt, &files, &config, &url));
            cmd.env("ASSAY_MCP_CONFIG", &config)
                .env("ASSAY_MCP_URL", &url)
                .env("ASSAY_PROMPT_FILE", &files.prompt)
                .env("ASSAY_CONVERSATION_FILE", &files.conversation)
                .env("ASSAY_TURN", n.to_string());
            let max_answer = process::message_cap(env);
            let mut child = process::spawn(cmd, "exec agent")?;
            let stdin = child.child.stdin.take();
            let stdout = child.child.stdout.take().expect("piped");
            let stdout = process::capture(stdout, max_answer, false);
            let stderr = child.child.stderr.take().expect("piped");
            let stderr = process::capture(stderr, STDERR_TAIL, true);
            let feed = (self.prompt == PromptMode::Stdin).then(|| prompt.clone());
            tokio::spawn(async move {
                if let (Some(mut stdin), Some(text)) = (stdin, feed) {
                    let _ = stdin.write_all(text.as_bytes()).await;
                }
                // Dropping stdin closes it: the agent sees end of input.
            });
            let turn = async {
                // A refused request is seen before the exit it may cause.
                tokio::select! {
                    biased;
                    () = http.oversized() => None,
                    r = child.wait_until(deadline) => Some(r),
                }
            };
            let waited = pump(env, rx, turn).await;
            let grace = Duration::from_secs(1);
            let waited = match waited {
                Pumped::Done(Some(r)) => Pumped::Done(r),
                Pumped::Stopped => Pumped::Stopped,
                Pumped::Done(None) => {
                    child.kill().await;
                    let detail = format!(
                        "an MCP request from the agent on turn {n} is longer than {} bytes",
                        http.max_body
                    );
                    env.record_cap("message_bytes", http.max_body as f64, &detail);
                    let err = process::collect(stderr, grace).await;
                    env.record_log("stderr", err.trim_end());
                    return Err(AgentError::Backend(format!(
                        "{detail} (the message_bytes limit); refused unread"
                    )));
                }
            };
            match waited {
                Pumped::Stopped => {
                    child.kill().await;
                    return Ok(());
                }
                Pumped::Done(Err(())) => {
                    let err = process::collect(stderr, grace).await;
                    env.record_log("stderr", err.trim_end());
                    return Err(AgentError::Backend(format!(
                        "agent process exceeded its wall-clock limit of {:.1}s and was killed{}",
                        budget.as_secs_f64(),
                        process::stderr_note(&err)
                    )));
                }
                Pumped::Done(Ok(status)) => {
                    // A background grandchild may hold the pipes open: kill the
                    // group once the leader is gone.
                    child.kill().await;
                    let out = process::collect_full(stdout, grace).await;
                    let err = process::collect(stderr, grace).await;
                    if !status.success() {
                        env.record_log("stderr", err.trim_end());
                        return Err(AgentError::Backend(format!(
                            "agent process ended with {} on turn {n}{}",
                            process::describe(status),
                            process::stderr_note(&err)
                        )));
                    }
                    env.record_log("stderr", err.trim_end());
                    if out.overflowed {
                        let detail = format!(
                            "the agent's answer to turn {n} is longer than {max_answer} bytes"
                        );
                        env.record_cap("message_bytes", max_answer as f64, &detail);
                        return Err(AgentError::Backend(format!(
                            "{detail} (the message_bytes limit); not read further"
                        )));
                    }
                    let answer = out.text.trim_end();
                    env.reply(answer);
                    history.push(ConversationMessage {
                        role: "user",
                        content: user.text,
                    });
                    history.push(ConversationMessage {
                        role: "assistant",
                        content: answer.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_choose_the_prompt_mode_and_are_quoted() {
        let a = ExecAgent::new("agent --prompt {prompt} --mcp {mcp_config}");
        assert_eq!(a.prompt, PromptMode::Arg);
        let files = |p: &str| TurnFiles {
            prompt: p.to_string(),
            conversation: "/conv.json".to_string(),
        };
        assert_eq!(
            a.render("it's", &files("/p"), "/c", "u"),
            r"agent --prompt 'it'\''s' --mcp '/c'"
        );
        let f = ExecAgent::new("agent -f {prompt_file} -c {conversation_file}");
        assert_eq!(f.prompt, PromptMode::File);
        assert_eq!(
            f.render("x", &files("/t/p 1"), "/c", "u"),
            "agent -f '/t/p 1' -c '/conv.json'"
        );
        assert_eq!(ExecAgent::new("agent").prompt, PromptMode::Stdin);
    }

    #[test]
    fn the_config_has_the_common_shape() {
        assert_eq!(
            mcp_config("http://127.0.0.1:1/mcp"),
            serde_json::json!({"mcpServers": {"assay": {"type": "http", "url": "http://127.0.0.1:1/mcp"}}})
        );
    }

    #[test]
    fn later_turns_carry_the_conversation_so_far() {
        assert_eq!(turn_prompt(&[], "first"), "first");
        let history = vec![
            ConversationMessage {
                role: "user",
                content: "piece one".into(),
            },
            ConversationMessage {
                role: "assistant",
                content: "waiting".into(),
            },
        ];
        let p = turn_prompt(&history, "piece two");
        let one = p.find("=== user (turn 1) ===\npiece one").expect(&p);
        let reply = p.find("=== assistant (turn 1) ===\nwaiting").expect(&p);
        let new = p
            .find("=== user (turn 2, new message) ===\npiece two")
            .expect(&p);
        assert!(one < reply && reply < new, "{p}");
        assert!(p.ends_with("piece two"));
        let j = conversation_json(&history, "piece two");
        assert_eq!(
            j,
            serde_json::json!({"format": "assay-conversation/v1", "turn": 2, "messages": [
                {"role": "user", "content": "piece one"},
                {"role": "assistant", "content": "waiting"},
                {"role": "user", "content": "piece two"},
            ]})
        );
    }
}
