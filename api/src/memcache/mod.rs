//! Memcached instances (docs/memcached.md): a pool of independent `memcached` nodes on
//! the addresses of one /28, found by clients through a discovery endpoint that the
//! agent of one node's host serves. Create, read, patch (display name, labels, node
//! count), parameters (staged, then applied per node) and delete; the background driver
//! (`crate::background::memcache`) moves their operations forward.

pub mod create;
pub mod delete;
pub mod nodes;
pub mod patch;
pub mod read;
pub mod render;
pub mod validate;

use std::net::Ipv4Addr;

use cacheplane_types::OperationVerb;
use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::memcache as db;
use crate::error::{ApiError, ApiResult};
use crate::instances::layout::offset;
use crate::operations::NewOperation;

pub use crate::db::memcache::{MemcacheNodeRow, MemcacheRow};

/// Offset of the discovery endpoint inside the instance's /28.
pub const DISCOVERY_OFFSET: u32 = 1;
/// Offset of the first node address.
pub const FIRST_NODE_OFFSET: u32 = 2;
/// Offset of the last node address (15 is the broadcast address).
pub const LAST_NODE_OFFSET: u32 = 14;
/// The most nodes one /28 holds.
pub const MAX_NODES: i64 = (LAST_NODE_OFFSET - FIRST_NODE_OFFSET + 1) as i64;

/// Where a Memcached instance lives:
/// `projects/{project}/locations/{region}/memcacheInstances/{name}`.
#[derive(Debug, Clone)]
pub struct MemcacheRef {
    /// Project id.
    pub project: String,
    /// Region id.
    pub region: String,
    /// Instance id.
    pub name: String,
}

impl MemcacheRef {
    /// Its project and region.
    pub fn scope(&self) -> (&str, &str) {
        (&self.project, &self.region)
    }

    /// The full resource name.
    pub fn full_name(&self) -> String {
        full_name(&self.project, &self.region, &self.name)
    }

    /// A new operation `verb` on this instance.
    pub fn new_operation<'a>(
        &'a self,
        id: Uuid,
        verb: OperationVerb,
        detail: &'a str,
    ) -> NewOperation<'a> {
        NewOperation {
            id,
            project: &self.project,
            region: &self.region,
            verb,
            target: self.full_name(),
            instance: None,
            detail,
            params: serde_json::json!({}),
        }
    }

    /// NOT_FOUND naming the instance.
    pub fn not_found(&self) -> ApiError {
        ApiError::NotFound(format!("Memcached instance '{}' not found", self.name))
    }

    /// Locks the instance for the rest of the transaction, then takes the region's
    /// placement lock and locks the hosts of its nodes and discovery endpoint: the order
    /// of Redis instances (`InstanceRef::lock`, docs/architecture.md#locks), so that the
    /// operation driver, which holds an instance before it places nodes, never waits in
    /// a cycle with a request. NOT_FOUND when there is none.
    pub async fn lock(&self, conn: &mut PgConnection) -> ApiResult<MemcacheRow> {
        let row = db::lock(&mut *conn, &self.project, &self.region, &self.name)
            .await?
            .ok_or_else(|| self.not_found())?;
        crate::db::hosts::lock_region(&mut *conn, &self.region).await?;
        db::lock_hosts(conn, row.id).await?;
        Ok(row)
    }
}

fn full_name(project: &str, region: &str, name: &str) -> String {
    format!("projects/{project}/locations/{region}/memcacheInstances/{name}")
}

impl MemcacheRow {
    /// The full resource name.
    pub fn full_name(&self) -> String {
        full_name(&self.project_id, &self.region_id, &self.name)
    }

    /// Its reference.
    pub fn target(&self) -> MemcacheRef {
        MemcacheRef {
            project: self.project_id.clone(),
            region: self.region_id.clone(),
            name: self.name.clone(),
        }
    }

    /// Its /28.
    pub fn range(&self) -> Option<Ipv4Net> {
        match self.range {
            Some(IpNet::V4(r)) => Some(r),
            _ => None,
        }
    }

    /// The discovery endpoint's address.
    pub fn discovery_address(&self) -> Option<Ipv4Addr> {
        self.range().map(|r| offset(r, DISCOVERY_OFFSET))
    }
}

impl MemcacheNodeRow {
    /// `node-{ordinal}`: the id clients and `applyParameters` use.
    pub fn node_id(&self) -> String {
        format!("node-{}", self.ordinal)
    }
}

/// The id of a parameter set: changes whenever the parameters do.
pub fn parameters_id(params: &std::collections::BTreeMap<String, String>) -> String {
    if params.is_empty() {
        return String::new();
    }
    let text = serde_json::to_string(params).unwrap_or_default();
    crate::idempotency::fingerprint(&[&text])[..12].to_string()
}
