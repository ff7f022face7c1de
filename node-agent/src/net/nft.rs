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
         }}\n"
    )
}

/// Applies [`ruleset`] in namespace `ns`.
pub async fn apply(ns: &str, pool: &str) -> anyhow::Result<()> {
    ip::run(
        "nft",
        &["-f", "-"],
        Some(ns),
        Some(ruleset(pool).into_bytes()),
    )
    .await
    .map(|_| ())
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
    }
}
