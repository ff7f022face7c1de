//! `operation` rows: long-running operations, which survive an API restart. Every
//! write announces the change (at commit, through `crate::notify`) so that waiters on
//! any API replica wake up.

use cacheplane_types::{
    Connector, Instance, MemcacheInstance, OperationResponse, OperationVerb, Status,
};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};
use crate::notify;

/// An operation row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperationRow {
    /// Operation id.
    pub id: Uuid,
    /// Project.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// What it does.
    #[sqlx(try_from = "String")]
    pub verb: OperationVerb,
    /// Full name of the resource it acts on.
    pub target: String,
    /// The instance, while it exists.
    pub instance_id: Option<Uuid>,
    /// The connector, while it exists (operations on connectors).
    pub connector_id: Option<Uuid>,
    /// The Memcached instance, while it exists (operations on Memcached instances).
    pub memcache_instance_id: Option<Uuid>,
    /// Finished.
    pub done: bool,
    /// Why it failed.
    pub error: Option<Json<Status>>,
    /// The resource as it stood when it succeeded.
    pub response: Option<Json<OperationResponse>>,
    /// Percent done.
    pub progress: i32,
    /// What it is doing now.
    pub status_detail: String,
    /// Parameters for the background driver (e.g. the promoted node of a failover).
    pub params: Json<serde_json::Value>,
    /// Start time.
    pub created_at: DateTime<Utc>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
}

/// What a new operation is.
#[derive(Debug)]
pub struct NewOperation<'a> {
    /// Its id (chosen before insertion so that a request row can point at it).
    pub id: Uuid,
    /// Project.
    pub project: &'a str,
    /// Region.
    pub region: &'a str,
    /// What it does.
    pub verb: OperationVerb,
    /// Full name of the resource.
    pub target: String,
    /// The instance, if it exists.
    pub instance: Option<Uuid>,
    /// What it is doing.
    pub detail: &'a str,
    /// Parameters for the background driver.
    pub params: serde_json::Value,
}

/// Inserts a running operation. FAILED_PRECONDITION if the instance already runs one.
pub async fn insert(conn: &mut PgConnection, op: NewOperation<'_>) -> ApiResult<OperationRow> {
    insert_on(conn, op, Owner::Instance).await
}

/// What an operation acts on besides an instance (whose id is in [`NewOperation`]).
#[derive(Debug, Clone, Copy)]
enum Owner {
    Instance,
    Connector(Uuid),
    Memcache(Uuid),
}

/// Inserts a running operation on a Memcached instance. FAILED_PRECONDITION if it
/// already runs one.
pub async fn insert_for_memcache(
    conn: &mut PgConnection,
    op: NewOperation<'_>,
    memcache: Uuid,
) -> ApiResult<OperationRow> {
    insert_on(conn, op, Owner::Memcache(memcache)).await
}

/// Inserts a running operation on a connector. FAILED_PRECONDITION if it already runs
/// one.
pub async fn insert_for_connector(
    conn: &mut PgConnection,
    op: NewOperation<'_>,
    connector: Uuid,
) -> ApiResult<OperationRow> {
    insert_on(conn, op, Owner::Connector(connector)).await
}

async fn insert_on(
    conn: &mut PgConnection,
    op: NewOperation<'_>,
    owner: Owner,
) -> ApiResult<OperationRow> {
    let (connector, memcache) = match owner {
        Owner::Instance => (None, None),
        Owner::Connector(c) => (Some(c), None),
        Owner::Memcache(m) => (None, Some(m)),
    };
    let row = sqlx::query_as(
        r#"insert into operation (id, project_id, region_id, verb, target, instance_id, status_detail, params, connector_id, memcache_instance_id)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning *"#,
    )
    .bind(op.id)
    .bind(op.project)
    .bind(op.region)
    .bind(op.verb.as_str())
    .bind(&op.target)
    .bind(op.instance)
    .bind(op.detail)
    .bind(Json(&op.params))
    .bind(connector)
    .bind(memcache)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some(
            "operation_one_active_idx"
            | "operation_one_active_connector_idx"
            | "operation_one_active_memcache_idx",
        ) => ApiError::FailedPrecondition(format!(
            "{} has an operation in progress; wait for it to finish",
            op.target
        )),
        _ => e.into(),
    })?;
    notify::operation_changed(conn, op.id).await?;
    Ok(row)
}

/// An operation a call to [`finish`] or [`finish_connector`] ended (`None` from them
/// when it was already done): what the metrics record once the transaction commits
/// (`crate::metrics::Metrics::operations_finished`).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Its project.
    pub project: String,
    /// What it did.
    pub verb: OperationVerb,
    /// What it acted on: `instance`, `connector` or `memcacheInstance`.
    pub resource: &'static str,
    /// Its error's status (`UNAVAILABLE`, ...), `None` when it succeeded.
    pub error: Option<String>,
    /// From its start to its end.
    pub duration: std::time::Duration,
}

#[derive(sqlx::FromRow)]
struct FinishedRow {
    project_id: String,
    #[sqlx(try_from = "String")]
    verb: OperationVerb,
    resource: String,
    error_status: Option<String>,
    seconds: f64,
}

/// Marks a running operation done with its result (`Ok(None)`: succeeded with no
/// response).
pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    result: Result<Option<&Instance>, &Status>,
) -> ApiResult<Option<Finished>> {
    match result {
        Ok(i) => {
            let response = i.map(|i| OperationResponse::Instance(Box::new(i.clone())));
            finish_with(conn, id, response.as_ref(), None).await
        }
        Err(s) => finish_with(conn, id, None, Some(s)).await,
    }
}

/// Marks a running operation on a connector done with its result.
pub async fn finish_connector(
    conn: &mut PgConnection,
    id: Uuid,
    result: Result<Option<&Connector>, &Status>,
) -> ApiResult<Option<Finished>> {
    match result {
        Ok(c) => {
            let response = c.map(|c| OperationResponse::Connector(c.clone()));
            finish_with(conn, id, response.as_ref(), None).await
        }
        Err(s) => finish_with(conn, id, None, Some(s)).await,
    }
}

/// Marks a running operation on a Memcached instance done with its result.
pub async fn finish_memcache(
    conn: &mut PgConnection,
    id: Uuid,
    result: Result<Option<&MemcacheInstance>, &Status>,
) -> ApiResult<Option<Finished>> {
    match result {
        Ok(m) => {
            let response = m.map(|m| OperationResponse::MemcacheInstance(Box::new(m.clone())));
            finish_with(conn, id, response.as_ref(), None).await
        }
        Err(s) => finish_with(conn, id, None, Some(s)).await,
    }
}

async fn finish_with(
    conn: &mut PgConnection,
    id: Uuid,
    response: Option<&OperationResponse>,
    error: Option<&Status>,
) -> ApiResult<Option<Finished>> {
    let row: Option<FinishedRow> = sqlx::query_as(
        r#"update operation set done = true, ended_at = now(), progress = 100,
               response = $2, error = $3,
               status_detail = case when $3::jsonb is null then 'done' else 'failed' end
           where id = $1 and not done
           returning project_id, verb,
               case when connector_id is not null or target like '%/connectors/%' then 'connector'
                    when memcache_instance_id is not null or target like '%/memcacheInstances/%'
                        then 'memcacheInstance'
                    else 'instance' end as resource,
               error->>'status' as error_status,
               extract(epoch from ended_at - created_at)::float8 as seconds"#,
    )
    .bind(id)
    .bind(response.map(Json))
    .bind(error.map(Json))
    .fetch_optional(&mut *conn)
    .await?;
    notify::operation_changed(conn, id).await?;
    Ok(row.map(|r| Finished {
        project: r.project_id,
        verb: r.verb,
        resource: match r.resource.as_str() {
            "connector" => "connector",
            "memcacheInstance" => "memcacheInstance",
            _ => "instance",
        },
        error: r.error_status,
        duration: std::time::Duration::try_from_secs_f64(r.seconds).unwrap_or_default(),
    }))
}

/// Records the progress (0–99) of a running operation, when it changed.
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
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<Option<OperationRow>> {
    Ok(sqlx::query_as("select * from operation where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// One operation of a project and region.
pub async fn get_in(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    id: Uuid,
) -> ApiResult<Option<OperationRow>> {
    Ok(sqlx::query_as(
        "select * from operation where id = $1 and project_id = $2 and region_id = $3",
    )
    .bind(id)
    .bind(project)
    .bind(region)
    .fetch_optional(db)
    .await?)
}

/// Up to `limit` operations of a project in a region (`-`: every region), newest first,
/// after the key `(created_at, id)`.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> ApiResult<Vec<OperationRow>> {
    Ok(sqlx::query_as(
        r#"select * from operation
           where project_id = $1 and ($2 = '-' or region_id = $2)
             and ($3::timestamptz is null or (created_at, id) < ($3, $4))
           order by created_at desc, id desc limit $5"#,
    )
    .bind(project)
    .bind(region)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Unfinished operations on instances, connectors and Memcached instances, oldest first
/// (at most `limit`).
pub async fn list_unfinished(db: impl PgExecutor<'_>, limit: i64) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"select id from operation where not done
           and (instance_id is not null or connector_id is not null
                or memcache_instance_id is not null)
           order by created_at limit $1"#,
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Locks an unfinished operation for the rest of the transaction; `None` when it is done
/// or another transaction holds it.
pub async fn try_lock_unfinished(
    conn: &mut PgConnection,
    id: Uuid,
) -> ApiResult<Option<OperationRow>> {
    Ok(
        sqlx::query_as("select * from operation where id = $1 and not done for update skip locked")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// The running operation of an instance, locked for the rest of the transaction.
pub async fn lock_running_of(
    conn: &mut PgConnection,
    instance: Uuid,
) -> ApiResult<Option<OperationRow>> {
    Ok(
        sqlx::query_as("select * from operation where instance_id = $1 and not done for update")
            .bind(instance)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// The running operation of a Memcached instance, locked for the rest of the transaction.
pub async fn lock_running_of_memcache(
    conn: &mut PgConnection,
    memcache: Uuid,
) -> ApiResult<Option<OperationRow>> {
    Ok(sqlx::query_as(
        "select * from operation where memcache_instance_id = $1 and not done for update",
    )
    .bind(memcache)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The running operation of a connector, locked for the rest of the transaction.
pub async fn lock_running_of_connector(
    conn: &mut PgConnection,
    connector: Uuid,
) -> ApiResult<Option<OperationRow>> {
    Ok(
        sqlx::query_as("select * from operation where connector_id = $1 and not done for update")
            .bind(connector)
            .fetch_optional(&mut *conn)
            .await?,
    )
}
