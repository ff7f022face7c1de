//! What the API's end-to-end tests do on the real stack (the test kit's
//! `cacheplane_testkit::stack`).

use std::time::Duration;

use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::{wait_until, Api};
use serde_json::Value;

use super::client::{instance, PARENT};

/// Creates an instance in the test project, waits (up to 60 s) until its create
/// operation is done without error, and returns the instance and its auth string.
pub async fn create_ready(api: &Api, name: &str, body: Value) -> (Value, String) {
    cacheplane_testkit::api::create_ready(api, PARENT, name, body).await
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
