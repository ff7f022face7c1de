//! `cachectl local demo` for real, as scripts/dev.sh uses it: on a local stack of the
//! test's own (`local up` in a temporary data directory, on its own ports and addresses),
//! it creates the STANDARD_HA instance `demo`, keeps its AUTH string private, and prints
//! a redis-cli line that gets PONG; run again, it reuses the instance. Needs PostgreSQL's
//! server programs, redis-server and redis-cli (scripts/test.sh installs them).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

/// A local stack in a temporary directory; `local down` and removed when dropped.
struct Stack {
    root: PathBuf,
    /// Holds 127.X.0.0/16 for this test: the suites' convention is to bind 41000+X.
    _supernet: TcpListener,
}

impl Stack {
    fn up() -> Stack {
        let (x, guard) = (200..=250u16)
            .rev()
            .find_map(|x| Some((x, TcpListener::bind(("127.0.0.1", 41000 + x)).ok()?)))
            .expect("a free 127.X.0.0/16 (ports 41200-41250 all taken)");
        let root =
            std::env::temp_dir().join(format!("cachectl-demo-{}", uuid::Uuid::new_v4().simple()));
        // As root the cluster runs as postgres, which must reach DATA_DIR/pg.
        for d in [root.clone(), root.join("data")] {
            std::fs::create_dir_all(&d).expect("creating the test directory");
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let stack = Stack {
            root,
            _supernet: guard,
        };
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port().to_string())
                .expect("a free port")
        };
        let supernet = format!("127.{x}.0.0/16");
        stack.ok(&[
            "local",
            "up",
            "--pg-port",
            &port(),
            "--api-port",
            &port(),
            "--supernet",
            &supernet,
        ]);
        stack
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data/cacheplane")
    }

    /// Runs cachectl with this stack's XDG directories and nothing from the caller's
    /// settings.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHECTL_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("XDG_DATA_HOME", self.root.join("data"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .args(args)
            .timeout(Duration::from_secs(240))
            .output()
            .expect("running cachectl")
    }

    /// Runs cachectl, which must succeed.
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cachectl {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let down = self.run(&["local", "down"]);
        if std::thread::panicking() {
            eprintln!("keeping {}", self.root.display());
        } else if down.status.success() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Runs a printed command line in bash; answers its stdout.
fn sh(line: &str) -> String {
    let out = Command::new("bash").args(["-c", line]).output().unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn demo_is_made_once_and_answers_ping() {
    let stack = Stack::up();

    let out = stack.ok(&["local", "demo", "--format", "json"]);
    let demo: Value = serde_json::from_slice(&out.stdout).expect("JSON from local demo");
    let inst = &demo["instance"];
    assert_eq!(
        inst["name"], "projects/demo-project/locations/local/instances/demo",
        "{demo}"
    );
    assert_eq!(inst["tier"], "STANDARD_HA", "{demo}");
    assert_eq!(inst["state"], "READY", "{demo}");
    assert_eq!(inst["replicaCount"], 2, "{demo}");

    // Its AUTH string: in a file only its owner reads, and on no command line.
    let auth_file = stack.data_dir().join("demo-auth");
    assert_eq!(demo["authFile"], auth_file.to_str().unwrap(), "{demo}");
    let mode = std::fs::metadata(&auth_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let auth = std::fs::read_to_string(&auth_file).unwrap();
    let redis_cli = demo["redisCli"].as_str().expect("redisCli");
    assert!(!auth.trim().is_empty());
    assert!(!redis_cli.contains(auth.trim()), "{redis_cli}");
    assert_eq!(sh(redis_cli), "PONG");

    // Again: the same instance, and the table's last line is the command dev.sh runs.
    let again = stack.ok(&["local", "demo"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists and is READY"), "{stderr}");
    let stdout = String::from_utf8(again.stdout).unwrap();
    let last = stdout.trim_end().lines().last().unwrap();
    assert_eq!(last, redis_cli, "{stdout}");
    let list = stack.ok(&["instances", "list", "--format", "json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn demo_needs_a_running_stack() {
    let root =
        std::env::temp_dir().join(format!("cachectl-demo-{}", uuid::Uuid::new_v4().simple()));
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"))
        .args(["local", "demo", "--data-dir"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cachectl local up"), "{stderr}");
    assert!(!root.exists());
}
