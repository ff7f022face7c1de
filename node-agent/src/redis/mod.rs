//! Redis engines: configuration files, processes, a small client, and what their INFO
//! says.

pub mod acl;
pub mod client;
pub mod conf;
pub mod local;
pub mod observe;
pub mod process;
pub mod reconfigure;
pub mod tls;
pub mod version;

use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The directory of one node, `data-dir/nodes/<nodeId>/`: its engine's config, pid
/// file, log, working dir, and the spec the agent last applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir {
    /// The directory.
    pub dir: PathBuf,
}

impl NodeDir {
    /// The directory of node `id` under `data_dir`.
    pub fn new(data_dir: &Path, id: Uuid) -> Self {
        NodeDir {
            dir: nodes_root(data_dir).join(id.to_string()),
        }
    }

    /// `redis.conf`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("redis.conf")
    }

    /// `redis.pid`, written by the engine.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("redis.pid")
    }

    /// `redis.log`, written by the engine.
    pub fn logfile(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// `redis.sock`: the engine's Unix socket, through which the agent talks to it.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(conf::SOCKET_FILE)
    }

    /// `engine`: the pid and start time of the engine the agent started (see
    /// [`process::engine_pid`]).
    pub fn engine(&self) -> PathBuf {
        self.dir.join("engine")
    }

    /// `spec.json`: the spec last applied, read back when the agent restarts.
    pub fn spec(&self) -> PathBuf {
        self.dir.join("spec.json")
    }
}

/// `data-dir/nodes`.
pub fn nodes_root(data_dir: &Path) -> PathBuf {
    data_dir.join("nodes")
}
