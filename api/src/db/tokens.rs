//! `api_token` rows. Only hashes of secrets are stored.

use cacheplane_types::TokenKind;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::ApiResult;

/// A token as listed (never its secret).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    /// Token id.
    pub id: Uuid,
    /// What it may do.
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    /// Its project, for a project token.
    pub project_id: Option<String>,
    /// Its host, for a host token.
    pub host_id: Option<String>,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const TOKEN_COLUMNS: &str = "id, kind, project_id, host_id, description, created_at";

/// A token about to be stored.
pub struct NewToken<'a> {
    /// Project or host.
    pub kind: TokenKind,
    /// Its project, for a project token.
    pub project: Option<&'a str>,
    /// Its host, for a host token.
    pub host: Option<&'a str>,
    /// Free text.
    pub description: &'a str,
    /// SHA-256 of the secret.
    pub hash: &'a [u8],
}

/// Stores a new token.
pub async fn insert(conn: &mut PgConnection, token: &NewToken<'_>) -> ApiResult<TokenRow> {
    Ok(sqlx::query_as(&format!(
        r#"insert into api_token (id, token_hash, kind, project_id, host_id, description)
           values ($1, $2, $3, $4, $5, $6) returning {TOKEN_COLUMNS}"#
    ))
    .bind(Uuid::new_v4())
    .bind(token.hash)
    .bind(token.kind.as_str())
    .bind(token.project)
    .bind(token.host)
    .bind(token.description)
    .fetch_one(&mut *conn)
    .await?)
}

/// Tokens not revoked, oldest first.
pub async fn list_active(db: impl PgExecutor<'_>) -> ApiResult<Vec<TokenRow>> {
    Ok(sqlx::query_as(&format!(
        "select {TOKEN_COLUMNS} from api_token where revoked_at is null order by created_at, id"
    ))
    .fetch_all(db)
    .await?)
}

/// Revokes a token other than the bootstrap one; `false` if there is none to revoke.
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<bool> {
    let revoked: Option<bool> = sqlx::query_scalar(
        r#"update api_token set revoked_at = now()
           where id = $1 and revoked_at is null and not bootstrap
           returning bootstrap"#,
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(revoked.is_some())
}

/// Makes `hash` the one valid bootstrap admin token: revokes any other bootstrap token and
/// stores (or revives) this one.
pub async fn install_bootstrap(conn: &mut PgConnection, hash: &[u8]) -> ApiResult<()> {
    sqlx::query(
        r#"update api_token set revoked_at = now()
           where bootstrap and revoked_at is null and token_hash <> $1"#,
    )
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        r#"insert into api_token (id, token_hash, kind, description, bootstrap)
           values ($1, $2, 'ADMIN', 'bootstrap admin token from the server configuration', true)
           on conflict (token_hash) do update set revoked_at = null, kind = 'ADMIN'"#,
    )
    .bind(Uuid::new_v4())
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a presented secret may do.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Grant {
    /// Its kind.
    #[sqlx(try_from = "String")]
    pub kind: TokenKind,
    /// Its project, for a project token.
    pub project_id: Option<String>,
    /// Its host, for a host token.
    pub host_id: Option<String>,
}

/// The grant of the token whose secret hashes to `hash`, unless unknown or revoked.
pub async fn find_active(db: impl PgExecutor<'_>, hash: &[u8]) -> ApiResult<Option<Grant>> {
    Ok(sqlx::query_as(
        r#"select kind, project_id, host_id from api_token
           where token_hash = $1 and revoked_at is null"#,
    )
    .bind(hash)
    .fetch_optional(db)
    .await?)
}
