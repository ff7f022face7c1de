//! Adoption: at start, the agent takes over the engines it left running. A node's
//! engine is adopted when the process the agent recorded starting for it (pid and start
//! time, see [`process::engine_pid`]) still runs and answers PING, as the agent's user
//! or, for an engine from before the lockdown, with its AUTH string. Nothing here
//! restarts or empties a cache.

use std::fs;
use std::path::Path;

use cacheplane_types::NodeSpec;
use uuid::Uuid;

use crate::redis::{acl, local, nodes_root, process, NodeDir};

/// Longest log the agent reads to learn whether an engine ever became ready.
const MAX_LOG_SCAN: u64 = 4 << 20;

/// What adoption found for one node directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Running and answering: adopted as it is.
    Adopted {
        /// The engine's pid.
        pid: u32,
    },
    /// Its process runs but did not answer PING (loading, busy): left running, looked at
    /// again on the next pass.
    NotAnswering {
        /// The engine's pid.
        pid: u32,
    },
    /// No engine runs for it.
    NotRunning,
}

/// A node directory found at start.
#[derive(Debug, Clone)]
pub struct Found {
    /// The node.
    pub id: Uuid,
    /// Its directory.
    pub dir: NodeDir,
    /// The spec last applied to it, if recorded.
    pub applied: Option<NodeSpec>,
    /// Whether its engine ever became ready (so a restart would come up empty).
    pub was_up: bool,
    /// What adoption found.
    pub verdict: Verdict,
}

/// Looks at every `data-dir/nodes/<nodeId>/` and decides what each holds.
pub async fn scan(data_dir: &Path) -> Vec<Found> {
    let root = nodes_root(data_dir);
    let Ok(entries) = fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| Uuid::parse_str(n).ok())
        else {
            continue;
        };
        let dir = NodeDir::new(data_dir, id);
        let applied = process::load_spec(&dir);
        let verdict = check(&dir, applied.as_ref()).await;
        let was_up = !matches!(verdict, Verdict::NotRunning) || ever_ready(&dir);
        match &verdict {
            Verdict::Adopted { pid } => tracing::info!(node = %id, pid, "adopted running engine"),
            Verdict::NotAnswering { pid } => {
                tracing::warn!(node = %id, pid, "engine runs but does not answer; left running")
            }
            Verdict::NotRunning => tracing::info!(node = %id, was_up, "engine is not running"),
        }
        found.push(Found {
            id,
            dir,
            applied,
            was_up,
            verdict,
        });
    }
    found.sort_by_key(|f| f.id);
    found
}

async fn check(dir: &NodeDir, spec: Option<&NodeSpec>) -> Verdict {
    let Some(spec) = spec else {
        // Without its spec the agent cannot tell the engine's address: only a pid file
        // naming a live redis-server counts.
        return match process::engine_pid(dir, None) {
            Some(pid) => Verdict::NotAnswering { pid },
            None => Verdict::NotRunning,
        };
    };
    let Some(pid) = process::engine_pid(dir, Some(spec)) else {
        return Verdict::NotRunning;
    };
    let answered = match local::connect(dir, spec, &acl::logins(&[spec])).await {
        Ok(mut c) => c.ping().await.is_ok(),
        Err(_) => false,
    };
    if answered {
        Verdict::Adopted { pid }
    } else {
        Verdict::NotAnswering { pid }
    }
}

/// Whether the node's log says its engine once accepted connections.
pub fn ever_ready(dir: &NodeDir) -> bool {
    use std::io::Read;
    let Ok(f) = fs::File::open(dir.logfile()) else {
        return false;
    };
    let mut buf = Vec::new();
    if f.take(MAX_LOG_SCAN).read_to_end(&mut buf).is_err() {
        return false;
    }
    String::from_utf8_lossy(&buf).contains("Ready to accept connections")
}
