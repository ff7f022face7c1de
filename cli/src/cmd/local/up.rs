//! `local up`: starting, or reusing, every part of the stack in order (PostgreSQL, the
//! API, the agents), then pointing cachectl at it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use chrono::Utc;

use super::agents::{start_agent, wait_hosts_up};
use super::api::{replica_name, start_api, wait_ready};
use super::config::write_config;
use super::layout::{host_of, write_line, Layout, ZONES};
use super::status::Status;
use super::token::ensure_token;
use super::{port_free, postgres, process, say, Globals, UpArgs, REGION};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::emit;

/// `local up`.
pub async fn up(args: UpArgs, g: &Globals) -> Result<()> {
    let api_bin = find_binary(args.api_bin.as_deref(), "cacheplane-api", "--api-bin")?;
    let agent_bin = find_binary(
        args.agent_bin.as_deref(),
        "cacheplane-node-agent",
        "--agent-bin",
    )?;
    if std::env::var_os("CACHEPLANE_REDIS_SERVER").is_none()
        && process::find_on_path("redis-server").is_none()
    {
        return Err(anyhow!(
            "redis-server is not installed (the agents run it): `apt-get install redis-server`"
        )
        .into());
    }
    let layout = Layout::resolve(&args.dirs, true)?;
    let deadline = Instant::now() + args.timeout;

    let (pg_port, pg_password) = start_postgres(&layout, args.pg_port)?;
    let token = ensure_token(&layout.token())?;

    let database_url = postgres::url(pg_port, postgres::DATABASE, pg_password.as_deref());
    let replicas = usize::from(args.api_replicas);
    let mut started = Vec::new();
    for r in 1..=replicas {
        let port = u16::try_from(r - 1)
            .ok()
            .and_then(|i| args.api_port.checked_add(i))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--api-port {} leaves no room for {replicas} replicas",
                    args.api_port
                ))
            })?;
        let listen = format!("127.0.0.1:{port}");
        let pid = start_api(
            &layout,
            &api_bin,
            r,
            port,
            &[
                "--listen",
                &listen,
                "--default-network-supernet",
                &args.supernet,
            ],
            &token,
            &database_url,
        )
        .await?;
        started.push((r, listen, pid));
    }
    // Replicas a previous `up` started beyond the ones wanted now.
    for r in layout.api_replicas().into_iter().filter(|r| *r > replicas) {
        if let Some(pid) = layout.replica_pid_running(r) {
            process::stop(&replica_name(r), pid).await;
        }
        let _ = std::fs::remove_file(layout.replica_file(r, "pid"));
    }
    let listens: Vec<&str> = started.iter().map(|(_, l, _)| l.as_str()).collect();
    write_line(&layout.api_file("listen"), &listens.join(","))?;
    for (r, listen, pid) in &started {
        wait_ready(&layout, *r, &format!("http://{listen}"), *pid, deadline).await?;
    }
    // The agents and cachectl get every replica, and fail over between them.
    let api_url = layout
        .api_urls()
        .ok_or_else(|| anyhow!("{} vanished", layout.api_file("listen").display()))?;

    // Heartbeats from before this point may come from agents since replaced.
    let since = Utc::now();
    let mut agents = Vec::new();
    for zone in ZONES {
        let pid = start_agent(&layout, &agent_bin, zone, &api_url, &token).await?;
        agents.push((host_of(zone), pid));
    }
    let client = Client::new(&api_url, Some(token.clone()))?;
    wait_hosts_up(&layout, &client, &agents, since, deadline).await?;

    let project = write_config(g, &api_url, &token)?;
    let status = Status::collect(&layout).await;
    let config_path = g.config_path.display().to_string();
    let console = console_url(&listens);
    let token_path = layout.token().display().to_string();
    emit(g.format, &status, |s| {
        format!(
            "{}\n\n{}\nWeb console: {console}\n  sign in with the admin token in {token_path} \
             (`cat` it), project {project}, region {REGION}\n\
             cachectl is set up for it in {config_path} (project {project}, region \
             {REGION}):\n  \
             cachectl instances create my-cache --tier standard-ha --size 1 --replica-count 2\n  \
             cachectl local status\n  \
             cachectl local down\n\
             Elsewhere (another user, a script): CACHECTL_API_URL={api_url}",
            s.table(),
            s.summary()
        )
    })
}

/// The web console's address: the first API replica's `/console/` (every replica serves
/// it).
fn console_url(listens: &[&str]) -> String {
    let listen = listens.first().copied().unwrap_or("127.0.0.1:8080");
    format!("http://{listen}/console/")
}

/// The binary: the flag's, else next to cachectl, else on PATH.
fn find_binary(explicit: Option<&Path>, name: &str, flag: &str) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !process::is_executable(p) {
            return Err(Error::Usage(format!(
                "{flag} {}: not an executable file",
                p.display()
            )));
        }
        return Ok(std::path::absolute(p).context("resolving a path")?);
    }
    process::find_sibling_or_on_path(name).ok_or_else(|| {
        anyhow!(
            "cannot find {name} next to cachectl or on PATH: build it (`cargo build --release \
             -p {name}`) or pass {flag} PATH"
        )
        .into()
    })
}

/// Initializes (once) and starts (unless it runs) the stack's cluster, with the API's
/// database in it; answers its port and its superuser's password.
fn start_postgres(layout: &Layout, port: u16) -> Result<(u16, Option<String>)> {
    let cluster = postgres::Cluster::new(&layout.pg)?;
    if layout.pg != layout.data.join("pg") {
        say(&format!("PostgreSQL directory: {}", layout.pg.display()));
    }
    cluster.init()?;
    write_line(&layout.pg_dir_record(), &layout.pg.to_string_lossy())?;
    let port = match postgres::running(&layout.pg) {
        Some((pid, running_port)) => {
            if running_port != port {
                say(&format!(
                    "PostgreSQL already runs on port {running_port} (not {port}); using it"
                ));
            } else {
                say(&format!("PostgreSQL already runs (pid {pid})"));
            }
            running_port
        }
        None => {
            if !port_free(port) {
                return Err(Error::Usage(format!(
                    "port {port} is taken by another program; pass --pg-port PORT"
                )));
            }
            cluster.start(port)?;
            port
        }
    };
    cluster.ensure_database(port, postgres::DATABASE)?;
    Ok((port, cluster.password()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_console_is_on_the_first_replica() {
        assert_eq!(
            super::console_url(&["127.0.0.1:8080", "127.0.0.1:8081"]),
            "http://127.0.0.1:8080/console/"
        );
    }
}
