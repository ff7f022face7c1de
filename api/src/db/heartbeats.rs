//! A heartbeat's SQL: two statements in one transaction, whatever the number of nodes.
//!
//! A thousand agents send a thousand heartbeats a second, so each round trip counts: the
//! first statement locks the host row and records the beat, the second stores every
//! node's report, removes the nodes the agent stopped, and reads what the background
//! work should look at next. The host row is locked (by the first) before any node row
//! is written (by the second): the order every other transaction that changes nodes
//! keeps (see `instances::lock_region_hosts`), so they never deadlock.

use cacheplane_types::NodeReport;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiResult;

/// What the host row held when a heartbeat locked it.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Beat {
    /// The current config generation.
    pub generation: i64,
    /// The generation the agent had reported applied before this heartbeat.
    pub applied_generation: i64,
}

/// Locks the host row for the rest of the transaction and records a heartbeat now that
/// reports `applied` (with `free_memory_bytes`): the applied generation and free memory
/// are kept only from a report at least as new as the last one. Returns the row's
/// generations from before the beat; `None` when the host is not registered or `applied`
/// is newer than its generation (nothing is written then).
pub async fn record_beat(
    conn: &mut PgConnection,
    host: &str,
    applied: i64,
    free_memory_bytes: Option<i64>,
) -> ApiResult<Option<Beat>> {
    Ok(sqlx::query_as(
        r#"with cur as (
               select id, generation, applied_generation from host where id = $1 for update
           )
           update host h set last_heartbeat_at = now(),
               applied_generation = case when $2 >= cur.applied_generation
                   then $2 else h.applied_generation end,
               free_memory_bytes = case when $2 >= cur.applied_generation
                   then $3 else h.free_memory_bytes end
           from cur where h.id = cur.id and $2 <= cur.generation
           returning cur.generation, cur.applied_generation"#,
    )
    .bind(host)
    .bind(applied)
    .bind(free_memory_bytes)
    .fetch_optional(&mut *conn)
    .await?)
}

/// What a current report leaves for the background work.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Recorded {
    /// Unfinished operations on instances with a node or connector on the host, or a node
    /// just removed from it.
    pub operations: Vec<Uuid>,
    /// READY instances with one of the `unwell` nodes on the host, and REPAIRING ones
    /// with any node there.
    pub instances: Vec<Uuid>,
    /// Whether the host holds quarantined ranges that `applied` releases.
    pub releases: bool,
}

/// Stores a current report (the caller holds the host's lock from [`record_beat`]):
/// each node's observed state at generation `applied`, and the removal of the nodes
/// being removed whose removal the agent applied and that it no longer reports.
pub async fn record_reports(
    conn: &mut PgConnection,
    host: &str,
    applied: i64,
    reports: &[NodeReport],
    unwell: &[Uuid],
) -> ApiResult<Recorded> {
    let ids: Vec<Uuid> = reports.iter().map(|r| r.node_id).collect();
    let observed: Vec<Json<&NodeReport>> = reports.iter().map(Json).collect();
    Ok(sqlx::query_as(
        r#"with reported as (
               select * from unnest($3::uuid[], $4::jsonb[]) as r(id, observed)
           ), updated as (
               update node n set observed = r.observed, observed_generation = $2,
                   observed_at = now()
               from reported r where n.id = r.id and n.host_id = $1
               returning n.id
           ), gone as (
               delete from node where host_id = $1 and removing and desired_generation <= $2
                   and not (id = any($3)) returning instance_id
           )
           select
               array(select o.id from operation o where not o.done and (
                   o.instance_id in (select instance_id from gone)
                   or o.instance_id in (select instance_id from node where host_id = $1)
                   or o.connector_id in (select id from connector where host_id = $1)
               )) as operations,
               array(select distinct n.instance_id from node n
                   join instance i on i.id = n.instance_id
                   where n.host_id = $1
                       and (i.state = 'REPAIRING' or (i.state = 'READY' and n.id = any($5)))
               ) as instances,
               exists(select 1 from range_quarantine
                   where host_id = $1 and generation <= $2) as releases"#,
    )
    .bind(host)
    .bind(applied)
    .bind(&ids)
    .bind(&observed)
    .bind(unwell)
    .fetch_one(&mut *conn)
    .await?)
}
