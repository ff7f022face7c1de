//! Where a network's pool may lie (docs/networking.md#network-pools): inside a supernet
//! the operator configured, never on 127.0.0.0/16 (the host's own loopback services)
//! nor on a registered host's address, and, in the network modes where every network
//! shares one address space (loopback, host), overlapping no other network of any
//! project. Within a project pools never overlap in any mode (an exclusion constraint
//! holds that); across projects the check here runs under the pool-choice lock, so two
//! concurrent creates cannot both pass it.

use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;

use crate::config::{Config, NetworkMode};
use crate::db::networks as db;
use crate::error::{ApiError, ApiResult};

/// The loopback range no pool may touch: 127.0.0.1 and its neighbours serve the host
/// itself (the API, PostgreSQL, the agents).
pub fn reserved_loopback() -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(127, 0, 0, 0), 16).unwrap_or_default()
}

/// Whether two IPv4 networks share an address.
pub fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Why `pool` may never be used in any mode, if it may not: it touches 127.0.0.0/16 or
/// holds one of `hosts` (the registered hosts' addresses).
pub fn refused(pool: Ipv4Net, hosts: &[IpNet]) -> Option<String> {
    let lo = reserved_loopback();
    if overlap(pool, lo) {
        return Some(format!(
            "{pool} overlaps {lo}, which serves the hosts themselves"
        ));
    }
    hosts.iter().find_map(|h| match h {
        IpNet::V4(h) if pool.contains(&h.addr()) => Some(format!(
            "{pool} contains {}, the address of a registered host",
            h.addr()
        )),
        _ => None,
    })
}

/// What the pool rules depend on in the server's configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Where pools may lie: `--network-supernets` and `--default-network-supernet`.
    pub supernets: Vec<Ipv4Net>,
    /// `--network-mode`.
    pub mode: NetworkMode,
}

impl Rules {
    /// The rules of a configuration.
    pub fn of(config: &Config) -> Rules {
        let mut supernets = config.network_supernets.clone();
        if !supernets.contains(&config.default_network_supernet) {
            supernets.push(config.default_network_supernet);
        }
        Rules {
            supernets,
            mode: config.network_mode,
        }
    }
}

impl Default for Rules {
    /// The rules of the server's default flags (loopback mode, the default supernets),
    /// for tools that create networks without a server, such as the benchmarks.
    fn default() -> Rules {
        let net = |a, b, c, d, len| {
            Ipv4Net::new(std::net::Ipv4Addr::new(a, b, c, d), len).unwrap_or_default()
        };
        Rules {
            supernets: vec![
                net(127, 64, 0, 0, 10),
                net(10, 0, 0, 0, 8),
                net(172, 16, 0, 0, 12),
                net(192, 168, 0, 0, 16),
            ],
            mode: NetworkMode::Loopback,
        }
    }
}

/// Checks a new network's pool of `project` against every rule; call it in the create
/// transaction. In one-address-space modes it takes the pool-choice lock first, so the
/// check and the insert that follows are not raced by another project's create.
pub async fn check(
    conn: &mut PgConnection,
    rules: &Rules,
    project: &str,
    pool: Ipv4Net,
) -> ApiResult<()> {
    let hosts = db::host_addresses(&mut *conn).await?;
    if let Some(why) = refused(pool, &hosts) {
        return Err(ApiError::field("ipRange", why));
    }
    let allowed = &rules.supernets;
    if !allowed.iter().any(|s| s.contains(&pool)) {
        let list: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        return Err(ApiError::field(
            "ipRange",
            format!(
                "{pool} is outside the supernets pools may come from ({}; --network-supernets)",
                list.join(", ")
            ),
        ));
    }
    if !rules.mode.one_address_space() {
        // netns: other projects' pools live on bridges of their own; the project's own
        // pools are kept apart by the exclusion constraint.
        return Ok(());
    }
    db::lock_default_pool_choice(&mut *conn).await?;
    let clash = db::networks_overlapping(&mut *conn, pool).await?;
    match clash.iter().find(|n| n.project_id == project).or(clash.first()) {
        None => Ok(()),
        Some(n) if n.project_id == project => Err(ApiError::conflict(
            "ipRange",
            format!("{pool} overlaps the pool of network '{}' ({})", n.name, n.ip_range),
        )),
        Some(n) => Err(ApiError::conflict(
            "ipRange",
            format!(
                "{pool} overlaps the pool {} of another project's network: in {} mode every network shares one address space",
                n.ip_range,
                rules.mode.as_str()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_the_servers_defaults() {
        use clap::Parser;
        let config = Config::try_parse_from(["cacheplane-api"]).expect("default flags");
        let (ours, server) = (Rules::default(), Rules::of(&config));
        assert_eq!(ours.supernets, server.supernets);
        assert_eq!(ours.mode, server.mode);
    }

    #[test]
    fn loopback_16_and_host_addresses_are_refused() {
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let hosts = vec![IpNet::V4("10.1.2.3/32".parse().unwrap())];
        assert!(refused(net("127.0.0.0/8"), &hosts).is_some());
        assert!(refused(net("127.0.128.0/17"), &hosts).is_some());
        assert!(refused(net("127.1.0.0/16"), &hosts).is_none());
        assert!(refused(net("10.1.0.0/16"), &hosts)
            .unwrap()
            .contains("10.1.2.3"));
        assert!(refused(net("10.2.0.0/16"), &hosts).is_none());
    }
}
