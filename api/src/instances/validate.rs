//! Validation rules for instance requests (the field rules of `docs/architecture.md`).
//! Pure functions: each error is INVALID_ARGUMENT naming the field and the rule it broke.

use std::collections::BTreeMap;

use cacheplane_types::redis_config::{check_config, ConfigError};
use cacheplane_types::{ReadReplicasMode, Tier, TierInfo};

use crate::error::{ApiError, ApiResult};

/// Engine versions the API offers; placement then needs a host that runs the version.
/// Only Redis 7.0 and newer: the locked-down engine needs their ACLs (command
/// subcommands in rules, `ACL DRYRUN`), see docs/architecture.md#locked-down-engine.
pub const REDIS_VERSIONS: &[&str] = &["REDIS_7_0", "REDIS_7_2"];
/// Versions once offered and now refused with a reason.
const RETIRED_REDIS_VERSIONS: &[&str] = &["REDIS_6_X"];
/// The version used when a create names none.
pub const DEFAULT_REDIS_VERSION: &str = "REDIS_7_0";
/// The policy set when a create names none (Memorystore's default).
pub use cacheplane_types::redis_config::DEFAULT_MAXMEMORY_POLICY;
/// `maxmemory-policy` values (seed 001).
pub use cacheplane_types::redis_config::MAXMEMORY_POLICIES;
/// Most labels on one instance.
pub const MAX_LABELS: usize = 64;

/// Checks an instance id: 1–40 lowercase letters, digits and hyphens, starting with a
/// letter and not ending with a hyphen.
pub fn instance_id(field: &str, id: &str) -> ApiResult<()> {
    if crate::ids::is_resource_id(id, 1, 40) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("'{id}' must be 1-40 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen"),
        ))
    }
}

/// Checks a display name.
pub fn display_name(name: &str) -> ApiResult<()> {
    if name.chars().count() > 80 {
        return Err(ApiError::field(
            "displayName",
            "must be at most 80 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "displayName",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a memory size against the tier's range.
pub fn memory_size(gb: i64, tier: &TierInfo) -> ApiResult<i32> {
    let (min, max) = (tier.min_memory_size_gb, tier.max_memory_size_gb);
    if gb < i64::from(min) || gb > i64::from(max) {
        return Err(ApiError::field(
            "memorySizeGb",
            format!(
                "must be a whole number of GB from {min} to {max} for tier {}, not {gb}",
                tier.tier.as_str()
            ),
        ));
    }
    Ok(gb as i32)
}

/// The replica count, defaulted and checked: BASIC 0; STANDARD_HA 1 without read
/// replicas, 1–5 with them (default 2).
pub fn replica_count(
    requested: Option<i64>,
    tier: &TierInfo,
    mode: ReadReplicasMode,
) -> ApiResult<i32> {
    let (min, max, default) = match (tier.tier, mode) {
        (Tier::Basic, _) => (0, 0, 0),
        (Tier::StandardHa, ReadReplicasMode::ReadReplicasDisabled) => (1, 1, 1),
        (Tier::StandardHa, ReadReplicasMode::ReadReplicasEnabled) => {
            (tier.min_replica_count.max(1), tier.max_replica_count, 2)
        }
    };
    let n = requested.unwrap_or(i64::from(default));
    if n < i64::from(min) || n > i64::from(max) {
        let rule = match (tier.tier, mode) {
            (Tier::Basic, _) => "must be 0 for tier BASIC".to_string(),
            (_, ReadReplicasMode::ReadReplicasDisabled) => {
                "must be 1 for STANDARD_HA without read replicas (enable readReplicasMode for 1-5)"
                    .to_string()
            }
            _ => format!("must be from {min} to {max} for STANDARD_HA with read replicas"),
        };
        return Err(ApiError::field("replicaCount", format!("{rule}, not {n}")));
    }
    Ok(n as i32)
}

/// Checks the read replicas mode against the tier.
pub fn read_replicas_mode(mode: ReadReplicasMode, tier: Tier) -> ApiResult<()> {
    if tier == Tier::Basic && mode == ReadReplicasMode::ReadReplicasEnabled {
        return Err(ApiError::field(
            "readReplicasMode",
            "read replicas need tier STANDARD_HA",
        ));
    }
    Ok(())
}

/// Checks the engine version.
pub fn redis_version(v: &str) -> ApiResult<()> {
    if REDIS_VERSIONS.contains(&v) {
        Ok(())
    } else if RETIRED_REDIS_VERSIONS.contains(&v) {
        Err(ApiError::field(
            "redisVersion",
            format!(
                "'{v}' is no longer offered: engines older than Redis 7.0 cannot be locked down; use one of {}",
                REDIS_VERSIONS.join(", ")
            ),
        ))
    } else {
        Err(ApiError::field(
            "redisVersion",
            format!("'{v}' is not one of {}", REDIS_VERSIONS.join(", ")),
        ))
    }
}

/// Checks engine settings against the allow-list shared with the agent
/// ([`cacheplane_types::redis_config`]): known keys only, each value exactly as Redis
/// accepts it. `memory_gb` bounds `maxmemory-gb`. The error names the field
/// (`redisConfigs.KEY`) and the rule.
pub fn redis_configs(configs: &BTreeMap<String, String>, memory_gb: i32) -> ApiResult<()> {
    for (key, value) in configs {
        let description = match check_config(key, value, Some(f64::from(memory_gb))) {
            Ok(()) => continue,
            Err(e @ ConfigError::UnknownKey) => format!("'{}' {e}", printable(key)),
            Err(ConfigError::BadValue(rule)) => {
                format!("'{}' is not valid: {rule}", printable(value))
            }
        };
        return Err(ApiError::field(
            format!("redisConfigs.{}", printable(key)),
            description,
        ));
    }
    Ok(())
}

/// `s` with control characters escaped and cut at 64 characters, to quote user input in
/// an error message.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Checks engine settings as [`redis_configs`] does, then sets `maxmemory-policy` to the
/// default when they name none.
pub fn redis_configs_with_defaults(
    mut configs: BTreeMap<String, String>,
    memory_gb: i32,
) -> ApiResult<BTreeMap<String, String>> {
    redis_configs(&configs, memory_gb)?;
    configs
        .entry("maxmemory-policy".into())
        .or_insert_with(|| DEFAULT_MAXMEMORY_POLICY.into());
    Ok(configs)
}

fn label_part_ok(s: &str, may_be_empty: bool) -> bool {
    (if may_be_empty {
        s.len() <= 63
    } else {
        (1..=63).contains(&s.len())
    }) && s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Checks labels: at most 64; keys 1–63 and values 0–63 lowercase letters, digits, `-`,
/// `_`; keys start with a letter.
pub fn labels(labels: &BTreeMap<String, String>) -> ApiResult<()> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::field(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (k, v) in labels {
        if !label_part_ok(k, false) || !k.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(ApiError::field(
                format!("labels.{k}"),
                "keys must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter",
            ));
        }
        if !label_part_ok(v, true) {
            return Err(ApiError::field(
                format!("labels.{k}"),
                "values must be at most 63 lowercase letters, digits, '-' or '_'",
            ));
        }
    }
    Ok(())
}

/// Checks the zones against the region's zones, and against each other.
pub fn zones(
    location: Option<&str>,
    alternative: Option<&str>,
    tier: Tier,
    region: &str,
    region_zones: &[String],
) -> ApiResult<()> {
    for (field, zone) in [
        ("locationId", location),
        ("alternativeLocationId", alternative),
    ] {
        if let Some(z) = zone {
            if !region_zones.iter().any(|rz| rz == z) {
                return Err(ApiError::field(
                    field,
                    format!(
                        "zone '{z}' is not in region '{region}' (its zones: {})",
                        region_zones.join(", ")
                    ),
                ));
            }
        }
    }
    if alternative.is_some() && tier == Tier::Basic {
        return Err(ApiError::field(
            "alternativeLocationId",
            "only STANDARD_HA instances have replicas to place in an alternative zone",
        ));
    }
    if location.is_some() && location == alternative {
        return Err(ApiError::field(
            "alternativeLocationId",
            "must differ from locationId",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(t: Tier) -> TierInfo {
        TierInfo {
            name: String::new(),
            tier: t,
            description: String::new(),
            min_memory_size_gb: 1,
            max_memory_size_gb: 300,
            min_replica_count: if t == Tier::Basic { 0 } else { 1 },
            max_replica_count: if t == Tier::Basic { 0 } else { 5 },
            automatic_failover: t == Tier::StandardHa,
        }
    }

    #[test]
    fn ids() {
        for ok in ["a", "my-cache", "c0-1", &"a".repeat(40)] {
            assert!(instance_id("instanceId", ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "A", "a-", "a_b", "a.b", &"a".repeat(41)] {
            assert!(instance_id("instanceId", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replicas_per_tier_and_mode() {
        use ReadReplicasMode::*;
        let ha = tier(Tier::StandardHa);
        let basic = tier(Tier::Basic);
        assert_eq!(
            replica_count(None, &basic, ReadReplicasDisabled).unwrap(),
            0
        );
        assert!(replica_count(Some(1), &basic, ReadReplicasDisabled).is_err());
        assert_eq!(replica_count(None, &ha, ReadReplicasDisabled).unwrap(), 1);
        assert!(replica_count(Some(2), &ha, ReadReplicasDisabled).is_err());
        assert_eq!(replica_count(None, &ha, ReadReplicasEnabled).unwrap(), 2);
        assert_eq!(replica_count(Some(5), &ha, ReadReplicasEnabled).unwrap(), 5);
        assert!(replica_count(Some(6), &ha, ReadReplicasEnabled).is_err());
        assert!(replica_count(Some(0), &ha, ReadReplicasEnabled).is_err());
    }

    #[test]
    fn memory_in_tier_range() {
        let t = tier(Tier::Basic);
        assert_eq!(memory_size(1, &t).unwrap(), 1);
        assert!(memory_size(0, &t).is_err());
        assert!(memory_size(301, &t).is_err());
        assert!(memory_size(-5, &t).is_err());
    }

    #[test]
    fn configs() {
        let c = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(redis_configs(&c("maxmemory-policy", "allkeys-lru"), 1).is_ok());
        let err = redis_configs(&c("maxmemory-policy", "most-lru"), 1).unwrap_err();
        assert!(err.to_string().contains("most-lru"));
        assert!(redis_configs(&c("save", "60 1"), 1).is_err());
        assert!(redis_configs(&c("activedefrag", "maybe"), 1).is_err());
        assert!(redis_configs(&c("lfu-log-factor", "-1"), 1).is_err());
        assert!(redis_configs(&c("maxmemory-gb", "0.5"), 1).is_ok());
        assert!(redis_configs(&c("maxmemory-gb", "2"), 1).is_err());
        assert!(redis_configs(&c("notify-keyspace-events", "Ex"), 1).is_ok());
        assert!(redis_configs(&c("notify-keyspace-events", "Q"), 1).is_err());
        for v in ["1e-10", "nan", "inf", "-1", "0", "0.05"] {
            let err = redis_configs(&c("maxmemory-gb", v), 1)
                .unwrap_err()
                .to_string();
            assert!(err.contains("redisConfigs.maxmemory-gb"), "{v}: {err}");
            assert!(err.contains("at least 0.1"), "{v}: {err}");
        }
        let err = redis_configs(&c("port", "6390"), 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("redisConfigs.port") && err.contains("not a supported setting"),
            "{err}"
        );
        assert!(redis_version("REDIS_6_X")
            .unwrap_err()
            .to_string()
            .contains("no longer offered"));
        assert!(redis_version("REDIS_7_0").is_ok());
    }

    #[test]
    fn zone_rules() {
        let zs = vec!["local-a".to_string(), "local-b".to_string()];
        assert!(zones(
            Some("local-a"),
            Some("local-b"),
            Tier::StandardHa,
            "local",
            &zs
        )
        .is_ok());
        assert!(zones(Some("mars-a"), None, Tier::StandardHa, "local", &zs).is_err());
        assert!(zones(
            Some("local-a"),
            Some("local-a"),
            Tier::StandardHa,
            "local",
            &zs
        )
        .is_err());
        assert!(zones(Some("local-a"), Some("local-b"), Tier::Basic, "local", &zs).is_err());
    }

    #[test]
    fn label_rules() {
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(labels(&l("env", "prod")).is_ok());
        assert!(labels(&l("env", "")).is_ok());
        assert!(labels(&l("Env", "prod")).is_err());
        assert!(labels(&l("env", "Prod")).is_err());
        assert!(labels(&l("", "x")).is_err());
    }
}
