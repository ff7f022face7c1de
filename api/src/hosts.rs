//! Hosts and the agent protocol: registration, heartbeats carrying observed node state,
//! and the host config (desired state) served by long-poll.

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_types::{
    HeartbeatRequest, HeartbeatResponse, Host, HostConfig, HostState, NodeRole, NodeSpec,
    ReadEndpointSpec, RegisterHostRequest,
};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};
use crate::notify::Change;
use crate::state::AppState;
use crate::{instances, reconcile};

/// Checks a host id: 1–63 lowercase letters, digits, dots and hyphens.
pub fn validate_host_id(field: &str, id: &str) -> ApiResult<()> {
    let ok = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be 1-63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit",
        ))
    }
}

#[derive(sqlx::FromRow)]
struct HostRow {
    id: String,
    zone_id: String,
    address: IpNet,
    memory_bytes: i64,
    allocated: i64,
    engines: Vec<String>,
    generation: i64,
    applied_generation: i64,
    last_heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

const HOST_SELECT: &str = r#"
    select h.id, h.zone_id, h.address, h.memory_bytes, h.engines, h.generation, h.applied_generation,
        h.last_heartbeat_at, h.created_at,
        coalesce((select sum(memory_bytes) from node n where n.host_id = h.id), 0)::bigint as allocated
    from host h"#;

impl HostRow {
    fn to_wire(&self, timeout: Duration) -> Host {
        let up = self.last_heartbeat_at.is_some_and(|t| {
            Utc::now()
                .signed_duration_since(t)
                .to_std()
                .map_or(true, |age| age <= timeout)
        });
        Host {
            name: format!("hosts/{}", self.id),
            zone: self.zone_id.clone(),
            address: self.address.addr().to_string(),
            memory_bytes: self.memory_bytes,
            allocated_memory_bytes: self.allocated,
            engines: self.engines.clone(),
            state: if up { HostState::Up } else { HostState::Down },
            config_generation: self.generation,
            applied_generation: self.applied_generation,
            last_heartbeat_time: self.last_heartbeat_at,
            create_time: self.created_at,
        }
    }
}

async fn get_row(db: impl PgExecutor<'_>, host: &str) -> ApiResult<HostRow> {
    let row: Option<HostRow> = sqlx::query_as(&format!("{HOST_SELECT} where h.id = $1"))
        .bind(host)
        .fetch_optional(db)
        .await?;
    row.ok_or_else(|| ApiError::NotFound(format!("host '{host}' not found")))
}

/// Registers a host or updates its registration; counts as a heartbeat.
pub async fn register(state: &AppState, host: &str, req: &RegisterHostRequest) -> ApiResult<Host> {
    validate_host_id("host", host)?;
    let address: std::net::IpAddr = req.address.parse().map_err(|_| {
        ApiError::field("address", format!("'{}' is not an IP address", req.address))
    })?;
    if req.memory_bytes <= 0 {
        return Err(ApiError::field("memoryBytes", "must be more than 0"));
    }
    if req.engines.len() > 16 || req.engines.iter().any(|e| e.is_empty() || e.len() > 32) {
        return Err(ApiError::field(
            "engines",
            "at most 16 names of 1-32 characters",
        ));
    }
    sqlx::query(
        r#"insert into host (id, zone_id, address, memory_bytes, engines, last_heartbeat_at)
           values ($1, $2, $3, $4, $5, now())
           on conflict (id) do update set zone_id = excluded.zone_id, address = excluded.address,
               memory_bytes = excluded.memory_bytes, engines = excluded.engines,
               last_heartbeat_at = now(), updated_at = now()"#,
    )
    .bind(host)
    .bind(&req.zone)
    .bind(IpNet::from(address))
    .bind(req.memory_bytes)
    .bind(&req.engines)
    .execute(&state.pool)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("host_zone_id_fkey") => {
            ApiError::field("zone", format!("zone '{}' does not exist", req.zone))
        }
        _ => e.into(),
    })?;
    Ok(get_row(&state.pool, host)
        .await?
        .to_wire(state.config.host_timeout))
}

/// Every host.
pub async fn list(state: &AppState) -> ApiResult<Vec<Host>> {
    let rows: Vec<HostRow> = sqlx::query_as(&format!("{HOST_SELECT} order by h.id"))
        .fetch_all(&state.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.to_wire(state.config.host_timeout))
        .collect())
}

/// One host.
pub async fn get(state: &AppState, host: &str) -> ApiResult<Host> {
    Ok(get_row(&state.pool, host)
        .await?
        .to_wire(state.config.host_timeout))
}

/// Records a heartbeat: the host's applied generation and each node's observed state.
/// A report older than one already received updates only the heartbeat time. Nodes being
/// removed that the agent no longer reports after applying their removal are gone.
pub async fn heartbeat(
    state: &AppState,
    host: &str,
    req: &HeartbeatRequest,
) -> ApiResult<HeartbeatResponse> {
    if req.applied_generation < 0 {
        return Err(ApiError::field("appliedGeneration", "must not be negative"));
    }
    let mut tx = state.pool.begin().await?;
    let current: Option<(i64, i64)> =
        sqlx::query_as("select generation, applied_generation from host where id = $1 for update")
            .bind(host)
            .fetch_optional(&mut *tx)
            .await?;
    let (generation, applied) =
        current.ok_or_else(|| ApiError::NotFound(format!("host '{host}' is not registered")))?;
    if req.applied_generation > generation {
        return Err(ApiError::field(
            "appliedGeneration",
            format!(
                "{} is newer than the host's config generation {generation}",
                req.applied_generation
            ),
        ));
    }
    sqlx::query("update host set last_heartbeat_at = now() where id = $1")
        .bind(host)
        .execute(&mut *tx)
        .await?;
    if req.applied_generation < applied {
        tx.commit().await?;
        return Ok(HeartbeatResponse {
            config_generation: generation,
        });
    }
    sqlx::query("update host set applied_generation = $2, free_memory_bytes = $3 where id = $1")
        .bind(host)
        .bind(req.applied_generation)
        .bind(req.free_memory_bytes)
        .execute(&mut *tx)
        .await?;
    let mut reported: Vec<Uuid> = Vec::with_capacity(req.nodes.len());
    for report in &req.nodes {
        reported.push(report.node_id);
        sqlx::query(
            r#"update node set observed = $3, observed_generation = $4, observed_at = now()
               where id = $1 and host_id = $2"#,
        )
        .bind(report.node_id)
        .bind(host)
        .bind(Json(report))
        .bind(req.applied_generation)
        .execute(&mut *tx)
        .await?;
    }
    let freed: Vec<Uuid> = sqlx::query_scalar(
        r#"delete from node where host_id = $1 and removing and desired_generation <= $2
               and not (id = any($3)) returning instance_id"#,
    )
    .bind(host)
    .bind(req.applied_generation)
    .bind(&reported)
    .fetch_all(&mut *tx)
    .await?;
    let ops: Vec<Uuid> = sqlx::query_scalar(
        r#"select o.id from operation o where not o.done and (o.instance_id = any($2)
               or o.instance_id in (select instance_id from node where host_id = $1))"#,
    )
    .bind(host)
    .bind(&freed)
    .fetch_all(&mut *tx)
    .await?;
    // Health changes worth a look: READY instances with a node reported unwell here, and
    // REPAIRING ones with a node here (it may have recovered). Healthy reports of READY
    // instances, the common case, cost nothing more.
    let unwell: Vec<Uuid> = req
        .nodes
        .iter()
        .filter(|r| {
            !r.process_up
                || r.error.is_some()
                || (r.role == Some(NodeRole::Replica) && r.master_link_up != Some(true))
        })
        .map(|r| r.node_id)
        .collect();
    let quiet: Vec<Uuid> = sqlx::query_scalar(
        r#"select distinct n.instance_id from node n join instance i on i.id = n.instance_id
           where n.host_id = $1 and (i.state = 'REPAIRING' or (i.state = 'READY' and n.id = any($2)))"#,
    )
    .bind(host)
    .bind(&unwell)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for op in ops {
        reconcile::advance(state, op).await?;
    }
    for instance in quiet {
        crate::health::check(state, instance).await?;
    }
    Ok(HeartbeatResponse {
        config_generation: generation,
    })
}

#[derive(sqlx::FromRow)]
struct SpecRow {
    id: Uuid,
    role: String,
    address: IpNet,
    memory_bytes: i64,
    project_id: String,
    region_id: String,
    name: String,
    redis_version: String,
    redis_configs: Json<BTreeMap<String, String>>,
    port: i32,
    auth_enabled: bool,
    auth_string: String,
    tier_id: String,
    primary_range: Option<IpNet>,
    primary_address: Option<IpNet>,
    read_replicas_enabled: bool,
    replica_addresses: Vec<IpNet>,
}

/// The host's desired config now.
pub async fn config(db: impl PgExecutor<'_> + Copy, host: &str) -> ApiResult<HostConfig> {
    let generation: Option<i64> = sqlx::query_scalar("select generation from host where id = $1")
        .bind(host)
        .fetch_optional(db)
        .await?;
    let generation =
        generation.ok_or_else(|| ApiError::NotFound(format!("host '{host}' not found")))?;
    let rows: Vec<SpecRow> = sqlx::query_as(
        r#"select n.id, n.role, n.address, n.memory_bytes, i.project_id, i.region_id, i.name,
               i.redis_version, i.redis_configs, i.port, i.auth_enabled, i.auth_string, i.tier_id,
               (select range::inet from address_range a where a.instance_id = i.id and a.purpose = 'PRIMARY') as primary_range,
               (select p.address from node p where p.instance_id = i.id and p.role = 'PRIMARY' and not p.removing) as primary_address,
               i.read_replicas_enabled,
               array(select r.address from node r where r.instance_id = i.id and r.role = 'REPLICA'
                     and not r.removing order by r.ordinal) as replica_addresses
           from node n join instance i on i.id = n.instance_id
           where n.host_id = $1 and not n.removing order by n.id"#,
    )
    .bind(host)
    .fetch_all(db)
    .await?;
    let nodes = rows
        .into_iter()
        .map(|r| {
            let role = NodeRole::parse(&r.role).unwrap_or(NodeRole::Replica);
            let at = |offset| match r.primary_range {
                Some(IpNet::V4(range)) => Some(instances::store::offset(range, offset).to_string()),
                _ => None,
            };
            let endpoint = at(instances::store::PRIMARY_ENDPOINT_OFFSET);
            let port = u16::try_from(r.port).unwrap_or(6379);
            let read_endpoint = at(instances::store::READ_ENDPOINT_OFFSET)
                .filter(|_| r.read_replicas_enabled && role == NodeRole::Primary)
                .map(|address| ReadEndpointSpec {
                    address,
                    port,
                    replicas: r
                        .replica_addresses
                        .iter()
                        .map(|a| a.addr().to_string())
                        .collect(),
                });
            NodeSpec {
                node_id: r.id,
                instance: format!(
                    "projects/{}/locations/{}/instances/{}",
                    r.project_id, r.region_id, r.name
                ),
                engine_version: r.redis_version,
                role,
                address: r.address.addr().to_string(),
                port,
                endpoint_address: endpoint.filter(|_| role == NodeRole::Primary),
                primary_address: r
                    .primary_address
                    .map(|a| a.addr().to_string())
                    .filter(|_| role == NodeRole::Replica),
                maxmemory_bytes: r.memory_bytes,
                read_endpoint,
                redis_configs: r.redis_configs.0,
                restart_in_place: r.tier_id == "BASIC",
                auth_string: r.auth_enabled.then_some(r.auth_string),
            }
        })
        .collect();
    Ok(HostConfig {
        host: format!("hosts/{host}"),
        generation,
        nodes,
    })
}

/// The host config once its generation is newer than `known` (at once if it already is),
/// or the current one when `timeout` passes.
pub async fn wait_config(
    state: &AppState,
    host: &str,
    known: i64,
    timeout: Duration,
) -> ApiResult<HostConfig> {
    let timeout = timeout.min(state.config.max_wait);
    let pool = &state.pool;
    let found = state
        .notifier
        .wait_for(
            |c| matches!(c, Change::Host(h) if h == host),
            timeout,
            || async move {
                let gen: Option<i64> =
                    sqlx::query_scalar("select generation from host where id = $1")
                        .bind(host)
                        .fetch_optional(pool)
                        .await?;
                match gen {
                    None => Err(ApiError::NotFound(format!("host '{host}' not found"))),
                    Some(g) if g > known => Ok(Some(())),
                    Some(_) => Ok(None),
                }
            },
        )
        .await?;
    let _ = found;
    config(pool, host).await
}
