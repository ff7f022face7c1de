//! `/v1/projects/{project}/networks[/{network}]`.

use axum::extract::State;
use axum::http::StatusCode;
use cacheplane_types::{CreateNetworkRequest, ErrorBody, ListNetworksResponse, Network};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::http::extract::{Json, Json as Body, Path, Query};
use crate::state::AppState;
use crate::{networks, pools, quotas};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_networks, create_network))
        .routes(routes!(get_network, delete_network))
}

/// Query of create network.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CreateQuery {
    /// The new network's id.
    network_id: Option<String>,
}

/// Lists a project's networks.
#[utoipa::path(get, path = "/v1/projects/{project}/networks", tag = "networks",
    params(("project" = String, Path, description = "Project id")),
    responses((status = 200, body = ListNetworksResponse), (status = "4XX", body = ErrorBody)))]
async fn list_networks(
    p: Principal,
    State(s): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<ListNetworksResponse>> {
    p.check_project(&project)?;
    let rows = networks::list(&s.pool, &project).await?;
    Ok(Json(ListNetworksResponse {
        networks: rows.iter().map(|r| r.to_wire()).collect(),
    }))
}

/// Creates a network with its address pool.
#[utoipa::path(post, path = "/v1/projects/{project}/networks", tag = "networks",
    params(("project" = String, Path, description = "Project id"), CreateQuery),
    request_body = CreateNetworkRequest,
    responses((status = 200, body = Network), (status = "4XX", body = ErrorBody)))]
async fn create_network(
    p: Principal,
    State(s): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<CreateQuery>,
    Body(req): Body<CreateNetworkRequest>,
) -> ApiResult<Json<Network>> {
    p.check_project(&project)?;
    let mut tx = s.pool.begin().await?;
    networks::ensure_project(&mut tx, &project, s.config.default_network_supernet).await?;
    quotas::check_network(&mut tx, &s.config, &project).await?;
    let row = networks::create(
        &mut tx,
        &pools::Rules::of(&s.config),
        &project,
        q.network_id.as_deref(),
        &req,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(row.to_wire()))
}

/// Gets a network.
#[utoipa::path(get, path = "/v1/projects/{project}/networks/{network}", tag = "networks",
    params(("project" = String, Path, description = "Project id"), ("network" = String, Path, description = "Network id")),
    responses((status = 200, body = Network), (status = "4XX", body = ErrorBody)))]
async fn get_network(
    p: Principal,
    State(s): State<AppState>,
    Path((project, network)): Path<(String, String)>,
) -> ApiResult<Json<Network>> {
    p.check_project(&project)?;
    Ok(Json(
        networks::get(&s.pool, &project, &network).await?.to_wire(),
    ))
}

/// Deletes a network that no instance and no connector uses.
#[utoipa::path(delete, path = "/v1/projects/{project}/networks/{network}", tag = "networks",
    params(("project" = String, Path, description = "Project id"), ("network" = String, Path, description = "Network id")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn delete_network(
    p: Principal,
    State(s): State<AppState>,
    Path((project, network)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    p.check_project(&project)?;
    let mut tx = s.pool.begin().await?;
    networks::delete(&mut tx, &project, &network).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
