//! What the simulation's client does while the agents run: creates and deletes instances
//! (placed on the simulated hosts, which apply them), and silences the hosts of primaries
//! to time the failovers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::fleet::{Board, Control};
use crate::admin::{AdminClient, PARENT};
use crate::stack::node_with_role;

/// The instance name the host configs carry for instance `id`.
pub fn instance_name(id: &str) -> String {
    format!("{}/instances/{id}", PARENT.trim_start_matches("/v1/"))
}

/// The smallest STANDARD_HA instance: a primary and one replica, in two zones.
pub fn ha_body() -> Value {
    json!({ "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 1 })
}

fn basic_body() -> Value {
    json!({ "tier": "BASIC", "memorySizeGb": 1 })
}

/// How long after the window a create/delete cycle may still finish.
const GRACE: Duration = Duration::from_secs(10);

/// What the create/delete loops did.
#[derive(Debug, Default)]
pub struct Churn {
    /// Instance name → when its create was answered.
    pub accepted: Vec<(String, Instant)>,
    /// Create–delete cycles completed.
    pub cycles: u64,
    /// What went wrong (the loop went on).
    pub failures: Vec<String>,
}

/// `loops` clients each creating an instance (BASIC and STANDARD_HA in turn), waiting for
/// it, deleting it and waiting for that, until `until`.
pub async fn churn(api: &AdminClient, loops: usize, until: Instant, prefix: &str) -> Churn {
    let mut set = JoinSet::new();
    for l in 0..loops {
        let api = api.clone();
        let prefix = format!("{prefix}-{l}");
        set.spawn(async move {
            let mut out = Churn::default();
            let mut n = 0u32;
            while Instant::now() < until {
                let id = format!("{prefix}-{n}");
                // BASIC and STANDARD_HA in turn, the loops starting on either.
                let body = [basic_body(), ha_body()][(n as usize + l) % 2].clone();
                n += 1;
                // A cycle still running this long after the window is cut short.
                let cut = tokio::time::sleep_until((until + GRACE).into());
                let done = tokio::select! {
                    r = cycle(&api, &id, &body, &mut out) => r,
                    _ = cut => Err(anyhow::anyhow!("not done {GRACE:?} after the window")),
                };
                match done {
                    Ok(()) => out.cycles += 1,
                    Err(e) => {
                        out.failures.push(format!("{id}: {e:#}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            out
        });
    }
    let mut all = Churn::default();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(c) => {
                all.accepted.extend(c.accepted);
                all.cycles += c.cycles;
                all.failures.extend(c.failures);
            }
            Err(e) => all.failures.push(format!("a churn loop panicked: {e}")),
        }
    }
    all
}

async fn cycle(api: &AdminClient, id: &str, body: &Value, out: &mut Churn) -> anyhow::Result<()> {
    let (op, at) = api.send_create(id, body).await?;
    out.accepted.push((instance_name(id), at));
    api.wait_op(&op).await?;
    api.delete(id).await
}

/// A silenced host's failover.
#[derive(Debug, Clone, Copy)]
pub struct Silence {
    /// From the host's last heartbeat sent to the instance showing another node as its
    /// primary (`GET` polled every 20 ms).
    pub to_new_primary: Duration,
    /// From the host's last heartbeat sent to the new primary's agent receiving its
    /// promotion.
    pub to_agent: Option<Duration>,
}

/// Silences the host of each instance's primary, `stagger` apart, and times each
/// failover (see [`Silence`]). Fails when one takes longer than `limit`.
pub async fn silence(
    api: &AdminClient,
    board: &Arc<Board>,
    controls: &[Arc<Control>],
    ids: &[String],
    stagger: Duration,
    limit: Duration,
) -> anyhow::Result<Vec<Silence>> {
    let mut set = JoinSet::new();
    for id in ids {
        let inst = api.instance(id).await?;
        let old = node_with_role(&inst, "PRIMARY")?["id"]
            .as_str()
            .context("primary node without an id")?
            .to_string();
        let node = old.parse().with_context(|| format!("node id {old}"))?;
        let holder = board.records().holders.get(&node).copied();
        let (index, control) = holder
            .and_then(|h| Some((h, controls.get(h)?.clone())))
            .with_context(|| format!("no simulated agent holds node {old}"))?;
        control.silence.cancel();
        board.host_down(index);
        let since = control.last_beat_sent().unwrap_or_else(Instant::now);
        let (api, board, id) = (api.clone(), board.clone(), id.clone());
        set.spawn(async move { failover_of(&api, &board, &id, &old, since, limit).await });
        tokio::time::sleep(stagger).await;
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.context("a silence watcher panicked")??);
    }
    Ok(out)
}

async fn failover_of(
    api: &AdminClient,
    board: &Board,
    id: &str,
    old: &str,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<Silence> {
    loop {
        let inst = api.instance(id).await?;
        let now = Instant::now();
        if let Ok(p) = node_with_role(&inst, "PRIMARY") {
            let new = p["id"].as_str().unwrap_or_default();
            if !new.is_empty() && new != old {
                let node = new.parse().with_context(|| format!("node id {new}"))?;
                let to_new_primary = now - since;
                // The promotion reaches the agent about when the API shows it.
                let mut to_agent = None;
                for _ in 0..100 {
                    if let Some(at) = board.records().promoted.get(&node) {
                        to_agent = Some(at.saturating_duration_since(since));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Ok(Silence {
                    to_new_primary,
                    to_agent,
                });
            }
        }
        if now - since > limit {
            bail!("{id}: no new primary {limit:?} after its primary's host went silent: {inst}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
