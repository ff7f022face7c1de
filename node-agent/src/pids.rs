//! Engine processes by pid, for every engine the agent runs (`redis-server`,
//! `memcached`): whether one runs, when it started, its command line, the record of the
//! process the agent started for a node (pid and start time, which together name one
//! process for the life of the machine), and stopping one with signals, each wait
//! bounded.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::store::write_atomic;

/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(20);

/// Longest wait for an engine to exit after SIGTERM.
pub const TERM_WAIT: Duration = Duration::from_secs(5);

/// Whether process `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain any
    // character: look after the last ')'.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// When process `pid` started: field 22 of `/proc/PID/stat`, in clock ticks since boot.
/// With the pid, it names one process for the life of the machine: a pid reused by
/// another process has another start time.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (field 2, in parentheses, any characters): field 3
    // (state) is the first, so field 22 is the 20th.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    Some(args_of(pid)?.join(" ").trim().to_string())
}

/// The arguments of `pid` (the program first), as the process was started.
pub fn args_of(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // The command line ends with a NUL.
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    Some(args)
}

/// The pid in pid file `path`.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Records in `record` that an engine is process `pid` (with its start time).
pub fn record(record: &Path, pid: u32) -> anyhow::Result<()> {
    let start = start_time(pid).context("the engine's start time is unreadable")?;
    write_atomic(record, format!("{pid} {start}\n").as_bytes(), 0o600)
}

/// The pid and start time written by [`record`].
pub fn recorded(record: &Path) -> Option<(u32, u64)> {
    let text = fs::read_to_string(record).ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether the process recorded in `(pid, start)` still runs: same pid, same start time.
pub fn still_runs((pid, start): (u32, u64)) -> bool {
    is_running(pid) && start_time(pid) == Some(start)
}

/// SIGTERM, then SIGKILL, waiting (bounded) after each.
pub async fn terminate(pid: u32) -> anyhow::Result<()> {
    let target = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
    for (sig, wait) in [
        (Signal::SIGTERM, TERM_WAIT),
        (Signal::SIGKILL, Duration::from_secs(2)),
    ] {
        if !is_running(pid) {
            return Ok(());
        }
        let _ = kill(target, sig);
        if wait_exit(pid, wait).await {
            return Ok(());
        }
    }
    anyhow::bail!("engine pid {pid} is still running after SIGKILL")
}

/// Waits up to `limit` for `pid` to exit; true once it has.
pub async fn wait_exit(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while is_running(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_has_arguments() {
        let me = std::process::id();
        assert!(is_running(me));
        assert!(!is_running(u32::MAX - 1));
        let args = args_of(me).expect("own arguments");
        assert!(!args.is_empty());
        assert!(args.iter().all(|a| !a.contains('\0')));
        assert!(still_runs((me, start_time(me).expect("start"))));
        assert!(!still_runs((me, start_time(me).expect("start") + 1)));
    }
}
