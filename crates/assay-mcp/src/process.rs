//! Child processes for the exec agents: command-name parsing, spawning in a
//! process group of their own (so a kill reaches everything the agent
//! started), bounded capture of output, and killing at the wall-clock limit.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use assay_agent::{AgentError, Env, ProcessGroup};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most bytes of stderr kept (the tail) for error messages.
pub(crate) const STDERR_TAIL: usize = 4096;

/// The spec's cap on one message or protocol line from the agent
/// (`agent.limits.message_bytes`), as a length in bytes.
pub(crate) fn message_cap(env: &dyn Env) -> usize {
    usize::try_from(env.case().spec.agent.limits.message_bytes).unwrap_or(usize::MAX)
}

/// One line read with [`read_line_bounded`].
#[derive(Debug, PartialEq)]
pub(crate) enum BoundedLine {
    /// A complete line (without its `\n`; a last line without one counts).
    Line(Vec<u8>),
    /// End of the stream, nothing pending.
    Eof,
    /// The line is longer than the bound; the rest of it was not read.
    TooLong,
}

/// Reads one `\n`-terminated line, but never more than `max` bytes of it: a
/// longer line is reported as [`BoundedLine::TooLong`] after reading at most
/// `max` bytes plus one buffer, so a hostile process cannot make this side
/// hold an arbitrarily long line in memory.
pub(crate) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<BoundedLine> {
    let mut line = Vec::new();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if line.is_empty() {
                BoundedLine::Eof
            } else {
                BoundedLine::Line(line)
            });
        }
        let (take, newline) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if line.len() + take > max {
            return Ok(BoundedLine::TooLong);
        }
        line.extend_from_slice(&avail[..take]);
        r.consume(take + usize::from(newline));
        if newline {
            return Ok(BoundedLine::Line(line));
        }
    }
}

/// The command after `exec:` / `exec-jsonl:`, with one pair of enclosing quotes
/// removed (`exec:'python3 agent.py'` survives a shell that kept the quotes).
pub(crate) fn parse_command(rest: &str) -> Result<String, AgentError> {
    let t = rest.trim();
    let t = match (t.chars().next(), t.chars().last()) {
        (Some(a @ ('\'' | '"')), Some(b)) if a == b && t.len() >= 2 => &t[1..t.len() - 1],
        _ => t,
    };
    let t = t.trim();
    if t.is_empty() {
        return Err(AgentError::Config(
            "empty command; write e.g. exec-jsonl:'python3 my_agent.py'".into(),
        ));
    }
    Ok(t.to_string())
}

/// Quotes `s` as one word for `sh`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where an agent program runs and what it finds in its environment beyond
/// the harness's own variables: an agents file's `env` and `cwd`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Setting {
    pub env: std::collections::BTreeMap<String, String>,
    pub cwd: Option<std::path::PathBuf>,
}

impl Setting {
    /// [`sh`] for `command`, in this setting.
    pub(crate) fn sh(&self, command: &str) -> Command {
        let mut c = sh(command);
        c.envs(&self.env);
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }
}

/// The wall-clock budget of the agent process: the configured one, else the
/// spec's episode budget less a margin, so the process is killed (and the
/// episode is `error`) before the runner's own timeout drops the agent.
pub(crate) fn budget(configured: Option<Duration>, env: &dyn Env) -> Duration {
    if let Some(d) = configured {
        return d;
    }
    let secs = env.case().spec.agent.limits.wall_time_secs;
    let margin = (secs * 0.05).clamp(0.1, 5.0);
    Duration::from_secs_f64((secs - margin).max(0.05))
}

/// `sh -c COMMAND` with piped stdio, in a new process group (so a kill
/// reaches everything the agent starts), killed on drop, and on Linux killed
/// by the kernel if this process dies first (`PR_SET_PDEATHSIG`).
pub(crate) fn sh(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and calls
        // only async-signal-safe functions (prctl, getppid, _exit); it
        // allocates nothing and touches no lock.
        unsafe {
            c.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                // The parent may have died between fork and prctl.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    c
}

/// A running agent process and its process group. Dropping it kills the
/// whole group (see [`ProcessGroup`]), so cancellation leaves nothing behind.
pub(crate) struct AgentProcess {
    pub(crate) child: Child,
    group: Option<ProcessGroup>,
}

/// Spawns `cmd` (built by [`sh`]) and takes charge of its process group.
pub(crate) fn spawn(mut cmd: Command, what: &str) -> Result<AgentProcess, AgentError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| AgentError::Backend(format!("cannot start {what}: {e}")))?;
    let group = child.id().and_then(ProcessGroup::adopt);
    if group.is_none() {
        // Without a group to kill, the process must not run unsupervised.
        let _ = child.start_kill();
        return Err(AgentError::Backend(format!(
            "cannot start {what}: no process group"
        )));
    }
    Ok(AgentProcess { child, group })
}

impl AgentProcess {
    /// Kills the whole process group (SIGTERM, grace, SIGKILL) and reaps the
    /// leader. Background children die with it.
    pub(crate) async fn kill(&mut self) {
        if let Some(g) = self.group.take() {
            g.kill().await;
        }
        let _ = self.child.kill().await;
    }

    /// Waits for the leader until `deadline`; kills the group past that.
    /// `Ok(status)` if it exited, `Err(())` if it was killed. The group is
    /// not killed when the leader exits in time: call [`AgentProcess::kill`].
    pub(crate) async fn wait_until(&mut self, deadline: Instant) -> Result<ExitStatus, ()> {
        match tokio::time::timeout_at(deadline, self.child.wait()).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(_)) | Err(_) => {
                self.kill().await;
                Err(())
            }
        }
    }
}

/// What a capture task kept of a stream.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// The kept bytes (head or tail), decoded lossily.
    pub(crate) text: String,
    /// Whether the stream was longer than what was kept.
    pub(crate) overflowed: bool,
}

/// Reads a stream to its end, keeping at most `max` bytes: the head when
/// `keep_tail` is false, the tail otherwise, so memory stays bounded whatever
/// the process writes. Draining matters: a child blocks when a pipe nobody
/// reads fills up.
pub(crate) fn capture<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    max: usize,
    keep_tail: bool,
) -> JoinHandle<Captured> {
    tokio::spawn(async move {
        let mut kept: Vec<u8> = Vec::new();
        let mut overflowed = false;
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > max {
                        overflowed = true;
                        if keep_tail {
                            let cut = kept.len() - max;
                            kept.drain(..cut);
                        } else {
                            kept.truncate(max);
                        }
                    }
                }
            }
        }
        Captured {
            text: String::from_utf8_lossy(&kept).into_owned(),
            overflowed,
        }
    })
}

/// Output of a capture task, or nothing if it does not finish within `grace`
/// (a grandchild may still hold the pipe).
pub(crate) async fn collect_full(h: JoinHandle<Captured>, grace: Duration) -> Captured {
    match tokio::time::timeout(grace, h).await {
        Ok(Ok(c)) => c,
        _ => Captured::default(),
    }
}

/// The kept text of a capture task (see [`collect_full`]).
pub(crate) async fn collect(h: JoinHandle<Captured>, grace: Duration) -> String {
    collect_full(h, grace).await.text
}

/// ` ; stderr: ...` for error messages, or nothing when stderr was empty.
pub(crate) fn stderr_note(stderr: &str) -> String {
    let t = stderr.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!("; stderr (tail): {t}")
    }
}

/// Describes an exit status for an error message.
pub(crate) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_lose_one_pair_of_quotes() {
        assert_eq!(parse_command("'python3 a.py'").unwrap(), "python3 a.py");
        assert_eq!(parse_command("\"x y\"").unwrap(), "x y");
        assert_eq!(parse_command(" cat ").unwrap(), "cat");
        assert_eq!(parse_command("echo 'a'").unwrap(), "echo 'a'");
        assert!(parse_command("''").is_err());
        assert!(parse_command("  ").is_err());
    }

    #[tokio::test]
    async fn lines_are_read_with_a_bound() {
        let data: &[u8] = b"short\nexactly8\nmuch longer than eight\n";
        let mut r = tokio::io::BufReader::with_capacity(4, data);
        assert_eq!(
            read_line_bounded(&mut r, 8).await.unwrap(),
            BoundedLine::Line(b"short".to_vec())
        );
        assert_eq!(
            read_line_bounded(&mut r, 8).await.unwrap(),
            BoundedLine::Line(b"exactly8".to_vec())
        );
        assert_eq!(
            read_line_bounded(&mut r, 8).await.unwrap(),
            BoundedLine::TooLong
        );
        let mut tail = tokio::io::BufReader::new(&b"last"[..]);
        assert_eq!(
            read_line_bounded(&mut tail, 8).await.unwrap(),
            BoundedLine::Line(b"last".to_vec())
        );
        assert_eq!(
            read_line_bounded(&mut tail, 8).await.unwrap(),
            BoundedLine::Eof
        );
    }

    #[tokio::test]
    async fn a_huge_line_is_refused_without_being_read_whole() {
        // An endless stream with no newline: a reader without a bound would
        // never return.
        let endless = tokio::io::repeat(b'x');
        let mut r = tokio::io::BufReader::new(endless);
        assert_eq!(
            read_line_bounded(&mut r, 1 << 20).await.unwrap(),
            BoundedLine::TooLong
        );
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
