//! The netns mode: for each network with nodes on this agent, a namespace whose `eth0`
//! is one end of a veth pair, the other end enslaved to the network's bridge in the root
//! namespace (one bridge per network per machine, shared by its agents); the node,
//! addresses on `eth0` with the pool's prefix length, the primary-endpoint and
//! read-endpoint addresses as `/32`s (so the kernel never picks a movable endpoint as
//! the source of a connection the namespace opens);
//! nftables admitting the pool only ([`super::nft`]). Each connector is a namespace of
//! its own on the same bridge with its one address. Everything is checked and created
//! when missing, so a restarted agent adopts what it left; what is no longer wanted is
//! deleted: this agent's node namespaces by their name prefix, connectors by the list it
//! keeps in `net-connectors.json`, bridges once no port is left on them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use cacheplane_types::ConnectorSpec;

use super::{dial, ip, nft, parse_cidr, Names, Placement, NS_IFACE};

use crate::store::write_atomic;

/// One namespace as it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NsWant {
    /// The network's pool, e.g. `10.128.0.0/16`.
    pool: String,
    prefix_len: u8,
    bridge: String,
    /// Each address and its prefix length: the pool's for the nodes' own addresses and
    /// a connector's, 32 for endpoints (see [`node_addresses`]).
    addresses: BTreeMap<Ipv4Addr, u8>,
    /// A node namespace (filtered, non-local binds allowed), not a connector's.
    node: bool,
}

/// The netns mode's bookkeeping.
pub struct NetnsState {
    names: Names,
    /// The connector namespaces this agent made (their names come from the API).
    connectors_file: PathBuf,
}

impl NetnsState {
    /// For an agent using `names`, keeping its list of connectors under `data_dir`.
    pub fn new(names: Names, data_dir: &Path) -> Self {
        NetnsState {
            names,
            connectors_file: data_dir.join("net-connectors.json"),
        }
    }

    /// Realises `nodes` and `connectors`, removes the rest; true when all went well.
    pub async fn sync(&mut self, nodes: &[Placement], connectors: &[ConnectorSpec]) -> bool {
        let (want, mut ok) = self.wanted(nodes, connectors);
        let mut made = self.load_connectors();
        let before = made.clone();
        made.extend(connectors.iter().map(|c| c.namespace.clone()));
        if made != before {
            // Recorded before it exists, so that a crash in between leaks nothing.
            ok &= self.save_connectors(&made);
        }
        for (ns, w) in &want {
            if let Err(e) = self.ensure(ns, w).await {
                tracing::warn!(namespace = %ns, error = %format!("{e:#}"), "cannot set up the network namespace; will retry");
                ok = false;
            }
        }
        // This agent's node namespaces no longer wanted.
        match ip::namespaces().await {
            Ok(all) => {
                let prefix = self.names.node_ns_prefix();
                for ns in all.iter().filter(|n| n.starts_with(&prefix)) {
                    if !want.contains_key(ns) {
                        ok &= self.remove(ns).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot list network namespaces");
                ok = false;
            }
        }
        // Connectors no longer wanted: deleting the namespace cuts every connection.
        let gone: Vec<String> = made
            .iter()
            .filter(|n| !want.contains_key(*n))
            .cloned()
            .collect();
        for ns in gone {
            if self.remove(&ns).await {
                tracing::info!(namespace = %ns, "connector removed");
                made.remove(&ns);
                ok &= self.save_connectors(&made);
            } else {
                ok = false;
            }
        }
        ok &= self.remove_empty_bridges().await;
        ok
    }

    /// The namespaces `nodes` and `connectors` call for; false when a spec could not be
    /// placed (logged).
    fn wanted(
        &self,
        nodes: &[Placement],
        connectors: &[ConnectorSpec],
    ) -> (BTreeMap<String, NsWant>, bool) {
        let mut want: BTreeMap<String, NsWant> = BTreeMap::new();
        let mut ok = true;
        for spec in nodes {
            let Some(n) = &spec.network else {
                tracing::warn!(node = %spec.what, "netns mode: the node's spec names no network");
                ok = false;
                continue;
            };
            let Some((_, len)) = parse_cidr(&n.ip_range) else {
                tracing::warn!(network = %n.name, pool = %n.ip_range, "netns mode: the network's pool is not an IPv4 CIDR");
                ok = false;
                continue;
            };
            want.entry(self.names.node_ns(&n.name))
                .or_insert_with(|| NsWant {
                    pool: n.ip_range.clone(),
                    prefix_len: len,
                    bridge: self.names.bridge(&n.name),
                    addresses: BTreeMap::new(),
                    node: true,
                })
                .addresses
                .extend(node_addresses(spec, len));
        }
        for c in connectors {
            let (Some((_, len)), Ok(addr)) = (
                parse_cidr(&c.network.ip_range),
                c.address.parse::<Ipv4Addr>(),
            ) else {
                tracing::warn!(connector = %c.name, "netns mode: the connector's pool or address is not IPv4");
                ok = false;
                continue;
            };
            if !valid_netns_name(&c.namespace) {
                tracing::warn!(connector = %c.name, namespace = %c.namespace, "netns mode: not a usable namespace name");
                ok = false;
                continue;
            }
            want.insert(
                c.namespace.clone(),
                NsWant {
                    pool: c.network.ip_range.clone(),
                    prefix_len: len,
                    bridge: self.names.bridge(&c.network.name),
                    addresses: BTreeMap::from([(addr, len)]),
                    node: false,
                },
            );
        }
        (want, ok)
    }

    /// Makes namespace `ns` as `w` says, step by step, each step a no-op when done.
    async fn ensure(&self, ns: &str, w: &NsWant) -> anyhow::Result<()> {
        ensure_bridge(&w.bridge).await?;
        let fresh = !dial::netns_path(ns).exists();
        ip::ensure_netns(ns).await?;
        if fresh {
            tracing::info!(namespace = %ns, bridge = %w.bridge, "network namespace created");
        }
        if w.node {
            // Engines bind their endpoint addresses before they hold them (the primary
            // endpoint arrives with a promotion); removing a node's address keeps the
            // others.
            dial::run_in_async(Some(ns), || {
                std::fs::write("/proc/sys/net/ipv4/ip_nonlocal_bind", "1")?;
                std::fs::write("/proc/sys/net/ipv4/conf/all/promote_secondaries", "1")?;
                std::fs::write("/proc/sys/net/ipv4/conf/default/promote_secondaries", "1")?;
                // The kernel read endpoint forwards (DNAT) out of the interface the
                // connection came in on: no redirects telling clients to go direct.
                std::fs::write("/proc/sys/net/ipv4/conf/all/send_redirects", "0")?;
                std::fs::write("/proc/sys/net/ipv4/conf/default/send_redirects", "0")?;
                std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            })
            .await?;
        }
        let veth = self.names.veth(ns);
        if !ip::link_exists(Some(ns), NS_IFACE).await {
            ip::delete_link(None, &veth).await?;
            ip::ip(
                None,
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", NS_IFACE, "netns", ns,
                ],
            )
            .await?;
            disable_ipv6(None, &veth).await;
        }
        ip::ip(
            None,
            &["link", "set", "dev", &veth, "master", &w.bridge, "up"],
        )
        .await?;
        ip::ip(Some(ns), &["link", "set", "dev", NS_IFACE, "up"]).await?;
        self.addresses(ns, w).await?;
        if w.node {
            nft::apply(ns, &w.pool).await?;
        }
        Ok(())
    }

    /// Adds the missing addresses (announcing each with a gratuitous ARP, so that the
    /// neighbours' caches follow a moved endpoint at once) and removes the others.
    async fn addresses(&self, ns: &str, w: &NsWant) -> anyhow::Result<()> {
        let have = ip::addresses(Some(ns), NS_IFACE).await?;
        for (a, len) in &have {
            if w.addresses.get(a) != Some(len) {
                let cidr = format!("{a}/{len}");
                ip::ip(Some(ns), &["addr", "del", &cidr, "dev", NS_IFACE]).await?;
                tracing::info!(namespace = %ns, address = %a, "address removed");
            }
        }
        for (a, len) in &w.addresses {
            if have.contains(&(*a, *len)) {
                continue;
            }
            let cidr = format!("{a}/{len}");
            ip::ip(Some(ns), &["addr", "add", &cidr, "dev", NS_IFACE]).await?;
            tracing::info!(namespace = %ns, address = %a, "address added");
            let mut arp = Command::new("arping");
            arp.args(["-U", "-c", "2", "-I", NS_IFACE, &a.to_string()]);
            dial::spawn_detached_in(Some(ns), arp);
        }
        Ok(())
    }

    /// Deletes namespace `ns` and its veth; true when done. The veth goes first: a
    /// process or socket inside keeps a namespace alive after its name is gone, but
    /// without the veth nothing in it reaches the network any more.
    async fn remove(&self, ns: &str) -> bool {
        let r = async {
            if dial::netns_path(ns).exists() {
                ip::delete_link(Some(ns), NS_IFACE).await?;
            }
            ip::delete_netns(ns).await?;
            ip::delete_link(None, &self.names.veth(ns)).await
        }
        .await;
        match r {
            Ok(()) => {
                tracing::info!(namespace = %ns, "network namespace deleted");
                true
            }
            Err(e) => {
                tracing::warn!(namespace = %ns, error = %format!("{e:#}"), "cannot delete the network namespace; will retry");
                false
            }
        }
    }

    /// Deletes the bridges of this prefix that have no port left (no agent of the
    /// machine has a namespace or connector on that network any more).
    async fn remove_empty_bridges(&self) -> bool {
        let out = match ip::ip(None, &["-o", "link", "show", "type", "bridge"]).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot list bridges");
                return false;
            }
        };
        let prefix = format!("{}b", self.names.prefix());
        let mut ok = true;
        for br in out
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default())
            .filter(|n| n.starts_with(&prefix) && n.len() == prefix.len() + 8)
        {
            if matches!(ip::bridge_ports(br).await, Ok(0)) {
                match ip::delete_link(None, br).await {
                    Ok(()) => tracing::info!(bridge = %br, "bridge deleted"),
                    Err(e) => {
                        tracing::debug!(bridge = %br, error = %format!("{e:#}"), "cannot delete bridge");
                        ok = false;
                    }
                }
            }
        }
        ok
    }

    fn load_connectors(&self) -> BTreeSet<String> {
        std::fs::read(&self.connectors_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_connectors(&self, made: &BTreeSet<String>) -> bool {
        let r = serde_json::to_vec(made)
            .map_err(anyhow::Error::from)
            .and_then(|b| write_atomic(&self.connectors_file, &b, 0o600));
        if let Err(e) = &r {
            tracing::warn!(error = %format!("{e:#}"), "cannot save the list of connectors");
        }
        r.is_ok()
    }
}

/// Creates bridge `br` unless it exists, up, with no address of the root namespace on
/// it (IPv6 off, so not even a link-local one).
async fn ensure_bridge(br: &str) -> anyhow::Result<()> {
    if !ip::link_exists(None, br).await {
        if let Err(e) = ip::ip(None, &["link", "add", "name", br, "type", "bridge"]).await {
            if !ip::link_exists(None, br).await {
                return Err(e);
            }
        }
        disable_ipv6(None, br).await;
        tracing::info!(bridge = %br, "bridge created");
    }
    ip::ip(None, &["link", "set", "dev", br, "up"]).await?;
    Ok(())
}

async fn disable_ipv6(ns: Option<&str>, dev: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
    let _ = dial::run_in_async(ns, move || std::fs::write(path, "1")).await;
}

/// A name `ip netns` accepts as a file name: 1-64 letters, digits, `-`, `_`, `.`, not
/// starting with a dot.
pub fn valid_netns_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The addresses of `place` in its namespace with their prefix lengths: its own
/// address with the pool's (`len`: the whole pool on-link, and the route's preferred
/// source), its endpoints as `/32`. An endpoint with the pool's length would become the
/// namespace's primary address when added first, hence the source of every connection
/// the engine and the agent open (a replica's link to a new primary); once the endpoint
/// moves to another namespace, those connections would hang until their timeouts.
fn node_addresses(place: &Placement, len: u8) -> BTreeMap<Ipv4Addr, u8> {
    place
        .movable
        .iter()
        .map(|a| (*a, 32))
        .chain(place.own.map(|a| (a, len)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheplane_types::{DiscoveryEndpointSpec, NodeRole, NodeSpec, ReadEndpointSpec};

    #[test]
    fn endpoints_are_host_addresses_and_the_node_has_the_pool() {
        let spec: NodeSpec = serde_json::from_value(serde_json::json!({
            "nodeId": "00000000-0000-0000-0000-000000000001",
            "instance": "projects/p/locations/r/instances/i",
            "engineVersion": "REDIS_7_0",
            "role": "PRIMARY",
            "address": "10.128.0.19",
            "port": 6379,
            "endpointAddress": "10.128.0.17",
            "maxmemoryBytes": 1048576,
            "redisConfigs": {},
        }))
        .expect("a node spec");
        let mut spec = spec;
        spec.read_endpoint = Some(ReadEndpointSpec {
            address: "10.128.0.18".into(),
            port: 6379,
            replicas: vec![],
        });
        let got = node_addresses(&Placement::of_node(&spec), 16);
        let want = BTreeMap::from([
            ("10.128.0.17".parse().unwrap(), 32),
            ("10.128.0.18".parse().unwrap(), 32),
            ("10.128.0.19".parse().unwrap(), 16),
        ]);
        assert_eq!(got, want);
        spec.role = NodeRole::Replica;
        let replica = node_addresses(&Placement::of_node(&spec), 16);
        assert_eq!(replica.len(), 1, "{replica:?}");
    }

    #[test]
    fn a_discovery_endpoint_is_a_host_address_and_a_memcached_node_has_the_pool() {
        let ep = DiscoveryEndpointSpec {
            instance: "projects/p/locations/r/memcacheInstances/m".into(),
            address: "10.128.0.33".into(),
            port: 11211,
            config_version: 1,
            nodes: vec![],
            network: None,
        };
        assert_eq!(
            node_addresses(&Placement::of_discovery(&ep), 16),
            BTreeMap::from([("10.128.0.33".parse().unwrap(), 32)])
        );
        let node: cacheplane_types::MemcacheNodeSpec = serde_json::from_value(serde_json::json!({
            "nodeId": "00000000-0000-0000-0000-000000000002",
            "instance": "projects/p/locations/r/memcacheInstances/m",
            "memcacheVersion": "MEMCACHE_1_6",
            "address": "10.128.0.34",
            "port": 11211,
            "memoryMb": 1024,
            "threads": 1,
            "maxConnections": 100,
        }))
        .expect("a memcached node spec");
        assert_eq!(
            node_addresses(&Placement::of_memcache(&node), 16),
            BTreeMap::from([("10.128.0.34".parse().unwrap(), 16)])
        );
    }

    #[test]
    fn namespace_names_are_file_names() {
        assert!(valid_netns_name("cp-conn-1"));
        assert!(!valid_netns_name("../etc"));
        assert!(!valid_netns_name(""));
        assert!(!valid_netns_name(".hidden"));
        assert!(!valid_netns_name("a/b"));
    }
}
