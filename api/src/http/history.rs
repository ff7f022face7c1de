//! `GET /v1/projects/{project}/locations/{region}/instances/{instance}/metrics`: the
//! recent history of the instance's figures (see `crate::history`).

use axum::extract::State;
use cacheplane_types::ErrorBody;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::history::{self, InstanceMetricsHistory};
use crate::http::extract::{Json, Path, Query};
use crate::instances::InstanceRef;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_instance_metrics))
}

/// Query of the metrics method.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct WindowQuery {
    /// How far back (`5m`, `900s`, `1h`; default `1h`): at most an hour (a longer window
    /// is an hour) and at least a minute.
    window: Option<String>,
}

/// The instance's figures over the last `window`, per node, one point per 10 s:
/// memory used and maxmemory, connected clients, commands per second, keyspace hit
/// ratio and replication lag; and its failovers, as markers for charts.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/instances/{instance}/metrics", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), WindowQuery),
    responses((status = 200, body = InstanceMetricsHistory), (status = "4XX", body = ErrorBody)))]
async fn get_instance_metrics(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<WindowQuery>,
) -> ApiResult<Json<InstanceMetricsHistory>> {
    let window = history::parse_window(q.window.as_deref())?;
    let target = InstanceRef {
        project,
        region,
        name,
    };
    Ok(Json(history::read(&s, &p, &target, window).await?))
}
