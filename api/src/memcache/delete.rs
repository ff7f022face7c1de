//! Delete: works in every state. A running operation is cancelled (ABORTED); every node
//! leaves its host's config, the discovery endpoint leaves its host, and the instance is
//! DELETING until the hosts applied that (the background driver then frees the /28 and
//! removes the rows). Nodes on silent hosts go at once; the range is then held in
//! quarantine against those hosts until they return.

use cacheplane_types::{MemcacheInstanceState, OperationVerb};
use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{memcache as db, operations as ops, quarantine, requests};
use crate::error::{ApiError, ApiResult};
use crate::memcache::nodes::Touched;
use crate::memcache::{MemcacheRef, MemcacheRow};
use crate::operations;
use crate::state::AppState;
use crate::{alloc, idempotency, networks};

/// Starts deleting an instance; answers with the id of the delete operation (the
/// running one if a delete is already under way).
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
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
    let m = target.lock(&mut tx).await?;
    let mut cancelled_op = None;
    if let Some(active) = ops::lock_running_of_memcache(&mut tx, m.id).await? {
        if active.verb == OperationVerb::Delete {
            if request_id.is_some() {
                requests::repoint(&mut tx, op_id, active.id).await?;
            }
            tx.commit().await?;
            return Ok(active.id);
        }
        let cancelled = ApiError::Aborted(format!(
            "the {} operation was cancelled because the instance is being deleted",
            active.verb.as_str()
        ))
        .to_status();
        cancelled_op = operations::finish(&mut tx, active.id, Err(&cancelled)).await?;
    }
    let new_op = target.new_operation(op_id, OperationVerb::Delete, "stopping the nodes");
    operations::insert_for_memcache(&mut tx, new_op, m.id).await?;
    let nodes = db::nodes_of(&mut *tx, &[m.id]).await?;
    let mut touched = Touched::default();
    let ids: Vec<Uuid> = nodes.iter().map(|n| n.id).collect();
    crate::memcache::nodes::remove(&mut tx, &nodes, &ids, &mut touched).await?;
    if let Some(host) = &m.discovery_host_id {
        touched.generation(&mut tx, host).await?;
    }
    db::set_discovery(&mut tx, m.id, None, None, true).await?;
    db::set_state(&mut tx, m.id, MemcacheInstanceState::Deleting, "").await?;
    tx.commit().await?;
    state.metrics.operations_finished(cancelled_op);
    Ok(op_id)
}

/// Frees the instance's /28 and deletes its rows (its nodes have stopped, or sit on
/// silent hosts in `held`: the range then stays in quarantine until each of them
/// applies `generation`, the config without the nodes).
pub async fn remove(
    tx: &mut PgConnection,
    m: &MemcacheRow,
    held: &[(String, i64)],
) -> ApiResult<()> {
    alloc::lock_network(&mut *tx, m.network_id).await?;
    db::delete(&mut *tx, m.id).await?;
    let Some(range) = m.range() else {
        return Ok(());
    };
    if !held.is_empty() {
        for (host, generation) in held {
            quarantine::hold_range(&mut *tx, m.network_id, IpNet::V4(range), host, *generation)
                .await?;
        }
        tracing::info!(instance = %m.full_name(), %range, "range quarantined until its silent hosts return");
        return Ok(());
    }
    let pool = networks::get_by_id(&mut *tx, m.network_id).await?.pool();
    alloc::free(tx, m.network_id, pool, range).await
}
