//! Regions, zones and tiers: the catalogue an admin manages and users choose from.

use serde::{Deserialize, Serialize};

/// A region such as `local` or `us-east1`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    /// `regions/{region}`.
    pub name: String,
    /// The region id, e.g. `local`.
    pub region_id: String,
    /// The ids of its zones.
    pub zones: Vec<String>,
}

/// A zone of a region, such as `local-a`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Zone {
    /// `regions/{region}/zones/{zone}`.
    pub name: String,
    /// The zone id, e.g. `local-a`.
    pub zone_id: String,
    /// The region it belongs to.
    pub region_id: String,
}

crate::proto_enum::proto_enum! {
    /// The service tier of an instance.
    pub enum Tier("tier") {
        /// One node, no replicas, no failover.
        Basic = "BASIC" / 1,
        /// A primary and 1–5 replicas across zones, with automatic failover.
        StandardHa = "STANDARD_HA" / 3,
    }
}

/// A tier with its limits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierInfo {
    /// `tiers/{tier}`.
    pub name: String,
    /// The tier.
    pub tier: Tier,
    /// What the tier gives.
    pub description: String,
    /// Smallest `memorySizeGb`.
    pub min_memory_size_gb: i32,
    /// Largest `memorySizeGb`.
    pub max_memory_size_gb: i32,
    /// Fewest replicas.
    pub min_replica_count: i32,
    /// Most replicas.
    pub max_replica_count: i32,
    /// Whether the tier fails over automatically.
    pub automatic_failover: bool,
}

/// `GET /v1/regions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRegionsResponse {
    /// Every region.
    pub regions: Vec<Region>,
}

/// `GET /v1/regions/{region}/zones`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListZonesResponse {
    /// The region's zones.
    pub zones: Vec<Zone>,
}

/// `GET /v1/tiers`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListTiersResponse {
    /// Every tier.
    pub tiers: Vec<TierInfo>,
}
