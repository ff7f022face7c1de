//! Health of instances between operations: a READY instance whose node goes down (its
//! engine stopped, or its host went silent) becomes REPAIRING with a status message, and
//! READY again once every node is back. Failover of a lost primary builds on this.

use cacheplane_types::NodeState;
use chrono::Utc;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::instances::render;
use crate::instances::store;
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
    let sick: Vec<String> = nodes
        .iter()
        .filter(|n| !n.removing)
        .filter_map(|n| {
            let s = render::node_state(n, now, state.config.host_timeout);
            (s != NodeState::Ready).then(|| {
                format!(
                    "{} node {} in zone {} is {s:?}",
                    n.role.to_lowercase(),
                    n.id,
                    n.zone_id
                )
                .replace("Down", "down")
                .replace("Creating", "starting")
                .replace("Failed", "failed")
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
