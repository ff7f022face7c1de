//! The `response` of a finished operation, packed as a `google.protobuf.Any`: the
//! resource's own fields plus `@type`, by which Google's clients unpack it.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{type_url, Connector, Instance, MemcacheInstance};

/// What a successful operation left.
#[derive(Debug, Clone, PartialEq)]
pub enum OperationResponse {
    /// An instance (create, update, failover of instances), `@type`
    /// `type.googleapis.com/google.cloud.redis.v1.Instance`.
    Instance(Box<Instance>),
    /// A connector (create of connectors), `@type` `type.googleapis.com/cacheplane.v1.Connector`.
    Connector(Connector),
    /// A Memcached instance (create, update of Memcached instances), `@type`
    /// `type.googleapis.com/google.cloud.memcache.v1.Instance`.
    MemcacheInstance(Box<MemcacheInstance>),
    /// Nothing (delete), `@type` `type.googleapis.com/google.protobuf.Empty`.
    Empty,
}

impl OperationResponse {
    /// The instance, when the operation acted on one.
    pub fn instance(&self) -> Option<&Instance> {
        match self {
            OperationResponse::Instance(i) => Some(i),
            OperationResponse::Connector(_)
            | OperationResponse::MemcacheInstance(_)
            | OperationResponse::Empty => None,
        }
    }

    /// Its `@type`.
    pub fn type_url(&self) -> &'static str {
        match self {
            OperationResponse::Instance(_) => type_url::INSTANCE,
            OperationResponse::Connector(_) => type_url::CONNECTOR,
            OperationResponse::MemcacheInstance(_) => type_url::MEMCACHE_INSTANCE,
            OperationResponse::Empty => type_url::EMPTY,
        }
    }
}

impl Serialize for OperationResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = match self {
            OperationResponse::Instance(i) => serde_json::to_value(i),
            OperationResponse::Connector(c) => serde_json::to_value(c),
            OperationResponse::MemcacheInstance(m) => serde_json::to_value(m),
            OperationResponse::Empty => Ok(Value::Object(Map::new())),
        };
        let mut packed = match fields.map_err(S::Error::custom)? {
            Value::Object(map) => map,
            other => return Err(S::Error::custom(format!("not an object: {other}"))),
        };
        packed.insert("@type".to_string(), self.type_url().into());
        packed.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OperationResponse {
    /// By `@type`; without one (written before responses carried it), an instance if it
    /// reads as one, else a connector.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(d)?;
        let type_url = match fields.remove("@type") {
            Some(Value::String(t)) => Some(t),
            Some(other) => return Err(D::Error::custom(format!("@type: not a string: {other}"))),
            None => None,
        };
        let fields = Value::Object(fields);
        let instance =
            |v: Value| serde_json::from_value(v).map(|i| OperationResponse::Instance(Box::new(i)));
        let connector = |v: Value| serde_json::from_value(v).map(OperationResponse::Connector);
        match type_url.as_deref() {
            Some(type_url::INSTANCE) => instance(fields).map_err(D::Error::custom),
            Some(type_url::CONNECTOR) => connector(fields).map_err(D::Error::custom),
            Some(type_url::MEMCACHE_INSTANCE) => serde_json::from_value(fields)
                .map(|m| OperationResponse::MemcacheInstance(Box::new(m)))
                .map_err(D::Error::custom),
            Some(type_url::EMPTY) => Ok(OperationResponse::Empty),
            Some(other) => Err(D::Error::custom(format!("unknown @type '{other}'"))),
            None => instance(fields.clone())
                .or_else(|_| connector(fields))
                .map_err(|_| D::Error::custom("neither an instance nor a connector")),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for OperationResponse {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        let tag = |type_url: &str| {
            ObjectBuilder::new()
                .property(
                    "@type",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([type_url])),
                )
                .required("@type")
        };
        let packed = |schema: &str, type_url: &str, description: &str| {
            AllOfBuilder::new()
                .item(Ref::from_schema_name(schema))
                .item(tag(type_url))
                .description(Some(description))
        };
        OneOfBuilder::new()
            .item(packed(
                "Instance",
                type_url::INSTANCE,
                "An instance (create, update, failover of instances).",
            ))
            .item(packed(
                "Connector",
                type_url::CONNECTOR,
                "A connector (create of connectors).",
            ))
            .item(packed(
                "MemcacheInstance",
                type_url::MEMCACHE_INSTANCE,
                "A Memcached instance (create, update of Memcached instances).",
            ))
            .item(tag(type_url::EMPTY).description(Some("Nothing (delete).")))
            .description(Some(
                "What a successful operation left, with the `@type` by which Google's clients \
                 unpack it: the resource it acted on, or nothing for a delete.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for OperationResponse {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::{PartialSchema, ToSchema};
        schemas.push((Instance::name().into(), Instance::schema()));
        <Instance as ToSchema>::schemas(schemas);
        schemas.push((Connector::name().into(), Connector::schema()));
        <Connector as ToSchema>::schemas(schemas);
        schemas.push((MemcacheInstance::name().into(), MemcacheInstance::schema()));
        <MemcacheInstance as ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests;
