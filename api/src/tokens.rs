//! Project and host tokens, created and revoked by admins.

use cacheplane_types::{CreateTokenRequest, Token, TokenKind};
use ipnet::Ipv4Net;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::auth::{generate_secret, hash_secret};
use crate::db::tokens::{self as db, NewToken, TokenRow};
use crate::error::{ApiError, ApiResult};
use crate::{hosts, networks};

fn to_wire(row: &TokenRow, secret: Option<String>) -> Token {
    Token {
        name: format!("tokens/{}", row.id),
        kind: row.kind,
        project: row.project_id.clone(),
        host: row.host_id.clone(),
        description: row.description.clone(),
        create_time: row.created_at,
        token: secret,
    }
}

/// Creates a project or host token; the answer is the only time the secret is shown.
pub async fn create(
    conn: &mut PgConnection,
    req: &CreateTokenRequest,
    supernet: Ipv4Net,
) -> ApiResult<Token> {
    let (project, host) = (req.project.as_deref(), req.host.as_deref());
    let kind = match (project, host) {
        (Some(p), None) => {
            networks::ensure_project(conn, p, supernet).await?;
            TokenKind::Project
        }
        (None, Some(h)) => {
            hosts::validate_host_id("host", h)?;
            TokenKind::Host
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
    let row = db::insert(
        conn,
        &NewToken {
            kind,
            project,
            host,
            description: &req.description,
            hash: &hash_secret(&secret),
        },
    )
    .await?;
    Ok(to_wire(&row, Some(secret)))
}

/// Tokens not revoked, without secrets.
pub async fn list(db: impl PgExecutor<'_>) -> ApiResult<Vec<Token>> {
    Ok(db::list_active(db)
        .await?
        .iter()
        .map(|r| to_wire(r, None))
        .collect())
}

/// Revokes a token; the bootstrap admin token is changed through configuration instead.
pub async fn revoke(db: impl PgExecutor<'_>, id: &str) -> ApiResult<()> {
    let not_found = || ApiError::NotFound(format!("token '{id}' not found"));
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    if db::revoke(db, id).await? {
        Ok(())
    } else {
        Err(not_found())
    }
}
