//! A stand-in for the API's agent protocol, served on a loopback port: registration,
//! the host config (set by the test) and heartbeats, each recorded with when it arrived.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use cacheplane_types::{
    HeartbeatRequest, HeartbeatResponse, Host, HostConfig, HostState, RegisterHostRequest,
};
use tokio::time::Instant;

/// One heartbeat as the fake API received it.
#[derive(Debug, Clone)]
pub struct Beat {
    /// When it arrived.
    pub at: Instant,
    /// What it said.
    pub body: HeartbeatRequest,
}

#[derive(Default)]
struct Inner {
    config: Option<HostConfig>,
    beats: Vec<Beat>,
    registrations: Vec<RegisterHostRequest>,
}

/// The fake API; stops serving when dropped.
pub struct FakeApi {
    /// Its base URL.
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    /// Serves `config` to host `host`.
    pub async fn start(config: HostConfig) -> FakeApi {
        let inner = Arc::new(Mutex::new(Inner {
            config: Some(config),
            beats: Vec::new(),
            registrations: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/hosts/{host}", put(register))
            .route("/v1/hosts/{host}/config", get(config_of))
            .route("/v1/hosts/{host}/heartbeat", post(heartbeat))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { url, inner, server }
    }

    /// The heartbeats so far.
    pub fn beats(&self) -> Vec<Beat> {
        self.inner.lock().expect("lock").beats.clone()
    }

    /// The registrations so far.
    pub fn registrations(&self) -> Vec<RegisterHostRequest> {
        self.inner.lock().expect("lock").registrations.clone()
    }

    /// Replaces the config it serves.
    pub fn set_config(&self, config: HostConfig) {
        self.inner.lock().expect("lock").config = Some(config);
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn register(
    State(inner): Shared,
    axum::extract::Path(host): axum::extract::Path<String>,
    Json(req): Json<RegisterHostRequest>,
) -> Json<Host> {
    let generation = {
        let mut i = inner.lock().expect("lock");
        i.registrations.push(req.clone());
        i.config.as_ref().map_or(0, |c| c.generation)
    };
    Json(Host {
        name: format!("hosts/{host}"),
        zone: req.zone,
        address: req.address,
        memory_bytes: req.memory_bytes,
        allocated_memory_bytes: 0,
        engines: req.engines,
        state: HostState::Up,
        config_generation: generation,
        applied_generation: 0,
        last_heartbeat_time: None,
        create_time: chrono::Utc::now(),
    })
}

#[derive(serde::Deserialize)]
struct ConfigQuery {
    generation: Option<i64>,
}

async fn config_of(State(inner): Shared, Query(q): Query<ConfigQuery>) -> Json<HostConfig> {
    // A long-poll: hold a request for the current generation a little while.
    let current = inner.lock().expect("lock").config.clone();
    let current = current.expect("a config");
    if q.generation == Some(current.generation) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Json(
        inner
            .lock()
            .expect("lock")
            .config
            .clone()
            .expect("a config"),
    )
}

async fn heartbeat(
    State(inner): Shared,
    Json(body): Json<HeartbeatRequest>,
) -> Json<HeartbeatResponse> {
    let mut i = inner.lock().expect("lock");
    i.beats.push(Beat {
        at: Instant::now(),
        body,
    });
    Json(HeartbeatResponse {
        config_generation: i.config.as_ref().map_or(0, |c| c.generation),
    })
}
