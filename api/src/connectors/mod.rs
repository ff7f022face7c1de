//! Connectors (docs/networking.md#connectors): a /28 of a network from which client
//! processes outside the network reach its instances. In netns mode a connector is a
//! Linux network namespace on one UP host of its region, realised by that host's agent
//! from its host config; it is READY once the host applied the config generation that
//! added it. In loopback and host modes it only reserves its range and is READY at once.

pub mod create;
pub mod delete;
pub mod read;

use cacheplane_types::{Connector, ConnectorSpec, NetworkSpec, OperationVerb};
use ipnet::{IpNet, Ipv4Net};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::connectors as db;
use crate::error::{ApiError, ApiResult};
use crate::instances::layout::{offset, PRIMARY_ENDPOINT_OFFSET};
use crate::operations::NewOperation;

pub use crate::db::connectors::ConnectorRow;

/// Where a connector lives: `projects/{project}/locations/{region}/connectors/{name}`.
#[derive(Debug, Clone)]
pub struct ConnectorRef {
    /// Project id.
    pub project: String,
    /// Region id.
    pub region: String,
    /// Connector id.
    pub name: String,
}

impl ConnectorRef {
    /// Its project and region.
    pub fn scope(&self) -> (&str, &str) {
        (&self.project, &self.region)
    }

    /// The full resource name.
    pub fn full_name(&self) -> String {
        full_name(&self.project, &self.region, &self.name)
    }

    /// A new operation `verb` on this connector.
    pub fn new_operation<'a>(
        &'a self,
        id: Uuid,
        verb: OperationVerb,
        detail: &'a str,
    ) -> NewOperation<'a> {
        NewOperation {
            id,
            project: &self.project,
            region: &self.region,
            verb,
            target: self.full_name(),
            instance: None,
            detail,
            params: serde_json::json!({}),
        }
    }

    /// NOT_FOUND naming the connector.
    pub fn not_found(&self) -> ApiError {
        ApiError::NotFound(format!("connector '{}' not found", self.name))
    }
}

fn full_name(project: &str, region: &str, name: &str) -> String {
    format!("projects/{project}/locations/{region}/connectors/{name}")
}

/// The Linux network namespace of connector `id`: `cpc-` and the first 12 hex digits
/// of its uuid (unique by a constraint; a clash is as unlikely as 48 random bits).
pub fn namespace_of(id: Uuid) -> String {
    format!("cpc-{}", &id.simple().to_string()[..12])
}

impl ConnectorRow {
    /// The full resource name.
    pub fn full_name(&self) -> String {
        full_name(&self.project_id, &self.region_id, &self.name)
    }

    /// The connector's /28.
    pub fn range(&self) -> Option<Ipv4Net> {
        match self.ip_cidr_range {
            Some(IpNet::V4(r)) => Some(r),
            _ => None,
        }
    }

    /// The wire resource.
    pub fn to_wire(&self) -> Connector {
        Connector {
            name: self.full_name(),
            network: self.network_name.clone(),
            ip_cidr_range: self.range().map(|r| r.to_string()).unwrap_or_default(),
            state: self.state,
            host: self.host_id.as_ref().map(|h| format!("hosts/{h}")),
            namespace: self.namespace.clone(),
            create_time: self.created_at,
        }
    }

    /// What its host's agent realises; `None` without a namespace (loopback, host mode).
    pub fn spec(&self) -> Option<ConnectorSpec> {
        let range = self.range()?;
        Some(ConnectorSpec {
            name: self.full_name(),
            network: NetworkSpec {
                name: self.network_name.clone(),
                ip_range: self.network_ip_range.to_string(),
            },
            ip_cidr_range: range.to_string(),
            address: offset(range, PRIMARY_ENDPOINT_OFFSET).to_string(),
            namespace: self.namespace.clone()?,
        })
    }
}

/// The connectors `host` must realise, as its config carries them.
pub async fn specs_on_host(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Vec<ConnectorSpec>> {
    Ok(db::on_host(db, host)
        .await?
        .iter()
        .filter_map(ConnectorRow::spec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_short_and_unique_per_uuid() {
        let a = namespace_of(Uuid::from_u128(0x0123_4567_89ab_cdef_0000_0000_0000_0000));
        assert_eq!(a, "cpc-0123456789ab");
        assert_eq!(a.len(), 16);
    }
}
