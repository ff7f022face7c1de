//! Renders `redis.conf` for a node. The file holds the auth string: it is written with
//! mode 0600 and never logged.

use std::fmt::Write;

use cacheplane_types::{redis_config, NodeRole, NodeSpec};

use super::acl;

use super::NodeDir;

/// The engine's Unix socket, relative to its node directory: [`NodeDir::socket`].
pub const SOCKET_FILE: &str = "redis.sock";

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The `maxmemory` a node runs with, in bytes: `maxmemory-gb` from `redisConfigs` (GiB,
/// may be fractional) when valid (at least 0.1 GiB, and no more than the spec's size),
/// else the spec's `maxmemoryBytes`. Never 0, which would mean no limit: a spec without
/// a size gets the smallest `maxmemory-gb`.
pub fn effective_maxmemory(spec: &NodeSpec) -> u64 {
    let floor = (redis_config::MIN_MAXMEMORY_GB * GIB).round() as u64;
    let size = u64::try_from(spec.maxmemory_bytes)
        .ok()
        .filter(|b| *b > 0)
        .unwrap_or(floor);
    spec.redis_configs
        .get("maxmemory-gb")
        .and_then(|v| redis_config::maxmemory_gb(v))
        .map(|gb| (gb * GIB).round() as u64)
        .filter(|b| *b <= size)
        .unwrap_or(size)
}

/// The addresses a node listens on: its own, then (for the primary) the primary
/// endpoint. Its own comes first so that the engine's process title names it.
pub fn bind_addresses(spec: &NodeSpec) -> Vec<String> {
    let mut v = vec![spec.address.clone()];
    if spec.role == NodeRole::Primary {
        if let Some(ep) = spec
            .endpoint_address
            .as_ref()
            .filter(|e| **e != spec.address)
        {
            v.push(ep.clone());
        }
    }
    v
}

/// The engine's default for `min-replicas-max-lag`, used when no fence is set.
const DEFAULT_MAX_LAG: u32 = 10;

/// `min-replicas-to-write` and `min-replicas-max-lag` for `spec`: its write fence, or
/// no fence (0 replicas needed) on replicas, BASIC primaries and primaries the API left
/// unfenced. See docs/architecture.md#primary-lease.
pub fn write_fence(spec: &NodeSpec) -> (u32, u32) {
    match spec.write_fence.filter(|_| spec.role == NodeRole::Primary) {
        Some(f) => (f.min_replicas, f.max_lag_seconds.max(1)),
        None => (0, DEFAULT_MAX_LAG),
    }
}

/// The `redisConfigs` entries passed to the engine as they are: only keys of the shared
/// allow-list ([`cacheplane_types::redis_config`]) whose values follow its rules, and not
/// `maxmemory-gb` (which becomes `maxmemory`). Anything else is dropped, whatever the API
/// sent.
pub fn passthrough_configs(spec: &NodeSpec) -> impl Iterator<Item = (&str, &str)> {
    spec.redis_configs
        .iter()
        .filter(|(k, v)| is_passthrough(k, v))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Whether `key` of `redisConfigs`, set to `value`, goes to the engine as it is.
pub fn is_passthrough(key: &str, value: &str) -> bool {
    key != "maxmemory-gb" && redis_config::check_config(key, value, None).is_ok()
}

/// For a replica: the primary it follows, if the spec names one.
pub fn replicaof(spec: &NodeSpec) -> Option<(&str, u16)> {
    match spec.role {
        NodeRole::Replica => spec.primary_address.as_deref().map(|a| (a, spec.port)),
        NodeRole::Primary => None,
    }
}

/// Quotes a value for redis.conf: double quotes, with `\`, `"` and anything not printable
/// ASCII escaped, so no value can break out of its line.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for b in value.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// The whole `redis.conf` of a node living in `dir`.
pub fn render(spec: &NodeSpec, dir: &NodeDir) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by cacheplane-node-agent for node {}; changes are overwritten.",
        spec.node_id
    );
    c.push_str(&super::tls::port_lines(spec, dir));
    let binds: Vec<String> = bind_addresses(spec).iter().map(|a| quote(a)).collect();
    let _ = writeln!(c, "bind {}", binds.join(" "));
    c.push_str("protected-mode no\n");
    c.push_str("daemonize yes\n");
    let _ = writeln!(c, "pidfile {}", quote(&dir.pidfile().to_string_lossy()));
    let _ = writeln!(c, "logfile {}", quote(&dir.logfile().to_string_lossy()));
    let _ = writeln!(c, "dir {}", quote(&dir.dir.to_string_lossy()));
    // The agent's own way in (redis::local): not on the network, only its user may open it.
    // Relative to `dir` (the engine changes into it before it listens): a socket path
    // must fit in 108 bytes, which a deep data directory would not.
    let _ = writeln!(c, "unixsocket {}", quote(SOCKET_FILE));
    c.push_str("unixsocketperm 700\n");
    c.push_str("save \"\"\n");
    c.push_str("appendonly no\n");
    // Nothing is persisted: replicas sync over the socket, at once (the default waits 5 s
    // for more replicas), and an empty replica loads straight from it.
    c.push_str("repl-diskless-sync yes\n");
    c.push_str("repl-diskless-sync-delay 0\n");
    c.push_str("repl-diskless-load on-empty-db\n");
    // A replica of a primary that went silent (its host frozen or cut off) must say its
    // link is down well before Redis's 60 s default: the API fails a silent host's primary
    // over only once its replicas report that. The primary pings its replicas every second
    // (default 10 s) so that an idle link is never taken for a dead one, and 10 s of
    // silence mark it down, about when the API's host timeout (10 s) runs out. Not lower:
    // `repl-timeout` also bounds a stall of a full sync (a fork, loading a big key), and
    // Redis keeps a syncing replica's link alive with newlines every second while it
    // loads or flushes, so 10 s leave a wide margin. `redisConfigs` may raise it.
    c.push_str("repl-ping-replica-period 1\n");
    c.push_str("repl-timeout 10\n");
    let _ = writeln!(c, "maxmemory {}", effective_maxmemory(spec));
    let _ = writeln!(c, "replica-announce-ip {}", quote(&spec.address));
    let (min_replicas, max_lag) = write_fence(spec);
    let _ = writeln!(c, "min-replicas-to-write {min_replicas}");
    let _ = writeln!(c, "min-replicas-max-lag {max_lag}");
    for line in acl::conf_lines(spec) {
        let _ = writeln!(c, "{line}");
    }
    if let Some((host, port)) = replicaof(spec) {
        let _ = writeln!(c, "replicaof {} {port}", quote(host));
    }
    for (k, v) in passthrough_configs(spec) {
        let _ = writeln!(c, "{k} {}", quote(v));
    }
    c
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use uuid::Uuid;

    use super::*;

    fn spec(role: NodeRole) -> NodeSpec {
        NodeSpec {
            network: None,
            switchover: None,
            node_id: Uuid::nil(),
            instance: "projects/p/locations/local/instances/c1".into(),
            engine_version: "REDIS_7_0".into(),
            role,
            address: "127.64.0.4".into(),
            port: 6379,
            endpoint_address: Some("127.64.0.1".into()),
            primary_address: Some("127.64.0.5".into()),
            maxmemory_bytes: 1 << 30,
            redis_configs: BTreeMap::from([
                ("maxmemory-policy".to_string(), "allkeys-lru".to_string()),
                ("notify-keyspace-events".to_string(), String::new()),
            ]),
            read_endpoint: None,
            restart_in_place: false,
            auth_string: Some("s3cr\"et".into()),
            admin_secret: None,
            write_fence: None,
            tls: None,
        }
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn renders_a_primary() {
        let dir = NodeDir::new(Path::new("/data"), Uuid::nil());
        let conf = render(&spec(NodeRole::Primary), &dir);
        let l = lines(&conf);
        let d = "/data/nodes/00000000-0000-0000-0000-000000000000";
        for want in [
            "port 6379",
            "bind \"127.64.0.4\" \"127.64.0.1\"",
            "protected-mode no",
            "daemonize yes",
            &format!("pidfile \"{d}/redis.pid\""),
            &format!("logfile \"{d}/redis.log\""),
            &format!("dir \"{d}\""),
            "save \"\"",
            "appendonly no",
            "repl-diskless-sync-delay 0",
            "maxmemory 1073741824",
            "replica-announce-ip \"127.64.0.4\"",
            "requirepass \"s3cr\\\"et\"",
            "masterauth \"s3cr\\\"et\"",
            "maxmemory-policy \"allkeys-lru\"",
            "notify-keyspace-events \"\"",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{conf}");
        }
        assert!(!conf.contains("replicaof"), "{conf}");
        assert!(l.contains(&"min-replicas-to-write 0"), "unfenced: {conf}");
    }

    #[test]
    fn a_fenced_primary_needs_its_replicas_and_a_replica_never_does() {
        let dir = NodeDir::new(Path::new("/data"), Uuid::nil());
        let fence = Some(cacheplane_types::WriteFence {
            min_replicas: 1,
            max_lag_seconds: 3,
        });
        let mut p = spec(NodeRole::Primary);
        p.write_fence = fence;
        p.redis_configs
            .insert("min-replicas-to-write".into(), "0".into());
        let conf = render(&p, &dir);
        let l = lines(&conf);
        assert!(l.contains(&"min-replicas-to-write 1"), "{conf}");
        assert!(l.contains(&"min-replicas-max-lag 3"), "{conf}");
        assert_eq!(
            conf.matches("min-replicas-to-write").count(),
            1,
            "redisConfigs cannot lift the fence: {conf}"
        );
        // A replica told to fence (a spec in the middle of a role change) is not fenced:
        // a replica takes no writes anyway, and it would refuse them once promoted by hand.
        let mut r = spec(NodeRole::Replica);
        r.write_fence = fence;
        assert_eq!(write_fence(&r), (0, 10));
        assert!(lines(&render(&r, &dir)).contains(&"min-replicas-to-write 0"));
    }

    #[test]
    fn renders_a_replica() {
        let dir = NodeDir::new(Path::new("/data"), Uuid::nil());
        let conf = render(&spec(NodeRole::Replica), &dir);
        let l = lines(&conf);
        assert!(l.contains(&"replicaof \"127.64.0.5\" 6379"), "{conf}");
        assert!(l.contains(&"bind \"127.64.0.4\""), "{conf}");
    }

    #[test]
    fn every_engine_notices_a_silent_link_within_10_s() {
        let dir = NodeDir::new(Path::new("/data"), Uuid::nil());
        for role in [NodeRole::Primary, NodeRole::Replica] {
            let conf = render(&spec(role), &dir);
            let l = lines(&conf);
            // The primary pings every second, well within the timeout, so an idle link
            // stays up; a silent one is down after 10 s, not Redis's default 60 s.
            assert!(l.contains(&"repl-ping-replica-period 1"), "{conf}");
            assert!(l.contains(&"repl-timeout 10"), "{conf}");
        }
    }

    #[test]
    fn maxmemory_gb_wins_and_agent_settings_cannot_be_overridden() {
        let mut s = spec(NodeRole::Primary);
        s.redis_configs.insert("maxmemory-gb".into(), "0.5".into());
        s.redis_configs.insert("dir".into(), "/etc".into());
        s.redis_configs.insert("bad key\nport".into(), "1".into());
        s.auth_string = None;
        assert_eq!(effective_maxmemory(&s), 512 * 1024 * 1024);
        let conf = render(&s, &NodeDir::new(Path::new("/d"), Uuid::nil()));
        assert!(conf.contains("maxmemory 536870912\n"), "{conf}");
        assert!(!conf.contains("maxmemory-gb"), "{conf}");
        assert!(!conf.contains("/etc"), "{conf}");
        assert!(!conf.contains("bad key"), "{conf}");
        assert!(!conf.contains("requirepass"), "{conf}");
        for bad in ["nan", "1e-10", "0", "-1", "inf", "0.01", "2"] {
            s.redis_configs.insert("maxmemory-gb".into(), bad.into());
            assert_eq!(
                effective_maxmemory(&s),
                1 << 30,
                "{bad} falls back to the size"
            );
        }
        s.maxmemory_bytes = 0;
        assert!(effective_maxmemory(&s) > 0, "never maxmemory 0");
    }

    #[test]
    fn only_allow_listed_settings_with_valid_values_reach_the_engine() {
        let mut s = spec(NodeRole::Primary);
        for (k, v) in [
            ("save", "1 1"),
            ("port", "6390"),
            ("proc-title-template", "x"),
            ("timeout", "-1"),
            ("lfu-log-factor", "5"),
        ] {
            s.redis_configs.insert(k.into(), v.into());
        }
        let got: Vec<(&str, &str)> = passthrough_configs(&s).collect();
        assert_eq!(
            got,
            [
                ("lfu-log-factor", "5"),
                ("maxmemory-policy", "allkeys-lru"),
                ("notify-keyspace-events", "")
            ]
        );
    }

    #[test]
    fn a_locked_down_engine_has_users_instead_of_requirepass() {
        let mut s = spec(NodeRole::Replica);
        s.admin_secret = Some(cacheplane_types::Secret::new("adm"));
        let conf = render(&s, &NodeDir::new(Path::new("/d"), Uuid::nil()));
        assert!(!conf.contains("requirepass"), "{conf}");
        assert!(
            conf.contains("\nuser default \"reset\" \"on\" \">s3cr\\\"et\""),
            "{conf}"
        );
        assert!(conf.contains("\nmasteruser cacheplane-agent\n"), "{conf}");
        assert!(conf.contains("\nmasterauth \"adm\"\n"), "{conf}");
    }

    #[test]
    fn quoting_keeps_values_on_their_line() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("x\ny\\"), "\"x\\x0ay\\\\\"");
    }
}
