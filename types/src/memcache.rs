//! Memcached instances, shaped like Memorystore for Memcached v1's `Instance`: a pool of
//! independent `memcached` nodes that clients shard by consistent hashing, found through
//! the instance's discovery endpoint (`config get cluster`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::proto_enum::proto_enum;

/// The only engine version offered.
pub const MEMCACHE_1_6: &str = "MEMCACHE_1_6";

/// The port of every node and of the discovery endpoint.
pub const MEMCACHE_PORT: u16 = 11211;

proto_enum! {
    /// The lifecycle state of a Memcached instance.
    pub enum MemcacheInstanceState("memcache instance state") {
        /// Being created; its create operation is running.
        Creating = "CREATING" / 1,
        /// Serving.
        Ready = "READY" / 2,
        /// Nodes are being added, removed or given new parameters.
        Updating = "UPDATING" / 3,
        /// Being deleted.
        Deleting = "DELETING" / 4,
        /// A node failed to start during an update; it can still be deleted or updated
        /// again. (Memorystore has no such state: 0 as a number.)
        Failed = "FAILED" / 0,
    }
}

proto_enum! {
    /// The state of one Memcached node.
    pub enum MemcacheNodeState("memcache node state") {
        /// Placed; its agent has not yet reported it running.
        Creating = "CREATING" / 1,
        /// Running with its parameters.
        Ready = "READY" / 2,
        /// Being stopped.
        Deleting = "DELETING" / 3,
        /// Restarting to take new parameters.
        Updating = "UPDATING" / 4,
        /// Its memcached is down (the agent restarts it, empty) or its host is silent.
        /// (Cacheplane's: 0 as a number.)
        Down = "DOWN" / 0,
    }
}

/// `nodeConfig`: the size of every node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemcacheNodeConfig {
    /// Worker threads of each node (`memcached -t`): 1-32.
    pub cpu_count: i64,
    /// Item memory of each node in MB (`memcached -m`): 1024-65536.
    pub memory_size_mb: i64,
}

/// `parameters`: user settings of every node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemcacheParameters {
    /// Output only: an id that changes whenever `params` change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Parameter names (see the allow-list in docs/memcached.md) and their values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// One node of a Memcached instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemcacheNode {
    /// The node's id in its instance, e.g. `node-3` (what `applyParameters` names).
    pub node_id: String,
    /// Its zone.
    pub zone: String,
    /// Its state.
    pub state: MemcacheNodeState,
    /// Its address: clients connect to `host:port`.
    pub host: String,
    /// Its port (11211).
    pub port: u16,
    /// The parameters it runs with (applied by `applyParameters`).
    pub parameters: MemcacheParameters,
}

/// A Memcached instance: `projects/{project}/locations/{region}/memcacheInstances/{id}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemcacheInstance {
    /// `projects/{project}/locations/{region}/memcacheInstances/{id}`.
    pub name: String,
    /// Free text for people.
    pub display_name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The network the instance is reachable from: `projects/{project}/networks/{network}`.
    pub authorized_network: String,
    /// The zones its nodes are spread over.
    pub zones: Vec<String>,
    /// Number of nodes.
    pub node_count: i32,
    /// The size of every node.
    pub node_config: MemcacheNodeConfig,
    /// Engine version: `MEMCACHE_1_6`.
    pub memcache_version: String,
    /// The parameters staged by `updateParameters` (nodes take them on `applyParameters`).
    pub parameters: MemcacheParameters,
    /// The nodes, by id.
    pub memcache_nodes: Vec<MemcacheNode>,
    /// `ip:port` of the discovery endpoint, which answers `config get cluster`.
    pub discovery_endpoint: String,
    /// The instance's address range (a /28 of its network).
    pub reserved_ip_range: String,
    /// Its state.
    pub state: MemcacheInstanceState,
    /// Why it is FAILED, or what it is doing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// The memcached version the nodes report, e.g. `memcached-1.6.18`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub memcache_full_version: String,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
    /// Changes whenever the instance does: send it back in a patch to refuse a change
    /// made meanwhile.
    pub etag: String,
}

/// Body of `POST …/memcacheInstances?instanceId=ID&requestId=UUID`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateMemcacheInstanceRequest {
    /// Free text, at most 80 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The network: an id of the project or `projects/{p}/networks/{n}`; default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_network: Option<String>,
    /// Zones of the region to spread the nodes over; default every zone of the region.
    #[serde(default)]
    pub zones: Vec<String>,
    /// Number of nodes: 1-13 (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<i64>,
    /// The size of every node (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_config: Option<MemcacheNodeConfig>,
    /// `MEMCACHE_1_6` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcache_version: Option<String>,
    /// Initial parameters of every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<MemcacheParameters>,
}

/// Body of `PATCH …/memcacheInstances/{id}?updateMask=…`: the fields named in the mask.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchMemcacheInstanceRequest {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// New labels (replace the old ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// New number of nodes: nodes that stay keep their address and data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<i64>,
    /// The instance's `etag`: the patch is refused (ABORTED) if it changed meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Body of `POST …/memcacheInstances/{id}:updateParameters`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateMemcacheParametersRequest {
    /// `params` (the only field that can be updated).
    pub update_mask: String,
    /// The new parameters: they replace the staged ones.
    #[serde(default)]
    pub parameters: MemcacheParameters,
}

/// Body of `POST …/memcacheInstances/{id}:applyParameters`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyMemcacheParametersRequest {
    /// The nodes (`node-3`, …) that take the staged parameters (restarting, empty).
    #[serde(default)]
    pub node_ids: Vec<String>,
    /// Every node takes them (`nodeIds` must then be empty).
    #[serde(default)]
    pub apply_all: bool,
}

/// `GET …/memcacheInstances`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMemcacheInstancesResponse {
    /// One page of instances, by name.
    pub instances: Vec<MemcacheInstance>,
    /// Pass as `pageToken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
