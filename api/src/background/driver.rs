//! The operation driver: CREATING, UPDATING and FAILING_OVER become READY once every
//! node runs its current configuration (and every replica is linked); DELETING ends once
//! every node has stopped. Each step reads the database afresh and is idempotent, so it
//! runs after every heartbeat, after an API restart, and on whichever replica gets the
//! row lock first. [`decide`] makes the decision; [`advance`] reads and writes.

use std::time::Duration;

use cacheplane_types::{InstanceState, NodeRole, NodeState, OperationVerb, Status};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::instances::{self as db, Guard, InstanceRow, TryLock};
use crate::db::{nodes, operations as ops, quarantine, ranges};
use crate::error::ApiResult;
use crate::instances::failover::switchover;
use crate::instances::node_state::{host_up, node_state};
use crate::instances::{lock_region_hosts, render, repair, touch_nodes, NodeRow};
use crate::operations::{self, Finished, NewOperation, OperationRow};
use crate::state::AppState;
use crate::{alloc, networks};

use super::{grace, health};

#[cfg(test)]
mod tests;

/// What to do next with an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The instance is gone: a delete has succeeded; any other operation cannot go on.
    Gone,
    /// A delete waits for its nodes to stop. The nodes in `drop` sit on hosts that are
    /// down and go at once (their agents stop them on return, since the nodes are no
    /// longer in their hosts' config); `left` others are still stopping.
    AwaitStop {
        /// Nodes to delete now.
        drop: Vec<Uuid>,
        /// Nodes still stopping after that.
        left: usize,
    },
    /// A delete whose nodes are all gone once `drop` is: free the ranges, delete the
    /// instance, and finish.
    Remove {
        /// Nodes to delete now.
        drop: Vec<Uuid>,
    },
    /// A node sits on a host silent past the operation's deadline: it is placed again on
    /// another host (`node` is any node of a create, a replica of an update), or, with no
    /// host that has room, the operation fails with `message`.
    Replace {
        /// The node to place again.
        node: Uuid,
        /// Why it fails when it cannot be placed, naming the node and its host.
        message: String,
    },
    /// A node could not start: the operation fails (a create is rolled back).
    Fail {
        /// Why, naming the node.
        message: String,
    },
    /// Every node converged: the instance is READY and the operation done.
    Ready,
    /// A coordinated switchover whose roles are not recorded yet: its next step.
    Switchover(switchover::Next),
    /// Still converging.
    Progress {
        /// Percent done.
        percent: i32,
        /// What it waits for.
        detail: String,
    },
}

/// The next step of `op` on `inst` (`None` once deleted) with its `nodes`, at `now`. A
/// create or update still waiting, past `deadline` from its start, for a node whose host
/// is silent fails, naming the node and its host.
pub fn decide(
    op: &OperationRow,
    inst: Option<&InstanceRow>,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    host_timeout: Duration,
    deadline: Duration,
) -> Step {
    if inst.is_none() {
        return Step::Gone;
    }
    if op.verb == OperationVerb::Delete {
        let drop: Vec<Uuid> = nodes
            .iter()
            .filter(|n| n.removing && !host_up(n, now, host_timeout))
            .map(|n| n.id)
            .collect();
        let left = nodes.len() - drop.len();
        return if left == 0 {
            Step::Remove { drop }
        } else {
            Step::AwaitStop { drop, left }
        };
    }
    if let Some(step) = overdue(op, nodes, now, host_timeout, deadline) {
        return step;
    }
    if let Some(next) = switchover::decide(op, nodes, now, host_timeout) {
        return Step::Switchover(next);
    }
    converge(op, nodes, now, host_timeout)
}

/// A create or update past its deadline with a node on a silent host: it fails.
fn overdue(
    op: &OperationRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
    deadline: Duration,
) -> Option<Step> {
    if !matches!(op.verb, OperationVerb::Create | OperationVerb::Update) {
        return None;
    }
    let age = now.signed_duration_since(op.created_at).to_std().ok()?;
    if age <= deadline {
        return None;
    }
    let stuck = nodes
        .iter()
        .find(|n| !n.removing && !host_up(n, now, timeout))?;
    let since = stuck
        .host_last_heartbeat_at
        .map_or_else(|| "ever".to_string(), |t| t.to_rfc3339());
    let message = format!(
        "node {} in zone {} could not come up: its host {} has been silent since {since}",
        stuck.id, stuck.zone_id, stuck.host_id
    );
    // An update's primary holds data: never placed again empty.
    let replace = op.verb == OperationVerb::Create || stuck.role == NodeRole::Replica;
    Some(if replace {
        Step::Replace {
            node: stuck.id,
            message,
        }
    } else {
        Step::Fail { message }
    })
}

fn converge(op: &OperationRow, nodes: &[NodeRow], now: DateTime<Utc>, timeout: Duration) -> Step {
    // A failover waits only for the promoted node and the nodes that are well: nodes on
    // hosts that are down apply the new roles when they come back (an old primary rejoins
    // as a replica), and a node that is down or failing is left to the health monitor
    // (the instance is then REPAIRING) rather than failing the failover.
    let promoted: Option<Uuid> = op.params.0["newPrimary"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let states: Vec<(&NodeRow, NodeState)> = nodes
        .iter()
        .map(|n| (n, node_state(n, now, timeout)))
        .filter(|(n, s)| {
            op.verb != OperationVerb::Failover
                || Some(n.id) == promoted
                || (host_up(n, now, timeout) && !matches!(s, NodeState::Failed | NodeState::Down))
        })
        .collect();
    if let Some((failed, _)) = states.iter().find(|(_, s)| *s == NodeState::Failed) {
        let reason = failed
            .observed
            .as_ref()
            .and_then(|o| o.0.error.clone())
            .unwrap_or_else(|| "unknown error".into());
        return Step::Fail {
            message: format!(
                "node {} in zone {} could not start: {reason}",
                failed.id, failed.zone_id
            ),
        };
    }
    let total = states.len().max(1);
    let count = |want: NodeState| states.iter().filter(|(_, s)| *s == want).count();
    let ready = count(NodeState::Ready);
    let removing = count(NodeState::Deleting);
    if removing == 0 && ready == total {
        return Step::Ready;
    }
    let detail = if removing > 0 {
        format!("{ready} of {total} nodes ready, {removing} stopping")
    } else {
        format!("{ready} of {total} nodes ready")
    };
    Step::Progress {
        percent: (ready * 100 / (total + removing)) as i32,
        detail,
    }
}

/// Moves one operation forward if it can; a no-op when another worker holds it (or its
/// instance) or it is done.
pub async fn advance(state: &AppState, op_id: Uuid) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let Some(op) = ops::try_lock_unfinished(&mut tx, op_id).await? else {
        return Ok(());
    };
    if op.connector_id.is_some() || op.target.contains("/connectors/") {
        let timeout = state.config.host_timeout;
        let from = state.grace.seen(Utc::now(), grace::stall(timeout));
        let deadline = state.config.operation_deadline;
        let finished =
            super::connectors::advance(&mut tx, &op, Utc::now(), from, timeout, deadline).await?;
        tx.commit().await?;
        state.metrics.operations_finished(finished);
        return Ok(());
    }
    if op.memcache_instance_id.is_some() || op.target.contains("/memcacheInstances/") {
        let finished = super::memcache::advance(state, &mut tx, &op).await?;
        tx.commit().await?;
        state.metrics.operations_finished(finished);
        return Ok(());
    }
    let inst = match op.instance_id {
        // Skip an instance another transaction holds (a delete, a patch): waiting for it
        // while holding the operation row would deadlock with a delete, which locks the
        // instance and then its operation. The next sweep retries.
        Some(id) => match db::try_lock(&mut tx, id).await? {
            TryLock::Busy => return Ok(()),
            TryLock::Gone => None,
            TryLock::Locked(inst) => Some(*inst),
        },
        None => None,
    };
    let mut nodes = match &inst {
        Some(inst) => nodes::of_instances(&mut *tx, &[inst.id]).await?,
        None => Vec::new(),
    };
    let timeout = state.config.host_timeout;
    let from = state.grace.seen(Utc::now(), grace::stall(timeout));
    grace::apply(&mut nodes, from);
    let now = Utc::now();
    let deadline = state.config.operation_deadline;
    let step = decide(&op, inst.as_ref(), &nodes, now, timeout, deadline);
    let finished = match (step, inst) {
        (step, Some(inst)) => apply(&mut tx, &op, &inst, &nodes, step, now, timeout).await?,
        (_, None) => finish_gone(&mut tx, &op).await?,
    };
    tx.commit().await?;
    state.metrics.operations_finished(finished);
    Ok(())
}

async fn finish_gone(tx: &mut PgConnection, op: &OperationRow) -> ApiResult<Option<Finished>> {
    let gone = Status {
        code: 404,
        status: "NOT_FOUND".into(),
        message: "the instance no longer exists".into(),
        details: Vec::new(),
    };
    let result = match op.verb {
        OperationVerb::Delete => Ok(None),
        _ => Err(&gone),
    };
    operations::finish(tx, op.id, result).await
}

async fn apply(
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    step: Step,
    now: DateTime<Utc>,
    timeout: Duration,
) -> ApiResult<Option<Finished>> {
    match step {
        Step::Gone => finish_gone(tx, op).await,
        Step::AwaitStop { drop, left } => {
            drop_silent(tx, inst, nodes, &drop).await?;
            let detail = format!("waiting for {left} node(s) to stop");
            operations::set_progress(tx, op.id, 50, &detail).await?;
            Ok(None)
        }
        Step::Remove { drop } => {
            drop_silent(tx, inst, nodes, &drop).await?;
            remove_instance(tx, inst).await?;
            operations::finish(tx, op.id, Ok(None)).await
        }
        Step::Fail { message } => fail(tx, op, inst, message).await,
        Step::Replace { node, message } => {
            lock_region_hosts(&mut *tx, inst).await?;
            let Some(stuck) = nodes.iter().find(|n| n.id == node) else {
                return Ok(None);
            };
            match repair::replace_lost(tx, inst, nodes, stuck, timeout).await? {
                Some(new) => {
                    tracing::warn!(instance = %inst.full_name(), old = %node, %new, host = %stuck.host_id, "node on a silent host placed again");
                    let detail = format!(
                        "node {node} placed again as {new}: its host {} is silent",
                        stuck.host_id
                    );
                    operations::set_progress(tx, op.id, 0, &detail).await?;
                    Ok(None)
                }
                None => {
                    fail(
                        tx,
                        op,
                        inst,
                        format!("{message}, and no other host has room"),
                    )
                    .await
                }
            }
        }
        Step::Ready => {
            // A failover does not wait for nodes on silent hosts or with a broken engine,
            // but the instance is READY only once every node serves.
            let sick = health::sick(nodes, now, timeout);
            let (next, message) = if sick.is_empty() {
                (InstanceState::Ready, String::new())
            } else if op.verb == OperationVerb::Failover {
                // Keep saying which failover this was, until the monitor's next look.
                let done = inst.status_message.trim_end_matches("; ");
                (InstanceState::Repairing, format!("{done}; {sick}"))
            } else {
                (InstanceState::Repairing, sick)
            };
            db::set_state(tx, inst.id, next, Some(&message), Guard::Always).await?;
            let inst = db::get_by_id(&mut *tx, inst.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("instance vanished under its row lock"))?;
            let wire = render::to_wire(&inst, nodes, now, timeout);
            operations::finish(tx, op.id, Ok(Some(&wire))).await
        }
        Step::Switchover(next) => switchover::apply(tx, op, inst, nodes, next, now, timeout).await,
        Step::Progress { percent, detail } => {
            operations::set_progress(tx, op.id, percent, &detail).await?;
            Ok(None)
        }
    }
}

/// Deletes nodes whose hosts are silent; their ranges are quarantined against those
/// hosts, whose engines may still hold the addresses.
async fn drop_silent(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    drop: &[Uuid],
) -> ApiResult<()> {
    if drop.is_empty() {
        return Ok(());
    }
    let mut hosts: Vec<String> = nodes
        .iter()
        .filter(|n| drop.contains(&n.id))
        .map(|n| n.host_id.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    quarantine::hold(tx, inst.id, &hosts).await?;
    nodes::delete(tx, drop).await
}

/// Frees an instance's ranges and deletes it (its nodes are gone). A range held in
/// quarantine stays out of the pool until its hosts let it go.
async fn remove_instance(tx: &mut PgConnection, inst: &InstanceRow) -> ApiResult<()> {
    for held in ranges::of_instance(tx, inst.id).await? {
        let net = networks::get_by_id(&mut *tx, held.network_id).await?;
        alloc::lock_network(tx, held.network_id).await?;
        if let IpNet::V4(r) = held.range {
            ranges::delete(tx, inst.id, held.range).await?;
            if quarantine::is_held(tx, held.network_id, held.range).await? {
                tracing::info!(instance = %inst.full_name(), range = %r, "range quarantined until its silent hosts return");
                continue;
            }
            alloc::free(tx, held.network_id, net.pool(), r).await?;
        }
    }
    db::delete(tx, inst.id).await
}

/// Ends an operation whose node could not start. A failed create is rolled back: the
/// instance is deleted so that nothing stays allocated. Other operations leave the
/// instance FAILED, which can still be deleted.
async fn fail(
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
    message: String,
) -> ApiResult<Option<Finished>> {
    lock_region_hosts(&mut *tx, inst).await?;
    let status = Status {
        code: 503,
        status: "UNAVAILABLE".into(),
        message: message.clone(),
        details: Vec::new(),
    };
    let finished = operations::finish(tx, op.id, Err(&status)).await?;
    if op.verb != OperationVerb::Create {
        db::set_state(
            tx,
            inst.id,
            InstanceState::Failed,
            Some(&message),
            Guard::Always,
        )
        .await?;
        return Ok(finished);
    }
    let removed = nodes::remove_all(tx, inst.id).await?;
    touch_nodes(tx, &removed).await?;
    let why = format!("create failed, cleaning up: {message}");
    db::set_state(
        tx,
        inst.id,
        InstanceState::Deleting,
        Some(&why),
        Guard::Always,
    )
    .await?;
    let detail = "cleaning up after a failed create";
    let cleanup = NewOperation {
        params: serde_json::json!({ "reason": "create failed" }),
        ..inst.new_operation(Uuid::new_v4(), OperationVerb::Delete, detail)
    };
    operations::insert(tx, cleanup).await?;
    Ok(finished)
}
