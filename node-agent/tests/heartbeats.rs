//! Heartbeats go on their own task: an engine that does not answer (a tenant's
//! `CLIENT PAUSE`, SIGSTOP) neither delays them nor is reported down, only unresponsive;
//! an engine that exits is reported at once, not on the next pass. A real agent against
//! a stand-in API that records when each heartbeat arrives, over real `redis-server`s;
//! fails when `redis-server` is not installed.

mod common;

use std::time::Duration;

use cacheplane_node_agent::agent;
use cacheplane_types::{HostConfig, NodeReport, NodeRole, NodeSpec};
use common::fake_api::{Beat, FakeApi};
use common::{agent_config, connect, spec, wait_until, DataDir};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A BASIC node at `address(n)`.
fn basic(n: u8) -> NodeSpec {
    NodeSpec {
        restart_in_place: true,
        ..spec(n, NodeRole::Primary, None)
    }
}

fn report_of(beat: &Beat, id: Uuid) -> Option<&NodeReport> {
    beat.body.nodes.iter().find(|r| r.node_id == id)
}

/// Waits until a heartbeat after `from` satisfies `check` for node `id`; answers it.
async fn wait_report(
    api: &FakeApi,
    secs: u64,
    what: &str,
    from: usize,
    id: Uuid,
    check: impl Fn(&NodeReport) -> bool,
) -> Beat {
    let mut found = None;
    wait_until(secs, what, || {
        let hit = api.beats()[from.min(api.beats().len())..]
            .iter()
            .find(|b| report_of(b, id).is_some_and(&check))
            .cloned();
        let done = hit.is_some();
        found = hit;
        async move { done }
    })
    .await;
    found.expect("found")
}

fn pid_of(r: &NodeReport) -> Pid {
    Pid::from_raw(i32::try_from(r.pid.expect("a pid")).expect("pid"))
}

#[tokio::test]
async fn a_paused_engine_delays_no_heartbeat_and_is_unresponsive_not_down() {
    let bin = require_redis!();
    let data = DataDir::new("hb-pause");
    let (a, b) = (basic(40), basic(41));
    let api = FakeApi::start(HostConfig {
        connectors: Vec::new(),
        host: "hosts/hb".into(),
        generation: 1,
        nodes: vec![a.clone(), b.clone()],
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
    .await;
    let cancel = CancellationToken::new();
    let cfg = agent_config(&api.url, "hb", &data, &bin, "200ms");
    let agent = tokio::spawn(agent::run(cfg, cancel.clone()));
    let beat = wait_report(&api, 20, "both engines run", 0, a.node_id, |r| r.process_up).await;
    assert_eq!(beat.body.applied_generation, 1);
    wait_report(&api, 10, "b runs", 0, b.node_id, |r| r.process_up).await;

    // A tenant pauses every client of `a`, the agent's included, for 5 s.
    let mut c = connect(&a.address).await;
    c.call(&["CLIENT", "PAUSE", "5000", "ALL"])
        .await
        .expect("CLIENT PAUSE");
    let paused_at = Instant::now();
    let from = api.beats().len();
    let beat = wait_report(
        &api,
        10,
        "a is reported unresponsive",
        from,
        a.node_id,
        |r| r.unresponsive_seconds.is_some(),
    )
    .await;
    let r = report_of(&beat, a.node_id).expect("a's report");
    assert!(r.process_up, "a paused engine is not down: {r:?}");
    assert_eq!(
        r.role,
        Some(NodeRole::Primary),
        "its last answer stands: {r:?}"
    );
    let rb = report_of(&beat, b.node_id).expect("b's report");
    assert!(rb.process_up && rb.unresponsive_seconds.is_none(), "{rb:?}");

    // Through the pause, heartbeats keep their pace (the old single loop waited 2 s for
    // each INFO): no gap comes near the 2 s an INFO used to hold a pass.
    let pause_ends = paused_at + Duration::from_millis(4800);
    tokio::time::sleep_until(pause_ends).await;
    let during: Vec<Beat> = api.beats()[from..]
        .iter()
        .filter(|b| b.at <= pause_ends)
        .cloned()
        .collect();
    let gaps: Vec<Duration> = during.windows(2).map(|w| w[1].at - w[0].at).collect();
    let widest = gaps.iter().max().copied().unwrap_or_default();
    tracing::info!(
        beats = during.len(),
        ?widest,
        "heartbeats during a 5 s CLIENT PAUSE"
    );
    assert!(
        widest < Duration::from_millis(1500),
        "a heartbeat waited {widest:?} for a paused engine"
    );
    assert!(
        during
            .iter()
            .all(|b| report_of(b, a.node_id).is_some_and(|r| r.process_up)),
        "a was never reported down"
    );

    // It answers again: unresponsive no more.
    let from = api.beats().len();
    wait_report(&api, 10, "a answers again", from, a.node_id, |r| {
        r.process_up && r.unresponsive_seconds.is_none()
    })
    .await;

    // SIGSTOP: the same.
    let frozen = pid_of(report_of(&api.beats()[api.beats().len() - 1], b.node_id).expect("b"));
    kill(frozen, Signal::SIGSTOP).expect("SIGSTOP");
    let from = api.beats().len();
    let beat = wait_report(
        &api,
        10,
        "b is reported unresponsive",
        from,
        b.node_id,
        |r| r.unresponsive_seconds.is_some(),
    )
    .await;
    assert!(report_of(&beat, b.node_id).is_some_and(|r| r.process_up));
    kill(frozen, Signal::SIGCONT).expect("SIGCONT");

    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
}

#[tokio::test]
async fn an_engine_exit_is_reported_at_once() {
    let bin = require_redis!();
    let data = DataDir::new("hb-exit");
    // A STANDARD_HA primary: not restarted in place, so it stays down once killed.
    let p = spec(42, NodeRole::Primary, None);
    let api = FakeApi::start(HostConfig {
        connectors: Vec::new(),
        host: "hosts/hb-exit".into(),
        generation: 1,
        nodes: vec![p.clone()],
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
    .await;
    let cancel = CancellationToken::new();
    // Passes and heartbeats only every 30 s: only learning of the exit as it happens
    // reports it within the wait below.
    let cfg = agent_config(&api.url, "hb-exit", &data, &bin, "30s");
    let agent = tokio::spawn(agent::run(cfg, cancel.clone()));
    let beat = wait_report(&api, 20, "the engine runs", 0, p.node_id, |r| r.process_up).await;
    // After acting, the agent passes every 200 ms for 5 s: let that end, so that only
    // the exit watch can tell.
    tokio::time::sleep(Duration::from_millis(5500)).await;

    let from = api.beats().len();
    kill(
        pid_of(report_of(&beat, p.node_id).expect("p")),
        Signal::SIGKILL,
    )
    .expect("SIGKILL");
    let killed_at = Instant::now();
    let down = wait_report(
        &api,
        5,
        "a heartbeat reports the engine down",
        from,
        p.node_id,
        |r| !r.process_up,
    )
    .await;
    tracing::info!(after = ?(down.at - killed_at), "the engine's exit reached the API");

    cancel.cancel();
    agent
        .await
        .expect("joins")
        .expect("the agent stops cleanly");
}
