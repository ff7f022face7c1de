//! Validation rules of Memcached instance requests. Pure functions: each error is
//! INVALID_ARGUMENT naming the field and the rule it broke. Ids, display names and
//! labels follow the Redis instances' rules (`crate::instances::validate`).

use std::collections::BTreeMap;

use cacheplane_types::memcache_params::check_parameter;
use cacheplane_types::{MemcacheNodeConfig, MEMCACHE_1_6};

use crate::error::{ApiError, ApiResult};
use crate::memcache::MAX_NODES;

/// Engine versions offered.
pub const MEMCACHE_VERSIONS: &[&str] = &[MEMCACHE_1_6];
/// Most worker threads per node.
pub const MAX_CPU_COUNT: i64 = 32;
/// Least item memory per node, MB.
pub const MIN_MEMORY_MB: i64 = 1024;
/// Most item memory per node, MB.
pub const MAX_MEMORY_MB: i64 = 65536;

/// Checks `nodeCount`: 1 to 13 (the node addresses of one /28).
pub fn node_count(n: Option<i64>) -> ApiResult<i32> {
    let n = n.ok_or_else(|| ApiError::field("nodeCount", "is required: 1 to 13 nodes"))?;
    if !(1..=MAX_NODES).contains(&n) {
        return Err(ApiError::field(
            "nodeCount",
            format!(
                "{n} is out of range: an instance has 1 to {MAX_NODES} nodes (one /28 of its network holds its discovery endpoint and {MAX_NODES} node addresses)"
            ),
        ));
    }
    Ok(n as i32)
}

/// Checks `nodeConfig`: `cpuCount` 1-32, `memorySizeMb` 1024-65536.
pub fn node_config(c: Option<MemcacheNodeConfig>) -> ApiResult<(i32, i32)> {
    let c = c.ok_or_else(|| {
        ApiError::field(
            "nodeConfig",
            "is required: {\"cpuCount\": N, \"memorySizeMb\": M}",
        )
    })?;
    if !(1..=MAX_CPU_COUNT).contains(&c.cpu_count) {
        return Err(ApiError::field(
            "nodeConfig.cpuCount",
            format!("{} is out of range: 1 to {MAX_CPU_COUNT}", c.cpu_count),
        ));
    }
    if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&c.memory_size_mb) {
        return Err(ApiError::field(
            "nodeConfig.memorySizeMb",
            format!(
                "{} is out of range: each node has {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB",
                c.memory_size_mb
            ),
        ));
    }
    Ok((c.cpu_count as i32, c.memory_size_mb as i32))
}

/// Checks `memcacheVersion` (default `MEMCACHE_1_6`).
pub fn version(v: Option<&str>) -> ApiResult<String> {
    let v = v.filter(|s| !s.is_empty()).unwrap_or(MEMCACHE_1_6);
    if MEMCACHE_VERSIONS.contains(&v) {
        Ok(v.to_string())
    } else {
        Err(ApiError::field(
            "memcacheVersion",
            format!(
                "'{v}' is not offered; available: {}",
                MEMCACHE_VERSIONS.join(", ")
            ),
        ))
    }
}

/// Checks `zones` against the region's zones (no repeats); empty: every zone.
pub fn zones(zones: &[String], region: &str, region_zones: &[String]) -> ApiResult<Vec<String>> {
    if zones.is_empty() {
        return Ok(region_zones.to_vec());
    }
    let mut out: Vec<String> = Vec::new();
    for z in zones {
        if !region_zones.contains(z) {
            return Err(ApiError::field(
                "zones",
                format!(
                    "zone '{z}' is not in region '{region}' (its zones: {})",
                    region_zones.join(", ")
                ),
            ));
        }
        if out.contains(z) {
            return Err(ApiError::field(
                "zones",
                format!("zone '{z}' is named twice"),
            ));
        }
        out.push(z.clone());
    }
    Ok(out)
}

/// Checks parameters against the allow-list; `max-item-size` also against the node's
/// memory. The field named is `parameters.params.NAME`.
pub fn parameters(params: &BTreeMap<String, String>, memory_mb: i32) -> ApiResult<()> {
    for (name, value) in params {
        check_parameter(name, value, u32::try_from(memory_mb).ok())
            .map_err(|e| ApiError::field(format!("parameters.params.{name}"), e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_counts_and_sizes_are_bounded() {
        assert_eq!(node_count(Some(3)).unwrap(), 3);
        for bad in [None, Some(0), Some(14), Some(-1)] {
            let e = node_count(bad).unwrap_err().to_string();
            assert!(e.contains("nodeCount") || e.contains("required"), "{e}");
        }
        let cfg = |cpu, mb| {
            Some(MemcacheNodeConfig {
                cpu_count: cpu,
                memory_size_mb: mb,
            })
        };
        assert_eq!(node_config(cfg(1, 1024)).unwrap(), (1, 1024));
        assert!(node_config(cfg(0, 1024)).is_err());
        assert!(node_config(cfg(33, 1024)).is_err());
        assert!(node_config(cfg(1, 1023)).is_err());
        assert!(node_config(None).is_err());
    }

    #[test]
    fn zones_default_to_the_region_and_must_be_its_own() {
        let region = vec!["a".to_string(), "b".to_string()];
        assert_eq!(zones(&[], "r", &region).unwrap(), region);
        assert!(zones(&["c".into()], "r", &region).is_err());
        assert!(zones(&["a".into(), "a".into()], "r", &region).is_err());
    }

    #[test]
    fn parameters_are_named_when_refused() {
        let p = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(parameters(&p("idle-timeout", "10"), 1024).is_ok());
        assert!(parameters(&p("nope", "1"), 1024).is_err());
        assert!(parameters(&p("track-sizes", "maybe"), 1024).is_err());
    }
}
