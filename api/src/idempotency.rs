//! `requestId` idempotency: the same request sent twice, even concurrently, yields one
//! operation. The request row is written first in the mutating transaction, so a
//! concurrent twin blocks on it and, once the first commits, finds its operation.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::requests;
use crate::error::{ApiError, ApiResult};
use crate::operations::{self, OperationRow};
use crate::state::AppState;
use crate::{catalog, networks};

/// Parses an optional `requestId` (a UUID).
pub fn parse_request_id(raw: Option<&str>) -> ApiResult<Option<Uuid>> {
    match raw {
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
/// already used for the same request; ALREADY_EXISTS (409) if it was used for another.
pub async fn claim(
    conn: &mut PgConnection,
    project: &str,
    request_id: Uuid,
    fingerprint: &str,
    op: Uuid,
) -> ApiResult<Option<Uuid>> {
    if requests::insert(conn, project, request_id, fingerprint, op).await? {
        return Ok(None);
    }
    let earlier = requests::get(conn, project, request_id).await?;
    if earlier.fingerprint != fingerprint {
        return Err(ApiError::AlreadyExists(format!(
            "requestId {request_id} was already used for a different request; use a new requestId"
        )));
    }
    Ok(Some(earlier.operation_id))
}

/// The preamble of every mutating method: when the client sent a `requestId`, claims it
/// for operation `op` in the caller's transaction, and returns the operation an earlier
/// identical request produced (the caller then answers with it and rolls back). The
/// fingerprint is computed only when there is a `requestId`.
pub async fn replay(
    conn: &mut PgConnection,
    project: &str,
    request_id: Option<Uuid>,
    fingerprint: impl FnOnce() -> String,
    op: Uuid,
) -> ApiResult<Option<OperationRow>> {
    let Some(rid) = request_id else {
        return Ok(None);
    };
    match claim(conn, project, rid, &fingerprint(), op).await? {
        Some(earlier) => Ok(Some(operations::get_by_id(&mut *conn, earlier).await?)),
        None => Ok(None),
    }
}

/// The start of both transactions of a create (an instance's or a connector's): makes
/// `project` (and its default network) if it is new, checks `region`, then claims the
/// `requestId`; returns the earlier operation of an identical request.
pub async fn begin_create(
    state: &AppState,
    tx: &mut PgConnection,
    (project, region): (&str, &str),
    request_id: Option<Uuid>,
    fingerprint: &str,
    op_id: Uuid,
) -> ApiResult<Option<OperationRow>> {
    let supernet = state.config.default_network_supernet;
    networks::ensure_project(&mut *tx, project, supernet).await?;
    catalog::require_region(&mut *tx, region).await?;
    let fingerprint = || fingerprint.to_string();
    replay(tx, project, request_id, fingerprint, op_id).await
}

/// A create under way: see [`begin_create_call`].
pub struct Creation {
    /// The create's transaction.
    pub tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The id its operation gets.
    pub op_id: Uuid,
    /// Its `requestId`, parsed.
    pub request_id: Option<Uuid>,
    /// The digest of what it asks for (kept with the `requestId`).
    pub fingerprint: String,
    /// The operation of an earlier identical request, if any: answer with it.
    pub earlier: Option<OperationRow>,
}

/// The start of every create (an instance's, a Memcached instance's, a connector's):
/// the new id (`id_field`, e.g. `instanceId`) is given and of the resource id shape
/// (1–40 characters), `request_id` parses, the transaction opens, and
/// [`begin_create`] makes the project, checks the region and claims the `requestId` for
/// this request (`full_name` and `body`).
#[allow(clippy::too_many_arguments)]
pub async fn begin_create_call(
    state: &AppState,
    principal: &Principal,
    (project, region): (&str, &str),
    id_field: &str,
    name: &str,
    full_name: &str,
    request_id: Option<&str>,
    body: &impl serde::Serialize,
) -> ApiResult<Creation> {
    principal.check_project(project)?;
    if name.is_empty() {
        return Err(ApiError::field(id_field, "is required"));
    }
    crate::instances::validate::instance_id(id_field, name)?;
    let request_id = parse_request_id(request_id)?;
    let body = serde_json::to_string(body).unwrap_or_default();
    let fingerprint = fingerprint(&["create", full_name, &body]);
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    let earlier = begin_create(
        state,
        &mut tx,
        (project, region),
        request_id,
        &fingerprint,
        op_id,
    )
    .await?;
    Ok(Creation {
        tx,
        op_id,
        request_id,
        fingerprint,
        earlier,
    })
}

/// Records a create that found no room as a failed operation (RESOURCE_EXHAUSTED with
/// `message`), in a transaction of its own after the create's was rolled back, so that a
/// retry with the same `requestId` gets the same answer. `new_operation` makes the
/// operation row for the id it is given.
pub async fn record_exhausted_create<'a>(
    state: &AppState,
    scope: (&str, &str),
    request_id: Option<Uuid>,
    fingerprint: &str,
    new_operation: impl FnOnce(Uuid) -> operations::NewOperation<'a>,
    message: String,
) -> ApiResult<cacheplane_types::Operation> {
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    if let Some(earlier) =
        begin_create(state, &mut tx, scope, request_id, fingerprint, op_id).await?
    {
        return Ok(earlier.to_wire());
    }
    operations::insert(&mut tx, new_operation(op_id)).await?;
    let status = ApiError::ResourceExhausted(message).to_status();
    let finished = operations::finish(&mut tx, op_id, Err(&status)).await?;
    tx.commit().await?;
    state.metrics.operations_finished(finished);
    Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
}

/// A mutating call under way: its transaction, its new operation's id, its `requestId`,
/// and the earlier operation of an identical request (then nothing else is to be done).
pub struct Mutation {
    /// The call's transaction.
    pub tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The id its operation gets.
    pub op_id: Uuid,
    /// Its `requestId`, parsed.
    pub request_id: Option<Uuid>,
    /// The operation of an earlier identical request, if any.
    pub earlier: Option<OperationRow>,
}

/// The start of a mutating call on a resource of `project`: parses `request_id`, opens
/// the transaction and claims the id for the request `what` (e.g. `["delete", name]`).
pub async fn begin_mutation(
    state: &AppState,
    project: &str,
    request_id: Option<&str>,
    what: &[&str],
) -> ApiResult<Mutation> {
    let request_id = parse_request_id(request_id)?;
    let mut tx = state.pool.begin().await?;
    let op_id = Uuid::new_v4();
    let earlier = replay(&mut tx, project, request_id, || fingerprint(what), op_id).await?;
    Ok(Mutation {
        tx,
        op_id,
        request_id,
        earlier,
    })
}
