//! API tokens (admin only).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a token may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenKind {
    /// Everything.
    Admin,
    /// One project's resources.
    Project,
    /// One host's agent protocol.
    Host,
}

impl TokenKind {
    /// The wire name, also stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Admin => "ADMIN",
            TokenKind::Project => "PROJECT",
            TokenKind::Host => "HOST",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "ADMIN" => Some(TokenKind::Admin),
            "PROJECT" => Some(TokenKind::Project),
            "HOST" => Some(TokenKind::Host),
            _ => None,
        }
    }
}

/// A token. The secret itself is shown once, in the answer to its creation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    /// `tokens/{id}`.
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// The project of a PROJECT token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The host of a HOST token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// The secret, only in the answer to its creation; it is stored hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Body of `POST /v1/tokens`: exactly one of `project` and `host`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A project id: the token may use that project's resources (the project is created
    /// with its `default` network if new).
    #[serde(default)]
    pub project: Option<String>,
    /// A host id: the token may register that host and speak its agent protocol.
    #[serde(default)]
    pub host: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `GET /v1/tokens`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTokensResponse {
    /// Tokens not revoked, without their secrets.
    pub tokens: Vec<Token>,
}
