//! Integration-test harness: a fresh database per test and real `cacheplane-api`
//! processes spoken to over HTTP.
//!
//! ```ignore
//! mod common;
//! use common::{Api, TestDb};
//!
//! #[tokio::test]
//! async fn example() {
//!     let db = TestDb::new().await;
//!     let api = Api::start(&db).await;
//!     let (status, body) = api.get("/v1/regions").await;
//!     assert_eq!(status, 200, "{body}");
//! }
//! ```
//!
//! `DATABASE_URL` must point at a PostgreSQL cluster where that role may `CREATE
//! DATABASE`; `scripts/test.sh` starts a throwaway one and sets it. Each test's database
//! is dropped when its `TestDb` goes out of scope, unless the test panicked (kept for
//! inspection) or `CACHEPLANE_TEST_KEEP_DB` is set. API logs (stdout and stderr) go to
//! `$TMPDIR/cacheplane-api-<db>-<port>.log`; their tail is printed when start-up fails or
//! the test panics, and the file is removed after a passing test unless
//! `CACHEPLANE_TEST_KEEP_LOGS` is set.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod agent;
pub mod checks;
pub mod client;
pub mod resp;
pub mod stack;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;

/// How long `Api::start` waits for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often it polls.
const READY_POLL: Duration = Duration::from_millis(50);

/// The `DATABASE_URL` of the test cluster, or a panic explaining how to get one.
pub fn cluster_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: the integration tests need a PostgreSQL cluster. \
             Run them with `bash scripts/test.sh` (it starts a throwaway cluster), or \
             start one with `eval \"$(bash scripts/lib/pg.sh start)\"` and run cargo again."
        ),
    }
}

/// `url` with its path (the database name) replaced by `/{database}`.
fn with_database(url: &str, database: &str) -> String {
    let mut parsed = reqwest::Url::parse(url)
        .unwrap_or_else(|e| panic!("DATABASE_URL {url:?} is not a valid URL: {e}"));
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A database of its own for one test, inside the `DATABASE_URL` cluster.
pub struct TestDb {
    /// Connection URL of this test's database.
    pub url: String,
    name: String,
    cluster_url: String,
}

impl TestDb {
    /// Creates `cp_test_<uuid>` in the cluster named by `DATABASE_URL`.
    pub async fn new() -> TestDb {
        let cluster_url = cluster_url();
        let name = format!("cp_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&cluster_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to DATABASE_URL ({cluster_url}): {e}; \
                     is the cluster running? `bash scripts/test.sh` starts one"
                )
            });
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let _ = conn.close().await;
        TestDb {
            url: with_database(&cluster_url, &name),
            name,
            cluster_url,
        }
    }

    /// The database's name (`cp_test_…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A direct connection to this test's database, for checks the API does not expose.
    pub async fn connect(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CACHEPLANE_TEST_KEEP_DB").is_some() {
            eprintln!("keeping test database {} ({})", self.name, self.url);
            return;
        }
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread
        // with a runtime of its own. Best effort: the cluster is thrown away anyway.
        let cluster_url = self.cluster_url.clone();
        let name = self.name.clone();
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&cluster_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// A running `cacheplane-api` process on its own port, against a `TestDb`.
pub struct Api {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    /// The admin token the server was started with.
    pub admin_token: String,
    /// The port it listens on (kept across `restart`).
    pub port: u16,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    /// HTTP client used by the request helpers; free to use directly.
    pub client: reqwest::Client,
    db_url: String,
    extra_args: Vec<String>,
    child: Option<Child>,
    keep_log: bool,
}

impl Api {
    /// Starts the API against `db` and waits until `/readyz` answers 200.
    pub async fn start(db: &TestDb) -> Api {
        Api::start_with_args(db, &[]).await
    }

    /// Like `start`, with extra command-line flags (e.g. `["--host-timeout", "1s"]`),
    /// which `restart` passes again.
    pub async fn start_with_args(db: &TestDb, args: &[&str]) -> Api {
        let admin_token = format!("cp-test-admin-{}", uuid::Uuid::new_v4().simple());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("building the HTTP client");
        let mut last_error = String::new();
        // A free port can be taken between choosing it and the server binding it (tests
        // run in parallel), so a start that dies early is retried on another port.
        for _attempt in 0..3 {
            let port = free_port();
            let mut api = Api {
                base: format!("http://127.0.0.1:{port}"),
                admin_token: admin_token.clone(),
                port,
                log_path: std::env::temp_dir()
                    .join(format!("cacheplane-api-{}-{port}.log", db.name())),
                client: client.clone(),
                db_url: db.url.clone(),
                extra_args: args.iter().map(|s| s.to_string()).collect(),
                child: None,
                keep_log: false,
            };
            let error = match api.spawn_and_wait().await {
                Ok(()) => return api,
                Err(error) => error,
            };
            api.keep_log = true;
            drop(api); // quietly: the message below carries the log's tail
            match error {
                StartError::Exited(msg) if msg.contains("in use") => last_error = msg,
                StartError::Exited(msg) | StartError::Timeout(msg) => panic!("{msg}"),
            }
        }
        panic!("cacheplane-api could not bind a port after 3 attempts: {last_error}");
    }

    /// Kills the server with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit. Returns its exit
    /// status, or `None` if it was not running or did not exit in time (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server if it is running and starts it again on the same port, database
    /// and admin token; waits for `/readyz`.
    pub async fn restart(&mut self) {
        self.kill();
        // The old listener may linger for a moment; retry while the port is busy.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(StartError::Exited(msg))
                    if msg.contains("in use") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(StartError::Exited(msg)) | Err(StartError::Timeout(msg)) => panic!("{msg}"),
            }
        }
    }

    /// The last `max_bytes` of the server's log.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        log_tail(&self.log_path, max_bytes)
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path.display()));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cacheplane-api"));
        // Only what the test passes configures the server: no stray settings from the
        // developer's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHEPLANE_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("DATABASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_BACKTRACE", "1")
            .arg("--database-url")
            .arg(&self.db_url)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-token")
            .arg(&self.admin_token)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_cacheplane-api")));
        self.child = Some(child);

        let started = Instant::now();
        let ready_url = format!("{}/readyz", self.base);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                let tail = log_tail_from(&self.log_path, log_start, 8192);
                return Err(StartError::Exited(format!(
                    "cacheplane-api exited during start-up ({status}); log {}:\n{tail}",
                    self.log_path.display()
                )));
            }
            let probe = self
                .client
                .get(&ready_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(&probe, Ok(r) if r.status().as_u16() == 200) {
                return Ok(());
            }
            if started.elapsed() >= READY_TIMEOUT {
                self.kill();
                let last = match probe {
                    Ok(r) => format!("last /readyz answer: {}", r.status()),
                    Err(e) => format!("last /readyz error: {e}"),
                };
                let tail = log_tail_from(&self.log_path, log_start, 8192);
                return Err(StartError::Timeout(format!(
                    "cacheplane-api not ready after {READY_TIMEOUT:?} ({last}); log {}:\n{tail}",
                    self.log_path.display()
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// One HTTP request. `path` starts with `/` (e.g. `/v1/regions?pageSize=2`).
    /// Returns the status and the JSON body (`Value::Null` when the body is empty, a
    /// `Value::String` when it is not JSON).
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        read_response(response).await
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.req(Method::GET, path, Some(&self.admin_token), None)
            .await
    }

    /// POST a JSON body with the admin token.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(Method::POST, path, Some(&self.admin_token), Some(body))
            .await
    }

    /// PATCH a JSON body with the admin token.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(Method::PATCH, path, Some(&self.admin_token), Some(body))
            .await
    }

    /// DELETE with the admin token.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.req(Method::DELETE, path, Some(&self.admin_token), None)
            .await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- cacheplane-api log {} (tail) ---\n{}",
                self.log_path.display(),
                self.log_tail(8192)
            );
        } else if !self.keep_log && std::env::var_os("CACHEPLANE_TEST_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

enum StartError {
    /// The process exited before it was ready.
    Exited(String),
    /// It did not become ready in time (and was killed).
    Timeout(String),
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

fn log_tail(path: &Path, max_bytes: u64) -> String {
    log_tail_from(path, 0, max_bytes)
}

/// The last `max_bytes` of `path` after byte offset `from`.
fn log_tail_from(path: &Path, from: u64, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(max_bytes));
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An answer as (status, JSON body); an empty body is `Null`, a body that is not JSON a
/// string.
pub async fn read_response(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}
