//! Turns an engine's INFO into what the agent reports and reconciles on.

use std::collections::HashMap;

use cacheplane_types::{NodeReport, NodeRole};
use uuid::Uuid;

/// INFO text as `field → value` (section headers and blank lines dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info(HashMap<String, String>);

impl Info {
    /// Parses INFO output.
    pub fn parse(text: &str) -> Info {
        Info(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A raw field.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }

    /// `role`: master → Primary, slave → Replica.
    pub fn role(&self) -> Option<NodeRole> {
        match self.get("role")? {
            "master" => Some(NodeRole::Primary),
            "slave" => Some(NodeRole::Replica),
            _ => None,
        }
    }

    /// For a replica, the primary it follows (`master_host`, `master_port`).
    pub fn master(&self) -> Option<(String, u16)> {
        if self.role() != Some(NodeRole::Replica) {
            return None;
        }
        let port = self.get("master_port")?.parse().ok()?;
        Some((self.get("master_host")?.to_string(), port))
    }

    /// The node's replication offset: what a replica has processed, or a primary's own.
    pub fn replication_offset(&self) -> Option<i64> {
        match self.role()? {
            NodeRole::Replica => self
                .int("slave_repl_offset")
                .or_else(|| self.int("master_repl_offset")),
            NodeRole::Primary => self.int("master_repl_offset"),
        }
    }

    /// The engine's `process_id`.
    pub fn pid(&self) -> Option<i64> {
        self.int("process_id")
    }
}

/// The report of a node whose engine answered INFO. `primary_offset`, when known, is the
/// replication offset of the primary a replica follows, giving its lag.
pub fn report(node_id: Uuid, info: &Info, primary_offset: Option<i64>) -> NodeReport {
    let role = info.role();
    let replica = role == Some(NodeRole::Replica);
    let offset = info.replication_offset();
    let lag_bytes = match role {
        Some(NodeRole::Primary) => Some(0),
        Some(NodeRole::Replica) => match (primary_offset, offset) {
            (Some(p), Some(o)) => Some((p - o).max(0)),
            _ => None,
        },
        None => None,
    };
    NodeReport {
        node_id,
        process_up: true,
        role,
        master_link_up: replica.then(|| info.get("master_link_status") == Some("up")),
        master_link_down_since_seconds: if replica {
            info.int("master_link_down_since_seconds")
        } else {
            None
        },
        replication_offset: offset,
        lag_bytes,
        full_sync_in_progress: replica && info.get("master_sync_in_progress") == Some("1"),
        used_memory_bytes: info.int("used_memory"),
        connected_clients: info.int("connected_clients"),
        maxmemory_bytes: info.int("maxmemory"),
        commands_processed: info.int("total_commands_processed"),
        keyspace_hits: info.int("keyspace_hits"),
        keyspace_misses: info.int("keyspace_misses"),
        evicted_keys: info.int("evicted_keys"),
        restarts: None,
        pid: info.pid(),
        engine_version: info.get("redis_version").map(str::to_string),
        error: None,
        unresponsive_seconds: None,
        switchover: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\ntcp_port:6379\r\n\r\n# Clients\r\nconnected_clients:3\r\n\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:67108864\r\n\r\n# Stats\r\ntotal_commands_processed:77\r\nevicted_keys:2\r\nkeyspace_hits:5\r\nkeyspace_misses:6\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.64.0.5,port=6379,state=online,offset=1000,lag=0\r\nmaster_replid:abc\r\nmaster_repl_offset:1234\r\n";

    const REPLICA: &str = "# Server\r\nredis_version:7.0.15\r\nprocess_id:99\r\n# Clients\r\nconnected_clients:1\r\n# Memory\r\nused_memory:2000\r\n# Replication\r\nrole:slave\r\nmaster_host:127.64.0.4\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_last_io_seconds_ago:-1\r\nmaster_sync_in_progress:1\r\nslave_read_repl_offset:1000\r\nslave_repl_offset:1000\r\nmaster_link_down_since_seconds:-1\r\nslave_priority:100\r\nmaster_repl_offset:1000\r\n";

    #[test]
    fn reports_a_primary() {
        let info = Info::parse(PRIMARY);
        let r = report(Uuid::nil(), &info, None);
        assert_eq!(
            r,
            NodeReport {
                node_id: Uuid::nil(),
                process_up: true,
                role: Some(NodeRole::Primary),
                master_link_up: None,
                master_link_down_since_seconds: None,
                replication_offset: Some(1234),
                lag_bytes: Some(0),
                full_sync_in_progress: false,
                used_memory_bytes: Some(1_048_576),
                connected_clients: Some(3),
                maxmemory_bytes: Some(64 << 20),
                commands_processed: Some(77),
                keyspace_hits: Some(5),
                keyspace_misses: Some(6),
                evicted_keys: Some(2),
                restarts: None,
                pid: Some(4242),
                engine_version: Some("7.0.15".into()),
                error: None,
                unresponsive_seconds: None,
                switchover: None,
            }
        );
        assert_eq!(info.master(), None);
    }

    #[test]
    fn reports_a_replica_with_its_lag() {
        let info = Info::parse(REPLICA);
        assert_eq!(info.master(), Some(("127.64.0.4".to_string(), 6379)));
        let r = report(Uuid::nil(), &info, Some(1500));
        assert_eq!(r.role, Some(NodeRole::Replica));
        assert_eq!(r.master_link_up, Some(false));
        assert_eq!(r.master_link_down_since_seconds, Some(-1));
        assert!(r.full_sync_in_progress);
        assert_eq!(r.replication_offset, Some(1000));
        assert_eq!(r.lag_bytes, Some(500));
        assert_eq!(r.pid, Some(99));
        // Without the primary's offset, the lag is unknown, never a guess.
        assert_eq!(report(Uuid::nil(), &info, None).lag_bytes, None);
        // A replica ahead of a stale primary reading is not negative.
        assert_eq!(report(Uuid::nil(), &info, Some(10)).lag_bytes, Some(0));
    }

    #[test]
    fn linked_replica() {
        let text = REPLICA
            .replace("master_link_status:down", "master_link_status:up")
            .replace("master_sync_in_progress:1", "master_sync_in_progress:0")
            .replace("master_link_down_since_seconds:-1\r\n", "");
        let r = report(Uuid::nil(), &Info::parse(&text), None);
        assert_eq!(r.master_link_up, Some(true));
        assert_eq!(r.master_link_down_since_seconds, None);
        assert!(!r.full_sync_in_progress);
    }

    #[test]
    fn garbage_is_not_a_panic() {
        let info = Info::parse("::::\nrole\n#x\nrole:other\n");
        let r = report(Uuid::nil(), &info, Some(1));
        assert_eq!(r.role, None);
        assert_eq!(r.lag_bytes, None);
    }
}
