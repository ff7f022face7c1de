//! Node bookkeeping of Memcached instances: placing new nodes (zones spread evenly,
//! hosts by the shared scheduler), removing nodes on scale-down, and keeping the
//! discovery endpoint on a host of one of the nodes with the current node list. Every
//! change bumps the generation of each host it touches once per transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::hosts;
use crate::db::memcache::{self as db, NewMemcacheNode};
use crate::error::{ApiError, ApiResult};
use crate::instances::layout::offset;
use crate::instances::node_state::heartbeat_fresh;
use crate::memcache::{
    MemcacheNodeRow, MemcacheRow, DISCOVERY_OFFSET, FIRST_NODE_OFFSET, LAST_NODE_OFFSET,
};
use crate::scheduler::{self, Candidate};
use cacheplane_types::{
    DiscoveryEndpointSpec, DiscoveryNode, MemcacheNodeSpec, NetworkSpec, MEMCACHE_PORT,
};

/// Bytes in one MB of `memorySizeMb`.
pub const MIB: i64 = 1 << 20;

/// The hosts whose generation a transaction raised, with the new generation: each host
/// is bumped once, and every node it changes records that generation.
#[derive(Debug, Default)]
pub struct Touched {
    generations: BTreeMap<String, i64>,
}

impl Touched {
    /// The host's new generation, bumping it the first time it is asked for.
    pub async fn generation(&mut self, tx: &mut PgConnection, host: &str) -> ApiResult<i64> {
        if let Some(g) = self.generations.get(host) {
            return Ok(*g);
        }
        let g = hosts::bump_generation(tx, host).await?;
        self.generations.insert(host.to_string(), g);
        Ok(g)
    }

    /// Whether any host was touched.
    pub fn any(&self) -> bool {
        !self.generations.is_empty()
    }
}

/// The instance's zones in the order a new node tries them: fewest nodes first (ties in
/// the order of `zones`), so nodes stay spread evenly; a zone without room gives way to
/// the next.
pub fn zone_order<'a>(zones: &'a [String], used: &BTreeMap<String, usize>) -> Vec<&'a String> {
    let mut order: Vec<(usize, usize, &String)> = zones
        .iter()
        .enumerate()
        .map(|(i, z)| (used.get(z).copied().unwrap_or(0), i, z))
        .collect();
    order.sort();
    order.into_iter().map(|(_, _, z)| z).collect()
}

/// The nodes a scale-down removes: `count` of them, each from the zone with the most
/// nodes, the newest first.
pub fn pick_removals(nodes: &[&MemcacheNodeRow], count: usize) -> Vec<Uuid> {
    let mut left: Vec<&MemcacheNodeRow> = nodes.to_vec();
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &left {
            *per_zone.entry(n.zone_id.as_str()).or_default() += 1;
        }
        let Some(pos) = left
            .iter()
            .enumerate()
            .max_by_key(|(_, n)| (per_zone[n.zone_id.as_str()], n.ordinal))
            .map(|(i, _)| i)
        else {
            break;
        };
        out.push(left.remove(pos).id);
    }
    out
}

/// Places `count` new nodes of `m` (whose current nodes are `existing`, those being
/// removed included: they keep their addresses until they are gone) on `candidates`,
/// charging them. RESOURCE_EXHAUSTED names the zone without room.
pub async fn add(
    tx: &mut PgConnection,
    m: &MemcacheRow,
    existing: &[MemcacheNodeRow],
    count: usize,
    candidates: &mut [Candidate],
    touched: &mut Touched,
) -> ApiResult<()> {
    let range = m
        .range()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("instance {} has no range", m.id)))?;
    let taken: BTreeSet<u32> = existing
        .iter()
        .filter_map(|n| match n.address.addr() {
            std::net::IpAddr::V4(a) => Some(u32::from(a) - u32::from(range.network())),
            _ => None,
        })
        .collect();
    let mut free = (FIRST_NODE_OFFSET..=LAST_NODE_OFFSET).filter(|o| !taken.contains(o));
    let live: Vec<&MemcacheNodeRow> = existing.iter().filter(|n| !n.removing).collect();
    let mut used: BTreeMap<String, usize> = BTreeMap::new();
    for n in &live {
        *used.entry(n.zone_id.clone()).or_default() += 1;
    }
    let mut in_use: Vec<String> = live.iter().map(|n| n.host_id.clone()).collect();
    let first = existing.iter().map(|n| n.ordinal).max().unwrap_or(0) + 1;
    let bytes = i64::from(m.memory_size_mb) * MIB;
    for ordinal in (first..).take(count) {
        let mut placed = None;
        let mut first_error = None;
        for zone in zone_order(&m.zones, &used) {
            match scheduler::pick_host(candidates, zone, bytes, &m.memcache_version, &in_use) {
                Ok(host) => {
                    placed = Some((zone.clone(), host));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((zone, host)) = placed else {
            return Err(first_error.unwrap_or_else(|| {
                ApiError::ResourceExhausted("the instance has no zones".into())
            }));
        };
        *used.entry(zone.clone()).or_default() += 1;
        let off = free.next().ok_or_else(|| {
            ApiError::ResourceExhausted(format!(
                "range {range} has no free address for another node: nodes being removed still hold theirs"
            ))
        })?;
        let generation = touched.generation(tx, &host).await?;
        db::insert_node(
            tx,
            &NewMemcacheNode {
                id: Uuid::new_v4(),
                instance: m.id,
                ordinal,
                host: &host,
                zone: &zone,
                address: offset(range, off),
                memory_bytes: bytes,
                parameters: &m.parameters.0,
                parameters_id: &m.parameters_id,
                generation,
            },
        )
        .await?;
        in_use.push(host);
    }
    Ok(())
}

/// Marks `nodes` as being removed: they leave their hosts' configs.
pub async fn remove(
    tx: &mut PgConnection,
    all: &[MemcacheNodeRow],
    nodes: &[Uuid],
    touched: &mut Touched,
) -> ApiResult<()> {
    for n in all.iter().filter(|n| nodes.contains(&n.id) && !n.removing) {
        let generation = touched.generation(tx, &n.host_id).await?;
        db::mark_removing(tx, n.id, generation).await?;
    }
    Ok(())
}

/// The host that should serve the discovery endpoint: the current one while it holds a
/// node of the instance and heartbeats, else the host of the first node (by ordinal) on
/// a heartbeating host, else of the first node. `None` without nodes.
pub fn discovery_host(
    current: Option<&str>,
    nodes: &[MemcacheNodeRow],
    timeout: Duration,
) -> Option<String> {
    let now = Utc::now();
    let live: Vec<&MemcacheNodeRow> = nodes.iter().filter(|n| !n.removing).collect();
    let up = |n: &&&MemcacheNodeRow| heartbeat_fresh(n.host_last_heartbeat_at, now, timeout);
    if let Some(c) = current {
        if live.iter().filter(up).any(|n| n.host_id == c) {
            return Some(c.to_string());
        }
    }
    live.iter()
        .find(up)
        .or_else(|| live.first())
        .map(|n| n.host_id.clone())
}

/// Brings the discovery endpoint in step with the instance's nodes (read again): moved
/// to another host when its host no longer holds a node or is silent, and, when
/// `list_changed`, given the new node list with a higher config version. The hosts
/// concerned get a new generation.
pub async fn refresh_discovery(
    tx: &mut PgConnection,
    m: &MemcacheRow,
    list_changed: bool,
    timeout: Duration,
    touched: &mut Touched,
) -> ApiResult<()> {
    let nodes = db::nodes_of(&mut *tx, &[m.id]).await?;
    let current = m.discovery_host_id.as_deref();
    let next = discovery_host(current, &nodes, timeout);
    if !list_changed && next.as_deref() == current {
        return Ok(());
    }
    if let Some(old) = current.filter(|c| Some(*c) != next.as_deref()) {
        touched.generation(tx, old).await?;
    }
    let generation = match &next {
        Some(h) => Some(touched.generation(tx, h).await?),
        None => None,
    };
    db::set_discovery(tx, m.id, next.as_deref(), generation, list_changed).await
}

/// Connections (`-c`) every memcached node allows: memcached's default.
pub const MAX_CONNECTIONS: u32 = 1024;

/// The memcached nodes `host` must run, as its config carries them.
pub async fn specs_on_host(
    db: impl sqlx::PgExecutor<'_>,
    host: &str,
) -> ApiResult<Vec<MemcacheNodeSpec>> {
    Ok(db::specs_on_host(db, host)
        .await?
        .into_iter()
        .map(|r| MemcacheNodeSpec {
            node_id: r.id,
            instance: format!(
                "projects/{}/locations/{}/memcacheInstances/{}",
                r.project_id, r.region_id, r.name
            ),
            memcache_version: r.memcache_version,
            address: r.address.addr().to_string(),
            port: MEMCACHE_PORT,
            memory_mb: u32::try_from(r.memory_size_mb).unwrap_or(1024),
            threads: u32::try_from(r.cpu_count).unwrap_or(1),
            max_connections: MAX_CONNECTIONS,
            parameters: r.parameters.0,
            network: Some(NetworkSpec {
                name: r.network_name,
                ip_range: r.network_ip_range.to_string(),
            }),
        })
        .collect())
}

/// The discovery endpoints `host` serves, with each instance's node list.
pub async fn discovery_on_host(
    db: impl sqlx::PgExecutor<'_>,
    host: &str,
) -> ApiResult<Vec<DiscoveryEndpointSpec>> {
    Ok(db::discovery_on_host(db, host)
        .await?
        .into_iter()
        .filter_map(|r| {
            let ipnet::IpNet::V4(range) = r.range? else {
                return None;
            };
            Some(DiscoveryEndpointSpec {
                instance: format!(
                    "projects/{}/locations/{}/memcacheInstances/{}",
                    r.project_id, r.region_id, r.name
                ),
                address: offset(range, DISCOVERY_OFFSET).to_string(),
                port: MEMCACHE_PORT,
                config_version: r.config_version,
                nodes: r
                    .node_addresses
                    .iter()
                    .map(|a| DiscoveryNode {
                        host: a.addr().to_string(),
                        ip: a.addr().to_string(),
                        port: MEMCACHE_PORT,
                    })
                    .collect(),
                network: Some(NetworkSpec {
                    name: r.network_name,
                    ip_range: r.network_ip_range.to_string(),
                }),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_spread_evenly_over_the_zones() {
        let zones: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let used = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(z, n)| (z.to_string(), *n)).collect()
        };
        assert_eq!(zone_order(&zones, &used(&[])), ["a", "b", "c"]);
        assert_eq!(zone_order(&zones, &used(&[("a", 1)])), ["b", "c", "a"]);
        assert_eq!(
            zone_order(&zones, &used(&[("a", 2), ("b", 1)])),
            ["c", "b", "a"]
        );
    }
}
