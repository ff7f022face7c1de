//! Long-running operations: rows in Postgres that survive an API restart.

use cacheplane_types::{Instance, Operation, OperationMetadata, Status};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::notify;
use crate::paging;

/// An operation row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperationRow {
    pub id: Uuid,
    pub project_id: String,
    pub region_id: String,
    pub verb: String,
    pub target: String,
    pub instance_id: Option<Uuid>,
    pub done: bool,
    pub error: Option<Json<Status>>,
    pub response: Option<Json<Instance>>,
    pub progress: i32,
    pub status_detail: String,
    pub params: Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl OperationRow {
    /// The wire form.
    pub fn to_wire(&self) -> Operation {
        Operation {
            name: format!(
                "projects/{}/locations/{}/operations/{}",
                self.project_id, self.region_id, self.id
            ),
            metadata: OperationMetadata {
                verb: self.verb.clone(),
                target: self.target.clone(),
                create_time: self.created_at,
                end_time: self.ended_at,
                progress: self.progress,
                status_detail: self.status_detail.clone(),
            },
            done: self.done,
            response: self.response.as_ref().map(|r| r.0.clone()),
            error: self.error.as_ref().map(|e| e.0.clone()),
        }
    }
}

/// What a new operation is.
pub struct NewOperation<'a> {
    /// Its id (chosen before insertion so that a request row can point at it).
    pub id: Uuid,
    /// Project.
    pub project: &'a str,
    /// Region.
    pub region: &'a str,
    /// create, update, delete or failover.
    pub verb: &'a str,
    /// Full name of the resource.
    pub target: &'a str,
    /// The instance, if it exists.
    pub instance: Option<Uuid>,
    /// What it is doing.
    pub detail: &'a str,
    /// Worker parameters.
    pub params: serde_json::Value,
}

/// Inserts a running operation. FAILED_PRECONDITION if the instance already runs one.
pub async fn insert(conn: &mut PgConnection, op: NewOperation<'_>) -> ApiResult<OperationRow> {
    let row = sqlx::query_as(
        r#"insert into operation (id, project_id, region_id, verb, target, instance_id, status_detail, params)
           values ($1, $2, $3, $4, $5, $6, $7, $8) returning *"#,
    )
    .bind(op.id)
    .bind(op.project)
    .bind(op.region)
    .bind(op.verb)
    .bind(op.target)
    .bind(op.instance)
    .bind(op.detail)
    .bind(Json(&op.params))
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match crate::error::constraint_of(&e) {
        Some("operation_one_active_idx") => ApiError::FailedPrecondition(format!(
            "{} has an operation in progress; wait for it to finish",
            op.target
        )),
        _ => e.into(),
    })?;
    notify::operation_changed(conn, op.id).await?;
    Ok(row)
}

/// Marks an operation done with its result (`Ok(None)`: succeeded with no response).
pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    result: Result<Option<&Instance>, &Status>,
) -> ApiResult<()> {
    let (response, error) = match result {
        Ok(i) => (i.map(Json), None),
        Err(s) => (None, Some(Json(s))),
    };
    sqlx::query(
        r#"update operation set done = true, ended_at = now(), progress = 100,
               response = $2, error = $3,
               status_detail = case when $3::jsonb is null then 'done' else 'failed' end
           where id = $1 and not done"#,
    )
    .bind(id)
    .bind(response)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    notify::operation_changed(conn, id).await?;
    Ok(())
}

/// Records progress of a running operation (only when it changed).
pub async fn set_progress(
    conn: &mut PgConnection,
    id: Uuid,
    progress: i32,
    detail: &str,
) -> ApiResult<()> {
    let changed = sqlx::query(
        r#"update operation set progress = $2, status_detail = $3
           where id = $1 and not done and (progress, status_detail) is distinct from ($2, $3)"#,
    )
    .bind(id)
    .bind(progress.clamp(0, 99))
    .bind(detail)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed > 0 {
        notify::operation_changed(conn, id).await?;
    }
    Ok(())
}

/// One operation by id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<OperationRow> {
    let row: Option<OperationRow> = sqlx::query_as("select * from operation where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.ok_or_else(|| ApiError::NotFound(format!("operation '{id}' not found")))
}

/// One operation of a project and region, NOT_FOUND otherwise.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    id: &str,
) -> ApiResult<OperationRow> {
    let not_found = || ApiError::NotFound(format!("operation '{id}' not found"));
    let uuid: Uuid = id.parse().map_err(|_| not_found())?;
    let row: Option<OperationRow> = sqlx::query_as(
        "select * from operation where id = $1 and project_id = $2 and region_id = $3",
    )
    .bind(uuid)
    .bind(project)
    .bind(region)
    .fetch_optional(db)
    .await?;
    row.ok_or_else(not_found)
}

/// One page of operations, newest first; the token carries the last one's time and id.
pub async fn list(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    page_size: i64,
    page_token: Option<&str>,
) -> ApiResult<(Vec<OperationRow>, Option<String>)> {
    let after = match paging::decode_token(page_token)? {
        Some(key) => {
            let bad = || {
                ApiError::field(
                    "pageToken",
                    "is not a token returned by a previous list call",
                )
            };
            let (t, id) = key.split_once('|').ok_or_else(bad)?;
            let t: DateTime<Utc> = t.parse().map_err(|_| bad())?;
            let id: Uuid = id.parse().map_err(|_| bad())?;
            Some((t, id))
        }
        None => None,
    };
    let mut rows: Vec<OperationRow> = sqlx::query_as(
        r#"select * from operation
           where project_id = $1 and ($2 = '-' or region_id = $2)
             and ($3::timestamptz is null or (created_at, id) < ($3, $4))
           order by created_at desc, id desc limit $5"#,
    )
    .bind(project)
    .bind(region)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(page_size + 1)
    .fetch_all(db)
    .await?;
    let next = if rows.len() as i64 > page_size {
        rows.truncate(page_size as usize);
        rows.last()
            .map(|r| paging::encode_token(&format!("{}|{}", r.created_at.to_rfc3339(), r.id)))
    } else {
        None
    };
    Ok((rows, next))
}
