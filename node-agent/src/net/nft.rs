//! The packet filter of a node namespace (docs/networking.md#firewall-rules): an `inet`
//! table that accepts replies to established connections, loopback, and new
//! connections from the network's own pool (its nodes and its connectors, whose /28 is
//! in the pool), and drops everything else. Applied with `nft -f -`, which replaces the
//! table in one transaction: running it again changes nothing.

use super::ip;

/// The table the agent owns in each node namespace.
pub const TABLE: &str = "cacheplane";

/// The ruleset of a namespace of the network whose pool is `pool` (e.g.
/// `10.128.0.0/16`). The first two lines make sure the table exists so that `delete`
/// never fails; the whole file is one transaction.
pub fn ruleset(pool: &str) -> String {
    format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n\
         \t\tiifname \"lo\" accept\n\
         \t\tip saddr {pool} accept\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tct state established,related accept\n\
         \t\tct status dnat ip saddr {pool} accept\n\
         \t}}\n\
         }}\n"
    )
}

/// The table of the kernel read endpoint at `address:port`, in its primary's namespace.
pub fn read_endpoint_table(address: &str, port: u16) -> String {
    format!("{TABLE}_re_{}", super::hash8(&format!("{address}:{port}")))
}

/// The kernel read endpoint at `address:port` (docs/networking.md#kernel-read-endpoint):
/// each new connection is DNATed to the next of `healthy` (round-robin) and masqueraded,
/// so that the replica answers through this namespace. Established connections keep
/// their replica (conntrack). With no healthy replica nothing is DNATed, and since
/// nothing listens on the endpoint the kernel refuses new connections.
pub fn read_endpoint_ruleset(address: &str, port: u16, healthy: &[(String, u16)]) -> String {
    let table = read_endpoint_table(address, port);
    let mut out = format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n"
    );
    if !healthy.is_empty() {
        let map: Vec<String> = healthy
            .iter()
            .enumerate()
            .map(|(i, (a, p))| format!("{i} : {a} . {p}"))
            .collect();
        out.push_str(&format!(
            "\t\tip daddr {address} tcp dport {port} ct state new dnat ip addr . port to numgen inc mod {} map {{ {} }}\n",
            healthy.len(),
            map.join(", ")
        ));
    }
    out.push_str(
        "\t}\n\
         \tchain postrouting {\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n",
    );
    if !healthy.is_empty() {
        let addrs: Vec<&str> = healthy.iter().map(|(a, _)| a.as_str()).collect();
        out.push_str(&format!(
            "\t\tct status dnat ip daddr {{ {} }} masquerade\n",
            addrs.join(", ")
        ));
    }
    out.push_str("\t}\n}\n");
    out
}

/// Runs `nft -f -` with `text` in namespace `ns`.
async fn load(ns: &str, text: String) -> anyhow::Result<()> {
    ip::run("nft", &["-f", "-"], Some(ns), Some(text.into_bytes()))
        .await
        .map(|_| ())
}

/// Applies [`read_endpoint_ruleset`] in namespace `ns`.
pub async fn apply_read_endpoint(
    ns: &str,
    address: &str,
    port: u16,
    healthy: &[(String, u16)],
) -> anyhow::Result<()> {
    load(ns, read_endpoint_ruleset(address, port, healthy)).await
}

/// Removes the kernel read endpoint at `address:port` from namespace `ns`.
pub async fn remove_read_endpoint(ns: &str, address: &str, port: u16) -> anyhow::Result<()> {
    let table = read_endpoint_table(address, port);
    load(ns, format!("table ip {table}\ndelete table ip {table}\n")).await
}

/// Applies [`ruleset`] in namespace `ns`.
pub async fn apply(ns: &str, pool: &str) -> anyhow::Result<()> {
    load(ns, ruleset(pool)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_admits_the_pool_only() {
        let r = ruleset("10.128.0.0/16");
        assert!(r.contains("policy drop;"), "{r}");
        assert!(r.contains("ip saddr 10.128.0.0/16 accept"), "{r}");
        assert!(r.starts_with("table inet cacheplane\ndelete table inet cacheplane\n"));
        assert!(
            r.contains("ct status dnat ip saddr 10.128.0.0/16 accept"),
            "{r}"
        );
    }

    #[test]
    fn the_read_endpoint_spreads_new_connections_over_the_healthy_replicas() {
        let two = [
            ("10.0.0.20".to_string(), 6379),
            ("10.0.0.21".to_string(), 6379),
        ];
        let r = read_endpoint_ruleset("10.0.0.18", 6379, &two);
        assert!(
            r.contains("ip daddr 10.0.0.18 tcp dport 6379 ct state new dnat ip addr . port to numgen inc mod 2 map { 0 : 10.0.0.20 . 6379, 1 : 10.0.0.21 . 6379 }"),
            "{r}"
        );
        assert!(
            r.contains("ct status dnat ip daddr { 10.0.0.20, 10.0.0.21 } masquerade"),
            "{r}"
        );
        let none = read_endpoint_ruleset("10.0.0.18", 6379, &[]);
        assert!(!none.contains("dnat ip"), "{none}");
        assert!(!none.contains("masquerade"), "{none}");
        assert_ne!(
            read_endpoint_table("10.0.0.18", 6379),
            read_endpoint_table("10.0.0.18", 6380)
        );
    }
}
