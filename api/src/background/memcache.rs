//! The driver of Memcached operations and the discovery endpoint's guard. A create or
//! update is done once every node runs with its parameters at its current generation,
//! the nodes being removed are gone and the discovery endpoint's host applied the node
//! list; a delete once every node has stopped (or sits on a silent host). A node that
//! cannot start fails the operation with memcached's reason (a failed create is then
//! deleted). [`decide`] makes the decision; [`advance`] reads and writes.
//! [`sweep`] moves discovery endpoints off silent hosts and forgets nodes that their
//! hosts stopped after the operation that removed them ended.

use std::time::Duration;

use cacheplane_types::{MemcacheInstanceState, MemcacheNodeState, OperationVerb, Status};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::memcache::{self as db, TryLock};
use crate::db::{hosts, operations as ops};
use crate::error::ApiResult;
use crate::instances::node_state::heartbeat_fresh;
use crate::memcache::delete::remove;
use crate::memcache::nodes::{self, Touched};
use crate::memcache::render::{node_state, start_error, to_wire};
use crate::memcache::{MemcacheNodeRow, MemcacheRow};
use crate::operations::{self, Finished, OperationRow};
use crate::state::AppState;

use super::grace;

/// What to do next with a Memcached operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The instance is gone: a delete has succeeded, anything else cannot.
    Gone,
    /// A delete whose nodes are all stopped or on silent hosts: free the range (held
    /// against the silent hosts) and delete the rows.
    Remove,
    /// Waiting; the nodes in `drop` are stopped (their hosts applied their removal) and
    /// their rows go now.
    Wait {
        /// Rows to delete.
        drop: Vec<Uuid>,
        /// Percent done.
        percent: i32,
        /// What it waits for.
        detail: String,
    },
    /// A node of a create or update sits on a host silent past the operation's
    /// deadline: it is placed again on another host (it leaves the silent host's config,
    /// keeping its address until that host returns), or, with no host that has room,
    /// the operation fails with `message`.
    Replace {
        /// The node to place again.
        node: Uuid,
        /// Why the operation fails when it cannot be placed, naming the node and host.
        message: String,
    },
    /// A node could not start: the operation fails with `message`.
    Fail {
        /// Why, naming the node.
        message: String,
    },
    /// Every node runs as wanted: the instance is READY (the rows in `drop` go).
    Ready {
        /// Rows to delete.
        drop: Vec<Uuid>,
    },
}

/// How long hosts may be silent and operations may wait for them.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A host silent this long is down (`--host-timeout`).
    pub host: Duration,
    /// A create or update waiting this long for a node on a down host places it again
    /// (`--operation-deadline`).
    pub deadline: Duration,
}

/// The next step of `op` on `m` (`None` once deleted) with its `nodes`, at `now`;
/// `discovery_applied` says whether the discovery endpoint's host applied its current
/// node list. Nodes being removed from silent hosts are not waited for: their agents
/// stop them when they return, and their rows (and addresses) stay until then.
pub fn decide(
    op: &OperationRow,
    m: Option<&MemcacheRow>,
    nodes: &[MemcacheNodeRow],
    discovery_applied: bool,
    now: DateTime<Utc>,
    t: Timeouts,
) -> Step {
    let timeout = t.host;
    if m.is_none() {
        return Step::Gone;
    }
    let stopped =
        |n: &MemcacheNodeRow| n.removing && n.host_applied_generation >= n.desired_generation;
    let silent = |n: &MemcacheNodeRow| !heartbeat_fresh(n.host_last_heartbeat_at, now, timeout);
    if op.verb == OperationVerb::Delete {
        let left = nodes.iter().filter(|n| !stopped(n) && !silent(n)).count();
        if left == 0 {
            return Step::Remove;
        }
        return Step::Wait {
            drop: nodes.iter().filter(|n| stopped(n)).map(|n| n.id).collect(),
            percent: 50,
            detail: format!("waiting for {left} node(s) to stop"),
        };
    }
    let drop: Vec<Uuid> = nodes.iter().filter(|n| stopped(n)).map(|n| n.id).collect();
    if let Some((n, why)) = nodes.iter().find_map(|n| Some((n, start_error(n)?))) {
        return Step::Fail {
            message: format!(
                "node {} in zone {} could not start: {why}",
                n.node_id(),
                n.zone_id
            ),
        };
    }
    let live: Vec<&MemcacheNodeRow> = nodes.iter().filter(|n| !n.removing).collect();
    let ready_now = |n: &MemcacheNodeRow| node_state(n, now, timeout) == MemcacheNodeState::Ready;
    let overdue = now
        .signed_duration_since(op.created_at)
        .to_std()
        .is_ok_and(|age| age > t.deadline);
    if let Some(stuck) = live.iter().find(|n| overdue && silent(n) && !ready_now(n)) {
        let since = stuck
            .host_last_heartbeat_at
            .map_or_else(|| "ever".to_string(), |t| t.to_rfc3339());
        return Step::Replace {
            node: stuck.id,
            message: format!(
                "node {} in zone {} could not come up: its host {} has been silent since {since}",
                stuck.node_id(),
                stuck.zone_id,
                stuck.host_id
            ),
        };
    }
    let ready = live.iter().filter(|n| ready_now(n)).count();
    let stopping = nodes
        .iter()
        .filter(|n| n.removing && !stopped(n) && !silent(n))
        .count();
    if ready == live.len() && stopping == 0 && discovery_applied {
        return Step::Ready { drop };
    }
    let mut detail = format!("{ready} of {} nodes ready", live.len());
    if stopping > 0 {
        detail.push_str(&format!(", {stopping} stopping"));
    }
    if !discovery_applied {
        detail.push_str(", discovery endpoint being updated");
    }
    Step::Wait {
        drop,
        percent: (ready * 100 / (live.len() + stopping).max(1)) as i32,
        detail,
    }
}

/// Moves one Memcached operation forward (the caller holds the operation's row lock);
/// a no-op when another transaction holds the instance.
pub async fn advance(
    state: &AppState,
    tx: &mut PgConnection,
    op: &OperationRow,
) -> ApiResult<Option<Finished>> {
    let m = match op.memcache_instance_id {
        Some(id) => match db::try_lock(&mut *tx, id).await? {
            TryLock::Busy => return Ok(None),
            TryLock::Gone => None,
            TryLock::Locked(m) => Some(*m),
        },
        None => None,
    };
    let Some(m) = m else {
        return finish_gone(tx, op).await;
    };
    let mut nodes = db::nodes_of(&mut *tx, &[m.id]).await?;
    // Host silence counts from this process's grace start at the earliest, as for Redis
    // nodes (docs/architecture.md#automatic-failover).
    let from = state
        .grace
        .seen(Utc::now(), grace::stall(state.config.host_timeout));
    for n in &mut nodes {
        if let Some(last) = n.host_last_heartbeat_at.as_mut() {
            *last = (*last).max(from);
        }
    }
    let discovery_applied = match (&m.discovery_host_id, m.discovery_generation) {
        (Some(h), Some(g)) => hosts::get(&mut *tx, h)
            .await?
            .is_some_and(|h| h.applied_generation >= g),
        _ => true,
    };
    let timeout = state.config.host_timeout;
    let now = Utc::now();
    let t = Timeouts {
        host: timeout,
        deadline: state.config.operation_deadline,
    };
    match decide(op, Some(&m), &nodes, discovery_applied, now, t) {
        Step::Gone => finish_gone(tx, op).await,
        Step::Remove => {
            // Nodes still on silent hosts: their agents stop them on return, as they
            // left their configs; the range waits for that.
            let held: Vec<(String, i64)> = nodes
                .iter()
                .filter(|n| n.host_applied_generation < n.desired_generation)
                .map(|n| (n.host_id.clone(), n.desired_generation))
                .collect();
            remove(tx, &m, &held).await?;
            operations::finish_memcache(tx, op.id, Ok(None)).await
        }
        Step::Wait {
            drop,
            percent,
            detail,
        } => {
            db::delete_nodes(tx, &drop).await?;
            operations::set_progress(tx, op.id, percent, &detail).await?;
            Ok(None)
        }
        Step::Ready { drop } => {
            db::delete_nodes(tx, &drop).await?;
            db::set_state(tx, m.id, MemcacheInstanceState::Ready, "").await?;
            let row = db::get_by_id(&mut *tx, m.id).await?.unwrap_or(m);
            let nodes = db::nodes_of(&mut *tx, &[row.id]).await?;
            let wire = to_wire(&row, &nodes, now, timeout);
            operations::finish_memcache(tx, op.id, Ok(Some(&wire))).await
        }
        Step::Fail { message } => fail(state, tx, op, &m, &nodes, message).await,
        Step::Replace { node, message } => {
            if replace(state, tx, &m, &nodes, node).await? {
                let detail = format!("{message}: placed again on another host");
                tracing::warn!(instance = %m.full_name(), %node, "memcached node on a silent host placed again");
                operations::set_progress(tx, op.id, 0, &detail).await?;
                return Ok(None);
            }
            let message = format!("{message}, and no other host has room");
            fail(state, tx, op, &m, &nodes, message).await
        }
    }
}

/// Takes `node` off its silent host and places a new node in its stead (the discovery
/// list changes). `false` when no host has room: nothing is changed then.
async fn replace(
    state: &AppState,
    tx: &mut PgConnection,
    m: &MemcacheRow,
    nodes: &[MemcacheNodeRow],
    node: Uuid,
) -> ApiResult<bool> {
    let timeout = state.config.host_timeout;
    let mut candidates = crate::scheduler::load_candidates(&mut *tx, &m.region_id, timeout).await?;
    db::lock_hosts(&mut *tx, m.id).await?;
    // Placed as if the stuck node were gone; it keeps its address until its host returns.
    let others: Vec<MemcacheNodeRow> = nodes
        .iter()
        .map(|n| MemcacheNodeRow {
            removing: n.removing || n.id == node,
            ..n.clone()
        })
        .collect();
    let mut touched = Touched::default();
    sqlx::query("savepoint memcache_replace")
        .execute(&mut *tx)
        .await?;
    match nodes::add(tx, m, &others, 1, &mut candidates, &mut touched).await {
        Ok(()) => {}
        Err(crate::error::ApiError::ResourceExhausted(_)) => {
            sqlx::query("rollback to savepoint memcache_replace")
                .execute(&mut *tx)
                .await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    nodes::remove(tx, nodes, &[node], &mut touched).await?;
    nodes::refresh_discovery(tx, m, true, timeout, &mut touched).await?;
    Ok(true)
}

/// Ends an operation whose node could not start. A failed create is rolled back: every
/// node leaves its host and a delete operation removes the instance. Other operations
/// leave it FAILED (it can be updated again or deleted).
async fn fail(
    state: &AppState,
    tx: &mut PgConnection,
    op: &OperationRow,
    m: &MemcacheRow,
    nodes: &[MemcacheNodeRow],
    message: String,
) -> ApiResult<Option<Finished>> {
    let status = Status {
        code: 503,
        status: "UNAVAILABLE".into(),
        message: message.clone(),
        details: Vec::new(),
    };
    let finished = operations::finish_memcache(tx, op.id, Err(&status)).await?;
    if op.verb != OperationVerb::Create {
        db::set_state(tx, m.id, MemcacheInstanceState::Failed, &message).await?;
        return Ok(finished);
    }
    crate::db::hosts::lock_region(&mut *tx, &m.region_id).await?;
    db::lock_hosts(&mut *tx, m.id).await?;
    let mut touched = Touched::default();
    let ids: Vec<Uuid> = nodes.iter().map(|n| n.id).collect();
    nodes::remove(tx, nodes, &ids, &mut touched).await?;
    if let Some(host) = &m.discovery_host_id {
        touched.generation(tx, host).await?;
    }
    db::set_discovery(tx, m.id, None, None, true).await?;
    let why = format!("create failed, cleaning up: {message}");
    db::set_state(tx, m.id, MemcacheInstanceState::Deleting, &why).await?;
    let target = m.target();
    let cleanup = target.new_operation(
        Uuid::new_v4(),
        OperationVerb::Delete,
        "cleaning up after a failed create",
    );
    operations::insert_for_memcache(tx, cleanup, m.id).await?;
    let _ = state;
    Ok(finished)
}

async fn finish_gone(tx: &mut PgConnection, op: &OperationRow) -> ApiResult<Option<Finished>> {
    let gone = Status {
        code: 404,
        status: "NOT_FOUND".into(),
        message: "the Memcached instance no longer exists".into(),
        details: Vec::new(),
    };
    let result = match op.verb {
        OperationVerb::Delete => Ok(None),
        _ => Err(&gone),
    };
    operations::finish_memcache(tx, op.id, result).await
}

/// The periodic Memcached work: discovery endpoints off silent hosts, and the rows of
/// nodes left on hosts that were silent when their operation ended, once those hosts
/// stopped them.
pub async fn sweep(state: &AppState) -> ApiResult<()> {
    move_stranded_discovery(state).await?;
    let gone = db::delete_stopped_idle(&state.pool).await?;
    if gone > 0 {
        tracing::info!(
            nodes = gone,
            "memcached nodes stopped by returning hosts forgotten"
        );
    }
    Ok(())
}

/// Moves each discovery endpoint whose host has gone silent to the host of another of
/// its nodes (both hosts get a new generation). Instances another transaction holds are
/// left to the next sweep.
pub async fn move_stranded_discovery(state: &AppState) -> ApiResult<()> {
    let timeout = state.config.host_timeout;
    // Within the grace period after this process's start (or a database outage) no
    // host's silence counts yet.
    let now = Utc::now();
    let from = state.grace.seen(now, grace::stall(timeout));
    if now.signed_duration_since(from).to_std().unwrap_or_default() < timeout {
        return Ok(());
    }
    for id in db::stranded_discovery(&state.pool, timeout).await? {
        let mut tx = state.pool.begin().await?;
        let TryLock::Locked(m) = db::try_lock(&mut tx, id).await? else {
            continue;
        };
        crate::db::hosts::lock_region(&mut tx, &m.region_id).await?;
        if ops::lock_running_of_memcache(&mut tx, id).await?.is_some()
            && m.state == MemcacheInstanceState::Deleting
        {
            continue;
        }
        db::lock_hosts(&mut tx, id).await?;
        let mut touched = Touched::default();
        nodes::refresh_discovery(&mut tx, &m, false, timeout, &mut touched).await?;
        tx.commit().await?;
        if touched.any() {
            tracing::warn!(instance = %m.full_name(), from = ?m.discovery_host_id, "discovery endpoint moved off a silent host");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use cacheplane_types::MemcacheNodeReport;
    use sqlx::types::Json;

    use super::*;

    fn op(verb: OperationVerb) -> OperationRow {
        crate::fixtures::operation(verb, serde_json::json!({}))
    }

    fn node(
        ordinal: i32,
        removing: bool,
        applied: i64,
        report: Option<(bool, Option<&str>)>,
    ) -> MemcacheNodeRow {
        MemcacheNodeRow {
            id: Uuid::from_u128(ordinal as u128),
            instance_id: Uuid::nil(),
            ordinal,
            host_id: "h".into(),
            zone_id: "z".into(),
            address: "10.0.0.2/32".parse().unwrap(),
            memory_bytes: 1 << 30,
            parameters: Json(BTreeMap::new()),
            parameters_id: String::new(),
            desired_generation: 3,
            removing,
            observed: report.map(|(up, err)| {
                Json(MemcacheNodeReport {
                    process_up: up,
                    error: err.map(str::to_string),
                    ..Default::default()
                })
            }),
            observed_generation: report.map(|_| applied),
            host_applied_generation: applied,
            host_last_heartbeat_at: Some(Utc::now()),
        }
    }

    fn row() -> MemcacheRow {
        MemcacheRow {
            id: Uuid::nil(),
            project_id: "p".into(),
            region_id: "r".into(),
            name: "m".into(),
            display_name: String::new(),
            labels: Json(BTreeMap::new()),
            network_id: Uuid::nil(),
            network_name: "projects/p/networks/default".into(),
            network_ip_range: "10.0.0.0/16".parse().unwrap(),
            zones: vec!["z".into()],
            node_count: 1,
            cpu_count: 1,
            memory_size_mb: 1024,
            memcache_version: "MEMCACHE_1_6".into(),
            parameters: Json(BTreeMap::new()),
            parameters_id: String::new(),
            discovery_host_id: None,
            discovery_generation: None,
            config_version: 1,
            state: MemcacheInstanceState::Creating,
            status_message: String::new(),
            range: None,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn operations_move_on_what_the_nodes_report() {
        let t = Timeouts {
            host: Duration::from_secs(10),
            deadline: Duration::from_secs(120),
        };
        let now = Utc::now();
        let m = row();
        let create = op(OperationVerb::Create);
        let up = node(1, false, 3, Some((true, None)));
        let starting = node(2, false, 2, None);
        let failed = node(2, false, 3, Some((false, Some("bind: address in use"))));
        let stopped = node(3, true, 3, None);
        let stopping = node(3, true, 2, None);
        assert_eq!(decide(&create, None, &[], true, now, t), Step::Gone);
        assert_eq!(
            decide(&create, Some(&m), std::slice::from_ref(&up), true, now, t),
            Step::Ready { drop: vec![] }
        );
        assert!(matches!(
            decide(&create, Some(&m), std::slice::from_ref(&up), false, now, t),
            Step::Wait { .. }
        ));
        assert!(matches!(
            decide(&create, Some(&m), &[up.clone(), starting], true, now, t),
            Step::Wait { percent: 50, .. }
        ));
        let Step::Fail { message } = decide(&create, Some(&m), &[up.clone(), failed], true, now, t)
        else {
            panic!("a node that cannot start fails the operation");
        };
        assert!(
            message.contains("node-2") && message.contains("address in use"),
            "{message}"
        );
        let update = op(OperationVerb::Update);
        assert_eq!(
            decide(
                &update,
                Some(&m),
                &[up.clone(), stopped.clone()],
                true,
                now,
                t
            ),
            Step::Ready {
                drop: vec![stopped.id]
            }
        );
        assert!(matches!(
            decide(
                &update,
                Some(&m),
                &[up.clone(), stopping.clone()],
                true,
                now,
                t
            ),
            Step::Wait { .. }
        ));
        let delete = op(OperationVerb::Delete);
        assert_eq!(
            decide(
                &delete,
                Some(&m),
                std::slice::from_ref(&stopped),
                true,
                now,
                t
            ),
            Step::Remove
        );
        assert!(matches!(
            decide(
                &delete,
                Some(&m),
                std::slice::from_ref(&stopping),
                true,
                now,
                t
            ),
            Step::Wait { .. }
        ));
        let mut silent = stopping;
        silent.host_last_heartbeat_at = Some(now - chrono::Duration::seconds(60));
        assert_eq!(
            decide(&delete, Some(&m), &[silent], true, now, t),
            Step::Remove
        );
    }
}
