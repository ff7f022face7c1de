//! `/v1/tokens` (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use cacheplane_types::{CreateTokenRequest, ErrorBody, ListTokensResponse, Token};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::http::extract::{Json, Json as Body, Path};
use crate::state::AppState;
use crate::tokens;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Lists tokens (without secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "admin",
    responses((status = 200, body = ListTokensResponse), (status = "4XX", body = ErrorBody)))]
async fn list_tokens(
    p: Principal,
    State(s): State<AppState>,
) -> ApiResult<Json<ListTokensResponse>> {
    p.check_admin()?;
    Ok(Json(ListTokensResponse {
        tokens: tokens::list(&s.pool).await?,
    }))
}

/// Creates a project or host token; the secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "admin",
    request_body = CreateTokenRequest,
    responses((status = 200, body = Token), (status = "4XX", body = ErrorBody)))]
async fn create_token(
    p: Principal,
    State(s): State<AppState>,
    Body(req): Body<CreateTokenRequest>,
) -> ApiResult<Json<Token>> {
    p.check_admin()?;
    let mut tx = s.pool.begin().await?;
    let token = tokens::create(&mut tx, &req, s.config.default_network_supernet).await?;
    tx.commit().await?;
    Ok(Json(token))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/v1/tokens/{tokenId}", tag = "admin",
    params(("tokenId" = String, Path, description = "Token id (the last part of its name `tokens/{tokenId}`)")),
    responses((status = 204), (status = "4XX", body = ErrorBody)))]
async fn revoke_token(
    p: Principal,
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<StatusCode> {
    p.check_admin()?;
    tokens::revoke(&s.pool, &token).await?;
    // Other replicas stop accepting it within --token-cache-ttl.
    s.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
