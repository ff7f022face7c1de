//! Connectors (`…/locations/{r}/connectors`) and the network pool rules, in-process on
//! the router with fake agents: the lifecycle in loopback mode (READY at once) and in
//! netns mode (placed on a host, carried in its config, READY once applied), requestId
//! replays, validation, ranges shared with instances, and which pools a network may have.

mod common;

use cacheplane_testkit::json::{array_field, str_field};
use cacheplane_testkit::{Api, Fleet, TestDb};
use common::checks::{expect_conflict, expect_error, expect_invalid, expect_ok};
use common::client::{basic, create_ok, default_pool, op_name, wait_op, PARENT, PROJECT};
use ipnet::Ipv4Net;
use serde_json::{json, Value};

const GIB: i64 = 1 << 30;

fn connectors() -> String {
    format!("{PARENT}/connectors")
}

fn connector_path(name: &str) -> String {
    format!("{PARENT}/connectors/{name}")
}

async fn start(args: &[&str]) -> (TestDb, Api, Fleet) {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(&db, args).await;
    let fleet = Fleet::three_zones(&api, 64 * GIB).await;
    (db, api, fleet)
}

/// `POST …/connectors?connectorId=NAME` (with `requestId` when given).
async fn create_connector(api: &Api, name: &str, body: Value, rid: Option<&str>) -> (u16, Value) {
    let rid = rid.map(|r| format!("&requestId={r}")).unwrap_or_default();
    api.post(&format!("{}?connectorId={name}{rid}", connectors()), body)
        .await
}

async fn get_connector(api: &Api, name: &str) -> Value {
    expect_ok(
        &format!("GET {name}"),
        &api.get(&connector_path(name)).await,
    )
}

async fn wait_done(api: &Api, op: &Value) -> Value {
    let done = wait_op(api, &op_name(op), "10s").await;
    assert_eq!(done["done"], true, "{done}");
    done
}

fn range_of(v: &Value, field: &str) -> Ipv4Net {
    str_field(v, field)
        .parse()
        .unwrap_or_else(|e| panic!("{field} of {v}: {e}"))
}

async fn create_net(api: &Api, project: &str, id: &str, range: &str) -> (u16, Value) {
    api.post(
        &format!("/v1/projects/{project}/networks?networkId={id}"),
        json!({ "ipRange": range }),
    )
    .await
}

#[tokio::test]
async fn loopback_connectors_are_ready_at_once_and_share_ranges_with_instances() {
    let (_db, api, _fleet) = start(&[]).await;
    let rid = uuid::Uuid::new_v4().to_string();
    let body = json!({ "network": "default" });
    let op = expect_ok(
        "create c1",
        &create_connector(&api, "c1", body.clone(), Some(&rid)).await,
    );
    assert_eq!(op["done"], true, "loopback: done at once: {op}");
    assert_eq!(op["metadata"]["verb"], "create", "{op}");
    let target = format!("projects/{PROJECT}/locations/local/connectors/c1");
    assert_eq!(op["metadata"]["target"], target, "{op}");
    assert_eq!(op["response"]["name"], target, "{op}");
    assert_eq!(op["response"]["state"], "READY", "{op}");

    let c1 = get_connector(&api, "c1").await;
    assert_eq!(
        c1["network"],
        format!("projects/{PROJECT}/networks/default")
    );
    assert!(c1["host"].is_null() && c1["namespace"].is_null(), "{c1}");
    let pool = default_pool(&api).await;
    let r1 = range_of(&c1, "ipCidrRange");
    assert_eq!(r1.prefix_len(), 28, "{c1}");
    assert!(pool.contains(&r1), "{r1} in {pool}");

    // requestId: the same request gives the same operation; another request is refused.
    let again = expect_ok(
        "replay",
        &create_connector(&api, "c1", body.clone(), Some(&rid)).await,
    );
    assert_eq!(op_name(&again), op_name(&op), "{again}");
    let got = create_connector(&api, "c9", body.clone(), Some(&rid)).await;
    expect_error("requestId reused", &got, 409, "ALREADY_EXISTS", None);
    let got = create_connector(&api, "c1", body.clone(), None).await;
    expect_error("existing name", &got, 409, "ALREADY_EXISTS", None);

    // One allocator: an instance cannot take the connector's range, nor the reverse.
    let got = common::client::create(
        &api,
        "cache",
        json!({"tier": "BASIC", "memorySizeGb": 1, "reservedIpRange": r1.to_string()}),
    )
    .await;
    expect_conflict("instance on the connector's range", &got, "reservedIpRange");
    create_ok(&api, "cache", basic(1)).await;
    let cache = expect_ok(
        "cache",
        &api.get(&format!("{PARENT}/instances/cache")).await,
    );
    let cache_range = str_field(&cache, "reservedIpRange").to_string();
    let got = create_connector(
        &api,
        "c2",
        json!({"network": "default", "ipCidrRange": cache_range}),
        None,
    )
    .await;
    expect_conflict("connector on the instance's range", &got, "ipCidrRange");
    let auto = expect_ok(
        "c2 auto",
        &create_connector(&api, "c2", body.clone(), None).await,
    );
    let r2 = range_of(&auto["response"], "ipCidrRange");
    assert!(r2 != r1 && r2.to_string() != cache_range, "{r2}");

    let list = expect_ok("list", &api.get(&connectors()).await);
    let names: Vec<&str> = array_field(&list, "connectors")
        .iter()
        .map(|c| str_field(c, "name"))
        .collect();
    assert_eq!(names, [target.as_str(), &target.replace("c1", "c2")]);
    let page = expect_ok(
        "page",
        &api.get(&format!("{}?pageSize=1", connectors())).await,
    );
    assert_eq!(array_field(&page, "connectors").len(), 1, "{page}");
    let token = str_field(&page, "nextPageToken");
    let next = api
        .get(&format!("{}?pageSize=1&pageToken={token}", connectors()))
        .await;
    let next = expect_ok("next page", &next);
    assert_eq!(next["connectors"][0]["name"], target.replace("c1", "c2"));

    // The network cannot go while its connectors (and instances) use it.
    let got = api
        .delete(&format!("/v1/projects/{PROJECT}/networks/default"))
        .await;
    expect_error("network in use", &got, 409, "FAILED_PRECONDITION", None);
    let msg = str_field(&got.1, "error.message");
    assert!(
        msg.contains(&target) && msg.contains("instances/cache"),
        "{msg}"
    );

    // Delete frees the range at once: it can be taken again by name.
    let del = expect_ok("delete c1", &api.delete(&connector_path("c1")).await);
    assert_eq!(del["done"], true, "{del}");
    assert!(del["error"].is_null(), "{del}");
    let got = api.get(&connector_path("c1")).await;
    expect_error("deleted", &got, 404, "NOT_FOUND", None);
    let got = api.delete(&connector_path("c1")).await;
    expect_error("delete again", &got, 404, "NOT_FOUND", None);
    let again = json!({"network": "default", "ipCidrRange": r1.to_string()});
    let op = expect_ok(
        "reuse range",
        &create_connector(&api, "c3", again, None).await,
    );
    assert_eq!(op["response"]["ipCidrRange"], r1.to_string(), "{op}");
}

#[tokio::test]
async fn connector_requests_are_validated() {
    let (_db, api, _fleet) = start(&[]).await;
    let got = create_connector(&api, "c0", json!({"network": "default"}), None).await;
    expect_ok("c0", &got);
    let pool = default_pool(&api).await;
    let base = pool.network();
    let ok = json!({"network": "default"});
    let cases: Vec<(&str, Value, &str)> = vec![
        ("", ok.clone(), "connectorId"),
        ("Bad_Name", ok.clone(), "connectorId"),
        ("c-", ok.clone(), "connectorId"),
        ("c", json!({"network": ""}), "network"),
        ("c", json!({"network": "projects/other/nets/x"}), "network"),
        ("c", json!({}), "network"),
        ("c", json!({"network": "default", "x": 1}), "x"),
        (
            "c",
            json!({"network": "default", "ipCidrRange": "banana"}),
            "ipCidrRange",
        ),
        (
            "c",
            json!({"network": "default", "ipCidrRange": format!("{base}/27")}),
            "ipCidrRange",
        ),
        (
            "c",
            json!({"network": "default", "ipCidrRange": "10.99.0.1/28"}),
            "ipCidrRange",
        ),
    ];
    // A network that is not the project's: NOT_FOUND, naming the field.
    for network in ["ghost", "projects/other/networks/default"] {
        let got = create_connector(&api, "c", json!({ "network": network }), None).await;
        expect_error(&format!("network {network}"), &got, 404, "NOT_FOUND", None);
        let message = got.1["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("network: "), "{}", got.1);
    }
    // Outside the network's pool: valid in itself, refused by the stored pool.
    let outside = json!({"network": "default", "ipCidrRange": "10.99.0.0/28"});
    let got = create_connector(&api, "c", outside, None).await;
    expect_conflict("outside the pool", &got, "ipCidrRange");
    for (name, body, field) in cases {
        let got = create_connector(&api, name, body.clone(), None).await;
        expect_invalid(&format!("connector {name:?} {body}"), &got, field);
    }
    let got = create_connector(&api, "c", ok.clone(), Some("not-a-uuid")).await;
    expect_invalid("requestId", &got, "requestId");
    let got = api.get(&connector_path("ghost")).await;
    expect_error("get unknown", &got, 404, "NOT_FOUND", None);
    let got = api.delete(&connector_path("ghost")).await;
    expect_error("delete unknown", &got, 404, "NOT_FOUND", None);
    let got = api.get("/v1/projects/proj/locations/mars/connectors").await;
    expect_error("unknown region", &got, 404, "NOT_FOUND", None);
    let got = api.get(&format!("{}?pageToken=%%%", connectors())).await;
    expect_invalid("page token", &got, "pageToken");
}

#[tokio::test]
async fn netns_connectors_live_in_their_hosts_config() {
    let (_db, api, mut fleet) = start(&["--network-mode", "netns"]).await;
    let op = expect_ok(
        "create",
        &create_connector(&api, "app", json!({"network": "default"}), None).await,
    );
    assert_eq!(op["done"], false, "netns: waits for the host: {op}");
    let c = get_connector(&api, "app").await;
    assert_eq!(c["state"], "CREATING", "{c}");
    let host = str_field(&c, "host")
        .trim_start_matches("hosts/")
        .to_string();
    let namespace = str_field(&c, "namespace").to_string();
    assert!(
        namespace.starts_with("cpc-") && namespace.len() == 16,
        "{namespace}"
    );
    let range = range_of(&c, "ipCidrRange");

    // The host's config carries it, as the agent realises it.
    let agent = fleet.agent(&host);
    let config = agent.fetch_config().await.clone();
    let spec = config
        .connectors
        .iter()
        .find(|s| s.namespace == namespace)
        .unwrap_or_else(|| panic!("{namespace} not in {config:?}"));
    assert_eq!(
        spec.name,
        format!("projects/{PROJECT}/locations/local/connectors/app")
    );
    assert_eq!(spec.ip_cidr_range, range.to_string());
    let first: std::net::Ipv4Addr = (u32::from(range.network()) + 1).into();
    assert_eq!(spec.address, first.to_string());
    assert_eq!(
        spec.network.name,
        format!("projects/{PROJECT}/networks/default")
    );
    assert_eq!(spec.network.ip_range, default_pool(&api).await.to_string());
    for other in fleet.agents.iter_mut().filter(|a| a.host != host) {
        assert!(other.fetch_config().await.connectors.is_empty());
    }

    // READY once the host applied that generation.
    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    assert_eq!(get_connector(&api, "app").await["state"], "READY");

    // A second connector goes to another (less loaded) host.
    let op2 = expect_ok(
        "create app2",
        &create_connector(&api, "app2", json!({"network": "default"}), None).await,
    );
    let c2 = get_connector(&api, "app2").await;
    assert_ne!(c2["host"], c["host"], "{c2}");
    fleet.sync().await;
    wait_done(&api, &op2).await;

    // Delete: out of the config at once, done once the host applied it, range free.
    let del = expect_ok("delete", &api.delete(&connector_path("app")).await);
    assert_eq!(del["done"], false, "{del}");
    assert_eq!(get_connector(&api, "app").await["state"], "DELETING");
    let config = fleet.agent(&host).fetch_config().await.clone();
    assert!(config.connectors.is_empty(), "{config:?}");
    fleet.sync().await;
    let done = wait_done(&api, &del).await;
    assert!(done["error"].is_null(), "{done}");
    expect_error(
        "gone",
        &api.get(&connector_path("app")).await,
        404,
        "NOT_FOUND",
        None,
    );
    let again = json!({"network": "default", "ipCidrRange": range.to_string()});
    let op = expect_ok(
        "range reused",
        &create_connector(&api, "app3", again, None).await,
    );
    fleet.sync().await;
    let done = wait_done(&api, &op).await;
    assert_eq!(done["response"]["ipCidrRange"], range.to_string(), "{done}");
}

#[tokio::test]
async fn netns_connector_on_a_silent_host_is_deleted_with_its_range_held() {
    let (_db, api, mut fleet) = start(&[
        "--network-mode",
        "netns",
        "--host-timeout",
        "1s",
        "--worker-interval",
        "100ms",
    ])
    .await;
    let op = expect_ok(
        "create",
        &create_connector(&api, "app", json!({"network": "default"}), None).await,
    );
    fleet.sync().await;
    wait_done(&api, &op).await;
    let c = get_connector(&api, "app").await;
    let host = str_field(&c, "host")
        .trim_start_matches("hosts/")
        .to_string();
    let range = c["ipCidrRange"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Another host heartbeats, so the region still has an UP host for new connectors.
    let other = if host == "host-a" { "host-b" } else { "host-a" };
    fleet.agent(other).sync().await;
    let del = expect_ok("delete", &api.delete(&connector_path("app")).await);
    assert_eq!(
        del["done"], true,
        "a silent host does not hold a delete: {del}"
    );
    // Held until the host applies the config without it.
    let body = json!({"network": "default", "ipCidrRange": range});
    let got = create_connector(&api, "app2", body.clone(), None).await;
    expect_conflict("range held", &got, "ipCidrRange");
    fleet.agent(&host).sync().await;
    let got = create_connector(&api, "app2", body, None).await;
    expect_ok("range released", &got);
}

#[tokio::test]
async fn pools_come_from_supernets_and_never_cover_hosts() {
    let (_db, api, _fleet) = start(&[]).await;
    let host = json!({"zone": "local-a", "address": "10.77.0.5", "memoryBytes": GIB, "engines": ["REDIS_7_0"]});
    let got = api
        .caller()
        .req(reqwest::Method::PUT, "/v1/hosts/real-1", Some(host))
        .await;
    expect_ok("host", &got);
    for (range, why) in [
        ("127.0.0.0/16", "127.0.0.0/16"),
        ("127.0.0.0/8", "127.0.0.0/16"),
        ("127.0.5.0/24", "127.0.0.0/16"),
        ("100.64.0.0/16", "supernets"),
        ("10.77.0.0/16", "10.77.0.5"),
    ] {
        let got = create_net(&api, PROJECT, "n1", range).await;
        expect_invalid(range, &got, "ipRange");
        let msg = str_field(&got.1, "error.message");
        assert!(msg.contains(why), "{range}: {msg}");
    }
    expect_ok(
        "in 10/8",
        &create_net(&api, PROJECT, "n1", "10.50.0.0/16").await,
    );
    // Loopback mode: one address space, across projects too.
    let got = create_net(&api, "other", "n1", "10.50.0.0/24").await;
    expect_conflict("other project, loopback", &got, "ipRange");
}

#[tokio::test]
async fn supernets_are_the_operators_to_set() {
    let db = TestDb::new().await;
    let api = Api::in_process_with_args(
        &db,
        &["--network-supernets", "172.20.0.0/16,192.168.8.0/24"],
    )
    .await;
    expect_ok(
        "inside",
        &create_net(&api, PROJECT, "a", "172.20.4.0/24").await,
    );
    expect_ok(
        "inside 2",
        &create_net(&api, PROJECT, "b", "192.168.8.0/28").await,
    );
    let got = create_net(&api, PROJECT, "c", "10.0.0.0/16").await;
    expect_invalid("outside", &got, "ipRange");
    // The default supernet stays allowed: it is where default networks come from.
    assert!(
        str_field(&got.1, "error.message").contains("127.64.0.0/10"),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn netns_lets_projects_overlap_but_not_a_project_with_itself() {
    let (_db, api, _fleet) = start(&["--network-mode", "netns"]).await;
    expect_ok("a", &create_net(&api, PROJECT, "n1", "10.50.0.0/16").await);
    expect_ok(
        "other project",
        &create_net(&api, "other", "n1", "10.50.0.0/16").await,
    );
    let got = create_net(&api, PROJECT, "n2", "10.50.8.0/24").await;
    expect_invalid("same project", &got, "ipRange");
    let got = create_net(&api, "other", "n3", "127.0.0.0/16").await;
    expect_invalid("127.0.0.0/16 in netns", &got, "ipRange");
}

#[tokio::test]
async fn connectors_have_a_quota_and_deletes_replay_their_request_id() {
    let (_db, api, _fleet) = start(&["--quota-connectors", "1"]).await;
    let body = json!({"network": "default"});
    expect_ok(
        "c1",
        &create_connector(&api, "c1", body.clone(), None).await,
    );
    let got = create_connector(&api, "c2", body, None).await;
    expect_error("over quota", &got, 429, "RESOURCE_EXHAUSTED", None);
    let msg = str_field(&got.1, "error.message");
    assert!(
        msg.contains("'connectors'") && msg.contains("--quota-connectors"),
        "{msg}"
    );

    let rid = uuid::Uuid::new_v4();
    let path = format!("{}?requestId={rid}", connector_path("c1"));
    let first = expect_ok("delete", &api.delete(&path).await);
    let again = expect_ok("delete replayed", &api.delete(&path).await);
    assert_eq!(op_name(&again), op_name(&first), "{again}");
    assert_eq!(again["done"], true, "{again}");
}
