//! `/v1/projects/{project}/locations/{region}/operations…`.

use axum::extract::State;
use cacheplane_types::{ErrorBody, ListOperationsResponse, Operation};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::http::contract;
use crate::http::extract::{Json, Path, Query};
use crate::http::PageQuery;
use crate::notify::Change;
use crate::operations;
use crate::paging;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_operations))
        .routes(routes!(get_operation))
        .routes(routes!(wait_operation))
}

/// Query of wait.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct WaitQuery {
    /// How long to wait, e.g. `30s` (default 30s, at most the server's maximum wait).
    timeout: Option<String>,
}

/// Lists operations, newest first.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/operations", tag = "operations",
    params(("project" = String, Path), ("region" = String, Path), PageQuery),
    responses((status = 200, body = ListOperationsResponse), (status = "4XX", body = ErrorBody)))]
async fn list_operations(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<ListOperationsResponse>> {
    p.check_project(&project)?;
    if region != "-" {
        crate::catalog::require_region(&s.pool, &region).await?;
    }
    let size = paging::page_size(q.page_size.as_deref())?;
    let (rows, next_page_token) =
        operations::list(&s.pool, &project, &region, size, q.page_token.as_deref()).await?;
    Ok(Json(ListOperationsResponse {
        operations: rows.iter().map(|r| r.to_wire()).collect(),
        next_page_token,
    }))
}

/// Gets an operation.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/operations/{operation}", tag = "operations",
    params(("project" = String, Path), ("region" = String, Path), ("operation" = String, Path)),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn get_operation(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Operation>> {
    p.check_project(&project)?;
    Ok(Json(
        operations::get(&s.pool, &project, &region, &id)
            .await?
            .to_wire(),
    ))
}

/// Waits until the operation is done or the timeout passes, then answers with it (done
/// or not).
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/operations/{operation}/wait", tag = "operations",
    params(("project" = String, Path), ("region" = String, Path), ("operation" = String, Path), WaitQuery),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn wait_operation(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, id)): Path<(String, String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<Operation>> {
    p.check_project(&project)?;
    let timeout = contract::wait_timeout(q.timeout.as_deref(), std::time::Duration::from_secs(30))?
        .min(s.config.max_wait);
    let op = operations::get(&s.pool, &project, &region, &id).await?;
    let op_id = op.id;
    let pool = &s.pool;
    let done = s
        .notifier
        .wait_for(
            |c| *c == Change::Operation(op_id),
            timeout,
            || async move {
                let op = operations::get_by_id(pool, op_id).await?;
                Ok(op.done.then_some(op))
            },
        )
        .await?;
    let op = match done {
        Some(op) => op,
        None => operations::get_by_id(pool, op_id).await?,
    };
    Ok(Json(op.to_wire()))
}
