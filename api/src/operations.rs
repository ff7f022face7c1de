//! Long-running operations: rows in Postgres that survive an API restart, their wire
//! form, and their pages.

use cacheplane_types::{Operation, OperationMetadata, OperationResponse};
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::operations as db;
pub use crate::db::operations::{
    finish, finish_connector, finish_memcache, insert, insert_for_connector, insert_for_memcache,
    set_progress, Finished, NewOperation, OperationRow,
};
use crate::error::{ApiError, ApiResult};
use crate::paging;

impl OperationRow {
    /// The wire form.
    pub fn to_wire(&self) -> Operation {
        Operation {
            name: format!(
                "projects/{}/locations/{}/operations/{}",
                self.project_id, self.region_id, self.id
            ),
            metadata: OperationMetadata::new(
                self.verb,
                self.target.clone(),
                self.created_at,
                self.ended_at,
                self.progress,
                self.status_detail.clone(),
            ),
            done: self.done,
            response: match (&self.response, &self.error) {
                (Some(r), _) => Some(r.0.clone()),
                // A success that leaves nothing (delete) is google.protobuf.Empty, as in
                // Google's operations: their clients expect a response or an error.
                (None, None) if self.done => Some(OperationResponse::Empty),
                (None, _) => None,
            },
            error: self.error.as_ref().map(|e| e.0.clone()),
        }
    }
}

/// One operation by id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<OperationRow> {
    db::get_by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("operation '{id}' not found")))
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
    db::get_in(db, project, region, uuid)
        .await?
        .ok_or_else(not_found)
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
    let mut rows = db::list_page(db, project, region, after, page_size + 1).await?;
    let next = if rows.len() as i64 > page_size {
        rows.truncate(page_size as usize);
        rows.last()
            .map(|r| paging::encode_token(&format!("{}|{}", r.created_at.to_rfc3339(), r.id)))
    } else {
        None
    };
    Ok((rows, next))
}
