//! Memcached engines (docs/memcached-agent.md): one `memcached` per
//! [`MemcacheNodeSpec`](cacheplane_types::MemcacheNodeSpec), started with its flags
//! ([`process`]), supervised, restarted and adopted ([`supervise`], [`adopt`]), reported
//! in heartbeats ([`report`]) over the text protocol ([`client`]); and the instances'
//! discovery endpoints, which answer `config get cluster` ([`discovery`]).

pub mod adopt;
pub mod client;
pub mod discovery;
pub mod process;
pub mod report;
pub mod supervise;
pub mod version;

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The directory of one memcached node, `data-dir/memcache/<nodeId>/`: its pid file,
/// log, the record of its process and the spec the agent last applied to it. Apart from
/// the Redis nodes' `nodes/`, so that neither engine's adoption mistakes the other's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McDir {
    /// The directory.
    pub dir: PathBuf,
}

impl McDir {
    /// The directory of node `id` under `data_dir`.
    pub fn new(data_dir: &Path, id: Uuid) -> Self {
        McDir {
            dir: root(data_dir).join(id.to_string()),
        }
    }

    /// `memcached.pid`, written by memcached (`-P`).
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("memcached.pid")
    }

    /// `memcached.log`: memcached's standard output and error (with `-v`, its errors).
    pub fn logfile(&self) -> PathBuf {
        self.dir.join("memcached.log")
    }

    /// `engine`: the pid and start time of the process the agent started
    /// ([`crate::pids::record`]).
    pub fn engine(&self) -> PathBuf {
        self.dir.join("engine")
    }

    /// `spec.json`: the spec last applied, read back when the agent restarts.
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
}

/// `data-dir/memcache`.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("memcache")
}
