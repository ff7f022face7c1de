//! What runs, as `local up`, `down` and `status` show it: each part's state, pid,
//! address, health and log, as a table or as JSON.

use std::net::{Ipv4Addr, TcpStream};

use cacheplane_types::{HostState, ListHostsResponse};
use serde::Serialize;

use super::api::api_ready;
use super::layout::{host_of, read_line, Layout, ZONES};
use super::{postgres, process};
use crate::client::Client;
use crate::output;

/// What runs, as `local up`, `down` and `status` show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The data directory.
    data_dir: String,
    /// The API's URL (of the last `local up`; its replicas' URLs separated by commas).
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    /// Whether `GET /readyz` answers 200 on every API replica.
    api_ready: bool,
    /// How many of the stack's hosts are UP.
    hosts_up: usize,
    /// Each part.
    parts: Vec<Part>,
}

/// One process of the stack.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    /// `postgres`, `api` (`api 2`, … for more replicas) or `agent HOST`.
    name: String,
    /// `running` or `stopped`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    /// Where it listens (the agents: their zone).
    address: String,
    /// What it says about itself: the API ready, a host UP, its redis-servers and
    /// memcacheds.
    health: String,
    /// Its log file.
    log: String,
    /// The pids of an agent's redis-servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    engines: Vec<i32>,
    /// The pids of an agent's memcacheds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    memcacheds: Vec<i32>,
}

fn state_of(pid: Option<i32>) -> &'static str {
    if pid.is_some() {
        "running"
    } else {
        "stopped"
    }
}

impl Status {
    /// Looks at every part of the stack in `layout`.
    pub async fn collect(layout: &Layout) -> Status {
        let mut parts = Vec::new();

        let pg = postgres::running(&layout.pg);
        let pg_pid = pg.map(|(pid, _)| pid);
        parts.push(Part {
            name: "postgres".into(),
            state: state_of(pg_pid),
            pid: pg_pid,
            address: pg
                .map(|(_, port)| format!("127.0.0.1:{port}"))
                .unwrap_or_default(),
            health: match pg {
                Some((_, port)) if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() => {
                    "listening".into()
                }
                Some(_) => "not listening".into(),
                None => String::new(),
            },
            log: layout.pg.join("postgres.log").display().to_string(),
            engines: Vec::new(),
            memcacheds: Vec::new(),
        });

        // One part per API replica: those of the last `up`, and any other left running.
        let api_url = layout.api_urls();
        let urls: Vec<&str> = api_url
            .as_deref()
            .map_or(Vec::new(), |u| u.split(',').collect());
        let mut replicas = layout.api_replicas();
        replicas.extend(2..=urls.len());
        replicas.sort_unstable();
        replicas.dedup();
        let mut ready_replicas = 0;
        for r in replicas {
            let url = urls.get(r - 1).copied();
            let pid = layout.replica_pid_running(r);
            let ready = match (url, pid) {
                (Some(url), Some(_)) => api_ready(url).await,
                _ => false,
            };
            ready_replicas += usize::from(ready && url.is_some());
            parts.push(Part {
                name: match r {
                    1 => "api".into(),
                    _ => format!("api {r}"),
                },
                state: state_of(pid),
                pid,
                address: pid.and(url).unwrap_or_default().to_string(),
                health: match (pid, ready) {
                    (Some(_), true) => "ready".into(),
                    (Some(_), false) => "not ready".into(),
                    (None, _) => String::new(),
                },
                log: layout.replica_file(r, "log").display().to_string(),
                engines: Vec::new(),
                memcacheds: Vec::new(),
            });
        }
        // Ready: every replica of the last `up` answers.
        let api_ready = !urls.is_empty() && ready_replicas == urls.len();

        // The hosts' states, when the API can tell.
        let mut host_states: Vec<(String, HostState)> = Vec::new();
        if let (true, Some(url), Some(token)) = (api_ready, &api_url, read_line(&layout.token())) {
            if let Ok(client) = Client::new(url, Some(token)) {
                if let Ok(r) = client.get::<ListHostsResponse>(&["v1", "hosts"], &[]).await {
                    host_states = r.hosts.into_iter().map(|h| (h.name, h.state)).collect();
                }
            }
        }
        let mut hosts_up = 0;
        for host in layout.hosts() {
            let pid = layout.agent_pid_running(&host);
            let engines = process::engine_pids(&layout.agent_dir(&host));
            let state = host_states
                .iter()
                .find(|(n, _)| *n == format!("hosts/{host}"))
                .map(|(_, s)| *s);
            if state == Some(HostState::Up) && ZONES.iter().any(|z| host_of(z) == host) {
                hosts_up += 1;
            }
            let mut health = Vec::new();
            if pid.is_some() || state.is_some() {
                health.push(
                    state
                        .map(|s| output::wire(&s))
                        .unwrap_or_else(|| "unknown".into()),
                );
            }
            if !engines.is_empty() || pid.is_some() {
                health.push(match engines.len() {
                    0 => "no redis-servers".to_string(),
                    1 => "1 redis-server".to_string(),
                    n => format!("{n} redis-servers"),
                });
            }
            let memcacheds = process::memcached_pids(&layout.agent_dir(&host));
            match memcacheds.len() {
                0 => {}
                1 => health.push("1 memcached".to_string()),
                n => health.push(format!("{n} memcacheds")),
            }
            let zone = host.strip_suffix("-1").unwrap_or(&host).to_string();
            parts.push(Part {
                name: format!("agent {host}"),
                // Engines an agent left running show in its health (and `down` stops
                // them), not in its state.
                state: state_of(pid),
                pid,
                address: format!("zone {zone}"),
                health: health.join(", "),
                log: layout.agent_file(&host, "log").display().to_string(),
                engines,
                memcacheds,
            });
        }

        Status {
            data_dir: layout.data.display().to_string(),
            api_url,
            api_ready,
            hosts_up,
            parts,
        }
    }

    /// Each part, as a table.
    pub fn table(&self) -> String {
        output::rows(
            &["PART", "STATE", "PID", "ADDRESS", "HEALTH", "LOG"],
            self.parts.iter().map(|p| {
                vec![
                    p.name.clone(),
                    p.state.to_string(),
                    p.pid.map(|p| p.to_string()).unwrap_or_default(),
                    p.address.clone(),
                    p.health.clone(),
                    p.log.clone(),
                ]
            }),
        )
    }

    /// One line on the API and the hosts.
    pub fn summary(&self) -> String {
        let api_runs = self
            .parts
            .iter()
            .any(|p| p.name.starts_with("api") && p.pid.is_some());
        let api = match (&self.api_url, api_runs, self.api_ready) {
            (Some(url), true, true) => format!("API ready at {url}"),
            (Some(url), true, false) => format!("API not ready at {url}"),
            _ => "API not running (`cachectl local up` starts it)".to_string(),
        };
        format!(
            "{api}; {} of {} hosts UP. Data: {}",
            self.hosts_up,
            ZONES.len(),
            self.data_dir
        )
    }
}
