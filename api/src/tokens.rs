//! Project and host tokens, created and revoked by admins.

use cacheplane_types::{CreateTokenRequest, Token, TokenKind};
use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::auth::{generate_secret, hash_secret};
use crate::error::{ApiError, ApiResult};
use crate::{hosts, networks};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    kind: String,
    project_id: Option<String>,
    host_id: Option<String>,
    description: String,
    created_at: DateTime<Utc>,
}

impl TokenRow {
    fn to_wire(&self, secret: Option<String>) -> Token {
        Token {
            name: format!("tokens/{}", self.id),
            kind: match self.kind.as_str() {
                "ADMIN" => TokenKind::Admin,
                "PROJECT" => TokenKind::Project,
                _ => TokenKind::Host,
            },
            project: self.project_id.clone(),
            host: self.host_id.clone(),
            description: self.description.clone(),
            create_time: self.created_at,
            token: secret,
        }
    }
}

/// Creates a project or host token; the answer is the only time the secret is shown.
pub async fn create(
    conn: &mut PgConnection,
    req: &CreateTokenRequest,
    supernet: Ipv4Net,
) -> ApiResult<Token> {
    let project = req.project.as_deref().filter(|s| !s.is_empty());
    let host = req.host.as_deref().filter(|s| !s.is_empty());
    let kind = match (project, host) {
        (Some(p), None) => {
            networks::ensure_project(conn, p, supernet).await?;
            "PROJECT"
        }
        (None, Some(h)) => {
            hosts::validate_host_id("host", h)?;
            "HOST"
        }
        _ => {
            return Err(ApiError::field(
                "project",
                "exactly one of 'project' and 'host' must be given",
            ))
        }
    };
    if req.description.len() > 256 {
        return Err(ApiError::field(
            "description",
            "must be at most 256 characters",
        ));
    }
    let secret = generate_secret();
    let row: TokenRow = sqlx::query_as(
        r#"insert into api_token (id, token_hash, kind, project_id, host_id, description)
           values ($1, $2, $3, $4, $5, $6)
           returning id, kind, project_id, host_id, description, created_at"#,
    )
    .bind(Uuid::new_v4())
    .bind(hash_secret(&secret))
    .bind(kind)
    .bind(project)
    .bind(host)
    .bind(&req.description)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.to_wire(Some(secret)))
}

/// Tokens not revoked, without secrets.
pub async fn list(db: impl PgExecutor<'_>) -> ApiResult<Vec<Token>> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        r#"select id, kind, project_id, host_id, description, created_at from api_token
           where revoked_at is null order by created_at, id"#,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(|r| r.to_wire(None)).collect())
}

/// Revokes a token; the bootstrap admin token is changed through configuration instead.
pub async fn revoke(db: impl PgExecutor<'_>, id: &str) -> ApiResult<()> {
    let not_found = || ApiError::NotFound(format!("token '{id}' not found"));
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    let bootstrap: Option<bool> = sqlx::query_scalar(
        r#"update api_token set revoked_at = now()
           where id = $1 and revoked_at is null and not bootstrap
           returning bootstrap"#,
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    bootstrap.map(|_| ()).ok_or_else(not_found)
}
