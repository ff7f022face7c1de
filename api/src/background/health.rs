//! The health monitor, between operations: a READY instance whose node goes down (its
//! engine stopped, or its host went silent) becomes REPAIRING with a status message, and
//! READY again once every node is back. A STANDARD_HA instance whose primary is lost
//! fails over to the best replica. [`verdict`] decides; [`check`] reads and writes.

use std::time::Duration;

use cacheplane_types::{InstanceState, NodeRole, NodeState, Tier};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::instances::{self as db, Guard};
use crate::db::nodes;
use crate::error::ApiResult;
use crate::instances::failover;
use crate::instances::node_state::{host_up, node_state};
use crate::instances::{InstanceRow, NodeRow};
use crate::state::AppState;

#[cfg(test)]
mod tests;

/// What the health monitor makes of an instance.
#[derive(Debug)]
pub enum Verdict<'a> {
    /// The primary is lost and a replica can take over: fail over to it.
    FailOver {
        /// The lost primary.
        old: &'a NodeRow,
        /// The replica to promote.
        new: &'a NodeRow,
        /// Why, for the status message and the log.
        reason: String,
    },
    /// Every node is well: READY.
    Healthy,
    /// Some node is not: REPAIRING, with a message naming each.
    Repairing(String),
}

/// The verdict on an instance with `nodes`, at `now`.
pub fn verdict<'a>(
    inst: &InstanceRow,
    nodes: &'a [NodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
) -> Verdict<'a> {
    if let Some(v) = failover_verdict(inst, nodes, now, timeout) {
        return v;
    }
    let sick: Vec<String> = nodes
        .iter()
        .filter(|n| !n.removing)
        .filter_map(|n| {
            let what = match node_state(n, now, timeout) {
                NodeState::Ready => return None,
                NodeState::Down => "down",
                NodeState::Failed => "failed",
                NodeState::Deleting => "stopping",
                NodeState::Creating => "starting",
            };
            let role = n.role.as_str().to_lowercase();
            Some(format!(
                "{role} node {} in zone {} is {what}",
                n.id, n.zone_id
            ))
        })
        .collect();
    if sick.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Repairing(sick.join("; "))
    }
}

/// A failover when a STANDARD_HA instance's primary is lost (its engine reported down or
/// failed, or its host silent past the host timeout) and a replica can take over.
fn failover_verdict<'a>(
    inst: &InstanceRow,
    nodes: &'a [NodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
) -> Option<Verdict<'a>> {
    let primary = failover::primary(nodes)?;
    let lost = matches!(
        node_state(primary, now, timeout),
        NodeState::Down | NodeState::Failed
    );
    if !lost || inst.tier != Tier::StandardHa {
        return None;
    }
    let next = successor(nodes, &primary.zone_id, now, timeout)?;
    let reason = if host_up(primary, now, timeout) {
        format!("the primary's engine in {} is down", primary.zone_id)
    } else {
        format!(
            "the primary's host {} in {} stopped heartbeating",
            primary.host_id, primary.zone_id
        )
    };
    Some(Verdict::FailOver {
        old: primary,
        new: next,
        reason,
    })
}

/// The replica to promote when the primary is lost: up on a heartbeating host, not in a
/// full sync, holding the most data (highest replication offset: the least lag),
/// preferring the old primary's zone, then the oldest. `None` when no replica can take
/// over.
pub fn successor<'a>(
    nodes: &'a [NodeRow],
    primary_zone: &str,
    now: DateTime<Utc>,
    host_timeout: Duration,
) -> Option<&'a NodeRow> {
    nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica)
        .filter(|n| host_up(n, now, host_timeout))
        .filter_map(|n| {
            let r = &n.observed.as_ref()?.0;
            (r.process_up && r.error.is_none() && !r.full_sync_in_progress)
                .then_some((n, r.replication_offset.unwrap_or(0)))
        })
        .max_by_key(|(n, offset)| {
            (
                *offset,
                n.zone_id == primary_zone,
                std::cmp::Reverse(n.ordinal),
            )
        })
        .map(|(n, _)| n)
}

/// Re-evaluates one instance that is READY or REPAIRING and runs no operation; a no-op
/// for any other, or when another transaction holds it.
pub async fn check(state: &AppState, instance: Uuid) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let Some(inst) = db::try_lock_idle(&mut tx, instance).await? else {
        return Ok(());
    };
    let nodes = nodes::of_instances(&mut *tx, &[instance]).await?;
    let (next, message) = match verdict(&inst, &nodes, Utc::now(), state.config.host_timeout) {
        Verdict::FailOver { old, new, reason } => {
            let op = failover::start_automatic(&mut tx, &inst, &nodes, old, new, &reason).await?;
            tx.commit().await?;
            // The promotion may already be applied by the time the agents answer.
            return super::advance(state, op).await;
        }
        Verdict::Healthy => (InstanceState::Ready, String::new()),
        Verdict::Repairing(message) => (InstanceState::Repairing, message),
    };
    db::set_state(&mut tx, instance, next, Some(&message), Guard::IfChanged).await?;
    if next != inst.state {
        tracing::info!(%instance, from = inst.state.as_str(), to = next.as_str(), %message, "instance health changed");
    }
    tx.commit().await?;
    Ok(())
}
