//! `request` rows: which operation a client's `requestId` produced.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

/// Records that `request_id` of `project` produced operation `op`; `false` when the id
/// is already recorded (a concurrent twin waits here until the first commits).
pub async fn insert(
    conn: &mut PgConnection,
    project: &str,
    request_id: Uuid,
    fingerprint: &str,
    op: Uuid,
) -> ApiResult<bool> {
    let inserted = sqlx::query(
        r#"insert into request (project_id, request_id, fingerprint, operation_id)
           values ($1, $2, $3, $4) on conflict do nothing"#,
    )
    .bind(project)
    .bind(request_id)
    .bind(fingerprint)
    .bind(op)
    .execute(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        // An admin may name any project; one that does not exist has nothing to change.
        Some("request_project_id_fkey") => {
            ApiError::NotFound(format!("project '{project}' not found"))
        }
        _ => e.into(),
    })?
    .rows_affected();
    Ok(inserted == 1)
}

/// A recorded request.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    /// Digest of what the request asked for.
    pub fingerprint: String,
    /// The operation it produced.
    pub operation_id: Uuid,
}

/// The recorded request of `request_id`.
pub async fn get(
    conn: &mut PgConnection,
    project: &str,
    request_id: Uuid,
) -> ApiResult<RequestRow> {
    Ok(sqlx::query_as(
        "select fingerprint, operation_id from request where project_id = $1 and request_id = $2",
    )
    .bind(project)
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await?)
}

/// Points the requests recorded for operation `from` at operation `to`.
pub async fn repoint(conn: &mut PgConnection, from: Uuid, to: Uuid) -> ApiResult<()> {
    sqlx::query("update request set operation_id = $1 where operation_id = $2")
        .bind(to)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
