//! What the API's end-to-end tests do on the real stack (the test kit's
//! `cacheplane_testkit::stack`).

use cacheplane_testkit::json::string_field;
use serde_json::Value;

use super::client::{instance, op_name, wait_op, PARENT};
use cacheplane_testkit::Api;

/// Creates an instance in the test project, waits (up to 60 s) until its create
/// operation is done without error, and returns the instance and its auth string.
pub async fn create_ready(api: &Api, name: &str, body: Value) -> (Value, String) {
    let (status, op) = api
        .post(&format!("{PARENT}/instances?instanceId={name}"), body)
        .await;
    assert_eq!(status, 200, "create {name}: {op}");
    let done = wait_op(api, &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "create {name}: {done}"
    );
    let (_, auth) = api
        .get(&format!("{PARENT}/instances/{name}/authString"))
        .await;
    (instance(api, name).await, string_field(&auth, "authString"))
}
