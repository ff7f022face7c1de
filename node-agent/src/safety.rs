//! Whether a new host config looks safe to apply. A config that would stop most of the
//! host's caches at once, or whose generation went back, is more likely a mistake (a
//! database restored from an old backup, an agent pointed at the wrong API, a bug) than
//! an intent: stopping an engine empties a cache for good. Such a config is refused,
//! logged and reported, and the agent keeps running what it runs, unless it was started
//! with `--accept-config-drops`. Redis and memcached nodes count alike. See
//! docs/architecture.md#node-agent.

use std::collections::BTreeSet;

use cacheplane_types::HostConfig;
use uuid::Uuid;

/// Hosts running fewer nodes than this may lose them all in one config: deleting the
/// only instance (or two) of a small host is ordinary work.
pub const GUARD_FROM_NODES: usize = 3;

/// What to do with a new config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply it.
    Apply,
    /// Do not apply it, for this reason.
    Refuse(String),
}

/// The decision for config `next` when the agent holds `held` (`None`: none yet, from
/// disk or the API). With `accept_drops` everything is applied.
pub fn judge(held: Option<&HostConfig>, next: &HostConfig, accept_drops: bool) -> Verdict {
    let Some(held) = held else {
        return Verdict::Apply;
    };
    if accept_drops {
        return Verdict::Apply;
    }
    if next.generation < held.generation {
        return Verdict::Refuse(format!(
            "its generation went back from {} to {}",
            held.generation, next.generation
        ));
    }
    let kept = node_ids(next);
    let held_ids = node_ids(held);
    let running = held_ids.len();
    let dropped = held_ids.difference(&kept).count();
    if running >= GUARD_FROM_NODES && (dropped == running || dropped * 2 > running) {
        return Verdict::Refuse(format!(
            "it would stop {dropped} of the {running} nodes this host runs"
        ));
    }
    Verdict::Apply
}

/// Every node of `config`, Redis and memcached alike: stopping either empties a cache.
fn node_ids(config: &HostConfig) -> BTreeSet<Uuid> {
    let redis = config.nodes.iter().map(|n| n.node_id);
    let memcached = config.memcache_nodes.iter().map(|n| n.node_id);
    redis.chain(memcached).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cacheplane_types::{NodeRole, NodeSpec};

    use super::*;

    fn node(n: u128) -> NodeSpec {
        NodeSpec {
            network: None,
            switchover: None,
            node_id: Uuid::from_u128(n),
            instance: format!("projects/p/locations/local/instances/c{n}"),
            engine_version: "REDIS_7_0".into(),
            role: NodeRole::Primary,
            address: format!("127.64.0.{n}"),
            port: 6379,
            endpoint_address: None,
            primary_address: None,
            maxmemory_bytes: 1 << 30,
            redis_configs: BTreeMap::new(),
            read_endpoint: None,
            restart_in_place: true,
            auth_string: None,
            admin_secret: None,
            write_fence: None,
            tls: None,
        }
    }

    fn config(generation: i64, nodes: &[u128]) -> HostConfig {
        HostConfig {
            connectors: Vec::new(),
            host: "hosts/h".into(),
            generation,
            nodes: nodes.iter().map(|n| node(*n)).collect(),
            memcache_nodes: Vec::new(),
            discovery_endpoints: Vec::new(),
        }
    }

    fn refused(v: Verdict) -> String {
        match v {
            Verdict::Refuse(why) => why,
            Verdict::Apply => panic!("applied"),
        }
    }

    #[test]
    fn the_first_config_and_ordinary_changes_apply() {
        assert_eq!(judge(None, &config(1, &[]), false), Verdict::Apply);
        let four = config(5, &[1, 2, 3, 4]);
        assert_eq!(
            judge(Some(&four), &config(6, &[1, 2, 3, 4, 5]), false),
            Verdict::Apply
        );
        assert_eq!(
            judge(Some(&four), &config(6, &[1, 2, 3]), false),
            Verdict::Apply
        );
        assert_eq!(
            judge(Some(&four), &config(7, &[1, 2]), false),
            Verdict::Apply,
            "half"
        );
        assert_eq!(
            judge(Some(&four), &config(5, &[1, 2, 3, 4]), false),
            Verdict::Apply,
            "same"
        );
    }

    #[test]
    fn small_hosts_may_lose_every_node() {
        let two = config(3, &[1, 2]);
        assert_eq!(judge(Some(&two), &config(4, &[]), false), Verdict::Apply);
        assert_eq!(
            judge(Some(&config(3, &[1])), &config(4, &[]), false),
            Verdict::Apply
        );
    }

    #[test]
    fn dropping_all_or_most_nodes_is_refused() {
        let four = config(5, &[1, 2, 3, 4]);
        let why = refused(judge(Some(&four), &config(6, &[]), false));
        assert!(why.contains("4 of the 4"), "{why}");
        let why = refused(judge(Some(&four), &config(6, &[4, 9]), false));
        assert!(why.contains("3 of the 4"), "{why}");
        let three = config(5, &[1, 2, 3]);
        assert!(matches!(
            judge(Some(&three), &config(6, &[3]), false),
            Verdict::Refuse(_)
        ));
    }

    fn memcached(n: u128) -> cacheplane_types::MemcacheNodeSpec {
        cacheplane_types::MemcacheNodeSpec {
            node_id: Uuid::from_u128(1000 + n),
            instance: "projects/p/locations/local/memcacheInstances/m".into(),
            memcache_version: "MEMCACHE_1_6".into(),
            address: format!("127.65.0.{n}"),
            port: 11211,
            memory_mb: 1024,
            threads: 1,
            max_connections: 1024,
            parameters: BTreeMap::new(),
            network: None,
        }
    }

    #[test]
    fn memcached_nodes_count_like_redis_nodes() {
        let mut held = config(5, &[1]);
        held.memcache_nodes = (1..=3).map(memcached).collect();
        let mut next = config(6, &[1]);
        let why = refused(judge(Some(&held), &next, false));
        assert!(why.contains("3 of the 4"), "{why}");
        next.memcache_nodes = vec![memcached(1), memcached(2)];
        assert_eq!(judge(Some(&held), &next, false), Verdict::Apply);
    }

    #[test]
    fn a_generation_going_back_is_refused() {
        let held = config(9, &[1]);
        let why = refused(judge(Some(&held), &config(2, &[1]), false));
        assert!(why.contains("from 9 to 2"), "{why}");
    }

    #[test]
    fn the_flag_accepts_everything() {
        let four = config(5, &[1, 2, 3, 4]);
        assert_eq!(judge(Some(&four), &config(1, &[]), true), Verdict::Apply);
    }
}
