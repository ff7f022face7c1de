//! Patch with `updateMask`: display name and labels change at once; size, replicas,
//! engine settings and read replicas change the nodes, so the instance goes UPDATING
//! until the agents have applied them.

use std::collections::{BTreeMap, HashMap};

use cacheplane_types::{Operation, PatchInstanceRequest, ReadReplicasMode, Tier};
use chrono::Utc;
use ipnet::IpNet;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::instances::store::{InstanceRow, NodeRow};
use crate::instances::{
    add_nodes, render, store, touch_nodes, validate, InstanceRef, NewNode, GIB,
};
use crate::operations::{self, NewOperation};
use crate::state::AppState;
use crate::{alloc, catalog, idempotency, networks, scheduler};

/// Fields `updateMask` may name.
pub const UPDATABLE: &[&str] = &[
    "displayName",
    "labels",
    "memorySizeGb",
    "replicaCount",
    "redisConfigs",
    "readReplicasMode",
    "secondaryIpRange",
];

/// Parses `updateMask` into its fields.
pub fn parse_mask(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let raw = raw
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::field(
                "updateMask",
                format!(
                    "is required: a comma-separated list of {}",
                    UPDATABLE.join(", ")
                ),
            )
        })?;
    let mut fields: Vec<String> = Vec::new();
    for f in raw.split(',').map(str::trim) {
        if !UPDATABLE.contains(&f) {
            return Err(ApiError::field(
                "updateMask",
                format!(
                    "'{f}' cannot be updated; updatable: {}",
                    UPDATABLE.join(", ")
                ),
            ));
        }
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_string());
        }
    }
    let rr = fields.iter().any(|f| f == "readReplicasMode");
    if rr
        && fields
            .iter()
            .any(|f| f != "readReplicasMode" && f != "secondaryIpRange")
    {
        return Err(ApiError::field(
            "updateMask",
            "readReplicasMode must be changed on its own (with secondaryIpRange only)",
        ));
    }
    if !rr && fields.iter().any(|f| f == "secondaryIpRange") {
        return Err(ApiError::field(
            "updateMask",
            "secondaryIpRange goes with readReplicasMode",
        ));
    }
    Ok(fields)
}

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
    let request_id = idempotency::parse_request_id(request_id)?;
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    if let Some(rid) = request_id {
        let fp = idempotency::fingerprint(&[
            "patch",
            &target.full_name(),
            &mask.join(","),
            &serde_json::to_string(&req).unwrap_or_default(),
        ]);
        if let Some(earlier) = idempotency::claim(&mut tx, &target.project, rid, &fp, op_id).await?
        {
            tx.rollback().await?;
            return Ok(operations::get_by_id(&state.pool, earlier).await?.to_wire());
        }
    }
    let inst = store::lock(&mut tx, &target.project, &target.region, &target.name).await?;
    crate::instances::lock_region_hosts(&mut tx, &inst.region_id).await?;
    if let Some(etag) = &req.etag {
        if *etag != render::etag(inst.version) {
            return Err(ApiError::Aborted(format!(
                "etag '{etag}' does not match the instance's current etag '{}'; read it again and retry",
                render::etag(inst.version)
            )));
        }
    }
    if inst.state == "DELETING" {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is being deleted",
            inst.name
        )));
    }
    let has = |f: &str| mask.iter().any(|m| m == f);
    let changes_nodes = [
        "memorySizeGb",
        "replicaCount",
        "redisConfigs",
        "readReplicasMode",
    ]
    .iter()
    .any(|f| has(f));
    if changes_nodes && inst.state != "READY" {
        return Err(ApiError::FailedPrecondition(format!(
            "instance '{}' is {}; size, replicas, settings and read replicas change only when it is READY",
            inst.name, inst.state
        )));
    }

    if has("displayName") {
        let d = req.display_name.clone().unwrap_or_default();
        validate::display_name(&d)?;
        sqlx::query("update instance set display_name = $2 where id = $1")
            .bind(inst.id)
            .bind(&d)
            .execute(&mut *tx)
            .await?;
    }
    if has("labels") {
        let labels = req.labels.clone().unwrap_or_default();
        validate::labels(&labels)?;
        sqlx::query("update instance set labels = $2 where id = $1")
            .bind(inst.id)
            .bind(Json(&labels))
            .execute(&mut *tx)
            .await?;
    }

    let nodes: Vec<NodeRow> = store::nodes_of(&mut *tx, &[inst.id])
        .await?
        .into_iter()
        .filter(|n| !n.removing)
        .collect();
    let mut touched: Vec<Uuid> = Vec::new();
    let tier = Tier::parse(&inst.tier_id).unwrap_or(Tier::Basic);
    let tier_info = catalog::get_tier(&mut *tx, tier).await?;

    let mut memory_gb = inst.memory_size_gb;
    if has("memorySizeGb") {
        let gb = req.memory_size_gb.ok_or_else(|| {
            ApiError::field("memorySizeGb", "is in updateMask but not in the body")
        })?;
        memory_gb = validate::memory_size(gb, &tier_info)?;
        if memory_gb != inst.memory_size_gb {
            resize(&mut tx, &inst, &nodes, memory_gb).await?;
            touched.extend(nodes.iter().map(|n| n.id));
        }
    }
    if has("redisConfigs") || memory_gb != inst.memory_size_gb {
        let mut configs: BTreeMap<String, String> = if has("redisConfigs") {
            req.redis_configs.clone().unwrap_or_default()
        } else {
            inst.redis_configs.0.clone()
        };
        validate::redis_configs(&configs, memory_gb)?;
        configs
            .entry("maxmemory-policy".into())
            .or_insert_with(|| validate::DEFAULT_MAXMEMORY_POLICY.into());
        if configs != inst.redis_configs.0 {
            sqlx::query("update instance set redis_configs = $2 where id = $1")
                .bind(inst.id)
                .bind(Json(&configs))
                .execute(&mut *tx)
                .await?;
            touched.extend(nodes.iter().map(|n| n.id));
        }
    }
    if has("replicaCount") {
        let mode = if inst.read_replicas_enabled {
            ReadReplicasMode::ReadReplicasEnabled
        } else {
            ReadReplicasMode::ReadReplicasDisabled
        };
        let wanted = req.replica_count.ok_or_else(|| {
            ApiError::field("replicaCount", "is in updateMask but not in the body")
        })?;
        let wanted = validate::replica_count(Some(wanted), &tier_info, mode)?;
        let changed = rescale(state, &mut tx, &inst, &nodes, wanted, memory_gb).await?;
        if !changed.is_empty() {
            // The primary's read endpoint lists the replicas: its host must see the change.
            touched.extend(nodes.iter().filter(|n| n.role == "PRIMARY").map(|n| n.id));
        }
        touched.extend(changed);
    }
    if has("readReplicasMode") {
        touched.extend(enable_read_replicas(&mut tx, &inst, &nodes, tier, &req).await?);
    }

    touched.sort();
    touched.dedup();
    touch_nodes(&mut tx, &touched).await?;
    let new_state = if touched.is_empty() {
        inst.state.clone()
    } else {
        "UPDATING".to_string()
    };
    sqlx::query(
        r#"update instance set state = $2, memory_size_gb = $3, version = version + 1,
               updated_at = now() where id = $1"#,
    )
    .bind(inst.id)
    .bind(&new_state)
    .bind(memory_gb)
    .execute(&mut *tx)
    .await?;
    let full_name = target.full_name();
    operations::insert(
        &mut tx,
        NewOperation {
            id: op_id,
            project: &target.project,
            region: &target.region,
            verb: "update",
            target: &full_name,
            instance: Some(inst.id),
            detail: if touched.is_empty() {
                "done"
            } else {
                "applying the change on the nodes"
            },
            params: serde_json::json!({ "updateMask": mask }),
        },
    )
    .await?;
    if touched.is_empty() {
        let inst = store::get_by_id(&mut *tx, inst.id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("instance '{}' not found", target.name)))?;
        let nodes = store::nodes_of(&mut *tx, &[inst.id]).await?;
        let wire = render::to_wire(&inst, &nodes, Utc::now(), state.config.host_timeout);
        operations::finish(&mut tx, op_id, Ok(Some(&wire))).await?;
    }
    tx.commit().await?;
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}

/// Changes every node's memory, refusing before any change if a host lacks room.
async fn resize(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    memory_gb: i32,
) -> ApiResult<()> {
    let delta = i64::from(memory_gb - inst.memory_size_gb) * GIB;
    if delta > 0 {
        let mut per_host: HashMap<&str, i64> = HashMap::new();
        for n in nodes {
            *per_host.entry(n.host_id.as_str()).or_default() += delta;
        }
        let hosts: Vec<String> = per_host.keys().map(|h| h.to_string()).collect();
        let free: Vec<(String, String, i64)> = sqlx::query_as(
            r#"select h.id, h.zone_id,
                   h.memory_bytes - coalesce((select sum(memory_bytes) from node n where n.host_id = h.id), 0)::bigint
               from host h where h.id = any($1) order by h.id for update"#,
        )
        .bind(&hosts)
        .fetch_all(&mut *tx)
        .await?;
        for (host, zone, free_bytes) in free {
            let need = per_host.get(host.as_str()).copied().unwrap_or(0);
            if need > free_bytes {
                return Err(ApiError::ResourceExhausted(format!(
                    "host '{host}' in zone '{zone}' has {} GiB free; {memory_gb} GB needs {} GiB more",
                    free_bytes.max(0) / GIB,
                    need / GIB
                )));
            }
        }
    }
    sqlx::query("update node set memory_bytes = $2 where instance_id = $1 and not removing")
        .bind(inst.id)
        .bind(i64::from(memory_gb) * GIB)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Adds replicas (placed like at create) or removes the newest ones.
async fn rescale(
    state: &AppState,
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    wanted: i32,
    memory_gb: i32,
) -> ApiResult<Vec<Uuid>> {
    let current = nodes.iter().filter(|n| n.role == "REPLICA").count() as i32;
    sqlx::query("update instance set replica_count = $2 where id = $1")
        .bind(inst.id)
        .bind(wanted)
        .execute(&mut *tx)
        .await?;
    if wanted < current {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            r#"update node set removing = true where id in (
                   select id from node where instance_id = $1 and role = 'REPLICA' and not removing
                   order by ordinal desc limit $2)
               returning id"#,
        )
        .bind(inst.id)
        .bind(i64::from(current - wanted))
        .fetch_all(&mut *tx)
        .await?;
        return Ok(ids);
    }
    if wanted == current {
        return Ok(Vec::new());
    }
    let range = inst
        .range()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("instance {} has no range", inst.id)))?;
    let mut candidates =
        scheduler::load_candidates(&mut *tx, &inst.region_id, state.config.host_timeout).await?;
    let region_zones: Vec<String> =
        sqlx::query_scalar("select id from zone where region_id = $1 order by id")
            .bind(&inst.region_id)
            .fetch_all(&mut *tx)
            .await?;
    let all: Vec<NodeRow> = store::nodes_of(&mut *tx, &[inst.id]).await?;
    let existing_zones: Vec<String> = nodes.iter().map(|n| n.zone_id.clone()).collect();
    let zones = scheduler::plan_zones(
        (wanted - current) as usize,
        &existing_zones,
        &inst.location_id,
        inst.alternative_location_id.as_deref(),
        &region_zones,
    );
    let new: Vec<NewNode> = zones
        .into_iter()
        .map(|zone| NewNode {
            zone,
            role: "REPLICA",
        })
        .collect();
    let first_ordinal = all.iter().map(|n| n.ordinal + 1).max().unwrap_or(0);
    let used: Vec<IpNet> = all.iter().map(|n| n.address).collect();
    add_nodes(
        tx,
        inst.id,
        range,
        &inst.redis_version,
        i64::from(memory_gb) * GIB,
        &new,
        &mut candidates,
        nodes.iter().map(|n| n.host_id.clone()).collect(),
        &used,
        first_ordinal,
    )
    .await
}

/// Enables read replicas: a further range for the instance; the read endpoint comes from
/// the original range. It cannot be undone.
async fn enable_read_replicas(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    tier: Tier,
    req: &PatchInstanceRequest,
) -> ApiResult<Vec<Uuid>> {
    let mode = req.read_replicas_mode.ok_or_else(|| {
        ApiError::field("readReplicasMode", "is in updateMask but not in the body")
    })?;
    match (mode, inst.read_replicas_enabled) {
        (ReadReplicasMode::ReadReplicasDisabled, true) => {
            return Err(ApiError::field(
                "readReplicasMode",
                "read replicas cannot be disabled once enabled",
            ))
        }
        (ReadReplicasMode::ReadReplicasDisabled, false)
        | (ReadReplicasMode::ReadReplicasEnabled, true) => return Ok(Vec::new()),
        (ReadReplicasMode::ReadReplicasEnabled, false) => {}
    }
    validate::read_replicas_mode(mode, tier)?;
    let raw = req
        .secondary_ip_range
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::field(
                "secondaryIpRange",
                "is required to enable read replicas: a /28 CIDR or 'auto'",
            )
        })?;
    let network = networks::get_by_id(&mut *tx, inst.network_id).await?;
    alloc::lock_network(&mut *tx, network.id).await?;
    let range = if raw == "auto" {
        alloc::allocate_auto(&mut *tx, network.id, 28)
            .await?
            .ok_or_else(|| {
                ApiError::ResourceExhausted(format!(
                    "network '{}' has no free /28 left",
                    network.name
                ))
            })?
    } else {
        let r = networks::parse_cidr("secondaryIpRange", raw)?;
        if r.prefix_len() != 28 || !network.pool().contains(&r) {
            return Err(ApiError::field(
                "secondaryIpRange",
                format!(
                    "must be a /28 inside network '{}' ({})",
                    network.name,
                    network.pool()
                ),
            ));
        }
        if !alloc::allocate_exact(&mut *tx, network.id, r).await? {
            return Err(ApiError::field(
                "secondaryIpRange",
                format!("{r} overlaps the range of another instance"),
            ));
        }
        r
    };
    sqlx::query(
        "insert into address_range (instance_id, network_id, purpose, range) values ($1, $2, 'SECONDARY', $3::cidr)",
    )
    .bind(inst.id)
    .bind(network.id)
    .bind(IpNet::V4(range))
    .execute(&mut *tx)
    .await?;
    sqlx::query("update instance set read_replicas_enabled = true where id = $1")
        .bind(inst.id)
        .execute(&mut *tx)
        .await?;
    Ok(nodes.iter().map(|n| n.id).collect())
}
