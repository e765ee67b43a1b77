//! Child processes for the exec agents: command-name parsing, spawning in a
//! process group of their own (so a kill reaches everything the agent
//! started), bounded capture of output, and killing at the wall-clock limit.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use assay_agent::{AgentError, Env};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most bytes of stderr kept (the tail) for error messages.
pub(crate) const STDERR_TAIL: usize = 4096;
/// Most bytes of stdout kept from an `exec` agent (its answer).
pub(crate) const STDOUT_MAX: usize = 1 << 20;

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

/// `sh -c COMMAND` with piped stdio, in a new process group, killed on drop.
pub(crate) fn sh(command: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    c
}

/// Spawns `cmd`, mapping failure to a backend error.
pub(crate) fn spawn(mut cmd: Command, what: &str) -> Result<Child, AgentError> {
    cmd.spawn()
        .map_err(|e| AgentError::Backend(format!("cannot start {what}: {e}")))
}

/// Kills the child's whole process group and reaps the child.
pub(crate) async fn kill(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a negative pid signals the process group the
        // child leads (it was spawned with `process_group(0)`); no memory is
        // touched.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

/// Waits for the child until `deadline`; kills it (and its group) past that.
/// `Ok(status)` if it exited, `Err(())` if it was killed.
pub(crate) async fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, ()> {
    match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(_)) | Err(_) => {
            kill(child).await;
            Err(())
        }
    }
}

/// Reads a stream to its end, keeping at most `max` bytes: the head when
/// `keep_tail` is false, the tail otherwise. Draining matters: a child blocks
/// when a pipe nobody reads fills up.
pub(crate) fn capture<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    max: usize,
    keep_tail: bool,
) -> JoinHandle<String> {
    tokio::spawn(async move {
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > max {
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
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// Output of a capture task, or empty if it does not finish within `grace`
/// (a grandchild may still hold the pipe).
pub(crate) async fn collect(h: JoinHandle<String>, grace: Duration) -> String {
    match tokio::time::timeout(grace, h).await {
        Ok(Ok(s)) => s,
        _ => String::new(),
    }
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

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
