//! What the API's end-to-end tests do on the real stack (the test kit's
//! `cacheplane_testkit::stack`).

use std::time::Duration;

use cacheplane_testkit::json::string_field;
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::{wait_until, Api};
use serde_json::Value;

use super::client::{instance, op_name, wait_op, PARENT};

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

/// Polls instance `name` (every 100 ms, 30 s at most) until `check` holds; returns it.
/// `what` says what is awaited (`"READY again"`).
pub async fn until_instance(
    api: &Api,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let limit = Duration::from_secs(30);
    let what = format!("{name} is {what}");
    wait_until(&what, limit, Duration::from_millis(100), || async {
        let i = instance(api, name).await;
        if check(&i) {
            Ok(i)
        } else {
            not_yet::<_, String>(format!("not yet: {i}"))
        }
    })
    .await
}
