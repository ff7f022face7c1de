//! Address ranges: the `address_range` rows instances and connectors hold and the allocator's
//! `network_free_block` rows (aligned power-of-two blocks of a network's pool that are
//! free). The allocation logic is in `crate::alloc`.

use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiResult;

/// What an instance uses a range for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Endpoints and nodes.
    Primary,
    /// The further range taken when read replicas are enabled.
    Secondary,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Primary => "PRIMARY",
            Purpose::Secondary => "SECONDARY",
        }
    }
}

/// Locks a network for allocation until the transaction ends.
pub async fn lock_network(conn: &mut PgConnection, network: Uuid) -> ApiResult<()> {
    sqlx::query("select 1 from network where id = $1 for no key update")
        .bind(network)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that an instance holds `range` of `network`.
pub async fn insert(
    conn: &mut PgConnection,
    instance: Uuid,
    network: Uuid,
    purpose: Purpose,
    range: Ipv4Net,
) -> ApiResult<()> {
    sqlx::query(
        "insert into address_range (instance_id, network_id, purpose, range) values ($1, $2, $3, $4::cidr)",
    )
    .bind(instance)
    .bind(network)
    .bind(purpose.as_str())
    .bind(IpNet::V4(range))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that a connector holds `range` of `network`.
pub async fn insert_connector(
    conn: &mut PgConnection,
    connector: Uuid,
    network: Uuid,
    range: Ipv4Net,
) -> ApiResult<()> {
    sqlx::query(
        "insert into address_range (connector_id, network_id, purpose, range) values ($1, $2, 'CONNECTOR', $3::cidr)",
    )
    .bind(connector)
    .bind(network)
    .bind(IpNet::V4(range))
    .execute(conn)
    .await?;
    Ok(())
}

/// A range an instance holds.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RangeRow {
    /// Its network.
    pub network_id: Uuid,
    /// The range.
    pub range: IpNet,
}

/// The ranges an instance holds.
pub async fn of_instance(conn: &mut PgConnection, instance: Uuid) -> ApiResult<Vec<RangeRow>> {
    Ok(sqlx::query_as(
        "select network_id, range::inet as range from address_range where instance_id = $1",
    )
    .bind(instance)
    .fetch_all(conn)
    .await?)
}

/// Forgets that an instance holds `range`.
pub async fn delete(conn: &mut PgConnection, instance: Uuid, range: IpNet) -> ApiResult<()> {
    sqlx::query("delete from address_range where instance_id = $1 and range = $2::cidr")
        .bind(instance)
        .bind(range)
        .execute(conn)
        .await?;
    Ok(())
}

/// The smallest free block of at least `prefix` bits' size (lowest first among equals).
pub async fn smallest_free_block(
    conn: &mut PgConnection,
    network: Uuid,
    prefix: u8,
) -> ApiResult<Option<IpNet>> {
    Ok(sqlx::query_scalar(
        r#"select block::inet from network_free_block
           where network_id = $1 and masklen(block) <= $2
           order by masklen(block) desc, block limit 1"#,
    )
    .bind(network)
    .bind(i32::from(prefix))
    .fetch_optional(conn)
    .await?)
}

/// The free block that contains all of `range`, if any.
pub async fn free_block_containing(
    conn: &mut PgConnection,
    network: Uuid,
    range: Ipv4Net,
) -> ApiResult<Option<IpNet>> {
    Ok(sqlx::query_scalar(
        r#"select block::inet from network_free_block
           where network_id = $1 and block >>= $2::cidr"#,
    )
    .bind(network)
    .bind(IpNet::V4(range))
    .fetch_optional(conn)
    .await?)
}

/// Takes `block` off the free list; `false` if it was not free.
pub async fn delete_free_block(
    conn: &mut PgConnection,
    network: Uuid,
    block: Ipv4Net,
) -> ApiResult<bool> {
    let deleted =
        sqlx::query("delete from network_free_block where network_id = $1 and block = $2::cidr")
            .bind(network)
            .bind(IpNet::V4(block))
            .execute(conn)
            .await?
            .rows_affected();
    Ok(deleted > 0)
}

/// Puts `block` on the free list.
pub async fn insert_free_block(
    conn: &mut PgConnection,
    network: Uuid,
    block: Ipv4Net,
) -> ApiResult<()> {
    sqlx::query("insert into network_free_block (network_id, block) values ($1, $2::cidr)")
        .bind(network)
        .bind(IpNet::V4(block))
        .execute(conn)
        .await?;
    Ok(())
}
