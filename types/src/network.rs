//! Networks (VPC-style address pools).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A network: a name and the pool from which instances' address ranges are allocated.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `projects/{project}/networks/{network}`.
    pub name: String,
    /// The pool, e.g. `10.128.0.0/16`.
    pub ip_range: String,
    /// Free text.
    pub description: String,
    /// When it was created.
    pub create_time: DateTime<Utc>,
}

/// Body of `POST /v1/projects/{project}/networks?networkId=ID`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateNetworkRequest {
    /// The pool in CIDR notation, /8 to /28, inside a supernet the server allows
    /// (`--network-supernets`), never touching 127.0.0.0/16 or a registered host's
    /// address. It may not overlap another network of the project, nor, unless the
    /// server runs in netns mode, a network of any other project.
    pub ip_range: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// `GET /v1/projects/{project}/networks`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListNetworksResponse {
    /// The project's networks, by name.
    pub networks: Vec<Network>,
}
