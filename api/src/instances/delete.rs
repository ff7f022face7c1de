//! Delete: works in every state. Any running operation is cancelled, every node leaves
//! its host's config, and once the agents report them stopped (or their hosts are down)
//! the range is freed and the instance is gone (the background driver does that part).

use cacheplane_types::{InstanceState, OperationVerb};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::instances::{self as db, Guard};
use crate::db::{nodes, operations as ops, requests};
use crate::error::{ApiError, ApiResult};
use crate::idempotency;
use crate::instances::{touch_nodes, InstanceRef};
use crate::operations;
use crate::state::AppState;

/// Starts deleting an instance; answers with the id of the delete operation (the running
/// one if a delete is already under way). Nodes on hosts that are down can go at once:
/// the caller lets the driver advance the operation before answering.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
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
    let inst = target.lock(&mut tx).await?;
    // The operation a delete cancels, counted once the transaction commits.
    let mut cancelled_op = None;
    if let Some(active) = ops::lock_running_of(&mut tx, inst.id).await? {
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
    let removed = nodes::remove_all(&mut tx, inst.id).await?;
    touch_nodes(&mut tx, &removed).await?;
    db::set_state(
        &mut tx,
        inst.id,
        InstanceState::Deleting,
        Some(""),
        Guard::Always,
    )
    .await?;
    let new_op = inst.new_operation(op_id, OperationVerb::Delete, "stopping the nodes");
    operations::insert(&mut tx, new_op).await?;
    tx.commit().await?;
    state.metrics.operations_finished(cancelled_op);
    Ok(op_id)
}
