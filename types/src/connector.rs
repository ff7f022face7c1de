//! Connectors: a /28 of a network from which client processes outside the network reach
//! its instances (Serverless VPC Access in Memorystore's terms).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The lifecycle state of a connector.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectorState {
    /// Its host has not applied it yet (netns mode).
    Creating,
    /// Client processes can reach the network through it.
    Ready,
    /// Being removed from its host.
    Deleting,
}

impl ConnectorState {
    /// Every state.
    pub const ALL: [ConnectorState; 3] = [
        ConnectorState::Creating,
        ConnectorState::Ready,
        ConnectorState::Deleting,
    ];

    /// The wire name, also stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Creating => "CREATING",
            ConnectorState::Ready => "READY",
            ConnectorState::Deleting => "DELETING",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<ConnectorState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// A connector: `projects/{project}/locations/{region}/connectors/{connector}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    /// `projects/{project}/locations/{region}/connectors/{connector}`.
    pub name: String,
    /// The network it joins: `projects/{project}/networks/{network}`.
    pub network: String,
    /// Its /28 in the network's pool; the connector's own address is the first usable
    /// one (offset 1).
    pub ip_cidr_range: String,
    /// CREATING, READY or DELETING.
    pub state: ConnectorState,
    /// The host that realises it (`hosts/{host}`); netns mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The Linux network namespace on its host in which client processes reach the
    /// network (`ip netns exec NAMESPACE …`); netns mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When it was created.
    pub create_time: DateTime<Utc>,
}

/// Body of `POST …/connectors?connectorId=ID&requestId=UUID`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateConnectorRequest {
    /// The network: an id of the project (`default`, …) or
    /// `projects/{project}/networks/{network}`.
    pub network: String,
    /// An aligned, free /28 of the network's pool; omitted: the first free /28.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_cidr_range: Option<String>,
}

/// `GET …/connectors`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListConnectorsResponse {
    /// One page of connectors, by name.
    pub connectors: Vec<Connector>,
    /// Pass as `pageToken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
