//! The background processes of the local stack: pid files, telling our process from a
//! reused pid (its command line), starting one detached from `cachectl`, and stopping
//! one.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::say;
use crate::error::Result;

/// How long a process has to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The pid in `file`, if it holds one.
pub fn read_pid(file: &Path) -> Option<i32> {
    fs::read_to_string(file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Whether `pid` runs: it exists and is not a zombie waiting to be reaped (a process
/// `cachectl` started and that died is one until `cachectl` exits).
pub fn running(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any
        // character: look after the last ')'.
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        // No /proc: the signal check is all there is.
        Err(_) => !Path::new("/proc/self").exists(),
    }
}

/// The arguments `pid` runs with (empty when unknown).
pub fn argv(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `args` holds `flag` followed by `value`.
pub fn has_flag(args: &[String], flag: &str, value: &str) -> bool {
    args.windows(2).any(|w| w[0] == flag && w[1] == value)
}

/// The pid in `file` if that process runs and `is_ours` accepts its arguments, so that
/// a pid reused by another program is never taken for ours.
pub fn live_pid(file: &Path, is_ours: impl Fn(&[String]) -> bool) -> Option<i32> {
    let pid = read_pid(file)?;
    (running(pid) && is_ours(&argv(pid))).then_some(pid)
}

/// Starts `bin ARGS` in the background with `envs` added to its environment: in a
/// process group of its own (a Ctrl-C for `cachectl` does not reach it), standard input
/// from /dev/null, output appended to `log`. It outlives `cachectl`. Answers its pid.
pub fn spawn(bin: &Path, args: &[String], envs: &[(&str, &str)], log: &Path) -> Result<i32> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone().context("duplicating a file handle")?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // The child is never waited for: it is reaped by whoever adopts it once `cachectl`
    // exits.
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(child.id() as i32)
}

/// Stops `pid`: SIGTERM, then SIGKILL if it still runs after 15 s. Answers once it is
/// gone.
pub async fn stop(what: &str, pid: i32) {
    say(&format!("stopping {what} (pid {pid})"));
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + STOP_GRACE;
    while running(pid) {
        if Instant::now() >= deadline {
            say(&format!(
                "{what} did not exit within {}s of SIGTERM; sending SIGKILL",
                STOP_GRACE.as_secs()
            ));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while running(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `redis-server`s an agent started, from the pid files in its data dir
/// (`nodes/ID/redis.pid`), keeping only live processes whose title names
/// `redis-server` (engines outlive their agent by design).
pub fn engine_pids(agent_dir: &Path) -> Vec<i32> {
    pids_in(&agent_dir.join("nodes"), "redis.pid", "redis-server")
}

/// The `memcached`s an agent started for Memcached nodes (`memcache/ID/memcached.pid`),
/// keeping only live `memcached` processes.
pub fn memcached_pids(agent_dir: &Path) -> Vec<i32> {
    pids_in(&agent_dir.join("memcache"), "memcached.pid", "memcached")
}

/// The live processes named in `dir/*/pid_file` whose program is `program`.
fn pids_in(dir: &Path, pid_file: &str, program: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pids: Vec<i32> = entries
        .flatten()
        .filter_map(|e| read_pid(&e.path().join(pid_file)))
        .filter(|pid| running(*pid) && runs(*pid, program))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Whether `pid`'s title starts with `program` ("redis-server 127.64.0.3:6379",
/// "/usr/bin/memcached").
fn runs(pid: i32, program: &str) -> bool {
    argv(pid)
        .first()
        .and_then(|a| a.split_whitespace().next())
        .is_some_and(|prog| prog.ends_with(program))
}

/// An executable named `name`: next to the running `cachectl`, else on PATH.
pub fn find_sibling_or_on_path(name: &str) -> Option<PathBuf> {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)));
    sibling
        .filter(|p| is_executable(p))
        .or_else(|| find_on_path(name))
}

/// An executable named `name` on PATH.
pub fn find_on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name.as_ref()))
        .find(|p| is_executable(p))
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last lines of a log, to show why something did not start.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_is_not_redis() {
        let me = std::process::id() as i32;
        assert!(running(me));
        assert!(!runs(me, "redis-server"));
        assert!(!runs(me, "memcached"));
        assert!(!argv(me).is_empty());
        assert!(!running(i32::MAX - 1));
    }

    #[test]
    fn flags_and_pid_files() {
        let args: Vec<String> = ["x", "--listen", "127.0.0.1:1", "--zone"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(has_flag(&args, "--listen", "127.0.0.1:1"));
        assert!(!has_flag(&args, "--zone", "a"));
        let dir = std::env::temp_dir().join(format!("cachectl-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.pid");
        fs::write(&f, "abc\n").unwrap();
        assert_eq!(read_pid(&f), None);
        fs::write(&f, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(read_pid(&f), Some(std::process::id() as i32));
        assert!(live_pid(&f, |_| true).is_some());
        assert!(live_pid(&f, |_| false).is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
