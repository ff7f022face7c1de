//! OpenAPI links from each create to the methods that act on what it created, so that a
//! stateful client (schemathesis's stateful phase, a code generator) knows that the id
//! of a create's query is the id of the resource's path: a create answers with an
//! operation, not the resource, so the id cannot be read from the answer.

use serde_json::{json, Map, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::Modify;

/// (create, the query parameter naming the new resource, its path parameter, the methods
/// on it).
const LINKS: &[(&str, &str, &str, &[&str])] = &[
    (
        "create_instance",
        "instanceId",
        "instance",
        &[
            "get_instance",
            "patch_instance",
            "delete_instance",
            "failover_instance",
            "get_auth_string",
            "get_node_metrics",
        ],
    ),
    (
        "create_connector",
        "connectorId",
        "connector",
        &["get_connector", "delete_connector"],
    ),
    (
        "create_network",
        "networkId",
        "network",
        &["get_network", "delete_network"],
    ),
];

/// Adds the links to the 200 answers of the creates.
pub struct CreateLinks;

impl Modify for CreateLinks {
    fn modify(&self, openapi: &mut OpenApi) {
        for op in super::v1_operations(openapi) {
            let id = op.operation_id.clone().unwrap_or_default();
            let Some((_, query, path, targets)) = LINKS.iter().find(|(c, ..)| *c == id) else {
                continue;
            };
            let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200") else {
                continue;
            };
            let regional = id != "create_network";
            let mut links = Map::new();
            for target in *targets {
                let mut parameters = json!({
                    "project": "$request.path.project",
                    *path: format!("$request.query.{query}"),
                });
                if regional {
                    parameters["region"] = json!("$request.path.region");
                }
                links.insert(
                    target.to_string(),
                    json!({"operationId": target, "parameters": parameters}),
                );
            }
            // utoipa 5.5 writes a typed link's `operationId` as `operation_id`: the
            // links go in as plain JSON under their key.
            ok.extensions
                .get_or_insert_with(Extensions::default)
                .insert("links".into(), Value::Object(links));
        }
    }
}
