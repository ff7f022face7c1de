//! `cachectl local up|down|status` for real: its own PostgreSQL cluster (initdb), the API
//! and three agents running redis-server, in a temporary data directory on ports and
//! addresses of the test's own, so that it never meets a developer's local stack or the
//! other tests. Needs PostgreSQL's server programs and redis-server (scripts/test.sh
//! installs them), not DATABASE_URL.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// A local stack in a temporary directory, stopped (`local down`) when dropped.
struct LocalStack {
    dir: PathBuf,
    pg_port: u16,
    api_port: u16,
    supernet: String,
    _supernet_guard: TcpListener,
}

impl LocalStack {
    fn new() -> LocalStack {
        // The binaries `local up` finds next to cachectl.
        common::sibling_binary("cacheplane-api");
        common::sibling_binary("cacheplane-node-agent");
        let (supernet, guard) = cacheplane_testkit::net::private_supernet();
        let dir =
            std::env::temp_dir().join(format!("cachectl-local-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).expect("creating the test directory");
        // As root the cluster runs as postgres, which must reach DATA_DIR/pg: else
        // `local up` would fall back to /var/lib/cacheplane/pg, a developer's cluster.
        for d in [dir.as_path(), &dir.join("data")] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        {
            let reach = Command::new("runuser")
                .args(["-u", "postgres", "--", "test", "-x"])
                .arg(dir.join("data"))
                .status()
                .expect("running runuser");
            assert!(
                reach.success(),
                "the postgres user cannot reach {}: put the temp dir (TMPDIR) somewhere it can",
                dir.display()
            );
        }
        LocalStack {
            dir,
            pg_port: cacheplane_testkit::net::free_port(),
            api_port: two_free_ports(),
            supernet,
            _supernet_guard: guard,
        }
    }

    /// The stack's data directory (`$XDG_DATA_HOME/cacheplane`).
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data").join("cacheplane")
    }

    /// `cachectl` with this test's XDG directories and nothing from the caller's
    /// settings.
    fn cachectl(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHECTL_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .timeout(Duration::from_secs(300));
        cmd
    }

    /// Runs `cachectl ARGS --format json`, which must succeed, and parses its output.
    fn json(&self, args: &[&str]) -> Value {
        common::run_json(self.cachectl(), args)
    }

    fn up(&self) -> Value {
        self.up_with(&[])
    }

    /// `local up` on the test's ports and supernet, with `extra` flags.
    fn up_with(&self, extra: &[&str]) -> Value {
        let pg_port = self.pg_port.to_string();
        let api_port = self.api_port.to_string();
        let mut args = vec![
            "local",
            "up",
            "--pg-port",
            &pg_port,
            "--api-port",
            &api_port,
            "--supernet",
            &self.supernet,
        ];
        args.extend_from_slice(extra);
        self.json(&args)
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // Whatever happened, leave nothing running.
        let down = self.cachectl().args(["local", "down"]).output();
        if std::thread::panicking() {
            for log in ["api.log", "agents/local-a-1.log", "pg/postgres.log"] {
                let path = self.data_dir().join(log);
                eprintln!("--- {} ---\n{}", path.display(), common::tail(&path));
            }
            eprintln!("keeping {}", self.dir.display());
        } else if down.is_ok_and(|o| o.status.success()) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free port whose next port is free too (for two API replicas).
fn two_free_ports() -> u16 {
    loop {
        let port = cacheplane_testkit::net::free_port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// The pid of each part, by name, in a status.
fn pids(status: &Value) -> Vec<(String, Option<i64>)> {
    status["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("no parts: {status}"))
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["pid"].as_i64()))
        .collect()
}

/// Whether `pid` is gone: no such process, or a zombie waiting to be reaped (whoever
/// adopted it may not reap at once).
fn gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
            matches!(state.as_deref(), Some("Z") | Some("X"))
        }
        Err(_) => true,
    }
}

fn cmdline(pid: i64) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[test]
fn local_up_twice_then_down() {
    cacheplane_testkit::process::require_memcached();
    let stack = LocalStack::new();

    let first = stack.up();
    assert_eq!(first["apiReady"], true, "{first}");
    assert_eq!(first["hostsUp"], 3, "{first}");
    let api_url = format!("http://127.0.0.1:{}", stack.api_port);
    assert_eq!(first["apiUrl"], api_url.as_str(), "{first}");
    let names: Vec<String> = pids(&first).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "postgres",
            "api",
            "agent local-a-1",
            "agent local-b-1",
            "agent local-c-1"
        ],
        "{first}"
    );
    for part in first["parts"].as_array().unwrap() {
        assert_eq!(part["state"], "running", "{first}");
        assert!(part["pid"].as_i64().is_some(), "{first}");
    }
    assert_eq!(
        first["parts"][0]["address"],
        format!("127.0.0.1:{}", stack.pg_port).as_str(),
        "{first}"
    );
    // Its own cluster, in its own directory.
    let data = stack.data_dir();
    assert_eq!(
        std::fs::read_to_string(data.join("pg.dir")).unwrap().trim(),
        data.join("pg").to_str().unwrap()
    );

    // The token: private, and on no command line.
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    for (name, pid) in pids(&first) {
        let cmd = cmdline(pid.unwrap());
        assert!(!cmd.is_empty(), "{name}: no command line");
        assert!(
            !cmd.contains(token),
            "{name} has the token on its command line"
        );
    }

    // The configuration points cachectl at the stack: no flags needed.
    let config = std::fs::read_to_string(stack.dir.join("config/cachectl/config.toml")).unwrap();
    assert!(
        config.contains(&format!("api_url = \"{api_url}\"")),
        "{config}"
    );
    assert!(config.contains("project = \"demo-project\""), "{config}");
    assert!(config.contains("region = \"local\""), "{config}");
    let hosts = stack.json(&["hosts", "list"]);
    let up: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["state"] == "UP")
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        up,
        ["hosts/local-a-1", "hosts/local-b-1", "hosts/local-c-1"],
        "{hosts}"
    );

    // A cache, so that `down` has a redis-server to stop.
    let cache = stack.json(&["instances", "create", "local-test"]);
    assert_eq!(cache["state"], "READY", "{cache}");
    let prefix = stack.supernet.split(".0.0/").next().unwrap().to_string() + ".";
    assert!(
        cache["host"].as_str().unwrap().starts_with(&prefix),
        "{cache} not in {}",
        stack.supernet
    );
    let status = stack.json(&["local", "status"]);
    let engines: Vec<i64> = status["parts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["engines"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_i64().unwrap())
        .collect();
    assert_eq!(engines.len(), 1, "{status}");
    assert!(cmdline(engines[0]).starts_with("redis-server"), "{status}");

    // A Memcached instance, so that `down` has a memcached to stop too.
    let mc = stack.json(&[
        "memcache",
        "instances",
        "create",
        "local-mc",
        "--node-count",
        "1",
    ]);
    assert_eq!(mc["state"], "READY", "{mc}");
    let mc_addr = mc["memcacheNodes"][0]["host"]
        .as_str()
        .expect("node host")
        .to_string();
    let memcached = memcached_at(&mc_addr).expect("the node's memcached runs");
    let status = stack.json(&["local", "status"]);
    let listed: Vec<i64> = status["parts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["memcacheds"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_i64().unwrap())
        .collect();
    assert_eq!(
        listed,
        [memcached],
        "local status lists the memcached: {status}"
    );

    // Again: everything is reused.
    let second = stack.up();
    assert_eq!(second["apiReady"], true, "{second}");
    assert_eq!(second["hostsUp"], 3, "{second}");
    assert_eq!(pids(&first), pids(&second), "{first}\n{second}");

    // Down leaves nothing running, the engine included.
    let down = stack.json(&["local", "down"]);
    for part in down["parts"].as_array().unwrap() {
        assert_eq!(part["state"], "stopped", "{down}");
        assert!(part.get("pid").is_none(), "{down}");
        assert!(part.get("engines").is_none(), "{down}");
    }
    let mut all: Vec<i64> = pids(&first).into_iter().map(|(_, p)| p.unwrap()).collect();
    all.extend(&engines);
    for pid in all {
        assert!(gone(pid), "pid {pid} still runs: {}", cmdline(pid));
    }
    assert!(gone(memcached), "memcached {memcached} still runs");
    assert!(!data.join("api.pid").exists());
    assert!(!Path::new(&data.join("pg/data/postmaster.pid")).exists());
    let status = stack.json(&["local", "status"]);
    assert_eq!(status["apiReady"], false, "{status}");
    assert_eq!(status["hostsUp"], 0, "{status}");
    // And down again is fine.
    stack.cachectl().args(["local", "down"]).assert().success();
}

#[test]
fn local_up_with_two_api_replicas_survives_losing_one_and_down_stops_both() {
    let stack = LocalStack::new();
    let first = stack.up_with(&["--api-replicas", "2"]);
    assert_eq!(first["apiReady"], true, "{first}");
    assert_eq!(first["hostsUp"], 3, "{first}");
    let urls = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        stack.api_port,
        stack.api_port + 1
    );
    assert_eq!(first["apiUrl"], urls.as_str(), "{first}");
    let parts = pids(&first);
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["postgres", "api", "api 2"], "{first}");
    // The agents and cachectl have both addresses.
    let agent_pid = parts
        .iter()
        .find(|(n, _)| n == "agent local-a-1")
        .and_then(|(_, p)| *p)
        .unwrap();
    assert!(cmdline(agent_pid).contains(&urls), "{}", cmdline(agent_pid));
    let config = std::fs::read_to_string(stack.dir.join("config/cachectl/config.toml")).unwrap();
    assert!(
        config.contains(&format!("api_url = \"{urls}\"")),
        "{config}"
    );

    // The first replica dies: cachectl and the agents go on with the second.
    let api1 = parts[1].1.unwrap();
    Command::new("kill")
        .args(["-KILL", &api1.to_string()])
        .status()
        .unwrap();
    let cache = stack.json(&["instances", "create", "after-loss"]);
    assert_eq!(cache["state"], "READY", "{cache}");
    let status = stack.json(&["local", "status"]);
    assert_eq!(status["apiReady"], false, "one replica is down: {status}");

    // Up again restarts it; up with one replica stops the second; down stops all.
    let again = stack.up_with(&["--api-replicas", "2"]);
    assert_eq!(again["apiReady"], true, "{again}");
    let api2 = pids(&again)[2].1.unwrap();
    let one = stack.up();
    let names: Vec<String> = pids(&one).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains(&"api 2".to_string()), "{one}");
    assert!(gone(api2), "the second replica stopped");
    stack.up_with(&["--api-replicas", "2"]);
    let all: Vec<i64> = pids(&stack.json(&["local", "status"]))
        .into_iter()
        .filter_map(|(_, p)| p)
        .collect();
    let down = stack.json(&["local", "down"]);
    for part in down["parts"].as_array().unwrap() {
        assert_eq!(part["state"], "stopped", "{down}");
    }
    for pid in all {
        assert!(gone(pid), "pid {pid} still runs: {}", cmdline(pid));
    }
    assert!(!stack.data_dir().join("api-2.pid").exists());
}

/// The pid of the `memcached` listening on `address` (its `-l`), from /proc.
fn memcached_at(address: &str) -> Option<i64> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i64 = e.file_name().to_str()?.parse().ok()?;
        let raw = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let is_memcached = args.first()?.ends_with(b"memcached");
        let listens = args
            .windows(2)
            .any(|w| w[0] == b"-l" && w[1] == address.as_bytes());
        (is_memcached && listens).then_some(pid)
    })
}
