//! Create: validate, then in one transaction insert the instance, allocate its range,
//! place its nodes and record the operation. When there is no room (no host or no
//! addresses), the operation ends at once in RESOURCE_EXHAUSTED and nothing stays
//! allocated.

use std::collections::BTreeMap;

use cacheplane_types::{
    CreateInstanceRequest, NodeRole, Operation, OperationVerb, ReadReplicasMode, Tier,
    TransitEncryptionMode,
};
use ipnet::Ipv4Net;
use rand::distributions::{Alphanumeric, DistString};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::instances::{self as db, NewInstance};
use crate::db::ranges::Purpose;
use crate::error::{ApiError, ApiResult};
use crate::instances::{add_nodes, tls, validate, InstanceRef, NewNode, Placement, GIB};
use crate::networks::NetworkRow;
use crate::operations;
use crate::scheduler::{self, Candidate};
use crate::state::AppState;
use crate::{alloc, catalog, idempotency, networks, quotas};

/// Creates an instance; answers with its operation.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    request_id: Option<&str>,
    req: CreateInstanceRequest,
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
        Ok(op) => {
            tx.commit().await?;
            Ok(op)
        }
        Err(ApiError::ResourceExhausted(msg)) => {
            tx.rollback().await?;
            idempotency::record_exhausted_create(
                state,
                target.scope(),
                request_id,
                &fingerprint,
                |id| target.new_operation(id, OperationVerb::Create, None, "no room"),
                msg,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// A create request once checked, with the defaults filled in.
struct Spec {
    tier: Tier,
    memory_gb: i32,
    mode: ReadReplicasMode,
    replicas: i32,
    version: String,
    configs: BTreeMap<String, String>,
    region_zones: Vec<String>,
    network: NetworkRow,
    /// The range the client asked for, if any.
    reserved: Option<Ipv4Net>,
}

/// Checks every field of a create request against the tier, the region and the network.
async fn check_request(
    tx: &mut PgConnection,
    target: &InstanceRef,
    req: &CreateInstanceRequest,
) -> ApiResult<Spec> {
    let tier = req.tier;
    let tier_info = catalog::get_tier(&mut *tx, tier).await?;
    let memory_gb = validate::memory_size(req.memory_size_gb, &tier_info)?;
    let mode = req.read_replicas_mode.unwrap_or_default();
    validate::read_replicas_mode(mode, tier)?;
    let replicas = validate::replica_count(req.replica_count, &tier_info, mode)?;
    if let Some(d) = &req.display_name {
        validate::display_name(d)?;
    }
    validate::labels(&req.labels)?;
    let version = req
        .redis_version
        .clone()
        .unwrap_or_else(|| validate::DEFAULT_REDIS_VERSION.to_string());
    validate::redis_version(&version)?;
    let configs = validate::redis_configs_with_defaults(req.redis_configs.clone(), memory_gb)?;
    let region_zones = crate::db::catalog::zones_of(&mut *tx, &target.region).await?;
    validate::zones(
        req.location_id.as_deref(),
        req.alternative_location_id.as_deref(),
        tier,
        &target.region,
        &region_zones,
    )?;
    let network =
        networks::resolve(&mut *tx, &target.project, req.authorized_network.as_deref()).await?;
    let reserved = match req.reserved_ip_range.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(reserved_range(raw, &network)?),
    };
    Ok(Spec {
        tier,
        memory_gb,
        mode,
        replicas,
        version,
        configs,
        region_zones,
        network,
        reserved,
    })
}

/// Checks a `reservedIpRange`: an aligned /28 or larger inside the network's pool.
fn reserved_range(raw: &str, network: &NetworkRow) -> ApiResult<Ipv4Net> {
    let r = networks::parse_cidr("reservedIpRange", raw)?;
    let pool = network.pool();
    if r.prefix_len() > 28 {
        return Err(ApiError::field(
            "reservedIpRange",
            format!("{r} is too small: the range must be /28 or larger"),
        ));
    }
    if !pool.contains(&r) {
        return Err(ApiError::conflict(
            "reservedIpRange",
            format!("{r} is not inside network '{}' ({pool})", network.name),
        ));
    }
    Ok(r)
}

/// INVALID_ARGUMENT on `redisVersion` when the region has hosts but none runs `engine`.
fn check_engine_offered(candidates: &[Candidate], engine: &str, region: &str) -> ApiResult<()> {
    if candidates.is_empty()
        || candidates
            .iter()
            .any(|c| c.engines.iter().any(|e| e == engine))
    {
        return Ok(());
    }
    let mut offered: Vec<&str> = candidates
        .iter()
        .flat_map(|c| c.engines.iter().map(String::as_str))
        .collect();
    offered.sort_unstable();
    offered.dedup();
    Err(ApiError::field(
        "redisVersion",
        format!(
            "no host in region '{region}' runs {engine}; available: {}",
            offered.join(", ")
        ),
    ))
}

/// The primary's and the first replica's zones: as requested, else the roomiest ones.
fn choose_zones(
    candidates: &[Candidate],
    spec: &Spec,
    req: &CreateInstanceRequest,
    region: &str,
) -> ApiResult<(String, Option<String>)> {
    let engine = spec.version.as_str();
    let zones = &spec.region_zones;
    let location = match &req.location_id {
        Some(z) => z.clone(),
        None => scheduler::roomiest_zone(candidates, zones, engine, None).ok_or_else(|| {
            ApiError::ResourceExhausted(format!("region '{region}' has no zones"))
        })?,
    };
    let alternative = match (spec.tier, &req.alternative_location_id) {
        (Tier::Basic, _) => None,
        (_, Some(z)) => Some(z.clone()),
        (_, None) => scheduler::roomiest_zone(candidates, zones, engine, Some(&location)),
    };
    Ok((location, alternative))
}

async fn insert_and_place(
    state: &AppState,
    tx: &mut PgConnection,
    target: &InstanceRef,
    req: &CreateInstanceRequest,
    op_id: Uuid,
) -> ApiResult<Operation> {
    let spec = check_request(tx, target, req).await?;
    quotas::check_create(
        tx,
        &state.config,
        &target.project,
        spec.memory_gb,
        spec.replicas,
    )
    .await?;
    // Hosts first (locked in id order), then the network: the same order as every other
    // path that takes both.
    let mut candidates =
        scheduler::load_candidates(&mut *tx, &target.region, state.config.host_timeout).await?;
    check_engine_offered(&candidates, &spec.version, &target.region)?;
    let (location, alternative) = choose_zones(&candidates, &spec, req, &target.region)?;

    let instance_id = Uuid::new_v4();
    let auth_string = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    db::insert(
        tx,
        &NewInstance {
            id: instance_id,
            project: &target.project,
            region: &target.region,
            name: &target.name,
            display_name: req.display_name.as_deref().unwrap_or_default(),
            tier: spec.tier,
            memory_size_gb: spec.memory_gb,
            replica_count: spec.replicas,
            read_replicas_enabled: spec.mode == ReadReplicasMode::ReadReplicasEnabled,
            location: &location,
            alternative_location: alternative.as_deref(),
            redis_version: &spec.version,
            redis_configs: &spec.configs,
            network: spec.network.id,
            auth_enabled: req.auth_enabled.unwrap_or(true),
            auth_string: &auth_string,
            labels: &req.labels,
        },
    )
    .await?;
    let range = reserve_range(tx, instance_id, &spec).await?;
    if req.transit_encryption_mode == Some(TransitEncryptionMode::ServerAuthentication) {
        tls::enable(tx, instance_id, &target.full_name(), range).await?;
    }

    let zones = scheduler::plan_zones(
        1 + spec.replicas as usize,
        &[],
        &location,
        alternative.as_deref(),
        &spec.region_zones,
    );
    let new: Vec<NewNode> = zones
        .into_iter()
        .enumerate()
        .map(|(i, zone)| NewNode {
            zone,
            role: if i == 0 {
                NodeRole::Primary
            } else {
                NodeRole::Replica
            },
        })
        .collect();
    let placement = Placement {
        instance: instance_id,
        range,
        engine: &spec.version,
        bytes: i64::from(spec.memory_gb) * GIB,
        candidates: &mut candidates,
        hosts_in_use: Vec::new(),
        used_addresses: &[],
        first_ordinal: 0,
    };
    add_nodes(tx, placement, &new).await?;

    let detail = "waiting for the nodes to start";
    let new_op = target.new_operation(op_id, OperationVerb::Create, Some(instance_id), detail);
    let op = operations::insert(tx, new_op).await?;
    Ok(op.to_wire())
}

/// Takes the instance's range: the reserved one if the request names it, else the first
/// free /28 of the network.
async fn reserve_range(tx: &mut PgConnection, instance: Uuid, spec: &Spec) -> ApiResult<Ipv4Net> {
    let network = &spec.network;
    let got = alloc::reserve(tx, instance, network.id, Purpose::Primary, spec.reserved).await?;
    match (got, spec.reserved) {
        (Some(r), _) => Ok(r),
        (None, Some(r)) => Err(ApiError::conflict(
            "reservedIpRange",
            format!(
                "{r} overlaps a range in use in network '{}' (an instance's or a connector's)",
                network.name
            ),
        )),
        (None, None) => Err(ApiError::ResourceExhausted(format!(
            "network '{}' ({}) has no free /28 left",
            network.name,
            network.pool()
        ))),
    }
}
