//! Instances: create, read, list, patch, delete and failover, and the node bookkeeping
//! they share.

pub mod create;
pub mod delete;
pub mod failover;
pub mod filter;
pub mod layout;
pub mod node_state;
pub mod patch;
pub mod read;
pub mod render;
pub mod repair;
pub mod tls;
pub mod validate;

use std::collections::BTreeSet;

use cacheplane_types::{NodeRole, OperationVerb};
use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::nodes::{self, NewNodeRow};
use crate::db::{hosts, instances as db};
use crate::error::{ApiError, ApiResult};
use crate::operations::NewOperation;
use crate::scheduler::{self, Candidate};
use layout::{offset, FIRST_NODE_OFFSET};

pub use crate::db::instances::InstanceRow;
pub use crate::db::nodes::NodeRow;

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
    /// Its project and region.
    pub fn scope(&self) -> (&str, &str) {
        (&self.project, &self.region)
    }

    /// The full resource name.
    pub fn full_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/instances/{}",
            self.project, self.region, self.name
        )
    }

    /// A new operation `verb` on this instance (`instance`, once it exists), without
    /// parameters.
    pub fn new_operation<'a>(
        &'a self,
        id: Uuid,
        verb: OperationVerb,
        instance: Option<Uuid>,
        detail: &'a str,
    ) -> NewOperation<'a> {
        NewOperation {
            id,
            project: &self.project,
            region: &self.region,
            verb,
            target: self.full_name(),
            instance,
            detail,
            params: serde_json::json!({}),
        }
    }

    /// Locks the instance row for the rest of the transaction, then every host of its
    /// region (see [`lock_region_hosts`]); NOT_FOUND when there is no such instance.
    pub async fn lock(&self, conn: &mut PgConnection) -> ApiResult<InstanceRow> {
        let inst = db::lock(&mut *conn, &self.project, &self.region, &self.name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("instance '{}' not found", self.name)))?;
        lock_region_hosts(conn, &inst).await?;
        Ok(inst)
    }
}

impl InstanceRow {
    /// A new operation `verb` on this instance, without parameters.
    pub fn new_operation<'a>(
        &'a self,
        id: Uuid,
        verb: OperationVerb,
        detail: &'a str,
    ) -> NewOperation<'a> {
        NewOperation {
            id,
            project: &self.project_id,
            region: &self.region_id,
            verb,
            target: self.full_name(),
            instance: Some(self.id),
            detail,
            params: serde_json::json!({}),
        }
    }
}

/// Marks nodes as changed: bumps each of their hosts' config generation once and records
/// the new generation on the nodes, so they count as converged only once their agents
/// apply it. Agents long-polling those hosts wake up at commit.
pub async fn touch_nodes(conn: &mut PgConnection, nodes: &[Uuid]) -> ApiResult<()> {
    if nodes.is_empty() {
        return Ok(());
    }
    hosts::bump_generations_of(conn, nodes).await?;
    nodes::adopt_host_generation(conn, nodes).await
}

/// Takes the region's placement lock, then locks the hosts of `inst`'s nodes, for the
/// rest of the transaction. Every transaction that changes existing node rows takes these
/// locks before touching a node, so a host's lock always comes before its nodes' locks
/// (as in a heartbeat, which locks its host and then writes its nodes' reports) and they
/// never deadlock. New nodes need no lock before they are inserted: no heartbeat sees
/// them until they are committed.
///
/// The placement lock is an advisory lock, not the region's host rows: a heartbeat waits
/// only for a transaction that changes a node on its own host, never for every
/// placement in the region (see docs/architecture.md#locks).
pub async fn lock_region_hosts(conn: &mut PgConnection, inst: &InstanceRow) -> ApiResult<()> {
    hosts::lock_region(&mut *conn, &inst.region_id).await?;
    hosts::lock_of_instance(conn, inst.id).await
}

/// A node about to be created.
pub struct NewNode {
    /// Its zone.
    pub zone: String,
    /// Primary or replica.
    pub role: NodeRole,
}

/// Where new nodes of an instance go: its range, engine and node size, the hosts that may
/// take them, and what its current nodes already use.
pub struct Placement<'a> {
    /// The instance.
    pub instance: Uuid,
    /// Its range; node addresses come from it.
    pub range: Ipv4Net,
    /// Its engine version.
    pub engine: &'a str,
    /// Memory per node.
    pub bytes: i64,
    /// The region's hosts (locked), charged as nodes are placed.
    pub candidates: &'a mut [Candidate],
    /// Hosts holding the instance's nodes (new nodes avoid them where they can).
    pub hosts_in_use: Vec<String>,
    /// Addresses its nodes hold.
    pub used_addresses: &'a [IpNet],
    /// The ordinal of the first new node.
    pub first_ordinal: i32,
}

/// Places and inserts `new` nodes. Returns their ids (already touched).
pub async fn add_nodes(
    conn: &mut PgConnection,
    mut place: Placement<'_>,
    new: &[NewNode],
) -> ApiResult<Vec<Uuid>> {
    let range = place.range;
    let taken: BTreeSet<u32> = place
        .used_addresses
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
        let host = scheduler::pick_host(
            place.candidates,
            &n.zone,
            place.bytes,
            place.engine,
            &place.hosts_in_use,
        )?;
        let off = free.next().ok_or_else(|| {
            ApiError::ResourceExhausted(format!(
                "range {range} has no free address for another node"
            ))
        })?;
        let id = Uuid::new_v4();
        nodes::insert(
            conn,
            &NewNodeRow {
                id,
                instance: place.instance,
                ordinal: place.first_ordinal + i as i32,
                host: &host,
                zone: &n.zone,
                role: n.role,
                address: offset(range, off),
                memory_bytes: place.bytes,
            },
        )
        .await?;
        place.hosts_in_use.push(host);
        ids.push(id);
    }
    touch_nodes(conn, &ids).await?;
    Ok(ids)
}

/// What placing further nodes of a running instance needs: its range (for their
/// addresses), the region's hosts locked as placement candidates, and the region's zones.
pub struct PlacementContext {
    /// The instance's primary range.
    pub range: Ipv4Net,
    /// The region's hosts, locked for the rest of the transaction.
    pub candidates: Vec<Candidate>,
    /// The region's zones, by id.
    pub region_zones: Vec<String>,
}

/// Loads the [`PlacementContext`] of `inst` inside `tx`.
pub async fn placement_context(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    host_timeout: std::time::Duration,
) -> ApiResult<PlacementContext> {
    let range = inst
        .range()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("instance {} has no range", inst.id)))?;
    let candidates = scheduler::load_candidates(&mut *tx, &inst.region_id, host_timeout).await?;
    let region_zones = crate::db::catalog::zones_of(&mut *tx, &inst.region_id).await?;
    Ok(PlacementContext {
        range,
        candidates,
        region_zones,
    })
}
