//! `GET /metrics` (the Prometheus text format, admin token only) and the middleware
//! that counts every request by its matched route template. Not part of
//! `openapi.yaml`: it is for Prometheus, not for API clients (see `docs/metrics.md`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::metrics::{self, snapshot, Method, UNMATCHED};
use crate::state::AppState;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";

/// Counts the request by route template, method and status, with its latency (to the
/// answer's head; a streamed body is not waited for). No database query: a family
/// lookup and an atomic add in memory.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = Method::from(req.method());
    let response = next.run(req).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let status = response.status().as_u16();
    state
        .metrics
        .request(route, method, status, started.elapsed());
    response
}

/// Every metric of this process. Needs an admin token: the labels name projects,
/// instances and hosts, which a project's token may not learn of. A scrape refreshes the
/// host and pool gauges first (one query), one scrape at a time.
pub async fn scrape(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    principal.check_admin()?;
    let _one_at_a_time = state.metrics.scrape.lock().await;
    snapshot::refresh(&state).await;
    let text = state.metrics.encode();
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
