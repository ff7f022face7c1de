//! `GET /v1/regions`, `GET /v1/regions/{region}/zones`, `GET /v1/tiers`.

use axum::extract::State;
use cacheplane_types::{ErrorBody, ListRegionsResponse, ListTiersResponse, ListZonesResponse};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::catalog;
use crate::error::ApiResult;
use crate::http::extract::{Json, Path};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_regions))
        .routes(routes!(list_zones))
        .routes(routes!(list_tiers))
}

/// Lists regions and their zones.
#[utoipa::path(get, path = "/v1/regions", tag = "catalog",
    responses((status = 200, body = ListRegionsResponse), (status = "4XX", body = ErrorBody)))]
async fn list_regions(
    _: Principal,
    State(s): State<AppState>,
) -> ApiResult<Json<ListRegionsResponse>> {
    Ok(Json(ListRegionsResponse {
        regions: catalog::list_regions(&s.pool).await?,
    }))
}

/// Lists a region's zones.
#[utoipa::path(get, path = "/v1/regions/{region}/zones", tag = "catalog",
    params(("region" = String, Path, description = "Region id")),
    responses((status = 200, body = ListZonesResponse), (status = "4XX", body = ErrorBody)))]
async fn list_zones(
    _: Principal,
    State(s): State<AppState>,
    Path(region): Path<String>,
) -> ApiResult<Json<ListZonesResponse>> {
    let zones = catalog::list_zones(&s.pool, &region).await?;
    Ok(Json(ListZonesResponse { zones }))
}

/// Lists tiers and their limits.
#[utoipa::path(get, path = "/v1/tiers", tag = "catalog",
    responses((status = 200, body = ListTiersResponse), (status = "4XX", body = ErrorBody)))]
async fn list_tiers(_: Principal, State(s): State<AppState>) -> ApiResult<Json<ListTiersResponse>> {
    Ok(Json(ListTiersResponse {
        tiers: catalog::list_tiers(&s.pool).await?,
    }))
}
