//! `requestId` idempotency: the same request sent twice, even concurrently, yields one
//! operation. The request row is written first in the mutating transaction, so a
//! concurrent twin blocks on it and, once the first commits, finds its operation.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

/// Parses an optional `requestId` (a UUID).
pub fn parse_request_id(raw: Option<&str>) -> ApiResult<Option<Uuid>> {
    match raw.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::field("requestId", format!("'{s}' is not a UUID"))),
    }
}

/// A digest of what a request asks for.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Claims `request_id` for operation `op`. Returns the earlier operation if the id was
/// already used for the same request; INVALID_ARGUMENT if it was used for another.
pub async fn claim(
    conn: &mut PgConnection,
    project: &str,
    request_id: Uuid,
    fingerprint: &str,
    op: Uuid,
) -> ApiResult<Option<Uuid>> {
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
    if inserted == 1 {
        return Ok(None);
    }
    let (earlier_fp, earlier_op): (String, Uuid) = sqlx::query_as(
        "select fingerprint, operation_id from request where project_id = $1 and request_id = $2",
    )
    .bind(project)
    .bind(request_id)
    .fetch_one(&mut *conn)
    .await?;
    if earlier_fp != fingerprint {
        return Err(ApiError::field(
            "requestId",
            "was already used for a different request; use a new requestId",
        ));
    }
    Ok(Some(earlier_op))
}
