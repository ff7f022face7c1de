//! The API server under test, spoken to over HTTP: either a real `cacheplane-api` child
//! process ([`Api::start`]; it can be killed and restarted) or the router in-process
//! ([`Api::in_process`]: `tower::ServiceExt::oneshot` on `cacheplane_api::http::app`,
//! with the background worker running, as `cacheplane_api::run` sets it up but without
//! a socket).
//!
//! Process logs (stdout and stderr) go to `$TMPDIR/cacheplane-api-<db>-<port>.log`; their
//! tail is printed when start-up fails or the test panics, and the file is removed after
//! a passing test unless `CACHEPLANE_TEST_KEEP_LOGS` is set.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cacheplane_types::secret::Secret;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::db::TestDb;
use crate::net::free_port;
use crate::process::{log_tail, log_tail_from, workspace_bin};
use crate::wait::{try_wait_until, Poll, WaitError};

/// How long `Api::start` waits for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often it polls.
const READY_POLL: Duration = Duration::from_millis(50);

/// How requests reach the server.
#[derive(Clone)]
enum Transport {
    /// Over TCP to a process.
    Http {
        client: reqwest::Client,
        base: String,
    },
    /// Straight into the router.
    Router(axum::Router),
}

/// A cheap, cloneable handle on the API for requests with one token (e.g. in spawned
/// tasks). One on a process keeps working across `Api::restart` (same port and token).
#[derive(Clone)]
pub struct Caller {
    transport: Transport,
    token: String,
}

impl Caller {
    /// A handle on the API at `base` (`http://127.0.0.1:PORT`) that sends `token`.
    pub fn http(base: &str, token: &str) -> Caller {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("building the HTTP client");
        Caller {
            transport: Transport::Http {
                client,
                base: base.trim_end_matches('/').to_string(),
            },
            token: token.to_string(),
        }
    }

    /// One request with this handle's token; the status and the JSON body.
    pub async fn req(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req_as(Some(&self.token), method, path, body).await
    }

    /// One request with `token` (none: no `Authorization` header).
    pub async fn req_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let body = body.map(|b| b.to_string().into_bytes());
        self.send(method, path, auth.as_deref().map(str::as_bytes), body)
            .await
    }

    /// One request with a raw body (sent as `application/json`) and an optional raw
    /// `Authorization` header value; the status and the body as [`read_body`] reads it.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&[u8]>,
        body: Option<Vec<u8>>,
    ) -> (u16, Value) {
        let authorization =
            authorization.map(|v| HeaderValue::from_bytes(v).expect("a valid header value"));
        let json = HeaderValue::from_static("application/json");
        match &self.transport {
            Transport::Http { client, base } => {
                let mut request = client.request(method.clone(), format!("{base}{path}"));
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                if let Some(body) = body {
                    request = request.header(CONTENT_TYPE, json).body(body);
                }
                let response = request
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
                let status = response.status().as_u16();
                let bytes = response
                    .bytes()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
                (status, read_body(&bytes))
            }
            Transport::Router(router) => {
                let mut request = axum::http::Request::builder()
                    .method(method.clone())
                    .uri(path);
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
                if body.is_some() {
                    request = request.header(CONTENT_TYPE, json);
                }
                let request = request
                    .body(axum::body::Body::from(body.unwrap_or_default()))
                    .unwrap_or_else(|e| panic!("{method} {path}: not a request: {e}"));
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|e| match e {});
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
                (status, read_body(&bytes))
            }
        }
    }

    /// `POST /v1/{op}/wait?timeout=T`: the operation once done, or as it stands after
    /// `timeout` (e.g. `"10s"`).
    pub async fn wait_op(&self, op: &str, timeout: &str) -> Value {
        let (status, body) = self
            .req(
                Method::POST,
                &format!("/v1/{op}/wait?timeout={timeout}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "wait {op}: {body}");
        body
    }
}

/// An answer's body as JSON: `Null` when empty, a `Value::String` when not JSON.
pub fn read_body(bytes: &[u8]) -> Value {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
    }
}

/// An operation's name, from the Operation JSON or the name itself.
pub fn op_name(op: &Value) -> String {
    match op {
        Value::String(s) => s.clone(),
        _ => crate::json::string_field(op, "name"),
    }
}

/// `POST /v1/{op}/wait?timeout=T` with the admin token (see [`Caller::wait_op`]).
pub async fn wait_op(api: &Api, op: &str, timeout: &str) -> Value {
    api.caller.wait_op(op, timeout).await
}

/// The API under test: a process, or the router in-process.
pub struct Api {
    /// Base URL, e.g. `http://127.0.0.1:40123` (`http://in-process` in-process).
    pub base: String,
    /// The admin token the server was started with.
    pub admin_token: String,
    caller: Caller,
    kind: Kind,
}

enum Kind {
    Process(Box<ApiProcess>),
    InProcess {
        /// Cancels the notifier and the worker when the `Api` is dropped.
        _shutdown: tokio_util::sync::DropGuard,
    },
}

/// What a process needs to start and restart.
struct ApiProcess {
    port: u16,
    log_path: PathBuf,
    bin: PathBuf,
    db_url: String,
    extra_args: Vec<String>,
    child: Option<Child>,
    keep_log: bool,
}

impl Api {
    /// Starts a `cacheplane-api` process against `db` and waits until `/readyz` answers.
    pub async fn start(db: &TestDb) -> Api {
        Api::start_with_args(db, &[]).await
    }

    /// Like `start`, with extra command-line flags (e.g. `["--host-timeout", "1s"]`),
    /// which `restart` passes again.
    pub async fn start_with_args(db: &TestDb, args: &[&str]) -> Api {
        Api::start_with_token(db, args, new_admin_token()).await
    }

    /// Another `cacheplane-api` process on the same database, with the same admin token
    /// and flags, on a port of its own: a second replica of this API.
    pub async fn start_replica(&self, db: &TestDb) -> Api {
        let args = match &self.kind {
            Kind::Process(p) => p.extra_args.clone(),
            Kind::InProcess { .. } => panic!("replicas need an API process (Api::start)"),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Api::start_with_token(db, &args, self.admin_token.clone()).await
    }

    async fn start_with_token(db: &TestDb, args: &[&str], admin_token: String) -> Api {
        let mut last_error = String::new();
        // A free port can be taken between choosing it and the server binding it (tests
        // run in parallel), so a start that dies early is retried on another port.
        for _attempt in 0..3 {
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let mut api = Api {
                caller: Caller::http(&base, &admin_token),
                base,
                admin_token: admin_token.clone(),
                kind: Kind::Process(Box::new(ApiProcess {
                    port,
                    log_path: std::env::temp_dir()
                        .join(format!("cacheplane-api-{}-{port}.log", db.name())),
                    bin: workspace_bin("cacheplane-api"),
                    db_url: db.url.clone(),
                    extra_args: args.iter().map(|s| s.to_string()).collect(),
                    child: None,
                    keep_log: false,
                })),
            };
            let error = match api.spawn_and_wait().await {
                Ok(()) => return api,
                Err(error) => error,
            };
            api.process().keep_log = true;
            drop(api); // quietly: the message below carries the log's tail
            match error {
                StartError::Exited(msg) if msg.contains("in use") => last_error = msg,
                StartError::Exited(msg) | StartError::Timeout(msg) => panic!("{msg}"),
            }
        }
        panic!("cacheplane-api could not bind a port after 3 attempts: {last_error}");
    }

    /// The router in-process over `db`, set up as `cacheplane_api::run` does (migrations,
    /// the admin token, the notifier, the background worker) but with no socket.
    pub async fn in_process(db: &TestDb) -> Api {
        Api::in_process_with_args(db, &[]).await
    }

    /// Like `in_process`, with the server's command-line flags (e.g. `["--host-timeout",
    /// "1s"]`). `CACHEPLANE_*` variables of the environment apply too, as to the server.
    pub async fn in_process_with_args(db: &TestDb, args: &[&str]) -> Api {
        use cacheplane_api::{background, config::Config, http};
        let admin_token = new_admin_token();
        let mut argv = vec!["cacheplane-api"];
        argv.extend_from_slice(args);
        let mut config = <Config as clap::Parser>::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("cacheplane-api flags {args:?}: {e}"));
        config.database_url = Secret::new(db.url.clone());
        config.admin_token = Secret::new(admin_token.clone());
        let shutdown = CancellationToken::new();
        let state = cacheplane_api::connect(config, &shutdown)
            .await
            .unwrap_or_else(|e| panic!("starting the API in-process on {}: {e:#}", db.name()));
        tokio::spawn(background::run_worker(state.clone(), shutdown.clone()));
        Api {
            base: "http://in-process".into(),
            caller: Caller {
                transport: Transport::Router(http::app(state)),
                token: admin_token.clone(),
            },
            admin_token,
            kind: Kind::InProcess {
                _shutdown: shutdown.drop_guard(),
            },
        }
    }

    /// A cloneable handle with the admin token.
    pub fn caller(&self) -> Caller {
        self.caller.clone()
    }

    #[track_caller]
    fn process(&mut self) -> &mut ApiProcess {
        match &mut self.kind {
            Kind::Process(p) => p,
            Kind::InProcess { .. } => {
                panic!("this needs an API process (Api::start), not in-process")
            }
        }
    }

    /// The port the process listens on (kept across `restart`).
    pub fn port(&mut self) -> u16 {
        self.process().port
    }

    /// Kills the server with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process().child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit. Returns its exit
    /// status, or `None` if it was not running or did not exit in time (it is then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.process().child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = try_wait_until(
            "cacheplane-api exits",
            timeout,
            Duration::from_millis(20),
            || {
                let status = child.try_wait();
                async move {
                    match status {
                        Ok(Some(status)) => Ok(status),
                        _ => Err(Poll::<()>::NotYet("still running".into())),
                    }
                }
            },
        )
        .await;
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited.ok()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(
            self.process().child.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    /// Process id of the running server.
    pub fn pid(&mut self) -> Option<u32> {
        self.process().child.as_ref().map(Child::id)
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
    pub fn log_tail(&mut self, max_bytes: u64) -> String {
        log_tail(&self.process().log_path, max_bytes)
    }

    async fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let base = self.base.clone();
        let admin_token = self.admin_token.clone();
        let p = self.process();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.log_path.display()));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);

        let mut cmd = Command::new(&p.bin);
        // Only what the test passes configures the server: no stray settings from the
        // developer's environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CACHEPLANE_") {
                cmd.env_remove(&key);
            }
        }
        // Secrets through the environment, as the server takes them.
        cmd.env("DATABASE_URL", &p.db_url)
            .env("CACHEPLANE_ADMIN_TOKEN", &admin_token)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("RUST_BACKTRACE", "1")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", p.port))
            .args(&p.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", p.bin.display()));
        p.child = Some(child);

        let probe = reqwest::Client::new();
        let ready_url = format!("{base}/readyz");
        let ready = try_wait_until("cacheplane-api is ready", READY_TIMEOUT, READY_POLL, || {
            let exited = match p.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            let answer = probe.get(&ready_url).timeout(Duration::from_secs(2)).send();
            async move {
                if let Some(status) = exited {
                    return Err(Poll::Permanent(status));
                }
                match answer.await {
                    Ok(r) if r.status().as_u16() == 200 => Ok(()),
                    Ok(r) => Err(Poll::NotYet(format!("/readyz answered {}", r.status()))),
                    Err(e) => Err(Poll::NotYet(format!("/readyz: {e}"))),
                }
            }
        })
        .await;
        let log_path = p.log_path.clone();
        let tail = || log_tail_from(&log_path, log_start, 8192);
        match ready {
            Ok(()) => Ok(()),
            Err(WaitError::Permanent { error: status, .. }) => {
                self.process().child = None;
                Err(StartError::Exited(format!(
                    "cacheplane-api exited during start-up ({status}); log {}:\n{}",
                    log_path.display(),
                    tail()
                )))
            }
            Err(e) => {
                self.kill();
                Err(StartError::Timeout(format!(
                    "{e}; log {}:\n{}",
                    log_path.display(),
                    tail()
                )))
            }
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
        self.caller.req_as(token, method, path, body).await
    }

    /// One request with a raw body and an optional raw `Authorization` header value.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&[u8]>,
        body: &str,
    ) -> (u16, Value) {
        self.caller
            .send(method, path, authorization, Some(body.as_bytes().to_vec()))
            .await
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.caller.req(Method::GET, path, None).await
    }

    /// POST a JSON body with the admin token.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.caller.req(Method::POST, path, Some(body)).await
    }

    /// PATCH a JSON body with the admin token.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.caller.req(Method::PATCH, path, Some(body)).await
    }

    /// DELETE with the admin token.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.caller.req(Method::DELETE, path, None).await
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let Kind::Process(p) = &mut self.kind else {
            return;
        };
        if let Some(mut child) = p.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- cacheplane-api log {} (tail) ---\n{}",
                p.log_path.display(),
                log_tail(&p.log_path, 8192)
            );
        } else if !p.keep_log && std::env::var_os("CACHEPLANE_TEST_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&p.log_path);
        }
    }
}

enum StartError {
    /// The process exited before it was ready.
    Exited(String),
    /// It did not become ready in time (and was killed).
    Timeout(String),
}

fn new_admin_token() -> String {
    format!("cp-test-admin-{}", uuid::Uuid::new_v4().simple())
}

/// Creates instance `name` under `parent` (`/v1/projects/P/locations/R`), waits (up to
/// 60 s) until its create operation is done without error, and returns the instance and
/// its auth string.
pub async fn create_ready(api: &Api, parent: &str, name: &str, body: Value) -> (Value, String) {
    let (status, op) = api
        .post(&format!("{parent}/instances?instanceId={name}"), body)
        .await;
    assert_eq!(status, 200, "create {name}: {op}");
    let done = wait_op(api, &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "create {name}: {done}"
    );
    let (status, auth) = api
        .get(&format!("{parent}/instances/{name}/authString"))
        .await;
    assert_eq!(status, 200, "authString of {name}: {auth}");
    let (status, inst) = api.get(&format!("{parent}/instances/{name}")).await;
    assert_eq!(status, 200, "GET instance {name}: {inst}");
    (inst, crate::json::string_field(&auth, "authString"))
}
