//! A PostgreSQL cluster of one test's own, for tests that stop and start PostgreSQL: the
//! shared cluster of `DATABASE_URL` serves every other test running in parallel, so it
//! must never go down. It is `cachectl local postgres start|stop` (hidden), the same code
//! as scripts/lib/pg.sh's throwaway clusters, in a directory of its own under /tmp
//! (which the `postgres` user can reach when the tests run as root). The binary is
//! `target/debug/cachectl` (`cargo build --workspace --bins`).
//!
//! ```ignore
//! let pg = PrivatePg::start();
//! let db = TestDb::new_in(&pg.url).await;
//! pg.stop();   // pg_ctl stop -m fast
//! pg.start_again(); // same directory, same port
//! ```

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::process::workspace_bin;

/// A running private cluster; stopped and removed when dropped.
pub struct PrivatePg {
    /// `postgres://postgres@127.0.0.1:PORT/postgres` (the superuser: may create
    /// databases).
    pub url: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its directory.
    pub dir: PathBuf,
    cachectl: PathBuf,
}

impl PrivatePg {
    /// Initializes and starts a cluster in a new directory on a free port.
    pub fn start() -> PrivatePg {
        let cachectl = workspace_bin("cachectl");
        let dir = PathBuf::from(std::env::var("CACHEPLANE_PG_TMPDIR").unwrap_or("/tmp".into()))
            .join(format!("cacheplane-pg.{}", uuid::Uuid::new_v4().simple()));
        let started = run(&cachectl, &["--format", "json"], &dir, &["start"], &[]);
        let started: Value = serde_json::from_str(&started)
            .unwrap_or_else(|e| panic!("`cachectl local postgres start` printed {started:?}: {e}"));
        let port = started["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no port in {started}"));
        let url = started["databaseUrl"]
            .as_str()
            .unwrap_or_else(|| panic!("no databaseUrl in {started}"))
            .to_string();
        PrivatePg {
            url,
            port,
            dir,
            cachectl,
        }
    }

    /// Stops the cluster (`pg_ctl stop -m fast`: sessions are cut at once).
    pub fn stop(&self) {
        run(&self.cachectl, &[], &self.dir, &["stop"], &[]);
    }

    /// Starts it again, on the same port, and waits until it takes queries.
    pub fn start_again(&self) {
        let port = self.port.to_string();
        run(
            &self.cachectl,
            &["--format", "json"],
            &self.dir,
            &["start"],
            &["--port", &port],
        );
    }

    /// The cluster's log (the end of it), for messages.
    pub fn log_tail(&self) -> String {
        crate::process::log_tail(&self.dir.join("postgres.log"), 4000)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let out = Command::new(&self.cachectl)
            .args(["local", "postgres", "stop", "--remove", "--dir"])
            .arg(&self.dir)
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!(
                "stopping the private PostgreSQL in {} failed: {out:?}",
                self.dir.display()
            );
        }
    }
}

/// `cachectl GLOBAL… local postgres VERB --dir DIR EXTRA…`; its stdout, or a panic with
/// its output.
fn run(
    cachectl: &PathBuf,
    global: &[&str],
    dir: &std::path::Path,
    verb: &[&str],
    extra: &[&str],
) -> String {
    let out = Command::new(cachectl)
        .args(global)
        .args(["local", "postgres"])
        .args(verb)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cachectl.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cachectl local postgres {verb:?} --dir {} {extra:?} failed ({}): {stdout}{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
