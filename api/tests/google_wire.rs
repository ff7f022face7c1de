//! Memorystore's wire form on the API's paths (docs/google-compat.md), in-process with
//! fake agents: enums as names or numbers (`$alt`), `@type` on operations and error
//! details, Google's `:failover` custom method, and what other custom methods answer.
//! Google's own client runs against the real stack in `google_client.rs`.

mod common;

use cacheplane_testkit::{Api, Fleet, TestDb, GIB};
use common::checks::{expect_error, expect_invalid, expect_ok};
use reqwest::Method;
use serde_json::{json, Value};

const INSTANCES: &str = "/v1/projects/gwire/locations/local/instances";
const NUMBERS: &str = "%24alt=json%3Benum-encoding%3Dint";

async fn start() -> (TestDb, Api, Fleet) {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let fleet = Fleet::three_zones(&api, 64 * GIB).await;
    (db, api, fleet)
}

/// A create or other mutation that must be accepted, brought to its end by the agents.
async fn done(api: &Api, fleet: &mut Fleet, what: &str, got: (u16, Value)) -> Value {
    let op = expect_ok(what, &got);
    let op = fleet.converge(api, &op).await;
    assert!(op["error"].is_null(), "{what}: {op}");
    op
}

#[tokio::test]
async fn enums_go_in_either_form_and_come_back_as_asked() {
    let (_db, api, mut fleet) = start().await;
    // Numbers in the request, as Google's clients send them: STANDARD_HA, read replicas
    // disabled, TLS disabled.
    let body =
        json!({"tier": 3, "memorySizeGb": 1, "readReplicasMode": 1, "transitEncryptionMode": 2});
    let got = api
        .post(&format!("{INSTANCES}?instanceId=ha&{NUMBERS}"), body)
        .await;
    let op = done(&api, &mut fleet, "create with numbers", got).await;
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.cloud.redis.v1.OperationMetadata"
    );
    assert_eq!(op["metadata"]["apiVersion"], "v1", "{op}");
    assert_eq!(op["metadata"]["cancelRequested"], false, "{op}");
    assert_eq!(
        op["response"]["@type"], "type.googleapis.com/google.cloud.redis.v1.Instance",
        "{op}"
    );
    assert_eq!(
        op["response"]["tier"], "STANDARD_HA",
        "no $alt: names; {op}"
    );

    let named = expect_ok("get", &api.get(&format!("{INSTANCES}/ha")).await);
    assert_eq!(named["tier"], "STANDARD_HA");
    assert_eq!(named["state"], "READY");
    assert_eq!(named["readReplicasMode"], "READ_REPLICAS_DISABLED");
    assert_eq!(named["transitEncryptionMode"], "DISABLED");
    assert_eq!(
        named["nodes"][0]["role"], "PRIMARY",
        "node roles stay names"
    );

    let numbered = expect_ok(
        "get with enum-encoding=int",
        &api.get(&format!("{INSTANCES}/ha?{NUMBERS}")).await,
    );
    assert_eq!(numbered["tier"], 3, "{numbered}");
    assert_eq!(numbered["state"], 2, "{numbered}");
    assert_eq!(numbered["readReplicasMode"], 1, "{numbered}");
    assert_eq!(numbered["transitEncryptionMode"], 2, "{numbered}");
    assert_eq!(numbered["nodes"][0]["role"], "PRIMARY", "{numbered}");
    assert_eq!(numbered["etag"], named["etag"], "Cacheplane's fields stay");

    let list = expect_ok(
        "list locations/- with enum-encoding=int",
        &api.get(&format!(
            "/v1/projects/gwire/locations/-/instances?{NUMBERS}"
        ))
        .await,
    );
    assert_eq!(list["instances"][0]["tier"], 3, "{list}");
    let tiers = expect_ok("tiers", &api.get(&format!("/v1/tiers?{NUMBERS}")).await);
    let numbers: Vec<&Value> = tiers["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .map(|t| &t["tier"])
        .collect();
    assert_eq!(numbers, [&json!(1), &json!(3)], "{tiers}");
    let plain = expect_ok("$alt=json", &api.get("/v1/tiers?%24alt=json").await);
    assert_eq!(plain["tiers"][0]["tier"], "BASIC", "{plain}");
}

#[tokio::test]
async fn bad_enums_and_encodings_are_refused_naming_the_field() {
    let (_db, api, _fleet) = start().await;
    let got = api
        .post(
            &format!("{INSTANCES}?instanceId=bad"),
            json!({"tier": 2, "memorySizeGb": 1}),
        )
        .await;
    expect_invalid("tier 2", &got, "tier");
    let message = got.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("expected BASIC (1) or STANDARD_HA (3)"),
        "{message}"
    );
    let detail = &got.1["error"]["details"][0];
    assert_eq!(
        detail["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{detail}"
    );
    assert_eq!(detail["fieldViolations"][0]["field"], "tier", "{detail}");
    assert_eq!(
        detail["fieldViolations"][0]["description"], detail["description"],
        "{detail}"
    );
    let got = api
        .post(
            &format!("{INSTANCES}?instanceId=bad"),
            json!({"tier": 0, "memorySizeGb": 1}),
        )
        .await;
    expect_invalid("tier 0 (unspecified)", &got, "tier");
    let got = api.get("/v1/tiers?%24alt=proto").await;
    expect_invalid("$alt=proto", &got, "$alt");
}

#[tokio::test]
async fn failover_takes_googles_custom_method_and_delete_leaves_empty() {
    let (_db, api, mut fleet) = start().await;
    let body = json!({"tier": "STANDARD_HA", "memorySizeGb": 1});
    let got = api.post(&format!("{INSTANCES}?instanceId=ha"), body).await;
    let created = done(&api, &mut fleet, "create", got).await;
    let primary = |inst: &Value| {
        inst["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["role"] == "PRIMARY"))
            .map(|n| n["id"].clone())
    };
    let before = primary(&created["response"]);

    let got = api
        .post(
            &format!("{INSTANCES}/ha:failover?{NUMBERS}"),
            json!({"dataProtectionMode": 2}),
        )
        .await;
    let op = done(&api, &mut fleet, ":failover", got).await;
    assert_eq!(op["metadata"]["verb"], "failover", "{op}");
    assert_ne!(primary(&op["response"]), before, "the primary moved: {op}");

    let admin = Some(api.admin_token.as_str());
    for (path, code, status) in [
        ("ha:upgrade", 405, "UNIMPLEMENTED"),
        ("ha:export", 405, "UNIMPLEMENTED"),
        ("ha:nope", 404, "NOT_FOUND"),
        ("ha", 405, "UNIMPLEMENTED"),
        ("gone:failover", 404, "NOT_FOUND"),
    ] {
        let got = api
            .req(
                Method::POST,
                &format!("{INSTANCES}/{path}"),
                admin,
                Some(json!({})),
            )
            .await;
        expect_error(&format!("POST {path}"), &got, code, status, None);
    }

    let got = api.delete(&format!("{INSTANCES}/ha")).await;
    let op = done(&api, &mut fleet, "delete", got).await;
    assert_eq!(
        op["response"],
        json!({"@type": "type.googleapis.com/google.protobuf.Empty"}),
        "{op}"
    );
}
