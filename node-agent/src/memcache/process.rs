//! memcached processes: the arguments a node runs with, starting one daemonized (`-d`,
//! so it outlives the agent) in the node's namespace, recognising it again (its record,
//! or its pid file and arguments), and stopping it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use cacheplane_types::memcache_params::memcached_args;
use cacheplane_types::MemcacheNodeSpec;
use tokio::time::Instant;

use super::client::McClient;
use super::McDir;
use crate::logtail::{log_since, truncate};
use crate::net::dial::{self, Dialer};
use crate::pids;
use crate::store::write_atomic;

/// Longest wait for a started memcached to answer `version`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a start that wrote to the log but no pid file has to write it after all.
const COMPLAINT_GRACE: Duration = Duration::from_millis(300);
/// How often the start looks again.
const POLL: Duration = Duration::from_millis(20);

/// The arguments (after the program) memcached runs with for `spec` in `dir`: as a
/// daemon writing its pid to the node's pid file, its errors (`-v`) to the node's log,
/// listening on the node's address and port only (UDP off), with the node's memory,
/// threads and connection limit, then its parameters. As root, memcached must be told a
/// user to run as: root, like the Redis engines. An error names a bad parameter.
pub fn args(spec: &MemcacheNodeSpec, dir: &McDir) -> Result<Vec<String>, String> {
    let mut args: Vec<String> = vec!["-d".into(), "-v".into()];
    if nix::unistd::geteuid().is_root() {
        args.extend(["-u".into(), "root".into()]);
    }
    args.extend([
        "-l".into(),
        spec.address.clone(),
        "-p".into(),
        spec.port.to_string(),
        "-U".into(),
        "0".into(),
        "-m".into(),
        spec.memory_mb.to_string(),
        "-t".into(),
        spec.threads.to_string(),
        "-c".into(),
        spec.max_connections.to_string(),
        "-P".into(),
        dir.pidfile().to_string_lossy().into_owned(),
    ]);
    args.extend(memcached_args(&spec.parameters)?);
    Ok(args)
}

/// Writes the node's `spec.json` (mode 0600), creating its directory (mode 0700).
pub fn write_spec(spec: &MemcacheNodeSpec, dir: &McDir) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir.dir)
        .with_context(|| format!("creating {}", dir.dir.display()))?;
    fs::set_permissions(&dir.dir, fs::Permissions::from_mode(0o700))?;
    write_atomic(&dir.spec(), &serde_json::to_vec_pretty(spec)?, 0o600)
}

/// The spec last applied to the node in `dir`, if it was saved and parses.
pub fn load_spec(dir: &McDir) -> Option<MemcacheNodeSpec> {
    serde_json::from_slice(&fs::read(dir.spec()).ok()?).ok()
}

/// Whether process `pid` is a memcached whose `-P` names the node's pid file.
fn writes_pid_file(pid: u32, dir: &McDir) -> bool {
    let pidfile = dir.pidfile().to_string_lossy().into_owned();
    pids::is_running(pid)
        && pids::args_of(pid).is_some_and(|a| {
            a.first().is_some_and(|p| p.ends_with("memcached"))
                && a.windows(2).any(|w| w[0] == "-P" && w[1] == pidfile)
        })
}

/// Whether process `pid` runs memcached with exactly `expected` arguments.
pub fn runs_with(pid: u32, expected: &[String]) -> bool {
    pids::is_running(pid) && pids::args_of(pid).is_some_and(|a| a.len() > 1 && a[1..] == *expected)
}

/// The pid of the node's running memcached: the process the agent recorded starting
/// (same pid and start time); else, when the record is missing (the agent died between
/// the start and the record), the process of the pid file if it runs with exactly the
/// arguments of `spec`, or, without a spec, if it is a memcached writing that very pid
/// file (then recorded from now on).
pub fn engine_pid(dir: &McDir, spec: Option<&MemcacheNodeSpec>) -> Option<u32> {
    if let Some(rec) = pids::recorded(&dir.engine()) {
        return pids::still_runs(rec).then_some(rec.0);
    }
    let pid = pids::read_pid_file(&dir.pidfile())?;
    let ours = match spec {
        Some(spec) => args(spec, dir).is_ok_and(|expected| runs_with(pid, &expected)),
        None => writes_pid_file(pid, dir),
    };
    if !ours {
        return None;
    }
    if let Err(e) = pids::record(&dir.engine(), pid) {
        tracing::warn!(pid, error = %format!("{e:#}"), "cannot record memcached's start time");
    }
    Some(pid)
}

/// Starts memcached for `spec` in `dir` (in namespace `netns`, the agent's own for
/// `None`) and waits (bounded) until it answers `version` on its address. Answers its
/// pid, or why it could not start, in memcached's own words when it gave them.
pub async fn start(
    memcached: &Path,
    spec: &MemcacheNodeSpec,
    dir: &McDir,
    netns: Option<&str>,
) -> Result<u32, String> {
    let args = args(spec, dir)?;
    write_spec(spec, dir).map_err(|e| format!("cannot write the node's files: {e:#}"))?;
    let _ = fs::remove_file(dir.pidfile());
    let _ = fs::remove_file(dir.engine());
    let log_from = fs::metadata(dir.logfile()).map(|m| m.len()).unwrap_or(0);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.logfile())
        .map_err(|e| format!("cannot open {}: {e}", dir.logfile().display()))?;
    let err = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", dir.logfile().display()))?;
    let mut cmd = std::process::Command::new(memcached);
    cmd.args(&args)
        .current_dir(&dir.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // memcached checks its settings, forks the daemon and exits: non-zero, with the
    // reason in the log, when a setting is refused.
    let status = tokio::time::timeout(START_TIMEOUT, dial::status_in(netns, cmd)).await;
    let why = |fallback: String| log_reason(&dir.logfile(), log_from).unwrap_or(fallback);
    match status {
        Err(_) => return Err(format!("{} did not daemonize", memcached.display())),
        Ok(Err(e)) => return Err(format!("cannot run {}: {e}", memcached.display())),
        Ok(Ok(s)) if !s.success() => return Err(why(format!("memcached exited with {s}"))),
        Ok(Ok(_)) => {}
    }
    let dialer = netns.map(Dialer::in_netns).unwrap_or_default();
    let deadline = Instant::now() + START_TIMEOUT;
    // When the log grew without a pid file: the daemon wrote an error (it could not
    // listen) and exits without writing its pid.
    let mut complained: Option<Instant> = None;
    loop {
        let pid = pids::read_pid_file(&dir.pidfile()).filter(|p| pids::is_running(*p));
        if let Some(pid) = pid {
            if answers(&dialer, spec).await {
                pids::record(&dir.engine(), pid).map_err(|e| format!("{e:#}"))?;
                return Ok(pid);
            }
        } else if pids::read_pid_file(&dir.pidfile()).is_some() {
            // It wrote its pid, then died.
            return Err(why("memcached exited at start".into()));
        } else if fs::metadata(dir.logfile()).is_ok_and(|m| m.len() > log_from) {
            let since = *complained.get_or_insert_with(Instant::now);
            if since.elapsed() >= COMPLAINT_GRACE {
                return Err(why("memcached exited at start".into()));
            }
        }
        if Instant::now() >= deadline {
            if let Some(pid) = pids::read_pid_file(&dir.pidfile()) {
                let _ = pids::terminate(pid).await;
            }
            return Err(why(format!(
                "memcached did not answer within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether the memcached of `spec` answers `version` on its address.
pub async fn answers(dialer: &Dialer, spec: &MemcacheNodeSpec) -> bool {
    match McClient::connect(dialer, &spec.address, spec.port).await {
        Ok(mut c) => c.version().await.is_ok(),
        Err(_) => false,
    }
}

/// Stops the node's memcached (SIGTERM, then SIGKILL, each wait bounded) and removes
/// its directory.
pub async fn stop(dir: &McDir, spec: Option<&MemcacheNodeSpec>) -> anyhow::Result<()> {
    kill(dir, spec).await?;
    match fs::remove_dir_all(&dir.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.dir.display())),
    }
}

/// Stops the node's memcached, keeping its directory (a restart with other flags).
pub async fn kill(dir: &McDir, spec: Option<&MemcacheNodeSpec>) -> anyhow::Result<()> {
    if let Some(pid) = engine_pid(dir, spec) {
        pids::terminate(pid).await?;
    }
    let _ = fs::remove_file(dir.engine());
    Ok(())
}

/// Why memcached failed to start, from what it wrote to its log since byte `from`: its
/// last lines (it writes only errors there), joined by "; ".
pub fn log_reason(log: &Path, from: u64) -> Option<String> {
    let text = log_since(log, from)?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let last = &lines[lines.len().saturating_sub(3)..];
    (!last.is_empty()).then(|| truncate(&last.join("; "), 400))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use uuid::Uuid;

    fn spec() -> MemcacheNodeSpec {
        MemcacheNodeSpec {
            node_id: Uuid::from_u128(1),
            instance: "projects/p/locations/r/memcacheInstances/m".into(),
            memcache_version: "MEMCACHE_1_6".into(),
            address: "127.79.0.2".into(),
            port: 11211,
            memory_mb: 1024,
            threads: 2,
            max_connections: 5000,
            parameters: BTreeMap::from([
                ("max-item-size".into(), "2097152".into()),
                ("idle-timeout".into(), "30".into()),
            ]),
            network: None,
        }
    }

    #[test]
    fn a_node_runs_with_its_size_address_and_parameters() {
        let dir = McDir::new(Path::new("/data"), Uuid::from_u128(1));
        let got = args(&spec(), &dir).expect("valid");
        let root: &[&str] = if nix::unistd::geteuid().is_root() {
            &["-u", "root"]
        } else {
            &[]
        };
        let want: Vec<String> = ["-d", "-v"]
            .iter()
            .chain(root)
            .chain(&[
                "-l",
                "127.79.0.2",
                "-p",
                "11211",
                "-U",
                "0",
                "-m",
                "1024",
                "-t",
                "2",
                "-c",
                "5000",
                "-P",
                "/data/memcache/00000000-0000-0000-0000-000000000001/memcached.pid",
                "-I",
                "2097152",
                "-o",
                "idle_timeout=30",
            ])
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, want);
        let mut bad = spec();
        bad.parameters.insert("verbose".into(), "1".into());
        let e = args(&bad, &dir).expect_err("unknown parameter");
        assert!(e.contains("verbose"), "{e}");
    }

    #[test]
    fn the_reason_is_the_last_lines_of_the_log() {
        let dir = std::env::temp_dir().join(format!("cp-mc-log-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("memcached.log");
        fs::write(&log, "old failure\n").expect("write");
        let from = fs::metadata(&log).expect("meta").len();
        fs::write(
            &log,
            "old failure\nfailed to listen on TCP port 11211: Address already in use\n",
        )
        .expect("write");
        assert_eq!(
            log_reason(&log, from).as_deref(),
            Some("failed to listen on TCP port 11211: Address already in use")
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
