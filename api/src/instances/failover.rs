//! Failover: promote a replica and move the primary endpoint to it, on request (manual)
//! or when the health monitor finds the primary lost (automatic).

use cacheplane_types::{
    DataProtectionMode, FailoverRequest, InstanceState, NodeRole, Operation, OperationVerb, Tier,
};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::instances::{self as db, Guard};
use crate::db::nodes;
use crate::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::instances::{touch_nodes, InstanceRef, InstanceRow, NodeRow};
use crate::operations::{self, NewOperation};
use crate::state::AppState;

#[cfg(test)]
mod tests;

/// LIMITED_DATA_LOSS refuses while the best replica lags by this much or more.
pub const MAX_LAG_BYTES: i64 = 30 * 1024 * 1024;

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
) -> ApiResult<Uuid> {
    crate::instances::lock_region_hosts(&mut *conn, &inst.region_id).await?;
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
    if inst.state != InstanceState::Ready {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; failover needs READY",
            inst.name,
            inst.state.as_str()
        )));
    }
    let nodes = nodes::of_instances(&mut *tx, &[inst.id]).await?;
    let primary = primary(&nodes)
        .ok_or_else(|| ApiError::FailedPrecondition("the instance has no primary".into()))?;
    let (best, lag) = best_replica(&nodes, &primary.zone_id).ok_or_else(|| {
        ApiError::FailedPrecondition("no replica is linked and in sync to take over".into())
    })?;
    if mode == DataProtectionMode::LimitedDataLoss && lag >= MAX_LAG_BYTES {
        return Err(ApiError::FailedPrecondition(format!(
            "the best replica lags by {lag} bytes (30 MB or more); retry later or use FORCE_DATA_LOSS"
        )));
    }
    let promotion = Promotion {
        op_id,
        old_primary: primary,
        new_primary: best,
        message: format!("manual failover to node {} in {}", best.id, best.zone_id),
        params: serde_json::json!({ "newPrimary": best.id, "oldPrimary": primary.id, "mode": mode }),
    };
    start(&mut tx, &inst, &nodes, promotion).await?;
    tx.commit().await?;
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
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
