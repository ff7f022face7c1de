//! The resources: `cacheplane_instance`, `cacheplane_network` and `cacheplane_connector`.

pub mod connector;
pub mod instance;
pub mod instance_fields;
pub mod instance_plan;
pub mod lifecycle;
pub mod network;

pub use connector::ConnectorResource;
pub use instance::InstanceResource;
pub use network::NetworkResource;
