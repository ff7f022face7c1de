//! `/v1/projects/{project}/locations/{region}/connectors…`.

use axum::extract::State;
use cacheplane_types::{
    Connector, CreateConnectorRequest, ErrorBody, ListConnectorsResponse, Operation,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::connectors::{self, ConnectorRef};
use crate::error::ApiResult;
use crate::http::extract::{Json, Json as Body, Path, Query};
use crate::http::PageQuery;
use crate::state::AppState;
use crate::{background, operations};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_connectors, create_connector))
        .routes(routes!(get_connector, delete_connector))
}

/// Query of create.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CreateQuery {
    /// The new connector's id: 1-40 lowercase letters, digits or hyphens.
    #[param(required = true, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")]
    connector_id: Option<String>,
    /// A UUID that makes retries safe: the same request with it yields one operation.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

/// Query of delete.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct RequestIdQuery {
    /// A UUID that makes retries safe.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

fn target(project: String, region: String, name: String) -> ConnectorRef {
    ConnectorRef {
        project,
        region,
        name,
    }
}

/// Lists connectors (region `-` for all regions), by name.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/connectors", tag = "connectors",
    params(("project" = String, Path), ("region" = String, Path), PageQuery),
    responses((status = 200, body = ListConnectorsResponse), (status = "4XX", body = ErrorBody)))]
async fn list_connectors(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<ListConnectorsResponse>> {
    let page = connectors::read::list(
        &s,
        &p,
        &project,
        &region,
        page.page_size.as_deref(),
        page.page_token.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// Creates a connector: a /28 of a network (given, or the first free one) from which
/// client processes reach the network's instances. Answers with its operation at once.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/connectors", tag = "connectors",
    params(("project" = String, Path), ("region" = String, Path), CreateQuery),
    request_body = CreateConnectorRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn create_connector(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<CreateQuery>,
    Body(req): Body<CreateConnectorRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, q.connector_id.unwrap_or_default());
    Ok(Json(
        connectors::create::create(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// Gets a connector.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/connectors/{connector}", tag = "connectors",
    params(("project" = String, Path), ("region" = String, Path), ("connector" = String, Path)),
    responses((status = 200, body = Connector), (status = "4XX", body = ErrorBody)))]
async fn get_connector(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Connector>> {
    Ok(Json(
        connectors::read::get(&s, &p, &target(project, region, name)).await?,
    ))
}

/// Deletes a connector, in any state; answers with the operation.
#[utoipa::path(delete, path = "/v1/projects/{project}/locations/{region}/connectors/{connector}", tag = "connectors",
    params(("project" = String, Path), ("region" = String, Path), ("connector" = String, Path), RequestIdQuery),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn delete_connector(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    let op = connectors::delete::delete(&s, &p, &t, q.request_id.as_deref()).await?;
    // A connector on a silent host goes at once.
    background::nudge(&s, op).await;
    Ok(Json(operations::get_by_id(&s.pool, op).await?.to_wire()))
}
