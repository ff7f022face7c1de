//! Create: validate, then in one transaction insert the instance, allocate its range,
//! place its nodes and record the operation (SPEC §3.1). When there is no room (no host
//! or no addresses), the operation ends at once in RESOURCE_EXHAUSTED and nothing stays
//! allocated.

use cacheplane_types::{CreateInstanceRequest, Operation, ReadReplicasMode, Tier};
use ipnet::IpNet;
use rand::distributions::{Alphanumeric, DistString};
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{constraint_of, ApiError, ApiResult};
use crate::instances::{add_nodes, validate, InstanceRef, NewNode, GIB};
use crate::operations::{self, NewOperation};
use crate::state::AppState;
use crate::{alloc, catalog, idempotency, networks, scheduler};

/// Creates an instance; answers with its operation.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
    request_id: Option<&str>,
    req: CreateInstanceRequest,
) -> ApiResult<Operation> {
    principal.check_project(&target.project)?;
    let name = target.name.as_str();
    if name.is_empty() {
        return Err(ApiError::field("instanceId", "is required"));
    }
    validate::instance_id("instanceId", name)?;
    let request_id = idempotency::parse_request_id(request_id)?;
    let fingerprint = idempotency::fingerprint(&[
        "create",
        &target.full_name(),
        &serde_json::to_string(&req).unwrap_or_default(),
    ]);

    let mut tx = state.pool.begin().await?;
    networks::ensure_project(
        &mut tx,
        &target.project,
        state.config.default_network_supernet,
    )
    .await?;
    catalog::require_region(&mut *tx, &target.region).await?;
    let op_id = Uuid::new_v4();
    if let Some(rid) = request_id {
        if let Some(earlier) =
            idempotency::claim(&mut tx, &target.project, rid, &fingerprint, op_id).await?
        {
            tx.rollback().await?;
            return Ok(operations::get_by_id(&state.pool, earlier).await?.to_wire());
        }
    }
    match insert_and_place(state, &mut tx, target, &req, op_id).await {
        Ok(op) => {
            tx.commit().await?;
            Ok(op)
        }
        Err(ApiError::ResourceExhausted(msg)) => {
            tx.rollback().await?;
            record_exhausted(state, target, request_id, &fingerprint, msg).await
        }
        Err(e) => Err(e),
    }
}

async fn insert_and_place(
    state: &AppState,
    tx: &mut PgConnection,
    target: &InstanceRef,
    req: &CreateInstanceRequest,
    op_id: Uuid,
) -> ApiResult<Operation> {
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
    let mut configs = req.redis_configs.clone();
    validate::redis_configs(&configs, memory_gb)?;
    configs
        .entry("maxmemory-policy".into())
        .or_insert_with(|| validate::DEFAULT_MAXMEMORY_POLICY.into());
    let region_zones: Vec<String> =
        sqlx::query_scalar("select id from zone where region_id = $1 order by id")
            .bind(&target.region)
            .fetch_all(&mut *tx)
            .await?;
    validate::zones(
        req.location_id.as_deref(),
        req.alternative_location_id.as_deref(),
        tier,
        &target.region,
        &region_zones,
    )?;
    let network =
        networks::resolve(&mut *tx, &target.project, req.authorized_network.as_deref()).await?;
    let pool = network.pool();
    let reserved = match req.reserved_ip_range.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let r = networks::parse_cidr("reservedIpRange", raw)?;
            if r.prefix_len() > 28 {
                return Err(ApiError::field(
                    "reservedIpRange",
                    format!("{r} is too small: the range must be /28 or larger"),
                ));
            }
            if !pool.contains(&r) {
                return Err(ApiError::field(
                    "reservedIpRange",
                    format!("{r} is not inside network '{}' ({pool})", network.name),
                ));
            }
            Some(r)
        }
    };

    // Hosts first (locked in id order), then the network: the same order as every other
    // path that takes both.
    let engine = version.as_str();
    let mut candidates =
        scheduler::load_candidates(&mut *tx, &target.region, state.config.host_timeout).await?;
    if !candidates.is_empty()
        && !candidates
            .iter()
            .any(|c| c.engines.iter().any(|e| e == engine))
    {
        let mut offered: Vec<&str> = candidates
            .iter()
            .flat_map(|c| c.engines.iter().map(String::as_str))
            .collect();
        offered.sort_unstable();
        offered.dedup();
        return Err(ApiError::field(
            "redisVersion",
            format!(
                "no host in region '{}' runs {engine}; available: {}",
                target.region,
                offered.join(", ")
            ),
        ));
    }
    let location =
        match &req.location_id {
            Some(z) => z.clone(),
            None => scheduler::roomiest_zone(&candidates, &region_zones, engine, None).ok_or_else(
                || ApiError::ResourceExhausted(format!("region '{}' has no zones", target.region)),
            )?,
        };
    let alternative = match (tier, &req.alternative_location_id) {
        (Tier::Basic, _) => None,
        (_, Some(z)) => Some(z.clone()),
        (_, None) => scheduler::roomiest_zone(&candidates, &region_zones, engine, Some(&location)),
    };

    let instance_id = Uuid::new_v4();
    let auth_string = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    sqlx::query(
        r#"insert into instance (id, project_id, region_id, name, display_name, tier_id, memory_size_gb,
               replica_count, read_replicas_enabled, location_id, alternative_location_id, redis_version,
               redis_configs, network_id, auth_enabled, auth_string, state, labels)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'CREATING', $17)"#,
    )
    .bind(instance_id)
    .bind(&target.project)
    .bind(&target.region)
    .bind(&target.name)
    .bind(req.display_name.clone().unwrap_or_default())
    .bind(tier.as_str())
    .bind(memory_gb)
    .bind(replicas)
    .bind(mode == ReadReplicasMode::ReadReplicasEnabled)
    .bind(&location)
    .bind(&alternative)
    .bind(&version)
    .bind(Json(&configs))
    .bind(network.id)
    .bind(req.auth_enabled.unwrap_or(true))
    .bind(&auth_string)
    .bind(Json(&req.labels))
    .execute(&mut *tx)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("instance_name_key") => {
            ApiError::AlreadyExists(format!("instance '{}' already exists", target.name))
        }
        _ => e.into(),
    })?;

    alloc::lock_network(&mut *tx, network.id).await?;
    let range = match reserved {
        Some(r) => {
            if !alloc::allocate_exact(&mut *tx, network.id, r).await? {
                return Err(ApiError::field(
                    "reservedIpRange",
                    format!(
                        "{r} overlaps the range of another instance in network '{}'",
                        network.name
                    ),
                ));
            }
            r
        }
        None => alloc::allocate_auto(&mut *tx, network.id, 28)
            .await?
            .ok_or_else(|| {
                ApiError::ResourceExhausted(format!(
                    "network '{}' ({pool}) has no free /28 left",
                    network.name
                ))
            })?,
    };
    sqlx::query(
        "insert into address_range (instance_id, network_id, purpose, range) values ($1, $2, 'PRIMARY', $3::cidr)",
    )
    .bind(instance_id)
    .bind(network.id)
    .bind(IpNet::V4(range))
    .execute(&mut *tx)
    .await?;

    let zones = scheduler::plan_zones(
        1 + replicas as usize,
        &[],
        &location,
        alternative.as_deref(),
        &region_zones,
    );
    let new: Vec<NewNode> = zones
        .into_iter()
        .enumerate()
        .map(|(i, zone)| NewNode {
            zone,
            role: if i == 0 { "PRIMARY" } else { "REPLICA" },
        })
        .collect();
    add_nodes(
        &mut *tx,
        instance_id,
        range,
        engine,
        i64::from(memory_gb) * GIB,
        &new,
        &mut candidates,
        Vec::new(),
        &[],
        0,
    )
    .await?;

    let full_name = target.full_name();
    let op = operations::insert(
        &mut *tx,
        NewOperation {
            id: op_id,
            project: &target.project,
            region: &target.region,
            verb: "create",
            target: &full_name,
            instance: Some(instance_id),
            detail: "waiting for the nodes to start",
            params: serde_json::json!({}),
        },
    )
    .await?;
    Ok(op.to_wire())
}

/// Records a create that found no room as a finished, failed operation (nothing else).
async fn record_exhausted(
    state: &AppState,
    target: &InstanceRef,
    request_id: Option<Uuid>,
    fingerprint: &str,
    message: String,
) -> ApiResult<Operation> {
    let mut tx = state.pool.begin().await?;
    networks::ensure_project(
        &mut tx,
        &target.project,
        state.config.default_network_supernet,
    )
    .await?;
    let op_id = Uuid::new_v4();
    if let Some(rid) = request_id {
        if let Some(earlier) =
            idempotency::claim(&mut tx, &target.project, rid, fingerprint, op_id).await?
        {
            tx.rollback().await?;
            return Ok(operations::get_by_id(&state.pool, earlier).await?.to_wire());
        }
    }
    let full_name = target.full_name();
    operations::insert(
        &mut tx,
        NewOperation {
            id: op_id,
            project: &target.project,
            region: &target.region,
            verb: "create",
            target: &full_name,
            instance: None,
            detail: "no room",
            params: serde_json::json!({}),
        },
    )
    .await?;
    let status = ApiError::ResourceExhausted(message).to_status();
    operations::finish(&mut tx, op_id, Err(&status)).await?;
    tx.commit().await?;
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}
