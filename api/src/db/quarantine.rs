//! `range_quarantine` rows: ranges kept out of the free pool while a host that was silent
//! when one of their nodes was dropped may still run its engine (see the migration).

use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiResult;

/// Holds every range of `instance` against each of `hosts` (silent hosts that had a node
/// of it dropped), until they apply their current generation or a later one.
pub async fn hold(conn: &mut PgConnection, instance: Uuid, hosts: &[String]) -> ApiResult<()> {
    if hosts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        r#"insert into range_quarantine (network_id, range, host_id, generation)
           select a.network_id, a.range, h.id, h.generation
           from address_range a cross join host h
           where a.instance_id = $1 and h.id = any($2)
           on conflict (network_id, range, host_id)
           do update set generation = greatest(range_quarantine.generation, excluded.generation)"#,
    )
    .bind(instance)
    .bind(hosts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Holds one range against one host until it applies `generation` (a connector
/// removed from the config of a silent host, whose namespace may still hold it).
pub async fn hold_range(
    conn: &mut PgConnection,
    network: Uuid,
    range: IpNet,
    host: &str,
    generation: i64,
) -> ApiResult<()> {
    sqlx::query(
        r#"insert into range_quarantine (network_id, range, host_id, generation)
           values ($1, $2::cidr, $3, $4)
           on conflict (network_id, range, host_id)
           do update set generation = greatest(range_quarantine.generation, excluded.generation)"#,
    )
    .bind(network)
    .bind(range)
    .bind(host)
    .bind(generation)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether `range` of `network` is held by some host.
pub async fn is_held(conn: &mut PgConnection, network: Uuid, range: IpNet) -> ApiResult<bool> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from range_quarantine where network_id = $1 and range = $2::cidr)",
    )
    .bind(network)
    .bind(range)
    .fetch_one(&mut *conn)
    .await?)
}

/// The networks whose holds by `host` end once it applied `applied` (every hold when
/// `applied` is `None`: an operator's release), in id order (the order to lock them in).
pub async fn networks_released_by(
    conn: &mut PgConnection,
    host: &str,
    applied: Option<i64>,
) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"select distinct network_id from range_quarantine
           where host_id = $1 and ($2::bigint is null or generation <= $2)
           order by network_id"#,
    )
    .bind(host)
    .bind(applied)
    .fetch_all(&mut *conn)
    .await?)
}

/// Ends those holds; returns the ranges they were on.
pub async fn release(
    conn: &mut PgConnection,
    host: &str,
    applied: Option<i64>,
) -> ApiResult<Vec<(Uuid, IpNet)>> {
    Ok(sqlx::query_as(
        r#"delete from range_quarantine
           where host_id = $1 and ($2::bigint is null or generation <= $2)
           returning network_id, range"#,
    )
    .bind(host)
    .bind(applied)
    .fetch_all(&mut *conn)
    .await?)
}

/// Whether `range` of `network` may go back to the pool: no hold on it and no instance
/// holding it.
pub async fn freeable(conn: &mut PgConnection, network: Uuid, range: IpNet) -> ApiResult<bool> {
    Ok(sqlx::query_scalar(
        r#"select not exists (select 1 from range_quarantine where network_id = $1 and range = $2::cidr)
              and not exists (select 1 from address_range where network_id = $1 and range = $2::cidr)"#,
    )
    .bind(network)
    .bind(range)
    .fetch_one(&mut *conn)
    .await?)
}

/// Every held range, with its host: (network, range, host).
pub async fn list(conn: &mut PgConnection) -> ApiResult<Vec<(Uuid, IpNet, String)>> {
    Ok(sqlx::query_as(
        "select network_id, range, host_id from range_quarantine order by network_id, range, host_id",
    )
    .fetch_all(&mut *conn)
    .await?)
}
