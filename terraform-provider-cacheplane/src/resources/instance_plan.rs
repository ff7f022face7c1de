//! Planning `cacheplane_instance`: what a create leaves to the API (unknown until
//! apply), which changes replace the instance, and which computed attributes an in-place
//! update may change. Pure functions, tested with tables.

use tf_provider::value::Value;
use tf_provider::AttributePath;

use super::instance::InstanceState;
use super::instance_fields::InstanceFields;
use crate::names::network_changes;
use crate::schema::{changes, known, or_unknown, replaced};

const ENABLED: &str = "READ_REPLICAS_ENABLED";
const DISABLED: &str = "READ_REPLICAS_DISABLED";

/// The planned state of a new instance: the configuration, the provider's project and
/// region where it sets none, and everything else unknown until the API has decided.
pub fn create(mut proposed: InstanceState, project: &str, region: &str) -> InstanceState {
    let f = &mut proposed.fields;
    if f.project.is_null() {
        f.project = Value::Value(project.to_string());
    }
    if f.region.is_null() {
        f.region = Value::Value(region.to_string());
    }
    f.name = match (&f.project, &f.region, &f.instance_id) {
        (Value::Value(p), Value::Value(r), Value::Value(id)) => {
            Value::Value(format!("projects/{p}/locations/{r}/instances/{id}"))
        }
        _ => Value::Unknown,
    };
    f.display_name = or_unknown(f.display_name.take());
    f.replica_count = or_unknown(f.replica_count.take());
    f.read_replicas_mode = or_unknown(f.read_replicas_mode.take());
    f.location_id = or_unknown(f.location_id.take());
    f.alternative_location_id = or_unknown(f.alternative_location_id.take());
    f.redis_version = or_unknown(f.redis_version.take());
    f.redis_configs = or_unknown(f.redis_configs.take());
    f.authorized_network = or_unknown(f.authorized_network.take());
    f.reserved_ip_range = or_unknown(f.reserved_ip_range.take());
    f.auth_enabled = or_unknown(f.auth_enabled.take());
    f.transit_encryption_mode = or_unknown(f.transit_encryption_mode.take());
    f.labels = or_unknown(f.labels.take());
    unknown_after_change(f);
    f.secondary_ip_range = Value::Unknown;
    f.host = Value::Unknown;
    f.port = Value::Unknown;
    f.read_endpoint = Value::Unknown;
    f.read_endpoint_port = Value::Unknown;
    f.auth_string = Value::Unknown;
    f.server_ca_certs = Value::Unknown;
    f.create_time = Value::Unknown;
    proposed
}

/// What changes whenever the API acts on an instance.
fn unknown_after_change(f: &mut InstanceFields) {
    f.current_location_id = Value::Unknown;
    f.state = Value::Unknown;
    f.status_message = Value::Unknown;
    f.nodes = Value::Unknown;
    f.update_time = Value::Unknown;
    f.etag = Value::Unknown;
}

/// The attributes whose change from `prior` to `proposed` needs a new instance.
pub fn replacing(prior: &InstanceFields, proposed: &InstanceFields) -> Vec<AttributePath> {
    let (a, b) = (prior, proposed);
    let project = a.project.as_ref_option().map(String::as_str).unwrap_or("");
    let mode_is = |f: &InstanceFields, m: &str| known(&f.read_replicas_mode) == Some(m);
    // Read replicas can be enabled in place, never disabled.
    let disables = mode_is(a, ENABLED) && mode_is(b, DISABLED);
    replaced(&[
        ("instance_id", changes(&a.instance_id, &b.instance_id)),
        ("project", changes(&a.project, &b.project)),
        ("region", changes(&a.region, &b.region)),
        ("tier", changes(&a.tier, &b.tier)),
        ("location_id", changes(&a.location_id, &b.location_id)),
        (
            "alternative_location_id",
            changes(&a.alternative_location_id, &b.alternative_location_id),
        ),
        ("redis_version", changes(&a.redis_version, &b.redis_version)),
        (
            "authorized_network",
            network_changes(&a.authorized_network, &b.authorized_network, project),
        ),
        (
            "reserved_ip_range",
            changes(&a.reserved_ip_range, &b.reserved_ip_range),
        ),
        ("auth_enabled", changes(&a.auth_enabled, &b.auth_enabled)),
        (
            "transit_encryption_mode",
            changes(&a.transit_encryption_mode, &b.transit_encryption_mode),
        ),
        ("read_replicas_mode", disables),
    ])
}

/// Whether read replicas go from disabled to enabled.
pub fn enables_read_replicas(prior: &InstanceFields, planned: &InstanceFields) -> bool {
    prior.read_replicas_mode.as_ref_option().map(String::as_str) != Some(ENABLED)
        && planned
            .read_replicas_mode
            .as_ref_option()
            .map(String::as_str)
            == Some(ENABLED)
}

/// The update mask (the API's field names) of the in-place changes from `prior` to
/// `planned`, read replicas aside (they are an operation of their own).
pub fn update_mask(prior: &InstanceFields, planned: &InstanceFields) -> Vec<&'static str> {
    let mut mask = Vec::new();
    if changes(&prior.display_name, &planned.display_name) {
        mask.push("displayName");
    }
    if changes(&prior.memory_size_gb, &planned.memory_size_gb) {
        mask.push("memorySizeGb");
    }
    if changes(&prior.replica_count, &planned.replica_count) && planned.replica_count.is_value() {
        mask.push("replicaCount");
    }
    if changes(&prior.redis_configs, &planned.redis_configs) {
        mask.push("redisConfigs");
    }
    if changes(&prior.labels, &planned.labels) {
        mask.push("labels");
    }
    mask
}

/// The planned state of an in-place update (or of no change) and the attributes that
/// need a new instance. `config` tells which attributes the configuration sets.
pub fn update(
    prior: &InstanceState,
    mut proposed: InstanceState,
    config: &InstanceState,
) -> (InstanceState, Vec<AttributePath>) {
    let replace = replacing(&prior.fields, &proposed.fields);
    if !replace.is_empty() {
        return (proposed, replace);
    }
    let read_replicas = enables_read_replicas(&prior.fields, &proposed.fields);
    let changed = read_replicas || !update_mask(&prior.fields, &proposed.fields).is_empty();
    if changed {
        let f = &mut proposed.fields;
        unknown_after_change(f);
        if read_replicas {
            f.read_endpoint = Value::Unknown;
            f.read_endpoint_port = Value::Unknown;
            f.secondary_ip_range = Value::Unknown;
            if config.fields.replica_count.is_null() {
                f.replica_count = Value::Unknown;
            }
        }
    }
    (proposed, replace)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ready() -> InstanceState {
        let s = |v: &str| Value::Value(v.to_string());
        InstanceState {
            fields: InstanceFields {
                instance_id: s("c"),
                project: s("p"),
                region: s("local"),
                name: s("projects/p/locations/local/instances/c"),
                display_name: s(""),
                tier: s("STANDARD_HA"),
                memory_size_gb: Value::Value(1),
                replica_count: Value::Value(1),
                read_replicas_mode: s(DISABLED),
                location_id: s("local-a"),
                authorized_network: s("default"),
                reserved_ip_range: s("127.64.0.0/28"),
                redis_configs: Value::Value(BTreeMap::new()),
                labels: Value::Value(BTreeMap::new()),
                state: s("READY"),
                nodes: Value::Value(vec![]),
                etag: s("e1"),
                host: s("127.64.0.1"),
                ..Default::default()
            },
            timeouts: Value::Null,
        }
    }

    fn names(paths: &[AttributePath]) -> Vec<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_create_leaves_unset_and_computed_attributes_to_the_api() {
        let mut config = ready();
        config.fields = InstanceFields {
            instance_id: Value::Value("c".into()),
            tier: Value::Value("BASIC".into()),
            memory_size_gb: Value::Value(1),
            ..Default::default()
        };
        let planned = create(config, "p", "local");
        let f = &planned.fields;
        assert_eq!(f.project, Value::Value("p".into()));
        assert_eq!(
            f.name,
            Value::Value("projects/p/locations/local/instances/c".into())
        );
        assert_eq!(f.memory_size_gb, Value::Value(1));
        for unknown in [
            &f.host,
            &f.display_name,
            &f.location_id,
            &f.auth_string,
            &f.state,
        ] {
            assert!(unknown.is_unknown());
        }
        assert!(f.labels.is_unknown() && f.nodes.is_unknown() && f.port.is_unknown());
    }

    #[test]
    fn which_changes_replace_and_which_update_in_place() {
        let prior = ready();
        type Case<'a> = (
            &'a str,
            fn(&mut InstanceFields),
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            ("nothing", |_| {}, &[], &[]),
            (
                "size",
                |f| f.memory_size_gb = Value::Value(2),
                &[],
                &["memorySizeGb"],
            ),
            (
                "labels and name",
                |f| {
                    f.labels = Value::Value([("env".to_string(), "x".to_string())].into());
                    f.display_name = Value::Value("d".into());
                },
                &[],
                &["displayName", "labels"],
            ),
            (
                "tier",
                |f| f.tier = Value::Value("BASIC".into()),
                &["tier"],
                &[],
            ),
            (
                "network spelt in full",
                |f| f.authorized_network = Value::Value("projects/p/networks/default".into()),
                &[],
                &[],
            ),
            (
                "another network",
                |f| f.authorized_network = Value::Value("other".into()),
                &["authorized_network"],
                &[],
            ),
            (
                "zone",
                |f| f.location_id = Value::Value("local-b".into()),
                &["location_id"],
                &[],
            ),
            (
                "range",
                |f| f.reserved_ip_range = Value::Unknown,
                &["reserved_ip_range"],
                &[],
            ),
        ];
        for &(what, change, replace, mask) in cases {
            let mut proposed = prior.clone();
            change(&mut proposed.fields);
            let (planned, got) = update(&prior, proposed.clone(), &proposed);
            assert_eq!(names(&got), replace, "{what}");
            assert_eq!(update_mask(&prior.fields, &planned.fields), mask, "{what}");
            let in_place = replace.is_empty() && !mask.is_empty();
            assert_eq!(planned.fields.etag.is_unknown(), in_place, "{what}");
            assert_eq!(planned.fields.host, prior.fields.host, "{what}");
        }
    }

    #[test]
    fn read_replicas_are_enabled_in_place_and_disabling_replaces() {
        let prior = ready();
        let mut on = prior.clone();
        on.fields.read_replicas_mode = Value::Value(ENABLED.into());
        let mut config = on.clone();
        config.fields.replica_count = Value::Null;
        let (planned, replace) = update(&prior, on.clone(), &config);
        assert!(replace.is_empty());
        assert!(enables_read_replicas(&prior.fields, &planned.fields));
        assert!(planned.fields.read_endpoint.is_unknown());
        assert!(planned.fields.replica_count.is_unknown());
        let (_, replace) = update(&on, prior.clone(), &prior);
        assert_eq!(names(&replace), vec!["read_replicas_mode"]);
    }
}
