//! The nodes' recent figures (`node_sample`): written by the sampler from the reports
//! already stored on `node`, read by the instance metrics method.

use cacheplane_types::NodeRole;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::ApiResult;

/// The width of one sample's bucket, in seconds.
pub const STEP_SECS: i64 = 10;

/// Copies the current figures of every node whose host reported within the last
/// `fresh` into the 10-second bucket of now, unless that bucket was already sampled
/// (by another replica: then this is one index lookup). Returns the rows written.
pub async fn sample(db: impl PgExecutor<'_>, fresh: std::time::Duration) -> ApiResult<u64> {
    Ok(sqlx::query(
        r#"insert into node_sample (instance_id, node_id, at, zone_id, role, up,
               used_memory_bytes, maxmemory_bytes, connected_clients, commands_processed,
               keyspace_hits, keyspace_misses, lag_bytes)
           with bucket as (
               select to_timestamp(floor(extract(epoch from now()) / $2) * $2) as at
           )
           select n.instance_id, n.id, bucket.at,
               n.zone_id, n.role,
               coalesce((n.observed ->> 'processUp')::boolean, false)
                   and n.observed ->> 'unresponsiveSeconds' is null,
               (n.observed ->> 'usedMemoryBytes')::bigint,
               (n.observed ->> 'maxmemoryBytes')::bigint,
               (n.observed ->> 'connectedClients')::bigint,
               (n.observed ->> 'commandsProcessed')::bigint,
               (n.observed ->> 'keyspaceHits')::bigint,
               (n.observed ->> 'keyspaceMisses')::bigint,
               (n.observed ->> 'lagBytes')::bigint
           from node n, bucket
           where not n.removing and n.observed is not null
               and n.observed_at > now() - make_interval(secs => $1)
               and not exists (select 1 from node_sample s where s.at = bucket.at)
           on conflict do nothing"#,
    )
    .bind(fresh.as_secs_f64())
    .bind(STEP_SECS as f64)
    .execute(db)
    .await?
    .rows_affected())
}

/// Removes the samples older than `keep`; returns how many.
pub async fn prune(db: impl PgExecutor<'_>, keep: std::time::Duration) -> ApiResult<u64> {
    Ok(
        sqlx::query("delete from node_sample where at < now() - make_interval(secs => $1)")
            .bind(keep.as_secs_f64())
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// One node's figures in one bucket.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SampleRow {
    /// The node.
    pub node_id: Uuid,
    /// The bucket's start.
    pub at: DateTime<Utc>,
    /// The node's zone.
    pub zone_id: String,
    /// Its role then, as the control plane recorded it.
    #[sqlx(try_from = "String")]
    pub role: NodeRole,
    /// Whether its engine ran and answered.
    pub up: bool,
    /// `used_memory`.
    pub used_memory_bytes: Option<i64>,
    /// `maxmemory`.
    pub maxmemory_bytes: Option<i64>,
    /// Connected clients.
    pub connected_clients: Option<i64>,
    /// Commands processed since the engine started.
    pub commands_processed: Option<i64>,
    /// Keyspace hits since the engine started.
    pub keyspace_hits: Option<i64>,
    /// Keyspace misses since the engine started.
    pub keyspace_misses: Option<i64>,
    /// For a replica: bytes behind its primary.
    pub lag_bytes: Option<i64>,
}

/// The samples of instance `instance` since `since`, by node, oldest first.
pub async fn of_instance(
    db: impl PgExecutor<'_>,
    instance: Uuid,
    since: DateTime<Utc>,
) -> ApiResult<Vec<SampleRow>> {
    Ok(sqlx::query_as(
        r#"select node_id, at, zone_id, role, up, used_memory_bytes, maxmemory_bytes,
               connected_clients, commands_processed, keyspace_hits, keyspace_misses, lag_bytes
           from node_sample where instance_id = $1 and at >= $2
           order by node_id, at"#,
    )
    .bind(instance)
    .bind(since)
    .fetch_all(db)
    .await?)
}

/// A failover of an instance, for the charts' markers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FailoverRow {
    /// The operation's id.
    pub id: Uuid,
    /// When it was asked for (or started by the health monitor).
    pub created_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub ended_at: Option<DateTime<Utc>>,
    /// Whether it ended with an error.
    pub failed: bool,
}

/// The failover operations of instance `instance` created since `since`, oldest first.
pub async fn failovers(
    db: impl PgExecutor<'_>,
    instance: Uuid,
    since: DateTime<Utc>,
) -> ApiResult<Vec<FailoverRow>> {
    Ok(sqlx::query_as(
        r#"select id, created_at, ended_at, error is not null as failed from operation
           where instance_id = $1 and verb = 'failover' and created_at >= $2
           order by created_at"#,
    )
    .bind(instance)
    .bind(since)
    .fetch_all(db)
    .await?)
}
