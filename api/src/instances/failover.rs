//! Manual failover: promote the best replica and move the primary endpoint to it.

use cacheplane_types::{DataProtectionMode, FailoverRequest, NodeRole, Operation};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::instances::store::NodeRow;
use crate::instances::{render, store, touch_nodes, InstanceRef};
use crate::operations::{self, NewOperation};
use crate::state::AppState;

/// LIMITED_DATA_LOSS refuses while the best replica lags by this much or more.
pub const MAX_LAG_BYTES: i64 = 30 * 1024 * 1024;

/// The replica to promote: linked, not in full sync, least lag, preferring the old
/// primary's zone. `None` when no replica qualifies.
pub fn best_replica<'a>(nodes: &'a [NodeRow], primary_zone: &str) -> Option<(&'a NodeRow, i64)> {
    nodes
        .iter()
        .filter(|n| !n.removing && render::role(n) == NodeRole::Replica)
        .filter_map(|n| {
            let r = &n.observed.as_ref()?.0;
            (r.process_up && r.master_link_up == Some(true) && !r.full_sync_in_progress)
                .then_some((n, r.lag_bytes.unwrap_or(0)))
        })
        .min_by_key(|(n, lag)| (*lag, n.zone_id != primary_zone, n.ordinal))
}

/// The replica to promote when the primary is lost: up on a heartbeating host, not in a
/// full sync, holding the most data (highest replication offset: the least lag),
/// preferring the old primary's zone. `None` when no replica can take over.
pub fn successor<'a>(
    nodes: &'a [NodeRow],
    primary_zone: &str,
    now: chrono::DateTime<chrono::Utc>,
    host_timeout: std::time::Duration,
) -> Option<&'a NodeRow> {
    nodes
        .iter()
        .filter(|n| !n.removing && render::role(n) == NodeRole::Replica)
        .filter(|n| render::host_up(n, now, host_timeout))
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

/// Starts an automatic failover from a lost primary (the health monitor's decision), in
/// the caller's transaction, which holds the instance's row lock.
pub async fn start_automatic(
    conn: &mut sqlx::PgConnection,
    inst: &crate::instances::store::InstanceRow,
    nodes: &[NodeRow],
    old_primary: &NodeRow,
    new_primary: &NodeRow,
    reason: &str,
) -> ApiResult<Uuid> {
    crate::instances::lock_region_hosts(&mut *conn, &inst.region_id).await?;
    promote(&mut *conn, inst.id, old_primary.id, new_primary.id).await?;
    let all: Vec<Uuid> = nodes.iter().filter(|n| !n.removing).map(|n| n.id).collect();
    touch_nodes(&mut *conn, &all).await?;
    let message = format!(
        "automatic failover to node {} in {}: {reason}",
        new_primary.id, new_primary.zone_id
    );
    sqlx::query(
        r#"update instance set state = 'FAILING_OVER', status_message = $2, version = version + 1,
               updated_at = now() where id = $1"#,
    )
    .bind(inst.id)
    .bind(&message)
    .execute(&mut *conn)
    .await?;
    let op_id = Uuid::new_v4();
    let target = inst.full_name();
    operations::insert(
        &mut *conn,
        NewOperation {
            id: op_id,
            project: &inst.project_id,
            region: &inst.region_id,
            verb: "failover",
            target: &target,
            instance: Some(inst.id),
            detail: "promoting the replica",
            params: serde_json::json!({
                "automatic": true, "newPrimary": new_primary.id,
                "oldPrimary": old_primary.id, "reason": reason,
            }),
        },
    )
    .await?;
    tracing::warn!(instance = %target, old = %old_primary.id, new = %new_primary.id, reason, "automatic failover");
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
    if let Some(rid) = request_id {
        let fp = idempotency::fingerprint(&["failover", &target.full_name(), &format!("{mode:?}")]);
        if let Some(earlier) = idempotency::claim(&mut tx, &target.project, rid, &fp, op_id).await?
        {
            tx.rollback().await?;
            return Ok(operations::get_by_id(&state.pool, earlier).await?.to_wire());
        }
    }
    let inst = store::lock(&mut tx, &target.project, &target.region, &target.name).await?;
    crate::instances::lock_region_hosts(&mut tx, &inst.region_id).await?;
    if inst.tier_id == "BASIC" {
        return Err(ApiError::FailedPrecondition(
            "a BASIC instance has no replica to fail over to".into(),
        ));
    }
    if inst.state != "READY" {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; failover needs READY",
            inst.name, inst.state
        )));
    }
    let nodes = store::nodes_of(&mut *tx, &[inst.id]).await?;
    let primary = nodes
        .iter()
        .find(|n| !n.removing && render::role(n) == NodeRole::Primary)
        .ok_or_else(|| ApiError::FailedPrecondition("the instance has no primary".into()))?;
    let (best, lag) = best_replica(&nodes, &primary.zone_id).ok_or_else(|| {
        ApiError::FailedPrecondition("no replica is linked and in sync to take over".into())
    })?;
    if mode == DataProtectionMode::LimitedDataLoss && lag >= MAX_LAG_BYTES {
        return Err(ApiError::FailedPrecondition(format!(
            "the best replica lags by {lag} bytes (30 MB or more); retry later or use FORCE_DATA_LOSS"
        )));
    }
    promote(&mut tx, inst.id, primary.id, best.id).await?;
    let all: Vec<Uuid> = nodes.iter().filter(|n| !n.removing).map(|n| n.id).collect();
    touch_nodes(&mut tx, &all).await?;
    sqlx::query(
        r#"update instance set state = 'FAILING_OVER', status_message = $2, version = version + 1,
               updated_at = now() where id = $1"#,
    )
    .bind(inst.id)
    .bind(format!(
        "manual failover to node {} in {}",
        best.id, best.zone_id
    ))
    .execute(&mut *tx)
    .await?;
    let full_name = target.full_name();
    operations::insert(
        &mut tx,
        NewOperation {
            id: op_id,
            project: &target.project,
            region: &target.region,
            verb: "failover",
            target: &full_name,
            instance: Some(inst.id),
            detail: "promoting the replica",
            params: serde_json::json!({ "newPrimary": best.id, "oldPrimary": primary.id, "mode": mode }),
        },
    )
    .await?;
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
    sqlx::query("update node set role = 'REPLICA' where id = $1 and instance_id = $2")
        .bind(old_primary)
        .bind(instance)
        .execute(&mut *conn)
        .await?;
    sqlx::query("update node set role = 'PRIMARY' where id = $1 and instance_id = $2")
        .bind(new_primary)
        .bind(instance)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
