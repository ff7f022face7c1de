//! Drives unfinished operations forward from what the agents report: CREATING, UPDATING
//! and FAILING_OVER become READY once every node runs its current configuration (and
//! every replica is linked); DELETING ends once every node has stopped. Each step reads
//! the database afresh and is idempotent, so it runs after every heartbeat, after an API
//! restart, and on whichever replica gets the row lock first.

use std::time::Duration;

use cacheplane_types::{NodeState, Status};
use chrono::Utc;
use ipnet::IpNet;
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::instances::store::{self, InstanceRow, NodeRow};
use crate::instances::{render, touch_nodes};
use crate::operations::{self, NewOperation, OperationRow};
use crate::state::AppState;
use crate::{alloc, networks};

/// Looks at unfinished operations every `worker_interval` until shutdown.
pub async fn run_worker(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(state.config.worker_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = sweep(&state).await {
                    tracing::warn!(error = %e, "operation sweep failed; will retry");
                }
            }
        }
    }
}

async fn sweep(state: &AppState) -> ApiResult<()> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from operation where not done and instance_id is not null order by created_at limit 1000",
    )
    .fetch_all(&state.pool)
    .await?;
    for id in ids {
        advance(state, id).await?;
    }
    for id in crate::health::suspects(state).await? {
        crate::health::check(state, id).await?;
    }
    Ok(())
}

/// Moves one operation forward if it can; a no-op when another worker holds it or it is
/// done.
pub async fn advance(state: &AppState, op_id: Uuid) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let op: Option<OperationRow> =
        sqlx::query_as("select * from operation where id = $1 and not done for update skip locked")
            .bind(op_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(op) = op else { return Ok(()) };
    let inst = match op.instance_id {
        Some(id) => {
            // Skip an instance another transaction holds (a delete, a patch): waiting for
            // it while holding the operation row would deadlock with a delete, which
            // locks the instance and then its operation. The next sweep retries.
            let locked: Option<i32> =
                sqlx::query_scalar("select 1 from instance where id = $1 for update skip locked")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if locked.is_none() {
                let exists: bool =
                    sqlx::query_scalar("select exists(select 1 from instance where id = $1)")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                if exists {
                    return Ok(());
                }
            }
            store::get_by_id(&mut *tx, id).await?
        }
        None => None,
    };
    let Some(inst) = inst else {
        // The instance is gone: a delete has succeeded; anything else cannot go on.
        let gone = gone_status();
        let result = if op.verb == "delete" {
            Ok(None)
        } else {
            Err(&gone)
        };
        operations::finish(&mut tx, op.id, result).await?;
        tx.commit().await?;
        return Ok(());
    };
    if op.verb == "delete" {
        advance_delete(state, &mut tx, &op, &inst).await?;
    } else {
        advance_converge(state, &mut tx, &op, &inst).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn gone_status() -> Status {
    Status {
        code: 404,
        status: "NOT_FOUND".into(),
        message: "the instance no longer exists".into(),
        details: Vec::new(),
    }
}

async fn advance_delete(
    state: &AppState,
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
) -> ApiResult<()> {
    // A node whose host is down cannot be stopped now; its agent stops it on return,
    // since the node is no longer in its host's config.
    sqlx::query(
        r#"delete from node n using host h
           where n.host_id = h.id and n.instance_id = $1 and n.removing
             and (h.last_heartbeat_at is null or h.last_heartbeat_at < now() - make_interval(secs => $2))"#,
    )
    .bind(inst.id)
    .bind(state.config.host_timeout.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let left: i64 = sqlx::query_scalar("select count(*) from node where instance_id = $1")
        .bind(inst.id)
        .fetch_one(&mut *tx)
        .await?;
    if left > 0 {
        return operations::set_progress(
            tx,
            op.id,
            50,
            &format!("waiting for {left} node(s) to stop"),
        )
        .await;
    }
    let ranges: Vec<(Uuid, IpNet)> =
        sqlx::query_as("select network_id, range::inet from address_range where instance_id = $1")
            .bind(inst.id)
            .fetch_all(&mut *tx)
            .await?;
    for (network, range) in ranges {
        let net = networks::get_by_id(&mut *tx, network).await?;
        alloc::lock_network(&mut *tx, network).await?;
        if let IpNet::V4(r) = range {
            sqlx::query("delete from address_range where instance_id = $1 and range = $2::cidr")
                .bind(inst.id)
                .bind(range)
                .execute(&mut *tx)
                .await?;
            alloc::free(&mut *tx, network, net.pool(), r).await?;
        }
    }
    sqlx::query("delete from instance where id = $1")
        .bind(inst.id)
        .execute(&mut *tx)
        .await?;
    operations::finish(tx, op.id, Ok(None)).await
}

async fn advance_converge(
    state: &AppState,
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
) -> ApiResult<()> {
    let nodes: Vec<NodeRow> = store::nodes_of(&mut *tx, &[inst.id]).await?;
    let now = Utc::now();
    let timeout: Duration = state.config.host_timeout;
    // A failover waits only for the promoted node and the nodes that are well: nodes on
    // hosts that are down apply the new roles when they come back (an old primary rejoins
    // as a replica), and a node that is down or failing is left to the health monitor
    // (the instance is then REPAIRING) rather than failing the failover.
    let promoted: Option<Uuid> = op.params.0["newPrimary"]
        .as_str()
        .and_then(|s| s.parse().ok());
    let states: Vec<(&NodeRow, NodeState)> = nodes
        .iter()
        .map(|n| (n, render::node_state(n, now, timeout)))
        .filter(|(n, s)| {
            op.verb != "failover"
                || Some(n.id) == promoted
                || (render::host_up(n, now, timeout)
                    && !matches!(s, NodeState::Failed | NodeState::Down))
        })
        .collect();
    if let Some((failed, _)) = states.iter().find(|(_, s)| *s == NodeState::Failed) {
        let reason = failed
            .observed
            .as_ref()
            .and_then(|o| o.0.error.clone())
            .unwrap_or_else(|| "unknown error".into());
        let message = format!(
            "node {} in zone {} could not start: {reason}",
            failed.id, failed.zone_id
        );
        return fail(tx, op, inst, message).await;
    }
    let total = states.len().max(1);
    let ready = states
        .iter()
        .filter(|(_, s)| *s == NodeState::Ready)
        .count();
    let removing = states
        .iter()
        .filter(|(_, s)| *s == NodeState::Deleting)
        .count();
    if removing == 0 && ready == total {
        sqlx::query(
            r#"update instance set state = 'READY', status_message = '', version = version + 1,
                   updated_at = now() where id = $1"#,
        )
        .bind(inst.id)
        .execute(&mut *tx)
        .await?;
        let inst = store::get_by_id(&mut *tx, inst.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("instance vanished under its row lock"))?;
        let wire = render::to_wire(&inst, &nodes, now, timeout);
        return operations::finish(tx, op.id, Ok(Some(&wire))).await;
    }
    let progress = (ready * 100 / (total + removing)) as i32;
    let detail = if removing > 0 {
        format!("{ready} of {total} nodes ready, {removing} stopping")
    } else {
        format!("{ready} of {total} nodes ready")
    };
    operations::set_progress(tx, op.id, progress, &detail).await
}

/// Ends an operation whose node could not start. A failed create is rolled back: the
/// instance is deleted so that nothing stays allocated. Other operations leave the
/// instance FAILED, which can still be deleted.
async fn fail(
    tx: &mut PgConnection,
    op: &OperationRow,
    inst: &InstanceRow,
    message: String,
) -> ApiResult<()> {
    crate::instances::lock_region_hosts(&mut *tx, &inst.region_id).await?;
    let status = Status {
        code: 503,
        status: "UNAVAILABLE".into(),
        message: message.clone(),
        details: Vec::new(),
    };
    operations::finish(tx, op.id, Err(&status)).await?;
    if op.verb != "create" {
        sqlx::query(
            "update instance set state = 'FAILED', status_message = $2, version = version + 1, updated_at = now() where id = $1",
        )
        .bind(inst.id)
        .bind(&message)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    let nodes: Vec<Uuid> = sqlx::query_scalar(
        "update node set removing = true where instance_id = $1 and not removing returning id",
    )
    .bind(inst.id)
    .fetch_all(&mut *tx)
    .await?;
    touch_nodes(tx, &nodes).await?;
    sqlx::query(
        "update instance set state = 'DELETING', status_message = $2, version = version + 1, updated_at = now() where id = $1",
    )
    .bind(inst.id)
    .bind(format!("create failed, cleaning up: {message}"))
    .execute(&mut *tx)
    .await?;
    let target = inst.full_name();
    operations::insert(
        tx,
        NewOperation {
            id: Uuid::new_v4(),
            project: &inst.project_id,
            region: &inst.region_id,
            verb: "delete",
            target: &target,
            instance: Some(inst.id),
            detail: "cleaning up after a failed create",
            params: serde_json::json!({ "reason": "create failed" }),
        },
    )
    .await?;
    Ok(())
}
