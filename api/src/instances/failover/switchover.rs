//! The coordinated switchover: a manual LIMITED_DATA_LOSS failover from a healthy
//! primary. Rather than swapping roles and letting each agent follow (which loses the
//! writes the old primary acknowledged in its last milliseconds), the old primary's
//! engine hands over itself with `FAILOVER TO` (writes paused until the target has its
//! whole replication stream), and the roles are recorded only once the data plane says
//! it is done. In steps, each driven by [`decide`] from what the agents report:
//!
//! 1. the failover request marks the target replica (`switchover_id`): its agent learns
//!    that its engine may become primary and must keep that role (else it would point it
//!    back at the old primary before the API records the change);
//! 2. once the target's host has applied that, the old primary is marked too: its agent
//!    runs `FAILOVER TO <target> TIMEOUT <ms>`, gives up the primary endpoint as soon as
//!    its engine is a replica of the target, and reports the outcome;
//! 3. on `DONE` (or the target reporting itself primary) the roles are recorded as in
//!    any failover, and the endpoint moves to the new primary;
//! 4. on `ABORTED`, a node of the switchover going down, or no outcome within
//!    [`DEADLINE`], the switchover is abandoned: the marks are cleared, the operation
//!    fails, nothing changed (the old primary resumed writes) and the instance is READY.

use std::time::Duration;

use cacheplane_types::{
    NodeRole, NodeState, OperationVerb, Status, SwitchoverSpec, SwitchoverState,
};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::instances::{self as db, Guard, InstanceRow};
use crate::db::nodes;
use crate::error::ApiResult;
use crate::instances::node_state::{host_up, node_state};
use crate::instances::{lock_region_hosts, touch_nodes, NodeRow};
use crate::operations::{self, Finished, OperationRow};

/// The longest the old primary pauses writes while waiting for the target to catch up
/// (`FAILOVER … TIMEOUT`). A linked replica less than 30 MiB behind catches up in
/// milliseconds; past this the engine aborts the handover and takes writes again.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long after the request the API waits for the handover's outcome before it
/// abandons the switchover: both agents' config round trips, the handover's
/// [`TIMEOUT`], and margin.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The `params` key marking a failover operation as a coordinated switchover.
pub const PARAM: &str = "switchover";

/// Whether `primary` can hand over by itself: its host heartbeats and its engine runs as
/// primary, answering, for its current configuration. Otherwise a manual failover
/// promotes the replica directly, as before.
pub fn can_hand_over(primary: &NodeRow, now: DateTime<Utc>, timeout: Duration) -> bool {
    host_up(primary, now, timeout)
        && node_state(primary, now, timeout) == NodeState::Ready
        && primary
            .observed
            .as_ref()
            .is_some_and(|r| r.0.unresponsive_seconds.is_none())
}

/// The `switchover` of a node's spec: `id` is its `switchover_id`, `target` the node
/// address of the replica with the same mark.
pub fn spec(id: Option<Uuid>, target: Option<IpNet>) -> Option<SwitchoverSpec> {
    let (id, target) = id.zip(target)?;
    Some(SwitchoverSpec {
        id,
        target_address: target.addr().to_string(),
        timeout_ms: TIMEOUT.as_millis() as u64,
    })
}

/// What a switchover under way needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The target's agent knows: tell the old primary to hand over.
    Arm,
    /// Waiting for the agents: what for.
    Wait(String),
    /// Handed over: record the new roles.
    Record,
    /// Give up: clear the marks and fail the operation with this status.
    Abandon {
        /// Its canonical code, e.g. `ABORTED`.
        status: &'static str,
        /// Its HTTP code.
        code: u16,
        /// Why, for the user.
        message: String,
    },
}

/// The next step of failover operation `op` if it is a coordinated switchover whose
/// roles are not recorded yet; `None` for any other operation, or once they are.
pub fn decide(
    op: &OperationRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
) -> Option<Next> {
    if op.verb != OperationVerb::Failover || op.params.0[PARAM] != true {
        return None;
    }
    let id_of = |key: &str| {
        op.params.0[key]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    let find = |id: Option<Uuid>| nodes.iter().find(|n| Some(n.id) == id && !n.removing);
    let old = find(id_of("oldPrimary"));
    if old.is_some_and(|o| o.role != NodeRole::Primary) {
        return None;
    }
    let (Some(old), Some(new)) = (old, find(id_of("newPrimary"))) else {
        return Some(abandon(
            "ABORTED",
            409,
            "a node of the switchover was removed".into(),
        ));
    };
    let report = |n: &NodeRow| n.observed.as_ref().map(|r| r.0.clone());
    let outcome = report(old)
        .and_then(|r| r.switchover)
        .filter(|s| s.id == op.id);
    let promoted = report(new).is_some_and(|r| r.process_up && r.role == Some(NodeRole::Primary));
    if outcome
        .as_ref()
        .is_some_and(|s| s.state == SwitchoverState::Done)
        || promoted
    {
        return Some(Next::Record);
    }
    let kept = format!("node {} is still the primary and takes writes", old.id);
    if let Some(s) = outcome.filter(|s| s.state == SwitchoverState::Aborted) {
        let why = s.message.unwrap_or_else(|| "no reason given".into());
        return Some(abandon(
            "ABORTED",
            409,
            format!(
                "the primary did not hand over to node {}: {why}; {kept}",
                new.id
            ),
        ));
    }
    for (n, what) in [(old, "primary"), (new, "replica taking over")] {
        let state = node_state(n, now, timeout);
        if !host_up(n, now, timeout) || matches!(state, NodeState::Down | NodeState::Failed) {
            return Some(abandon(
                "ABORTED",
                409,
                format!(
                    "the {what} (node {} in zone {}) went down during the switchover",
                    n.id, n.zone_id
                ),
            ));
        }
    }
    let age = now
        .signed_duration_since(op.created_at)
        .to_std()
        .unwrap_or_default();
    if age > DEADLINE {
        return Some(abandon(
            "DEADLINE_EXCEEDED",
            504,
            format!(
                "the primary did not hand over to node {} within {} s (its agent may not \
                 support switchovers, or it could not reach the replica); {kept}",
                new.id,
                DEADLINE.as_secs()
            ),
        ));
    }
    if old.switchover_id == Some(op.id) {
        return Some(Next::Wait(format!(
            "the primary pauses writes and hands over to node {}",
            new.id
        )));
    }
    if new.host_applied_generation >= new.desired_generation {
        Some(Next::Arm)
    } else {
        Some(Next::Wait(format!(
            "preparing node {} to take over",
            new.id
        )))
    }
}

fn abandon(status: &'static str, code: u16, message: String) -> Next {
    Next::Abandon {
        status,
        code,
        message,
    }
}

/// Carries out `next` for operation `op` on `inst` (whose row lock the caller holds);
/// answers the operation when this ended it (an abandoned switchover).
pub async fn apply(
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    next: Next,
    now: DateTime<Utc>,
    timeout: Duration,
) -> ApiResult<Option<Finished>> {
    let id_of = |key: &str| {
        op.params.0[key]
            .as_str()
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    let (old, new) = (id_of("oldPrimary"), id_of("newPrimary"));
    let marked: Vec<Uuid> = [old, new].into_iter().flatten().collect();
    match next {
        Next::Wait(detail) => operations::set_progress(tx, op.id, 20, &detail)
            .await
            .map(|()| None),
        Next::Arm => {
            let Some(old) = old else { return Ok(None) };
            lock_region_hosts(&mut *tx, inst).await?;
            nodes::set_switchover(&mut *tx, &[old], Some(op.id)).await?;
            touch_nodes(&mut *tx, &[old]).await?;
            let detail = "the primary pauses writes and hands over";
            operations::set_progress(tx, op.id, 30, detail).await?;
            Ok(None)
        }
        Next::Record => {
            let (Some(old), Some(new)) = (old, new) else {
                return Ok(None);
            };
            lock_region_hosts(&mut *tx, inst).await?;
            super::promote(&mut *tx, inst.id, old, new).await?;
            let fence = super::fence_for(nodes, new, now, timeout);
            nodes::set_write_fence(&mut *tx, new, fence).await?;
            nodes::set_switchover(&mut *tx, &marked, None).await?;
            let all: Vec<Uuid> = nodes.iter().filter(|n| !n.removing).map(|n| n.id).collect();
            touch_nodes(&mut *tx, &all).await?;
            tracing::info!(instance = %inst.full_name(), %old, %new, "switchover done: roles recorded");
            let detail = format!("node {new} took over; moving the primary endpoint");
            operations::set_progress(tx, op.id, 60, &detail).await?;
            Ok(None)
        }
        Next::Abandon {
            status,
            code,
            message,
        } => {
            lock_region_hosts(&mut *tx, inst).await?;
            nodes::set_switchover(&mut *tx, &marked, None).await?;
            touch_nodes(&mut *tx, &marked).await?;
            tracing::warn!(instance = %inst.full_name(), %message, "switchover abandoned");
            let error = Status {
                code,
                status: status.into(),
                message: message.clone(),
                details: Vec::new(),
            };
            let finished = operations::finish(tx, op.id, Err(&error)).await?;
            let sick = crate::background::health::sick(nodes, now, timeout);
            let state = if sick.is_empty() {
                cacheplane_types::InstanceState::Ready
            } else {
                cacheplane_types::InstanceState::Repairing
            };
            db::set_state(tx, inst.id, state, Some(&sick), Guard::Always).await?;
            Ok(finished)
        }
    }
}

#[cfg(test)]
mod tests;
