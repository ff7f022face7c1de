//! The memcached nodes of this host: each pass stops the nodes no longer wanted, starts
//! the missing ones, restarts (empty, with backoff) those whose memcached died, restarts
//! those whose flags must change (memory, threads, connections, address, parameters),
//! then asks every running memcached for `version` and `stats`, all at once within one
//! deadline, and builds the reports a heartbeat carries. A memcached node has no
//! replicas: it always restarts in place, empty, like a BASIC Redis node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use cacheplane_types::{MemcacheNodeReport, MemcacheNodeSpec};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use super::client::McClient;
use super::report::{self, Observation};
use super::{adopt, process, McDir};
use crate::backoff::Backoff;
use crate::exits::PidWatch;
use crate::net::dial::Dialer;
use crate::net::Net;
use crate::supervisor::{restart_backoff, OBSERVE_DEADLINE, STABLE_AFTER};

/// What the agent keeps about one memcached node between passes.
struct Tracked {
    dir: McDir,
    /// The spec its memcached runs with (also in its `spec.json`).
    applied: Option<MemcacheNodeSpec>,
    /// It has served: a start now is a restart (it comes back empty).
    was_up: bool,
    up_since: Option<Instant>,
    backoff: Backoff,
    /// No start before this instant.
    retry_at: Option<Instant>,
    /// Why the last start failed, in memcached's words.
    last_error: Option<String>,
    /// Restarts of a memcached that died, since the agent started.
    restarts: u64,
    client: Option<McClient>,
    /// Learns of its process's exit as it happens.
    watch: Option<PidWatch>,
}

impl Tracked {
    fn new(dir: McDir) -> Self {
        Tracked {
            dir,
            applied: None,
            was_up: false,
            up_since: None,
            backoff: restart_backoff(),
            retry_at: None,
            last_error: None,
            restarts: 0,
            client: None,
            watch: None,
        }
    }
}

/// The outcome of one pass.
#[derive(Debug, Clone, Default)]
pub struct McPass {
    /// One report per desired node and per node still being stopped.
    pub reports: Vec<MemcacheNodeReport>,
    /// Every action succeeded or failed for a reason now in a report; false when a stop
    /// must be tried again before the config counts as applied.
    pub applied: bool,
    /// Some action was taken.
    pub acted: bool,
}

/// The memcached nodes of this host.
pub struct McSupervisor {
    data_dir: PathBuf,
    /// The memcached binary; `None` when the host has none (every start then fails with
    /// that reason).
    memcached: Option<PathBuf>,
    net: Net,
    nodes: BTreeMap<Uuid, Tracked>,
    /// Notified when a memcached exits: a pass should follow at once.
    exited: Arc<Notify>,
}

impl McSupervisor {
    /// Takes over the memcached node directories under `data_dir`, adopting the
    /// memcached processes that run as their saved specs say; `exited` is notified when
    /// one exits.
    pub fn new(data_dir: PathBuf, memcached: Option<PathBuf>, exited: Arc<Notify>) -> Self {
        let mut nodes = BTreeMap::new();
        for f in adopt::scan(&data_dir) {
            let mut t = Tracked::new(f.dir);
            // A node with files has run before: starting it again brings it back empty.
            t.was_up = f.saved.is_some();
            t.applied = f.applied;
            if let (Some(pid), Some(_)) = (f.pid, &t.applied) {
                t.watch = Some(PidWatch::spawn(pid, exited.clone()));
            }
            nodes.insert(f.id, t);
        }
        McSupervisor {
            data_dir,
            memcached,
            net: Net::loopback(),
            nodes,
            exited,
        }
    }

    /// Runs memcached and dials it as `net` says (default: loopback).
    pub fn set_net(&mut self, net: Net) {
        self.net = net;
    }

    /// The specs the memcached processes run with now, desired or being stopped.
    pub fn applied_specs(&self) -> impl Iterator<Item = &MemcacheNodeSpec> {
        self.nodes.values().filter_map(|t| t.applied.as_ref())
    }

    /// One pass: stop, start, restart, then observe.
    pub async fn reconcile(&mut self, desired: &[MemcacheNodeSpec]) -> McPass {
        let wanted: BTreeSet<Uuid> = desired.iter().map(|s| s.node_id).collect();
        let mut pass = McPass {
            applied: true,
            ..McPass::default()
        };
        let gone: Vec<Uuid> = self
            .nodes
            .keys()
            .filter(|id| !wanted.contains(id))
            .copied()
            .collect();
        for id in gone {
            pass.acted = true;
            if !self.stop(id).await {
                pass.applied = false;
            }
        }
        for spec in desired {
            if self.converge(spec).await {
                pass.acted = true;
            }
        }
        pass.reports = self.observe(desired).await;
        pass
    }

    /// Brings one desired node to its spec; true when it acted.
    async fn converge(&mut self, spec: &MemcacheNodeSpec) -> bool {
        let id = spec.node_id;
        let dir = McDir::new(&self.data_dir, id);
        let net = self.net.clone();
        let t = self.nodes.entry(id).or_insert_with(|| Tracked::new(dir));
        let pid = process::engine_pid(&t.dir, t.applied.as_ref());
        match pid {
            Some(pid) => {
                let Some(old) = t.applied.clone() else {
                    // Ours (recorded), but run with flags nobody knows: restart it.
                    tracing::warn!(node = %id, pid, "memcached runs with unknown flags; restarting it");
                    self.restart_changed(spec).await;
                    return true;
                };
                match flags_differ(&old, spec, &net) {
                    Some(true) => {
                        tracing::info!(node = %id, instance = %spec.instance, "memcached's flags change; restarting it");
                        self.restart_changed(spec).await;
                        true
                    }
                    Some(false) => {
                        t.last_error = None;
                        if old != *spec {
                            // Nothing memcached sees changed (say, the version's name).
                            if let Err(e) = process::write_spec(spec, &t.dir) {
                                tracing::warn!(node = %id, error = %format!("{e:#}"), "cannot save the node's spec");
                            }
                            t.applied = Some(spec.clone());
                        }
                        if !t.watch.as_ref().is_some_and(|w| w.watches(pid)) {
                            t.watch = Some(PidWatch::spawn(pid, self.exited.clone()));
                        }
                        false
                    }
                    None => {
                        // The new parameters are refused: keep running the old ones.
                        t.last_error = process::args(spec, &t.dir).err();
                        false
                    }
                }
            }
            None => {
                t.client = None;
                t.watch = None;
                t.up_since = None;
                if t.retry_at.is_some_and(|at| Instant::now() < at) {
                    return false;
                }
                if t.was_up {
                    t.restarts += 1;
                    tracing::warn!(node = %id, instance = %spec.instance, "memcached is down; restarting it empty");
                }
                self.start(spec).await;
                true
            }
        }
    }

    /// Stops the node's memcached and starts it with `spec` at once (no backoff: it did
    /// not fail).
    async fn restart_changed(&mut self, spec: &MemcacheNodeSpec) {
        let Some(t) = self.nodes.get_mut(&spec.node_id) else {
            return;
        };
        t.client = None;
        t.watch = None;
        if let Err(e) = process::kill(&t.dir, t.applied.as_ref()).await {
            tracing::warn!(node = %spec.node_id, error = %format!("{e:#}"), "cannot stop memcached to change it; will retry");
            t.last_error = Some(format!("cannot stop memcached to change it: {e:#}"));
            return;
        }
        self.start(spec).await;
    }

    async fn start(&mut self, spec: &MemcacheNodeSpec) {
        let Some(t) = self.nodes.get_mut(&spec.node_id) else {
            return;
        };
        let result = match &self.memcached {
            Some(bin) => {
                let netns = self.net.netns_for(spec.network.as_ref());
                process::start(bin, spec, &t.dir, netns.as_deref()).await
            }
            None => Err("memcached is not installed on this host".to_string()),
        };
        t.retry_at = Some(Instant::now() + t.backoff.next_delay());
        t.client = None;
        match result {
            Ok(pid) => {
                tracing::info!(node = %spec.node_id, instance = %spec.instance, pid, "memcached started");
                t.was_up = true;
                t.up_since = Some(Instant::now());
                t.last_error = None;
                t.watch = Some(PidWatch::spawn(pid, self.exited.clone()));
                t.applied = Some(spec.clone());
            }
            Err(reason) => {
                tracing::warn!(node = %spec.node_id, instance = %spec.instance, %reason, "memcached could not start");
                t.last_error = Some(reason);
                t.applied = None;
            }
        }
    }

    /// Stops the node's memcached and removes its files; true when done.
    async fn stop(&mut self, id: Uuid) -> bool {
        let Some(t) = self.nodes.get_mut(&id) else {
            return true;
        };
        t.client = None;
        t.watch = None;
        match process::stop(&t.dir, t.applied.as_ref()).await {
            Ok(()) => {
                tracing::info!(node = %id, "memcached stopped and its files removed");
                self.nodes.remove(&id);
                true
            }
            Err(e) => {
                tracing::warn!(node = %id, error = %format!("{e:#}"), "cannot stop memcached; will retry");
                t.last_error = Some(format!("cannot stop memcached: {e:#}"));
                false
            }
        }
    }

    /// Asks every tracked node's memcached for `version` and `stats`, all at once within
    /// [`OBSERVE_DEADLINE`]; answers one report per tracked node.
    async fn observe(&mut self, desired: &[MemcacheNodeSpec]) -> Vec<MemcacheNodeReport> {
        let by_id: BTreeMap<Uuid, &MemcacheNodeSpec> =
            desired.iter().map(|s| (s.node_id, s)).collect();
        let deadline = Instant::now() + OBSERVE_DEADLINE;
        let mut asking = JoinSet::new();
        let mut pids = BTreeMap::new();
        for (id, t) in self.nodes.iter_mut() {
            let pid = process::engine_pid(&t.dir, t.applied.as_ref());
            pids.insert(*id, pid);
            let (Some(_), Some(spec)) = (pid, t.applied.as_ref().or(by_id.get(id).copied())) else {
                continue;
            };
            let client = t.client.take();
            let dialer = self.net.dialer_for(spec.network.as_ref());
            let (address, port, id) = (spec.address.clone(), spec.port, *id);
            asking.spawn(async move {
                let r = ask(client, &dialer, &address, port).await;
                (id, r)
            });
        }
        let mut seen: BTreeMap<Uuid, Observation> = BTreeMap::new();
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, asking.join_next()).await {
            let Ok((id, answer)) = joined else {
                continue;
            };
            match answer {
                Ok((o, client)) => {
                    if let Some(t) = self.nodes.get_mut(&id) {
                        t.client = Some(client);
                    }
                    seen.insert(id, o);
                }
                Err(e) => tracing::debug!(node = %id, error = %e, "memcached did not answer"),
            }
        }
        asking.abort_all();
        let now = Instant::now();
        let mut reports = Vec::new();
        for (id, t) in self.nodes.iter_mut() {
            let pid = pids.get(id).copied().flatten();
            let o = seen.get(id);
            if o.is_some()
                && t.up_since
                    .is_some_and(|s| now.duration_since(s) >= STABLE_AFTER)
            {
                t.backoff.reset();
                t.retry_at = None;
            }
            if o.is_some() && t.up_since.is_none() {
                t.up_since = Some(now);
            }
            let mut r = report::report(*id, pid, t.applied.as_ref(), o);
            r.restarts = Some(i64::try_from(t.restarts).unwrap_or(i64::MAX));
            r.error = t.last_error.clone().or_else(|| {
                (pid.is_some() && o.is_none()).then(|| {
                    format!("memcached runs but did not answer within {OBSERVE_DEADLINE:?}")
                })
            });
            reports.push(r);
        }
        reports
    }
}

/// `version` and `stats` over `client` or a new connection; answers the connection too,
/// for the next pass. A cached connection memcached closed (its idle timeout) is
/// replaced once.
async fn ask(
    client: Option<McClient>,
    dialer: &Dialer,
    address: &str,
    port: u16,
) -> std::io::Result<(Observation, McClient)> {
    if let Some(mut c) = client {
        if let Ok(o) = observe_over(&mut c).await {
            return Ok((o, c));
        }
    }
    let mut c = McClient::connect(dialer, address, port).await?;
    let o = observe_over(&mut c).await?;
    Ok((o, c))
}

async fn observe_over(c: &mut McClient) -> std::io::Result<Observation> {
    let version = c.version().await?;
    let stats = c.stats(None).await?;
    Ok(Observation { version, stats })
}

/// Whether memcached must restart to go from `old` to `new`: its arguments or its
/// namespace differ. `None` when `new`'s parameters are refused.
fn flags_differ(old: &MemcacheNodeSpec, new: &MemcacheNodeSpec, net: &Net) -> Option<bool> {
    // The directory does not matter here: both specs are of the same node.
    let dir = McDir::new(std::path::Path::new("/"), new.node_id);
    let new_args = process::args(new, &dir).ok()?;
    let old_args = process::args(old, &dir).ok();
    let moved = net.netns_for(old.network.as_ref()) != net.netns_for(new.network.as_ref());
    Some(old_args.as_ref() != Some(&new_args) || moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MemcacheNodeSpec {
        MemcacheNodeSpec {
            node_id: Uuid::from_u128(7),
            instance: "projects/p/locations/r/memcacheInstances/m".into(),
            memcache_version: "MEMCACHE_1_6".into(),
            address: "127.79.0.2".into(),
            port: 11211,
            memory_mb: 64,
            threads: 1,
            max_connections: 100,
            parameters: BTreeMap::new(),
            network: None,
        }
    }

    #[test]
    fn flags_decide_restarts() {
        let net = Net::loopback();
        let a = spec();
        assert_eq!(flags_differ(&a, &a, &net), Some(false));
        let renamed = MemcacheNodeSpec {
            memcache_version: "MEMCACHE_1_6_18".into(),
            ..a.clone()
        };
        assert_eq!(flags_differ(&a, &renamed, &net), Some(false));
        let mut bigger = a.clone();
        bigger.memory_mb = 128;
        assert_eq!(flags_differ(&a, &bigger, &net), Some(true));
        let mut tuned = a.clone();
        tuned.parameters.insert("idle-timeout".into(), "10".into());
        assert_eq!(flags_differ(&a, &tuned, &net), Some(true));
        let mut bad = a.clone();
        bad.parameters.insert("idle-timeout".into(), "-1".into());
        assert_eq!(flags_differ(&a, &bad, &net), None);
    }
}
