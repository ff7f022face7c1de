//! Patch with `updateMask`: display name and labels change at once; size, replicas,
//! engine settings and read replicas change the nodes, so the instance goes UPDATING
//! until the agents have applied them. Each group of fields has its applier (in
//! `apply`); this module checks the request and records the outcome.

mod apply;
mod mask;

use cacheplane_types::{InstanceState, Operation, OperationVerb, PatchInstanceRequest};
use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;

pub use mask::{parse_mask, pattern as mask_pattern, CREATE_ONLY, UPDATABLE};

use crate::auth::Principal;
use crate::db::instances::{self as db, FieldChanges, Guard};
use crate::db::nodes;
use crate::error::{ApiError, ApiResult};
use crate::instances::{render, touch_nodes, validate, InstanceRef, InstanceRow};
use crate::operations::{self, Finished, NewOperation};
use crate::state::AppState;
use crate::{catalog, idempotency, quotas};

/// Fields whose change reaches the nodes (and so needs a READY instance).
const NODE_FIELDS: [&str; 4] = [
    "memorySizeGb",
    "replicaCount",
    "redisConfigs",
    "readReplicasMode",
];

/// Applies a patch; answers with its operation (already done when no node changes).
pub async fn patch(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    update_mask: Option<&str>,
    request_id: Option<&str>,
    req: PatchInstanceRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let mask = parse_mask(update_mask)?;
    if req.transit_encryption_mode.is_some() {
        return Err(mask::create_only("transitEncryptionMode"));
    }
    let request_id = idempotency::parse_request_id(request_id)?;
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    let fingerprint = || {
        idempotency::fingerprint(&[
            "patch",
            &target.full_name(),
            &mask.join(","),
            &serde_json::to_string(&req).unwrap_or_default(),
        ])
    };
    if let Some(earlier) =
        idempotency::replay(&mut tx, &target.project, request_id, fingerprint, op_id).await?
    {
        return Ok(earlier.to_wire());
    }
    let inst = target.lock(&mut tx).await?;
    let has = |f: &str| mask.iter().any(|m| m == f);
    check_preconditions(
        &inst,
        req.etag.as_deref(),
        NODE_FIELDS.iter().any(|f| has(f)),
    )?;

    let resizes = has("memorySizeGb") || has("replicaCount");
    if resizes {
        // Before any host is locked: the lock order of a create (project, then hosts).
        quotas::lock(&mut tx, &target.project).await?;
    }

    let display_name = has("displayName").then(|| req.display_name.clone().unwrap_or_default());
    if let Some(d) = &display_name {
        validate::display_name(d)?;
    }
    let labels = has("labels").then(|| req.labels.clone().unwrap_or_default());
    if let Some(l) = &labels {
        validate::labels(l)?;
    }
    let nodes: Vec<_> = nodes::of_instances(&mut *tx, &[inst.id])
        .await?
        .into_iter()
        .filter(|n| !n.removing)
        .collect();
    let tier_info = catalog::get_tier(&mut *tx, inst.tier).await?;
    let mut ctx = apply::Patching {
        state,
        inst: &inst,
        nodes: &nodes,
        req: &req,
        touched: Vec::new(),
    };
    let memory_gb = ctx.memory(&mut tx, &tier_info, has("memorySizeGb")).await?;
    let configs = ctx.configs(has("redisConfigs"), memory_gb)?;
    let replicas = match has("replicaCount") {
        true => Some(ctx.replicas(&mut tx, &tier_info, memory_gb).await?),
        false => None,
    };
    if resizes {
        let before = quotas::footprint_gb(inst.memory_size_gb, inst.replica_count);
        let after = quotas::footprint_gb(memory_gb, replicas.unwrap_or(inst.replica_count));
        quotas::check_resize(
            &mut tx,
            &state.config,
            &target.project,
            inst.id,
            before,
            after,
        )
        .await?;
    }
    let read_replicas = has("readReplicasMode") && ctx.read_replicas(&mut tx).await?;
    let mut touched = ctx.touched;

    let changes = FieldChanges {
        display_name: display_name.as_deref(),
        labels: labels.as_ref(),
        redis_configs: configs.as_ref(),
        memory_size_gb: (memory_gb != inst.memory_size_gb).then_some(memory_gb),
        replica_count: replicas,
        enable_read_replicas: read_replicas,
    };
    db::update_fields(&mut tx, inst.id, &changes).await?;
    touched.sort();
    touched.dedup();
    touch_nodes(&mut tx, &touched).await?;
    let finished = record(state, &mut tx, &inst, op_id, &mask, !touched.is_empty()).await?;
    tx.commit().await?;
    state.metrics.operations_finished(finished);
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}

/// Refuses a patch with a stale etag, on an instance being deleted, or one that changes
/// the nodes of an instance that is not READY.
fn check_preconditions(
    inst: &InstanceRow,
    etag: Option<&str>,
    changes_nodes: bool,
) -> ApiResult<()> {
    if let Some(etag) = etag {
        if etag != render::etag(inst.version) {
            return Err(ApiError::Aborted(format!(
                "etag '{etag}' does not match the instance's current etag '{}'; read it again and retry",
                render::etag(inst.version)
            )));
        }
    }
    if inst.state == InstanceState::Deleting {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is being deleted",
            inst.name
        )));
    }
    if changes_nodes && inst.state != InstanceState::Ready {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; size, replicas, settings and read replicas change only when it is READY",
            inst.name,
            inst.state.as_str()
        )));
    }
    Ok(())
}

/// Bumps the instance's version (UPDATING when nodes changed) and records the update
/// operation, finished at once (and answered) when no node changed.
async fn record(
    state: &AppState,
    tx: &mut PgConnection,
    inst: &InstanceRow,
    op_id: Uuid,
    mask: &[String],
    nodes_changed: bool,
) -> ApiResult<Option<Finished>> {
    let new_state = if nodes_changed {
        InstanceState::Updating
    } else {
        inst.state
    };
    db::set_state(&mut *tx, inst.id, new_state, None, Guard::Always).await?;
    let detail = if nodes_changed {
        "applying the change on the nodes"
    } else {
        "done"
    };
    let new_op = NewOperation {
        params: serde_json::json!({ "updateMask": mask }),
        ..inst.new_operation(op_id, OperationVerb::Update, detail)
    };
    operations::insert(&mut *tx, new_op).await?;
    if !nodes_changed {
        let inst = db::get_by_id(&mut *tx, inst.id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("instance '{}' not found", inst.name)))?;
        let nodes = nodes::of_instances(&mut *tx, &[inst.id]).await?;
        let wire = render::to_wire(&inst, &nodes, Utc::now(), state.config.host_timeout);
        return operations::finish(tx, op_id, Ok(Some(&wire))).await;
    }
    Ok(None)
}
