//! The data sources: `cacheplane_instance` (one instance), `cacheplane_zones` (the zones
//! of a region) and `cacheplane_tiers` (the tiers and their limits).

pub mod instance;
pub mod tiers;
pub mod zones;

pub use instance::InstanceDataSource;
pub use tiers::TiersDataSource;
pub use zones::ZonesDataSource;
