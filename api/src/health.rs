//! Health of instances between operations: a READY instance whose node goes down (its
//! engine stopped, or its host went silent) becomes REPAIRING with a status message, and
//! READY again once every node is back. Failover of a lost primary builds on this.

use cacheplane_types::{NodeRole, NodeState};
use chrono::Utc;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::instances::store;
use crate::instances::{failover, render};
use crate::state::AppState;

/// Instances worth a look now: READY ones with a node on a silent host, and every
/// REPAIRING one.
pub async fn suspects(state: &AppState) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"select i.id from instance i where i.state = 'REPAIRING'
           union
           select distinct n.instance_id from node n
               join host h on h.id = n.host_id join instance i on i.id = n.instance_id
           where i.state = 'READY' and not n.removing
             and (h.last_heartbeat_at is null or h.last_heartbeat_at < now() - make_interval(secs => $1))"#,
    )
    .bind(state.config.host_timeout.as_secs_f64())
    .fetch_all(&state.pool)
    .await?)
}

/// Re-evaluates one instance that has no operation running.
pub async fn check(state: &AppState, instance: Uuid) -> ApiResult<()> {
    let mut tx = state.pool.begin().await?;
    let locked: Option<String> = sqlx::query_scalar(
        r#"select state from instance i where id = $1 and state in ('READY', 'REPAIRING')
             and not exists (select 1 from operation o where o.instance_id = i.id and not o.done)
           for update skip locked"#,
    )
    .bind(instance)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = locked else {
        return Ok(());
    };
    let nodes = store::nodes_of(&mut *tx, &[instance]).await?;
    let now = Utc::now();
    if let Some(op) = maybe_fail_over(state, &mut tx, instance, &nodes).await? {
        tx.commit().await?;
        // The promotion may already be applied by the time the agents answer.
        return crate::reconcile::advance(state, op).await;
    }
    let sick: Vec<String> = nodes
        .iter()
        .filter(|n| !n.removing)
        .filter_map(|n| {
            let s = render::node_state(n, now, state.config.host_timeout);
            (s != NodeState::Ready).then(|| {
                let what = match s {
                    NodeState::Down => "down",
                    NodeState::Failed => "failed",
                    NodeState::Deleting => "stopping",
                    NodeState::Creating | NodeState::Ready => "starting",
                };
                format!(
                    "{} node {} in zone {} is {what}",
                    n.role.to_lowercase(),
                    n.id,
                    n.zone_id
                )
            })
        })
        .collect();
    let (next, message) = if sick.is_empty() {
        ("READY", String::new())
    } else {
        ("REPAIRING", sick.join("; "))
    };
    sqlx::query(
        r#"update instance set state = $2, status_message = $3, version = version + 1, updated_at = now()
           where id = $1 and (state, status_message) is distinct from ($2, $3)"#,
    )
    .bind(instance)
    .bind(next)
    .bind(&message)
    .execute(&mut *tx)
    .await?;
    if next != current {
        tracing::info!(%instance, from = %current, to = next, %message, "instance health changed");
    }
    tx.commit().await?;
    Ok(())
}

/// Starts an automatic failover when a STANDARD_HA instance's primary is lost (its engine
/// reported down, or its host silent past the host timeout) and a replica can take over.
async fn maybe_fail_over(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    instance: Uuid,
    nodes: &[store::NodeRow],
) -> ApiResult<Option<Uuid>> {
    let now = Utc::now();
    let timeout = state.config.host_timeout;
    let Some(primary) = nodes
        .iter()
        .find(|n| !n.removing && render::role(n) == NodeRole::Primary)
    else {
        return Ok(None);
    };
    let primary_state = render::node_state(primary, now, timeout);
    if !matches!(primary_state, NodeState::Down | NodeState::Failed) {
        return Ok(None);
    }
    let Some(inst) = store::get_by_id(&mut *tx, instance).await? else {
        return Ok(None);
    };
    if inst.tier_id != "STANDARD_HA" {
        return Ok(None);
    }
    let Some(next) = failover::successor(nodes, &primary.zone_id, now, timeout) else {
        return Ok(None);
    };
    let reason = if render::host_up(primary, now, timeout) {
        format!("the primary's engine in {} is down", primary.zone_id)
    } else {
        format!(
            "the primary's host {} in {} stopped heartbeating",
            primary.host_id, primary.zone_id
        )
    };
    let op = failover::start_automatic(tx, &inst, nodes, primary, next, &reason).await?;
    Ok(Some(op))
}
