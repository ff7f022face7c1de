//! The client side of the lifecycle tests: instances and operations of one project
//! (`proj`) in region `local`, through the public API with the admin token.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{json, Value};

use super::agent::Fleet;
use super::Api;

/// A cheap, cloneable handle on a running API (admin token) for spawned tasks. Keeps
/// working across `api.restart()` (same port and token).
#[derive(Clone)]
pub struct Caller {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Caller {
    /// A handle on `api`.
    pub fn of(api: &Api) -> Caller {
        Caller {
            client: api.client.clone(),
            base: api.base.clone(),
            token: api.admin_token.clone(),
        }
    }

    /// One request with the admin token; the status and the JSON body (`Value::String`
    /// when the body is not JSON).
    pub async fn req(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
        super::read_response(response).await
    }
}

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

/// An operation's name, from the Operation JSON or the name itself.
pub fn op_name(op: &Value) -> String {
    match op {
        Value::String(s) => s.clone(),
        _ => op["name"]
            .as_str()
            .unwrap_or_else(|| panic!("no operation name in {op}"))
            .to_string(),
    }
}

/// `POST /v1/{op}/wait?timeout=T`: the operation once done, or as it stands after `timeout`.
pub async fn wait_op(api: &Api, op: &str, timeout: &str) -> Value {
    let (status, body) = api
        .post(&format!("/v1/{op}/wait?timeout={timeout}"), json!({}))
        .await;
    assert_eq!(status, 200, "wait {op}: {body}");
    body
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
    body["hosts"]
        .as_array()
        .unwrap_or_else(|| panic!("no hosts in {body}"))
        .iter()
        .map(|h| {
            let name = h["name"].as_str().unwrap_or_default();
            let id = name.strip_prefix("hosts/").unwrap_or(name).to_string();
            (id, h["allocatedMemoryBytes"].as_i64().unwrap_or(-1))
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
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
