//! `node` rows: the engine processes of instances, placed on hosts, with what their
//! agents last reported.

use std::net::Ipv4Addr;

use cacheplane_types::{NodeReport, NodeRole};
use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::ApiResult;

/// A node row with what its host last applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    /// Node id.
    pub id: Uuid,
    /// Its instance.
    pub instance_id: Uuid,
    /// Order of creation within the instance.
    pub ordinal: i32,
    /// Its host.
    pub host_id: String,
    /// Its zone.
    pub zone_id: String,
    /// Its role.
    #[sqlx(try_from = "String")]
    pub role: NodeRole,
    /// Its address (a /32).
    pub address: IpNet,
    /// Its maxmemory.
    pub memory_bytes: i64,
    /// The host generation at which its desired state last changed.
    pub desired_generation: i64,
    /// Being stopped and removed.
    pub removing: bool,
    /// The agent's last report.
    pub observed: Option<Json<NodeReport>>,
    /// The host generation that report was made at.
    pub observed_generation: Option<i64>,
    /// The generation its host last applied.
    pub host_applied_generation: i64,
    /// Its host's last heartbeat.
    pub host_last_heartbeat_at: Option<DateTime<Utc>>,
    /// The coordinated switchover (its failover operation) this node takes part in.
    pub switchover_id: Option<Uuid>,
}

const NODE_SELECT: &str = r#"
    select n.id, n.instance_id, n.ordinal, n.host_id, n.zone_id, n.role, n.address, n.memory_bytes,
        n.desired_generation, n.removing, n.observed, n.observed_generation,
        h.applied_generation as host_applied_generation, h.last_heartbeat_at as host_last_heartbeat_at,
        n.switchover_id
    from node n join host h on h.id = n.host_id"#;

/// The nodes of some instances, by instance then ordinal.
pub async fn of_instances(db: impl PgExecutor<'_>, instances: &[Uuid]) -> ApiResult<Vec<NodeRow>> {
    Ok(sqlx::query_as(&format!(
        "{NODE_SELECT} where n.instance_id = any($1) order by n.instance_id, n.ordinal"
    ))
    .bind(instances)
    .fetch_all(db)
    .await?)
}

/// A node about to be stored.
pub struct NewNodeRow<'a> {
    /// Node id.
    pub id: Uuid,
    /// Its instance.
    pub instance: Uuid,
    /// Order of creation within the instance.
    pub ordinal: i32,
    /// Its host.
    pub host: &'a str,
    /// Its zone.
    pub zone: &'a str,
    /// Its role.
    pub role: NodeRole,
    /// Its address.
    pub address: Ipv4Addr,
    /// Its maxmemory.
    pub memory_bytes: i64,
}

/// Stores a node (its desired generation is set when its host is touched).
pub async fn insert(conn: &mut PgConnection, node: &NewNodeRow<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into node (id, instance_id, ordinal, host_id, zone_id, role, address, memory_bytes, desired_generation)
           values ($1, $2, $3, $4, $5, $6, $7, $8, 0)"#,
    )
    .bind(node.id)
    .bind(node.instance)
    .bind(node.ordinal)
    .bind(node.host)
    .bind(node.zone)
    .bind(node.role.as_str())
    .bind(IpNet::V4(Ipv4Net::from(node.address)))
    .bind(node.memory_bytes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records on each node its host's current generation as the one its desired state
/// changed at.
pub async fn adopt_host_generation(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    sqlx::query(
        r#"update node set desired_generation = h.generation, updated_at = now()
           from host h where h.id = node.host_id and node.id = any($1)"#,
    )
    .bind(nodes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks every node of an instance for removal; returns those newly marked.
pub async fn remove_all(conn: &mut PgConnection, instance: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "update node set removing = true where instance_id = $1 and not removing returning id",
    )
    .bind(instance)
    .fetch_all(&mut *conn)
    .await?)
}

/// Marks the `count` newest replicas of an instance for removal; returns them.
pub async fn remove_newest_replicas(
    conn: &mut PgConnection,
    instance: Uuid,
    count: i64,
) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"update node set removing = true where id in (
               select id from node where instance_id = $1 and role = 'REPLICA' and not removing
               order by ordinal desc limit $2)
           returning id"#,
    )
    .bind(instance)
    .bind(count)
    .fetch_all(&mut *conn)
    .await?)
}

/// Sets the memory of every node of an instance that is not being removed.
pub async fn set_memory(conn: &mut PgConnection, instance: Uuid, bytes: i64) -> ApiResult<()> {
    sqlx::query("update node set memory_bytes = $2 where instance_id = $1 and not removing")
        .bind(instance)
        .bind(bytes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets one node's role.
pub async fn set_role(
    conn: &mut PgConnection,
    instance: Uuid,
    node: Uuid,
    role: NodeRole,
) -> ApiResult<()> {
    sqlx::query("update node set role = $3 where id = $1 and instance_id = $2")
        .bind(node)
        .bind(instance)
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes nodes.
pub async fn delete(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    sqlx::query("delete from node where id = any($1)")
        .bind(nodes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether a node's write fence is on (see the `write_fence` column).
pub async fn write_fence(conn: &mut PgConnection, node: Uuid) -> ApiResult<bool> {
    Ok(
        sqlx::query_scalar("select write_fence from node where id = $1")
            .bind(node)
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or(true),
    )
}

/// Turns a node's write fence on or off.
pub async fn set_write_fence(conn: &mut PgConnection, node: Uuid, on: bool) -> ApiResult<()> {
    sqlx::query("update node set write_fence = $2, updated_at = now() where id = $1")
        .bind(node)
        .bind(on)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Marks nodes for removal.
pub async fn mark_removing(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    sqlx::query("update node set removing = true, updated_at = now() where id = any($1)")
        .bind(nodes)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets (or, with `None`, clears) the coordinated switchover nodes take part in.
pub async fn set_switchover(
    conn: &mut PgConnection,
    nodes: &[Uuid],
    switchover: Option<Uuid>,
) -> ApiResult<()> {
    sqlx::query("update node set switchover_id = $2, updated_at = now() where id = any($1)")
        .bind(nodes)
        .bind(switchover)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
