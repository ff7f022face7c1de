//! Bad input to list, networks, hosts and operations, in-process on the router: the right
//! HTTP status, `error.status` and `error.details[0].field`, and nothing changed. (Create
//! and patch: `validation.rs`.)

mod common;

use cacheplane_testkit::json::{array_field, name_id, str_field};
use cacheplane_testkit::{Api, TestDb};
use cacheplane_testkit::{Fleet, GIB};
use common::checks::{expect_conflict, expect_error, expect_invalid, expect_ok, merge};
use reqwest::Method;
use serde_json::{json, Value};

const INSTANCES: &str = "/v1/projects/proj-v/locations/local/instances";
const OPERATIONS: &str = "/v1/projects/proj-v/locations/local/operations";
const NETWORKS: &str = "/v1/projects/proj-v/networks";

async fn start() -> (TestDb, Api, Fleet) {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let fleet = Fleet::three_zones(&api, 64 * GIB).await;
    (db, api, fleet)
}

/// A BASIC create that must be accepted; returns its operation.
async fn create(api: &Api, id: &str, over: Value) -> Value {
    let body = merge(json!({"tier": "BASIC", "memorySizeGb": 1}), over);
    let got = api
        .post(&format!("{INSTANCES}?instanceId={id}"), body)
        .await;
    let op = expect_ok(&format!("create {id}"), &got);
    assert!(op["error"].is_null(), "create {id}: {op}");
    op
}

/// The instance ids of a list answer.
fn ids(list: &Value) -> Vec<String> {
    let items = list["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no instances in {list}"));
    items.iter().map(|i| name_id(i, "name")).collect()
}

/// Percent-encodes what filters contain.
fn enc(s: &str) -> String {
    s.replace('=', "%3D")
        .replace(' ', "%20")
        .replace(':', "%3A")
        .replace('*', "%2A")
}

async fn create_net(api: &Api, id: &str, range: &str) -> (u16, Value) {
    let path = format!("{NETWORKS}?networkId={id}");
    api.post(&path, json!({"ipRange": range})).await
}

async fn put_host(api: &Api, host: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/hosts/{host}");
    let token = Some(api.admin_token.as_str());
    api.req(Method::PUT, &path, token, Some(body)).await
}

#[tokio::test]
async fn list_filters_pages_and_refuses_bad_parameters() {
    let (_db, api, mut fleet) = start().await;
    let op = create(
        &api,
        "alpha",
        json!({"labels": {"env": "prod", "team": "x"}}),
    )
    .await;
    let done = fleet.converge(&api, &op).await;
    assert_eq!(done["response"]["state"], "READY", "{done}");
    create(&api, "beta", json!({"labels": {"env": "dev"}})).await;
    let filters: [(&str, &[&str]); 9] = [
        ("state=READY", &["alpha"]),
        ("state=CREATING", &["beta"]),
        ("labels.env=prod", &["alpha"]),
        ("labels.env:dev", &["beta"]),
        ("labels.team:*", &["alpha"]),
        ("labels.env=staging", &[]),
        ("state=READY AND labels.env=dev", &[]),
        ("state=READY labels.env=prod", &["alpha"]),
        ("tier=BASIC", &["alpha", "beta"]),
    ];
    for (filter, want) in filters {
        let path = format!("{INSTANCES}?filter={}", enc(filter));
        let list = expect_ok(filter, &api.get(&path).await);
        assert_eq!(ids(&list), want, "filter {filter}: {list}");
    }
    let page = expect_ok("page 1", &api.get(&format!("{INSTANCES}?pageSize=1")).await);
    assert_eq!(ids(&page), ["alpha"], "{page}");
    let token = page["nextPageToken"]
        .as_str()
        .unwrap_or_else(|| panic!("no nextPageToken: {page}"));
    let path = format!("{INSTANCES}?pageSize=1&pageToken={token}");
    let page = expect_ok("page 2", &api.get(&path).await);
    assert_eq!(ids(&page), ["beta"], "{page}");
    assert!(page["nextPageToken"].is_null(), "{page}");

    let bad = [
        ("pageSize=-1", "pageSize"),
        ("pageSize=x", "pageSize"),
        ("pageSize=1.5", "pageSize"),
        ("pageSize=99999999999999999999", "pageSize"),
        ("pageToken=!!!", "pageToken"),
        ("pageToken=YWJj", "pageToken"),
        ("filter=color%3Dred", "filter"),
        ("filter=state%3DSLEEPING", "filter"),
        ("filter=tier%3DGOLD", "filter"),
        ("filter=ready", "filter"),
        ("filter=labels.%3Dx", "filter"),
    ];
    for (query, field) in bad {
        let got = api.get(&format!("{INSTANCES}?{query}")).await;
        expect_invalid(&format!("list instances ?{query}"), &got, field);
        if field != "filter" {
            let got = api.get(&format!("{OPERATIONS}?{query}")).await;
            expect_invalid(&format!("list operations ?{query}"), &got, field);
        }
    }
    let got = api
        .get("/v1/projects/proj-v/locations/mars/instances")
        .await;
    expect_error("unknown region", &got, 404, "NOT_FOUND", None);
}

#[tokio::test]
async fn networks_check_ids_pools_and_use() {
    let (_db, api, _fleet) = start().await;
    expect_ok("create n1", &create_net(&api, "n1", "10.10.0.0/16").await);
    let cases = [
        ("", "10.20.0.0/16", "networkId"),
        ("Net", "10.20.0.0/16", "networkId"),
        ("1net", "10.20.0.0/16", "networkId"),
        ("net-", "10.20.0.0/16", "networkId"),
        ("n2", "banana", "ipRange"),
        ("n2", "10.20.0.1/16", "ipRange"),
        ("n2", "10.20.0.0/29", "ipRange"),
        ("n2", "10.0.0.0/7", "ipRange"),
        ("n2", "fd00::/64", "ipRange"),
    ];
    for (id, range, field) in cases {
        let got = create_net(&api, id, range).await;
        expect_invalid(&format!("network {id:?} {range}"), &got, field);
    }
    // Overlapping n1: valid in itself, refused by the stored pools.
    for range in ["10.10.128.0/17", "10.0.0.0/8"] {
        let got = create_net(&api, "n2", range).await;
        expect_conflict(&format!("network n2 {range}"), &got, "ipRange");
    }
    let got = api.post(NETWORKS, json!({"ipRange": "10.20.0.0/16"})).await;
    expect_invalid("no networkId", &got, "networkId");
    let body = json!({"ipRange": "10.20.0.0/16", "x": 1});
    let got = api.post(&format!("{NETWORKS}?networkId=n2"), body).await;
    expect_invalid("unknown field", &got, "x");
    let got = api
        .post(&format!("{NETWORKS}?networkId=n2"), json!({}))
        .await;
    expect_invalid("missing ipRange", &got, "ipRange");
    let got = create_net(&api, "n1", "10.20.0.0/16").await;
    expect_error("duplicate", &got, 409, "ALREADY_EXISTS", None);
    // Pools are global: another project's default pool is taken too.
    let other = expect_ok(
        "token",
        &api.post("/v1/tokens", json!({"project": "other"})).await,
    );
    assert_eq!(other["project"], "other", "{other}");
    let other_net = api.get("/v1/projects/other/networks/default").await;
    let other_net = expect_ok("other default", &other_net);
    let got = create_net(&api, "n2", str_field(&other_net, "ipRange")).await;
    expect_conflict("overlaps the other project's pool", &got, "ipRange");

    create(&api, "in-n1", json!({"authorizedNetwork": "n1"})).await;
    let got = api.delete(&format!("{NETWORKS}/n1")).await;
    expect_error("delete in use", &got, 409, "FAILED_PRECONDITION", None);
    let got = api.get(&format!("{NETWORKS}/ghost")).await;
    expect_error("get unknown", &got, 404, "NOT_FOUND", None);
    let got = api.delete(&format!("{NETWORKS}/ghost")).await;
    expect_error("delete unknown", &got, 404, "NOT_FOUND", None);
    expect_ok("create n3", &create_net(&api, "n3", "10.30.0.0/24").await);
    expect_ok("delete n3", &api.delete(&format!("{NETWORKS}/n3")).await);
    let got = api.get(&format!("{NETWORKS}/n3")).await;
    expect_error("get deleted", &got, 404, "NOT_FOUND", None);
    let list = expect_ok("list", &api.get(NETWORKS).await);
    let names: Vec<&str> = array_field(&list, "networks")
        .iter()
        .map(|n| str_field(n, "name"))
        .collect();
    let want = [
        "projects/proj-v/networks/default",
        "projects/proj-v/networks/n1",
    ];
    assert_eq!(names, want, "{list}");
}

#[tokio::test]
async fn hosts_check_zone_address_and_memory() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let good = json!({"zone": "local-a", "address": "127.0.0.1",
        "memoryBytes": GIB, "engines": ["REDIS_7_0"]});
    let with = |over: Value| merge(good.clone(), over);
    let cases = [
        ("h1", with(json!({"zone": "mars-a"})), "zone"),
        ("h1", with(json!({"zone": null})), "zone"),
        ("h1", with(json!({"address": "not-an-ip"})), "address"),
        ("h1", with(json!({"address": "127.0.0.1/8"})), "address"),
        ("h1", with(json!({"memoryBytes": 0})), "memoryBytes"),
        ("h1", with(json!({"memoryBytes": -5})), "memoryBytes"),
        ("h1", with(json!({"memoryBytes": "lots"})), "memoryBytes"),
        ("h1", with(json!({"engines": [""]})), "engines"),
        ("h1", with(json!({"extra": true})), "extra"),
        ("H_1", good.clone(), "host"),
        ("-h1", good.clone(), "host"),
    ];
    for (host, body, field) in cases {
        let got = put_host(&api, host, body.clone()).await;
        expect_invalid(&format!("register {host} {body}"), &got, field);
    }
    let list = expect_ok("list hosts", &api.get("/v1/hosts").await);
    assert_eq!(
        list["hosts"],
        json!([]),
        "a refused registration left a host: {list}"
    );
    let got = api.get("/v1/hosts/h1").await;
    expect_error("unknown host", &got, 404, "NOT_FOUND", None);
    let host = expect_ok("register h1", &put_host(&api, "h1", good).await);
    assert_eq!(host["name"], "hosts/h1", "{host}");
    assert_eq!(host["zone"], "local-a", "{host}");
}

#[tokio::test]
async fn operations_answer_not_found_and_check_the_timeout() {
    let (_db, api, _fleet) = start().await;
    let op = create(&api, "c1", json!({})).await;
    let admin = Some(api.admin_token.as_str());
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".into()] {
        let got = api.get(&format!("{OPERATIONS}/{id}")).await;
        expect_error(&format!("get operation {id}"), &got, 404, "NOT_FOUND", None);
        let path = format!("{OPERATIONS}/{id}/wait?timeout=1s");
        let got = api.req(Method::POST, &path, admin, None).await;
        expect_error(&format!("wait {id}"), &got, 404, "NOT_FOUND", None);
    }
    let name = str_field(&op, "name");
    let got = expect_ok("get operation", &api.get(&format!("/v1/{name}")).await);
    assert_eq!(got["name"], name, "{got}");
    // (A wait of more than a day is a day, then the server's longest wait.)
    for timeout in ["abc", "-1s", "1d", "1e9s", "1.5.5s", "%201s"] {
        let path = format!("/v1/{name}/wait?timeout={timeout}");
        let got = api.req(Method::POST, &path, admin, None).await;
        expect_invalid(&format!("wait timeout={timeout}"), &got, "timeout");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_with_the_error_shape() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let got = api.get("/v1/nope").await;
    expect_error("unknown path", &got, 404, "NOT_FOUND", None);
    let admin = Some(api.admin_token.as_str());
    for (method, path) in [
        (Method::PUT, "/v1/regions"),
        (Method::DELETE, "/v1/tokens"),
        (Method::POST, "/v1/projects/proj-v/networks/default"),
    ] {
        let (status, body) = api.req(method.clone(), path, admin, None).await;
        let what = format!("{method} {path}");
        assert_eq!(status, 405, "{what}: {body}");
        assert_eq!(
            body["error"]["code"], 405,
            "{what}: the error shape (docs/architecture.md#error-shape): {body}"
        );
        assert!(body["error"]["status"].is_string(), "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
}

/// Regression: a requestId on a project that does not exist broke a foreign key (500).
#[tokio::test]
async fn request_ids_on_a_missing_project_answer_not_found() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let rid = "6f1d3c3e-9d8a-4c43-9a51-0f5b8f0c2a11";
    let base = "/v1/projects/nope/locations/local/instances/x";
    let got = api.delete(&format!("{base}?requestId={rid}")).await;
    expect_error("delete", &got, 404, "NOT_FOUND", None);
    let got = api
        .patch(
            &format!("{base}?updateMask=displayName&requestId={rid}"),
            json!({}),
        )
        .await;
    expect_error("patch", &got, 404, "NOT_FOUND", None);
    let got = api
        .post(&format!("{base}/failover?requestId={rid}"), json!({}))
        .await;
    expect_error("failover", &got, 404, "NOT_FOUND", None);
}
