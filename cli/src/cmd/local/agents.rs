//! The local stack's node agents, one per zone in loopback mode: starting them and
//! waiting until the API sees their hosts UP.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use cacheplane_types::token::{CreateTokenRequest, Token};
use cacheplane_types::{HostState, ListHostsResponse};
use chrono::{DateTime, Utc};

use super::daemon::Daemon;
use super::layout::{host_of, Layout};
use super::{process, say};
use crate::client::Client;
use crate::error::{Error, Result};

/// Keeps ZONE's agent if it runs as wanted, else (re)starts it with a host token of its
/// own (minted with the admin `token`); answers its pid.
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
        secrets: Vec::new(),
    };
    if let Some(pid) = agent.reuse(layout.agent_pid_running(&host)).await {
        return Ok(pid);
    }
    let host_token = mint_host_token(layout, api_url, token, &host).await?;
    let agent = Daemon {
        secrets: vec![("CACHEPLANE_AGENT_TOKEN", host_token)],
        ..agent
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))?;
    agent.start(&format!("in zone {zone}"))
}

/// A new HOST token for `host` (it may register that host and speak its agent protocol,
/// nothing else), made with the admin `token`. The one made for the agent's previous
/// start, whose name `agents/HOST.token-name` keeps, is revoked; the secret itself is
/// kept nowhere but in the agent's environment.
async fn mint_host_token(
    layout: &Layout,
    api_url: &str,
    token: &str,
    host: &str,
) -> Result<String> {
    let client = Client::new(api_url, Some(token.to_string()))?;
    let made: Token = client
        .post(
            &["v1", "tokens"],
            &[],
            &CreateTokenRequest {
                project: None,
                host: Some(host.to_string()),
                description: format!("cachectl local: agent {host}"),
            },
        )
        .await?;
    let secret = made
        .token
        .ok_or_else(|| anyhow!("the API made a token for {host} without its secret"))?;
    let name_file = layout.agent_file(host, "token-name");
    if let Ok(old) = fs::read_to_string(&name_file) {
        let old = old.trim();
        if let Some(id) = old.strip_prefix("tokens/").filter(|id| !id.is_empty()) {
            // Best effort: a token of a database since reset is gone already.
            let _: Result<serde_json::Value> = client.delete(&["v1", "tokens", id], &[]).await;
        }
    }
    fs::write(&name_file, format!("{}\n", made.name))
        .with_context(|| format!("writing {}", name_file.display()))?;
    Ok(secret)
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
