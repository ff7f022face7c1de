//! The one error shape every API method answers with.

use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": {...}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: Status,
}

/// A status as in Google APIs: the HTTP code, the canonical status name, a message for
/// people and, for invalid arguments, the fields at fault. Also the `error` of a failed
/// operation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// HTTP status code (400, 404, 409, …).
    pub code: u16,
    /// Canonical status: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
    /// ABORTED, RESOURCE_EXHAUSTED, UNAUTHENTICATED, PERMISSION_DENIED, INTERNAL, …
    pub status: String,
    /// A sentence for people.
    pub message: String,
    /// The fields at fault, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldViolation>,
}

/// One field of a request that broke a rule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// The field, as named in the request (`replicaCount`, `redisConfigs.maxmemory-policy`,
    /// or a query parameter such as `instanceId`).
    pub field: String,
    /// The rule it broke.
    pub description: String,
}
