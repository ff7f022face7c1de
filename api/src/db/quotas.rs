//! What a project uses, for its quotas, under a lock on its `project` row.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::ApiResult;

/// Locks the project's row until the end of the transaction, so that quota checks of one
/// project run one at a time. `for no key update` leaves the row's key free: inserting
/// rows that reference the project (operations, requests) does not wait for it.
pub async fn lock_project(conn: &mut PgConnection, project: &str) -> ApiResult<()> {
    sqlx::query("select 1 from project where id = $1 for no key update")
        .bind(project)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// A project's instances (Redis and Memcached) and their memory over every node, in GB.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct InstanceUsage {
    /// Instances, those being deleted included.
    pub instances: i64,
    /// Sum of `memory_size_gb * (1 + replica_count)`.
    pub memory_gb: i64,
}

/// What the project's instances use, leaving `except` out (the instance being resized).
pub async fn instance_usage(
    conn: &mut PgConnection,
    project: &str,
    except: Option<Uuid>,
) -> ApiResult<InstanceUsage> {
    // Memcached instances count too: their memory is nodeCount × memorySizeMb, in GB
    // rounded up.
    Ok(sqlx::query_as(
        r#"select count(*) as instances, coalesce(sum(gb), 0)::bigint as memory_gb from (
               select memory_size_gb::bigint * (1 + replica_count) as gb
               from instance where project_id = $1 and id is distinct from $2
               union all
               select (node_count::bigint * memory_size_mb + 1023) / 1024
               from memcache_instance where project_id = $1 and id is distinct from $2
           ) u"#,
    )
    .bind(project)
    .bind(except)
    .fetch_one(&mut *conn)
    .await?)
}

/// How many networks the project has.
pub async fn network_count(conn: &mut PgConnection, project: &str) -> ApiResult<i64> {
    Ok(
        sqlx::query_scalar("select count(*) from network where project_id = $1")
            .bind(project)
            .fetch_one(&mut *conn)
            .await?,
    )
}
