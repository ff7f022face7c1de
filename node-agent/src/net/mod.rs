//! Where node addresses live (docs/networking.md#network-modes):
//!
//! - `loopback`: nothing to do; every 127/8 address is on `lo` already.
//! - `netns` ([`netns`]): one namespace per network on this agent, joined by a veth to
//!   the network's bridge in the root namespace (shared by the agents of the machine);
//!   engines run inside it; connectors are namespaces of their own on the same bridge;
//!   nftables ([`nft`]) admits new connections from the network's pool only.
//! - `host` ([`host`]): node and endpoint addresses are /32 secondary addresses on a
//!   named interface.
//!
//! [`Net`] answers where a node's engine runs and how the agent dials it ([`dial`]);
//! [`Realiser`] makes the kernel match the nodes and connectors of the host config,
//! idempotently, adopting what a previous run of the agent left.

pub mod dial;
pub mod host;
pub mod ip;
pub mod netns;
pub mod nft;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::{
    ConnectorSpec, DiscoveryEndpointSpec, MemcacheNodeSpec, NetworkSpec, NodeRole, NodeSpec,
};
use tokio::time::Instant;

use crate::config::NetworkMode;
use dial::Dialer;

/// The kernel is checked against the desired state at least this often, even when the
/// config did not change (someone deleted a namespace by hand).
const VERIFY_EVERY: Duration = Duration::from_secs(30);

/// How this agent places addresses: the mode and the names it derives.
#[derive(Debug, Clone)]
pub struct Net {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    mode: NetworkMode,
    names: Names,
    host_interface: Option<String>,
}

impl Net {
    /// Loopback mode: nothing to place, every dial from the agent's namespace.
    pub fn loopback() -> Self {
        Net::new(NetworkMode::Loopback, "cp", "local", None)
    }

    /// `mode`, names with `prefix` (see [`Names`]) for host `host_id`.
    pub fn new(
        mode: NetworkMode,
        prefix: &str,
        host_id: &str,
        host_interface: Option<String>,
    ) -> Self {
        Net {
            inner: Arc::new(Inner {
                mode,
                names: Names::new(prefix, host_id),
                host_interface,
            }),
        }
    }

    /// The mode.
    pub fn mode(&self) -> NetworkMode {
        self.inner.mode
    }

    /// The names this agent uses.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// The namespace `spec`'s engine runs in: its network's, in netns mode; `None` (the
    /// agent's own) otherwise, or when the spec names no network.
    pub fn netns_of(&self, spec: &NodeSpec) -> Option<String> {
        self.netns_for(spec.network.as_ref())
    }

    /// The namespace of whatever lives in `network` (a memcached node, a discovery
    /// endpoint): the network's, in netns mode; `None` (the agent's own) otherwise.
    pub fn netns_for(&self, network: Option<&NetworkSpec>) -> Option<String> {
        match (self.inner.mode, network) {
            (NetworkMode::Netns, Some(n)) => Some(self.inner.names.node_ns(&n.name)),
            _ => None,
        }
    }

    /// Dials and listens in the namespace of `network` ([`Net::netns_for`]).
    pub fn dialer_for(&self, network: Option<&NetworkSpec>) -> Dialer {
        self.netns_for(network)
            .map(Dialer::in_netns)
            .unwrap_or_default()
    }

    /// How the agent dials the engines `spec`'s node talks to (its primary, the replicas
    /// behind its read endpoint): from the node's namespace.
    pub fn dialer(&self, spec: &NodeSpec) -> Dialer {
        self.netns_of(spec)
            .map(Dialer::in_netns)
            .unwrap_or_default()
    }
}

/// Names of the kernel objects, from a short prefix (`--netns-prefix`) so that
/// concurrent test runs never share them. Interface names must fit in 15 bytes: they end
/// with 8 hex digits of a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
    host: String,
}

impl Names {
    /// Names for `host_id`'s agent.
    pub fn new(prefix: &str, host_id: &str) -> Self {
        Names {
            prefix: prefix.to_string(),
            host: hash8(host_id)[..6].to_string(),
        }
    }

    /// What names this agent's objects that live beside other agents' in one
    /// namespace (its kernel read endpoints' tables, [`nft::read_endpoint_table`]).
    pub fn tag(&self) -> String {
        format!("{}{}", self.prefix, self.host)
    }

    /// The bridge of `network` (shared by every agent of the machine).
    pub fn bridge(&self, network: &str) -> String {
        format!("{}b{}", self.prefix, hash8(network))
    }

    /// This agent's namespace for `network`.
    pub fn node_ns(&self, network: &str) -> String {
        format!("{}{}", self.node_ns_prefix(), hash8(network))
    }

    /// What every namespace of this agent's nodes starts with.
    pub fn node_ns_prefix(&self) -> String {
        format!("{}n-{}-", self.prefix, self.host)
    }

    /// The root-namespace end of the veth of namespace `ns` (node or connector).
    pub fn veth(&self, ns: &str) -> String {
        format!("{}v{}", self.prefix, hash8(ns))
    }

    /// What every name given by this prefix starts with (tests clean up by it).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The interface inside every namespace the agent makes.
pub const NS_IFACE: &str = "eth0";

/// 8 hex digits of FNV-1a of `s`: stable across builds and machines.
pub fn hash8(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", (h ^ (h >> 32)) as u32)
}

/// `10.128.0.0/16` as (address, prefix length).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let len: u8 = l.parse().ok().filter(|l| *l <= 32)?;
    Some((a.parse().ok()?, len))
}

/// The addresses a node holds while it runs `spec`: its own, and for a primary its
/// primary endpoint and read endpoint.
pub fn addresses_of(spec: &NodeSpec) -> BTreeSet<Ipv4Addr> {
    Placement::of_node(spec).addresses()
}

/// What one engine or listener of the host config needs from the network: where it
/// lives and which addresses it holds there, whatever the engine (a Redis node, a
/// memcached node, a Memcached discovery endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// What it is, for logs (a node id, an instance name).
    pub what: String,
    /// Its network (netns and host modes).
    pub network: Option<NetworkSpec>,
    /// Its own address, which it keeps while it lives (in netns mode with the pool's
    /// prefix length, so that it is the source of what the namespace dials).
    pub own: Option<Ipv4Addr>,
    /// Addresses that may move to another host (endpoints): held as `/32`s.
    pub movable: BTreeSet<Ipv4Addr>,
}

impl Placement {
    /// A Redis node: its own address; a primary also its primary endpoint and read
    /// endpoint.
    pub fn of_node(spec: &NodeSpec) -> Self {
        let mut movable = BTreeSet::new();
        if spec.role == NodeRole::Primary {
            let endpoints = [
                spec.endpoint_address.as_deref(),
                spec.read_endpoint.as_ref().map(|r| r.address.as_str()),
            ];
            movable.extend(
                endpoints
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.parse::<Ipv4Addr>().ok()),
            );
        }
        let own = spec.address.parse().ok();
        if let Some(own) = own {
            movable.remove(&own);
        }
        Placement {
            what: spec.node_id.to_string(),
            network: spec.network.clone(),
            own,
            movable,
        }
    }

    /// A memcached node: its own address.
    pub fn of_memcache(spec: &MemcacheNodeSpec) -> Self {
        Placement {
            what: spec.node_id.to_string(),
            network: spec.network.clone(),
            own: spec.address.parse().ok(),
            movable: BTreeSet::new(),
        }
    }

    /// A Memcached discovery endpoint: its address, which moves with the endpoint.
    pub fn of_discovery(spec: &DiscoveryEndpointSpec) -> Self {
        Placement {
            what: spec.instance.clone(),
            network: spec.network.clone(),
            own: None,
            movable: spec.address.parse().into_iter().collect(),
        }
    }

    /// Every address it holds.
    pub fn addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.own
            .into_iter()
            .chain(self.movable.iter().copied())
            .collect()
    }
}

/// Makes the kernel match the host config (nothing in loopback mode).
pub struct Realiser {
    net: Net,
    netns: Option<netns::NetnsState>,
    host: Option<host::HostState>,
    /// What was last realised, and when the kernel was last checked.
    last: Option<(String, Instant)>,
}

impl Realiser {
    /// For `net`, keeping its state under `data_dir`.
    pub fn new(net: Net, data_dir: &Path) -> Self {
        let netns = (net.mode() == NetworkMode::Netns)
            .then(|| netns::NetnsState::new(net.names().clone(), data_dir));
        let host = match (net.mode(), &net.inner.host_interface) {
            (NetworkMode::Host, Some(i)) => Some(host::HostState::new(i.clone(), data_dir)),
            _ => None,
        };
        Realiser {
            net,
            netns,
            host,
            last: None,
        }
    }

    /// The mode and names.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Realises `nodes` (every engine or listener that runs or will run: desired and
    /// still applied) and `connectors`; removes what is no longer wanted. Cheap when
    /// nothing changed since the last call. Failures are logged and retried on the next
    /// call.
    pub async fn sync(&mut self, nodes: &[Placement], connectors: &[ConnectorSpec]) {
        if self.net.mode() == NetworkMode::Loopback {
            return;
        }
        let key = fingerprint(nodes, connectors);
        if let Some((last, at)) = &self.last {
            if *last == key && at.elapsed() < VERIFY_EVERY {
                return;
            }
        }
        let ok = if let Some(s) = self.netns.as_mut() {
            s.sync(nodes, connectors).await
        } else if let Some(s) = self.host.as_mut() {
            s.sync(nodes).await
        } else {
            false
        };
        self.last = ok.then(|| (key, Instant::now()));
    }
}

/// What [`Realiser::sync`] depends on, to skip a call that would change nothing.
fn fingerprint(nodes: &[Placement], connectors: &[ConnectorSpec]) -> String {
    let mut parts: Vec<String> = nodes
        .iter()
        .map(|p| {
            format!(
                "{:?}|{:?}|{:?}",
                p.network.as_ref().map(|n| (&n.name, &n.ip_range)),
                p.own,
                p.movable
            )
        })
        .collect();
    parts.sort();
    parts.dedup();
    for c in connectors {
        parts.push(format!("{c:?}"));
    }
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_in_an_interface_name_and_differ_by_prefix_host_and_network() {
        let a = Names::new("cptest", "host-a");
        let b = Names::new("cptest", "host-b");
        let net = "projects/p/networks/default";
        assert!(a.bridge(net).len() <= 15, "{}", a.bridge(net));
        assert!(a.veth(&a.node_ns(net)).len() <= 15);
        assert_eq!(
            a.bridge(net),
            b.bridge(net),
            "one bridge per network per machine"
        );
        assert_ne!(a.node_ns(net), b.node_ns(net), "one namespace per agent");
        assert!(a.node_ns(net).starts_with(&a.node_ns_prefix()));
        assert_ne!(
            a.bridge(net),
            Names::new("cp", "host-a").bridge(net),
            "another prefix, other names"
        );
        assert_ne!(a.bridge(net), a.bridge("projects/q/networks/default"));
        assert_eq!(hash8("x"), hash8("x"));
        assert_eq!(hash8("x").len(), 8);
    }

    #[test]
    fn cidrs_parse() {
        assert_eq!(
            parse_cidr("10.128.0.0/16"),
            Some((Ipv4Addr::new(10, 128, 0, 0), 16))
        );
        assert_eq!(parse_cidr("10.128.0.0/33"), None);
        assert_eq!(parse_cidr("10.128.0.0"), None);
        assert_eq!(parse_cidr("x/8"), None);
    }
}
