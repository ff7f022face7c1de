//! `/v1/projects/{project}/locations/{region}/instances…`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cacheplane_types::{
    CreateInstanceRequest, ErrorBody, FailoverRequest, Instance, InstanceAuthString,
    InstanceNodeMetrics, ListInstancesResponse, Operation, PatchInstanceRequest,
};
use serde::Deserialize;
use utoipa::openapi::path::Paths;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{parse_body, Json, Json as Body, Path, Query};
use crate::http::PageQuery;
use crate::instances::{self, InstanceRef};
use crate::state::AppState;
use crate::{background, operations};

/// The path of one instance.
const INSTANCE: &str = "/v1/projects/{project}/locations/{region}/instances/{instance}";

pub(super) fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(get_instance, patch_instance, delete_instance))
        // Google's custom methods, `POST …/instances/{instance}:VERB`: axum routes no
        // text after a parameter within a segment, so POST on the instance's own path
        // takes them and dispatches on the verb. The document shows them as Google does.
        .route(INSTANCE, post(custom_method))
        .routes(routes!(failover_instance))
        .routes(routes!(rotate_server_certificate))
        .routes(routes!(get_auth_string))
        .routes(routes!(get_node_metrics));
    router
        .get_openapi_mut()
        .paths
        .merge(Paths::builder().path_from::<__path_custom_method>().build());
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
    /// Comma-separated fields to change.
    #[param(required = true)]
    update_mask: Option<String>,
    /// A UUID that makes retries safe.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

/// Query of delete and failover.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct RequestIdQuery {
    /// A UUID that makes retries safe.
    #[param(format = Uuid)]
    request_id: Option<String>,
}

fn target(project: String, region: String, name: String) -> InstanceRef {
    InstanceRef {
        project,
        region,
        name,
    }
}

/// Lists instances; region `-` (`locations/-`) lists those of every region.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/instances", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), PageQuery, FilterQuery),
    responses((status = 200, body = ListInstancesResponse), (status = "4XX", body = ErrorBody)))]
async fn list_instances(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
    Query(q): Query<FilterQuery>,
) -> ApiResult<Json<ListInstancesResponse>> {
    let page = instances::read::list(
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

/// Creates an instance; answers with its operation at once.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/instances", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), CreateQuery),
    request_body = CreateInstanceRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn create_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region)): Path<(String, String)>,
    Query(q): Query<CreateQuery>,
    Body(req): Body<CreateInstanceRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, q.instance_id.unwrap_or_default());
    Ok(Json(
        instances::create::create(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// Gets an instance.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/instances/{instance}", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = Instance), (status = "4XX", body = ErrorBody)))]
async fn get_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Instance>> {
    Ok(Json(
        instances::read::get(&s, &p, &target(project, region, name)).await?,
    ))
}

/// Changes the fields named in `updateMask`; answers with the operation.
#[utoipa::path(patch, path = "/v1/projects/{project}/locations/{region}/instances/{instance}", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), PatchQuery),
    request_body = PatchInstanceRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn patch_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<PatchQuery>,
    Body(req): Body<PatchInstanceRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    let op = instances::patch::patch(
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

/// Deletes an instance, in any state; answers with the operation.
#[utoipa::path(delete, path = "/v1/projects/{project}/locations/{region}/instances/{instance}", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn delete_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    let op = instances::delete::delete(&s, &p, &t, q.request_id.as_deref()).await?;
    // Nodes on hosts that are down can go at once.
    background::nudge(&s, op).await;
    Ok(Json(operations::get_by_id(&s.pool, op).await?.to_wire()))
}

/// Promotes a replica to primary; answers with the operation.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/instances/{instance}/failover", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    request_body = FailoverRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn failover_instance(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
    Body(req): Body<FailoverRequest>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    Ok(Json(
        instances::failover::failover(&s, &p, &t, q.request_id.as_deref(), req).await?,
    ))
}

/// Google's form of failover: `POST …/instances/{instance}:failover`, the same method as
/// `…/{instance}/failover`. (Memorystore's other custom methods, `:upgrade`, `:import`,
/// `:export` and `:rescheduleMaintenance`, answer UNIMPLEMENTED.)
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/instances/{instance}:failover", tag = "instances",
    operation_id = "failover_instance_custom_method",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    request_body = FailoverRequest,
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn custom_method(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, segment)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Operation>, Response> {
    let Some((name, verb)) = segment.split_once(':') else {
        // The instance itself: GET, PATCH and DELETE only.
        let error = ApiError::MethodNotAllowed(format!("POST is not allowed on {}", uri.path()));
        return Err(([(header::ALLOW, "GET,HEAD,DELETE,PATCH")], error).into_response());
    };
    let name = name.to_string();
    match verb {
        "failover" => {
            let req = parse_body(&body).map_err(IntoResponse::into_response)?;
            failover_instance(
                p,
                State(s),
                Path((project, region, name)),
                Query(q),
                Body(req),
            )
            .await
            .map_err(IntoResponse::into_response)
        }
        "upgrade" | "import" | "export" | "rescheduleMaintenance" => Err(
            ApiError::MethodNotAllowed(format!("`:{verb}` is not offered by this API"))
                .into_response(),
        ),
        _ => Err(ApiError::NotFound(format!(
            "no such method: `:{verb}` (instances have `:failover`)"
        ))
        .into_response()),
    }
}

/// Issues a new server certificate from the instance's CA (TLS instances only) and
/// reloads it on every node online; `serverCaCerts` stay. Answers with the operation.
#[utoipa::path(post, path = "/v1/projects/{project}/locations/{region}/instances/{instance}/rotateServerCertificate", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path), RequestIdQuery),
    responses((status = 200, body = Operation), (status = "4XX", body = ErrorBody)))]
async fn rotate_server_certificate(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
    Query(q): Query<RequestIdQuery>,
) -> ApiResult<Json<Operation>> {
    let t = target(project, region, name);
    Ok(Json(
        instances::tls::rotate_server_certificate(&s, &p, &t, q.request_id.as_deref()).await?,
    ))
}

/// The AUTH string clients use.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/instances/{instance}/authString", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = InstanceAuthString), (status = "4XX", body = ErrorBody)))]
async fn get_auth_string(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
) -> ApiResult<Json<InstanceAuthString>> {
    Ok(Json(
        instances::read::auth_string(&s, &p, &target(project, region, name)).await?,
    ))
}

/// The current figures of the instance's nodes (memory, clients, commands, hits and
/// misses, evictions, replication), as their agents last reported them.
#[utoipa::path(get, path = "/v1/projects/{project}/locations/{region}/instances/{instance}/nodeMetrics", tag = "instances",
    params(("project" = String, Path), ("region" = String, Path), ("instance" = String, Path)),
    responses((status = 200, body = InstanceNodeMetrics), (status = "4XX", body = ErrorBody)))]
async fn get_node_metrics(
    p: Principal,
    State(s): State<AppState>,
    Path((project, region, name)): Path<(String, String, String)>,
) -> ApiResult<Json<InstanceNodeMetrics>> {
    Ok(Json(
        instances::read::node_metrics(&s, &p, &target(project, region, name)).await?,
    ))
}
