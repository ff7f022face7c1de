//! The agent protocol's Memcached half: the memcached nodes and discovery endpoints a
//! host must run ([`HostConfig::memcache_nodes`](crate::HostConfig::memcache_nodes),
//! [`HostConfig::discovery_endpoints`](crate::HostConfig::discovery_endpoints)) and what
//! the agent reports of them ([`HeartbeatRequest::memcache_nodes`](crate::HeartbeatRequest::memcache_nodes)).
//!
//! A Memcached instance is a pool of independent servers with no replication: each node
//! is one `memcached` process on its own address of the instance's range. Clients find
//! the nodes through the instance's discovery endpoint, which answers
//! `config get cluster`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::NetworkSpec;

/// Desired state of one memcached node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemcacheNodeSpec {
    /// The node.
    pub node_id: Uuid,
    /// The instance's full name (`projects/{p}/locations/{r}/memcacheInstances/{id}`).
    pub instance: String,
    /// Engine version, e.g. `MEMCACHE_1_6`.
    pub memcache_version: String,
    /// The node's own address (`-l`).
    pub address: String,
    /// Its port (`-p`), normally 11211.
    pub port: u16,
    /// Item memory in megabytes (`-m`).
    pub memory_mb: u32,
    /// Worker threads (`-t`), from the instance's `cpuCount`.
    pub threads: u32,
    /// The most simultaneous connections (`-c`).
    pub max_connections: u32,
    /// The parameters this node runs with (names as the API's allow-list spells them,
    /// e.g. `max-item-size`, values already validated). A node whose running parameters
    /// differ from these is restarted with them; the API changes them only when
    /// `applyParameters` names the node.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// The network the node lives in (netns and host modes; loopback mode ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
}

/// Desired state of one discovery endpoint: an address of the instance's range where
/// this host's agent answers `config get cluster` with the instance's node list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryEndpointSpec {
    /// The instance's full name.
    pub instance: String,
    /// The endpoint's address (the instance's `discoveryEndpoint` host).
    pub address: String,
    /// Its port, normally 11211.
    pub port: u16,
    /// The cluster config version: grows with every change of the node list.
    pub config_version: i64,
    /// The nodes, in the order the answer lists them.
    pub nodes: Vec<DiscoveryNode>,
    /// The network the endpoint lives in (netns and host modes; loopback mode ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
}

/// One node in a `config get cluster` answer: `host|ip|port`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryNode {
    /// The node's host name as clients should see it (its address when it has no name).
    pub host: String,
    /// Its address.
    pub ip: String,
    /// Its port.
    pub port: u16,
}

/// Observed state of one memcached node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemcacheNodeReport {
    /// The node.
    pub node_id: Uuid,
    /// Whether its memcached runs and answers `version`.
    pub process_up: bool,
    /// memcached's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i64>,
    /// memcached's version, e.g. `1.6.18`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// The parameters it runs with (what it was started with): the API marks the node's
    /// parameters applied once they match.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Bytes used by items (`stats` `bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_memory_bytes: Option<i64>,
    /// Open client connections (`stats` `curr_connections`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_clients: Option<i64>,
    /// Items stored (`stats` `curr_items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<i64>,
    /// Times the agent restarted it after it died, since the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i64>,
    /// Why it could not start, in memcached's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
