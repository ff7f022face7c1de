//! `/v1/projects/{project}/locations/{region}/memcacheInstances…`: Memcached instances,
//! as Memorystore for Memcached v1 (`google.cloud.memcache.v1`) names them.

use axum::body::Bytes;
use axum::extract::{MatchedPath, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cacheplane_types::{
    ApplyMemcacheParametersRequest, CreateMemcacheInstanceRequest, ErrorBody,
    ListMemcacheInstancesResponse, MemcacheInstance, Operation, PatchMemcacheInstanceRequest,
    UpdateMemcacheParametersRequest,
};
use serde::Deserialize;
use utoipa::openapi::path::Paths;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::contract;
use crate::http::extract::{parse_body, Json, Json as Body, Path, Query};
use crate::http::PageQuery;
use crate::memcache::{self, MemcacheRef};
use crate::state::AppState;
use crate::{background, operations};

/// The path of one Memcached instance.
const INSTANCE: &str = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}";

pub(super) fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(list_memcache_instances, create_memcache_instance))
        .routes(routes!(
            get_memcache_instance,
            patch_memcache_instance,
            delete_memcache_instance
        ))
        // Google's custom methods (`POST …/{instance}:VERB`) on the instance's own path.
        .route(INSTANCE, post(custom_method));
    router.get_openapi_mut().paths.merge(
        Paths::builder()
            .path_from::<__path_update_parameters>()
            .path_from::<__path_apply_parameters>()
            .build(),
    );
    // Their bodies: the merged paths refer to them, and `routes!` did not collect them.
    let bodies = utoipa::openapi::ComponentsBuilder::new()
        .schema_from::<UpdateMemcacheParametersRequest>()
        .schema_from::<ApplyMemcacheParametersRequest>()
        .build();
    router
        .get_openapi_mut()
        .components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(bodies.schemas);
    router
}

/// Query of create.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct CreateQuery {
    /// The new instance's id: 1-40 lowercase letters, digits or hyphens.
    #[param(required = true, pattern = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")]
    instance_id: Option<String>,
    /// A UUID that makes retries safe: the same request with it yields one operation.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

/// The filter of list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FilterQuery {
    /// e.g. `state=READY AND labels.env=prod`.
    filter: Option<String>,
}

/// Query of patch.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PatchQuery {
    /// Comma-separated fields to change: `displayName`, `labels`, `nodeCount`.
    #[param(required = true)]
    update_mask: Option<String>,
    /// A UUID that makes retries safe.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

/// Query of delete and the custom methods.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct RequestIdQuery {
    /// A UUID that makes retries safe.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

fn target(project: String, region: String, name: String) -> MemcacheRef {
    MemcacheRef {
        project,
        region,
        name,
    }
}

/// Lists Memcached instances (region `-` for all regions), by name, optionally filtered
/// on `state` and `labels.KEY`.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/memcacheInstances", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), PageQuery, FilterQuery),
    responses((status = 200, body = ListMemcacheInstancesResponse), (status = "4XX", body = ErrorBody)))]
async fn list_memcache_instances(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
    Query(q): Query<FilterQuery>,
) -> ApiResult<Json<ListMemcacheInstancesResponse>> {
    let page = memcache::read::list(
        &s,
        &p,
        &project,
        &region,
        page.page_size.as_deref(),
        page.page_token.as_deref(),
        q.filter.as_deref(),
    )
    .await?;
    Ok(Json(page))
}

/// Creates a Memcached instance: `nodeCount` nodes of `nodeConfig` spread over `zones`,
/// with a discovery endpoint. Answers with its operation at once.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/memcacheInstances", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), CreateQuery),
    request_body = CreateMemcacheInstanceRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn create_memcache_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<CreateQuery>,
    Body(req): Body<CreateMemcacheInstanceRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, q.instance_id.unwrap_or_default());
    Ok(Json(
        memcache::create::create(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// Gets a Memcached instance with its nodes.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = MemcacheInstance), (status = "4XX", body = ErrorBody)))]
async fn get_memcache_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
) -> ApiResult<Json<MemcacheInstance>> {
    Ok(Json(
        memcache::read::get(&s, &p, &target(project, region, name)).await?,
    ))
}

/// Changes the fields named in `updateMask` (`displayName`, `labels`, `nodeCount`);
/// answers with the operation.
#[utoipa::path(patch, path = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), PatchQuery),
    request_body = PatchMemcacheInstanceRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn patch_memcache_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<PatchQuery>,
    Body(req): Body<PatchMemcacheInstanceRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    let op = memcache::patch::patch(
        &s,
        &p,
        &t,
        q.update_mask.as_deref(),
        q.request_id.as_deref(),
        req,
    )
    .await?;
    Ok(Json(op))
}

/// Deletes a Memcached instance, in any state; answers with the operation.
#[utoipa::path(delete, path = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn delete_memcache_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    let op = memcache::delete::delete(&s, &p, &t, q.request_id.as_deref()).await?;
    // Nodes on hosts that are down can go at once.
    background::nudge(&s, op).await;
    Ok(Json(operations::get_by_id(&s.pool, op).await?.to_wire()))
}

/// Stages new parameters (`updateMask` `params`); nodes take them on
/// `:applyParameters`. Answers with a finished operation.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}:updateParameters", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    request_body = UpdateMemcacheParametersRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn update_parameters(
    p: Principal,
    s: AppState,
    t: MemcacheRef,
    q: RequestIdQuery,
    req: UpdateMemcacheParametersRequest,
) -> ApiResult<Json<Operation>> {
    Ok(Json(
        memcache::patch::update_parameters(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// Gives the named nodes (or all, `applyAll`) the staged parameters: each node whose
/// parameters change restarts with them (empty). Answers with the operation.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/memcacheInstances/{instance}:applyParameters", tag = "memcache",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    request_body = ApplyMemcacheParametersRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn apply_parameters(
    p: Principal,
    s: AppState,
    t: MemcacheRef,
    q: RequestIdQuery,
    req: ApplyMemcacheParametersRequest,
) -> ApiResult<Json<Operation>> {
    Ok(Json(
        memcache::patch::apply_parameters(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// `POST …/memcacheInstances/{instance}:VERB`: dispatches Google's custom methods.
async fn custom_method(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, segment)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
    uri: Uri,
    route: MatchedPath,
    body: Bytes,
) -> Result<Json<Operation>, Response> {
    let Some((name, verb)) = segment.split_once(':') else {
        return Err(contract::post_without_verb(&uri, &route));
    };
    let t = target(project, region, name.to_string());
    let answer = match verb {
        "updateParameters" => match parse_body(&body) {
            Ok(req) => update_parameters(p, s, t, q, req).await,
            Err(e) => Err(e),
        },
        "applyParameters" => match parse_body(&body) {
            Ok(req) => apply_parameters(p, s, t, q, req).await,
            Err(e) => Err(e),
        },
        "upgrade" | "rescheduleMaintenance" => Err(ApiError::MethodNotAllowed(format!(
            "`:{verb}` is not offered by this API"
        ))),
        _ => Err(ApiError::NotFound(format!(
            "no such method: `:{verb}` (Memcached instances have `:updateParameters` and `:applyParameters`)"
        ))),
    };
    answer.map_err(IntoResponse::into_response)
}
