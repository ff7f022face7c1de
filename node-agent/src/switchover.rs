//! The old primary's side of a coordinated switchover (a manual LIMITED_DATA_LOSS
//! failover): when its spec says `switchover`, the agent has the engine hand over to the
//! target replica by itself, with Redis's `FAILOVER TO <target> <port> TIMEOUT <ms>`:
//! the engine pauses writes, waits until the target has processed its whole replication
//! stream, turns itself into a replica of the target and makes the target primary
//! (`PSYNC FAILOVER`); if the target does not catch up within the timeout, or refuses,
//! the engine aborts and takes writes again. No write it acknowledged is lost.
//!
//! The agent meanwhile looks at `INFO replication` every [`EVERY`] and asks the target
//! for an acknowledgement each time (`REPLCONF GETACK *`: a replica acknowledges by
//! itself only once a second, and the paused primary asks no more), so the handover
//! takes milliseconds, not up to a second of paused writes. Once the engine is a
//! replica of the target and the target is primary, the agent gives up the primary
//! endpoint address (and lifts the write fence, meaningless on a replica) at once, so
//! that the new primary can bind it, and reports `DONE`; an aborted handover, or none
//! within the timeout and [`GRACE`], is `ABORTED` with the reason. The API records the
//! new roles on `DONE`. A handover whose spec goes away before it ends is aborted
//! (`FAILOVER ABORT`).
//!
//! The roles of both engines belong to the switchover until the API records them: the
//! reconciler leaves them alone (see [`crate::plan::differences`]).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacheplane_types::{NodeRole, NodeSpec, SwitchoverReport, SwitchoverSpec, SwitchoverState};
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::net::dial::Dialer;
use crate::net::Net;
use crate::plan::Change;
use crate::redis::client::{Client, Reply};
use crate::redis::observe::Info;
use crate::redis::{acl, local, reconfigure, NodeDir};

/// How often the engine's state is looked at (and the target asked to acknowledge).
pub const EVERY: Duration = Duration::from_millis(5);

/// How long past the engine's own timeout the agent waits for a handover that left
/// the waiting phase (the engine is handing over) before aborting it.
pub const GRACE: Duration = Duration::from_secs(5);

/// The handovers the agent runs, by node.
#[derive(Debug)]
pub struct Handovers {
    data_dir: PathBuf,
    by_node: HashMap<Uuid, Handover>,
}

#[derive(Debug)]
struct Handover {
    dir: NodeDir,
    spec: NodeSpec,
    id: Uuid,
    task: AbortHandle,
    outcome: Arc<Mutex<SwitchoverReport>>,
}

impl Handovers {
    /// No handovers yet, for the nodes under `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Handovers {
            data_dir,
            by_node: HashMap::new(),
        }
    }

    /// Starts a handover for every primary in `desired` whose spec says `switchover`
    /// and that has none running for it, and aborts those whose spec no longer asks for
    /// them. `wake` is notified when one ends, so that a pass reports it at once.
    pub fn follow(&mut self, desired: &[NodeSpec], wake: &Arc<Notify>, net: &Net) {
        let wanted: HashMap<Uuid, (&NodeSpec, &SwitchoverSpec)> = desired
            .iter()
            .filter(|s| s.role == NodeRole::Primary)
            .filter_map(|s| Some((s.node_id, (s, s.switchover.as_ref()?))))
            .collect();
        self.by_node.retain(|node, h| {
            let keep = wanted.get(node).is_some_and(|(_, s)| s.id == h.id);
            if !keep {
                h.cancel();
            }
            keep
        });
        for (node, (spec, s)) in wanted {
            if self.by_node.contains_key(&node) {
                continue;
            }
            tracing::info!(%node, instance = %spec.instance, target = %s.target_address, "handing over to the replica");
            let outcome = Arc::new(Mutex::new(report(s.id, SwitchoverState::HandingOver, None)));
            let dir = NodeDir::new(&self.data_dir, node);
            let task = tokio::spawn(run(
                dir.clone(),
                net.dialer(spec),
                (*spec).clone(),
                s.clone(),
                outcome.clone(),
                wake.clone(),
            ));
            self.by_node.insert(
                node,
                Handover {
                    dir,
                    spec: (*spec).clone(),
                    id: s.id,
                    task: task.abort_handle(),
                    outcome,
                },
            );
        }
    }

    /// How the handover of `node` goes, for its report.
    pub fn report(&self, node: Uuid) -> Option<SwitchoverReport> {
        self.by_node.get(&node).map(|h| lock(&h.outcome).clone())
    }
}

impl Handover {
    /// Stops following it; an engine still handing over is told to abort.
    fn cancel(&self) {
        let running = !self.task.is_finished();
        self.task.abort();
        if running && lock(&self.outcome).state == SwitchoverState::HandingOver {
            let (dir, spec) = (self.dir.clone(), self.spec.clone());
            tokio::spawn(async move {
                if let Ok(mut c) = own_engine(&dir, &spec).await {
                    // "No failover in progress" is as good.
                    let _ = c.call(&["FAILOVER", "ABORT"]).await;
                }
            });
        }
    }
}

fn lock(m: &Mutex<SwitchoverReport>) -> std::sync::MutexGuard<'_, SwitchoverReport> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn report(id: Uuid, state: SwitchoverState, message: Option<String>) -> SwitchoverReport {
    SwitchoverReport { id, state, message }
}

async fn run(
    dir: NodeDir,
    dialer: Dialer,
    spec: NodeSpec,
    s: SwitchoverSpec,
    outcome: Arc<Mutex<SwitchoverReport>>,
    wake: Arc<Notify>,
) {
    let started = Instant::now();
    let result = hand_over(&dir, &dialer, &spec, &s).await;
    let done = match result {
        Ok(()) => {
            tracing::info!(node = %spec.node_id, instance = %spec.instance, target = %s.target_address, took = ?started.elapsed(), "handed over: the engine is a replica of the new primary");
            report(s.id, SwitchoverState::Done, None)
        }
        Err(why) => {
            tracing::warn!(node = %spec.node_id, instance = %spec.instance, target = %s.target_address, %why, "handover aborted; the engine stays primary");
            report(s.id, SwitchoverState::Aborted, Some(why))
        }
    };
    *lock(&outcome) = done;
    wake.notify_one();
}

/// What a look at the old primary's `INFO replication` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A primary not failing over: the handover is to start, or it was aborted.
    Primary,
    /// Writes paused, waiting for the target to catch up.
    Waiting,
    /// Demoted, handing the primary role to the target.
    InProgress,
    /// A replica of the target, the handover over.
    HandedOver,
    /// A replica of another engine: nothing this handover can do.
    Elsewhere,
}

/// The pure reading of the old primary's INFO for a handover to `target`.
pub fn look(info: &Info, target: &(String, u16)) -> Look {
    match info.get("master_failover_state") {
        Some("waiting-for-sync") => return Look::Waiting,
        Some("failover-in-progress") => return Look::InProgress,
        _ => {}
    }
    match info.role() {
        Some(NodeRole::Replica) if info.master().as_ref() == Some(target) => Look::HandedOver,
        Some(NodeRole::Replica) => Look::Elsewhere,
        _ => Look::Primary,
    }
}

/// Runs the handover on the engine of `spec` to the target of `s`: `Ok` once the engine
/// is a replica of the target, the target primary, and the endpoint given up; `Err`
/// with the reason when it did not happen (the engine then is the primary again).
async fn hand_over(
    dir: &NodeDir,
    dialer: &Dialer,
    spec: &NodeSpec,
    s: &SwitchoverSpec,
) -> Result<(), String> {
    let timeout = Duration::from_millis(s.timeout_ms.max(1));
    let deadline = Instant::now() + timeout + GRACE;
    let target = (s.target_address.clone(), spec.port);
    let port = spec.port.to_string();
    let ms = timeout.as_millis().to_string();
    let mut own: Option<Client> = None;
    let mut peer: Option<Client> = None;
    let mut asked: Option<Instant> = None;
    loop {
        if Instant::now() >= deadline {
            if let Some(c) = own.as_mut() {
                let _ = c.call(&["FAILOVER", "ABORT"]).await;
            }
            return Err(format!(
                "no handover within {} ms",
                (timeout + GRACE).as_millis()
            ));
        }
        if own.is_none() {
            own = own_engine(dir, spec).await.ok();
        }
        let Some(c) = own.as_mut() else {
            tokio::time::sleep(EVERY).await;
            continue;
        };
        let info = match c.call(&["INFO", "replication"]).await {
            Ok(Reply::Bulk(Some(b))) => Info::parse(&String::from_utf8_lossy(&b)),
            _ => {
                own = None;
                continue;
            }
        };
        match look(&info, &target) {
            Look::Primary => match asked {
                None => {
                    let cmd = ["FAILOVER", "TO", &target.0, &port, "TIMEOUT", &ms];
                    if let Err(e) = c.call(&cmd).await {
                        return Err(format!("the engine refused FAILOVER TO: {e}"));
                    }
                    asked = Some(Instant::now());
                    ask_ack(&mut peer, dialer, spec, &target).await;
                }
                Some(at) if at.elapsed() >= timeout => {
                    return Err(format!(
                        "the replica did not catch up within {} ms; writes resumed",
                        timeout.as_millis()
                    ))
                }
                Some(_) => {
                    return Err(
                        "the engine aborted the handover (the replica refused it or could not be reached); writes resumed"
                            .into(),
                    )
                }
            },
            Look::Waiting => ask_ack(&mut peer, dialer, spec, &target).await,
            Look::InProgress => {}
            Look::HandedOver => {
                if target_is_primary(&mut peer, dialer, spec, &target).await {
                    return release(c, spec, &target).await;
                }
            }
            Look::Elsewhere => {
                return Err(format!(
                    "the engine follows {:?}, not the target",
                    info.master()
                ))
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Gives up what only a primary holds: the endpoint address (so that the new primary
/// can bind it) and the write fence.
async fn release(c: &mut Client, spec: &NodeSpec, target: &(String, u16)) -> Result<(), String> {
    let replica = NodeSpec {
        role: NodeRole::Replica,
        endpoint_address: None,
        primary_address: Some(target.0.clone()),
        read_endpoint: None,
        write_fence: None,
        switchover: None,
        ..spec.clone()
    };
    let what = BTreeSet::from([Change::Bind, Change::Fence]);
    reconfigure::apply(c, &replica, Some(spec), &what)
        .await
        .map_err(|e| format!("handed over, but could not give up the endpoint: {e}"))
}

/// Asks the target to acknowledge its replication offset to the old primary now.
async fn ask_ack(
    peer: &mut Option<Client>,
    dialer: &Dialer,
    spec: &NodeSpec,
    target: &(String, u16),
) {
    if let Some(c) = connected(peer, dialer, spec, target).await {
        if c.replconf_getack().await.is_err() {
            *peer = None;
        }
    }
}

/// Whether the target says it is a primary.
async fn target_is_primary(
    peer: &mut Option<Client>,
    dialer: &Dialer,
    spec: &NodeSpec,
    target: &(String, u16),
) -> bool {
    let Some(c) = connected(peer, dialer, spec, target).await else {
        return false;
    };
    match c.call(&["INFO", "replication"]).await {
        Ok(Reply::Bulk(Some(b))) => {
            Info::parse(&String::from_utf8_lossy(&b)).role() == Some(NodeRole::Primary)
        }
        _ => {
            *peer = None;
            false
        }
    }
}

async fn connected<'a>(
    peer: &'a mut Option<Client>,
    dialer: &Dialer,
    spec: &NodeSpec,
    target: &(String, u16),
) -> Option<&'a mut Client> {
    if peer.is_none() {
        *peer = dialer
            .client(
                &target.0,
                target.1,
                &acl::logins(&[spec]),
                crate::redis::tls::ca_of(spec),
            )
            .await
            .ok();
    }
    peer.as_mut()
}

/// The node's own engine, over its socket ([`local::connect`]).
async fn own_engine(
    dir: &NodeDir,
    spec: &NodeSpec,
) -> Result<Client, crate::redis::client::ClientError> {
    local::connect(dir, spec, &acl::logins(&[spec])).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> (String, u16) {
        ("127.64.0.5".into(), 6379)
    }

    #[test]
    fn reads_each_phase_of_the_handover() {
        let primary = "role:master\r\nmaster_failover_state:no-failover\r\n";
        assert_eq!(look(&Info::parse(primary), &target()), Look::Primary);
        let waiting = "role:master\r\nmaster_failover_state:waiting-for-sync\r\n";
        assert_eq!(look(&Info::parse(waiting), &target()), Look::Waiting);
        let moving = "role:slave\r\nmaster_host:127.64.0.5\r\nmaster_port:6379\r\nmaster_failover_state:failover-in-progress\r\n";
        assert_eq!(look(&Info::parse(moving), &target()), Look::InProgress);
        let done = "role:slave\r\nmaster_host:127.64.0.5\r\nmaster_port:6379\r\nmaster_failover_state:no-failover\r\n";
        assert_eq!(look(&Info::parse(done), &target()), Look::HandedOver);
        let other = done.replace("127.64.0.5", "127.64.0.9");
        assert_eq!(look(&Info::parse(&other), &target()), Look::Elsewhere);
        // Engines older than FAILOVER say nothing of it.
        assert_eq!(
            look(&Info::parse("role:master\r\n"), &target()),
            Look::Primary
        );
    }
}
