//! Instances: create, read, list, patch, delete and failover, and the node bookkeeping
//! they share.

pub mod create;
pub mod delete;
pub mod failover;
pub mod filter;
pub mod patch;
pub mod read;
pub mod render;
pub mod store;
pub mod validate;

use std::collections::BTreeSet;

use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::notify;
use crate::scheduler::{self, Candidate};
use store::{offset, FIRST_NODE_OFFSET};

/// Bytes in one `memorySizeGb`.
pub const GIB: i64 = 1 << 30;

/// Where an instance lives: `projects/{project}/locations/{region}/instances/{name}`.
#[derive(Debug, Clone)]
pub struct InstanceRef {
    /// Project id.
    pub project: String,
    /// Region id.
    pub region: String,
    /// Instance id.
    pub name: String,
}

impl InstanceRef {
    /// The full resource name.
    pub fn full_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/instances/{}",
            self.project, self.region, self.name
        )
    }
}

/// Marks nodes as changed: bumps each of their hosts' config generation once and records
/// the new generation on the nodes, so they count as converged only once their agents
/// apply it. Agents long-polling those hosts wake up at commit.
pub async fn touch_nodes(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    let hosts: Vec<String> = sqlx::query_scalar(
        r#"update host set generation = generation + 1, updated_at = now()
           where id in (select distinct host_id from node where id = any($1))
           returning id"#,
    )
    .bind(nodes)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        r#"update node set desired_generation = h.generation, updated_at = now()
           from host h where h.id = node.host_id and node.id = any($1)"#,
    )
    .bind(nodes)
    .execute(&mut *conn)
    .await?;
    for h in &hosts {
        notify::host_changed(conn, h).await?;
    }
    Ok(())
}

/// Locks every host of the region, in id order, for the rest of the transaction. Every
/// transaction that changes node rows takes these locks before touching a node, so host
/// locks always come before node locks (as in create and heartbeat) and they never
/// deadlock.
pub async fn lock_region_hosts(conn: &mut PgConnection, region: &str) -> ApiResult<()> {
    sqlx::query(
        r#"select h.id from host h join zone z on z.id = h.zone_id
           where z.region_id = $1 order by h.id for update of h"#,
    )
    .bind(region)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A node about to be created.
pub struct NewNode {
    /// Its zone.
    pub zone: String,
    /// Primary or replica.
    pub role: &'static str,
}

/// Places and inserts nodes for an instance whose range is `range`. `existing` are the
/// zones and hosts of its current nodes, `used_addresses` their addresses. Returns the
/// new node ids (already touched).
#[allow(clippy::too_many_arguments)]
pub async fn add_nodes(
    conn: &mut PgConnection,
    instance: Uuid,
    range: Ipv4Net,
    engine: &str,
    bytes: i64,
    new: &[NewNode],
    candidates: &mut [Candidate],
    mut hosts_in_use: Vec<String>,
    used_addresses: &[IpNet],
    first_ordinal: i32,
) -> ApiResult<Vec<Uuid>> {
    let taken: BTreeSet<u32> = used_addresses
        .iter()
        .filter_map(|a| match a.addr() {
            std::net::IpAddr::V4(v4) => Some(u32::from(v4) - u32::from(range.network())),
            _ => None,
        })
        .collect();
    let last = (1u32 << (32 - range.prefix_len())) - 2;
    let mut free = (FIRST_NODE_OFFSET..=last).filter(|o| !taken.contains(o));
    let mut ids = Vec::with_capacity(new.len());
    for (i, n) in new.iter().enumerate() {
        let host = scheduler::pick_host(candidates, &n.zone, bytes, engine, &hosts_in_use)?;
        let off = free.next().ok_or_else(|| {
            ApiError::ResourceExhausted(format!(
                "range {range} has no free address for another node"
            ))
        })?;
        let id = Uuid::new_v4();
        sqlx::query(
            r#"insert into node (id, instance_id, ordinal, host_id, zone_id, role, address, memory_bytes, desired_generation)
               values ($1, $2, $3, $4, $5, $6, $7, $8, 0)"#,
        )
        .bind(id)
        .bind(instance)
        .bind(first_ordinal + i as i32)
        .bind(&host)
        .bind(&n.zone)
        .bind(n.role)
        .bind(IpNet::V4(Ipv4Net::new(offset(range, off), 32).unwrap_or_default()))
        .bind(bytes)
        .execute(&mut *conn)
        .await?;
        hosts_in_use.push(host);
        ids.push(id);
    }
    touch_nodes(conn, &ids).await?;
    Ok(ids)
}
