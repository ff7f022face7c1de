//! Delete: works in every state. A running create is cancelled (ABORTED). In netns mode
//! the connector leaves its host's config (the generation goes up) and is DELETING
//! until the host applies that generation, or at once when the host is silent (its
//! range is then quarantined against the host until it does, since its namespace may
//! still hold the addresses); the background driver finishes it. Without a host the
//! range is freed and the operation done at once.

use cacheplane_types::{ConnectorState, OperationVerb};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::connectors::{ConnectorRef, ConnectorRow};
use crate::db::{connectors as db, hosts, operations as ops, quarantine, requests};
use crate::error::{ApiError, ApiResult};
use crate::operations;
use crate::state::AppState;
use crate::{alloc, idempotency, networks};

/// Starts deleting a connector; answers with the id of the delete operation (the
/// running one if a delete is already under way).
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    target: &ConnectorRef,
    request_id: Option<&str>,
) -> ApiResult<Uuid> {
    principal.check_project(&target.project)?;
    let name = target.full_name();
    let idempotency::Mutation {
        mut tx,
        op_id,
        request_id,
        earlier,
    } = idempotency::begin_mutation(state, &target.project, request_id, &["delete", &name]).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier.id);
    }
    let row = db::lock(&mut tx, &target.project, &target.region, &target.name)
        .await?
        .ok_or_else(|| target.not_found())?;
    // Operations this transaction ends, counted once it commits.
    let (mut cancelled_op, mut removed) = (None, None);
    if let Some(active) = ops::lock_running_of_connector(&mut tx, row.id).await? {
        if active.verb == OperationVerb::Delete {
            if request_id.is_some() {
                requests::repoint(&mut tx, op_id, active.id).await?;
            }
            tx.commit().await?;
            return Ok(active.id);
        }
        let cancelled = ApiError::Aborted(format!(
            "the {} operation was cancelled because the connector is being deleted",
            active.verb.as_str()
        ))
        .to_status();
        cancelled_op = operations::finish(&mut tx, active.id, Err(&cancelled)).await?;
    }
    let new_op = target.new_operation(op_id, OperationVerb::Delete, "removing the connector");
    operations::insert_for_connector(&mut tx, new_op, row.id).await?;
    match &row.host_id {
        Some(host) => {
            hosts::lock_generations(&mut tx, host).await?;
            let generation = hosts::bump_generation(&mut tx, host).await?;
            db::set_state(&mut tx, row.id, ConnectorState::Deleting, Some(generation)).await?;
            let detail = format!("waiting for host {host} to apply config generation {generation}");
            operations::set_progress(&mut tx, op_id, 50, &detail).await?;
        }
        None => {
            remove(&mut tx, &row, None).await?;
            removed = operations::finish_connector(&mut tx, op_id, Ok(None)).await?;
        }
    }
    tx.commit().await?;
    state
        .metrics
        .operations_finished(cancelled_op.into_iter().chain(removed));
    Ok(op_id)
}

/// Deletes the connector row and returns its range to the pool, or, with `hold` (a
/// silent host and the generation that removed the connector from its config), keeps
/// the range in quarantine until that host applies it.
pub async fn remove(
    tx: &mut PgConnection,
    row: &ConnectorRow,
    hold: Option<(&str, i64)>,
) -> ApiResult<()> {
    alloc::lock_network(&mut *tx, row.network_id).await?;
    db::delete(&mut *tx, row.id).await?;
    let Some(range) = row.range() else {
        return Ok(());
    };
    if let Some((host, generation)) = hold {
        let r = ipnet::IpNet::V4(range);
        quarantine::hold_range(&mut *tx, row.network_id, r, host, generation).await?;
        tracing::info!(connector = %row.full_name(), %range, host, "range quarantined until its silent host returns");
        return Ok(());
    }
    let pool = networks::get_by_id(&mut *tx, row.network_id).await?.pool();
    alloc::free(tx, row.network_id, pool, range).await
}
