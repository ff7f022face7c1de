//! Wire types of the Cacheplane HTTP API: the JSON resources that the API server, the
//! node agent and `cachectl` exchange. Field names are camelCase and, where the concept
//! is the same, named as in Memorystore's `Instance` resource.
//!
//! Requests use `deny_unknown_fields` so that a misspelt field is an error rather than
//! silently ignored. Output-only fields live only on the resource types.

pub mod agent;
pub mod catalog;
pub mod connector;
pub mod duration;
pub mod encoding;
pub mod error;
pub mod instance;
pub mod memcache;
pub mod memcache_agent;
pub mod memcache_params;
pub mod names;
pub mod network;
pub mod node_metrics;
pub mod operation;
pub mod operation_response;
pub mod proto_enum;
pub mod redis_config;
pub mod secret;
pub mod token;
pub mod type_url;

pub use agent::*;
pub use catalog::*;
pub use connector::*;
pub use error::*;
pub use instance::*;
pub use memcache::*;
pub use memcache_agent::*;
pub use names::UnknownName;
pub use network::*;
pub use node_metrics::*;
pub use operation::*;
pub use token::*;
