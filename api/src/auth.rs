//! Bearer-token authentication. Tokens are random secrets stored as SHA-256 hashes
//! (they are high-entropy, so a fast hash is enough); each is scoped to everything
//! (admin), one project, or one host's agent protocol.

use std::collections::HashMap;
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cacheplane_types::TokenKind;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::db::tokens::{self, Grant};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The platform team: everything.
    Admin,
    /// An application team: one project.
    Project(String),
    /// A node agent: one host.
    Host(String),
}

impl Principal {
    /// Allows admins and the project's own tokens. Anyone else gets NOT_FOUND, so a
    /// token for project A cannot even learn that project B exists.
    /// A project id of the wrong shape is INVALID_ARGUMENT on `project`, for anyone.
    pub fn check_project(&self, project: &str) -> ApiResult<()> {
        crate::networks::validate_project_id(project)?;
        match self {
            Principal::Admin => Ok(()),
            Principal::Project(p) if p == project => Ok(()),
            _ => Err(ApiError::NotFound(format!("project '{project}' not found"))),
        }
    }

    /// Allows admins only.
    pub fn check_admin(&self) -> ApiResult<()> {
        match self {
            Principal::Admin => Ok(()),
            _ => Err(ApiError::PermissionDenied(
                "this method needs an admin token".into(),
            )),
        }
    }

    /// Allows admins and the host's own token.
    pub fn check_host(&self, host: &str) -> ApiResult<()> {
        match self {
            Principal::Admin => Ok(()),
            Principal::Host(h) if h == host => Ok(()),
            _ => Err(ApiError::PermissionDenied(format!(
                "this token may not act for host '{host}'"
            ))),
        }
    }
}

/// A new random secret, `cp_` and 64 hex digits.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("cp_{}", hex::encode(bytes))
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Makes the configured admin token valid and revokes any earlier bootstrap token.
pub async fn bootstrap_admin_token(pool: &PgPool, secret: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        secret.len() >= 16,
        "the admin token must be at least 16 characters"
    );
    let mut tx = pool.begin().await?;
    tokens::install_bootstrap(&mut tx, &hash_secret(secret)).await?;
    tx.commit().await?;
    Ok(())
}

/// A principal the request's protection layer already authenticated (a request
/// extension), so the handler's extractor does not look the token up again.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The secret of an `Authorization: Bearer TOKEN` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> ApiResult<&str> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthenticated("missing 'Authorization: Bearer TOKEN' header".into())
        })?;
    // The scheme is case-insensitive (RFC 7235 §2.1).
    header
        .to_str()
        .ok()
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be 'Bearer TOKEN'".into())
        })
}

/// The SHA-256 of a secret, as the cache and the rate limiter key it.
pub type TokenHash = [u8; 32];

/// The hash of `secret` (the same bytes [`hash_secret`] stores).
pub fn token_hash(secret: &str) -> TokenHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// What the [`TokenCache`] knows of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// Looked up within the TTL: its principal, or `None` for a bad token.
    Fresh(Option<Principal>),
    /// Valid when last looked up, but that was longer ago than the TTL.
    WasValid,
    /// Never looked up, or found invalid longer ago than the TTL.
    Unknown,
}

/// Most lookups kept at once; a flood of distinct bad tokens cannot grow it further.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// Recent token lookups, valid and invalid, keyed by the token's hash (never the
/// secret), for `--token-cache-ttl`: a flood of requests, good or bad tokens, costs one
/// query per token and TTL instead of one per request. A token revoked on another
/// replica keeps working here until its entry expires; revoking through this replica
/// empties the cache at once.
pub struct TokenCache {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<HashMap<TokenHash, (Instant, Option<Principal>)>>,
}

impl TokenCache {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: std::time::Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// What the cache knows of `hash`.
    pub fn get(&self, hash: &TokenHash) -> Cached {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(hash) {
            Some((at, p)) if at.elapsed() < self.ttl => Cached::Fresh(p.clone()),
            Some((_, Some(_))) => Cached::WasValid,
            _ => Cached::Unknown,
        }
    }

    fn put(&self, hash: TokenHash, principal: Option<Principal>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= TOKEN_CACHE_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= TOKEN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash, (Instant::now(), principal));
    }

    /// Forgets every lookup (after a revocation).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Who `secret` stands for (`None`: unknown or revoked), from the cache or else the
/// database through `pool` (the agent protocol looks up through its own pool).
pub async fn authenticate(
    cache: &TokenCache,
    pool: &PgPool,
    hash: TokenHash,
) -> ApiResult<Option<Principal>> {
    if let Cached::Fresh(known) = cache.get(&hash) {
        return Ok(known);
    }
    let principal = match tokens::find_active(pool, &hash).await? {
        Some(g) if g.kind == TokenKind::Admin => Some(Principal::Admin),
        Some(Grant {
            project_id: Some(project),
            ..
        }) => Some(Principal::Project(project)),
        Some(Grant {
            host_id: Some(host),
            ..
        }) => Some(Principal::Host(host)),
        _ => None,
    };
    cache.put(hash, principal.clone());
    Ok(principal)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(Authenticated(p)) = parts.extensions.get::<Authenticated>() {
            return Ok(p.clone());
        }
        let hash = token_hash(bearer(&parts.headers)?);
        authenticate(&state.tokens, &state.pool, hash)
            .await?
            .ok_or_else(|| ApiError::Unauthenticated("the token is unknown or revoked".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("cp_") && a.len() == 67);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }

    #[test]
    fn the_token_cache_expires_and_remembers_valid_tokens() {
        let cache = TokenCache::new(std::time::Duration::from_millis(50));
        let (good, bad) = (token_hash("good"), token_hash("bad"));
        assert_eq!(cache.get(&good), Cached::Unknown);
        cache.put(good, Some(Principal::Admin));
        cache.put(bad, None);
        assert_eq!(cache.get(&good), Cached::Fresh(Some(Principal::Admin)));
        assert_eq!(cache.get(&bad), Cached::Fresh(None));
        std::thread::sleep(std::time::Duration::from_millis(60));
        assert_eq!(cache.get(&good), Cached::WasValid);
        assert_eq!(cache.get(&bad), Cached::Unknown);
        cache.clear();
        assert_eq!(cache.get(&good), Cached::Unknown);
    }

    #[test]
    fn the_token_cache_is_bounded() {
        let cache = TokenCache::new(std::time::Duration::from_secs(60));
        for i in 0..TOKEN_CACHE_ENTRIES + 10 {
            cache.put(token_hash(&i.to_string()), None);
        }
        let len = cache.entries.lock().unwrap().len();
        assert!(len <= TOKEN_CACHE_ENTRIES, "{len} entries");
        assert_eq!(hash_secret("x"), token_hash("x").to_vec());
    }

    #[test]
    fn project_isolation_answers_not_found() {
        let p = Principal::Project("ab".into());
        assert!(p.check_project("ab").is_ok());
        assert!(matches!(p.check_project("bc"), Err(ApiError::NotFound(_))));
        assert!(matches!(
            Principal::Admin.check_project("B!"),
            Err(ApiError::InvalidArgument { .. })
        ));
        assert!(matches!(
            p.check_admin(),
            Err(ApiError::PermissionDenied(_))
        ));
        assert!(Principal::Admin.check_project("bc").is_ok());
    }
}
