//! Removal of finished operations and `requestId` claims past the retention.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::error::ApiResult;

/// The most rows one statement removes, so a large backlog never holds long locks.
pub const BATCH: i64 = 1000;

/// Removes up to [`BATCH`] operations that ended before `cutoff` (their `request` rows
/// go with them, by cascade); returns how many.
pub async fn delete_operations(db: impl PgExecutor<'_>, cutoff: DateTime<Utc>) -> ApiResult<u64> {
    Ok(sqlx::query(
        r#"delete from operation where id in (
               select id from operation where done and ended_at < $1 limit $2)"#,
    )
    .bind(cutoff)
    .bind(BATCH)
    .execute(db)
    .await?
    .rows_affected())
}

/// Removes up to [`BATCH`] `requestId` claims made before `cutoff` whose operation has
/// finished (a claim of a running operation stays while it runs); returns how many.
pub async fn delete_requests(db: impl PgExecutor<'_>, cutoff: DateTime<Utc>) -> ApiResult<u64> {
    Ok(sqlx::query(
        r#"delete from request where (project_id, request_id) in (
               select r.project_id, r.request_id from request r
               join operation o on o.id = r.operation_id
               where r.created_at < $1 and o.done
               limit $2)"#,
    )
    .bind(cutoff)
    .bind(BATCH)
    .execute(db)
    .await?
    .rows_affected())
}
