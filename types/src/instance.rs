//! Instances: the managed caches.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::proto_enum::proto_enum;
use crate::Tier;

proto_enum! {
    /// The lifecycle state of an instance.
    pub enum InstanceState("instance state") {
        /// Being created; its create operation is running.
        Creating = "CREATING" / 1,
        /// Serving.
        Ready = "READY" / 2,
        /// A patch is being applied.
        Updating = "UPDATING" / 3,
        /// Being deleted.
        Deleting = "DELETING" / 4,
        /// A node is down and the instance is being repaired.
        Repairing = "REPAIRING" / 5,
        /// The primary is moving to a replica.
        FailingOver = "FAILING_OVER" / 9,
        /// Broken beyond automatic repair; it can still be deleted. Memorystore has no
        /// such state: as a number it is 0 (`STATE_UNSPECIFIED`), and `statusMessage`
        /// says why.
        Failed = "FAILED" / 0,
    }
}

proto_enum! {
    /// Whether the instance serves reads from its replicas on a read endpoint.
    pub enum ReadReplicasMode("read replicas mode") default ReadReplicasDisabled {
        /// No read endpoint (the default).
        ReadReplicasDisabled = "READ_REPLICAS_DISABLED" / 1,
        /// A read endpoint spreads connections over the healthy replicas.
        ReadReplicasEnabled = "READ_REPLICAS_ENABLED" / 2,
    }
}

proto_enum! {
    /// Whether clients reach the instance over TLS. Set at create only.
    pub enum TransitEncryptionMode("transit encryption mode") default Disabled {
        /// TLS only, on port 6378: the server proves itself with a certificate issued by
        /// the instance's own CA (`serverCaCerts`); clients are not asked for one.
        ServerAuthentication = "SERVER_AUTHENTICATION" / 1,
        /// Plain RESP on port 6379 (the default).
        Disabled = "DISABLED" / 2,
    }
}

impl TryFrom<String> for TransitEncryptionMode {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or_else(|| format!("unknown transit encryption mode '{s}'"))
    }
}

/// A CA certificate clients trust to reach a TLS instance (Memorystore's `TlsCertificate`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsCertificate {
    /// The certificate's serial number, in decimal.
    pub serial_number: String,
    /// The certificate, PEM.
    pub cert: String,
    /// When it was issued (its `notBefore`).
    pub create_time: DateTime<Utc>,
    /// When it expires (its `notAfter`).
    pub expire_time: DateTime<Utc>,
    /// SHA-1 of the certificate's DER, lowercase hex.
    pub sha1_fingerprint: String,
}

/// The role of a node in its instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeRole {
    /// Takes writes; holds the primary endpoint.
    Primary,
    /// Follows the primary.
    Replica,
}

impl NodeRole {
    /// The wire name, also stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "PRIMARY",
            NodeRole::Replica => "REPLICA",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<NodeRole> {
        match s {
            "PRIMARY" => Some(NodeRole::Primary),
            "REPLICA" => Some(NodeRole::Replica),
            _ => None,
        }
    }
}

/// The state of one node as the control plane sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    /// Placed; its agent has not yet reported it running the current configuration.
    Creating,
    /// Running the current configuration (and, for a replica, linked to its primary).
    Ready,
    /// Reported down, or its host stopped heartbeating.
    Down,
    /// Could not start; see the instance's `statusMessage`.
    Failed,
    /// Being stopped.
    Deleting,
}

/// One node (one engine process) of an instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Unique id of the node.
    pub id: String,
    /// The zone it runs in.
    pub zone: String,
    /// Primary or replica. (Cacheplane's: Google's `NodeInfo` has `id` and `zone` only.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub role: NodeRole,
    /// Its own address inside the instance's range. (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub address: String,
    /// Its port. (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub port: u16,
    /// Its state. (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub state: NodeState,
}

/// A managed cache.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// `projects/{project}/locations/{region}/instances/{instance}`.
    pub name: String,
    /// Free text for people.
    pub display_name: String,
    /// The service tier.
    pub tier: Tier,
    /// The memory limit (`maxmemory`) in GB (GiB).
    pub memory_size_gb: i32,
    /// Number of replicas.
    pub replica_count: i32,
    /// Whether a read endpoint serves reads from the replicas.
    pub read_replicas_mode: ReadReplicasMode,
    /// Zone of the primary.
    pub location_id: String,
    /// Zone of the first replica (STANDARD_HA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative_location_id: Option<String>,
    /// Zone of the current primary: `locationId` until a failover moves the primary (as
    /// Memorystore's `currentLocationId`).
    #[serde(default)]
    pub current_location_id: String,
    /// Engine version, e.g. `REDIS_7_0`.
    pub redis_version: String,
    /// Engine settings.
    pub redis_configs: BTreeMap<String, String>,
    /// The network the instance is reachable from: `projects/{project}/networks/{network}`.
    pub authorized_network: String,
    /// The instance's address range (CIDR).
    pub reserved_ip_range: String,
    /// A further range, present once read replicas have been enabled on a running instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_ip_range: Option<String>,
    /// Primary endpoint address: what an application puts in REDISHOST.
    pub host: String,
    /// Primary endpoint port: REDISPORT.
    pub port: u16,
    /// Read endpoint address (read replicas enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_endpoint: Option<String>,
    /// Read endpoint port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_endpoint_port: Option<u16>,
    /// Whether clients must AUTH; the string comes from the get-auth-string method.
    pub auth_enabled: bool,
    /// TLS in transit: `DISABLED` or `SERVER_AUTHENTICATION` (port 6378).
    #[serde(default)]
    pub transit_encryption_mode: TransitEncryptionMode,
    /// With `SERVER_AUTHENTICATION`: the CA certificates that sign the instance's server
    /// certificates (clients pass them as `--cacert`). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_ca_certs: Vec<TlsCertificate>,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Why the instance is in its state, when that is worth saying.
    pub status_message: String,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it last changed. (Cacheplane's: Google's `Instance` lacks it.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub update_time: DateTime<Utc>,
    /// Opaque version for optimistic concurrency on patch. (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub etag: String,
}

/// Body of `POST …/instances?instanceId=ID`: the settable fields of an instance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInstanceRequest {
    /// Free text for people, at most 80 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The service tier.
    pub tier: Tier,
    /// The memory limit in GB, within the tier's range.
    pub memory_size_gb: i64,
    /// Replicas: BASIC 0; STANDARD_HA 1 without read replicas, 1–5 with them (default 2).
    #[serde(default)]
    pub replica_count: Option<i64>,
    /// Read replicas; off by default.
    #[serde(default)]
    pub read_replicas_mode: Option<ReadReplicasMode>,
    /// Zone of the primary; chosen by the system if omitted.
    #[serde(default)]
    pub location_id: Option<String>,
    /// Zone of the first replica (STANDARD_HA); chosen by the system if omitted.
    #[serde(default)]
    pub alternative_location_id: Option<String>,
    /// Engine version; `REDIS_7_0` if omitted.
    #[serde(default)]
    pub redis_version: Option<String>,
    /// Engine settings (known keys only).
    #[serde(default)]
    pub redis_configs: BTreeMap<String, String>,
    /// The network (`default` if omitted), by id or full name.
    #[serde(default)]
    pub authorized_network: Option<String>,
    /// The address range (CIDR, /28 or larger, aligned, inside the network's pool);
    /// allocated automatically if omitted.
    #[serde(default)]
    pub reserved_ip_range: Option<String>,
    /// Whether clients must AUTH (default true).
    #[serde(default)]
    pub auth_enabled: Option<bool>,
    /// TLS in transit (`DISABLED` if omitted); cannot be changed later.
    #[serde(default)]
    pub transit_encryption_mode: Option<TransitEncryptionMode>,
    /// User labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Body of `PATCH …/instances/{instance}?updateMask=…`: the fields named in the mask.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchInstanceRequest {
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New memory limit in GB.
    #[serde(default)]
    pub memory_size_gb: Option<i64>,
    /// New replica count.
    #[serde(default)]
    pub replica_count: Option<i64>,
    /// Enables read replicas (cannot be disabled again).
    #[serde(default)]
    pub read_replicas_mode: Option<ReadReplicasMode>,
    /// With `readReplicasMode`: the further range needed for read replicas (a /28 CIDR,
    /// or `auto`).
    #[serde(default)]
    pub secondary_ip_range: Option<String>,
    /// Replaces the engine settings.
    #[serde(default)]
    pub redis_configs: Option<BTreeMap<String, String>>,
    /// Replaces the labels.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Set at create only: a patch carrying it (or naming it in `updateMask`) is refused
    /// with INVALID_ARGUMENT on `transitEncryptionMode`.
    #[serde(default)]
    pub transit_encryption_mode: Option<TransitEncryptionMode>,
    /// If given, the patch applies only while the instance still has this etag.
    #[serde(default)]
    pub etag: Option<String>,
}

/// `GET …/instances`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListInstancesResponse {
    /// One page of instances, by name.
    pub instances: Vec<Instance>,
    /// Pass as `pageToken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

proto_enum! {
    /// How much data a manual failover may lose.
    pub enum DataProtectionMode("data protection mode") default LimitedDataLoss {
        /// Refuse while the best replica lags by 30 MB or more (the default).
        LimitedDataLoss = "LIMITED_DATA_LOSS" / 1,
        /// Fail over whatever the lag.
        ForceDataLoss = "FORCE_DATA_LOSS" / 2,
    }
}

/// Body of `POST …/instances/{instance}/failover`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailoverRequest {
    /// How much data the failover may lose.
    #[serde(default)]
    pub data_protection_mode: Option<DataProtectionMode>,
}

/// `GET …/instances/{instance}/authString`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAuthString {
    /// The password clients send with AUTH; empty when AUTH is off.
    pub auth_string: String,
}
