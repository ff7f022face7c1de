//! The HTTP layer: one module per resource, each with its handlers and their OpenAPI
//! descriptions; [`app`] merges them. The served routes and `openapi.yaml` come from the
//! same annotations, so they cannot drift apart.

pub mod alt;
mod body_rules;
mod catalog;
mod connectors;
pub mod console;
pub mod contract;
pub mod extract;
mod health;
mod history;
mod hosts;
mod instances;
mod links;
mod memcache;
pub mod metrics;
mod networks;
mod operations;
mod tokens;

use axum::http::Uri;
use axum::response::IntoResponse;
use axum::Router;
use serde::Deserialize;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cacheplane API",
        description = "A self-hostable control plane for managed caches. Every call carries `Authorization: Bearer TOKEN`; errors share one shape: `{\"error\": {\"code\", \"status\", \"message\", \"details\"}}`.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

/// The paging query of list methods.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Page size (default 100, at most 1000).
    #[param(value_type = Option<i64>, minimum = 0)]
    page_size: Option<String>,
    /// `nextPageToken` of the previous page.
    page_token: Option<String>,
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every method of every `/v1` path of the document.
pub(crate) fn v1_operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    openapi
        .paths
        .paths
        .iter_mut()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .flat_map(|(_, item)| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
        })
        .flatten()
}

/// The answers of the protection layer, on every `/v1` method (see `crate::limits`).
struct Protection;

impl Modify for Protection {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        let limited = answer("RESOURCE_EXHAUSTED: rate limit (with Retry-After) or project quota");
        let busy = answer("UNAVAILABLE: the server is at a concurrency cap (with Retry-After)");
        for op in v1_operations(openapi) {
            let responses = &mut op.responses.responses;
            responses.insert("429".into(), limited.clone().into());
            responses.insert("503".into(), busy.clone().into());
        }
    }
}

fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(catalog::router())
        .merge(networks::router())
        .merge(instances::router())
        .merge(history::router())
        .merge(connectors::router())
        .merge(memcache::router())
        .merge(operations::router())
        .merge(hosts::router())
        .merge(tokens::router())
}

/// The OpenAPI document of every served route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = router().split_for_parts().1;
    // After the routes are merged: the derive's modifiers run before there are paths.
    Protection.modify(&mut doc);
    alt::Documented.modify(&mut doc);
    contract::ParameterRules.modify(&mut doc);
    body_rules::BodyRules.modify(&mut doc);
    links::CreateLinks.modify(&mut doc);
    doc
}

/// The application: every route, `GET /metrics` and the console, the error shape for unknown routes,
/// `$alt` (enums as names or numbers, see [`alt`]), the protection layer (concurrency caps, cached authentication, rate limits), the
/// request metrics (outside it, so that its refusals count too), request tracing.
pub fn app(state: AppState) -> Router {
    let (routes, _) = router().split_for_parts();
    let protect = axum::middleware::from_fn_with_state(state.clone(), crate::limits::protect);
    let track = axum::middleware::from_fn_with_state(state.clone(), metrics::track);
    routes
        .route_layer(axum::middleware::from_fn(contract::reject_unknown_query))
        .route(metrics::PATH, axum::routing::get(metrics::scrape))
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(alt::layer))
        .layer(protect)
        .layer(RequestBodyTimeoutLayer::new(state.config.body_idle_timeout))
        .layer(axum::middleware::from_fn(reject_nul))
        .layer(track)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuses a NUL (`%00`) anywhere in the path or query: no resource name or parameter
/// can hold one, and Postgres text cannot store it.
async fn reject_nul(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = req.uri().to_string();
    if uri.to_ascii_lowercase().contains("%00") {
        return ApiError::field("path", "may not contain NUL characters (%00)").into_response();
    }
    next.run(req).await
}

/// 405 with the error shape and `Allow` as the document has it: a Google custom method
/// (`…/{instance}:verb`) shares its route with the resource, whose methods axum would
/// list (`contract::allow`).
async fn method_not_allowed(
    method: axum::http::Method,
    uri: Uri,
    route: Option<axum::extract::MatchedPath>,
) -> axum::response::Response {
    let error = ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()));
    match contract::allow(uri.path(), route.as_ref()) {
        Some(allow) => ([(axum::http::header::ALLOW, allow)], error).into_response(),
        None => error.into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no such path: {}", uri.path()))
}

#[cfg(test)]
mod tests {
    /// `openapi.yaml` is generated from the handlers' annotations; this fails when the
    /// committed file differs. Regenerate with `UPDATE_OPENAPI=1 cargo test -p cacheplane-api openapi`.
    #[test]
    fn openapi_yaml_is_current() {
        let generated = super::openapi()
            .to_yaml()
            .expect("rendering the OpenAPI document");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("writing openapi.yaml");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi.yaml is out of date: run UPDATE_OPENAPI=1 cargo test -p cacheplane-api openapi"
        );
    }
}
