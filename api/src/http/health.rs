//! Liveness and readiness.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::http::extract::Json;
use crate::state::AppState;

/// Health answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Postgres answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = cacheplane_types::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let applied = crate::db::applied_migrations(&state.pool).await;
    let expected = crate::MIGRATOR.iter().count() as i64;
    match applied {
        Ok(n) if n >= expected => Ok(Json(Health {
            status: "ok".into(),
        })),
        Ok(n) => Err(ApiError::Unavailable(format!(
            "{n} of {expected} migrations applied"
        ))),
        Err(e) => Err(ApiError::Unavailable(format!("database unavailable: {e}"))),
    }
}
