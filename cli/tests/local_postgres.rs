//! The one way of running a throwaway PostgreSQL: `cachectl local postgres start|stop`
//! (hidden), and scripts/lib/pg.sh, which runs it. For real: initdb, pg_ctl, a
//! connection, a database created (tests need CREATEDB), and nothing left running or on
//! disk afterwards. Needs PostgreSQL's server programs (scripts/test.sh installs them), not
//! DATABASE_URL. Self-contained on purpose: it shares nothing with the stack harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

/// `cachectl` with nothing from the caller's settings.
fn cachectl() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CACHECTL_") {
            cmd.env_remove(&key);
        }
    }
    cmd.timeout(Duration::from_secs(120));
    cmd
}

/// A directory for one cluster, removed when dropped (after stopping what runs there).
struct ClusterDir(PathBuf);

impl ClusterDir {
    /// A fresh path under the temp dir, which the postgres user can reach as root.
    fn new() -> ClusterDir {
        let dir = std::env::temp_dir().join(format!(
            "cachectl-pg-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        ClusterDir(dir)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp dir")
    }
}

impl Drop for ClusterDir {
    fn drop(&mut self) {
        let _ = cachectl()
            .args(["local", "postgres", "stop", "--dir", self.arg()])
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut assert_cmd::Command) -> Output {
    let out = cmd.output().expect("running cachectl");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cachectl local postgres start --dir DIR --format json`, parsed.
fn start(dir: &ClusterDir) -> Value {
    let out = run(cachectl().args([
        "local",
        "postgres",
        "start",
        "--dir",
        dir.arg(),
        "--format",
        "json",
    ]));
    serde_json::from_slice(&out.stdout).expect("JSON from local postgres start")
}

/// `psql URL -c SQL`, which must succeed; answers its output (tuples only).
fn psql(url: &str, sql: &str) -> String {
    let psql = std::env::var_os("PG_BINDIR")
        .map(|d| PathBuf::from(d).join("psql"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("psql"));
    let out = Command::new(psql)
        .args([url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql (install postgresql-client)");
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The postmaster's pid, from the cluster's postmaster.pid.
fn postmaster_pid(dir: &Path) -> i64 {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid")).expect("postmaster.pid");
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// The cluster's generated superuser password, from its file, which only its owner reads.
fn cluster_password(dir: &ClusterDir) -> String {
    let path = dir.0.join("password");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path)
            .expect("the cluster has a password file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the password file is private");
    let text = std::fs::read_to_string(&path).expect("reads the password");
    let pw = text.trim().to_string();
    assert_eq!(pw.len(), 64, "a 32-byte hex password");
    pw
}

/// Whether `pid` is gone: no such process, or one that died and waits to be reaped
/// (whoever adopted it may not reap it at once).
fn gone(pid: i64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status.lines().find_map(|l| l.strip_prefix("State:"));
    state.is_none_or(|s| s.contains("zombie") || s.contains("dead"))
}

#[test]
fn start_connect_create_a_database_stop() {
    let dir = ClusterDir::new();
    let started = start(&dir);
    let url = started["databaseUrl"].as_str().expect("databaseUrl");
    let port = started["port"].as_u64().expect("port");
    let password = cluster_password(&dir);
    assert_eq!(
        url,
        format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")
    );
    assert_eq!(started["dir"], dir.arg());

    // Any other local process: no password, no connection.
    let refused = Command::new("psql")
        .args([
            "-X",
            "-w",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &port.to_string(),
        ])
        .args(["-d", "postgres", "-c", "select 1"])
        .env_remove("PGPASSWORD")
        .output()
        .expect("running psql");
    assert!(
        !refused.status.success(),
        "a connection without the password was let in"
    );

    // The role may create databases, as the tests do.
    assert_eq!(psql(url, "select 1"), "1");
    psql(url, "create database cachectl_pg_test");
    let other = format!("postgres://postgres:{password}@127.0.0.1:{port}/cachectl_pg_test");
    assert_eq!(
        psql(&other, "select current_database()"),
        "cachectl_pg_test"
    );

    // Starting it again reuses what runs.
    let again = start(&dir);
    assert_eq!(again["port"], port, "{again}");
    let pid = postmaster_pid(&dir.0);

    run(cachectl().args(["local", "postgres", "stop", "--dir", dir.arg(), "--remove"]));
    assert!(gone(pid), "the postmaster (pid {pid}) still runs");
    assert!(!dir.0.exists(), "{} is still there", dir.0.display());
    // Stopping what is gone is fine.
    run(cachectl().args(["local", "postgres", "stop", "--dir", dir.arg(), "--remove"]));
}

#[test]
fn start_prints_export_lines_for_the_shell() {
    let dir = ClusterDir::new();
    let out = run(cachectl().args(["local", "postgres", "start", "--dir", dir.arg()]));
    let stdout = String::from_utf8(out.stdout).unwrap();
    // What `eval "$(…)"` leaves in the shell.
    let script = format!("{stdout}\nprintf '%s %s %s' \"$DATABASE_URL\" \"$CACHEPLANE_PG_DIR\" \"$CACHEPLANE_PG_PORT\"");
    let shell = Command::new("bash").args(["-c", &script]).output().unwrap();
    let vars = String::from_utf8(shell.stdout).unwrap();
    let parts: Vec<&str> = vars.split(' ').collect();
    assert_eq!(parts.len(), 3, "{stdout}");
    assert_eq!(parts[1], dir.arg(), "{stdout}");
    assert_eq!(
        parts[0],
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            cluster_password(&dir),
            parts[2]
        ),
        "{stdout}"
    );
    assert_eq!(psql(parts[0], "select 1"), "1");
}

#[test]
fn stop_never_removes_what_is_not_a_cluster() {
    let dir = ClusterDir::new();
    let precious = dir.0.join("precious.txt");
    std::fs::write(&precious, "keep me\n").unwrap();
    let out = cachectl()
        .args(["local", "postgres", "stop", "--dir", dir.arg(), "--remove"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "stop --remove removed a directory that is not a cluster's"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to remove"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(precious.exists());
}

#[test]
fn a_taken_port_is_a_usage_error() {
    let dir = ClusterDir::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = cachectl()
        .args([
            "local",
            "postgres",
            "start",
            "--dir",
            dir.arg(),
            "--port",
            &port,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is taken")),
        "{stderr}"
    );
    assert!(!dir.0.join("data/postmaster.pid").exists());
}

/// scripts/lib/pg.sh keeps its interface: `run -- CMD` gives CMD a cluster it may create
/// databases in, then removes it.
#[test]
fn pg_sh_runs_a_command_with_a_throwaway_cluster() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/pg.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["run", "--", "bash", "-c"])
        .arg(
            "psql \"$DATABASE_URL\" -X -q -v ON_ERROR_STOP=1 -c 'create database pg_sh_test' \
             && printf '%s' \"$CACHEPLANE_PG_DIR\"",
        )
        // The cachectl under test, not one the script would build.
        .env("CACHEPLANE_CACHECTL_BIN", env!("CARGO_BIN_EXE_cachectl"))
        .env_remove("DATABASE_URL")
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "pg.sh run failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8(out.stdout).unwrap();
    assert!(dir.contains("cacheplane-pg."), "{dir}");
    assert!(!Path::new(&dir).exists(), "pg.sh left {dir} behind");
}
