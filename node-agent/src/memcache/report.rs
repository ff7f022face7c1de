//! What the agent reports of a memcached node: from its `version` and `stats` answers.

use std::collections::BTreeMap;

use cacheplane_types::{MemcacheNodeReport, MemcacheNodeSpec};
use uuid::Uuid;

/// One answer of a running memcached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Its `version`, e.g. `1.6.18`.
    pub version: String,
    /// Its `stats`.
    pub stats: BTreeMap<String, String>,
}

impl Observation {
    /// A `stats` figure as a number.
    pub fn stat(&self, name: &str) -> Option<i64> {
        self.stats.get(name)?.parse().ok()
    }
}

/// The report of node `id` running `applied` as process `pid`, from its answer `seen`
/// (`None`: it did not answer). `curr_connections` counts the agent's own connection,
/// which is left out of `connected_clients`.
pub fn report(
    id: Uuid,
    pid: Option<u32>,
    applied: Option<&MemcacheNodeSpec>,
    seen: Option<&Observation>,
) -> MemcacheNodeReport {
    MemcacheNodeReport {
        node_id: id,
        process_up: seen.is_some(),
        pid: pid.map(i64::from),
        engine_version: seen.map(|o| o.version.clone()),
        parameters: applied.map(|s| s.parameters.clone()).unwrap_or_default(),
        used_memory_bytes: seen.and_then(|o| o.stat("bytes")),
        connected_clients: seen
            .and_then(|o| o.stat("curr_connections"))
            .map(|n| (n - 1).max(0)),
        items: seen.and_then(|o| o.stat("curr_items")),
        restarts: None,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_stats() {
        let o = Observation {
            version: "1.6.18".into(),
            stats: BTreeMap::from([
                ("bytes".into(), "1234".into()),
                ("curr_connections".into(), "3".into()),
                ("curr_items".into(), "7".into()),
            ]),
        };
        let r = report(Uuid::nil(), Some(42), None, Some(&o));
        assert!(r.process_up);
        assert_eq!(r.pid, Some(42));
        assert_eq!(r.engine_version.as_deref(), Some("1.6.18"));
        assert_eq!(r.used_memory_bytes, Some(1234));
        assert_eq!(r.connected_clients, Some(2), "the agent's own is left out");
        assert_eq!(r.items, Some(7));
        let down = report(Uuid::nil(), None, None, None);
        assert!(!down.process_up);
        assert_eq!(down.engine_version, None);
    }
}
