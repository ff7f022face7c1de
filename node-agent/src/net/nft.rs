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

/// What the names of the read endpoint tables of the agent of `host` (its
/// [`super::Names::host`] tag) start with: the agent removes those it finds at start and
/// does not serve (left by a run that was killed).
pub fn read_endpoint_tables_of(host: &str) -> String {
    format!("{TABLE}_re_{host}_")
}

/// The table of the kernel read endpoint at `address:port`, served by the agent of
/// `host` (see [`read_endpoint_tables_of`]).
pub fn read_endpoint_table(host: &str, address: &str, port: u16) -> String {
    format!(
        "{}{}",
        read_endpoint_tables_of(host),
        super::hash8(&format!("{address}:{port}"))
    )
}

/// The kernel read endpoint at `address:port` in table `table`
/// (docs/networking.md#kernel-read-endpoint): each new connection, from another machine
/// or namespace (`prerouting`) or from a process of this one (`output`), is DNATed to
/// the next of `healthy` (round-robin); one that came from elsewhere is masqueraded, so
/// that the replica answers through here. Established connections keep their replica
/// (conntrack). With no healthy replica nothing is DNATed, and since nothing listens on
/// the endpoint the kernel refuses new connections.
pub fn read_endpoint_ruleset(
    table: &str,
    address: &str,
    port: u16,
    healthy: &[(String, u16)],
) -> String {
    let dnat = (!healthy.is_empty()).then(|| {
        let map: Vec<String> = healthy
            .iter()
            .enumerate()
            .map(|(i, (a, p))| format!("{i} : {a} . {p}"))
            .collect();
        format!(
            "\t\tip daddr {address} tcp dport {port} ct state new dnat ip addr . port to numgen inc mod {} map {{ {} }}\n",
            healthy.len(),
            map.join(", ")
        )
    });
    let dnat = dnat.unwrap_or_default();
    let mut out = format!(
        "table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {dnat}\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {dnat}\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n"
    );
    if !healthy.is_empty() {
        let addrs: Vec<&str> = healthy.iter().map(|(a, _)| a.as_str()).collect();
        out.push_str(&format!(
            "\t\tct status dnat fib saddr type != local ip daddr {{ {} }} masquerade\n",
            addrs.join(", ")
        ));
    }
    out.push_str("\t}\n}\n");
    out
}

/// Runs `nft -f -` with `text` in namespace `ns` (the agent's own for `None`).
async fn load(ns: Option<&str>, text: String) -> anyhow::Result<()> {
    ip::run("nft", &["-f", "-"], ns, Some(text.into_bytes()))
        .await
        .map(|_| ())
}

/// Applies [`read_endpoint_ruleset`] in namespace `ns`.
pub async fn apply_read_endpoint(
    ns: Option<&str>,
    table: &str,
    address: &str,
    port: u16,
    healthy: &[(String, u16)],
) -> anyhow::Result<()> {
    load(ns, read_endpoint_ruleset(table, address, port, healthy)).await
}

/// Removes table `table` (of the `ip` family) from namespace `ns`, if there.
pub async fn remove_table(ns: Option<&str>, table: &str) -> anyhow::Result<()> {
    load(ns, format!("table ip {table}\ndelete table ip {table}\n")).await
}

/// The `ip` tables of namespace `ns` whose names start with `prefix`.
pub async fn tables(ns: Option<&str>, prefix: &str) -> anyhow::Result<Vec<String>> {
    let out = ip::run("nft", &["list", "tables", "ip"], ns, None).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .filter(|t| t.starts_with(prefix))
        .map(str::to_string)
        .collect())
}

/// Applies [`ruleset`] in namespace `ns`.
pub async fn apply(ns: &str, pool: &str) -> anyhow::Result<()> {
    load(Some(ns), ruleset(pool)).await
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
        let table = read_endpoint_table("a1b2c3", "10.0.0.18", 6379);
        assert!(table.starts_with(&read_endpoint_tables_of("a1b2c3")));
        let r = read_endpoint_ruleset(&table, "10.0.0.18", 6379, &two);
        let dnat = "ip daddr 10.0.0.18 tcp dport 6379 ct state new dnat ip addr . port to numgen inc mod 2 map { 0 : 10.0.0.20 . 6379, 1 : 10.0.0.21 . 6379 }";
        assert_eq!(r.matches(dnat).count(), 2, "prerouting and output: {r}");
        assert!(
            r.contains("ct status dnat fib saddr type != local ip daddr { 10.0.0.20, 10.0.0.21 } masquerade"),
            "{r}"
        );
        let none = read_endpoint_ruleset(&table, "10.0.0.18", 6379, &[]);
        assert!(!none.contains("dnat ip"), "{none}");
        assert!(!none.contains("masquerade"), "{none}");
        assert_ne!(table, read_endpoint_table("a1b2c3", "10.0.0.18", 6380));
        assert_ne!(table, read_endpoint_table("d4e5f6", "10.0.0.18", 6379));
    }
}
