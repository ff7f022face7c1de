//! Engine processes: start `redis-server` daemonized (so it outlives the agent), stop it
//! (SHUTDOWN NOSAVE, then signals, each wait bounded), and read why a start failed from
//! the engine's own log.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use cacheplane_types::NodeSpec;
use tokio::time::Instant;

use super::{acl, conf, local, NodeDir};
use crate::logtail::{log_since, truncate};
use crate::pids::{self, terminate, wait_exit};
pub use crate::pids::{cmdline, is_running, start_time};
use crate::store::write_atomic;

/// Longest wait for a started engine to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for an engine to exit after SHUTDOWN NOSAVE.
const STOP_WAIT: Duration = pids::TERM_WAIT;
/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(20);

/// Writes the node's `redis.conf` and `spec.json` (both mode 0600: they hold the auth
/// string), creating its directory (mode 0700) if needed.
pub fn write_files(spec: &NodeSpec, dir: &NodeDir) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir.dir)
        .with_context(|| format!("creating {}", dir.dir.display()))?;
    fs::set_permissions(&dir.dir, fs::Permissions::from_mode(0o700))?;
    super::tls::write_files(spec, dir)?;
    write_atomic(&dir.conf(), conf::render(spec, dir).as_bytes(), 0o600)?;
    write_atomic(&dir.spec(), &serde_json::to_vec_pretty(spec)?, 0o600)
}

/// The spec last applied to the node in `dir`, if it was saved and parses.
pub fn load_spec(dir: &NodeDir) -> Option<NodeSpec> {
    let bytes = fs::read(dir.spec()).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The pid in the node's pid file.
pub fn read_pid(dir: &NodeDir) -> Option<u32> {
    pids::read_pid_file(&dir.pidfile())
}

/// Records that the engine of the node in `dir` is process `pid` (with its start time).
fn record_engine(dir: &NodeDir, pid: u32) -> anyhow::Result<()> {
    pids::record(&dir.engine(), pid)
}

/// The pid of the running engine of the node in `dir`, if it runs: the process the agent
/// recorded when it started it (same pid *and* start time), whatever it now calls
/// itself or listens on, so nothing done over a connection hides an engine from its
/// agent. An engine started by an agent from before this record is recognised once by
/// its pid file and process title (`spec`'s address and port, or any `redis-server`
/// without a spec), and recorded from then on.
pub fn engine_pid(dir: &NodeDir, spec: Option<&NodeSpec>) -> Option<u32> {
    if let Some(rec) = pids::recorded(&dir.engine()) {
        return pids::still_runs(rec).then_some(rec.0);
    }
    let pid = read_pid(dir)?;
    let ours = match spec {
        Some(s) => is_engine_of(pid, &s.address, s.port),
        None => is_redis(pid),
    };
    if !ours {
        return None;
    }
    if let Err(e) = record_engine(dir, pid) {
        tracing::warn!(pid, error = %format!("{e:#}"), "cannot record the engine's start time");
    }
    Some(pid)
}

/// Whether `pid` is a running `redis-server` (its process title starts with the
/// program's name). Only for engines of older agents: see [`engine_pid`].
pub fn is_redis(pid: u32) -> bool {
    is_running(pid) && cmdline(pid).is_some_and(|c| is_redis_title(&c))
}

/// Whether `pid` is a running `redis-server` serving `address:port` (its process title
/// names its first bind address). Only for engines of older agents: see [`engine_pid`].
pub fn is_engine_of(pid: u32, address: &str, port: u16) -> bool {
    is_running(pid)
        && cmdline(pid).is_some_and(|c| {
            is_redis_title(&c)
                && c.split_whitespace()
                    .any(|w| w == format!("{address}:{port}"))
        })
}

fn is_redis_title(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .next()
        .is_some_and(|prog| prog.ends_with("redis-server"))
}

/// Starts the engine of `spec` in `dir` and waits (bounded) until it answers PING.
/// Answers its pid, or why it could not start, in the engine's own words when it gave
/// them.
pub async fn start(redis_server: &Path, spec: &NodeSpec, dir: &NodeDir) -> Result<u32, String> {
    start_in(redis_server, spec, dir, None).await
}

/// [`start`] with the engine in network namespace `netns` (the agent's own for `None`).
pub async fn start_in(
    redis_server: &Path,
    spec: &NodeSpec,
    dir: &NodeDir,
    netns: Option<&str>,
) -> Result<u32, String> {
    start_inner(redis_server, spec, dir, netns)
        .await
        .map_err(|reason| {
            let admin = spec.admin_secret.as_ref().map(|s| s.expose());
            redact(redact(reason, spec.auth_string.as_deref()), admin)
        })
}

/// Hides the auth string should the engine ever quote it (a config line in an error).
fn redact(text: String, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => text.replace(s, "***"),
        None => text,
    }
}

async fn start_inner(
    redis_server: &Path,
    spec: &NodeSpec,
    dir: &NodeDir,
    netns: Option<&str>,
) -> Result<u32, String> {
    write_files(spec, dir).map_err(|e| format!("cannot write the engine's files: {e:#}"))?;
    let _ = fs::remove_file(dir.pidfile());
    let _ = fs::remove_file(dir.engine());
    let log_from = fs::metadata(dir.logfile()).map(|m| m.len()).unwrap_or(0);
    let mut cmd = std::process::Command::new(redis_server);
    cmd.arg(dir.conf()).current_dir(&dir.dir);
    let child = async {
        match netns {
            // Forked from a thread inside the namespace: the engine lives there.
            Some(ns) => crate::net::dial::output_in(Some(ns), cmd, None).await,
            None => {
                tokio::process::Command::from(cmd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .await
            }
        }
    };
    // With `daemonize yes` this process forks the engine and exits at once; errors in
    // the config file make it exit non-zero with the reason on its output.
    let out = match tokio::time::timeout(START_TIMEOUT, child).await {
        Err(_) => return Err(format!("{} did not daemonize", redis_server.display())),
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", redis_server.display())),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(summarize_fatal(&text)
            .or_else(|| log_reason(&dir.logfile(), log_from))
            .unwrap_or_else(|| format!("redis-server exited with {}", out.status)));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(pid) = read_pid(dir).filter(|p| is_running(*p)) {
            // The pid file is written once the engine listens.
            if let Ok(mut c) = local::connect(dir, spec, &acl::logins(&[spec])).await {
                if c.ping().await.is_ok() {
                    record_engine(dir, pid).map_err(|e| format!("{e:#}"))?;
                    return Ok(pid);
                }
            }
        } else if let Some(pid) = log_pid(&dir.logfile(), log_from) {
            if !is_running(pid) {
                return Err(log_reason(&dir.logfile(), log_from)
                    .unwrap_or_else(|| "redis-server exited at start".into()));
            }
        }
        if Instant::now() >= deadline {
            let reason = log_reason(&dir.logfile(), log_from)
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            if let Some(pid) = read_pid(dir).or_else(|| log_pid(&dir.logfile(), log_from)) {
                let _ = terminate(pid).await;
            }
            return Err(format!(
                "redis-server did not answer within {START_TIMEOUT:?}{reason}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Stops the engine of the node in `dir` (SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL,
/// each wait bounded) and removes the directory. `spec` says how to reach the engine.
pub async fn stop(dir: &NodeDir, spec: Option<&NodeSpec>) -> anyhow::Result<()> {
    if let Some(pid) = engine_pid(dir, spec) {
        if let Some(s) = spec {
            if let Ok(c) = local::connect(dir, s, &acl::logins(&[s])).await {
                let _ = c.shutdown_nosave().await;
            }
        }
        if !wait_exit(pid, STOP_WAIT).await {
            terminate(pid).await?;
        }
    }
    match fs::remove_dir_all(&dir.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.dir.display())),
    }
}

/// The pid of the engine that last wrote the log since `from` (lines start `PID:ROLE`).
fn log_pid(log: &Path, from: u64) -> Option<u32> {
    let text = log_since(log, from)?;
    text.lines()
        .rev()
        .find_map(|l| l.split_once(':').and_then(|(p, _)| p.parse().ok()))
}

/// Why the engine stopped, from its log since `from`.
pub fn log_reason(log: &Path, from: u64) -> Option<String> {
    reason_from_log(&log_since(log, from)?)
}

/// Warning-level lines Redis writes on every start: not reasons.
const BANNERS: &[&str] = &[
    "oO0OoO0OoO0Oo",
    "Redis version=",
    "Configuration loaded",
    "Server initialized",
    "WARNING",
];

/// The last warnings of a Redis log (`PID:R DD Mon YYYY HH:MM:SS.mmm # message`),
/// leaving out banners and advisory `WARNING …` lines, joined by "; ".
pub fn reason_from_log(text: &str) -> Option<String> {
    let messages: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.splitn(7, ' ').collect();
            match parts.as_slice() {
                [_, _, _, _, _, level, msg] => Some((*level, msg.trim())),
                _ => None,
            }
        })
        .collect();
    let warnings: Vec<&str> = messages
        .iter()
        .filter(|(lvl, m)| *lvl == "#" && !BANNERS.iter().any(|b| m.starts_with(b)))
        .map(|(_, m)| *m)
        .collect();
    let picked: Vec<&str> = if warnings.is_empty() {
        messages.last().map(|(_, m)| *m).into_iter().collect()
    } else {
        warnings[warnings.len().saturating_sub(2)..].to_vec()
    };
    let joined = picked.join("; ");
    (!joined.is_empty()).then(|| truncate(&joined, 400))
}

/// The message of a fatal config error printed by redis-server before it daemonizes.
fn summarize_fatal(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!lines.is_empty()).then(|| truncate(&lines.join(" "), 400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_last_real_warnings() {
        let log = "\
123:C 01 Jan 2025 10:00:00.000 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
123:C 01 Jan 2025 10:00:00.001 # Redis version=7.0.15, bits=64, pid=123, just started
123:C 01 Jan 2025 10:00:00.001 # Configuration loaded
123:M 01 Jan 2025 10:00:00.001 # WARNING Memory overcommit must be enabled!
123:M 01 Jan 2025 10:00:00.002 # Warning: Could not create server TCP listening socket 127.77.0.1:6379: bind: Address already in use
123:M 01 Jan 2025 10:00:00.003 # Failed listening on port 6379 (TCP), aborting.
";
        assert_eq!(
            reason_from_log(log).as_deref(),
            Some("Warning: Could not create server TCP listening socket 127.77.0.1:6379: bind: Address already in use; Failed listening on port 6379 (TCP), aborting.")
        );
        assert_eq!(
            reason_from_log("1:M 01 Jan 2025 10:00:00.000 * Ready to accept connections\n")
                .as_deref(),
            Some("Ready to accept connections")
        );
        assert_eq!(reason_from_log(""), None);
        assert_eq!(reason_from_log("garbage\n"), None);
    }

    #[test]
    fn fatal_config_errors_are_one_line() {
        let out = "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 20\n>>> 'maxmemory-policy \"x\"'\nargument(s) must be one of the following: volatile-lru\n";
        let s = summarize_fatal(out).expect("a reason");
        assert!(s.starts_with("*** FATAL CONFIG FILE ERROR"), "{s}");
        assert!(s.contains("argument(s) must be one of"), "{s}");
        assert_eq!(truncate("ééé", 3), "é…");
        assert_eq!(
            redact(">>> 'requirepass \"pw1\"'".into(), Some("pw1")),
            ">>> 'requirepass \"***\"'"
        );
    }

    #[test]
    fn an_engine_is_its_pid_and_start_time() {
        let me = std::process::id();
        let start = start_time(me).expect("this process's start time");
        assert!(start_time(u32::MAX - 1).is_none());
        let tmp = std::env::temp_dir().join(format!("cacheplane-engine-pid-{me}"));
        let dir = NodeDir { dir: tmp.clone() };
        fs::create_dir_all(&tmp).expect("dir");
        // Recorded: recognised whatever its title (this test binary is no redis-server).
        record_engine(&dir, me).expect("records");
        assert_eq!(engine_pid(&dir, None), Some(me));
        // The same pid with another start time is another process: not the engine.
        fs::write(dir.engine(), format!("{me} {}\n", start + 1)).expect("write");
        assert_eq!(engine_pid(&dir, None), None);
        // Nothing recorded: only a pid file naming a redis-server counts.
        fs::remove_file(dir.engine()).expect("rm");
        fs::write(dir.pidfile(), format!("{me}\n")).expect("write");
        assert_eq!(engine_pid(&dir, None), None);
        let _ = fs::remove_dir_all(&tmp);
    }

    #[test]
    fn this_process_is_running_and_not_redis() {
        let me = std::process::id();
        assert!(is_running(me));
        assert!(!is_engine_of(me, "127.0.0.1", 6379));
        assert!(!is_running(u32::MAX - 1));
        assert!(!is_redis(me));
        assert!(is_redis_title("redis-server 127.64.0.3:6379"));
        assert!(is_redis_title("/usr/bin/redis-server 127.64.0.3:6379"));
        assert!(!is_redis_title(
            "cacheplane-node-agent --redis-server redis-server"
        ));
    }
}
