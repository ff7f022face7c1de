//! `/v1/hosts…`: host registry (admin) and the agent protocol (admin or the host's token).

use axum::extract::State;
use cacheplane_types::{
    ErrorBody, HeartbeatRequest, HeartbeatResponse, Host, HostConfig, ListHostsResponse,
    RegisterHostRequest, ReleaseRangesResponse,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::contract;
use crate::http::extract::{Json, Json as Body, Path, Query};
use crate::state::AppState;
use crate::{background, hosts};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_hosts))
        .routes(routes!(get_host, register_host))
        .routes(routes!(heartbeat))
        .routes(routes!(get_config))
        .routes(routes!(release_ranges))
}

/// Query of the config long-poll.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConfigQuery {
    /// The generation the agent holds: the answer waits until a newer one exists.
    #[param(value_type = Option<i64>)]
    generation: Option<String>,
    /// Longest wait, e.g. `30s` (default 30s).
    timeout: Option<String>,
}

/// Lists hosts.
#[utoipa::path(get, path = "/v1/hosts", tag = "admin",
    responses((status = 200, body = ListHostsResponse), (status = "4XX", body = ErrorBody)))]
async fn list_hosts(p: Principal, State(s): State<AppState>) -> ApiResult<Json<ListHostsResponse>> {
    p.check_admin()?;
    Ok(Json(ListHostsResponse {
        hosts: hosts::list(&s).await?,
    }))
}

/// Gets a host.
#[utoipa::path(get, path = "/v1/hosts/{host}", tag = "admin",
    params(("host" = String, Path)),
    responses((status = 200, body = Host), (status = "4XX", body = ErrorBody)))]
async fn get_host(
    p: Principal,
    State(s): State<AppState>,
    Path(host): Path<String>,
) -> ApiResult<Json<Host>> {
    p.check_host(&host)?;
    Ok(Json(hosts::get(&s.for_agents(), &host).await?))
}

/// Registers (or re-registers) a host.
#[utoipa::path(put, path = "/v1/hosts/{host}", tag = "agent",
    params(("host" = String, Path)),
    request_body = RegisterHostRequest,
    responses((status = 200, body = Host), (status = "4XX", body = ErrorBody)))]
async fn register_host(
    p: Principal,
    State(s): State<AppState>,
    Path(host): Path<String>,
    Body(req): Body<RegisterHostRequest>,
) -> ApiResult<Json<Host>> {
    p.check_host(&host)?;
    Ok(Json(hosts::register(&s.for_agents(), &host, &req).await?))
}

/// Reports what the agent sees.
#[utoipa::path(post, path = "/v1/hosts/{host}/heartbeat", tag = "agent",
    params(("host" = String, Path)),
    request_body = HeartbeatRequest,
    responses((status = 200, body = HeartbeatResponse), (status = "4XX", body = ErrorBody)))]
async fn heartbeat(
    p: Principal,
    State(s): State<AppState>,
    Path(host): Path<String>,
    Body(req): Body<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    p.check_host(&host)?;
    let s = s.for_agents();
    let beat = hosts::heartbeat(&s, &host, &req).await?;
    background::after_heartbeat(&s, &beat).await;
    Ok(Json(beat.response))
}

/// Releases the address ranges quarantined against a host (one whose nodes were dropped
/// while it was silent): for a host known to be gone for good.
#[utoipa::path(post, path = "/v1/hosts/{host}/releaseRanges", tag = "admin",
    params(("host" = String, Path)),
    responses((status = 200, body = ReleaseRangesResponse), (status = "4XX", body = ErrorBody)))]
async fn release_ranges(
    p: Principal,
    State(s): State<AppState>,
    Path(host): Path<String>,
) -> ApiResult<Json<ReleaseRangesResponse>> {
    p.check_admin()?;
    Ok(Json(hosts::release_ranges(&s, &host).await?))
}

/// The host's desired config; long-polls while `generation` is current.
#[utoipa::path(get, path = "/v1/hosts/{host}/config", tag = "agent",
    params(("host" = String, Path), ConfigQuery),
    responses((status = 200, body = HostConfig), (status = "4XX", body = ErrorBody)))]
async fn get_config(
    p: Principal,
    State(s): State<AppState>,
    Path(host): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<Json<HostConfig>> {
    p.check_host(&host)?;
    let s = s.for_agents();
    let timeout = contract::wait_timeout(q.timeout.as_deref(), std::time::Duration::from_secs(30))?;
    let Some(known) = q.generation.as_deref() else {
        return Ok(Json(hosts::config(&s.pool, &host).await?));
    };
    let known: i64 = known
        .parse()
        .map_err(|_| ApiError::field("generation", "must be a whole number"))?;
    Ok(Json(hosts::wait_config(&s, &host, known, timeout).await?))
}
