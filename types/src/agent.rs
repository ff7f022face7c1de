//! Hosts and the agent protocol: registration, heartbeats with observed state, and the
//! host config (desired state) that agents long-poll.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::memcache_agent::{DiscoveryEndpointSpec, MemcacheNodeReport, MemcacheNodeSpec};
use crate::NodeRole;

pub use crate::secret::Secret;

/// Whether a host is heartbeating.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HostState {
    /// Heartbeated recently; new nodes may be placed on it.
    Up,
    /// Silent for longer than the host timeout.
    Down,
}

/// A node agent's machine.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    /// `hosts/{host}`.
    pub name: String,
    /// Its zone.
    pub zone: String,
    /// Its address.
    pub address: String,
    /// Memory it offers to caches, in bytes.
    pub memory_bytes: i64,
    /// Memory taken by the nodes placed on it, in bytes.
    pub allocated_memory_bytes: i64,
    /// Engines it can run, e.g. `REDIS_7_0`.
    pub engines: Vec<String>,
    /// Up or down.
    pub state: HostState,
    /// The generation of its desired config.
    pub config_generation: i64,
    /// The generation its agent last reported applying.
    pub applied_generation: i64,
    /// Last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<DateTime<Utc>>,
    /// When it registered.
    pub create_time: DateTime<Utc>,
}

/// Body of `PUT /v1/hosts/{host}`: an agent registers (or re-registers) its host.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterHostRequest {
    /// The zone the host is in.
    pub zone: String,
    /// The host's address.
    pub address: String,
    /// Memory it offers to caches, in bytes.
    pub memory_bytes: i64,
    /// Engines it can run, e.g. `REDIS_7_0`.
    pub engines: Vec<String>,
}

/// `GET /v1/hosts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListHostsResponse {
    /// Every host, by name.
    pub hosts: Vec<Host>,
}

/// Answer of `POST /v1/hosts/{host}/releaseRanges`: the address ranges returned to their
/// networks' pools. A range freed while one of its nodes sat on the host, silent, is held
/// until the host confirms its engines stopped; an operator who knows the host is gone
/// for good releases its holds with this call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRangesResponse {
    /// The ranges now free (CIDR); empty when none was held only by this host.
    pub released_ranges: Vec<String>,
}

/// Body of `POST /v1/hosts/{host}/heartbeat`: what the agent sees.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The generation of the host config the agent has applied; a report older than one
    /// already received is ignored.
    pub applied_generation: i64,
    /// Free memory on the host, in bytes.
    #[serde(default)]
    pub free_memory_bytes: Option<i64>,
    /// One report per node the agent runs or is stopping.
    #[serde(default)]
    pub nodes: Vec<NodeReport>,
    /// The newest host config the agent refused to apply, if it refuses one now: it
    /// would have stopped all or most of the host's nodes, or its generation went back.
    /// The agent keeps running what it ran (its `appliedGeneration`) until an operator
    /// restarts it with `--accept-config-drops` or the config changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_config: Option<RefusedConfig>,
    /// One report per memcached node the agent runs or is stopping.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memcache_nodes: Vec<MemcacheNodeReport>,
}

/// A host config the agent did not apply: see [`HeartbeatRequest::refused_config`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefusedConfig {
    /// Its generation.
    pub generation: i64,
    /// Why, e.g. `it would stop 4 of the 4 nodes this host runs`.
    pub reason: String,
}

/// Observed state of one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeReport {
    /// The node.
    pub node_id: Uuid,
    /// Whether its engine process is running and answering. An engine that runs but has
    /// not answered lately is still up: see `unresponsive_seconds`.
    pub process_up: bool,
    /// For an engine whose process runs but does not answer (e.g. a slow command, a
    /// paused client, the fork of a full sync): seconds since it last answered. Absent
    /// when it answers. Only a bound on this, never one slow answer, counts as down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unresponsive_seconds: Option<i64>,
    /// The role the engine reports.
    #[serde(default)]
    pub role: Option<NodeRole>,
    /// For a replica: whether its link to the primary is up.
    #[serde(default)]
    pub master_link_up: Option<bool>,
    /// For a replica: seconds since the link went down.
    #[serde(default)]
    pub master_link_down_since_seconds: Option<i64>,
    /// Replication offset.
    #[serde(default)]
    pub replication_offset: Option<i64>,
    /// For a replica: bytes behind the primary.
    #[serde(default)]
    pub lag_bytes: Option<i64>,
    /// Whether a full sync is in progress.
    #[serde(default)]
    pub full_sync_in_progress: bool,
    /// Memory used by the engine, in bytes.
    #[serde(default)]
    pub used_memory_bytes: Option<i64>,
    /// Connected clients.
    #[serde(default)]
    pub connected_clients: Option<i64>,
    /// The engine's `maxmemory`, in bytes, as it runs (INFO `maxmemory`; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxmemory_bytes: Option<i64>,
    /// Commands the engine has processed since it started (INFO
    /// `total_commands_processed`): a counter that restarts with the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands_processed: Option<i64>,
    /// Successful key lookups since the engine started (INFO `keyspace_hits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_hits: Option<i64>,
    /// Failed key lookups since the engine started (INFO `keyspace_misses`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_misses: Option<i64>,
    /// Keys evicted for `maxmemory` since the engine started (INFO `evicted_keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_keys: Option<i64>,
    /// Times the agent restarted this node's engine after it had run and died, since the
    /// agent started (a counter that restarts with the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<i64>,
    /// Engine process id.
    #[serde(default)]
    pub pid: Option<i64>,
    /// Engine version, e.g. `7.0.15`.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// Why the engine could not start, in its own words.
    #[serde(default)]
    pub error: Option<String>,
    /// For a primary told to hand over ([`NodeSpec::switchover`]): how the handover
    /// goes. Absent otherwise (and from agents that predate the switchover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<SwitchoverReport>,
}

/// How a coordinated switchover goes, as the old primary's agent sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwitchoverReport {
    /// The switchover ([`SwitchoverSpec::id`]).
    pub id: Uuid,
    /// Where it stands.
    pub state: SwitchoverState,
    /// For an aborted switchover: why, in the agent's or the engine's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a coordinated switchover stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SwitchoverState {
    /// The engine pauses writes and waits for the target to catch up, or is handing over.
    HandingOver,
    /// The engine is a replica of the target, which accepted the primary role; the
    /// engine no longer binds the primary endpoint.
    Done,
    /// The handover did not happen (the target did not catch up in time, refused, or
    /// could not be reached): the engine is the primary again and takes writes.
    Aborted,
}

/// Answer to a heartbeat.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The current generation of the host's config: pull it when newer than applied.
    pub config_generation: i64,
}

/// The desired state of a host: the nodes it must run. `GET /v1/hosts/{host}/config`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostConfig {
    /// `hosts/{host}`.
    pub host: String,
    /// Bumped on every change.
    pub generation: i64,
    /// The nodes to run; any other node the agent runs must stop.
    pub nodes: Vec<NodeSpec>,
    /// The connectors to realise on this host (netns mode); any other connector the
    /// agent realised must go. Empty in loopback mode, where connectors are not realised.
    #[serde(default)]
    pub connectors: Vec<ConnectorSpec>,
    /// The memcached nodes to run; any other memcached node the agent runs must stop.
    #[serde(default)]
    pub memcache_nodes: Vec<MemcacheNodeSpec>,
    /// The Memcached discovery endpoints this host's agent serves; any other it serves
    /// must go.
    #[serde(default)]
    pub discovery_endpoints: Vec<DiscoveryEndpointSpec>,
}

/// The network a node or connector lives in, as an agent needs to know it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// `projects/{project}/networks/{network}`: identifies the network's bridge and
    /// namespaces on the host.
    pub name: String,
    /// The network's pool, e.g. `10.128.0.0/16`: the prefix of every address in it.
    pub ip_range: String,
}

/// Desired state of one connector: a namespace with an address in the network, from
/// which client processes reach the network's instances.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpec {
    /// `projects/{p}/locations/{r}/connectors/{name}`.
    pub name: String,
    /// The network it joins.
    pub network: NetworkSpec,
    /// The connector's /28 in the network.
    pub ip_cidr_range: String,
    /// The connector's own address (the first usable address of its /28).
    pub address: String,
    /// The Linux network namespace the agent creates for it.
    pub namespace: String,
}

/// Desired state of one node.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// The node.
    pub node_id: Uuid,
    /// The instance's full name.
    pub instance: String,
    /// Engine version, e.g. `REDIS_7_0`.
    pub engine_version: String,
    /// Primary or replica.
    pub role: NodeRole,
    /// The node's own address.
    pub address: String,
    /// The port, on every address.
    pub port: u16,
    /// For the primary: the primary endpoint address, which it binds too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_address: Option<String>,
    /// For a replica: the address of the primary node to follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_address: Option<String>,
    /// `maxmemory` in bytes.
    pub maxmemory_bytes: i64,
    /// Other engine settings (`maxmemory-policy`, …).
    pub redis_configs: BTreeMap<String, String>,
    /// For the primary of an instance with read replicas: the read endpoint its agent
    /// serves (a TCP proxy spreading client connections over the healthy replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_endpoint: Option<ReadEndpointSpec>,
    /// Whether the agent may restart a crashed engine in place (empty). True for BASIC
    /// nodes; a STANDARD_HA primary is never restarted as a primary, since its replicas
    /// would copy the empty dataset: it waits for failover.
    #[serde(default)]
    pub restart_in_place: bool,
    /// The tenant's AUTH string (the engine's `default` user's password), when AUTH is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_string: Option<String>,
    /// The password of the engine's privileged user (`cacheplane-agent`), the same on
    /// every node of the instance: the agent's own connections and the replicas' links to
    /// their primary use it. `None` in specs from before the locked-down engine: then the
    /// engine runs as it did (the AUTH string only, no user of the agent's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret: Option<Secret>,
    /// For a STANDARD_HA primary: the engine refuses writes unless enough replicas are
    /// linked and recent (`min-replicas-to-write`, `min-replicas-max-lag`), so a primary
    /// cut off from its replicas stops taking writes by itself, agent or no agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_fence: Option<WriteFence>,
    /// The network the node lives in. The agent's netns and host modes need it (the
    /// namespace and bridge of the network, the pool's prefix length); loopback mode
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// A coordinated switchover (a manual LIMITED_DATA_LOSS failover) under way. On the
    /// primary: hand over to the replica at `targetAddress` (`FAILOVER TO`) and report
    /// how it goes. On that replica (`targetAddress` is its own address): it may be made
    /// primary by the handover; its agent keeps that role until the API records it.
    /// Agents that predate it ignore it (the switchover then times out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchover: Option<SwitchoverSpec>,
    /// TLS in transit (`SERVER_AUTHENTICATION`): the engine serves TLS only, on `port`,
    /// with these files, and replicates over TLS. Absent: plain RESP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// A coordinated switchover: see [`NodeSpec::switchover`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwitchoverSpec {
    /// Names this switchover (its failover operation's id); reports carry it back.
    pub id: Uuid,
    /// The node address of the replica taking over (same port as every node).
    pub target_address: String,
    /// The longest the primary pauses writes while waiting for the target to catch up
    /// (`FAILOVER … TIMEOUT`); past it the handover is aborted and writes resume.
    pub timeout_ms: u64,
}

impl SwitchoverSpec {
    /// Whether the node at `address` is the target of this switchover.
    pub fn targets(&self, address: &str) -> bool {
        self.target_address == address
    }
}

/// The TLS material of a node: its instance's CA and the server certificate and key
/// (PEM). The key is a secret: [`TlsSpec`]'s `Debug` never prints it, and the agent
/// keeps it only in a 0600 file.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The instance's CA certificate (`tls-ca-cert-file`; replicas check their primary
    /// against it).
    pub ca_cert: String,
    /// The server certificate (`tls-cert-file`), valid for every address of the
    /// instance's range.
    pub cert: String,
    /// The server certificate's private key (`tls-key-file`).
    pub key: String,
}

impl std::fmt::Debug for TlsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSpec")
            .field("ca_cert", &format_args!("<{} bytes>", self.ca_cert.len()))
            .field("cert", &format_args!("<{} bytes>", self.cert.len()))
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

/// A primary's write fence: see [`NodeSpec::write_fence`].
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFence {
    /// Linked replicas needed to accept a write (`min-replicas-to-write`).
    pub min_replicas: u32,
    /// The oldest replica acknowledgement, in seconds, that still counts
    /// (`min-replicas-max-lag`).
    pub max_lag_seconds: u32,
}

/// A read endpoint: where it listens and the replicas behind it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEndpointSpec {
    /// The address clients connect to (from the instance's original range).
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Addresses of the instance's replica nodes (same port); the proxy sends a new
    /// connection only to one that is linked to its primary and not in a full sync.
    pub replicas: Vec<String>,
}

#[cfg(test)]
mod tls_tests {
    use super::TlsSpec;

    #[test]
    fn debug_never_prints_the_key() {
        let t = TlsSpec {
            ca_cert: "CA".into(),
            cert: "CERT".into(),
            key: "-----BEGIN PRIVATE KEY-----secret".into(),
        };
        let shown = format!("{t:?} {t:#?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
