//! The nodes of this host: observes their engines (all at once, within one deadline),
//! runs the plan, applies its actions and builds the reports a heartbeat carries. Each
//! action is idempotent; a failure is logged per node and the pass goes on.
//!
//! An engine whose process runs but does not answer within the deadline (a paused
//! client, a long command, SIGSTOP) is *unresponsive*, not down: it is left alone, and
//! its report repeats the last answer with `unresponsive_seconds`. Only a process that
//! is gone is down; [`crate::exits`] learns of that the moment it happens.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::{NodeReport, NodeRole, NodeSpec};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::adopt;
use crate::backoff::Backoff;
use crate::exits::ExitWatch;
use crate::net::dial::Dialer;
use crate::net::Net;
use crate::plan::{self, Action, Change, Observed, Process};
use crate::redis::acl::{self, Login};
use crate::redis::client::{Client, ClientError};
use crate::redis::observe::{self, Info};
use crate::redis::{local, process, reconfigure, tls, NodeDir};
use crate::relink::{self, Relink};
use crate::switchover::Handovers;

/// Restart backoff of one node: 1 s, doubling, at most 30 s.
pub(crate) fn restart_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30))
}

/// An engine up this long has its restart backoff forgotten.
pub(crate) const STABLE_AFTER: Duration = Duration::from_secs(30);

/// How long one observation of all engines may take: an engine that has not answered
/// by then is unresponsive for this pass, whatever the others do.
pub const OBSERVE_DEADLINE: Duration = Duration::from_millis(500);

/// Slack over the time a step of the agent should take (its observation deadline, its
/// wait between passes) before the overrun is taken for the agent itself having been
/// stopped (SIGSTOP, a frozen VM) rather than for an engine being slow.
const PAUSE_SLACK: Duration = Duration::from_secs(1);

/// How long the agent itself was stopped during a step that should have taken at most
/// `expected` but took `elapsed` (monotonic time runs on while a process is stopped):
/// `None` when the step overran by no more than [`PAUSE_SLACK`], else the overrun, which
/// is no time an engine can be blamed for.
pub fn paused_for(elapsed: Duration, expected: Duration) -> Option<Duration> {
    (elapsed > expected + PAUSE_SLACK).then(|| elapsed - expected)
}

/// Longest wait for a remote primary's offset (a replica's lag).
const LAG_DEADLINE: Duration = Duration::from_millis(300);

/// What the agent keeps about one node between passes.
struct Tracked {
    dir: NodeDir,
    /// The spec last applied to the engine (also in the node's `spec.json`).
    applied: Option<NodeSpec>,
    /// The engine has served: a restart would come up empty.
    was_up: bool,
    up_since: Option<Instant>,
    backoff: Backoff,
    /// No start before this instant.
    retry_at: Option<Instant>,
    /// Why the last start or change failed, in the engine's words.
    last_error: Option<String>,
    client: Option<Client>,
    /// The running process (pid) and when it last answered, or was first seen silent.
    heard: Option<(u32, Instant)>,
    /// The report of its last answer, repeated while it does not answer.
    last_report: Option<NodeReport>,
    /// Learns of the engine's exit as it happens.
    exit_watch: Option<ExitWatch>,
    /// Hastens a replica's link after a start or a change of primary.
    relink: Option<Relink>,
    /// Restarts of a crashed engine since the agent started ([`Action::Restart`]).
    restarts: u64,
}

impl Tracked {
    fn new(dir: NodeDir) -> Self {
        Tracked {
            dir,
            applied: None,
            was_up: false,
            up_since: None,
            backoff: restart_backoff(),
            retry_at: None,
            last_error: None,
            client: None,
            heard: None,
            last_report: None,
            exit_watch: None,
            relink: None,
            restarts: 0,
        }
    }
}

/// The outcome of one reconcile pass.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// One report per desired node and per node still being stopped.
    pub reports: Vec<NodeReport>,
    /// Every action either succeeded or failed for a reason now in a report; false when
    /// something must be tried again before the config counts as applied.
    pub applied: bool,
    /// Some action was taken (the next pass comes sooner, to report convergence).
    pub acted: bool,
}

/// The engines of this host.
pub struct Supervisor {
    data_dir: PathBuf,
    redis_server: PathBuf,
    nodes: BTreeMap<Uuid, Tracked>,
    /// Connections to the primaries that local replicas follow, for their offsets.
    primaries: HashMap<EngineKey, Client>,
    /// Notified when an engine exits.
    exited: Arc<Notify>,
    /// The longest wait between two passes (the reconciler's interval).
    pass_interval: Duration,
    /// When the last pass ended: a longer wait than `pass_interval` until the next one
    /// means the agent was stopped.
    last_pass_end: Option<Instant>,
    /// Primaries handing over to a replica (coordinated switchovers).
    handovers: Handovers,
    /// Where engines run and how other hosts' engines are dialled.
    net: Net,
}

impl Supervisor {
    /// Takes over the node directories under `data_dir`, adopting running engines.
    pub async fn new(data_dir: PathBuf, redis_server: PathBuf) -> Self {
        let mut nodes = BTreeMap::new();
        for f in adopt::scan(&data_dir).await {
            let mut t = Tracked::new(f.dir);
            t.applied = f.applied;
            t.was_up = f.was_up;
            nodes.insert(f.id, t);
        }
        Supervisor {
            handovers: Handovers::new(data_dir.clone()),
            data_dir,
            redis_server,
            nodes,
            primaries: HashMap::new(),
            exited: Arc::new(Notify::new()),
            pass_interval: Duration::from_secs(1),
            last_pass_end: None,
            net: Net::loopback(),
        }
    }

    /// Runs engines and dials as `net` says (default: loopback, the agent's namespace).
    pub fn set_net(&mut self, net: Net) {
        self.net = net;
    }

    /// The specs the engines run with now (as last applied), desired or being stopped.
    pub fn applied_specs(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.values().filter_map(|t| t.applied.as_ref())
    }

    /// The longest wait between two passes (default 1 s); a longer one is taken for the
    /// agent having been stopped.
    pub fn set_pass_interval(&mut self, interval: Duration) {
        self.pass_interval = interval;
    }

    /// The agent was stopped for `paused`: engines cannot be blamed for not answering
    /// then, so their silence counts only from `paused` later.
    fn forgive(&mut self, paused: Duration) {
        let now = Instant::now();
        for t in self.nodes.values_mut() {
            if let Some((_, at)) = t.heard.as_mut() {
                *at = (*at + paused).min(now);
            }
        }
    }

    /// Notified whenever one of the engines exits: a pass should follow at once.
    pub fn exits(&self) -> Arc<Notify> {
        self.exited.clone()
    }

    /// Ids of the nodes the agent has files or engines for.
    pub fn node_ids(&self) -> Vec<Uuid> {
        self.nodes.keys().copied().collect()
    }

    /// One pass: observe, plan, apply, observe again what changed.
    pub async fn reconcile(&mut self, desired: &[NodeSpec]) -> Pass {
        let by_id: HashMap<Uuid, &NodeSpec> = desired.iter().map(|s| (s.node_id, s)).collect();
        if let Some(end) = self.last_pass_end {
            if let Some(paused) = paused_for(end.elapsed(), self.pass_interval) {
                tracing::warn!(?paused, "the agent itself was stopped between two passes; that time counts against no engine");
                self.forgive(paused);
            }
        }
        self.handovers.follow(desired, &self.exited, &self.net);
        let ids: Vec<Uuid> = self.nodes.keys().copied().collect();
        let (observed, mut reports) = self.observe(&ids, &by_id).await;
        let actions = plan::plan(desired, &observed);
        let mut pass = Pass {
            applied: true,
            ..Pass::default()
        };
        for action in actions {
            let id = match &action {
                Action::Start(s) | Action::Restart(s) => s.node_id,
                Action::Reconfigure { spec, .. } => spec.node_id,
                Action::Stop(id) => *id,
            };
            pass.acted = true;
            if !self.apply(action).await {
                pass.applied = false;
            }
            if self.nodes.contains_key(&id) {
                let (_, r) = self.observe(&[id], &by_id).await;
                reports.extend(r);
            } else {
                reports.remove(&id);
            }
        }
        self.add_lag(&mut reports).await;
        for (id, r) in reports.iter_mut() {
            let t = self.nodes.get(id);
            r.error = t.and_then(|t| t.last_error.clone());
            r.restarts = t.map(|t| i64::try_from(t.restarts).unwrap_or(i64::MAX));
            r.switchover = self.handovers.report(*id);
        }
        pass.reports = reports.into_values().collect();
        self.last_pass_end = Some(Instant::now());
        pass
    }

    /// Looks at the engines of `ids` all at once: each process, then INFO, all within
    /// [`OBSERVE_DEADLINE`]. An engine is reported unresponsive only from an observation
    /// the agent's own pause cannot explain: when the observation overran its deadline
    /// (the agent was stopped while it waited), the engines that did not answer are
    /// asked again with a fresh deadline, and the pause counts against none of them.
    async fn observe(
        &mut self,
        ids: &[Uuid],
        by_id: &HashMap<Uuid, &NodeSpec>,
    ) -> (BTreeMap<Uuid, Observed>, BTreeMap<Uuid, NodeReport>) {
        let mut observed = BTreeMap::new();
        let mut reports = BTreeMap::new();
        let (mut pending, paused) = self.ask(ids, by_id, &mut observed, &mut reports).await;
        if paused && !pending.is_empty() {
            let again: Vec<Uuid> = pending.keys().copied().collect();
            (pending, _) = self.ask(&again, by_id, &mut observed, &mut reports).await;
        }
        for (id, pid) in pending {
            tracing::debug!(node = %id, deadline = ?OBSERVE_DEADLINE, "engine did not answer INFO in time");
            let (o, r) = self.silent(id, pid);
            observed.insert(id, o);
            reports.insert(id, r);
        }
        (observed, reports)
    }

    /// One round of [`Self::observe`]: records the engines that are down or answered, and
    /// returns those that run but did not answer in time, and whether the round overran
    /// its deadline because the agent itself was stopped meanwhile (then the pause is
    /// forgiven, and those engines deserve a fresh deadline before being judged).
    async fn ask(
        &mut self,
        ids: &[Uuid],
        by_id: &HashMap<Uuid, &NodeSpec>,
        observed: &mut BTreeMap<Uuid, Observed>,
        reports: &mut BTreeMap<Uuid, NodeReport>,
    ) -> (BTreeMap<Uuid, u32>, bool) {
        let started = Instant::now();
        let deadline = started + OBSERVE_DEADLINE;
        let mut asking = JoinSet::new();
        let mut pending: BTreeMap<Uuid, u32> = BTreeMap::new();
        for &id in ids {
            let desired = by_id.get(&id).copied();
            let Some(t) = self.nodes.get_mut(&id) else {
                continue;
            };
            let pid = process::engine_pid(&t.dir, t.applied.as_ref().or(desired));
            let Some(pid) = pid else {
                let (o, r) = down(id, t);
                observed.insert(id, o);
                reports.insert(id, r);
                continue;
            };
            let client = t.client.take();
            let dir = t.dir.clone();
            let applied = t.applied.clone();
            let desired = desired.cloned();
            pending.insert(id, pid);
            asking.spawn(async move {
                let r = info(client, &dir, applied.as_ref(), desired.as_ref()).await;
                (id, r)
            });
        }
        while !pending.is_empty() {
            let (id, r) = match tokio::time::timeout_at(deadline, asking.join_next()).await {
                Ok(Some(Ok(answer))) => answer,
                Ok(Some(Err(_))) => continue,
                Ok(None) | Err(_) => break,
            };
            let Some(pid) = pending.remove(&id) else {
                continue;
            };
            let (o, r) = match r {
                Ok((info, client)) => self.answered(id, pid, &info, client),
                Err(e) => {
                    tracing::debug!(node = %id, error = %e, "engine did not answer INFO");
                    self.silent(id, pid)
                }
            };
            observed.insert(id, o);
            reports.insert(id, r);
        }
        asking.abort_all();
        let mut paused = false;
        if !pending.is_empty() {
            if let Some(p) = paused_for(started.elapsed(), OBSERVE_DEADLINE) {
                tracing::warn!(paused = ?p, "the agent itself was stopped while observing; asking the engines again");
                self.forgive(p);
                paused = true;
            }
        }
        (pending, paused)
    }

    /// Records an answer of engine `pid` of node `id`.
    fn answered(
        &mut self,
        id: Uuid,
        pid: u32,
        info: &Info,
        client: Client,
    ) -> (Observed, NodeReport) {
        let exited = self.exited.clone();
        let Some(t) = self.nodes.get_mut(&id) else {
            return (unknown(None), NodeReport::default());
        };
        let now = Instant::now();
        t.client = Some(client);
        t.was_up = true;
        t.last_error = None;
        t.heard = Some((pid, now));
        let since = *t.up_since.get_or_insert(now);
        if now.duration_since(since) >= STABLE_AFTER {
            t.backoff.reset();
            t.retry_at = None;
        }
        if !t.exit_watch.as_ref().is_some_and(|w| w.watches(pid)) {
            if let Some(s) = t.applied.as_ref() {
                t.exit_watch = Some(ExitWatch::spawn(pid, t.dir.clone(), s.clone(), exited));
            }
        }
        let mut report = observe::report(id, info, None);
        // Linked, but maybe not receiving writes yet (see `relink`): not up for the API.
        if report.master_link_up == Some(true) && t.relink.as_ref().is_some_and(|r| r.unsettled()) {
            report.master_link_up = Some(false);
        }
        t.last_report = Some(report.clone());
        let o = Observed {
            applied: t.applied.clone(),
            process: Process::Up {
                role: info.role(),
                master: info.master(),
            },
        };
        (o, report)
    }

    /// Records that engine `pid` of node `id` runs but did not answer.
    fn silent(&mut self, id: Uuid, pid: u32) -> (Observed, NodeReport) {
        let Some(t) = self.nodes.get_mut(&id) else {
            return (unknown(None), NodeReport::default());
        };
        let now = Instant::now();
        t.client = None;
        let since = match t.heard {
            Some((p, at)) if p == pid => at,
            _ => {
                t.heard = Some((pid, now));
                t.last_report = None;
                now
            }
        };
        let mut report = t.last_report.clone().unwrap_or_else(|| NodeReport {
            node_id: id,
            ..NodeReport::default()
        });
        report.process_up = true;
        report.pid = Some(i64::from(pid));
        report.unresponsive_seconds =
            Some(i64::try_from(now.duration_since(since).as_secs()).unwrap_or(i64::MAX));
        (unknown(t.applied.clone()), report)
    }

    /// Applies one action; false when it must be tried again before the config counts
    /// as applied.
    async fn apply(&mut self, action: Action) -> bool {
        match action {
            Action::Stop(id) => self.stop(id).await,
            Action::Start(spec) => self.start(spec, false).await,
            Action::Restart(spec) => self.start(spec, true).await,
            Action::Reconfigure { spec, what } => {
                let id = spec.node_id;
                let Some(t) = self.nodes.get_mut(&id) else {
                    return false;
                };
                let mut client = match t.client.take() {
                    Some(c) => c,
                    None => match connect(&t.dir, t.applied.as_ref(), &spec).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(node = %id, error = %e, "cannot reach engine to change it");
                            return false;
                        }
                    },
                };
                let applied = match what.contains(&Change::Tls) {
                    true => tls::reload(&mut client, &spec, &t.dir).await,
                    false => Ok(()),
                };
                let applied = match applied {
                    Ok(()) => {
                        reconfigure::apply(&mut client, &spec, t.applied.as_ref(), &what).await
                    }
                    Err(e) => Err(e),
                };
                match applied {
                    Ok(()) => {
                        tracing::info!(node = %id, instance = %spec.instance, changes = ?what, "changed engine online");
                        if let Err(e) = process::write_files(&spec, &t.dir) {
                            tracing::warn!(node = %id, error = %format!("{e:#}"), "cannot rewrite the engine's files");
                        }
                        if what.contains(&Change::Replication) {
                            t.relink = relink::hasten(&t.dir, &spec, self.net.dialer(&spec));
                        }
                        t.applied = Some(spec);
                        t.last_error = None;
                        t.client = Some(client);
                        true
                    }
                    Err(e) if e.is_transient() => {
                        tracing::warn!(node = %id, error = %e, "online change failed; will retry");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(node = %id, error = %e, "engine refused an online change");
                        t.last_error = Some(e.to_string());
                        t.client = Some(client);
                        true
                    }
                }
            }
        }
    }

    async fn start(&mut self, spec: NodeSpec, restart: bool) -> bool {
        let id = spec.node_id;
        let dir = NodeDir::new(&self.data_dir, id);
        let t = self.nodes.entry(id).or_insert_with(|| Tracked::new(dir));
        if restart {
            t.restarts += 1;
            tracing::warn!(node = %id, instance = %spec.instance, role = spec.role.as_str(), "engine is down; restarting it empty");
        }
        let netns = self.net.netns_of(&spec);
        let result = process::start_in(&self.redis_server, &spec, &t.dir, netns.as_deref()).await;
        t.retry_at = Some(Instant::now() + t.backoff.next_delay());
        t.client = None;
        match result {
            Ok(pid) => {
                tracing::info!(node = %id, instance = %spec.instance, pid, "engine started");
                t.was_up = true;
                t.up_since = Some(Instant::now());
                t.last_error = None;
                t.relink = relink::hasten(&t.dir, &spec, self.net.dialer(&spec));
            }
            Err(reason) => {
                tracing::warn!(node = %id, instance = %spec.instance, %reason, "engine could not start");
                t.last_error = Some(reason);
            }
        }
        t.applied = Some(spec);
        true
    }

    async fn stop(&mut self, id: Uuid) -> bool {
        let Some(t) = self.nodes.get_mut(&id) else {
            return true;
        };
        t.client = None;
        match process::stop(&t.dir, t.applied.as_ref()).await {
            Ok(()) => {
                tracing::info!(node = %id, "engine stopped and its files removed");
                self.nodes.remove(&id);
                true
            }
            Err(e) => {
                tracing::warn!(node = %id, error = %format!("{e:#}"), "cannot stop engine; will retry");
                false
            }
        }
    }

    /// Fills in each replica's lag: its primary's offset minus its own. The primary's
    /// offset comes from this pass when the primary is local, else from asking it.
    async fn add_lag(&mut self, reports: &mut BTreeMap<Uuid, NodeReport>) {
        let mut local: HashMap<EngineKey, i64> = HashMap::new();
        for (id, r) in reports.iter() {
            let spec = self.nodes.get(id).and_then(|t| t.applied.as_ref());
            if let (Some(s), Some(NodeRole::Primary), Some(off)) =
                (spec, r.role, r.replication_offset)
            {
                local.insert((self.net.netns_of(s), s.address.clone(), s.port), off);
            }
        }
        let mut used = Vec::new();
        for (id, r) in reports.iter_mut() {
            // An unlinked replica's primary is likely unreachable: asking it would only
            // stall the pass, and its lag matters only once linked.
            if r.role != Some(NodeRole::Replica) || r.master_link_up != Some(true) {
                continue;
            }
            let Some(spec) = self.nodes.get(id).and_then(|t| t.applied.clone()) else {
                continue;
            };
            let Some(addr) = spec.primary_address.clone() else {
                continue;
            };
            let key = (self.net.netns_of(&spec), addr, spec.port);
            let offset = match local.get(&key) {
                Some(o) => Some(*o),
                None => {
                    used.push(key.clone());
                    let logins = acl::logins(&[&spec]);
                    let dialer = self.net.dialer(&spec);
                    let ca = tls::ca_of(&spec);
                    tokio::time::timeout(
                        LAG_DEADLINE,
                        self.primary_offset(&key, &logins, &dialer, ca),
                    )
                    .await
                    .ok()
                    .flatten()
                }
            };
            if let (Some(p), Some(o)) = (offset, r.replication_offset) {
                r.lag_bytes = Some((p - o).max(0));
            }
        }
        self.primaries.retain(|k, _| used.contains(k));
    }

    async fn primary_offset(
        &mut self,
        key: &EngineKey,
        logins: &[Login],
        dialer: &Dialer,
        ca: Option<&str>,
    ) -> Option<i64> {
        let mut c = match self.primaries.remove(key) {
            Some(c) => c,
            None => dialer.client(&key.1, key.2, logins, ca).await.ok()?,
        };
        let text = c.info().await.ok()?;
        self.primaries.insert(key.clone(), c);
        let info = Info::parse(&text);
        (info.role() == Some(NodeRole::Primary))
            .then(|| info.replication_offset())
            .flatten()
    }
}

/// An engine by namespace (networks' pools may overlap), address and port.
type EngineKey = (Option<String>, String, u16);

/// A node whose engine process is gone.
fn down(id: Uuid, t: &mut Tracked) -> (Observed, NodeReport) {
    t.client = None;
    t.up_since = None;
    t.heard = None;
    t.last_report = None;
    t.exit_watch = None;
    let retry_due = t.retry_at.is_none_or(|at| Instant::now() >= at);
    let o = Observed {
        applied: t.applied.clone(),
        process: Process::Down {
            was_up: t.was_up,
            retry_due,
        },
    };
    let r = NodeReport {
        node_id: id,
        ..NodeReport::default()
    };
    (o, r)
}

/// A node whose engine runs but did not answer: left alone this pass.
fn unknown(applied: Option<NodeSpec>) -> Observed {
    Observed {
        applied,
        process: Process::Unknown,
    }
}

/// INFO from a node's engine, over `client` or a new connection; answers the connection
/// too, for the next pass.
async fn info(
    client: Option<Client>,
    dir: &NodeDir,
    applied: Option<&NodeSpec>,
    desired: Option<&NodeSpec>,
) -> Result<(Info, Client), ClientError> {
    let mut c = match client {
        Some(c) => c,
        None => {
            let Some(spec) = desired.or(applied) else {
                return Err(ClientError::Protocol(
                    "the node's address is unknown".into(),
                ));
            };
            connect(dir, applied, spec).await?
        }
    };
    let text = c.info().await?;
    Ok((Info::parse(&text), c))
}

/// Connects to a node's engine as the agent's user, or, for an engine started before
/// the lockdown (or while AUTH changes), with the AUTH string it runs with (`applied`)
/// or the desired one. See [`acl::logins`].
async fn connect(
    dir: &NodeDir,
    applied: Option<&NodeSpec>,
    desired: &NodeSpec,
) -> Result<Client, ClientError> {
    let target = applied.unwrap_or(desired);
    let specs: Vec<&NodeSpec> = applied.into_iter().chain([desired]).collect();
    local::connect(dir, target, &acl::logins(&specs)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_step_within_its_time_and_the_slack_is_no_pause() {
        assert_eq!(paused_for(ms(0), OBSERVE_DEADLINE), None);
        assert_eq!(paused_for(ms(500), OBSERVE_DEADLINE), None);
        // A slow engine or a busy host: the deadline plus up to the slack.
        assert_eq!(paused_for(ms(1500), OBSERVE_DEADLINE), None);
        assert_eq!(paused_for(ms(2000), ms(1000)), None);
    }

    #[test]
    fn an_overrun_beyond_the_slack_is_the_agent_stopped_and_counts_whole() {
        // SIGSTOPped 30 s while waiting for INFO: the 30 s are the agent's, not the engine's.
        assert_eq!(
            paused_for(ms(30_500), OBSERVE_DEADLINE),
            Some(Duration::from_secs(30))
        );
        assert_eq!(paused_for(ms(1501), OBSERVE_DEADLINE), Some(ms(1001)));
        // Stopped between two passes 1 s apart.
        assert_eq!(paused_for(ms(31_000), ms(1000)), Some(ms(30_000)));
    }
}
