//! The rules of request bodies that the types' derived schemas do not state: lengths,
//! ranges, patterns, the `redisConfigs` allow-list and the rules between fields (a BASIC
//! instance has no replicas, …), written into the document's components so that
//! `openapi.yaml` accepts what the server accepts. Rules that depend on stored data (a
//! zone of the region, a free range of the network's pool, the instance being patched)
//! are stated in the descriptions only; docs/architecture.md#the-document-as-a-contract
//! lists them.

use serde_json::{json, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, Object, ObjectBuilder, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, RefOr, Schema};
use utoipa::Modify;

use cacheplane_types::redis_config::{Rule, KEYSPACE_EVENT_CLASSES, REDIS_CONFIGS};

use super::contract::{HOST_ID, ID_63, PROJECT_ID};
use crate::instances::validate::{MAX_LABELS, REDIS_VERSIONS};

/// Free text without control characters (`char::is_control`), as display names are.
pub const NO_CONTROL: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// Free text without NUL, which no stored string may hold.
pub const NO_NUL: &str = "^[^\\x00]*$";
/// A label key: 1–63 lowercase letters, digits, `-` or `_`, starting with a letter.
pub const LABEL_KEY: &str = "^[a-z][-_a-z0-9]{0,62}$";
/// A label value: at most 63 lowercase letters, digits, `-` or `_`.
pub const LABEL_VALUE: &str = "^[-_a-z0-9]{0,63}$";
/// A regular expression for the aligned IPv4 CIDRs (no host bits set) with a prefix
/// length from `shortest` to `longest`, as `crate::networks::parse_cidr` reads them
/// (octets in plain decimal).
pub fn aligned_cidr(shortest: u8, longest: u8) -> String {
    let octet = |step: u32| -> String {
        let values: Vec<String> = (0..256)
            .step_by(step as usize)
            .map(|v| v.to_string())
            .collect();
        if step == 1 {
            "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])".into()
        } else {
            format!("({})", values.join("|"))
        }
    };
    let alternatives: Vec<String> = (shortest..=longest)
        .map(|prefix| {
            let octets: Vec<String> = (0..4u32)
                .map(|i| {
                    let bits = (u32::from(prefix)).saturating_sub(i * 8).min(8);
                    match bits {
                        8 => octet(1),
                        0 => "0".into(),
                        b => octet(1 << (8 - b)),
                    }
                })
                .collect();
            format!("{}/{prefix}", octets.join("\\."))
        })
        .collect();
    format!("^({})$", alternatives.join("|"))
}
/// The smallest and largest `memorySizeGb` of the seeded tiers.
const MEMORY_GB: (i64, i64) = (1, 300);
/// The most replicas of a STANDARD_HA instance.
const MAX_REPLICAS: i64 = 5;

/// Writes the body rules into the document's components.
pub struct BodyRules;

impl Modify for BodyRules {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let schemas = &mut components.schemas;
        let mut with = |schema: &str, f: &dyn Fn(&mut Object)| {
            if let Some(RefOr::T(Schema::Object(o))) = schemas.get_mut(schema) {
                f(o);
            }
        };
        with("CreateInstanceRequest", &|o| {
            instance_fields(o);
            set(o, "memorySizeGb", |p| {
                p.minimum = Some(MEMORY_GB.0.into());
                p.maximum = Some(MEMORY_GB.1.into());
            });
            set(o, "locationId", |p| p.pattern = Some(ID_63.into()));
            set(o, "alternativeLocationId", |p| {
                p.pattern = Some(ID_63.into())
            });
            set(o, "authorizedNetwork", |p| p.max_length = Some(200));
            // /28 or larger; empty: allocated automatically, as when omitted.
            set(o, "reservedIpRange", |p| {
                p.pattern = Some(format!("^$|{}", aligned_cidr(0, 28)));
            });
            set(o, "redisVersion", |p| {
                let mut versions: Vec<Value> = REDIS_VERSIONS.iter().map(|v| json!(v)).collect();
                versions.push(Value::Null);
                p.enum_values = Some(versions);
            });
            between_fields(o, create_rules());
        });
        with("PatchInstanceRequest", &|o| {
            instance_fields(o);
            set(o, "memorySizeGb", |p| {
                p.minimum = Some(MEMORY_GB.0.into());
                p.maximum = Some(MEMORY_GB.1.into());
            });
            set(o, "secondaryIpRange", |p| {
                p.pattern = Some(format!("^$|^auto$|{}", aligned_cidr(28, 28)));
            });
            set(o, "etag", |p| p.pattern = Some(NO_NUL.into()));
            // Set at create only: a patch may carry it as null, nothing else.
            if let Some(field) = o.properties.get_mut("transitEncryptionMode") {
                *field = RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::Null)
                        .description(Some(
                            "Set at create only: a patch may carry it only as null.",
                        ))
                        .build(),
                ));
            }
        });
        with("CreateMemcacheInstanceRequest", &|o| {
            memcache_fields(o);
            for field in ["nodeCount", "nodeConfig"] {
                if !o.required.iter().any(|r| r == field) {
                    o.required.push(field.into());
                }
            }
            set(o, "authorizedNetwork", |p| p.max_length = Some(200));
        });
        with("PatchMemcacheInstanceRequest", &|o| {
            memcache_fields(o);
            set(o, "etag", |p| p.pattern = Some(NO_NUL.into()));
        });
        with("MemcacheNodeConfig", &|o| {
            use crate::memcache::validate::{MAX_CPU_COUNT, MAX_MEMORY_MB, MIN_MEMORY_MB};
            set(o, "cpuCount", |p| {
                p.minimum = Some(1.into());
                p.maximum = Some(MAX_CPU_COUNT.into());
            });
            set(o, "memorySizeMb", |p| {
                p.minimum = Some(MIN_MEMORY_MB.into());
                p.maximum = Some(MAX_MEMORY_MB.into());
            });
        });
        with("CreateNetworkRequest", &|o| {
            set(o, "ipRange", |p| p.pattern = Some(aligned_cidr(8, 28)));
            description(o);
        });
        with("CreateConnectorRequest", &|o| {
            set(o, "network", |p| {
                p.min_length = Some(1);
                p.max_length = Some(200);
            });
            set(o, "ipCidrRange", |p| {
                p.pattern = Some(format!("^$|{}", aligned_cidr(28, 28)));
            });
        });
        with("CreateTokenRequest", &|o| {
            set(o, "project", |p| p.pattern = Some(PROJECT_ID.into()));
            set(o, "host", |p| p.pattern = Some(HOST_ID.into()));
            description(o);
            // Exactly one of the two.
            between_fields(
                o,
                json!([{"oneOf": [
                    {"required": ["project"], "properties": {"project": {"type": "string"}, "host": {"type": "null"}}},
                    {"required": ["host"], "properties": {"host": {"type": "string"}, "project": {"type": "null"}}}
                ]}]),
            );
        });
        with("RegisterHostRequest", &|o| {
            set(o, "zone", |p| p.pattern = Some(ID_63.into()));
            set(o, "address", |p| {
                let ip = json!([{"format": "ipv4"}, {"format": "ipv6"}]);
                p.extensions
                    .get_or_insert_with(Extensions::default)
                    .insert("anyOf".into(), ip);
            });
            set(o, "memoryBytes", |p| p.minimum = Some(1.into()));
            if let Some(RefOr::T(Schema::Array(engines))) = o.properties.get_mut("engines") {
                engines.max_items = Some(16);
                if let ArrayItems::RefOrSchema(item) = &mut engines.items {
                    if let RefOr::T(Schema::Object(item)) = item.as_mut() {
                        item.min_length = Some(1);
                        item.max_length = Some(32);
                    }
                }
            }
        });
        with("HeartbeatRequest", &|o| {
            set(o, "appliedGeneration", |p| p.minimum = Some(0.into()));
        });
        let bodies = request_bodies(openapi);
        no_nul_strings(openapi, bodies);
        optional_empty_bodies(openapi);
    }
}

/// Marks a request body optional where its schema requires no field: the server reads no
/// body as `{}` (`crate::http::extract::Json`).
fn optional_empty_bodies(openapi: &mut OpenApi) {
    let Some(components) = openapi.components.as_ref() else {
        return;
    };
    let needs_fields = |name: &str| match components.schemas.get(name) {
        Some(RefOr::T(Schema::Object(o))) => {
            !o.required.is_empty()
                || o.extensions
                    .as_ref()
                    .is_some_and(|e| e.contains_key("allOf"))
        }
        _ => true,
    };
    let mut optional = Vec::new();
    for (path, item) in &openapi.paths.paths {
        for (i, op) in [&item.put, &item.post, &item.patch].into_iter().enumerate() {
            let Some(body) = op.as_ref().and_then(|op| op.request_body.as_ref()) else {
                continue;
            };
            let refs: Vec<String> = body
                .content
                .values()
                .filter_map(|c| match &c.schema {
                    Some(RefOr::Ref(r)) => Some(component_name(&r.ref_location)),
                    _ => None,
                })
                .collect();
            if !refs.is_empty() && refs.iter().all(|r| !needs_fields(r)) {
                optional.push((path.clone(), i));
            }
        }
    }
    for (path, i) in optional {
        let Some(item) = openapi.paths.paths.get_mut(&path) else {
            continue;
        };
        let op = [&mut item.put, &mut item.post, &mut item.patch]
            .into_iter()
            .nth(i)
            .and_then(|op| op.as_mut());
        if let Some(body) = op.and_then(|op| op.request_body.as_mut()) {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
}

/// The components the document's operations take as request bodies.
fn request_bodies(openapi: &OpenApi) -> Vec<String> {
    let mut names = Vec::new();
    for item in openapi.paths.paths.values() {
        for op in [&item.put, &item.post, &item.patch].into_iter().flatten() {
            let Some(body) = &op.request_body else {
                continue;
            };
            for content in body.content.values() {
                if let Some(RefOr::Ref(r)) = &content.schema {
                    names.push(component_name(&r.ref_location));
                }
            }
        }
    }
    names
}

fn component_name(location: &str) -> String {
    location.rsplit('/').next().unwrap_or_default().to_string()
}

/// Gives every free string of the request bodies (and of the components they refer to)
/// the rule the server applies to all of them: no NUL character (a stored string cannot
/// hold one; `crate::http::extract::parse_json` refuses it).
fn no_nul_strings(openapi: &mut OpenApi, mut pending: Vec<String>) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = components.schemas.get_mut(&name) {
            walk(schema, &mut pending);
        }
    }
}

fn walk(schema: &mut RefOr<Schema>, refs: &mut Vec<String>) {
    let schema = match schema {
        RefOr::Ref(r) => return refs.push(component_name(&r.ref_location)),
        RefOr::T(s) => s,
    };
    match schema {
        Schema::Object(o) => {
            let is_string = match &o.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(ts) => ts.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            let free = o.pattern.is_none() && o.enum_values.is_none() && o.format.is_none();
            if is_string && free && o.extensions.is_none() {
                o.pattern = Some(NO_NUL.into());
            }
            for p in o.properties.values_mut() {
                walk(p, refs);
            }
            if let Some(AdditionalProperties::RefOr(p)) = o.additional_properties.as_deref_mut() {
                walk(p, refs);
                // A map: its keys are strings too.
                match o.property_names.as_deref_mut() {
                    None => o.property_names = Some(Box::new(string(NO_NUL))),
                    Some(Schema::Object(keys)) if keys.pattern.is_none() => {
                        keys.pattern = Some(NO_NUL.into());
                    }
                    Some(_) => {}
                }
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(item) = &mut a.items {
                walk(item, refs);
            }
        }
        Schema::OneOf(x) => x.items.iter_mut().for_each(|i| walk(i, refs)),
        Schema::AllOf(x) => x.items.iter_mut().for_each(|i| walk(i, refs)),
        Schema::AnyOf(x) => x.items.iter_mut().for_each(|i| walk(i, refs)),
        _ => {}
    }
}

/// The property `name` of `o` as an object schema to change, if it is one.
fn set(o: &mut Object, name: &str, f: impl FnOnce(&mut Object)) {
    if let Some(RefOr::T(Schema::Object(p))) = o.properties.get_mut(name) {
        f(p);
    }
}

/// `description`: at most 256 characters, no NUL.
fn description(o: &mut Object) {
    set(o, "description", |p| {
        p.max_length = Some(256);
        p.pattern = Some(NO_NUL.into());
    });
}

/// The fields a Memcached instance's create and patch share: display name, labels, and
/// the node count (one /28 holds the nodes).
fn memcache_fields(o: &mut Object) {
    named_and_labelled(o);
    set(o, "nodeCount", |p| {
        p.minimum = Some(1.into());
        p.maximum = Some(crate::memcache::MAX_NODES.into());
    });
}

/// `displayName` and `labels`, as every resource with them takes them.
fn named_and_labelled(o: &mut Object) {
    set(o, "displayName", |p| {
        p.max_length = Some(80);
        p.pattern = Some(NO_CONTROL.into());
    });
    set(o, "labels", |p| {
        p.max_properties = Some(MAX_LABELS);
        p.property_names = Some(Box::new(string(LABEL_KEY)));
        p.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(string(
            LABEL_VALUE,
        )))));
    });
}

/// The fields create and patch share: display name, labels, engine settings, replicas.
fn instance_fields(o: &mut Object) {
    named_and_labelled(o);
    set(o, "replicaCount", |p| {
        p.minimum = Some(0.into());
        p.maximum = Some(MAX_REPLICAS.into());
    });
    set(o, "redisConfigs", |p| {
        let mut configs = ObjectBuilder::new().schema_type(p.schema_type.clone());
        for key in REDIS_CONFIGS {
            configs = configs.property(key.name, config_value(&key.rule));
        }
        let mut built = configs
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .description(p.description.clone())
            .build();
        built.description = p.description.clone();
        *p = built;
    });
}

fn string(pattern: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build(),
    )
}

/// The schema of one `redisConfigs` value, from its rule.
fn config_value(rule: &Rule) -> Schema {
    let builder = ObjectBuilder::new().schema_type(Type::String);
    Schema::Object(match *rule {
        Rule::OneOf(words) => builder.enum_values(Some(words.iter().copied())).build(),
        Rule::Int { max, .. } => builder.pattern(Some(integer_up_to(max))).build(),
        Rule::KeyspaceEvents => builder
            .pattern(Some(format!(
                "^[{}]{{0,{}}}$",
                KEYSPACE_EVENT_CLASSES.replace('$', "\\$"),
                KEYSPACE_EVENT_CLASSES.len()
            )))
            .build(),
        // At least 0.1, at most 12 characters; at most memorySizeGb (see the
        // description).
        Rule::Gigabytes => builder
            .pattern(Some("^([0-9]*[1-9][0-9]*(\\.[0-9]+)?|0+\\.[1-9][0-9]*)$"))
            .max_length(Some(12))
            .description(Some(
                "GB, e.g. `0.5`: at least 0.1 and at most the instance's memorySizeGb",
            ))
            .build(),
    })
}

/// A regular expression for the whole numbers 0 to `max` in plain digits (no sign, no
/// leading zeros).
pub fn integer_up_to(max: u64) -> String {
    let digits: Vec<u32> = max
        .to_string()
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let n = digits.len();
    let mut alternatives = vec!["0".to_string()];
    if n > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    // Same length as max: equal up to position i, smaller at i, anything after.
    for (i, &digit) in digits.iter().enumerate() {
        let low = u32::from(i == 0);
        if digit > low {
            let prefix: String = digits[..i].iter().map(|d| d.to_string()).collect();
            let class = match digit - 1 {
                high if high == low => high.to_string(),
                high => format!("[{low}-{high}]"),
            };
            let rest = match n - i - 1 {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                k => format!("[0-9]{{{k}}}"),
            };
            alternatives.push(format!("{prefix}{class}{rest}"));
        }
    }
    alternatives.push(max.to_string());
    format!("^({})$", alternatives.join("|"))
}

/// Adds `rules` (JSON Schemas) to `o` as an `allOf` every body must also satisfy.
fn between_fields(o: &mut Object, rules: Value) {
    let extensions = o.extensions.get_or_insert_with(Extensions::default);
    extensions.insert("allOf".into(), rules);
    if o.schema_type == SchemaType::AnyValue {
        o.schema_type = SchemaType::Type(Type::Object);
    }
}

/// Create's rules between fields: BASIC has no replicas, no read replicas and no
/// alternative zone; STANDARD_HA has 1 replica without read replicas and 1–5 with them.
fn create_rules() -> Value {
    let basic = json!({"enum": ["BASIC", 1]});
    let enabled = json!({"enum": ["READ_REPLICAS_ENABLED", 2]});
    json!([
        {
            "if": {"properties": {"tier": basic}, "required": ["tier"]},
            "then": {"properties": {
                "replicaCount": {"enum": [0, null]},
                "readReplicasMode": {"not": enabled},
                "alternativeLocationId": {"type": "null"}
            }}
        },
        {
            "if": {"properties": {"tier": {"not": basic}}, "required": ["tier"]},
            "then": {"if": {"properties": {"readReplicasMode": enabled}, "required": ["readReplicasMode"]},
                     "then": {"properties": {"replicaCount": {"anyOf": [{"type": "null"}, {"minimum": 1, "maximum": MAX_REPLICAS}]}}},
                     "else": {"properties": {"replicaCount": {"enum": [1, null]}}}}
        }
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use cacheplane_types::redis_config::check_config;

    #[test]
    fn cidr_patterns_match_the_parser() {
        let re = regex::Regex::new(&aligned_cidr(8, 28)).unwrap();
        for cidr in [
            "10.0.0.0/8",
            "10.32.0.0/24",
            "10.32.0.16/28",
            "10.32.0.17/28",
            "10.0.0.0/7",
            "10.0.0.0/29",
            "10.128.0.0/9",
            "10.64.0.0/9",
            "192.168.1.0/23",
            "192.168.2.0/23",
            "010.0.0.0/8",
            "10.0.0.0/08",
            "256.0.0.0/8",
            "1.2.3.4",
            " 10.0.0.0/8",
        ] {
            let parsed = crate::networks::parse_cidr("ipRange", cidr)
                .is_ok_and(|n| (8..=28).contains(&n.prefix_len()));
            assert_eq!(re.is_match(cidr), parsed, "{cidr}");
        }
    }

    #[test]
    fn integer_patterns_match_the_rule() {
        for max in [9u64, 10, 99, 100, 2_147_483_647, 9_223_372_036_854_775_807] {
            let re = regex::Regex::new(&integer_up_to(max)).unwrap();
            for n in [0u64, 1, 9, 10, 11, 99, 100, 101, 1000, max - 1, max] {
                assert_eq!(re.is_match(&n.to_string()), n <= max, "{n} against {max}");
            }
            assert!(!re.is_match(&(u128::from(max) + 1).to_string()), "{max}+1");
            assert!(!re.is_match(&format!("{}0", max)), "{max}0");
            for bad in ["", "01", "-1", "+1", "1.0", " 1"] {
                assert!(!re.is_match(bad), "{bad:?} for {max}");
            }
        }
    }

    /// Each `redisConfigs` value pattern accepts what the allow-list accepts (without
    /// the memory bound of `maxmemory-gb`).
    #[test]
    fn config_patterns_match_the_allow_list() {
        for key in REDIS_CONFIGS {
            let Schema::Object(o) = config_value(&key.rule) else {
                panic!("{}: not an object schema", key.name)
            };
            let samples = [
                "0",
                "1",
                "10",
                "0.1",
                "0.05",
                "1.5",
                "00.5",
                ".5",
                "1.",
                "abc",
                "yes",
                "no",
                "allkeys-lru",
                "Ex",
                "KEA",
                "KK",
                "",
                "2147483647",
                "2147483648",
                "9223372036854775807",
                "123456789.12",
                "1234567890.1",
            ];
            for v in samples {
                let accepted = check_config(key.name, v, None).is_ok();
                let documented = match (&o.enum_values, &o.pattern) {
                    (Some(values), _) => values.contains(&json!(v)),
                    (None, Some(p)) => {
                        regex::Regex::new(p).unwrap().is_match(v)
                            && o.max_length.is_none_or(|m| v.chars().count() <= m)
                    }
                    (None, None) => true,
                };
                assert_eq!(documented, accepted, "{} = {v:?}", key.name);
            }
        }
    }
}
