//! Process groups of external agent processes, and the registry that lets a
//! signal handler kill all of them.
//!
//! An agent process may start background children (`sleep 1000 &`, a daemon,
//! a double fork). Killing only the process Assay started leaves them running
//! after the episode and after the run. So every agent process is started in a
//! process group of its own, the group is registered here, and it is killed
//! whole — SIGTERM, a short grace, then SIGKILL — when the episode ends in any
//! way: normally, with an error, on timeout, or when the future running it is
//! dropped (tokio cancellation), in which case [`ProcessGroup`]'s `Drop` does
//! it synchronously.
//!
//! A descendant that leaves the group on purpose (`setsid`, `setpgid`) is out
//! of reach of this mechanism; an agent that must be contained against that
//! needs an OS sandbox (container, cgroup).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a group gets between SIGTERM and SIGKILL: long enough for a
/// well-behaved program to flush and exit, short enough not to slow a run.
pub const KILL_GRACE: Duration = Duration::from_millis(250);

/// Process group ids of every live agent process, for [`kill_agent_process_groups`].
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered process group that is killed whole when it is killed
/// explicitly or dropped. Create it right after spawning the group leader
/// (spawned with `process_group(0)`, so the group id is the leader's pid).
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: i32,
    done: bool,
}

impl ProcessGroup {
    /// Takes charge of the group `pgid` (the pid of a leader spawned with
    /// `process_group(0)`) and registers it for [`kill_agent_process_groups`].
    /// Group ids that cannot name a group (0, 1, or beyond `i32`) are refused,
    /// so a kill can never reach this process's own group or every process.
    pub fn adopt(pgid: u32) -> Option<ProcessGroup> {
        let pgid = i32::try_from(pgid).ok().filter(|p| *p > 1)?;
        live().insert(pgid);
        Some(ProcessGroup { pgid, done: false })
    }

    /// The process group id.
    pub fn id(&self) -> i32 {
        self.pgid
    }

    /// Kills the group: SIGTERM, up to [`KILL_GRACE`] for it to empty, then
    /// SIGKILL to whatever is left. Waits without blocking the runtime.
    pub async fn kill(mut self) {
        if self.done {
            return;
        }
        signal(self.pgid, libc::SIGTERM);
        let until = Instant::now() + KILL_GRACE;
        while Instant::now() < until && group_alive(self.pgid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        signal(self.pgid, libc::SIGKILL);
        self.finish();
    }

    /// Like [`ProcessGroup::kill`], blocking the calling thread for at most
    /// [`KILL_GRACE`]. Used by `Drop`, where nothing can be awaited.
    pub fn kill_blocking(&mut self) {
        if self.done {
            return;
        }
        terminate_blocking(&[self.pgid]);
        self.finish();
    }

    fn finish(&mut self) {
        self.done = true;
        live().remove(&self.pgid);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill_blocking();
    }
}

/// Kills every live agent process group (SIGTERM to all, one shared grace,
/// SIGKILL to all) and returns how many groups there were. Meant for the
/// runner's SIGINT/SIGTERM handling: call it from a task or thread, not
/// from an async-signal handler (it takes a lock and sleeps).
pub fn kill_agent_process_groups() -> usize {
    let groups: Vec<i32> = live().iter().copied().collect();
    terminate_blocking(&groups);
    // The owners' `Drop` will find the groups gone; forget them now so a
    // second call does not wait for them again.
    let mut l = live();
    for g in &groups {
        l.remove(g);
    }
    groups.len()
}

/// Process group ids of the agent processes alive now (registered and not yet
/// killed), for diagnostics and tests.
pub fn live_agent_process_groups() -> Vec<i32> {
    live().iter().copied().collect()
}

fn terminate_blocking(groups: &[i32]) {
    if groups.is_empty() {
        return;
    }
    for &g in groups {
        signal(g, libc::SIGTERM);
    }
    let until = Instant::now() + KILL_GRACE;
    while Instant::now() < until && groups.iter().any(|&g| group_alive(g)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for &g in groups {
        signal(g, libc::SIGKILL);
    }
}

fn signal(pgid: i32, sig: libc::c_int) {
    debug_assert!(pgid > 1);
    // SAFETY: kill(2) with a negative pid signals the process group `pgid`
    // (always > 1, checked in `adopt`); it touches no memory of ours.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

/// Whether the group still has a member that is not a zombie. Zombies hold
/// no resources and cannot act; the leader stays one until it is reaped, and
/// orphans may stay one under an init that does not reap.
pub(crate) fn group_alive(pgid: i32) -> bool {
    match std::fs::read_dir("/proc") {
        Ok(dir) => dir.flatten().any(|e| {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                return false;
            };
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, pgrp)| pgrp == pgid && !matches!(state, 'Z' | 'X'))
        }),
        // No procfs: whether any process (zombies included) is in the group.
        // SAFETY: kill(2) with signal 0 only checks for existence.
        Err(_) => unsafe { libc::kill(-pgid, 0) == 0 },
    }
}

/// State and process group of a `/proc/PID/stat` line. The command name is
/// in parentheses and may itself contain `)` or spaces, so fields are read
/// after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        assert_eq!(parse_stat("123 (a) b) S 1 456 456 0 -1"), Some(('S', 456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn groups_that_could_reach_everything_are_refused() {
        assert!(ProcessGroup::adopt(0).is_none());
        assert!(ProcessGroup::adopt(1).is_none());
        assert!(ProcessGroup::adopt(u32::MAX).is_none());
    }

    #[test]
    fn a_dropped_group_is_killed_background_children_included() {
        use std::os::unix::process::CommandExt;
        let mut leader = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 1000 & (sleep 1000 &) ; echo started; wait")
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(leader.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let g = ProcessGroup::adopt(leader.id()).unwrap();
        let pgid = g.id();
        assert!(live_agent_process_groups().contains(&pgid));
        assert!(group_alive(pgid), "the group runs before the drop");
        drop(g);
        let _ = leader.wait();
        let until = Instant::now() + Duration::from_secs(5);
        while group_alive(pgid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!group_alive(pgid), "every member of the group is gone");
        assert!(!live_agent_process_groups().contains(&pgid));
    }
}
