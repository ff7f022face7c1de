//! `host` rows: registered hosts, their heartbeats and config generations, and what
//! placement needs to know about them.

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_types::{NodeRole, Secret, Tier};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};
use crate::notify;

/// A host with the memory its nodes take.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HostRow {
    /// Host id.
    pub id: String,
    /// Its zone.
    pub zone_id: String,
    /// Where its agent runs.
    pub address: IpNet,
    /// Memory it offers.
    pub memory_bytes: i64,
    /// Memory of the nodes placed on it.
    pub allocated: i64,
    /// Engines it runs.
    pub engines: Vec<String>,
    /// Its config generation.
    pub generation: i64,
    /// The generation its agent last applied.
    pub applied_generation: i64,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
}

const HOST_SELECT: &str = r#"
    select h.id, h.zone_id, h.address, h.memory_bytes, h.engines, h.generation, h.applied_generation,
        h.last_heartbeat_at, h.created_at,
        host_allocated_bytes(h.id) as allocated
    from host h"#;

/// One host.
pub async fn get(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Option<HostRow>> {
    Ok(sqlx::query_as(&format!("{HOST_SELECT} where h.id = $1"))
        .bind(host)
        .fetch_optional(db)
        .await?)
}

/// Every host by id.
pub async fn list(db: impl PgExecutor<'_>) -> ApiResult<Vec<HostRow>> {
    Ok(sqlx::query_as(&format!("{HOST_SELECT} order by h.id"))
        .fetch_all(db)
        .await?)
}

/// A host's last heartbeat, for the metrics.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HeartbeatRow {
    /// Host id.
    pub id: String,
    /// Its zone.
    pub zone_id: String,
    /// Last heartbeat (`None`: registered, never heartbeated since).
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// Every host's last heartbeat (one scan of `host`, no join).
pub async fn heartbeats(db: impl PgExecutor<'_>) -> ApiResult<Vec<HeartbeatRow>> {
    Ok(
        sqlx::query_as("select id, zone_id, last_heartbeat_at from host order by id")
            .fetch_all(db)
            .await?,
    )
}

/// What a host registers with.
pub struct Registration<'a> {
    /// Host id.
    pub id: &'a str,
    /// Its zone (INVALID_ARGUMENT on `zone` when unknown).
    pub zone: &'a str,
    /// Where its agent runs.
    pub address: IpNet,
    /// Memory it offers.
    pub memory_bytes: i64,
    /// Engines it runs.
    pub engines: &'a [String],
}

/// Registers a host or updates its registration; counts as a heartbeat.
pub async fn upsert(db: impl PgExecutor<'_>, reg: &Registration<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into host (id, zone_id, address, memory_bytes, engines, last_heartbeat_at)
           values ($1, $2, $3, $4, $5, now())
           on conflict (id) do update set zone_id = excluded.zone_id, address = excluded.address,
               memory_bytes = excluded.memory_bytes, engines = excluded.engines,
               last_heartbeat_at = now(), updated_at = now()"#,
    )
    .bind(reg.id)
    .bind(reg.zone)
    .bind(reg.address)
    .bind(reg.memory_bytes)
    .bind(reg.engines)
    .execute(db)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("host_zone_id_fkey") => {
            ApiError::field("zone", format!("zone '{}' does not exist", reg.zone))
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// A host's config generation and the one its agent last applied.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Generations {
    /// The current config generation.
    pub generation: i64,
    /// The generation the agent last reported applied.
    pub applied_generation: i64,
}

/// Locks a host for the rest of the transaction and reads its generations.
pub async fn lock_generations(
    conn: &mut PgConnection,
    host: &str,
) -> ApiResult<Option<Generations>> {
    Ok(
        sqlx::query_as("select generation, applied_generation from host where id = $1 for update")
            .bind(host)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A host's config generation.
pub async fn generation(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Option<i64>> {
    Ok(
        sqlx::query_scalar("select generation from host where id = $1")
            .bind(host)
            .fetch_optional(db)
            .await?,
    )
}

/// Bumps once the generation of every host holding one of `nodes`, and announces each
/// change (at commit) so that agents long-polling those hosts wake up.
pub async fn bump_generations_of(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    let hosts: Vec<String> = sqlx::query_scalar(
        r#"update host set generation = generation + 1, updated_at = now()
           where id in (select distinct host_id from node where id = any($1))
           returning id"#,
    )
    .bind(nodes)
    .fetch_all(&mut *conn)
    .await?;
    for host in &hosts {
        notify::host_changed(conn, host).await?;
    }
    Ok(())
}

/// Bumps one host's generation (the caller holds its lock) and announces it at commit;
/// returns the new generation.
pub async fn bump_generation(conn: &mut PgConnection, host: &str) -> ApiResult<i64> {
    let generation: i64 = sqlx::query_scalar(
        "update host set generation = generation + 1, updated_at = now() where id = $1 returning generation",
    )
    .bind(host)
    .fetch_one(&mut *conn)
    .await?;
    notify::host_changed(conn, host).await?;
    Ok(generation)
}

/// Takes the region's placement lock for the rest of the transaction. It is a
/// PostgreSQL advisory lock, not a row lock: placements and node changes in one region
/// happen one at a time, while heartbeats, which lock only their own host's row, never
/// wait for it.
pub async fn lock_region(conn: &mut PgConnection, region: &str) -> ApiResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('cacheplane.region'), hashtext($1))")
        .bind(region)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Locks, in id order, the hosts that hold a node of `instance` for the rest of the
/// transaction.
pub async fn lock_of_instance(conn: &mut PgConnection, instance: Uuid) -> ApiResult<()> {
    sqlx::query(
        r#"select id from host where id in (select host_id from node where instance_id = $1)
           order by id for update"#,
    )
    .bind(instance)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The ids of the region's hosts, in id order.
pub async fn ids_in_region(conn: &mut PgConnection, region: &str) -> ApiResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        r#"select h.id from host h join zone z on z.id = h.zone_id
           where z.region_id = $1 order by h.id"#,
    )
    .bind(region)
    .fetch_all(&mut *conn)
    .await?)
}

/// A host that may take nodes, with its free memory as the control plane accounts it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    /// Host id.
    pub id: String,
    /// Its zone.
    pub zone_id: String,
    /// Capacity minus the memory of every node placed on it.
    pub free_bytes: i64,
    /// Engines it runs.
    pub engines: Vec<String>,
    /// Heartbeated within the host timeout.
    pub up: bool,
}

/// The given hosts as placement candidates, in id order.
pub async fn candidates(
    conn: &mut PgConnection,
    hosts: &[String],
    host_timeout: Duration,
) -> ApiResult<Vec<Candidate>> {
    Ok(sqlx::query_as(
        r#"select h.id, h.zone_id, h.engines,
               h.memory_bytes - host_allocated_bytes(h.id) as free_bytes,
               coalesce(h.last_heartbeat_at > now() - make_interval(secs => $2), false) as up
           from host h where h.id = any($1) order by h.id"#,
    )
    .bind(hosts)
    .bind(host_timeout.as_secs_f64())
    .fetch_all(&mut *conn)
    .await?)
}

/// A host's unplaced memory.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FreeMemory {
    /// Host id.
    pub id: String,
    /// Its zone.
    pub zone_id: String,
    /// Capacity minus the memory of its nodes (negative when overcommitted).
    pub free_bytes: i64,
}

/// Locks the given hosts, in id order, and reads their unplaced memory.
pub async fn lock_free_memory(
    conn: &mut PgConnection,
    hosts: &[String],
) -> ApiResult<Vec<FreeMemory>> {
    Ok(sqlx::query_as(
        r#"select h.id, h.zone_id,
               h.memory_bytes - host_allocated_bytes(h.id) as free_bytes
           from host h where h.id = any($1) order by h.id for update"#,
    )
    .bind(hosts)
    .fetch_all(&mut *conn)
    .await?)
}

/// One node of a host's desired config, with what its spec needs of the instance. No
/// `Debug`: it holds the AUTH string and, for TLS, the server's private key.
#[derive(Clone, sqlx::FromRow)]
pub struct SpecRow {
    /// Node id.
    pub id: Uuid,
    /// Its role.
    #[sqlx(try_from = "String")]
    pub role: NodeRole,
    /// Its address.
    pub address: IpNet,
    /// Its maxmemory.
    pub memory_bytes: i64,
    /// Instance project.
    pub project_id: String,
    /// Instance region.
    pub region_id: String,
    /// Instance name.
    pub name: String,
    /// Engine version.
    pub redis_version: String,
    /// Engine settings.
    pub redis_configs: Json<BTreeMap<String, String>>,
    /// Port.
    pub port: i32,
    /// Whether AUTH is on.
    pub auth_enabled: bool,
    /// The AUTH password.
    pub auth_string: String,
    /// The password of the engine's privileged user (the agent's own).
    #[sqlx(try_from = "String")]
    pub engine_admin_secret: Secret,
    /// Instance tier.
    #[sqlx(rename = "tier_id", try_from = "String")]
    pub tier: Tier,
    /// The instance's primary range.
    pub primary_range: Option<IpNet>,
    /// The address of the instance's primary node.
    pub primary_address: Option<IpNet>,
    /// Whether read replicas are enabled.
    pub read_replicas_enabled: bool,
    /// The addresses of the instance's replicas, by ordinal.
    pub replica_addresses: Vec<IpNet>,
    /// Whether the node's write fence is on (it applies to STANDARD_HA primaries).
    pub write_fence: bool,
    /// The instance's network, `projects/{p}/networks/{n}`.
    pub network_name: String,
    /// The network's pool.
    pub network_ip_range: IpNet,
    /// The coordinated switchover the node takes part in (its operation's id).
    pub switchover_id: Option<Uuid>,
    /// The node address of that switchover's target replica.
    pub switchover_target: Option<IpNet>,
    /// For a TLS instance: its CA certificate (PEM).
    pub tls_ca_cert: Option<String>,
    /// Its server certificate (PEM).
    pub tls_server_cert: Option<String>,
    /// The server certificate's private key (PEM): a secret, for the agent only.
    pub tls_server_key: Option<String>,
}

/// The nodes a host should run (not being removed), by id.
pub async fn specs(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Vec<SpecRow>> {
    Ok(sqlx::query_as(
        r#"select n.id, n.role, n.address, n.memory_bytes, i.project_id, i.region_id, i.name,
               i.redis_version, i.redis_configs, i.port, i.auth_enabled, i.auth_string, i.engine_admin_secret, i.tier_id,
               (select range::inet from address_range a where a.instance_id = i.id and a.purpose = 'PRIMARY') as primary_range,
               (select p.address from node p where p.instance_id = i.id and p.role = 'PRIMARY' and not p.removing) as primary_address,
               i.read_replicas_enabled,
               array(select r.address from node r where r.instance_id = i.id and r.role = 'REPLICA'
                     and not r.removing order by r.ordinal) as replica_addresses,
               n.write_fence,
               'projects/' || w.project_id || '/networks/' || w.name as network_name,
               w.ip_range as network_ip_range,
               n.switchover_id,
               (select t.address from node t where t.instance_id = n.instance_id
                     and t.switchover_id = n.switchover_id and t.role = 'REPLICA'
                     and not t.removing limit 1) as switchover_target,
               t.ca_cert as tls_ca_cert, t.server_cert as tls_server_cert,
               t.server_key as tls_server_key
           from node n join instance i on i.id = n.instance_id
           join network w on w.id = i.network_id
           left join instance_tls t on t.instance_id = i.id
           where n.host_id = $1 and not n.removing order by n.id"#,
    )
    .bind(host)
    .fetch_all(db)
    .await?)
}
