//! Patch (`displayName`, `labels`, `nodeCount` by `updateMask`), `updateParameters`
//! (stages parameters) and `applyParameters` (gives named nodes the staged parameters;
//! their agents restart them). Scaling keeps the nodes that stay where they are, with
//! their addresses and data; every change of the node list raises the discovery config
//! version. Changes that reach no node are done at once.

use cacheplane_types::{
    ApplyMemcacheParametersRequest, MemcacheInstanceState, Operation, OperationVerb,
    PatchMemcacheInstanceRequest, UpdateMemcacheParametersRequest,
};
use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::memcache::{self as db, Changes};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{self, Mutation};
use crate::instances::patch::parse_fields;
use crate::instances::render::etag;
use crate::instances::validate as common;
use crate::memcache::nodes::{self, Touched};
use crate::memcache::{parameters_id, render, validate, MemcacheRef, MemcacheRow};
use crate::operations::{self, NewOperation};
use crate::state::AppState;
use crate::{quotas, scheduler};

/// Fields `updateMask` may name.
pub const UPDATABLE: &[&str] = &["displayName", "labels", "nodeCount"];
/// Fields set at create only.
pub const CREATE_ONLY: &[&str] = &[
    "nodeConfig",
    "zones",
    "authorizedNetwork",
    "memcacheVersion",
];

/// Applies a patch; answers with its operation (already done when no node changes).
pub async fn patch(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
    update_mask: Option<&str>,
    request_id: Option<&str>,
    req: PatchMemcacheInstanceRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let mask = parse_fields(update_mask, UPDATABLE, CREATE_ONLY)?;
    let has = |f: &str| mask.iter().any(|m| m == f);
    let display_name = has("displayName").then(|| req.display_name.clone().unwrap_or_default());
    if let Some(d) = &display_name {
        common::display_name(d)?;
    }
    let labels = has("labels").then(|| req.labels.clone().unwrap_or_default());
    if let Some(l) = &labels {
        common::labels(l)?;
    }
    let node_count = match has("nodeCount") {
        true => Some(validate::node_count(req.node_count)?),
        false => None,
    };
    let body = serde_json::to_string(&req).unwrap_or_default();
    let what = ["patch", &target.full_name(), &mask.join(","), &body];
    let Mutation {
        mut tx,
        op_id,
        earlier,
        ..
    } = idempotency::begin_mutation(state, &target.project, request_id, &what).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier.to_wire());
    }
    let m = target.lock(&mut tx).await?;
    if node_count.is_some() {
        // After the instance, as a Redis instance's resize takes it.
        quotas::lock(&mut tx, &target.project).await?;
    }
    check_preconditions(&m, req.etag.as_deref(), node_count.is_some())?;
    let mut touched = Touched::default();
    if let Some(count) = node_count {
        let before = quotas::memcache_footprint_gb(m.node_count, m.memory_size_mb);
        let after = quotas::memcache_footprint_gb(count, m.memory_size_mb);
        quotas::check_resize(&mut tx, &state.config, &target.project, m.id, before, after).await?;
        scale(state, &mut tx, &m, count, &mut touched).await?;
    }
    let changes = Changes {
        display_name: display_name.as_deref(),
        labels: labels.as_ref(),
        node_count,
        parameters: None,
    };
    db::update_fields(&mut tx, m.id, &changes).await?;
    let params = serde_json::json!({ "updateMask": mask });
    record(state, tx, &m, op_id, params, touched.any()).await
}

/// Moves the node count to `count`: new nodes are placed like a create's, removed ones
/// come from the most used zone, newest first.
async fn scale(
    state: &AppState,
    tx: &mut PgConnection,
    m: &MemcacheRow,
    count: i32,
    touched: &mut Touched,
) -> ApiResult<()> {
    let all = db::nodes_of(&mut *tx, &[m.id]).await?;
    let live: Vec<_> = all.iter().filter(|n| !n.removing).collect();
    let have = live.len() as i32;
    if count > have {
        let mut candidates =
            scheduler::load_candidates(&mut *tx, &m.region_id, state.config.host_timeout).await?;
        let add = (count - have) as usize;
        nodes::add(tx, m, &all, add, &mut candidates, touched).await?;
    } else if count < have {
        let gone = nodes::pick_removals(&live, (have - count) as usize);
        nodes::remove(tx, &all, &gone, touched).await?;
    }
    if count != have {
        nodes::refresh_discovery(tx, m, true, state.config.host_timeout, touched).await?;
    }
    Ok(())
}

/// Stages new parameters (`updateMask` `params`): no node changes until
/// `applyParameters`. Answers with a finished operation.
pub async fn update_parameters(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
    request_id: Option<&str>,
    req: UpdateMemcacheParametersRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    parse_fields(Some(&req.update_mask), &["params"], &[])?;
    let body = serde_json::to_string(&req).unwrap_or_default();
    let what = ["updateParameters", &target.full_name(), &body];
    let Mutation {
        mut tx,
        op_id,
        earlier,
        ..
    } = idempotency::begin_mutation(state, &target.project, request_id, &what).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier.to_wire());
    }
    let m = target.lock(&mut tx).await?;
    check_preconditions(&m, None, false)?;
    let params = &req.parameters.params;
    validate::parameters(params, m.memory_size_mb)?;
    let id = parameters_id(params);
    let changes = Changes {
        parameters: Some((params, &id)),
        ..Changes::default()
    };
    db::update_fields(&mut tx, m.id, &changes).await?;
    let op_params = serde_json::json!({ "method": "updateParameters" });
    record(state, tx, &m, op_id, op_params, false).await
}

/// Gives the named nodes (or all, with `applyAll`) the staged parameters; each node
/// whose parameters change is restarted by its agent (empty). Done once they run them.
pub async fn apply_parameters(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
    request_id: Option<&str>,
    req: ApplyMemcacheParametersRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    if req.apply_all != req.node_ids.is_empty() {
        return Err(ApiError::field(
            "nodeIds",
            "name the nodes to apply the parameters to, or set applyAll (not both)",
        ));
    }
    let body = serde_json::to_string(&req).unwrap_or_default();
    let what = ["applyParameters", &target.full_name(), &body];
    let Mutation {
        mut tx,
        op_id,
        earlier,
        ..
    } = idempotency::begin_mutation(state, &target.project, request_id, &what).await?;
    if let Some(earlier) = earlier {
        return Ok(earlier.to_wire());
    }
    let m = target.lock(&mut tx).await?;
    check_preconditions(&m, None, true)?;
    let all = db::nodes_of(&mut *tx, &[m.id]).await?;
    let live: Vec<_> = all.iter().filter(|n| !n.removing).collect();
    for id in &req.node_ids {
        if !live.iter().any(|n| &n.node_id() == id) {
            let ids: Vec<String> = live.iter().map(|n| n.node_id()).collect();
            return Err(ApiError::field(
                "nodeIds",
                format!(
                    "'{id}' is not a node of the instance (its nodes: {})",
                    ids.join(", ")
                ),
            ));
        }
    }
    let mut touched = Touched::default();
    for n in live
        .iter()
        .filter(|n| req.apply_all || req.node_ids.contains(&n.node_id()))
    {
        if n.parameters.0 == m.parameters.0 && n.parameters_id == m.parameters_id {
            continue;
        }
        let generation = touched.generation(&mut tx, &n.host_id).await?;
        db::set_node_parameters(&mut tx, n.id, &m.parameters.0, &m.parameters_id, generation)
            .await?;
    }
    let op_params = serde_json::json!({ "method": "applyParameters" });
    record(state, tx, &m, op_id, op_params, touched.any()).await
}

/// Refuses a change with a stale etag, on an instance being deleted, or one that
/// reaches the nodes of an instance that is neither READY nor FAILED.
fn check_preconditions(m: &MemcacheRow, given: Option<&str>, changes_nodes: bool) -> ApiResult<()> {
    if let Some(given) = given {
        if given != etag(m.version) {
            return Err(ApiError::Aborted(format!(
                "etag '{given}' does not match the instance's current etag '{}'; read it again and retry",
                etag(m.version)
            )));
        }
    }
    if m.state == MemcacheInstanceState::Deleting {
        return Err(ApiError::FailedPrecondition(format!(
            "Memcached instance '{}' is being deleted",
            m.name
        )));
    }
    let settled = matches!(
        m.state,
        MemcacheInstanceState::Ready | MemcacheInstanceState::Failed
    );
    if changes_nodes && !settled {
        return Err(ApiError::FailedPrecondition(format!(
            "Memcached instance '{}' is {}; its nodes change only when it is READY",
            m.name,
            m.state.as_str()
        )));
    }
    Ok(())
}

/// Records the update operation (the instance UPDATING when nodes changed), commits,
/// and answers with it; finished at once when no node changed.
async fn record(
    state: &AppState,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    m: &MemcacheRow,
    op_id: Uuid,
    params: serde_json::Value,
    nodes_changed: bool,
) -> ApiResult<Operation> {
    let target = m.target();
    let detail = if nodes_changed {
        "applying the change on the nodes"
    } else {
        "done"
    };
    let new_op = NewOperation {
        params,
        ..target.new_operation(op_id, OperationVerb::Update, detail)
    };
    operations::insert_for_memcache(&mut tx, new_op, m.id).await?;
    let mut finished = None;
    if nodes_changed {
        db::set_state(&mut tx, m.id, MemcacheInstanceState::Updating, "").await?;
    } else {
        let row = db::get_by_id(&mut *tx, m.id)
            .await?
            .ok_or_else(|| target.not_found())?;
        let nodes = db::nodes_of(&mut *tx, &[m.id]).await?;
        let wire = render::to_wire(&row, &nodes, Utc::now(), state.config.host_timeout);
        finished = operations::finish_memcache(&mut tx, op_id, Ok(Some(&wire))).await?;
    }
    tx.commit().await?;
    state.metrics.operations_finished(finished);
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}
