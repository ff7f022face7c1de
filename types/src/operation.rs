//! Long-running operations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::operation_response::OperationResponse;
use crate::{type_url, Status};

/// What an operation does: the `verb` of its metadata, also stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationVerb {
    /// Creates an instance.
    Create,
    /// Applies a patch.
    Update,
    /// Deletes an instance.
    Delete,
    /// Moves the primary to a replica (manual or automatic).
    Failover,
}

impl OperationVerb {
    /// Every verb.
    pub const ALL: [OperationVerb; 4] = [
        OperationVerb::Create,
        OperationVerb::Update,
        OperationVerb::Delete,
        OperationVerb::Failover,
    ];

    /// The wire name (`create`, `update`, `delete`, `failover`).
    pub fn as_str(self) -> &'static str {
        match self {
            OperationVerb::Create => "create",
            OperationVerb::Update => "update",
            OperationVerb::Delete => "delete",
            OperationVerb::Failover => "failover",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<OperationVerb> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A long-running operation: every create, update, delete and failover returns one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// `projects/{project}/locations/{region}/operations/{id}`.
    pub name: String,
    /// What it does and how far it is.
    pub metadata: OperationMetadata,
    /// Whether it has finished, with `response` or `error`.
    pub done: bool,
    /// What a successful operation left, packed as Google's operations pack it (with
    /// `@type`): the resource as it stood at the end (an instance, or a connector for the
    /// operations on connectors), or nothing (`google.protobuf.Empty`) for a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<OperationResponse>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

/// What an operation does and how far it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationMetadata {
    /// `type.googleapis.com/google.cloud.redis.v1.OperationMetadata` (for Memcached
    /// instances `…/google.cloud.memcache.v1.OperationMetadata`), by which Google's
    /// clients unpack it.
    #[serde(rename = "@type", default = "metadata_type_url")]
    pub type_url: String,
    /// `create`, `update`, `delete` or `failover`.
    pub verb: String,
    /// The resource it acts on.
    pub target: String,
    /// When it started.
    pub create_time: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Percent done, 0–100. (Cacheplane's: Google's `OperationMetadata` lacks it.)
    #[serde(skip_serializing_if = "crate::encoding::cacheplane_only")]
    pub progress: i32,
    /// What it is doing now.
    pub status_detail: String,
    /// Always false: operations cannot be cancelled (a delete cancels what runs on its
    /// instance).
    #[serde(default)]
    pub cancel_requested: bool,
    /// `v1`.
    #[serde(default)]
    pub api_version: String,
}

impl OperationMetadata {
    /// The metadata of an operation: `@type` and `apiVersion` filled in.
    pub fn new(
        verb: OperationVerb,
        target: String,
        create_time: DateTime<Utc>,
        end_time: Option<DateTime<Utc>>,
        progress: i32,
        status_detail: String,
    ) -> OperationMetadata {
        // Memorystore for Memcached's metadata has the same fields under its own name.
        let type_url = if target.contains("/memcacheInstances/") {
            type_url::MEMCACHE_OPERATION_METADATA.to_string()
        } else {
            metadata_type_url()
        };
        OperationMetadata {
            type_url,
            verb: verb.as_str().to_string(),
            target,
            create_time,
            end_time,
            progress,
            status_detail,
            cancel_requested: false,
            api_version: type_url::API_VERSION.to_string(),
        }
    }
}

fn metadata_type_url() -> String {
    type_url::OPERATION_METADATA.to_string()
}

/// `GET …/operations`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOperationsResponse {
    /// One page of operations, newest first.
    pub operations: Vec<Operation>,
    /// Pass as `pageToken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
