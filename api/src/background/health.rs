//! The health monitor, between operations: a READY instance whose node goes down (its
//! engine stopped, or its host went silent) becomes REPAIRING with a status message, and
//! READY again once every node is back. A STANDARD_HA instance whose primary is lost
//! fails over to the best replica. [`verdict`] decides; [`check`] reads and writes.

use std::time::Duration;

use cacheplane_types::{InstanceState, NodeReport, NodeRole, NodeState, Tier};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::instances::{self as db, Guard};
use crate::db::{hosts, nodes};
use crate::error::ApiResult;
use crate::instances::node_state::{host_up, node_state, running_replicas};
use crate::instances::{failover, repair};
use crate::instances::{lock_region_hosts, InstanceRow, NodeRow};
use crate::state::AppState;

use super::grace;

#[cfg(test)]
mod tests;

/// The bounds the health monitor judges by.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A host silent for longer is down (`--host-timeout`).
    pub host_timeout: Duration,
    /// A primary engine not answering its agent for longer is lost
    /// (`--unresponsive-timeout`).
    pub unresponsive_timeout: Duration,
}

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
        /// Why, for the metrics.
        cause: failover::Reason,
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
    limits: Limits,
) -> Verdict<'a> {
    if let Some(v) = failover_verdict(inst, nodes, now, limits) {
        return v;
    }
    let sick = sick(nodes, now, limits.host_timeout);
    if sick.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Repairing(sick)
    }
}

/// The nodes (not being removed) that are not READY, one "ROLE node ID in zone Z is
/// WHAT" each, joined by "; "; empty when every node serves.
pub fn sick(nodes: &[NodeRow], now: DateTime<Utc>, timeout: Duration) -> String {
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
    sick.join("; ")
}

/// A failover when a STANDARD_HA instance's primary is lost (see [`primary_lost`]) and
/// a replica can take over.
fn failover_verdict<'a>(
    inst: &InstanceRow,
    nodes: &'a [NodeRow],
    now: DateTime<Utc>,
    limits: Limits,
) -> Option<Verdict<'a>> {
    if inst.tier != Tier::StandardHa {
        return None;
    }
    let primary = failover::primary(nodes)?;
    let (cause, reason) = primary_lost(primary, nodes, now, limits)?;
    let next = successor(nodes, &primary.zone_id, now, limits.host_timeout)?;
    Some(Verdict::FailOver {
        old: primary,
        new: next,
        reason,
        cause,
    })
}

/// Why the primary is lost (the cause and a sentence), judged by the data plane; `None`
/// while it may still serve.
/// Lost means: its agent reports its engine down or failed for the current config, or
/// running but unresponsive for longer than the bound; or its host is silent past the
/// host timeout and every replica on a heartbeating host, of which there is at least
/// one, reports its link to the primary down. A silent agent (or control plane) whose
/// engine keeps serving its replicas is never a reason to fail over.
pub fn primary_lost(
    primary: &NodeRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    limits: Limits,
) -> Option<(failover::Reason, String)> {
    use failover::Reason;
    let timeout = limits.host_timeout;
    let zone = &primary.zone_id;
    if host_up(primary, now, timeout) {
        return match node_state(primary, now, timeout) {
            NodeState::Down => Some((
                Reason::EngineDown,
                format!("the primary's engine in {zone} is down"),
            )),
            NodeState::Failed => Some((
                Reason::EngineFailed,
                format!("the primary's engine in {zone} failed"),
            )),
            _ => {
                let silent = primary.observed.as_ref()?.0.unresponsive_seconds?;
                let over = u64::try_from(silent)
                    .is_ok_and(|s| Duration::from_secs(s) > limits.unresponsive_timeout);
                over.then(|| {
                    let why =
                        format!("the primary's engine in {zone} has not answered for {silent} s");
                    (Reason::EngineUnresponsive, why)
                })
            }
        };
    }
    let witnesses: Vec<&NodeReport> = nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica && host_up(n, now, timeout))
        .filter(|n| n.observed_generation.unwrap_or(0) >= n.desired_generation)
        .filter_map(|n| n.observed.as_ref().map(|o| &o.0))
        .filter(|r| r.process_up)
        .collect();
    let cut_off = !witnesses.is_empty()
        && witnesses
            .iter()
            .all(|r| r.role == Some(NodeRole::Replica) && r.master_link_up == Some(false));
    cut_off.then(|| {
        let why = format!(
            "the primary's host {} in {zone} stopped heartbeating and every replica lost its link to it",
            primary.host_id
        );
        (Reason::HostLost, why)
    })
}

/// The first replica (by ordinal, not being removed) whose host has been silent for
/// longer than `repair_after`: it is re-created elsewhere. Primaries are never: one on a
/// silent host may still serve (it is failed over first, then repaired as a replica).
pub fn lost_replica(
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    repair_after: Duration,
) -> Option<&NodeRow> {
    nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica)
        .filter(|n| n.host_last_heartbeat_at.is_some())
        .filter(|n| !host_up(n, now, repair_after))
        .min_by_key(|n| n.ordinal)
}

/// Whether a STANDARD_HA primary's write fence should be on: while at least one replica
/// (not being removed) sits on a heartbeating host and its engine is not reported down
/// or failed. With none, the fence would refuse every write for nothing.
pub fn fence_wanted(nodes: &[NodeRow], now: DateTime<Utc>, host_timeout: Duration) -> bool {
    nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica)
        .any(|n| {
            host_up(n, now, host_timeout)
                && !matches!(
                    node_state(n, now, host_timeout),
                    NodeState::Down | NodeState::Failed
                )
        })
}

/// The replica to promote when the primary is lost: up on a heartbeating host and
/// answering, not in a full sync, holding the most data (highest replication offset:
/// the least lag), preferring the old primary's zone, then the oldest. `None` when no
/// replica can take over.
pub fn successor<'a>(
    nodes: &'a [NodeRow],
    primary_zone: &str,
    now: DateTime<Utc>,
    host_timeout: Duration,
) -> Option<&'a NodeRow> {
    running_replicas(nodes, now, host_timeout)
        .filter(|(_, r)| !r.full_sync_in_progress)
        .map(|(n, r)| (n, r.replication_offset.unwrap_or(0)))
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
/// for any other, or when another transaction holds it. Host silence counts only from
/// the end of this process's grace period (see [`super::grace`]).
pub async fn check(state: &AppState, instance: Uuid) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let Some(inst) = db::try_lock_idle(&mut tx, instance).await? else {
        return Ok(());
    };
    let mut nodes = nodes::of_instances(&mut *tx, &[instance]).await?;
    let timeout = state.config.host_timeout;
    let from = state.grace.seen(Utc::now(), grace::stall(timeout));
    grace::apply(&mut nodes, from);
    let now = Utc::now();
    let (next, message) = match verdict(&inst, &nodes, now, limits(state)) {
        Verdict::FailOver {
            old,
            new,
            reason,
            cause,
        } => {
            let others: Vec<NodeRow> = nodes
                .iter()
                .filter(|n| n.id != old.id && n.id != new.id)
                .cloned()
                .collect();
            let fence = fence_wanted(&others, now, timeout);
            let op =
                failover::start_automatic(&mut tx, &inst, &nodes, old, new, &reason, fence).await?;
            tx.commit().await?;
            failover::started(state, &inst, cause);
            // The promotion may already be applied by the time the agents answer.
            return super::advance(state, op).await;
        }
        Verdict::Healthy => (InstanceState::Ready, String::new()),
        Verdict::Repairing(message) => (InstanceState::Repairing, message),
    };
    let mut message = match failover_note(&inst) {
        Some(note) if next == InstanceState::Repairing => format!("{note}; {message}"),
        _ => message,
    };
    if let Some(lost) = lost_replica(&nodes, now, state.config.repair_after) {
        if let Some(new) = repair::replace_lost(&mut tx, &inst, &nodes, lost, timeout).await? {
            message = format!(
                "re-creating replica node {} lost with host {} in zone {} as node {new}",
                lost.id, lost.host_id, lost.zone_id
            );
            tracing::warn!(instance = %inst.full_name(), lost = %lost.id, host = %lost.host_id, %new, "re-creating a replica lost with its host");
            nodes = nodes::of_instances(&mut *tx, &[instance]).await?;
            grace::apply(&mut nodes, from);
        }
    }
    db::set_state(&mut tx, instance, next, Some(&message), Guard::IfChanged).await?;
    if next != inst.state {
        tracing::info!(%instance, from = inst.state.as_str(), to = next.as_str(), %message, "instance health changed");
    }
    follow_fence(&mut tx, &inst, &nodes, now, timeout).await?;
    tx.commit().await?;
    Ok(())
}

/// While an instance stays REPAIRING after a failover, its status keeps saying which
/// failover it was (the part of the message before the first "; ").
fn failover_note(inst: &InstanceRow) -> Option<&str> {
    if inst.state != InstanceState::Repairing {
        return None;
    }
    let note = inst.status_message.split("; ").next()?;
    [
        "automatic failover",
        "manual failover",
        "primary restarted empty",
    ]
    .iter()
    .any(|p| note.starts_with(p))
    .then_some(note)
}

/// The health monitor's bounds from the configuration.
pub fn limits(state: &AppState) -> Limits {
    Limits {
        host_timeout: state.config.host_timeout,
        unresponsive_timeout: state.config.unresponsive_timeout,
    }
}

/// Turns a STANDARD_HA primary's write fence on or off as [`fence_wanted`] says; a
/// change bumps the primary's host generation so its agent applies it.
async fn follow_fence(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    now: DateTime<Utc>,
    timeout: Duration,
) -> ApiResult<()> {
    let Some(primary) = failover::primary(nodes).filter(|_| inst.tier == Tier::StandardHa) else {
        return Ok(());
    };
    let want = fence_wanted(nodes, now, timeout);
    if nodes::write_fence(&mut *tx, primary.id).await? == want {
        return Ok(());
    }
    lock_region_hosts(&mut *tx, inst).await?;
    nodes::set_write_fence(&mut *tx, primary.id, want).await?;
    hosts::bump_generations_of(&mut *tx, &[primary.id]).await?;
    tracing::info!(instance = %inst.full_name(), node = %primary.id, fence = want, "primary write fence changed");
    Ok(())
}
