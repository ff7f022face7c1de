//! `memcache_instance` and `memcache_node` rows (docs/memcached.md). An instance's /28
//! is an `address_range` row of purpose MEMCACHE (see `crate::db::ranges`).

use std::collections::BTreeMap;

use cacheplane_types::{MemcacheInstanceState, MemcacheNodeReport};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::db::instances::{push_terms, Filter};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

/// A Memcached instance row with its network and range.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemcacheRow {
    /// Internal id.
    pub id: Uuid,
    /// Project.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// Instance id.
    pub name: String,
    /// Free text.
    pub display_name: String,
    /// Labels.
    pub labels: Json<BTreeMap<String, String>>,
    /// Its network.
    pub network_id: Uuid,
    /// `projects/{p}/networks/{n}`.
    pub network_name: String,
    /// The network's pool.
    pub network_ip_range: IpNet,
    /// Zones the nodes are spread over.
    pub zones: Vec<String>,
    /// Wanted number of nodes.
    pub node_count: i32,
    /// Threads per node.
    pub cpu_count: i32,
    /// Item memory per node, MB.
    pub memory_size_mb: i32,
    /// Engine version.
    pub memcache_version: String,
    /// Staged parameters.
    pub parameters: Json<BTreeMap<String, String>>,
    /// Their id.
    pub parameters_id: String,
    /// The host serving the discovery endpoint.
    pub discovery_host_id: Option<String>,
    /// The host generation carrying the endpoint's current node list.
    pub discovery_generation: Option<i64>,
    /// The `config get cluster` version.
    pub config_version: i64,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub state: MemcacheInstanceState,
    /// Why it failed.
    pub status_message: String,
    /// Its /28 (absent only between insert and reservation).
    pub range: Option<IpNet>,
    /// Bumped on every change (the etag).
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = r#"
    select m.id, m.project_id, m.region_id, m.name, m.display_name, m.labels, m.network_id,
           'projects/' || w.project_id || '/networks/' || w.name as network_name,
           w.ip_range::inet as network_ip_range, m.zones, m.node_count, m.cpu_count,
           m.memory_size_mb, m.memcache_version, m.parameters, m.parameters_id,
           m.discovery_host_id, m.discovery_generation, m.config_version, m.state,
           m.status_message,
           (select a.range::inet from address_range a where a.memcache_instance_id = m.id) as range,
           m.version, m.created_at, m.updated_at
    from memcache_instance m join network w on w.id = m.network_id"#;

/// What a new instance row holds.
#[derive(Debug)]
pub struct NewMemcache<'a> {
    /// Its id.
    pub id: Uuid,
    /// Project.
    pub project: &'a str,
    /// Region.
    pub region: &'a str,
    /// Instance id.
    pub name: &'a str,
    /// Free text.
    pub display_name: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Network.
    pub network: Uuid,
    /// Zones.
    pub zones: &'a [String],
    /// Number of nodes.
    pub node_count: i32,
    /// Threads per node.
    pub cpu_count: i32,
    /// MB per node.
    pub memory_size_mb: i32,
    /// Engine version.
    pub memcache_version: &'a str,
    /// Initial parameters.
    pub parameters: &'a BTreeMap<String, String>,
    /// Their id.
    pub parameters_id: &'a str,
}

/// Inserts a CREATING instance; ALREADY_EXISTS when the name is taken.
pub async fn insert(conn: &mut PgConnection, m: &NewMemcache<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into memcache_instance (id, project_id, region_id, name, display_name, labels,
               network_id, zones, node_count, cpu_count, memory_size_mb, memcache_version,
               parameters, parameters_id, state)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'CREATING')"#,
    )
    .bind(m.id)
    .bind(m.project)
    .bind(m.region)
    .bind(m.name)
    .bind(m.display_name)
    .bind(Json(m.labels))
    .bind(m.network)
    .bind(m.zones)
    .bind(m.node_count)
    .bind(m.cpu_count)
    .bind(m.memory_size_mb)
    .bind(m.memcache_version)
    .bind(Json(m.parameters))
    .bind(m.parameters_id)
    .execute(conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("memcache_instance_name_key") => {
            ApiError::AlreadyExists(format!("Memcached instance '{}' already exists", m.name))
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// One instance by name.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<MemcacheRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} where m.project_id = $1 and m.region_id = $2 and m.name = $3"
    ))
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// One instance by id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<Option<MemcacheRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} where m.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Locks an instance by name for the rest of the transaction.
pub async fn lock(
    conn: &mut PgConnection,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<MemcacheRow>> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "select id from memcache_instance where project_id = $1 and region_id = $2 and name = $3 for update",
    )
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => get_by_id(conn, id).await,
        None => Ok(None),
    }
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum TryLock {
    /// Locked for the rest of the transaction.
    Locked(Box<MemcacheRow>),
    /// Another transaction holds it.
    Busy,
    /// It does not exist (any more).
    Gone,
}

/// Locks an instance without waiting for another transaction that holds it.
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> ApiResult<TryLock> {
    let locked: Option<i32> =
        sqlx::query_scalar("select 1 from memcache_instance where id = $1 for update skip locked")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if locked.is_none() {
        let exists: bool =
            sqlx::query_scalar("select exists(select 1 from memcache_instance where id = $1)")
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
        return Ok(if exists { TryLock::Busy } else { TryLock::Gone });
    }
    Ok(match get_by_id(&mut *conn, id).await? {
        Some(row) => TryLock::Locked(Box::new(row)),
        None => TryLock::Gone,
    })
}

/// Up to `limit` instances of a project in a region (`-`: every region) that match
/// `filter`, by region and name, after `after`.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    filter: &Filter,
    after: Option<(&str, &str)>,
    limit: i64,
) -> ApiResult<Vec<MemcacheRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    q.push(" where m.project_id = ")
        .push_bind(project.to_string());
    if region != "-" {
        q.push(" and m.region_id = ").push_bind(region.to_string());
    }
    if let Some((r, n)) = after {
        q.push(" and (m.region_id, m.name) > (")
            .push_bind(r.to_string())
            .push(", ")
            .push_bind(n.to_string())
            .push(")");
    }
    push_terms(&mut q, "m", filter);
    q.push(" order by m.region_id, m.name limit ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}

/// Sets the state (and status message), bumping the version.
pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: MemcacheInstanceState,
    message: &str,
) -> ApiResult<()> {
    sqlx::query(
        r#"update memcache_instance set state = $2, status_message = $3,
               version = version + 1, updated_at = now() where id = $1"#,
    )
    .bind(id)
    .bind(state.as_str())
    .bind(message)
    .execute(conn)
    .await?;
    Ok(())
}

/// The fields a patch or `updateParameters` changes (`None`: unchanged).
#[derive(Debug, Default)]
pub struct Changes<'a> {
    /// New display name.
    pub display_name: Option<&'a str>,
    /// New labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// New node count.
    pub node_count: Option<i32>,
    /// New staged parameters and their id.
    pub parameters: Option<(&'a BTreeMap<String, String>, &'a str)>,
}

/// Writes `changes`, bumping the version.
pub async fn update_fields(conn: &mut PgConnection, id: Uuid, c: &Changes<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"update memcache_instance set
               display_name = coalesce($2, display_name),
               labels = coalesce($3, labels),
               node_count = coalesce($4, node_count),
               parameters = coalesce($5, parameters),
               parameters_id = coalesce($6, parameters_id),
               version = version + 1, updated_at = now()
           where id = $1"#,
    )
    .bind(id)
    .bind(c.display_name)
    .bind(c.labels.map(Json))
    .bind(c.node_count)
    .bind(c.parameters.map(|p| Json(p.0)))
    .bind(c.parameters.map(|p| p.1))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records where the discovery endpoint is served and the host generation that carries
/// its node list; `bump_version` raises the `config get cluster` version (the node list
/// changed).
pub async fn set_discovery(
    conn: &mut PgConnection,
    id: Uuid,
    host: Option<&str>,
    generation: Option<i64>,
    bump_version: bool,
) -> ApiResult<()> {
    sqlx::query(
        r#"update memcache_instance set discovery_host_id = $2, discovery_generation = $3,
               config_version = config_version + case when $4 then 1 else 0 end,
               updated_at = now()
           where id = $1"#,
    )
    .bind(id)
    .bind(host)
    .bind(generation)
    .bind(bump_version)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes an instance (its nodes and range row go with it).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> ApiResult<()> {
    sqlx::query("delete from memcache_instance where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the instance holds `range` of `network`.
pub async fn insert_range(
    conn: &mut PgConnection,
    instance: Uuid,
    network: Uuid,
    range: ipnet::Ipv4Net,
) -> ApiResult<()> {
    sqlx::query(
        "insert into address_range (memcache_instance_id, network_id, purpose, range) values ($1, $2, 'MEMCACHE', $3::cidr)",
    )
    .bind(instance)
    .bind(network)
    .bind(IpNet::V4(range))
    .execute(conn)
    .await?;
    Ok(())
}

/// Instances whose discovery endpoint sits on a host silent for longer than
/// `host_timeout` while one of their nodes is on a heartbeating host.
pub async fn stranded_discovery(
    db: impl PgExecutor<'_>,
    host_timeout: std::time::Duration,
) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"select m.id from memcache_instance m join host d on d.id = m.discovery_host_id
           where m.state <> 'DELETING'
             and (d.last_heartbeat_at is null or d.last_heartbeat_at < now() - make_interval(secs => $1))
             and exists (select 1 from memcache_node n join host h on h.id = n.host_id
                 where n.instance_id = m.id and not n.removing
                   and h.last_heartbeat_at >= now() - make_interval(secs => $1))"#,
    )
    .bind(host_timeout.as_secs_f64())
    .fetch_all(db)
    .await?)
}

/// Deletes the rows of nodes being removed whose hosts have applied their removal, of
/// instances that run no operation (a node left on a silent host, whose host came back
/// after the operation ended). Skips rows another transaction holds; returns how many.
pub async fn delete_stopped_idle(db: impl PgExecutor<'_>) -> ApiResult<u64> {
    Ok(sqlx::query(
        r#"with gone as (
               select n.id from memcache_node n join host h on h.id = n.host_id
               where n.removing and h.applied_generation >= n.desired_generation
                 and not exists (select 1 from operation o
                     where o.memcache_instance_id = n.instance_id and not o.done)
               for update of n skip locked
           )
           delete from memcache_node where id in (select id from gone)"#,
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// A memcached node with its host's heartbeat.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemcacheNodeRow {
    /// Node id.
    pub id: Uuid,
    /// Its instance.
    pub instance_id: Uuid,
    /// `node-{ordinal}`.
    pub ordinal: i32,
    /// Its host.
    pub host_id: String,
    /// Its zone.
    pub zone_id: String,
    /// Its address.
    pub address: IpNet,
    /// Memory charged to its host.
    pub memory_bytes: i64,
    /// The parameters it must run with.
    pub parameters: Json<BTreeMap<String, String>>,
    /// Their id.
    pub parameters_id: String,
    /// The host generation carrying its last change.
    pub desired_generation: i64,
    /// Being stopped.
    pub removing: bool,
    /// The agent's last report.
    pub observed: Option<Json<MemcacheNodeReport>>,
    /// The generation that report was made at.
    pub observed_generation: Option<i64>,
    /// The generation its host last applied.
    pub host_applied_generation: i64,
    /// Its host's last heartbeat.
    pub host_last_heartbeat_at: Option<DateTime<Utc>>,
}

const NODE_SELECT: &str = r#"
    select n.id, n.instance_id, n.ordinal, n.host_id, n.zone_id, n.address, n.memory_bytes,
           n.parameters, n.parameters_id, n.desired_generation, n.removing, n.observed,
           n.observed_generation, h.applied_generation as host_applied_generation,
           h.last_heartbeat_at as host_last_heartbeat_at
    from memcache_node n join host h on h.id = n.host_id"#;

/// The nodes of `instances`, by instance and ordinal.
pub async fn nodes_of(
    db: impl PgExecutor<'_>,
    instances: &[Uuid],
) -> ApiResult<Vec<MemcacheNodeRow>> {
    Ok(sqlx::query_as(&format!(
        "{NODE_SELECT} where n.instance_id = any($1) order by n.instance_id, n.ordinal"
    ))
    .bind(instances)
    .fetch_all(db)
    .await?)
}

/// A node about to be inserted.
#[derive(Debug)]
pub struct NewMemcacheNode<'a> {
    /// Its id.
    pub id: Uuid,
    /// Its instance.
    pub instance: Uuid,
    /// Its ordinal.
    pub ordinal: i32,
    /// Its host.
    pub host: &'a str,
    /// Its zone.
    pub zone: &'a str,
    /// Its address.
    pub address: std::net::Ipv4Addr,
    /// Memory charged to the host.
    pub memory_bytes: i64,
    /// Its parameters.
    pub parameters: &'a BTreeMap<String, String>,
    /// Their id.
    pub parameters_id: &'a str,
    /// The host generation that adds it.
    pub generation: i64,
}

/// Inserts a node.
pub async fn insert_node(conn: &mut PgConnection, n: &NewMemcacheNode<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into memcache_node (id, instance_id, ordinal, host_id, zone_id, address,
               memory_bytes, parameters, parameters_id, desired_generation)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
    )
    .bind(n.id)
    .bind(n.instance)
    .bind(n.ordinal)
    .bind(n.host)
    .bind(n.zone)
    .bind(IpNet::from(std::net::IpAddr::V4(n.address)))
    .bind(n.memory_bytes)
    .bind(Json(n.parameters))
    .bind(n.parameters_id)
    .bind(n.generation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a node as being removed at host generation `generation`.
pub async fn mark_removing(conn: &mut PgConnection, node: Uuid, generation: i64) -> ApiResult<()> {
    sqlx::query(
        "update memcache_node set removing = true, desired_generation = $2, updated_at = now() where id = $1",
    )
    .bind(node)
    .bind(generation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a node new parameters at host generation `generation`.
pub async fn set_node_parameters(
    conn: &mut PgConnection,
    node: Uuid,
    parameters: &BTreeMap<String, String>,
    parameters_id: &str,
    generation: i64,
) -> ApiResult<()> {
    sqlx::query(
        r#"update memcache_node set parameters = $2, parameters_id = $3, desired_generation = $4,
               updated_at = now() where id = $1"#,
    )
    .bind(node)
    .bind(Json(parameters))
    .bind(parameters_id)
    .bind(generation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes nodes.
pub async fn delete_nodes(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    sqlx::query("delete from memcache_node where id = any($1)")
        .bind(nodes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks, in id order, the hosts holding a node of the instance or serving its discovery
/// endpoint, for the rest of the transaction.
pub async fn lock_hosts(conn: &mut PgConnection, instance: Uuid) -> ApiResult<()> {
    sqlx::query(
        r#"select id from host where id in (
               select host_id from memcache_node where instance_id = $1
               union select discovery_host_id from memcache_instance where id = $1)
           order by id for update"#,
    )
    .bind(instance)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One memcached node of a host's desired config, with what its spec needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemcacheSpecRow {
    /// Node id.
    pub id: Uuid,
    /// Instance project, region and name.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// Name.
    pub name: String,
    /// Engine version.
    pub memcache_version: String,
    /// Its address.
    pub address: IpNet,
    /// Item memory, MB.
    pub memory_size_mb: i32,
    /// Threads.
    pub cpu_count: i32,
    /// Its parameters.
    pub parameters: Json<BTreeMap<String, String>>,
    /// `projects/{p}/networks/{n}`.
    pub network_name: String,
    /// The network's pool.
    pub network_ip_range: IpNet,
}

/// The memcached nodes `host` must run (not being removed), by id.
pub async fn specs_on_host(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Vec<MemcacheSpecRow>> {
    Ok(sqlx::query_as(
        r#"select n.id, m.project_id, m.region_id, m.name, m.memcache_version, n.address,
               m.memory_size_mb, m.cpu_count, n.parameters,
               'projects/' || w.project_id || '/networks/' || w.name as network_name,
               w.ip_range::inet as network_ip_range
           from memcache_node n join memcache_instance m on m.id = n.instance_id
           join network w on w.id = m.network_id
           where n.host_id = $1 and not n.removing order by n.id"#,
    )
    .bind(host)
    .fetch_all(db)
    .await?)
}

/// One discovery endpoint `host` serves, with the instance's node list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DiscoverySpecRow {
    /// Instance project.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// Name.
    pub name: String,
    /// The instance's /28.
    pub range: Option<IpNet>,
    /// The `config get cluster` version.
    pub config_version: i64,
    /// The node addresses, by ordinal (nodes being removed left out).
    pub node_addresses: Vec<IpNet>,
    /// `projects/{p}/networks/{n}`.
    pub network_name: String,
    /// The network's pool.
    pub network_ip_range: IpNet,
}

/// The discovery endpoints `host` serves, by instance name.
pub async fn discovery_on_host(
    db: impl PgExecutor<'_>,
    host: &str,
) -> ApiResult<Vec<DiscoverySpecRow>> {
    Ok(sqlx::query_as(
        r#"select m.project_id, m.region_id, m.name,
               (select a.range::inet from address_range a where a.memcache_instance_id = m.id) as range,
               m.config_version,
               array(select n.address from memcache_node n where n.instance_id = m.id
                     and not n.removing order by n.ordinal) as node_addresses,
               'projects/' || w.project_id || '/networks/' || w.name as network_name,
               w.ip_range::inet as network_ip_range
           from memcache_instance m join network w on w.id = m.network_id
           where m.discovery_host_id = $1 order by m.project_id, m.region_id, m.name"#,
    )
    .bind(host)
    .fetch_all(db)
    .await?)
}

/// Stores a heartbeat's memcached reports (the caller holds the host's lock) and
/// returns the unfinished operations of the instances with a node on the host: one
/// statement, run only when the agent reports memcached nodes.
pub async fn record_reports(
    conn: &mut PgConnection,
    host: &str,
    applied: i64,
    reports: &[MemcacheNodeReport],
) -> ApiResult<Vec<Uuid>> {
    let ids: Vec<Uuid> = reports.iter().map(|r| r.node_id).collect();
    let observed: Vec<Json<&MemcacheNodeReport>> = reports.iter().map(Json).collect();
    Ok(sqlx::query_scalar(
        r#"with reported as (
               select * from unnest($3::uuid[], $4::jsonb[]) as r(id, observed)
           ), updated as (
               update memcache_node n set observed = r.observed, observed_generation = $2,
                   observed_at = now()
               from reported r where n.id = r.id and n.host_id = $1
               returning n.instance_id
           )
           select o.id from operation o where not o.done
               and o.memcache_instance_id in (select instance_id from updated)"#,
    )
    .bind(host)
    .bind(applied)
    .bind(&ids)
    .bind(&observed)
    .fetch_all(&mut *conn)
    .await?)
}
