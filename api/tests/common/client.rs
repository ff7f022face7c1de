//! The client side of the lifecycle tests: instances and operations of one project
//! (`proj`) in region `local`, through the public API with the admin token.

use std::collections::HashMap;

use cacheplane_testkit::json::{array_field, i64_field, str_field};
use cacheplane_testkit::{Api, Fleet};
use serde_json::{json, Value};

pub use cacheplane_testkit::api::{op_name, wait_op};

/// The project the lifecycle tests use.
pub const PROJECT: &str = "proj";
/// `/v1/projects/proj/locations/local`.
pub const PARENT: &str = "/v1/projects/proj/locations/local";

/// `/v1/projects/proj/locations/local/instances/{name}`.
pub fn instance_path(name: &str) -> String {
    format!("{PARENT}/instances/{name}")
}

/// The body of a BASIC create.
pub fn basic(memory_gb: i64) -> Value {
    json!({ "tier": "BASIC", "memorySizeGb": memory_gb, "locationId": "local-a" })
}

/// The body of a STANDARD_HA create with read replicas: primary in local-a, first
/// replica in local-b.
pub fn standard_ha(memory_gb: i64, replicas: i64) -> Value {
    json!({
        "tier": "STANDARD_HA",
        "memorySizeGb": memory_gb,
        "replicaCount": replicas,
        "readReplicasMode": "READ_REPLICAS_ENABLED",
        "locationId": "local-a",
        "alternativeLocationId": "local-b",
    })
}

/// `POST …/instances?instanceId=NAME`.
pub async fn create(api: &Api, name: &str, body: Value) -> (u16, Value) {
    api.post(&format!("{PARENT}/instances?instanceId={name}"), body)
        .await
}

/// A create that must be accepted: returns its operation (asserted well formed).
pub async fn create_ok(api: &Api, name: &str, body: Value) -> Value {
    let (status, op) = create(api, name, body).await;
    assert_eq!(status, 200, "create {name}: {op}");
    assert_eq!(op["metadata"]["verb"], "create", "{op}");
    assert_eq!(
        op["metadata"]["target"],
        format!("projects/{PROJECT}/locations/local/instances/{name}"),
        "{op}"
    );
    op
}

/// Waits (server side, up to 10 s) and asserts the operation is done.
pub async fn wait_done(api: &Api, op: &Value) -> Value {
    let name = op_name(op);
    let done = wait_op(api, &name, "10s").await;
    assert_eq!(done["done"], true, "operation {name} not done: {done}");
    done
}

/// `GET …/instances/{name}`.
pub async fn get_instance(api: &Api, name: &str) -> (u16, Value) {
    api.get(&instance_path(name)).await
}

/// An instance that must exist.
pub async fn instance(api: &Api, name: &str) -> Value {
    let (status, body) = get_instance(api, name).await;
    assert_eq!(status, 200, "GET instance {name}: {body}");
    body
}

/// Polls (with agent syncs) until the instance is gone (404).
pub async fn sync_until_gone(api: &Api, fleet: &mut Fleet, name: &str) {
    fleet
        .sync_until(&format!("instance {name} gone"), || async {
            get_instance(api, name).await.0 == 404
        })
        .await;
}

/// `allocatedMemoryBytes` of every host, by host id.
pub async fn allocations(api: &Api) -> HashMap<String, i64> {
    let (status, body) = api.get("/v1/hosts").await;
    assert_eq!(status, 200, "GET /v1/hosts: {body}");
    array_field(&body, "hosts")
        .iter()
        .map(|h| {
            let name = str_field(h, "name");
            let id = name.strip_prefix("hosts/").unwrap_or(name).to_string();
            (id, i64_field(h, "allocatedMemoryBytes"))
        })
        .collect()
}

/// The default network's pool of the project (created with the project on first use).
pub async fn default_pool(api: &Api) -> ipnet::Ipv4Net {
    let (status, body) = api
        .get(&format!("/v1/projects/{PROJECT}/networks/default"))
        .await;
    assert_eq!(status, 200, "GET default network: {body}");
    body["ipRange"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no ipRange in {body}"))
}

/// Asserts an error body: HTTP `code` and canonical `status`; returns the message.
pub fn assert_error(what: &str, got: (u16, &Value), code: u16, status: &str) -> String {
    let (http, body) = got;
    assert_eq!(http, code, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert_eq!(body["error"]["status"], status, "{what}: {body}");
    cacheplane_testkit::json::string_field(body, "error.message")
}

/// Creates STANDARD_HA instance `name` with `replicas` replicas, converges it with the
/// fake agents of `fleet`, and returns it READY.
pub async fn ready_ha(api: &Api, fleet: &mut Fleet, name: &str, replicas: i64) -> Value {
    let op = create_ok(api, name, standard_ha(1, replicas)).await;
    let done = fleet.converge(api, &op).await;
    assert!(done["error"].is_null(), "create {name}: {done}");
    let inst = instance(api, name).await;
    assert_eq!(inst["state"], "READY", "{inst}");
    inst
}

/// The id of the instance's (first) node in `role` (`PRIMARY`, `REPLICA`).
pub fn node_id(inst: &Value, role: &str) -> String {
    inst["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["role"] == role))
        .and_then(|n| n["id"].as_str())
        .unwrap_or_else(|| panic!("no {role} in {inst}"))
        .to_string()
}
