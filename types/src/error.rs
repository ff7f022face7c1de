//! The one error shape every API method answers with.

use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": {...}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: Status,
}

/// A status as in Google APIs (`google.rpc.Status` as Google's JSON answers carry it):
/// the HTTP code, the canonical status name, a message for people and, for invalid
/// arguments, the fields at fault. Also the `error` of a failed operation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// HTTP status code (400, 404, 409, …).
    pub code: u16,
    /// Canonical status: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
    /// ABORTED, RESOURCE_EXHAUSTED, UNAUTHENTICATED, PERMISSION_DENIED, INTERNAL, …
    /// (Google's error bodies have it; `google.rpc.Status`, as in an operation's `error`
    /// for Google's clients, does not.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub status: String,
    /// A sentence for people.
    pub message: String,
    /// The fields at fault, if any: one entry per field, sent as a
    /// [`BadRequestDetail`] (a `google.rpc.BadRequest` that also carries the field at its
    /// top level, as this API always has).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "BadRequestDetail::serialize_all"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<BadRequestDetail>))]
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

/// One entry of an error's `details`: a `google.rpc.BadRequest` packed as Google's APIs
/// pack it (`@type`, `fieldViolations`), holding one violation, whose `field` and
/// `description` it also carries at its top level for clients of this API.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BadRequestDetail {
    /// `type.googleapis.com/google.rpc.BadRequest`.
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The field at fault (as in `fieldViolations[0]`). (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub field: String,
    /// The rule it broke (as in `fieldViolations[0]`). (Cacheplane's.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub description: String,
    /// The field at fault and the rule it broke: one entry.
    pub field_violations: Vec<FieldViolation>,
}

impl BadRequestDetail {
    /// The entry of one violation.
    pub fn of(violation: &FieldViolation) -> BadRequestDetail {
        BadRequestDetail {
            type_url: crate::type_url::BAD_REQUEST.to_string(),
            field: violation.field.clone(),
            description: violation.description.clone(),
            field_violations: vec![violation.clone()],
        }
    }

    /// Serializes violations as `details` entries, one per violation.
    fn serialize_all<S: serde::Serializer>(
        violations: &[FieldViolation],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(violations.iter().map(BadRequestDetail::of))
    }
}

#[cfg(test)]
mod tests;
