//! The reconcile decision: a pure diff of desired nodes against observed ones.

use std::collections::{BTreeMap, BTreeSet};

use cacheplane_types::{NodeRole, NodeSpec};
use uuid::Uuid;

use crate::redis::conf;

/// What the agent knows of a node's engine process right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// The engine answers; `role` and `master` are what its INFO says.
    Up {
        /// Its live role.
        role: Option<NodeRole>,
        /// For a replica, the primary it follows.
        master: Option<(String, u16)>,
    },
    /// The process exists but did not answer (loading, busy): leave it alone.
    Unknown,
    /// No process. `was_up`: it has run before (so a restart would come up empty);
    /// `retry_due`: the node's restart backoff allows another attempt now.
    Down {
        /// It served before.
        was_up: bool,
        /// Another start may be tried now.
        retry_due: bool,
    },
}

/// One node the agent runs or has files for.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The spec last applied to it; `None` when unknown (adopted without a record).
    pub applied: Option<NodeSpec>,
    /// Its process.
    pub process: Process,
}

/// A part of a running node's configuration that must change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// `maxmemory` (from the size or `maxmemory-gb`).
    Maxmemory,
    /// Other `redisConfigs` entries.
    Configs,
    /// The engine's users: the tenant's AUTH string, the agent's own user (its admin
    /// secret), how replicas log in to their primary.
    Auth,
    /// Port, bind addresses, `replica-announce-ip`.
    Bind,
    /// Role or the primary followed (`REPLICAOF`).
    Replication,
    /// The write fence (`min-replicas-to-write`, `min-replicas-max-lag`).
    Fence,
    /// The TLS certificate, key or CA (a rotation): rewritten and reloaded online.
    Tls,
}

/// Work for the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start an engine for a node that has none (or whose earlier start failed).
    Start(NodeSpec),
    /// Change a running engine online, without a restart.
    Reconfigure {
        /// The desired spec.
        spec: NodeSpec,
        /// What differs.
        what: BTreeSet<Change>,
    },
    /// Start again a crashed engine that may come back empty.
    Restart(NodeSpec),
    /// Stop the engine of a node no longer desired and remove its files.
    Stop(Uuid),
}

/// Decides the work that brings `observed` to `desired`: stops first (they free memory
/// and addresses), then online changes, then starts. A crashed engine is restarted only
/// when it may come back empty: a BASIC node (`restart_in_place`) or a replica. A
/// STANDARD_HA primary is never restarted in place, since its replicas would copy the
/// empty dataset; it stays down until failover.
pub fn plan(desired: &[NodeSpec], observed: &BTreeMap<Uuid, Observed>) -> Vec<Action> {
    let wanted: BTreeSet<Uuid> = desired.iter().map(|s| s.node_id).collect();
    let mut stops = Vec::new();
    let mut changes = Vec::new();
    let mut starts = Vec::new();
    for id in observed.keys().filter(|id| !wanted.contains(id)) {
        stops.push(Action::Stop(*id));
    }
    for spec in desired {
        let Some(obs) = observed.get(&spec.node_id) else {
            starts.push(Action::Start(spec.clone()));
            continue;
        };
        match &obs.process {
            Process::Up { role, master } => {
                let what = differences(spec, obs.applied.as_ref(), *role, master.as_ref());
                if !what.is_empty() {
                    changes.push(Action::Reconfigure {
                        spec: spec.clone(),
                        what,
                    });
                }
            }
            Process::Unknown => {}
            Process::Down {
                retry_due: false, ..
            } => {}
            Process::Down { was_up: false, .. } => starts.push(Action::Start(spec.clone())),
            Process::Down { was_up: true, .. } => {
                if spec.restart_in_place || spec.role == NodeRole::Replica {
                    starts.push(Action::Restart(spec.clone()));
                }
            }
        }
    }
    stops.into_iter().chain(changes).chain(starts).collect()
}

/// What a running engine must change to match `spec`. `applied` is what the agent last
/// gave it (`None`: unknown, so everything is set again); `role`/`master` are live.
pub fn differences(
    spec: &NodeSpec,
    applied: Option<&NodeSpec>,
    role: Option<NodeRole>,
    master: Option<&(String, u16)>,
) -> BTreeSet<Change> {
    let Some(old) = applied else {
        return BTreeSet::from([
            Change::Maxmemory,
            Change::Configs,
            Change::Auth,
            Change::Bind,
            Change::Replication,
            Change::Fence,
            Change::Tls,
        ]);
    };
    let mut what = BTreeSet::new();
    if conf::effective_maxmemory(spec) != conf::effective_maxmemory(old) {
        what.insert(Change::Maxmemory);
    }
    if !conf::passthrough_configs(spec).eq(conf::passthrough_configs(old)) {
        what.insert(Change::Configs);
    }
    if spec.auth_string != old.auth_string || spec.admin_secret != old.admin_secret {
        what.insert(Change::Auth);
    }
    if spec.port != old.port
        || spec.address != old.address
        || conf::bind_addresses(spec) != conf::bind_addresses(old)
    {
        what.insert(Change::Bind);
    }
    if replication_differs(spec, old, role, master) {
        what.insert(Change::Replication);
    }
    if conf::write_fence(spec) != conf::write_fence(old) {
        what.insert(Change::Fence);
    }
    if spec.tls.is_some() && spec.tls != old.tls {
        what.insert(Change::Tls);
    }
    what
}

fn replication_differs(
    spec: &NodeSpec,
    old: &NodeSpec,
    role: Option<NodeRole>,
    master: Option<&(String, u16)>,
) -> bool {
    // A coordinated switchover owns the roles of the primary handing over and of its
    // target (made primary by the handover) until the API records them.
    if let Some(s) = &spec.switchover {
        let target = s.targets(&spec.address) && role == Some(NodeRole::Primary);
        if spec.role == NodeRole::Primary || target {
            return false;
        }
    }
    // A replica told no primary (one is being replaced) keeps following its old one.
    let want: Option<(&str, u16)> = match spec.role {
        NodeRole::Primary => None,
        NodeRole::Replica => match conf::replicaof(spec) {
            Some(p) => Some(p),
            None => return false,
        },
    };
    match role {
        // The live role is the truth.
        Some(NodeRole::Primary) => want.is_some(),
        Some(NodeRole::Replica) => match want {
            None => true,
            Some((host, port)) => master.is_none_or(|(h, p)| h != host || *p != port),
        },
        None => spec.role != old.role || conf::replicaof(spec) != conf::replicaof(old),
    }
}

#[cfg(test)]
mod tests;
