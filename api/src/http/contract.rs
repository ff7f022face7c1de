//! The document as a contract: the rules of the parameters many paths share (resource
//! ids, masks, durations, page tokens, filters), stated once here and written into every
//! operation that takes them, and the server's side of it: a query parameter the
//! document does not list for the route is refused (400 on the parameter), as Google's
//! APIs refuse one.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{OpenApi, RefOr, Required, Schema};
use utoipa::Modify;

use crate::error::ApiError;

/// A project id: 2–63 lowercase letters, digits or hyphens, starting with a letter and
/// not ending with a hyphen (`crate::networks::validate_project_id`).
pub const PROJECT_ID: &str = "^[a-z][-a-z0-9]{0,61}[a-z0-9]$";
/// A network or region id: 1–63 characters of the same shape.
pub const ID_63: &str = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$";
/// An instance or connector id: 1–40 characters of the same shape.
pub const ID_40: &str = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$";
/// A host id: 1–63 lowercase letters, digits, dots or hyphens, starting and ending with
/// a letter or digit (`crate::hosts::validate_host_id`).
pub const HOST_ID: &str = "^[a-z0-9]([-.a-z0-9]{0,61}[a-z0-9])?$";
/// A region, or `-` for every region (list methods).
pub const REGION_OR_ALL: &str = "^(-|[a-z]([-a-z0-9]{0,61}[a-z0-9])?)$";
/// A wait: a non-negative number of `ms`, `s` (the default unit), `m` or `h`, or empty for
/// the default; the server lowers a longer one to its longest wait ([`wait_timeout`]).
pub const WAIT: &str = "^$|^[0-9]{1,9}(\\.[0-9]{1,9})?(ms|s|m|h)?$";
/// A page token: unpadded base64url, as `nextPageToken` is (`crate::paging`).
pub const PAGE_TOKEN: &str = "^([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?$";

/// Operations whose `region` may be `-`.
const ALL_REGIONS_OPERATIONS: &[&str] = &[
    "list_instances",
    "list_operations",
    "list_memcache_instances",
];

fn string(pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
}

/// The schema of the shared parameter `name` in `location` of `operation`, if it is one.
fn shared_schema(location: &ParameterIn, name: &str, operation: &str) -> Option<ObjectBuilder> {
    Some(match (location, name) {
        (ParameterIn::Path, "project") => string(PROJECT_ID),
        (ParameterIn::Path, "region") if ALL_REGIONS_OPERATIONS.contains(&operation) => {
            string(REGION_OR_ALL)
        }
        (ParameterIn::Path, "region" | "network") => string(ID_63),
        (ParameterIn::Path, "instance" | "connector") => string(ID_40),
        (ParameterIn::Path, "host") => string(HOST_ID),
        (ParameterIn::Path, "operation" | "tokenId") => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        (ParameterIn::Query, "networkId") => string(ID_63),
        (ParameterIn::Query, "instanceId" | "connectorId") => string(ID_40),
        (ParameterIn::Query, "timeout" | "window") => string(WAIT),
        (ParameterIn::Query, "pageToken") => string(PAGE_TOKEN),
        (ParameterIn::Query, "filter") => {
            let subject = if operation == "list_memcache_instances" {
                crate::memcache::read::FILTER
            } else {
                crate::instances::filter::INSTANCES
            };
            string(&crate::instances::filter::pattern(subject))
                .max_length(Some(crate::instances::filter::MAX_CHARS))
        }
        (ParameterIn::Query, "updateMask") if operation == "patch_memcache_instance" => string(
            &crate::instances::patch::fields_pattern(crate::memcache::patch::UPDATABLE),
        ),
        (ParameterIn::Query, "updateMask") => string(&crate::instances::patch::mask_pattern()),
        _ => return None,
    })
}

/// Parameters the server requires although the handler reads them as optional (to name
/// them in its own error).
const REQUIRED_QUERY: &[&str] = &["networkId", "instanceId", "connectorId", "updateMask"];

/// Writes the shared parameters' rules into every operation that takes them.
pub struct ParameterRules;

impl Modify for ParameterRules {
    fn modify(&self, openapi: &mut OpenApi) {
        for op in super::v1_operations(openapi) {
            let id = op.operation_id.clone().unwrap_or_default();
            for p in op.parameters.iter_mut().flatten() {
                apply(p, &id);
            }
        }
    }
}

fn apply(p: &mut Parameter, operation: &str) {
    let Some(schema) = shared_schema(&p.parameter_in, &p.name, operation) else {
        return;
    };
    p.schema = Some(RefOr::T(Schema::Object(schema.build())));
    if p.parameter_in == ParameterIn::Query && REQUIRED_QUERY.contains(&p.name.as_str()) {
        p.required = Required::True;
    }
}

/// What the document says of each route, as axum matches routes: a Google custom method
/// `…/{instance}:verb` is served by the POST route of `…/{instance}`, which takes the
/// parameters of all of them.
#[derive(Default)]
struct Routes {
    /// The query parameters of each method of each route.
    query: HashMap<(Method, String), HashSet<String>>,
    /// The methods of each route (custom methods aside), for `Allow`.
    methods: HashMap<String, Vec<Method>>,
}

fn routes() -> &'static Routes {
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let doc = super::openapi();
        let mut routes = Routes::default();
        for (path, item) in &doc.paths.paths {
            let (route, custom) = match path.rsplit_once('/') {
                Some((head, last)) if last.contains(':') => (
                    format!("{head}/{}", &last[..last.find(':').unwrap_or(last.len())]),
                    true,
                ),
                _ => (path.clone(), false),
            };
            let methods: [(Method, &Option<Operation>); 5] = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ];
            for (method, op) in methods {
                let Some(op) = op else { continue };
                if !custom {
                    routes
                        .methods
                        .entry(route.clone())
                        .or_default()
                        .push(method.clone());
                }
                let names = routes.query.entry((method, route.clone())).or_default();
                for p in op.parameters.iter().flatten() {
                    if p.parameter_in == ParameterIn::Query {
                        names.insert(p.name.clone());
                    }
                }
            }
        }
        routes
    })
}

/// Whether `path` names a Google custom method (`…/{id}:verb`): ids never hold `:`.
pub fn is_custom_method(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

/// The `Allow` of a route the document describes: its methods (HEAD with GET, as axum
/// serves it); `POST` alone for a custom method.
pub fn allow(path: &str, route: Option<&MatchedPath>) -> Option<String> {
    if is_custom_method(path) {
        return Some("POST".into());
    }
    let methods = routes().methods.get(route?.as_str())?;
    let mut names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    if methods.contains(&Method::GET) {
        names.push("HEAD");
    }
    Some(names.join(","))
}

/// The answer to POST on a resource whose route also serves its Google custom methods
/// (`…/{id}:verb`) when the path names no verb: 405 with the resource's own `Allow`.
pub fn post_without_verb(uri: &axum::http::Uri, route: &MatchedPath) -> Response {
    let error = ApiError::MethodNotAllowed(format!("POST is not allowed on {}", uri.path()));
    match allow(uri.path(), Some(route)) {
        Some(allow) => ([(axum::http::header::ALLOW, allow)], error).into_response(),
        None => error.into_response(),
    }
}

/// Middleware (a route layer, so the matched route is known): refuses a query parameter
/// the document does not list for the route, naming it, and any method but POST on a
/// custom method's path (405). Routes the document does not describe pass.
pub async fn reject_unknown_query(req: Request, next: Next) -> Response {
    if is_custom_method(req.uri().path()) && req.method() != Method::POST {
        let error = ApiError::MethodNotAllowed(format!(
            "{} is not allowed on {}",
            req.method(),
            req.uri().path()
        ));
        return ([(axum::http::header::ALLOW, "POST")], error).into_response();
    }
    if let (Some(_), Some(route)) = (req.uri().query(), req.extensions().get::<MatchedPath>()) {
        if let Some(names) = routes()
            .query
            .get(&(req.method().clone(), route.as_str().to_string()))
        {
            let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
                .map(|q| q.0)
                .unwrap_or_default();
            let unknown = pairs
                .into_iter()
                .map(|(k, _)| k)
                .find(|k| !names.contains(k));
            if let Some(name) = unknown {
                let mut known: Vec<&str> = names.iter().map(String::as_str).collect();
                known.sort_unstable();
                return ApiError::field(
                    printable(&name),
                    format!(
                        "is not a parameter of this method (it takes: {})",
                        known.join(", ")
                    ),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

/// A parameter name as an error may quote it: control characters escaped, at most 64
/// characters.
fn printable(name: &str) -> String {
    name.chars().take(64).flat_map(char::escape_debug).collect()
}

/// Reads a `timeout` query parameter ([`WAIT`]): absent or empty is `default`; longer
/// than a day is a day (callers lower it further to the server's longest wait).
pub fn wait_timeout(raw: Option<&str>, default: Duration) -> Result<Duration, ApiError> {
    duration_param("timeout", raw, default)
}

/// Reads the duration query parameter `name` ([`WAIT`]): absent or empty is `default`;
/// longer than a day is a day; anything else is a 400 naming `name`.
pub fn duration_param(
    name: &str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ApiError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let bad = || {
        ApiError::field(
            name,
            format!(
                "'{}' is not a duration such as 500ms, 30s, 2m or 1h",
                printable(raw)
            ),
        )
    };
    let split = raw
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits_ok = |d: &str| (1..=9).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || !digits_ok(fraction) {
        return Err(bad());
    }
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let seconds: f64 = number.parse::<f64>().map_err(|_| bad())? * scale;
    Ok(Duration::from_secs_f64(seconds.min(MAX_WAIT.as_secs_f64())))
}

/// The longest `timeout` taken as given.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern accepts exactly what the parser accepts.
    #[test]
    fn wait_pattern_matches_the_parser() {
        let re = regex::Regex::new(WAIT).expect("a valid pattern");
        for raw in [
            "",
            "0",
            "250ms",
            "1.5s",
            "30",
            "2m",
            "1h",
            "999999999h",
            "1.",
            ".5",
            "1e3",
            " 1s",
            "1 s",
            "-1s",
            "1d",
            "1.5.5s",
            "1234567890s",
        ] {
            let parsed = wait_timeout(Some(raw), Duration::ZERO).is_ok();
            assert_eq!(re.is_match(raw), parsed, "{raw:?}");
        }
        assert_eq!(
            wait_timeout(Some("250ms"), Duration::ZERO).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(wait_timeout(Some("99h"), Duration::ZERO).unwrap(), MAX_WAIT);
        assert_eq!(
            wait_timeout(None, Duration::from_secs(30)).unwrap(),
            Duration::from_secs(30)
        );
    }

    /// Every id pattern compiles and agrees with the server's checks.
    #[test]
    fn id_patterns_match_the_checks() {
        let project = regex::Regex::new(PROJECT_ID).unwrap();
        let id40 = regex::Regex::new(ID_40).unwrap();
        let host = regex::Regex::new(HOST_ID).unwrap();
        let long = "a".repeat(63);
        for id in [
            "a",
            "ab",
            "a-b",
            "a1",
            "1a",
            "a-",
            "A",
            "",
            long.as_str(),
            "a.b",
        ] {
            assert_eq!(
                project.is_match(id),
                crate::networks::validate_project_id(id).is_ok(),
                "project {id:?}"
            );
            assert_eq!(
                id40.is_match(id),
                crate::instances::validate::instance_id("instanceId", id).is_ok(),
                "instance {id:?}"
            );
            assert_eq!(
                host.is_match(id),
                crate::hosts::validate_host_id("host", id).is_ok(),
                "host {id:?}"
            );
        }
        regex::Regex::new(PAGE_TOKEN).unwrap();
        regex::Regex::new(REGION_OR_ALL).unwrap();
        regex::Regex::new(ID_63).unwrap();
    }
}
