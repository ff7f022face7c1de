//! Create: validate, then in one transaction insert the instance, take its /28, place
//! its nodes (spread over its zones), give one node's host the discovery endpoint and
//! record the operation. Without room (no host, no free /28) the operation ends at once
//! in RESOURCE_EXHAUSTED and nothing stays allocated, as for Redis instances.

use std::collections::BTreeMap;

use cacheplane_types::{CreateMemcacheInstanceRequest, Operation, OperationVerb};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::memcache::{self as db, NewMemcache};
use crate::error::{ApiError, ApiResult};
use crate::instances::validate as common;
use crate::memcache::nodes::{self, Touched};
use crate::memcache::{parameters_id, validate, MemcacheRef};
use crate::operations;
use crate::state::AppState;
use crate::{alloc, idempotency, networks, quotas, scheduler};

/// Creates a Memcached instance; answers with its operation.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
    request_id: Option<&str>,
    req: CreateMemcacheInstanceRequest,
) -> ApiResult<Operation> {
    let creation = idempotency::begin_create_call(
        state,
        principal,
        target.scope(),
        "instanceId",
        &target.name,
        &target.full_name(),
        request_id,
        &req,
    )
    .await?;
    if let Some(earlier) = creation.earlier {
        return Ok(earlier.to_wire());
    }
    let idempotency::Creation {
        mut tx,
        op_id,
        request_id,
        fingerprint,
        ..
    } = creation;
    match insert_and_place(state, &mut tx, target, &req, op_id).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
        }
        Err(ApiError::ResourceExhausted(msg)) => {
            tx.rollback().await?;
            idempotency::record_exhausted_create(
                state,
                target.scope(),
                request_id,
                &fingerprint,
                |id| target.new_operation(id, OperationVerb::Create, "no room"),
                msg,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// A create request once checked, with the defaults filled in.
struct Spec {
    node_count: i32,
    cpu_count: i32,
    memory_mb: i32,
    version: String,
    zones: Vec<String>,
    params: BTreeMap<String, String>,
}

fn check_request(
    req: &CreateMemcacheInstanceRequest,
    region: &str,
    region_zones: &[String],
) -> ApiResult<Spec> {
    let node_count = validate::node_count(req.node_count)?;
    let (cpu_count, memory_mb) = validate::node_config(req.node_config)?;
    let version = validate::version(req.memcache_version.as_deref())?;
    if let Some(d) = &req.display_name {
        common::display_name(d)?;
    }
    common::labels(&req.labels)?;
    let zones = validate::zones(&req.zones, region, region_zones)?;
    let params = req
        .parameters
        .as_ref()
        .map(|p| p.params.clone())
        .unwrap_or_default();
    validate::parameters(&params, memory_mb)?;
    Ok(Spec {
        node_count,
        cpu_count,
        memory_mb,
        version,
        zones,
        params,
    })
}

async fn insert_and_place(
    state: &AppState,
    tx: &mut PgConnection,
    target: &MemcacheRef,
    req: &CreateMemcacheInstanceRequest,
    op_id: Uuid,
) -> ApiResult<()> {
    let region_zones = crate::db::catalog::zones_of(&mut *tx, &target.region).await?;
    let spec = check_request(req, &target.region, &region_zones)?;
    let network =
        networks::resolve(&mut *tx, &target.project, req.authorized_network.as_deref()).await?;
    let footprint = quotas::memcache_footprint_gb(spec.node_count, spec.memory_mb);
    quotas::check_new_instance(tx, &state.config, &target.project, footprint).await?;
    // Hosts first, then the network: the order of every path that takes both.
    let mut candidates =
        scheduler::load_candidates(&mut *tx, &target.region, state.config.host_timeout).await?;
    check_engine_offered(&candidates, &spec.version, &target.region)?;
    let id = Uuid::new_v4();
    let params_id = parameters_id(&spec.params);
    db::insert(
        tx,
        &NewMemcache {
            id,
            project: &target.project,
            region: &target.region,
            name: &target.name,
            display_name: req.display_name.as_deref().unwrap_or_default(),
            labels: &req.labels,
            network: network.id,
            zones: &spec.zones,
            node_count: spec.node_count,
            cpu_count: spec.cpu_count,
            memory_size_mb: spec.memory_mb,
            memcache_version: &spec.version,
            parameters: &spec.params,
            parameters_id: &params_id,
        },
    )
    .await?;
    let range = alloc::take_range(tx, network.id).await?.ok_or_else(|| {
        ApiError::ResourceExhausted(format!(
            "network '{}' ({}) has no free /28 left",
            network.name,
            network.pool()
        ))
    })?;
    db::insert_range(tx, id, network.id, range).await?;
    let row = db::get_by_id(&mut *tx, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("instance vanished in its own transaction"))?;
    let mut touched = Touched::default();
    nodes::add(
        tx,
        &row,
        &[],
        spec.node_count as usize,
        &mut candidates,
        &mut touched,
    )
    .await?;
    nodes::refresh_discovery(tx, &row, true, state.config.host_timeout, &mut touched).await?;
    let new_op = target.new_operation(
        op_id,
        OperationVerb::Create,
        "waiting for the nodes to start",
    );
    operations::insert_for_memcache(tx, new_op, id).await?;
    Ok(())
}

/// INVALID_ARGUMENT on `memcacheVersion` when the region has hosts but none runs it.
fn check_engine_offered(
    candidates: &[scheduler::Candidate],
    engine: &str,
    region: &str,
) -> ApiResult<()> {
    if candidates.is_empty()
        || candidates
            .iter()
            .any(|c| c.engines.iter().any(|e| e == engine))
    {
        return Ok(());
    }
    Err(ApiError::field(
        "memcacheVersion",
        format!(
            "no host in region '{region}' runs {engine} (memcached is not installed on its hosts)"
        ),
    ))
}
