//! Adoption: at start, the agent takes over the memcached processes it left running. A
//! node's memcached is adopted when the process recorded for it (or, without a record,
//! the one its pid file names) still runs with exactly the arguments of the spec the
//! agent last applied to it. Nothing here restarts or empties a cache: a process that
//! runs with other arguments is left to the first pass, which restarts it with the
//! desired ones only if the node is still wanted.

use std::fs;
use std::path::Path;

use cacheplane_types::MemcacheNodeSpec;
use uuid::Uuid;

use super::{process, root, McDir};

/// What adoption found for one node directory.
#[derive(Debug, Clone)]
pub struct Found {
    /// The node.
    pub id: Uuid,
    /// Its directory.
    pub dir: McDir,
    /// The spec its running memcached was started with; `None` when none runs, or when
    /// one runs with other arguments than the saved spec's (then it is restarted).
    pub applied: Option<MemcacheNodeSpec>,
    /// The spec last saved, whether or not anything runs it.
    pub saved: Option<MemcacheNodeSpec>,
    /// The running memcached's pid.
    pub pid: Option<u32>,
}

/// Looks at every `data-dir/memcache/<nodeId>/`.
pub fn scan(data_dir: &Path) -> Vec<Found> {
    let Ok(entries) = fs::read_dir(root(data_dir)) else {
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
        let dir = McDir::new(data_dir, id);
        let saved = process::load_spec(&dir);
        let pid = process::engine_pid(&dir, saved.as_ref());
        let matches = match (pid, &saved) {
            (Some(pid), Some(spec)) => {
                process::args(spec, &dir).is_ok_and(|a| process::runs_with(pid, &a))
            }
            _ => false,
        };
        match (pid, matches) {
            (Some(pid), true) => tracing::info!(node = %id, pid, "adopted running memcached"),
            (Some(pid), false) => {
                tracing::warn!(node = %id, pid, "memcached runs with other arguments than its saved spec")
            }
            (None, _) => tracing::info!(node = %id, "memcached is not running"),
        }
        found.push(Found {
            id,
            applied: saved.clone().filter(|_| matches),
            saved,
            dir,
            pid,
        });
    }
    found.sort_by_key(|f| f.id);
    found
}
