//! Bad input to create and patch, in-process on the router: every refusal has the right
//! HTTP status, `error.status` and the field at fault in `error.details[0].field`, and
//! changes nothing.
//! (List, networks, hosts and operations: `validation_resources.rs`.)

mod common;

use std::net::Ipv4Addr;

use cacheplane_testkit::json::{name_id, str_field, string_field};
use cacheplane_testkit::{Api, TestDb};
use cacheplane_testkit::{Fleet, GIB};
use common::checks::{expect_conflict, expect_error, expect_invalid, expect_ok, merge, raw_req};
use reqwest::Method;
use serde_json::{json, Value};

const INSTANCES: &str = "/v1/projects/proj-v/locations/local/instances";
const OPERATIONS: &str = "/v1/projects/proj-v/locations/local/operations";
const RR: &str = "READ_REPLICAS_ENABLED";

/// `{"tier": "BASIC", "memorySizeGb": 1}` with `over` merged in (a null removes a key).
fn basic(over: Value) -> Value {
    merge(json!({"tier": "BASIC", "memorySizeGb": 1}), over)
}

/// A STANDARD_HA request with `over` merged in.
fn ha(over: Value) -> Value {
    merge(json!({"tier": "STANDARD_HA", "memorySizeGb": 1}), over)
}

/// An API with three 64 GiB fake hosts, one per zone of region `local`.
async fn start() -> (TestDb, Api, Fleet) {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let fleet = Fleet::three_zones(&api, 64 * GIB).await;
    (db, api, fleet)
}

/// `POST …/instances?instanceId={query}`.
async fn post_create(api: &Api, query: &str, body: Value) -> (u16, Value) {
    api.post(&format!("{INSTANCES}?instanceId={query}"), body)
        .await
}

/// A create that must be accepted; returns its operation.
async fn create(api: &Api, query: &str, body: Value) -> Value {
    let op = expect_ok(
        &format!("create {query}"),
        &post_create(api, query, body).await,
    );
    assert!(op["error"].is_null(), "create {query}: {op}");
    op
}

/// Creates an instance and lets the fake agents bring it to READY; returns it.
async fn create_ready(api: &Api, fleet: &mut Fleet, id: &str, body: Value) -> Value {
    let op = create(api, id, body).await;
    let op = fleet.converge(api, &op).await;
    assert!(op["error"].is_null(), "create {id} failed: {op}");
    assert_eq!(op["response"]["state"], "READY", "{op}");
    op["response"].clone()
}

/// The ids of the instances in `…/instances`.
async fn instance_ids(api: &Api) -> Vec<String> {
    let list = expect_ok("list", &api.get(INSTANCES).await);
    let items = list["instances"].as_array().expect("an instances array");
    items.iter().map(|i| name_id(i, "name")).collect()
}

fn ip_plus(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + n)
}

#[tokio::test]
async fn create_refuses_bad_ids() {
    let (_db, api, _fleet) = start().await;
    let id41 = "a".repeat(41);
    let no_id = api.post(INSTANCES, basic(json!({}))).await;
    expect_invalid("no instanceId", &no_id, "instanceId");
    for id in ["", "Upper", "1abc", "abc-", "a_b", "a.b", &id41] {
        let got = post_create(&api, id, basic(json!({}))).await;
        expect_invalid(&format!("instanceId {id:?}"), &got, "instanceId");
    }
    let got = post_create(&api, "c1&requestId=not-a-uuid", basic(json!({}))).await;
    expect_invalid("requestId", &got, "requestId");
    let got = api
        .post(
            "/v1/projects/proj-v/locations/mars/instances?instanceId=c1",
            basic(json!({})),
        )
        .await;
    expect_error("unknown region", &got, 404, "NOT_FOUND", None);
    let got = api
        .post(
            "/v1/projects/Bad_Project/locations/local/instances?instanceId=c1",
            basic(json!({})),
        )
        .await;
    expect_invalid("bad project id", &got, "project");
    // 40 characters is the longest id.
    create(&api, &"a".repeat(40), basic(json!({}))).await;
    assert_eq!(instance_ids(&api).await, ["a".repeat(40)]);
}

#[tokio::test]
async fn create_refuses_bad_fields_and_names_them() {
    let (_db, api, _fleet) = start().await;
    let long_name = "x".repeat(81);
    let cases: Vec<(&str, Value)> = vec![
        ("tier", basic(json!({"tier": null}))),
        ("tier", basic(json!({"tier": "GOLD"}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": 301}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": -1}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": i64::MAX}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": "abc"}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": 1.5}))),
        ("memorySizeGb", basic(json!({"memorySizeGb": null}))),
        ("memorySizeGb", ha(json!({"memorySizeGb": 0}))),
        ("replicaCount", basic(json!({"replicaCount": 1}))),
        ("replicaCount", ha(json!({"replicaCount": 2}))),
        ("replicaCount", ha(json!({"replicaCount": 0}))),
        (
            "replicaCount",
            ha(json!({"readReplicasMode": RR, "replicaCount": 0})),
        ),
        (
            "replicaCount",
            ha(json!({"readReplicasMode": RR, "replicaCount": 6})),
        ),
        ("readReplicasMode", basic(json!({"readReplicasMode": RR}))),
        (
            "readReplicasMode",
            basic(json!({"readReplicasMode": "SOMETIMES"})),
        ),
        ("locationId", basic(json!({"locationId": "local-z"}))),
        (
            "alternativeLocationId",
            ha(json!({"alternativeLocationId": "mars-a"})),
        ),
        (
            "alternativeLocationId",
            ha(json!({"locationId": "local-a", "alternativeLocationId": "local-a"})),
        ),
        (
            "alternativeLocationId",
            basic(json!({"alternativeLocationId": "local-b"})),
        ),
        (
            "redisConfigs.save",
            basic(json!({"redisConfigs": {"save": "60 1"}})),
        ),
        (
            "redisConfigs.maxmemory-gb",
            basic(json!({"redisConfigs": {"maxmemory-gb": "2"}})),
        ),
        (
            "redisConfigs.activedefrag",
            basic(json!({"redisConfigs": {"activedefrag": "maybe"}})),
        ),
        ("redisVersion", basic(json!({"redisVersion": "REDIS_9_9"}))),
        ("labels.Env", basic(json!({"labels": {"Env": "prod"}}))),
        ("labels.env", basic(json!({"labels": {"env": "Prod"}}))),
        ("displayName", basic(json!({"displayName": long_name}))),
        ("nope", basic(json!({"nope": 1}))),
        (
            "authorizedNetwork",
            basic(json!({"authorizedNetwork": "projects/other/nets/default"})),
        ),
    ];
    for (field, body) in &cases {
        let got = post_create(&api, "c1", body.clone()).await;
        expect_invalid(&format!("create {body}"), &got, field);
    }
    // A network that is not the project's: NOT_FOUND, naming the field.
    for network in ["nope", "projects/other/networks/default"] {
        let body = basic(json!({ "authorizedNetwork": network }));
        let got = post_create(&api, "c1", body).await;
        expect_error(&format!("network {network}"), &got, 404, "NOT_FOUND", None);
        assert!(
            str_field(&got.1, "error.message").starts_with("authorizedNetwork: "),
            "{}",
            got.1
        );
    }
    let policy = basic(json!({"redisConfigs": {"maxmemory-policy": "most-lru"}}));
    let got = post_create(&api, "c1", policy).await;
    expect_invalid("maxmemory-policy", &got, "redisConfigs.maxmemory-policy");
    let message = str_field(&got.1, "error.message");
    assert!(message.contains("most-lru"), "{}", got.1);

    let rid = uuid::Uuid::new_v4();
    let with_rid = format!("c1&requestId={rid}");
    for bad in ["{", "[]", "{\"tier\": \"BASIC\",}", "null", "\"x\""] {
        let path = format!("{INSTANCES}?instanceId={with_rid}");
        let token = format!("Bearer {}", api.admin_token);
        let got = raw_req(&api, Method::POST, &path, Some(token.as_bytes()), bad).await;
        expect_invalid(&format!("create with body {bad}"), &got, "body");
    }
    let got = post_create(&api, &with_rid, basic(json!({"memorySizeGb": 0}))).await;
    expect_invalid("memorySizeGb 0", &got, "memorySizeGb");

    // Nothing was created, and the request id of the refused creates is still free.
    create(&api, &with_rid, basic(json!({}))).await;
    assert_eq!(instance_ids(&api).await, ["c1"]);
    let ops = expect_ok("list operations", &api.get(OPERATIONS).await);
    assert_eq!(ops["operations"].as_array().map(Vec::len), Some(1), "{ops}");
}

#[tokio::test]
async fn create_checks_the_reserved_range_and_the_name() {
    let (_db, api, _fleet) = start().await;
    create(&api, "first", basic(json!({}))).await;
    let net = expect_ok(
        "default network",
        &api.get("/v1/projects/proj-v/networks/default").await,
    );
    let pool = string_field(&net, "ipRange");
    let base: Ipv4Addr = pool.split('/').next().unwrap().parse().unwrap();
    let first = expect_ok("get", &api.get(&format!("{INSTANCES}/first")).await);
    let taken = string_field(&first, "reservedIpRange");
    let taken_base: Ipv4Addr = taken.split('/').next().unwrap().parse().unwrap();
    // (what, range, refused by the stored state rather than wrong in itself)
    let cases = [
        ("not a CIDR", "banana".to_string(), false),
        ("prefix 33", "10.0.0.0/33".to_string(), false),
        ("not aligned", format!("{}/28", ip_plus(base, 5)), false),
        ("too small", format!("{}/29", ip_plus(base, 4096)), false),
        ("outside the pool", "10.0.0.0/28".to_string(), true),
        ("IPv6", "fd00::/120".to_string(), false),
        ("overlaps first", taken.clone(), true),
        ("contains first", format!("{taken_base}/27"), true),
    ];
    for (what, range, stored) in cases {
        let got = post_create(&api, "second", basic(json!({"reservedIpRange": range}))).await;
        let what = format!("reservedIpRange {what} ({range}; pool {pool}, taken {taken})");
        if stored {
            expect_conflict(&what, &got, "reservedIpRange");
        } else {
            expect_invalid(&what, &got, "reservedIpRange");
        }
    }
    let got = post_create(&api, "first", basic(json!({}))).await;
    expect_error("duplicate name", &got, 409, "ALREADY_EXISTS", None);
    let got = post_create(&api, "first", ha(json!({"memorySizeGb": 2}))).await;
    expect_error(
        "duplicate name, other body",
        &got,
        409,
        "ALREADY_EXISTS",
        None,
    );

    // A free, aligned /28 inside the pool is taken as asked.
    let wanted = format!("{}/28", ip_plus(base, 4096));
    create(&api, "second", basic(json!({"reservedIpRange": wanted}))).await;
    let second = expect_ok("get", &api.get(&format!("{INSTANCES}/second")).await);
    assert_eq!(second["reservedIpRange"], wanted.as_str(), "{second}");
    assert_eq!(instance_ids(&api).await, ["first", "second"]);
}

#[tokio::test]
async fn patch_refuses_bad_masks_and_states() {
    let (_db, api, _fleet) = start().await;
    create(&api, "busy", basic(json!({}))).await;
    let path = format!("{INSTANCES}/busy");
    let both = json!({"readReplicasMode": RR, "memorySizeGb": 2});
    let cases: [(&str, Value, &str); 8] = [
        ("", json!({"labels": {"a": "b"}}), "updateMask"),
        ("?updateMask=", json!({"labels": {"a": "b"}}), "updateMask"),
        ("?updateMask=tier", json!({}), "updateMask"),
        ("?updateMask=labels,nope", json!({}), "updateMask"),
        (
            "?updateMask=readReplicasMode,memorySizeGb",
            both,
            "updateMask",
        ),
        ("?updateMask=secondaryIpRange", json!({}), "updateMask"),
        (
            "?updateMask=labels&requestId=nope",
            json!({"labels": {}}),
            "requestId",
        ),
        (
            "?updateMask=labels",
            json!({"labels": {}, "tier": "BASIC"}),
            "tier",
        ),
    ];
    for (query, body, field) in cases {
        let got = api.patch(&format!("{path}{query}"), body.clone()).await;
        expect_invalid(&format!("patch {query} {body}"), &got, field);
    }
    for mask in ["memorySizeGb", "replicaCount", "redisConfigs"] {
        let body = json!({"memorySizeGb": 2, "replicaCount": 0, "redisConfigs": {}});
        let got = api.patch(&format!("{path}?updateMask={mask}"), body).await;
        expect_error(
            &format!("{mask} while CREATING"),
            &got,
            409,
            "FAILED_PRECONDITION",
            None,
        );
    }
    let body = json!({"labels": {"a": "b"}, "etag": "v999"});
    let got = api.patch(&format!("{path}?updateMask=labels"), body).await;
    expect_error("etag mismatch", &got, 409, "ABORTED", None);
    let ghost = format!("{INSTANCES}/ghost?updateMask=labels");
    let got = api.patch(&ghost, json!({"labels": {}})).await;
    expect_error("unknown instance", &got, 404, "NOT_FOUND", None);
    let got = expect_ok("get", &api.get(&path).await);
    assert_eq!(got["labels"], json!({}), "{got}");
    assert_eq!(got["memorySizeGb"], 1, "{got}");
}

#[tokio::test]
async fn redis_configs_are_checked_as_redis_would_take_them() {
    let (_db, api, mut fleet) = start().await;
    // Each refused value, and a word of the rule the message must state.
    let cases: &[(&str, &str, &str)] = &[
        ("maxmemory-gb", "1e-10", "at least 0.1"),
        ("maxmemory-gb", "nan", "at least 0.1"),
        ("maxmemory-gb", "inf", "at least 0.1"),
        ("maxmemory-gb", "-1", "at least 0.1"),
        ("maxmemory-gb", "0", "at least 0.1"),
        ("maxmemory-gb", "0.05", "at least 0.1"),
        ("maxmemory-gb", "1.5", "at most memorySizeGb (1)"),
        ("maxmemory-policy", "most-lru", "one of noeviction"),
        ("notify-keyspace-events", "KQ", "event classes"),
        ("activedefrag", "maybe", "yes, no"),
        ("lfu-log-factor", "-1", "from 0 to 2147483647"),
        ("lfu-decay-time", "2147483648", "from 0 to 2147483647"),
        ("timeout", "1.5", "whole number"),
        ("stream-node-max-bytes", "4kb", "whole number"),
        ("stream-node-max-entries", "+1", "whole number"),
        ("save", "1 1", "not a supported setting"),
        ("port", "6390", "not a supported setting"),
        ("maxmemory", "0", "not a supported setting"),
    ];
    for (key, value, rule) in cases {
        let body = basic(json!({"redisConfigs": {*key: *value}}));
        let got = post_create(&api, "c1", body).await;
        let field = format!("redisConfigs.{key}");
        expect_invalid(&format!("{key}={value}"), &got, &field);
        let message = str_field(&got.1, "error.message");
        assert!(message.contains(rule), "{key}={value}: {message}");
    }
    let got = post_create(&api, "c1", basic(json!({"redisVersion": "REDIS_6_X"}))).await;
    expect_invalid("REDIS_6_X", &got, "redisVersion");
    assert!(
        str_field(&got.1, "error.message").contains("no longer offered"),
        "{}",
        got.1
    );
    assert!(instance_ids(&api).await.is_empty(), "nothing was created");

    // Good values pass, and bound the size: shrinking below maxmemory-gb is refused.
    let configs = json!({"maxmemory-gb": "1.5", "timeout": "300", "lfu-log-factor": "0",
        "notify-keyspace-events": "KEA", "stream-node-max-bytes": "4096"});
    let inst = create_ready(
        &api,
        &mut fleet,
        "tuned",
        ha(json!({"memorySizeGb": 2, "redisConfigs": configs})),
    )
    .await;
    assert_eq!(inst["redisConfigs"]["maxmemory-gb"], "1.5", "{inst}");
    let got = api
        .patch(
            &format!("{INSTANCES}/tuned?updateMask=memorySizeGb"),
            json!({"memorySizeGb": 1}),
        )
        .await;
    expect_invalid(
        "shrink below maxmemory-gb",
        &got,
        "redisConfigs.maxmemory-gb",
    );

    // The engine's admin secret goes to the agents, the same on every node, never out of
    // the public API.
    let mut secrets: Vec<String> = Vec::new();
    for a in fleet.agents.iter_mut() {
        let config = a.fetch_config().await;
        secrets.extend(config.nodes.iter().map(|n| {
            let s = n
                .admin_secret
                .as_ref()
                .expect("every node has the admin secret");
            s.expose().to_string()
        }));
    }
    assert_eq!(secrets.len(), 2, "a primary and its replica");
    assert!(
        secrets.iter().all(|s| s.len() == 64 && *s == secrets[0]),
        "one secret per instance: {secrets:?}"
    );
    let public = expect_ok("get", &api.get(&format!("{INSTANCES}/tuned")).await).to_string();
    assert!(!public.contains(&secrets[0]), "{public}");
    let auth = expect_ok(
        "auth",
        &api.get(&format!("{INSTANCES}/tuned/authString")).await,
    );
    assert!(!auth.to_string().contains(&secrets[0]), "{auth}");
}

#[tokio::test]
async fn patch_checks_values_and_changes_labels_at_once() {
    let (_db, api, mut fleet) = start().await;
    let inst = create_ready(&api, &mut fleet, "ready", basic(json!({}))).await;
    let path = format!("{INSTANCES}/ready");
    let long_name = "x".repeat(81);
    let rr = json!({"readReplicasMode": RR, "secondaryIpRange": "auto"});
    let cases: [(&str, Value, &str); 10] = [
        ("memorySizeGb", json!({"memorySizeGb": 0}), "memorySizeGb"),
        ("memorySizeGb", json!({"memorySizeGb": 301}), "memorySizeGb"),
        ("memorySizeGb", json!({}), "memorySizeGb"),
        (
            "memorySizeGb",
            json!({"memorySizeGb": "big"}),
            "memorySizeGb",
        ),
        ("replicaCount", json!({"replicaCount": 1}), "replicaCount"),
        ("readReplicasMode,secondaryIpRange", rr, "readReplicasMode"),
        (
            "redisConfigs",
            json!({"redisConfigs": {"save": "60 1"}}),
            "redisConfigs.save",
        ),
        (
            "redisConfigs",
            json!({"redisConfigs": {"maxmemory-gb": "2"}}),
            "redisConfigs.maxmemory-gb",
        ),
        ("labels", json!({"labels": {"Env": "x"}}), "labels.Env"),
        (
            "displayName",
            json!({"displayName": long_name}),
            "displayName",
        ),
    ];
    for (mask, body, field) in cases {
        let got = api
            .patch(&format!("{path}?updateMask={mask}"), body.clone())
            .await;
        expect_invalid(&format!("patch {mask} {body}"), &got, field);
    }
    let unchanged = expect_ok("get", &api.get(&path).await);
    assert_eq!(
        unchanged["etag"], inst["etag"],
        "a refused patch changed it: {unchanged}"
    );
    assert_eq!(unchanged["state"], "READY", "{unchanged}");

    // Labels and display name change at once, guarded by the etag.
    let body =
        json!({"labels": {"env": "prod"}, "displayName": "Prod cache", "etag": inst["etag"]});
    let got = api
        .patch(&format!("{path}?updateMask=labels,displayName"), body)
        .await;
    let op = expect_ok("patch labels", &got);
    assert_eq!(op["done"], true, "{op}");
    assert!(op["error"].is_null(), "{op}");
    assert_eq!(op["response"]["labels"], json!({"env": "prod"}), "{op}");
    assert_eq!(op["response"]["displayName"], "Prod cache", "{op}");
    let got = expect_ok("get", &api.get(&path).await);
    assert_eq!(got["labels"], json!({"env": "prod"}), "{got}");
    assert_eq!(got["state"], "READY", "{got}");
    assert_ne!(got["etag"], inst["etag"], "{got}");
    let stale = json!({"labels": {}, "etag": inst["etag"]});
    let got = api.patch(&format!("{path}?updateMask=labels"), stale).await;
    expect_error("stale etag", &got, 409, "ABORTED", None);
}

#[tokio::test]
async fn read_replicas_cannot_be_disabled_and_counts_are_checked() {
    let (_db, api, mut fleet) = start().await;
    let body = ha(json!({"readReplicasMode": RR, "replicaCount": 2,
        "locationId": "local-a", "alternativeLocationId": "local-b"}));
    create_ready(&api, &mut fleet, "rr", body).await;
    let path = format!("{INSTANCES}/rr");
    let off = json!({"readReplicasMode": "READ_REPLICAS_DISABLED"});
    let cases = [
        ("readReplicasMode", off, "readReplicasMode"),
        ("replicaCount", json!({"replicaCount": 0}), "replicaCount"),
        ("replicaCount", json!({"replicaCount": 6}), "replicaCount"),
    ];
    for (mask, body, field) in cases {
        let got = api
            .patch(&format!("{path}?updateMask={mask}"), body.clone())
            .await;
        expect_invalid(&format!("patch {mask} {body}"), &got, field);
    }
    let got = expect_ok("get", &api.get(&path).await);
    assert_eq!(got["readReplicasMode"], RR, "{got}");
    assert_eq!(got["replicaCount"], 2, "{got}");
    assert_eq!(got["state"], "READY", "{got}");

    create_ready(&api, &mut fleet, "ha", ha(json!({}))).await;
    let two = json!({"replicaCount": 2});
    let got = api
        .patch(&format!("{INSTANCES}/ha?updateMask=replicaCount"), two)
        .await;
    expect_invalid("2 replicas without read replicas", &got, "replicaCount");
    let got = expect_ok("get", &api.get(&format!("{INSTANCES}/ha")).await);
    assert_eq!(got["replicaCount"], 1, "{got}");

    // Enabling read replicas needs a further, free /28 of the instance's network.
    let own = string_field(&got, "reservedIpRange");
    let net = api.get("/v1/projects/proj-v/networks/default").await;
    let pool = expect_ok("default network", &net)["ipRange"].clone();
    let base: Ipv4Addr = pool
        .as_str()
        .and_then(|p| p.split('/').next()?.parse().ok())
        .unwrap();
    // (range, refused by the stored state rather than wrong in itself)
    let ranges = [
        ("banana".to_string(), false),
        (format!("{}/27", ip_plus(base, 8192)), false),
        (format!("{}/28", ip_plus(base, 8195)), false),
        ("10.0.0.0/28".to_string(), true),
        (own.clone(), true),
    ];
    for (range, stored) in ranges {
        let mask = "readReplicasMode,secondaryIpRange";
        let body = json!({"readReplicasMode": RR, "secondaryIpRange": range});
        let got = api
            .patch(&format!("{INSTANCES}/ha?updateMask={mask}"), body)
            .await;
        let what = format!("secondaryIpRange {range} (pool {pool}, own {own})");
        if stored {
            expect_conflict(&what, &got, "secondaryIpRange");
        } else {
            expect_invalid(&what, &got, "secondaryIpRange");
        }
    }
    let got = api
        .patch(
            &format!("{INSTANCES}/ha?updateMask=readReplicasMode"),
            json!({"readReplicasMode": RR}),
        )
        .await;
    expect_invalid("no secondaryIpRange", &got, "secondaryIpRange");
    let got = expect_ok("get", &api.get(&format!("{INSTANCES}/ha")).await);
    assert_eq!(got["readReplicasMode"], "READ_REPLICAS_DISABLED", "{got}");
    assert!(got.get("secondaryIpRange").is_none(), "{got}");
    assert_eq!(got["state"], "READY", "{got}");
}
