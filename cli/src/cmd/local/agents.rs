//! The local stack's node agents, one per zone in loopback mode: starting them and
//! waiting until the API sees their hosts UP.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use cacheplane_types::{HostState, ListHostsResponse};
use chrono::{DateTime, Utc};

use super::daemon::Daemon;
use super::layout::{host_of, Layout};
use super::{process, say};
use crate::client::Client;
use crate::error::{Error, Result};

/// Keeps ZONE's agent if it runs as wanted, else (re)starts it; answers its pid.
pub async fn start_agent(
    layout: &Layout,
    bin: &Path,
    zone: &str,
    api_url: &str,
    token: &str,
) -> Result<i32> {
    let host = host_of(zone);
    let dir = layout.agent_dir(&host);
    let args = [
        "--api-url",
        api_url,
        "--host-id",
        &host,
        "--zone",
        zone,
        "--address",
        "127.0.0.1",
        "--network-mode",
        "loopback",
        "--data-dir",
        &dir.to_string_lossy(),
    ];
    let agent = Daemon {
        name: format!("agent {host}"),
        bin,
        args: args.iter().map(|s| s.to_string()).collect(),
        pid_file: layout.agent_file(&host, "pid"),
        log: layout.agent_file(&host, "log"),
        // The admin token stands in for a host token.
        token_var: "CACHEPLANE_AGENT_TOKEN",
    };
    if let Some(pid) = agent.reuse(layout.agent_pid_running(&host)).await {
        return Ok(pid);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))?;
    agent.start(&format!("in zone {zone}"), token)
}

/// Waits until the host of every agent (host, pid) is UP with a heartbeat sent since
/// `since`.
pub async fn wait_hosts_up(
    layout: &Layout,
    client: &Client,
    agents: &[(String, i32)],
    since: DateTime<Utc>,
    deadline: Instant,
) -> Result<()> {
    let names: Vec<String> = agents.iter().map(|(h, _)| format!("hosts/{h}")).collect();
    loop {
        // By pid alone: a process just started may not show its arguments yet.
        for (host, pid) in agents {
            if !process::running(*pid) {
                let log = layout.agent_file(host, "log");
                return Err(anyhow!(
                    "agent {host} exited (log: {}):\n{}",
                    log.display(),
                    process::tail(&log, 30)
                )
                .into());
            }
        }
        let hosts: ListHostsResponse = client.get(&["v1", "hosts"], &[]).await?;
        let up = hosts
            .hosts
            .iter()
            .filter(|h| names.contains(&h.name) && h.state == HostState::Up)
            .filter(|h| h.last_heartbeat_time.is_some_and(|t| t >= since))
            .count();
        if up == names.len() {
            say(&format!("{up} hosts UP"));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "only {up} of {} hosts UP in time (--timeout; logs: {}/*.log)",
                names.len(),
                layout.agents().display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
