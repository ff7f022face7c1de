//! The API's one error type, answered everywhere with the same body (described in
//! `docs/architecture.md`): `{"error": {"code", "status", "message", "details"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cacheplane_types::{ErrorBody, FieldViolation, Status};

/// An error a client sees. Internal errors are logged where they are answered and sent
/// without their details.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a field broke a rule.
    #[error("{message}")]
    InvalidArgument {
        /// A sentence for people.
        message: String,
        /// The fields at fault.
        details: Vec<FieldViolation>,
    },
    /// 401: no token, or one that is unknown or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a valid token that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: the resource exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409: an etag mismatch or a concurrent change.
    #[error("{0}")]
    Aborted(String),
    /// 400: the request is well formed but the resource's state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// 429: out of capacity (hosts, addresses).
    #[error("{0}")]
    ResourceExhausted(String),
    /// 429: a project quota would be exceeded (answered at once, never as an operation).
    #[error("{0}")]
    QuotaExceeded(String),
    /// 405: the path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 503: a dependency (Postgres) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 504: a wait ran out.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// 500: a bug or an unavailable dependency; details are logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An INVALID_ARGUMENT naming one field and the rule it broke.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        let field = field.into();
        let description = description.into();
        ApiError::InvalidArgument {
            message: format!("{field}: {description}"),
            details: vec![FieldViolation { field, description }],
        }
    }

    /// A valid value that the stored state refuses (a range in use, or outside the
    /// network's pool): FAILED_PRECONDITION (409) whose message starts with the field.
    pub fn conflict(field: &str, description: impl std::fmt::Display) -> ApiError {
        ApiError::FailedPrecondition(format!("{field}: {description}"))
    }

    /// The HTTP status and canonical name of this error.
    pub fn code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidArgument { .. } => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            ApiError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            ApiError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            ApiError::Aborted(_) => (StatusCode::CONFLICT, "ABORTED"),
            // 409: the request is valid, the resource's state refuses it. Google's REST
            // mapping says 400, which Google's client libraries turn into their
            // FailedPrecondition exception: their requests get 400.
            ApiError::FailedPrecondition(_) if crate::http::alt::google_client() => {
                (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION")
            }
            ApiError::FailedPrecondition(_) => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
            ApiError::ResourceExhausted(_) => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
            ApiError::QuotaExceeded(_) => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "UNIMPLEMENTED"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            ApiError::DeadlineExceeded(_) => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }

    /// The status as sent to clients (and stored as a failed operation's `error`).
    pub fn to_status(&self) -> Status {
        let (code, status) = self.code();
        let message = match self {
            ApiError::Internal(_) => "internal error; the server log has the details".to_string(),
            other => other.to_string(),
        };
        let details = match self {
            ApiError::InvalidArgument { details, .. } => details.clone(),
            _ => Vec::new(),
        };
        Status {
            code: code.as_u16(),
            status: status.to_string(),
            message,
            details,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Deadlocks and serialization failures are races with another request: the
        // client may retry.
        if let sqlx::Error::Database(db) = &e {
            if matches!(db.code().as_deref(), Some("40P01") | Some("40001")) {
                return ApiError::Aborted("a concurrent change got in the way; retry".into());
            }
        }
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "internal error");
        }
        let (code, _) = self.code();
        (
            code,
            Json(ErrorBody {
                error: self.to_status(),
            }),
        )
            .into_response()
    }
}

/// The name of the constraint a database error broke, if it is one.
pub fn constraint_of(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}
