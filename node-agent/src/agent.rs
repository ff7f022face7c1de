//! The agent's loops, each its own task so that none waits for another: a config
//! watcher (register, then long-poll the host config, save it, wake the reconciler), a
//! reconciler (observe, plan, apply, keep the read endpoints ([`crate::proxy`]) in step,
//! publish the reports) on an interval plus wake-ups (a new config, an engine's exit),
//! and a heartbeat that sends the latest reports every interval, and at once when they
//! change, however long an engine call or an action takes; with `--metrics-address`, a
//! `/metrics` listener that shows each pass's reports ([`crate::metrics`]). All stop on
//! the cancellation token; the engines keep running, since they are the caches.

use std::os::unix::fs::DirBuilderExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use cacheplane_types::{
    HeartbeatRequest, HostConfig, MemcacheNodeReport, NodeReport, RefusedConfig,
    RegisterHostRequest,
};
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::api::ApiClient;
use crate::backoff::{retry, Backoff};
use crate::config::Config;
use crate::memcache::discovery::DiscoveryEndpoints;
use crate::memcache::supervise::McSupervisor;
use crate::memcache::version as mc_version;
use crate::meminfo;
use crate::metrics::{self, Metrics, Snapshot};
use crate::net::{Net, Placement, Realiser};
use crate::proxy::{Limits, ReadEndpoints};
use crate::redis::version;
use crate::safety;
use crate::store::ConfigStore;
use crate::supervisor::Supervisor;

/// After an action, passes come this often for a while, so that convergence (a replica's
/// link coming up) is reported without waiting a full heartbeat interval.
const QUICK_INTERVAL: Duration = Duration::from_millis(200);
/// How long quick passes go on after the last action.
const QUICK_FOR: Duration = Duration::from_secs(5);

fn api_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
}

/// What both loops share.
struct Shared {
    api: ApiClient,
    registration: RegisterHostRequest,
    /// The host is registered with the API (heartbeats may go).
    registered: AtomicBool,
    /// Asks the watcher to poll again at once (the API has a newer config).
    nudge: Notify,
    /// Asks the heartbeat to go at once (the reports changed).
    beat_now: Notify,
    /// What the heartbeat sends: the latest reconcile's outcome.
    status: watch::Sender<Option<Status>>,
    /// The config the agent refuses to apply now (see [`crate::safety`]).
    refused: Mutex<Option<RefusedConfig>>,
    /// What `/metrics` shows: the latest pass's reports and read endpoints.
    metrics: Metrics,
}

impl Shared {
    fn refused(&self) -> Option<RefusedConfig> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn refused_generation(&self) -> Option<i64> {
        self.refused().map(|r| r.generation)
    }

    fn set_refused(&self, r: Option<RefusedConfig>) {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

/// What the reconciler last saw, for the heartbeat.
#[derive(Debug, Clone, PartialEq)]
struct Status {
    applied_generation: i64,
    reports: Vec<NodeReport>,
    memcache: Vec<MemcacheNodeReport>,
}

/// What the reconciler runs: the Redis nodes, the memcached nodes and the Memcached
/// discovery endpoints.
struct Engines {
    redis: Supervisor,
    memcached: McSupervisor,
    discovery: DiscoveryEndpoints,
}

/// Runs the agent until `cancel` fires. Fails at start on a configuration the agent
/// cannot work with, or when the API refuses the registration.
pub async fn run(cfg: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    cfg.check()?;
    let host_id = cfg.host_id()?;
    check_host_id(&host_id)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let engine = version::engine_of(&cfg.redis_server).await?;
    let memcached = mc_version::probe(&cfg.memcached).await;
    let memory_bytes = match cfg.memory_bytes {
        Some(m) if m > 0 => m,
        Some(_) => anyhow::bail!("--memory-bytes must be more than 0"),
        None => meminfo::read()?.total_bytes,
    };
    let store = ConfigStore::new(&cfg.data_dir);
    let saved = match store.load() {
        Ok(Some(c)) if c.host == format!("hosts/{host_id}") => Some(c),
        Ok(Some(c)) => {
            tracing::warn!(saved_for = %c.host, "saved config is for another host; ignored");
            None
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "saved config unreadable; ignored");
            None
        }
    };
    tracing::info!(
        host = %host_id, zone = %cfg.zone, engine = %engine,
        memcached = memcached.as_ref().map(|m| m.version.as_str()), memory_bytes,
        saved_generation = saved.as_ref().map(|c| c.generation),
        "node agent starting"
    );
    if cfg.primary_lease.is_some() {
        tracing::warn!(
            "--primary-lease is ignored: STANDARD_HA primaries are fenced by their \
             replicas (min-replicas-to-write), not by heartbeats"
        );
    }
    let net = Net::new(
        cfg.network_mode,
        &cfg.netns_prefix,
        &host_id,
        cfg.host_interface.clone(),
    );
    let realiser = Realiser::new(net.clone(), &cfg.data_dir);
    let mut supervisor = Supervisor::new(cfg.data_dir.clone(), cfg.redis_server.clone()).await;
    supervisor.set_pass_interval(cfg.heartbeat_interval);
    supervisor.set_net(net.clone());
    let mut mc_supervisor = McSupervisor::new(
        cfg.data_dir.clone(),
        memcached.as_ref().map(|_| cfg.memcached.clone()),
        supervisor.exits(),
    );
    mc_supervisor.set_net(net.clone());
    let discovery = DiscoveryEndpoints::new(
        net,
        memcached
            .as_ref()
            .map_or(mc_version::DEFAULT_VERSION, |m| m.version.as_str()),
    );
    let mut engines = vec![engine];
    engines.extend(memcached.map(|m| m.engine));
    let shared = Arc::new(Shared {
        api: ApiClient::new(&cfg.api_urls(), &host_id, cfg.token.expose())?,
        registration: RegisterHostRequest {
            zone: cfg.zone.clone(),
            address: cfg.address.clone(),
            memory_bytes,
            engines,
        },
        registered: AtomicBool::new(false),
        nudge: Notify::new(),
        beat_now: Notify::new(),
        status: watch::channel(None).0,
        refused: Mutex::new(None),
        metrics: Metrics::new(),
    });
    // Bound before anything runs, so that a wrong address fails the start.
    let metrics_listener = match cfg.metrics_address {
        Some(address) => Some(metrics::serve::bind(address, &cfg.data_dir).await?),
        None => None,
    };
    let (tx, rx) = watch::channel(saved.map(Arc::new));
    // A refused registration ends the watcher with an error, and with it the agent.
    let stop = cancel.child_token();
    let watcher = async {
        let r = watch_config(
            &shared,
            &store,
            cfg.poll_timeout,
            tx,
            cfg.accept_config_drops,
            &stop,
        )
        .await;
        stop.cancel();
        r
    };
    let heartbeats = heartbeat_loop(&shared, cfg.heartbeat_interval, rx.clone(), &stop);
    let endpoints = ReadEndpoints::with_net(realiser.net().clone())
        .with_limits(Limits {
            max_connections: cfg.read_endpoint_max_connections,
            idle_timeout: cfg.read_endpoint_idle_timeout,
        })
        .with_threads(cfg.read_endpoint_threads)
        .with_kernel(cfg.kernel_read_endpoints());
    let engines = Engines {
        redis: supervisor,
        memcached: mc_supervisor,
        discovery,
    };
    let reconciler = reconcile_loop(
        &shared,
        engines,
        realiser,
        endpoints,
        cfg.heartbeat_interval,
        rx,
        &stop,
    );
    let metrics_server = async {
        if let Some(listener) = metrics_listener {
            metrics::serve::serve(listener, shared.metrics.clone(), stop.clone()).await;
        }
    };
    let (watched, (), (), ()) = tokio::join!(watcher, reconciler, heartbeats, metrics_server);
    tracing::info!("node agent stopped; engines left running");
    watched
}

/// The API's rule for host ids, checked before the id goes into URLs.
fn check_host_id(id: &str) -> anyhow::Result<()> {
    let ok = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        anyhow::bail!("host id '{id}' must be 1-63 lowercase letters, digits, dots or hyphens; pass --host-id");
    }
    Ok(())
}

/// Registers (retrying while the API is away), then long-polls the host config for as
/// long as the agent runs. A refused registration ends the agent.
async fn watch_config(
    shared: &Shared,
    store: &ConfigStore,
    poll_timeout: Duration,
    tx: watch::Sender<Option<Arc<HostConfig>>>,
    accept_drops: bool,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    if !register(shared, cancel).await? {
        return Ok(());
    }
    let mut held = tx.borrow().as_ref().map(|c| c.generation);
    let mut backoff = api_backoff();
    // The first poll, and any after a nudge, asks for the config at once rather than
    // waiting for one newer than held: the API's generation may also have gone back.
    let mut at_once = true;
    loop {
        // Wait for a config newer than the one refused too, if newer than held.
        let refused = shared.refused_generation();
        let known = if at_once { None } else { held.max(refused) };
        at_once = false;
        // A nudge restarts a long-poll that waits for a newer generation, never a request
        // for the config at once: that one answers with the newest config anyway, and an
        // API slower than the heartbeat interval would otherwise see it cancelled and
        // sent again for ever (the nudge then waits for the next long-poll).
        let result = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = shared.nudge.notified(), if known.is_some() => {
                at_once = true;
                continue;
            }
            r = shared.api.config(known, poll_timeout) => r,
        };
        match result {
            Ok(config) => {
                backoff.reset();
                if Some(config.generation) == held {
                    shared.set_refused(None);
                    continue;
                }
                let verdict = safety::judge(tx.borrow().as_deref(), &config, accept_drops);
                if let safety::Verdict::Refuse(reason) = verdict {
                    if refused != Some(config.generation) {
                        tracing::error!(
                            generation = config.generation,
                            held = ?held,
                            %reason,
                            "host config refused: the agent keeps running what it runs; \
                             restart it with --accept-config-drops to apply such a config"
                        );
                    }
                    shared.set_refused(Some(RefusedConfig {
                        generation: config.generation,
                        reason,
                    }));
                    continue;
                }
                shared.set_refused(None);
                if let Some(h) = held.filter(|h| config.generation < *h) {
                    tracing::warn!(
                        held = h,
                        got = config.generation,
                        "the API's config generation went back; following the API (--accept-config-drops)"
                    );
                }
                tracing::info!(
                    generation = config.generation,
                    nodes = config.nodes.len(),
                    "new host config"
                );
                if let Err(e) = store.save(&config) {
                    tracing::error!(error = %format!("{e:#}"), "cannot save the host config; applying it anyway");
                }
                held = Some(config.generation);
                tx.send_replace(Some(Arc::new(config)));
            }
            Err(e) if e.code() == Some(404) => {
                tracing::warn!(error = %e, "the API does not know this host; registering again");
                if !register(shared, cancel).await? {
                    return Ok(());
                }
                at_once = true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "config poll failed");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = shared.nudge.notified() => at_once = true,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Registers the host, retrying while the API is away; `Ok(false)` when cancelled.
async fn register(shared: &Shared, cancel: &CancellationToken) -> anyhow::Result<bool> {
    let r = retry(cancel, "registering the host", api_backoff(), || {
        shared.api.register(&shared.registration)
    })
    .await;
    match r {
        None => Ok(false),
        Some(Ok(host)) => {
            tracing::info!(host = %host.name, zone = %host.zone, generation = host.config_generation, "registered");
            shared.registered.store(true, Ordering::Relaxed);
            Ok(true)
        }
        Some(Err(e)) => Err(e).context("the API refused the registration"),
    }
}

/// Observes and reconciles every `interval`, at once when the config changes or an
/// engine exits, and more often for a while after acting; publishes each pass's reports
/// for the heartbeat, which goes at once when they changed. Does nothing before a config
/// is known (from disk or the API): an unknown desired state never stops an engine.
async fn reconcile_loop(
    shared: &Shared,
    engines: Engines,
    mut realiser: Realiser,
    mut endpoints: ReadEndpoints,
    interval: Duration,
    mut rx: watch::Receiver<Option<Arc<HostConfig>>>,
    cancel: &CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut applied_generation: i64 = 0;
    let mut quick_until: Option<Instant> = None;
    let mut config_open = true;
    let Engines {
        redis: mut supervisor,
        memcached: mut mc_supervisor,
        mut discovery,
    } = engines;
    let exits = supervisor.exits();
    loop {
        let quick = quick_until
            .filter(|until| Instant::now() < *until)
            .map(|_| Instant::now() + QUICK_INTERVAL);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            r = rx.changed(), if config_open => config_open = r.is_ok(),
            _ = exits.notified() => {}
            _ = tick.tick() => {}
            _ = sleep_until(quick), if quick.is_some() => {}
        }
        let Some(config) = rx.borrow_and_update().clone() else {
            continue;
        };
        // Namespaces and addresses first (a start or a promotion needs them), and what
        // the pass stopped or gave up removed after it.
        sync_net(&mut realiser, &supervisor, &mc_supervisor, &config).await;
        let pass = supervisor.reconcile(&config.nodes).await;
        let mc_pass = mc_supervisor.reconcile(&config.memcache_nodes).await;
        discovery.update(&config.discovery_endpoints);
        sync_net(&mut realiser, &supervisor, &mc_supervisor, &config).await;
        endpoints.update(&config.nodes);
        if pass.applied && mc_pass.applied {
            applied_generation = config.generation;
        }
        if pass.acted || mc_pass.acted {
            quick_until = Some(Instant::now() + QUICK_FOR);
        }
        shared.metrics.publish(
            Snapshot::of(
                config.nodes.iter().chain(supervisor.applied_specs()),
                &pass.reports,
                endpoints.status(),
            )
            .with_memcache(
                config
                    .memcache_nodes
                    .iter()
                    .chain(mc_supervisor.applied_specs()),
                &mc_pass.reports,
            ),
        );
        let status = Status {
            applied_generation,
            reports: pass.reports,
            memcache: mc_pass.reports,
        };
        let urgent = shared.status.send_if_modified(|old| {
            let changed = old.as_ref().is_none_or(|o| news(o, &status));
            *old = Some(status);
            changed
        });
        if urgent {
            shared.beat_now.notify_one();
        }
    }
}

/// Realises the network of every node (Redis or memcached) the config wants or a
/// supervisor still runs, of the config's discovery endpoints, and its connectors.
async fn sync_net(
    realiser: &mut Realiser,
    supervisor: &Supervisor,
    mc_supervisor: &McSupervisor,
    config: &HostConfig,
) {
    let redis = config
        .nodes
        .iter()
        .chain(supervisor.applied_specs())
        .map(Placement::of_node);
    let memcached = config
        .memcache_nodes
        .iter()
        .chain(mc_supervisor.applied_specs())
        .map(Placement::of_memcache);
    let discovery = config
        .discovery_endpoints
        .iter()
        .map(Placement::of_discovery);
    let places: Vec<Placement> = redis.chain(memcached).chain(discovery).collect();
    realiser.sync(&places, &config.connectors).await;
}

/// Whether `new` tells the API something it must hear at once: another applied
/// generation, or a node that appeared, went, came up or down, changed role or link,
/// turned unresponsive or answered again, failed, or whose switchover moved on. Offsets, memory and the seconds
/// counting up wait for the next interval.
fn news(old: &Status, new: &Status) -> bool {
    fn key(r: &NodeReport) -> impl PartialEq + '_ {
        (
            r.node_id,
            r.process_up,
            r.unresponsive_seconds.is_some(),
            r.role,
            r.master_link_up,
            r.full_sync_in_progress,
            r.error.as_deref(),
            r.pid,
            r.switchover.as_ref().map(|s| (s.id, s.state)),
        )
    }
    fn mc_key(r: &MemcacheNodeReport) -> impl PartialEq + '_ {
        (
            r.node_id,
            r.process_up,
            r.pid,
            &r.parameters,
            r.error.as_deref(),
        )
    }
    old.applied_generation != new.applied_generation
        || old.reports.len() != new.reports.len()
        || old
            .reports
            .iter()
            .zip(&new.reports)
            .any(|(a, b)| key(a) != key(b))
        || old.memcache.len() != new.memcache.len()
        || old
            .memcache
            .iter()
            .zip(&new.memcache)
            .any(|(a, b)| mc_key(a) != mc_key(b))
}

/// Sends the latest reports every `interval` and whenever the reconciler says they
/// changed, on its own task: neither engine calls nor actions delay it. An answer naming
/// another generation than the config held makes the watcher poll at once.
async fn heartbeat_loop(
    shared: &Shared,
    interval: Duration,
    config: watch::Receiver<Option<Arc<HostConfig>>>,
    cancel: &CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status_rx = shared.status.subscribe();
    let mut api_down_logged = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = shared.beat_now.notified() => {}
            _ = tick.tick() => {}
        }
        if !shared.registered.load(Ordering::Relaxed) {
            continue;
        }
        let Some(status) = status_rx.borrow_and_update().clone() else {
            continue;
        };
        let req = HeartbeatRequest {
            applied_generation: status.applied_generation,
            free_memory_bytes: meminfo::read().ok().and_then(|m| m.available_bytes),
            nodes: status.reports,
            refused_config: shared.refused(),
            memcache_nodes: status.memcache,
        };
        let sent = tokio::select! {
            _ = cancel.cancelled() => return,
            r = shared.api.heartbeat(&req) => r,
        };
        match sent {
            Ok(resp) => {
                if api_down_logged {
                    tracing::info!("heartbeats reach the API again");
                    api_down_logged = false;
                }
                let held = config.borrow().as_ref().map(|c| c.generation);
                if Some(resp.config_generation) != held
                    && Some(resp.config_generation) != shared.refused_generation()
                {
                    shared.nudge.notify_one();
                }
            }
            Err(e) if e.code() == Some(404) => {
                tracing::warn!(error = %e, "the API does not know this host; registering again");
                match shared.api.register(&shared.registration).await {
                    Ok(_) => tracing::info!("registered again"),
                    Err(e) => tracing::warn!(error = %e, "registering again failed"),
                }
            }
            Err(e) => {
                if api_down_logged {
                    tracing::debug!(error = %e, "heartbeat failed");
                } else {
                    tracing::warn!(error = %e, "heartbeat failed; engines keep running and serving, retrying every interval");
                    api_down_logged = true;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids() {
        assert!(check_host_id("host-1.local").is_ok());
        assert!(check_host_id("Host").is_err());
        assert!(check_host_id("-a").is_err());
        assert!(check_host_id("").is_err());
        assert!(check_host_id("a/b").is_err());
    }
}
