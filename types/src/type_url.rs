//! The `@type` of the messages that Google's APIs pack into a `google.protobuf.Any`: an
//! operation's `metadata` and `response`, an error's `details`. Google's client libraries
//! unpack them by this name.

/// An operation's `metadata`.
pub const OPERATION_METADATA: &str = "type.googleapis.com/google.cloud.redis.v1.OperationMetadata";
/// An operation's `metadata` when it acts on a Memcached instance.
pub const MEMCACHE_OPERATION_METADATA: &str =
    "type.googleapis.com/google.cloud.memcache.v1.OperationMetadata";
/// The `response` of an operation on an instance.
pub const INSTANCE: &str = "type.googleapis.com/google.cloud.redis.v1.Instance";
/// The `response` of an operation on a Memcached instance.
pub const MEMCACHE_INSTANCE: &str = "type.googleapis.com/google.cloud.memcache.v1.Instance";
/// The `response` of an operation that leaves nothing (delete).
pub const EMPTY: &str = "type.googleapis.com/google.protobuf.Empty";
/// The `response` of an operation on a connector (a Cacheplane resource: Google's clients
/// do not know it).
pub const CONNECTOR: &str = "type.googleapis.com/cacheplane.v1.Connector";
/// An entry of an error's `details` naming fields at fault.
pub const BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";
/// The API version an operation's metadata names.
pub const API_VERSION: &str = "v1";
