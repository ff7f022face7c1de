//! Failover: promote a replica and move the primary endpoint to it, on request (manual)
//! or when the health monitor finds the primary lost (automatic).

use cacheplane_types::{
    DataProtectionMode, FailoverRequest, InstanceState, NodeRole, NodeState, Operation,
    OperationVerb, Tier,
};
use ipnet::IpNet;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::instances::{self as db, Guard};
use crate::db::nodes;
use crate::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::instances::node_state::{host_up, node_state, running_replicas};
use crate::instances::{
    add_nodes, touch_nodes, InstanceRef, InstanceRow, NewNode, NodeRow, Placement,
};
use crate::instances::{placement_context, PlacementContext};
use crate::operations::{self, NewOperation};
use crate::scheduler;
use crate::state::AppState;

pub mod switchover;
#[cfg(test)]
mod tests;

/// LIMITED_DATA_LOSS refuses while the best replica lags by this much or more.
pub const MAX_LAG_BYTES: i64 = 30 * 1024 * 1024;

/// Why a failover started, as the metrics count it (`cacheplane_failovers_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Automatic: the primary's host stopped heartbeating and every replica lost its
    /// link to it.
    HostLost,
    /// Automatic: the primary's agent reports its engine down.
    EngineDown,
    /// Automatic: the primary's agent reports its engine failed.
    EngineFailed,
    /// Automatic: the primary's engine has not answered its agent for longer than
    /// `--unresponsive-timeout`.
    EngineUnresponsive,
    /// On request: a replica promoted at once (FORCE_DATA_LOSS, or a primary that cannot
    /// hand over).
    Promote,
    /// On request: the healthy primary hands over (LIMITED_DATA_LOSS switchover).
    Switchover,
    /// On request: the primary re-created empty (FORCE_DATA_LOSS with no replica
    /// running).
    RestartEmpty,
}

impl Reason {
    /// The label value (`host_lost`, `engine_down`, ..., `restart_empty`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HostLost => "host_lost",
            Reason::EngineDown => "engine_down",
            Reason::EngineFailed => "engine_failed",
            Reason::EngineUnresponsive => "engine_unresponsive",
            Reason::Promote => "promote",
            Reason::Switchover => "switchover",
            Reason::RestartEmpty => "restart_empty",
        }
    }

    /// Whether the health monitor started it (else a failover request).
    pub fn automatic(self) -> bool {
        matches!(
            self,
            Reason::HostLost
                | Reason::EngineDown
                | Reason::EngineFailed
                | Reason::EngineUnresponsive
        )
    }
}

/// The replica to promote on request: linked, not in full sync, least lag, preferring the
/// old primary's zone. `None` when no replica qualifies.
pub fn best_replica<'a>(nodes: &'a [NodeRow], primary_zone: &str) -> Option<(&'a NodeRow, i64)> {
    nodes
        .iter()
        .filter(|n| !n.removing && n.role == NodeRole::Replica)
        .filter_map(|n| {
            let r = &n.observed.as_ref()?.0;
            (r.process_up && r.master_link_up == Some(true) && !r.full_sync_in_progress)
                .then_some((n, r.lag_bytes.unwrap_or(0)))
        })
        .min_by_key(|(n, lag)| (*lag, n.zone_id != primary_zone, n.ordinal))
}

/// The replica to promote when forcing a REPAIRING instance over: on a heartbeating
/// host, its engine runs and answers with no error, whatever its link and even in a full
/// sync (FORCE_DATA_LOSS); one not syncing first, then the most data (highest replication
/// offset), the old primary's zone, the oldest.
pub fn running_replica<'a>(
    nodes: &'a [NodeRow],
    primary_zone: &str,
    now: chrono::DateTime<chrono::Utc>,
    host_timeout: std::time::Duration,
) -> Option<&'a NodeRow> {
    running_replicas(nodes, now, host_timeout)
        .map(|(n, r)| {
            (
                n,
                !r.full_sync_in_progress,
                r.replication_offset.unwrap_or(0),
            )
        })
        .max_by_key(|(n, synced, offset)| {
            (
                *synced,
                *offset,
                n.zone_id == primary_zone,
                std::cmp::Reverse(n.ordinal),
            )
        })
        .map(|(n, _, _)| n)
}

/// The current primary of an instance's nodes.
pub fn primary(nodes: &[NodeRow]) -> Option<&NodeRow> {
    nodes
        .iter()
        .find(|n| !n.removing && n.role == NodeRole::Primary)
}

/// A failover about to start.
pub struct Promotion<'a> {
    /// The operation's id.
    pub op_id: Uuid,
    /// The node that is primary now.
    pub old_primary: &'a NodeRow,
    /// The replica to promote.
    pub new_primary: &'a NodeRow,
    /// The instance's status message while it fails over.
    pub message: String,
    /// The operation's parameters (the driver reads `newPrimary`).
    pub params: serde_json::Value,
    /// Whether the new primary starts with its write fence on: only when another replica
    /// could acknowledge its writes.
    pub fence: bool,
}

/// Starts a failover in the caller's transaction, which holds the instance's row lock:
/// swaps the roles, touches every node, sets the instance FAILING_OVER and records the
/// operation.
pub async fn start(
    conn: &mut sqlx::PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    promotion: Promotion<'_>,
) -> ApiResult<()> {
    promote(
        &mut *conn,
        inst.id,
        promotion.old_primary.id,
        promotion.new_primary.id,
    )
    .await?;
    nodes::set_write_fence(&mut *conn, promotion.new_primary.id, promotion.fence).await?;
    let all: Vec<Uuid> = nodes.iter().filter(|n| !n.removing).map(|n| n.id).collect();
    touch_nodes(&mut *conn, &all).await?;
    db::set_state(
        &mut *conn,
        inst.id,
        InstanceState::FailingOver,
        Some(&promotion.message),
        Guard::Always,
    )
    .await?;
    let new_op = NewOperation {
        params: promotion.params,
        ..inst.new_operation(
            promotion.op_id,
            OperationVerb::Failover,
            "promoting the replica",
        )
    };
    operations::insert(&mut *conn, new_op).await?;
    Ok(())
}

/// Starts an automatic failover from a lost primary (the health monitor's decision), in
/// the caller's transaction, which holds the instance's row lock.
pub async fn start_automatic(
    conn: &mut sqlx::PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    old_primary: &NodeRow,
    new_primary: &NodeRow,
    reason: &str,
    fence: bool,
) -> ApiResult<Uuid> {
    crate::instances::lock_region_hosts(&mut *conn, inst).await?;
    let op_id = Uuid::new_v4();
    let promotion = Promotion {
        op_id,
        old_primary,
        new_primary,
        message: format!(
            "automatic failover to node {} in {}: {reason}",
            new_primary.id, new_primary.zone_id
        ),
        params: serde_json::json!({
            "automatic": true, "newPrimary": new_primary.id,
            "oldPrimary": old_primary.id, "reason": reason,
        }),
        fence,
    };
    start(conn, inst, nodes, promotion).await?;
    tracing::warn!(instance = %inst.full_name(), old = %old_primary.id, new = %new_primary.id, reason, "automatic failover");
    Ok(op_id)
}

/// Starts a failover; answers with its operation.
pub async fn failover(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    request_id: Option<&str>,
    req: FailoverRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let request_id = idempotency::parse_request_id(request_id)?;
    let mode = req.data_protection_mode.unwrap_or_default();
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    let fingerprint =
        || idempotency::fingerprint(&["failover", &target.full_name(), &format!("{mode:?}")]);
    if let Some(earlier) =
        idempotency::replay(&mut tx, &target.project, request_id, fingerprint, op_id).await?
    {
        return Ok(earlier.to_wire());
    }
    let inst = target.lock(&mut tx).await?;
    if inst.tier == Tier::Basic {
        return Err(ApiError::FailedPrecondition(
            "a BASIC instance has no replica to fail over to".into(),
        ));
    }
    // A REPAIRING instance may be forced over to whatever replica runs: the way out
    // when its primary is lost and no replica qualifies for an automatic failover.
    let rescue =
        inst.state == InstanceState::Repairing && mode == DataProtectionMode::ForceDataLoss;
    if inst.state != InstanceState::Ready && !rescue {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; failover needs READY (or REPAIRING with FORCE_DATA_LOSS)",
            inst.name,
            inst.state.as_str()
        )));
    }
    let nodes = nodes::of_instances(&mut *tx, &[inst.id]).await?;
    let primary = primary(&nodes)
        .ok_or_else(|| ApiError::FailedPrecondition("the instance has no primary".into()))?;
    let now = chrono::Utc::now();
    let timeout = state.config.host_timeout;
    let chosen = if rescue {
        running_replica(&nodes, &primary.zone_id, now, timeout).map(|n| (n, 0))
    } else {
        best_replica(&nodes, &primary.zone_id)
    };
    if rescue && chosen.is_none() {
        restart_empty(state, &mut tx, &inst, &nodes, primary, op_id).await?;
        tx.commit().await?;
        started(state, &inst, Reason::RestartEmpty);
        return Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire());
    }
    let (best, lag) = chosen.ok_or_else(|| {
        ApiError::FailedPrecondition("no replica is linked and in sync to take over".into())
    })?;
    let fence = fence_for(&nodes, best.id, now, timeout);
    if mode == DataProtectionMode::LimitedDataLoss && lag >= MAX_LAG_BYTES {
        return Err(ApiError::FailedPrecondition(format!(
            "the best replica lags by {lag} bytes (30 MB or more); retry later or use FORCE_DATA_LOSS"
        )));
    }
    if mode == DataProtectionMode::LimitedDataLoss
        && !rescue
        && switchover::can_hand_over(primary, now, timeout)
    {
        start_switchover(&mut tx, &inst, primary, best, op_id, mode).await?;
        tx.commit().await?;
        started(state, &inst, Reason::Switchover);
        return Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire());
    }
    let promotion = Promotion {
        op_id,
        old_primary: primary,
        new_primary: best,
        message: format!("manual failover to node {} in {}", best.id, best.zone_id),
        params: serde_json::json!({ "newPrimary": best.id, "oldPrimary": primary.id, "mode": mode }),
        fence,
    };
    start(&mut tx, &inst, &nodes, promotion).await?;
    tx.commit().await?;
    started(state, &inst, Reason::Promote);
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}

/// Counts a failover of `inst` whose transaction committed.
pub fn started(state: &AppState, inst: &InstanceRow, reason: Reason) {
    state
        .metrics
        .failover_started(&inst.project_id, &inst.name, reason);
}

/// Whether the new primary `new` starts with its write fence on: only if another node
/// (the old primary counts when it is well) could acknowledge its writes.
pub fn fence_for(
    nodes: &[NodeRow],
    new: Uuid,
    now: chrono::DateTime<chrono::Utc>,
    timeout: std::time::Duration,
) -> bool {
    nodes
        .iter()
        .filter(|n| !n.removing && n.id != new)
        .any(|n| {
            host_up(n, now, timeout)
                && !matches!(
                    node_state(n, now, timeout),
                    NodeState::Down | NodeState::Failed
                )
        })
}

/// LIMITED_DATA_LOSS from a healthy primary: a coordinated switchover (see
/// [`switchover`]). Marks the target replica (its agent learns first that its engine
/// may be made primary), sets the instance FAILING_OVER and records the operation; the
/// operation driver takes it from there. The roles change only once handed over.
async fn start_switchover(
    tx: &mut sqlx::PgConnection,
    inst: &InstanceRow,
    old: &NodeRow,
    new: &NodeRow,
    op_id: Uuid,
    mode: DataProtectionMode,
) -> ApiResult<()> {
    nodes::set_switchover(&mut *tx, &[new.id], Some(op_id)).await?;
    touch_nodes(&mut *tx, &[new.id]).await?;
    let message = format!(
        "manual failover to node {} in {}: the primary hands over",
        new.id, new.zone_id
    );
    db::set_state(
        &mut *tx,
        inst.id,
        InstanceState::FailingOver,
        Some(&message),
        Guard::Always,
    )
    .await?;
    let new_op = NewOperation {
        params: serde_json::json!({
            "newPrimary": new.id, "oldPrimary": old.id, "mode": mode, switchover::PARAM: true,
        }),
        ..inst.new_operation(op_id, OperationVerb::Failover, "preparing the switchover")
    };
    operations::insert(&mut *tx, new_op).await?;
    tracing::info!(instance = %inst.full_name(), old = %old.id, new = %new.id, "switchover requested");
    Ok(())
}

/// FORCE_DATA_LOSS on a REPAIRING instance none of whose replicas runs: the primary is
/// re-created empty, as a new node (a new engine with no data) on an up host of its zone
/// (else the alternative zone, else any), and every replica follows it, discarding what
/// it held. The old primary node is removed (its agent stops it). The instance goes
/// FAILING_OVER with a failover operation whose `newPrimary` is the new node.
async fn restart_empty(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    old: &NodeRow,
    op_id: Uuid,
) -> ApiResult<()> {
    let PlacementContext {
        range,
        mut candidates,
        region_zones,
    } = placement_context(&mut *tx, inst, state.config.host_timeout).await?;
    let zones =
        scheduler::repair_zones(&old.zone_id, Some(inst.location_id.as_str()), &region_zones);
    let zone = zones
        .into_iter()
        .find(|z| {
            let mut trial = candidates.clone();
            scheduler::pick_host(&mut trial, z, old.memory_bytes, &inst.redis_version, &[]).is_ok()
        })
        .ok_or_else(|| {
            ApiError::ResourceExhausted("no up host has room to restart the primary empty".into())
        })?;
    let used: Vec<IpNet> = nodes.iter().map(|n| n.address).collect();
    nodes::mark_removing(&mut *tx, &[old.id]).await?;
    let placement = Placement {
        instance: inst.id,
        range,
        engine: &inst.redis_version,
        bytes: old.memory_bytes,
        candidates: &mut candidates,
        hosts_in_use: Vec::new(),
        used_addresses: &used,
        first_ordinal: nodes.iter().map(|n| n.ordinal + 1).max().unwrap_or(0),
    };
    let new = add_nodes(
        &mut *tx,
        placement,
        &[NewNode {
            zone: zone.clone(),
            role: NodeRole::Primary,
        }],
    )
    .await?;
    let new = *new
        .first()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no node placed")))?;
    // No replica runs to acknowledge: unfenced until the health monitor sees one.
    nodes::set_write_fence(&mut *tx, new, false).await?;
    let all: Vec<Uuid> = nodes.iter().filter(|n| !n.removing).map(|n| n.id).collect();
    touch_nodes(&mut *tx, &all).await?;
    let message = format!(
        "primary restarted empty as node {new} in {zone} (FORCE_DATA_LOSS: no replica was running)"
    );
    db::set_state(
        &mut *tx,
        inst.id,
        InstanceState::FailingOver,
        Some(&message),
        Guard::Always,
    )
    .await?;
    let new_op = NewOperation {
        params: serde_json::json!({
            "newPrimary": new, "oldPrimary": old.id,
            "mode": DataProtectionMode::ForceDataLoss, "restartedEmpty": true,
        }),
        ..inst.new_operation(
            op_id,
            OperationVerb::Failover,
            "restarting the primary empty",
        )
    };
    operations::insert(&mut *tx, new_op).await?;
    tracing::warn!(instance = %inst.full_name(), old = %old.id, %new, "primary restarted empty on request");
    Ok(())
}

/// Swaps roles in two statements (one primary per instance holds after each).
pub async fn promote(
    conn: &mut sqlx::PgConnection,
    instance: Uuid,
    old_primary: Uuid,
    new_primary: Uuid,
) -> ApiResult<()> {
    nodes::set_role(&mut *conn, instance, old_primary, NodeRole::Replica).await?;
    nodes::set_role(&mut *conn, instance, new_primary, NodeRole::Primary).await
}
