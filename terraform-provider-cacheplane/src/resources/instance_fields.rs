//! The attributes of an instance, shared by the `cacheplane_instance` resource and data
//! source: one per field of the API's Instance (snake_case), plus `instance_id`,
//! `project`, `region`, `auth_string` (from get-auth-string) and `current_location_id`
//! (the zone of the current primary).

use std::collections::{BTreeMap, HashMap};

use cacheplane_types::redis_config::DEFAULT_MAXMEMORY_POLICY;
use cacheplane_types::{Instance, NodeRole, ReadReplicasMode, TransitEncryptionMode};
use serde::{Deserialize, Serialize};
use tf_provider::schema::Attribute;
use tf_provider::value::Value;

use crate::names::{id_of, network_spelling};
use crate::schema::{
    computed, object_list, optional, required, sensitive, string_map, BOOL, NUMBER, STRING,
};

/// One node, as the `nodes` attribute lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeAttr {
    /// The node's id.
    pub id: String,
    /// Its zone.
    pub zone: String,
    /// PRIMARY or REPLICA.
    pub role: String,
    /// Its own address.
    pub address: String,
    /// Its port.
    pub port: i64,
    /// Its state.
    pub state: String,
}

/// One CA certificate of `server_ca_certs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CaCertAttr {
    /// Serial number, decimal.
    pub serial_number: String,
    /// The certificate, PEM.
    pub cert: String,
    /// When it was issued.
    pub create_time: String,
    /// When it expires.
    pub expire_time: String,
    /// SHA-1 of its DER, hex.
    pub sha1_fingerprint: String,
}

/// Every attribute of an instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceFields {
    /// The instance's id in its project and region.
    pub instance_id: Value<String>,
    /// Its project (the provider's unless set).
    pub project: Value<String>,
    /// Its region (the provider's unless set).
    pub region: Value<String>,
    /// `projects/{project}/locations/{region}/instances/{id}`.
    pub name: Value<String>,
    /// Free text.
    pub display_name: Value<String>,
    /// BASIC or STANDARD_HA.
    pub tier: Value<String>,
    /// Memory in GB.
    pub memory_size_gb: Value<i64>,
    /// Replicas.
    pub replica_count: Value<i64>,
    /// READ_REPLICAS_DISABLED or READ_REPLICAS_ENABLED.
    pub read_replicas_mode: Value<String>,
    /// Zone of the primary at create.
    pub location_id: Value<String>,
    /// Zone of the first replica at create.
    pub alternative_location_id: Value<String>,
    /// Zone of the current primary.
    pub current_location_id: Value<String>,
    /// Engine version.
    pub redis_version: Value<String>,
    /// Engine settings.
    pub redis_configs: Value<BTreeMap<String, String>>,
    /// The network.
    pub authorized_network: Value<String>,
    /// The address range.
    pub reserved_ip_range: Value<String>,
    /// The further range of read replicas enabled later.
    pub secondary_ip_range: Value<String>,
    /// Primary endpoint address.
    pub host: Value<String>,
    /// Primary endpoint port.
    pub port: Value<i64>,
    /// Read endpoint address.
    pub read_endpoint: Value<String>,
    /// Read endpoint port.
    pub read_endpoint_port: Value<i64>,
    /// Whether clients must AUTH.
    pub auth_enabled: Value<bool>,
    /// The AUTH string (sensitive).
    pub auth_string: Value<String>,
    /// DISABLED or SERVER_AUTHENTICATION.
    pub transit_encryption_mode: Value<String>,
    /// CA certificates of a TLS instance.
    pub server_ca_certs: Value<Vec<CaCertAttr>>,
    /// Lifecycle state.
    pub state: Value<String>,
    /// Why it is in its state.
    pub status_message: Value<String>,
    /// The nodes.
    pub nodes: Value<Vec<NodeAttr>>,
    /// User labels.
    pub labels: Value<BTreeMap<String, String>>,
    /// When it was created.
    pub create_time: Value<String>,
    /// When it last changed.
    pub update_time: Value<String>,
    /// Version for optimistic concurrency.
    pub etag: Value<String>,
}

/// Every attribute name, for naming the fields of the API's errors.
pub const ATTRIBUTES: &[&str] = &[
    "instance_id",
    "project",
    "region",
    "name",
    "display_name",
    "tier",
    "memory_size_gb",
    "replica_count",
    "read_replicas_mode",
    "location_id",
    "alternative_location_id",
    "current_location_id",
    "redis_version",
    "redis_configs",
    "authorized_network",
    "reserved_ip_range",
    "secondary_ip_range",
    "host",
    "port",
    "read_endpoint",
    "read_endpoint_port",
    "auth_enabled",
    "auth_string",
    "transit_encryption_mode",
    "server_ca_certs",
    "state",
    "status_message",
    "nodes",
    "labels",
    "create_time",
    "update_time",
    "etag",
];

/// The schema's attributes. For the resource the settable ones are required or
/// optional; for the data source everything but the instance's identity is computed.
pub fn attributes(data_source: bool) -> HashMap<String, Attribute> {
    let settable = |a: Attribute| {
        if data_source {
            computed(a.attr_type, &a.description.content)
        } else {
            a
        }
    };
    let id = if data_source {
        required(STRING, "The instance's id, e.g. my-cache")
    } else {
        required(STRING, "The instance's id: 1-40 lowercase letters, digits or hyphens, starting with a letter (replaces)")
    };
    let nodes = object_list(&[
        ("id", STRING),
        ("zone", STRING),
        ("role", STRING),
        ("address", STRING),
        ("port", NUMBER),
        ("state", STRING),
    ]);
    let certs = object_list(&[
        ("serial_number", STRING),
        ("cert", STRING),
        ("create_time", STRING),
        ("expire_time", STRING),
        ("sha1_fingerprint", STRING),
    ]);
    crate::schema::attributes(vec![
        ("instance_id", id),
        ("project", optional(STRING, "The project (the provider's unless set; replaces)")),
        ("region", optional(STRING, "The region (the provider's unless set; replaces)")),
        ("name", computed(STRING, "projects/{project}/locations/{region}/instances/{id}")),
        ("display_name", settable(optional(STRING, "Free text for people, at most 80 characters (in place)"))),
        ("tier", settable(required(STRING, "BASIC or STANDARD_HA (replaces)"))),
        ("memory_size_gb", settable(required(NUMBER, "Memory limit in GB, within the tier's range (in place, online)"))),
        ("replica_count", settable(optional(NUMBER, "Replicas: BASIC 0; STANDARD_HA 1, or 1-5 with read replicas (in place)"))),
        ("read_replicas_mode", settable(optional(STRING, "READ_REPLICAS_DISABLED or READ_REPLICAS_ENABLED; enabling is in place, disabling replaces"))),
        ("location_id", settable(optional(STRING, "Zone of the primary, e.g. local-a (replaces)"))),
        ("alternative_location_id", settable(optional(STRING, "Zone of the first replica, STANDARD_HA (replaces)"))),
        ("current_location_id", computed(STRING, "Zone of the current primary (differs from location_id after a failover)")),
        ("redis_version", settable(optional(STRING, "Engine version, e.g. REDIS_7_0 (replaces)"))),
        ("redis_configs", settable(optional(string_map(), "Engine settings such as maxmemory-policy (in place)"))),
        ("authorized_network", settable(optional(STRING, "The network: an id (default) or projects/{project}/networks/{id} (replaces)"))),
        ("reserved_ip_range", settable(optional(STRING, "The address range, a /28 or larger CIDR inside the network's pool (replaces)"))),
        ("secondary_ip_range", computed(STRING, "The further /28 allocated when read replicas were enabled on a running instance")),
        ("host", computed(STRING, "Primary endpoint address: REDISHOST")),
        ("port", computed(NUMBER, "Primary endpoint port: REDISPORT")),
        ("read_endpoint", computed(STRING, "Read endpoint address (read replicas enabled)")),
        ("read_endpoint_port", computed(NUMBER, "Read endpoint port")),
        ("auth_enabled", settable(optional(BOOL, "Whether clients must AUTH (default true; replaces)"))),
        ("auth_string", sensitive(computed(STRING, "The AUTH string"))),
        ("transit_encryption_mode", settable(optional(STRING, "DISABLED or SERVER_AUTHENTICATION (TLS on port 6378; replaces)"))),
        ("server_ca_certs", computed(certs, "CA certificates clients trust (SERVER_AUTHENTICATION)")),
        ("state", computed(STRING, "CREATING, READY, UPDATING, DELETING, REPAIRING, FAILING_OVER or FAILED")),
        ("status_message", computed(STRING, "Why the instance is in its state")),
        ("nodes", computed(nodes, "The nodes: id, zone, role, address, port, state")),
        ("labels", settable(optional(string_map(), "User labels (in place)"))),
        ("create_time", computed(STRING, "When it was created (RFC 3339)")),
        ("update_time", computed(STRING, "When it last changed (RFC 3339)")),
        ("etag", computed(STRING, "Version for optimistic concurrency")),
    ])
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn wire<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The settings as state keeps them: the API adds the default `maxmemory-policy` to a
/// create that names none; it is left out when `prior` (the plan, or the state before)
/// has no such key, so a configuration without it shows no change.
fn configs_spelling(
    api: &BTreeMap<String, String>,
    prior: &Value<BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut out = api.clone();
    if let Value::Value(p) = prior {
        let policy = "maxmemory-policy";
        if !p.contains_key(policy)
            && out.get(policy).map(String::as_str) == Some(DEFAULT_MAXMEMORY_POLICY)
        {
            out.remove(policy);
        }
    }
    out
}

impl InstanceFields {
    /// The attributes of `inst` as the API returned it, with its AUTH string. Where the
    /// configuration may spell a value in more than one way (the network, the default
    /// engine settings), `prior` keeps its spelling.
    pub fn from_api(
        inst: &Instance,
        auth_string: Option<String>,
        prior: &InstanceFields,
    ) -> InstanceFields {
        let parts: Vec<&str> = inst.name.split('/').collect();
        let (project, region) = match parts.as_slice() {
            ["projects", p, "locations", r, "instances", _] => (p.to_string(), r.to_string()),
            _ => (String::new(), String::new()),
        };
        let primary_zone = inst
            .nodes
            .iter()
            .find(|n| n.role == NodeRole::Primary)
            .map(|n| n.zone.clone());
        InstanceFields {
            instance_id: Value::Value(id_of(&inst.name).to_string()),
            name: Value::Value(inst.name.clone()),
            display_name: Value::Value(inst.display_name.clone()),
            tier: Value::Value(inst.tier.as_str().to_string()),
            memory_size_gb: Value::Value(i64::from(inst.memory_size_gb)),
            replica_count: Value::Value(i64::from(inst.replica_count)),
            read_replicas_mode: Value::Value(read_replicas_name(inst.read_replicas_mode).into()),
            location_id: Value::Value(inst.location_id.clone()),
            alternative_location_id: inst.alternative_location_id.clone().into(),
            current_location_id: primary_zone.into(),
            redis_version: Value::Value(inst.redis_version.clone()),
            redis_configs: Value::Value(configs_spelling(
                &inst.redis_configs,
                &prior.redis_configs,
            )),
            authorized_network: Value::Value(network_spelling(
                &inst.authorized_network,
                prior.authorized_network.as_ref_option().map(String::as_str),
                &project,
            )),
            reserved_ip_range: Value::Value(inst.reserved_ip_range.clone()),
            secondary_ip_range: inst.secondary_ip_range.clone().into(),
            host: Value::Value(inst.host.clone()),
            port: Value::Value(i64::from(inst.port)),
            read_endpoint: inst.read_endpoint.clone().into(),
            read_endpoint_port: inst.read_endpoint_port.map(i64::from).into(),
            auth_enabled: Value::Value(inst.auth_enabled),
            auth_string: auth_string.into(),
            transit_encryption_mode: Value::Value(
                transit_name(inst.transit_encryption_mode).into(),
            ),
            server_ca_certs: Value::Value(
                inst.server_ca_certs
                    .iter()
                    .map(|c| CaCertAttr {
                        serial_number: c.serial_number.clone(),
                        cert: c.cert.clone(),
                        create_time: time(&c.create_time),
                        expire_time: time(&c.expire_time),
                        sha1_fingerprint: c.sha1_fingerprint.clone(),
                    })
                    .collect(),
            ),
            state: Value::Value(inst.state.as_str().to_string()),
            status_message: Value::Value(inst.status_message.clone()),
            nodes: Value::Value(
                inst.nodes
                    .iter()
                    .map(|n| NodeAttr {
                        id: n.id.clone(),
                        zone: n.zone.clone(),
                        role: n.role.as_str().to_string(),
                        address: n.address.clone(),
                        port: i64::from(n.port),
                        state: wire(&n.state),
                    })
                    .collect(),
            ),
            labels: Value::Value(inst.labels.clone()),
            create_time: Value::Value(time(&inst.create_time)),
            update_time: Value::Value(time(&inst.update_time)),
            etag: Value::Value(inst.etag.clone()),
            project: Value::Value(project),
            region: Value::Value(region),
        }
    }
}

/// The wire name of a read replicas mode.
pub fn read_replicas_name(m: ReadReplicasMode) -> &'static str {
    match m {
        ReadReplicasMode::ReadReplicasDisabled => "READ_REPLICAS_DISABLED",
        ReadReplicasMode::ReadReplicasEnabled => "READ_REPLICAS_ENABLED",
    }
}

/// Parses a read replicas mode as the configuration spells it.
pub fn parse_read_replicas(s: &str) -> Option<ReadReplicasMode> {
    match s {
        "READ_REPLICAS_DISABLED" => Some(ReadReplicasMode::ReadReplicasDisabled),
        "READ_REPLICAS_ENABLED" => Some(ReadReplicasMode::ReadReplicasEnabled),
        _ => None,
    }
}

fn transit_name(m: TransitEncryptionMode) -> &'static str {
    m.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attributes an update changes in place (through PATCH and its update mask).
    const IN_PLACE: &[&str] = &[
        "display_name",
        "memory_size_gb",
        "replica_count",
        "redis_configs",
        "labels",
        "read_replicas_mode",
    ];

    /// The attributes whose change needs a new instance (`read_replicas_mode` too, from
    /// enabled to disabled: the API refuses that).
    const REPLACING: &[&str] = &[
        "instance_id",
        "project",
        "region",
        "tier",
        "location_id",
        "alternative_location_id",
        "redis_version",
        "authorized_network",
        "reserved_ip_range",
        "auth_enabled",
        "transit_encryption_mode",
    ];

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_default_policy_is_kept_out_when_the_configuration_has_none() {
        let api = map(&[
            ("maxmemory-policy", DEFAULT_MAXMEMORY_POLICY),
            ("activedefrag", "yes"),
        ]);
        let without = Value::Value(map(&[("activedefrag", "yes")]));
        assert_eq!(
            configs_spelling(&api, &without),
            map(&[("activedefrag", "yes")])
        );
        // Unknown or absent (create without settings, import): the API's map as it is.
        assert_eq!(configs_spelling(&api, &Value::Unknown), api);
        assert_eq!(configs_spelling(&api, &Value::Null), api);
        // Another policy set outside Terraform shows as a change.
        let other = map(&[("maxmemory-policy", "allkeys-lru")]);
        assert_eq!(
            configs_spelling(&other, &Value::Value(BTreeMap::new())),
            other
        );
    }

    #[test]
    fn every_attribute_is_in_the_schema_and_named() {
        let attrs = attributes(false);
        assert_eq!(attrs.len(), ATTRIBUTES.len());
        for a in ATTRIBUTES.iter().chain(IN_PLACE).chain(REPLACING) {
            assert!(attrs.contains_key(*a), "{a}");
        }
        let fields = serde_json::to_value(InstanceFields::default()).unwrap();
        assert_eq!(fields.as_object().unwrap().len(), ATTRIBUTES.len());
        assert!(attrs["auth_string"].sensitive);
    }
}
