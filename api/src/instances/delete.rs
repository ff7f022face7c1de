//! Delete: works in every state. Any running operation is cancelled, every node leaves
//! its host's config, and once the agents report them stopped (or their hosts are down)
//! the range is freed and the instance is gone.

use cacheplane_types::Operation;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::instances::{store, touch_nodes, InstanceRef};
use crate::operations::{self, NewOperation};
use crate::state::AppState;
use crate::{idempotency, reconcile};

/// Starts deleting an instance; answers with the delete operation (the running one if a
/// delete is already under way).
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    request_id: Option<&str>,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let request_id = idempotency::parse_request_id(request_id)?;
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    if let Some(rid) = request_id {
        let fp = idempotency::fingerprint(&["delete", &target.full_name()]);
        if let Some(earlier) = idempotency::claim(&mut tx, &target.project, rid, &fp, op_id).await?
        {
            tx.rollback().await?;
            return Ok(operations::get_by_id(&state.pool, earlier).await?.to_wire());
        }
    }
    let inst = store::lock(&mut tx, &target.project, &target.region, &target.name).await?;
    crate::instances::lock_region_hosts(&mut tx, &inst.region_id).await?;
    let active: Option<(Uuid, String)> = sqlx::query_as(
        "select id, verb from operation where instance_id = $1 and not done for update",
    )
    .bind(inst.id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((active_id, verb)) = &active {
        if verb == "delete" {
            if request_id.is_some() {
                sqlx::query("update request set operation_id = $1 where operation_id = $2")
                    .bind(active_id)
                    .bind(op_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok(operations::get_by_id(&state.pool, *active_id)
                .await?
                .to_wire());
        }
        let cancelled = ApiError::Aborted(format!(
            "the {verb} operation was cancelled because the instance is being deleted"
        ))
        .to_status();
        operations::finish(&mut tx, *active_id, Err(&cancelled)).await?;
    }
    let nodes: Vec<Uuid> = sqlx::query_scalar(
        "update node set removing = true where instance_id = $1 and not removing returning id",
    )
    .bind(inst.id)
    .fetch_all(&mut *tx)
    .await?;
    touch_nodes(&mut tx, &nodes).await?;
    sqlx::query(
        r#"update instance set state = 'DELETING', status_message = '', version = version + 1,
               updated_at = now() where id = $1"#,
    )
    .bind(inst.id)
    .execute(&mut *tx)
    .await?;
    let full_name = target.full_name();
    operations::insert(
        &mut tx,
        NewOperation {
            id: op_id,
            project: &target.project,
            region: &target.region,
            verb: "delete",
            target: &full_name,
            instance: Some(inst.id),
            detail: "stopping the nodes",
            params: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    // Nodes on hosts that are down can go at once.
    reconcile::advance(state, op_id).await?;
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}
