//! Long-running operations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Connector, Instance, Status};

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
    /// The resource as it stood when the operation succeeded (absent for delete): an
    /// instance, or a connector for the operations on connectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<OperationResponse>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Status>,
}

/// The `response` of a finished operation: the resource it acted on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OperationResponse {
    /// An instance (create, update, failover of instances).
    Instance(Box<Instance>),
    /// A connector (create of connectors).
    Connector(Connector),
}

impl OperationResponse {
    /// The instance, when the operation acted on one.
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            OperationResponse::Instance(i) => Some(i),
            OperationResponse::Connector(_) => None,
        }
    }
}

/// What an operation does and how far it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationMetadata {
    /// `create`, `update`, `delete` or `failover`.
    pub verb: String,
    /// The resource it acts on.
    pub target: String,
    /// When it started.
    pub create_time: DateTime<Utc>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// Percent done, 0–100.
    pub progress: i32,
    /// What it is doing now.
    pub status_detail: String,
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
