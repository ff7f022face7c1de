//! The simulated agents: one Tokio task per host that speaks the agent protocol the way
//! `cacheplane-node-agent` does (node-agent/src/agent.rs), without running any engine.
//!
//! Each agent registers its host with its own host token, then runs two loops side by
//! side, as the real agent does: a config long-poll (`GET …/config?generation=N&timeout=T`,
//! asking at once when a heartbeat answer names a generation it does not hold), and a
//! heartbeat every interval (a random phase per agent, each period jittered) plus one at
//! once after applying a new config. Applying a config is instant: every node of it is
//! reported running in the role asked, replicas with their link up and a replication
//! offset that grows with time, a primary told to hand over as handed over.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cacheplane_types::{
    HeartbeatRequest, HeartbeatResponse, HostConfig, NodeReport, NodeRole, NodeSpec,
    RegisterHostRequest, SwitchoverReport, SwitchoverState,
};
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Longest wait for a register or a heartbeat (the real agent's `CALL_TIMEOUT`).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine every simulated host offers and reports.
const ENGINE: &str = "REDIS_7_0";

/// The agents' schedule.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between two heartbeats (the agent's `--heartbeat-interval`, 1 s by default).
    pub interval: Duration,
    /// Each period is `interval` × (1 ± `jitter`), drawn afresh.
    pub jitter: f64,
    /// Longest wait of one config long-poll (the agent's `--poll-timeout`, 30 s).
    pub poll_timeout: Duration,
}

/// One simulated host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Its index in the fleet.
    pub index: usize,
    /// Host id.
    pub host: String,
    /// Its zone.
    pub zone: String,
    /// The API replica it talks to (`http://127.0.0.1:PORT`).
    pub base: String,
    /// Its host token.
    pub token: String,
    /// Memory it offers.
    pub memory_bytes: i64,
}

/// What the benchmark can do to one running agent.
#[derive(Debug)]
pub struct Control {
    /// Cancelled: the agent stops heartbeating and polling (a host gone silent).
    pub silence: CancellationToken,
    last_beat_sent: Mutex<Option<Instant>>,
}

impl Control {
    /// When the agent last sent a heartbeat (answered or not): the host's last
    /// heartbeat as the API recorded it is no earlier.
    pub fn last_beat_sent(&self) -> Option<Instant> {
        *lock(&self.last_beat_sent)
    }
}

/// What the agents saw, for the figures.
#[derive(Debug, Default)]
pub struct Records {
    /// Client-side latency of each heartbeat answered 200 while measuring.
    pub beats: Vec<Duration>,
    /// Heartbeats that failed while measuring, by why.
    pub beat_failures: BTreeMap<String, u64>,
    /// Config polls that failed while measuring, by why.
    pub poll_failures: BTreeMap<String, u64>,
    /// Registrations that had to be retried, by why.
    pub register_failures: BTreeMap<String, u64>,
    /// New configs received while measuring.
    pub configs: u64,
    /// Instance name → when each host holding one of its nodes first received a config
    /// with it.
    pub seen: HashMap<String, Vec<Instant>>,
    /// Node → the index of the agent whose config has it.
    pub holders: HashMap<Uuid, usize>,
    /// Node → when its agent first received it as the primary, having held it as a
    /// replica (a promotion reaching the host).
    pub promoted: HashMap<Uuid, Instant>,
    /// Node → its address, as its host config gives it.
    pub addresses: HashMap<Uuid, String>,
    /// Addresses of the nodes of hosts that went down, with when: replicas of them
    /// report their link down from then on.
    pub down: HashMap<String, Instant>,
}

/// Shared by every agent and the benchmark.
#[derive(Debug, Default)]
pub struct Board {
    measuring: AtomicBool,
    registered: AtomicUsize,
    records: Mutex<Records>,
}

impl Board {
    /// Starts or stops counting heartbeats, failures and configs.
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Ordering::SeqCst);
    }

    fn measuring(&self) -> bool {
        self.measuring.load(Ordering::Relaxed)
    }

    /// How many agents have registered.
    pub fn registered(&self) -> usize {
        self.registered.load(Ordering::SeqCst)
    }

    /// The records, locked (never held across an await).
    pub fn records(&self) -> MutexGuard<'_, Records> {
        lock(&self.records)
    }

    fn failed(&self, which: fn(&mut Records) -> &mut BTreeMap<String, u64>, why: String) {
        *which(&mut self.records()).entry(why).or_default() += 1;
    }

    /// Takes the host of agent `index` down with its engines: the replicas of its nodes
    /// on other hosts report their link to them down from now on.
    pub fn host_down(&self, index: usize) {
        let now = Instant::now();
        let mut r = self.records();
        let gone: Vec<String> = r
            .holders
            .iter()
            .filter(|(_, h)| **h == index)
            .filter_map(|(n, _)| r.addresses.get(n).cloned())
            .collect();
        for a in gone {
            r.down.entry(a).or_insert(now);
        }
    }

    fn received(&self, index: usize, old: Option<&HostConfig>, new: &HostConfig, at: Instant) {
        let before: HashMap<Uuid, NodeRole> = old
            .map(|c| c.nodes.iter().map(|n| (n.node_id, n.role)).collect())
            .unwrap_or_default();
        let measuring = self.measuring();
        let mut r = self.records();
        if measuring {
            r.configs += 1;
        }
        for n in &new.nodes {
            r.holders.insert(n.node_id, index);
            r.addresses.insert(n.node_id, n.address.clone());
            match before.get(&n.node_id) {
                None => r.seen.entry(n.instance.clone()).or_default().push(at),
                Some(NodeRole::Replica) if n.role == NodeRole::Primary => {
                    r.promoted.entry(n.node_id).or_insert(at);
                }
                Some(_) => {}
            }
        }
    }
}

/// A poisoned lock still holds usable figures.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the agent of `spec` on `set`; it runs until `stop` (or its own silence) is
/// cancelled.
pub fn spawn(
    set: &mut JoinSet<()>,
    spec: HostSpec,
    timing: Timing,
    board: Arc<Board>,
    stop: &CancellationToken,
) -> anyhow::Result<Arc<Control>> {
    let control = Arc::new(Control {
        silence: stop.child_token(),
        last_beat_sent: Mutex::new(None),
    });
    let wire = Wire::new(&spec)?;
    let agent = Agent {
        spec,
        timing,
        board,
        control: control.clone(),
        wire,
        state: Mutex::new(Held::default()),
        beat_now: Notify::new(),
        nudge: Notify::new(),
        started: Instant::now(),
    };
    set.spawn(async move { agent.run().await });
    Ok(control)
}

/// The agent's HTTP client (its own connections, as a separate process has).
struct Wire {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Wire {
    fn new(spec: &HostSpec) -> anyhow::Result<Wire> {
        Ok(Wire {
            http: reqwest::Client::builder()
                .tcp_nodelay(true)
                .connect_timeout(Duration::from_secs(5))
                .build()?,
            url: format!("{}/v1/hosts/{}", spec.base, spec.host),
            token: spec.token.clone(),
        })
    }

    /// Sends `rb`; the answer, or why it failed (`HTTP 503`, `timeout`, …).
    async fn send<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T, String> {
        let resp = rb
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| transport_failure(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport_failure(&e))?;
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("bad answer: {e}"))
    }
}

fn transport_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "connection broken".into()
    }
}

/// The config the agent holds and the generation it applied.
#[derive(Debug, Default)]
struct Held {
    config: Option<HostConfig>,
}

struct Agent {
    spec: HostSpec,
    timing: Timing,
    board: Arc<Board>,
    control: Arc<Control>,
    wire: Wire,
    state: Mutex<Held>,
    /// A new config was applied: heartbeat now.
    beat_now: Notify,
    /// A heartbeat answer names another generation: poll now.
    nudge: Notify,
    started: Instant,
}

impl Agent {
    async fn run(self) {
        if !self.register().await {
            return;
        }
        self.board.registered.fetch_add(1, Ordering::SeqCst);
        tokio::join!(self.heartbeats(), self.polls());
    }

    /// Registers, retrying every second; false once silenced.
    async fn register(&self) -> bool {
        let body = RegisterHostRequest {
            zone: self.spec.zone.clone(),
            address: "127.0.0.1".into(),
            memory_bytes: self.spec.memory_bytes,
            engines: vec![ENGINE.into()],
        };
        loop {
            let rb = self
                .wire
                .http
                .put(&self.wire.url)
                .json(&body)
                .timeout(CALL_TIMEOUT);
            let sent = tokio::select! {
                _ = self.control.silence.cancelled() => return false,
                r = self.wire.send::<serde_json::Value>(rb) => r,
            };
            match sent {
                Ok(_) => return true,
                Err(why) => self.board.failed(|r| &mut r.register_failures, why),
            }
            if !self.pause(Duration::from_secs(1)).await {
                return false;
            }
        }
    }

    /// Sleeps `d`; false if silenced meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.control.silence.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    fn held_generation(&self) -> Option<i64> {
        lock(&self.state).config.as_ref().map(|c| c.generation)
    }

    async fn heartbeats(&self) {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut next = Instant::now() + self.timing.interval.mul_f64(rng.gen::<f64>());
        loop {
            tokio::select! {
                biased;
                _ = self.control.silence.cancelled() => return,
                _ = self.beat_now.notified() => {}
                _ = tokio::time::sleep_until(next.into()) => {
                    let j = self.timing.jitter;
                    next += self.timing.interval.mul_f64(1.0 + rng.gen_range(-j..=j));
                }
            }
            let req = self.report();
            let sent = Instant::now();
            *lock(&self.control.last_beat_sent) = Some(sent);
            let rb = self
                .wire
                .http
                .post(format!("{}/heartbeat", self.wire.url))
                .json(&req)
                .timeout(CALL_TIMEOUT);
            let answer = tokio::select! {
                _ = self.control.silence.cancelled() => return,
                r = self.wire.send::<HeartbeatResponse>(rb) => r,
            };
            let took = sent.elapsed();
            match answer {
                Ok(resp) => {
                    if self.board.measuring() {
                        self.board.records().beats.push(took);
                    }
                    if Some(resp.config_generation) != self.held_generation() {
                        self.nudge.notify_one();
                    }
                }
                Err(why) if self.board.measuring() => {
                    self.board.failed(|r| &mut r.beat_failures, why);
                }
                Err(_) => {}
            }
        }
    }

    async fn polls(&self) {
        let mut at_once = true;
        loop {
            let held = self.held_generation();
            let waits = held.is_some() && !at_once;
            let mut rb = self.wire.http.get(format!("{}/config", self.wire.url));
            rb = match held.filter(|_| !at_once) {
                Some(g) => rb
                    .query(&[
                        ("generation", g.to_string()),
                        (
                            "timeout",
                            format!("{}ms", self.timing.poll_timeout.as_millis()),
                        ),
                    ])
                    .timeout(self.timing.poll_timeout + CALL_TIMEOUT),
                None => rb.timeout(CALL_TIMEOUT),
            };
            at_once = false;
            let answer = tokio::select! {
                _ = self.control.silence.cancelled() => return,
                // As the real agent: a nudge restarts a long-poll, never a request
                // for the config at once (under load it would never finish).
                _ = self.nudge.notified(), if waits => {
                    at_once = true;
                    continue;
                }
                r = self.wire.send::<HostConfig>(rb) => r,
            };
            match answer {
                Ok(config) if Some(config.generation) == held => {}
                Ok(config) => {
                    let at = Instant::now();
                    let mut state = lock(&self.state);
                    self.board
                        .received(self.spec.index, state.config.as_ref(), &config, at);
                    state.config = Some(config);
                    drop(state);
                    self.beat_now.notify_one();
                }
                Err(why) => {
                    if self.board.measuring() {
                        self.board.failed(|r| &mut r.poll_failures, why);
                    }
                    if !self.pause(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        }
    }

    /// The heartbeat for the config held, applied as it is.
    fn report(&self) -> HeartbeatRequest {
        let state = lock(&self.state);
        let Some(config) = state.config.as_ref() else {
            return HeartbeatRequest {
                applied_generation: 0,
                free_memory_bytes: Some(self.spec.memory_bytes),
                nodes: Vec::new(),
                refused_config: None,
                memcache_nodes: Vec::new(),
            };
        };
        // A replication stream of 1 MB/s since the agent started.
        let offset = 1_000 + self.started.elapsed().as_millis() as i64 * 1_000;
        let records = self.board.records();
        let nodes: Vec<NodeReport> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let cut = n.primary_address.as_ref().and_then(|a| records.down.get(a));
                node_report(n, offset, 10_000 + i as i64, cut.map(Instant::elapsed))
            })
            .collect();
        drop(records);
        let used: i64 = nodes.iter().filter_map(|n| n.used_memory_bytes).sum();
        HeartbeatRequest {
            applied_generation: config.generation,
            free_memory_bytes: Some(self.spec.memory_bytes - used),
            nodes,
            refused_config: None,
            memcache_nodes: Vec::new(),
        }
    }
}

/// A node running in the role asked, healthy; a primary told to hand over reports the
/// handover done (a replica of the target), as the real agent does once its engine's
/// `FAILOVER TO` is done. A replica whose primary's host went down `link_down` ago
/// reports its link down.
fn node_report(n: &NodeSpec, offset: i64, pid: i64, link_down: Option<Duration>) -> NodeReport {
    let handed_over = n.role == NodeRole::Primary && n.switchover.is_some();
    let role = if handed_over {
        NodeRole::Replica
    } else {
        n.role
    };
    let replica = role == NodeRole::Replica;
    NodeReport {
        node_id: n.node_id,
        process_up: true,
        role: Some(role),
        master_link_up: replica.then_some(link_down.is_none()),
        master_link_down_since_seconds: link_down.filter(|_| replica).map(|d| d.as_secs() as i64),
        replication_offset: Some(offset),
        lag_bytes: replica.then_some(0),
        used_memory_bytes: Some(n.maxmemory_bytes / 4),
        connected_clients: Some(if replica { 2 } else { 5 }),
        pid: Some(pid),
        engine_version: Some("7.0.15".into()),
        switchover: n
            .switchover
            .as_ref()
            .filter(|_| handed_over)
            .map(|s| SwitchoverReport {
                id: s.id,
                state: SwitchoverState::Done,
                message: None,
            }),
        ..NodeReport::default()
    }
}
