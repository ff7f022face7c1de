//! `local down`: stopping every part of the stack, agents first.

use std::fs;

use super::api::replica_name;
use super::layout::Layout;
use super::{postgres, process, say};
use crate::error::Result;

/// Stops the agents, the redis-servers and memcacheds they started, every API replica and
/// PostgreSQL.
pub async fn down(layout: &Layout) -> Result<()> {
    let hosts = layout.hosts();
    // Agents first, so that none restarts an engine; engines outlive their agent.
    for host in &hosts {
        if let Some(pid) = layout.agent_pid_running(host) {
            process::stop(&format!("agent {host}"), pid).await;
        }
        let _ = fs::remove_file(layout.agent_file(host, "pid"));
    }
    for host in &hosts {
        for pid in process::engine_pids(&layout.agent_dir(host)) {
            process::stop(&format!("redis-server of {host}"), pid).await;
        }
        for pid in process::memcached_pids(&layout.agent_dir(host)) {
            process::stop(&format!("memcached of {host}"), pid).await;
        }
    }
    for r in layout.api_replicas() {
        if let Some(pid) = layout.replica_pid_running(r) {
            process::stop(&replica_name(r), pid).await;
        }
        let _ = fs::remove_file(layout.replica_file(r, "pid"));
    }
    if let Some((pid, _)) = postgres::running(&layout.pg) {
        say(&format!(
            "stopping PostgreSQL (pid {pid}, {})",
            layout.pg.display()
        ));
        postgres::Cluster::new(&layout.pg)?.stop()?;
    }
    Ok(())
}
