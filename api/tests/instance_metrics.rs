//! `GET …/instances/{instance}/metrics`: the nodes' figures every 10 s over a window,
//! from the API's sampler, with the instance's failovers as markers; its window is
//! checked (a malformed one is a 400 naming `window`; a longer one is an hour), and a
//! project's token sees only its own instances; on the real stack the points carry the
//! engines' own figures.

mod common;

use std::time::Duration;

use cacheplane_testkit::json::str_field;
use cacheplane_testkit::stack::{redis_cli, start_api, three_agents};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::{wait_until, Api, Fleet, TestDb, GIB};
use common::client::*;
use reqwest::Method;
use serde_json::{json, Value};

fn metrics_path(name: &str, window: &str) -> String {
    format!("{}/metrics{window}", instance_path(name))
}

/// Polls the metrics of `name` until `check` holds (the sampler runs every 5 s).
async fn metrics_until(
    api: &Api,
    fleet: &mut Fleet,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let fleet = tokio::sync::Mutex::new(fleet);
    wait_until(
        what,
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            // The agents keep reporting, as real ones do, so that the nodes stay fresh.
            fleet.lock().await.sync().await;
            let (status, body) = api.get(&metrics_path(name, "?window=5m")).await;
            assert_eq!(status, 200, "{body}");
            if check(&body) {
                Ok(body)
            } else {
                not_yet::<_, String>(body.to_string())
            }
        },
    )
    .await
}

#[tokio::test]
async fn samples_every_node_and_marks_failovers() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let inst = ready_ha(&api, &mut fleet, "charted", 2).await;
    let primary = node_id(&inst, "PRIMARY");

    let body = metrics_until(
        &api,
        &mut fleet,
        "charted",
        "every node has a sample",
        |b| b["nodes"].as_array().is_some_and(|n| n.len() == 3),
    )
    .await;
    assert_eq!(
        str_field(&body, "name"),
        "projects/proj/locations/local/instances/charted"
    );
    assert_eq!(body["windowSeconds"], 300, "{body}");
    assert_eq!(body["stepSeconds"], 10, "{body}");
    assert_eq!(
        body["nodes"][0]["id"],
        primary.as_str(),
        "the primary comes first: {body}"
    );
    let point = &body["nodes"][0]["points"][0];
    assert_eq!(point["role"], "PRIMARY", "{body}");
    assert_eq!(point["up"], true, "{body}");
    let zones: Vec<&str> = body["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["zone"].as_str())
        .collect();
    assert_eq!(zones.len(), 3, "{body}");
    assert_eq!(body["failovers"], json!([]), "{body}");

    // A failover shows as a marker with its operation.
    let (status, op) = api
        .post(
            &format!("{}/failover", instance_path("charted")),
            json!({"dataProtectionMode": "FORCE_DATA_LOSS"}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let done = fleet.converge(&api, &op).await;
    assert!(done["error"].is_null(), "{done}");
    let body = metrics_until(&api, &mut fleet, "charted", "the failover is marked", |b| {
        b["failovers"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    let marker = &body["failovers"][0];
    assert_eq!(marker["operation"], op["name"], "{body}");
    assert_eq!(marker["failed"], false, "{body}");
    assert!(marker["endTime"].is_string(), "{body}");
}

#[tokio::test]
async fn a_bad_window_is_refused_naming_it() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let op = create_ok(&api, "small", basic(1)).await;
    fleet.converge(&api, &op).await;

    for window in ["soon", "-1m", "5%20m", "1d"] {
        let (status, body) = api
            .get(&metrics_path("small", &format!("?window={window}")))
            .await;
        assert_eq!(status, 400, "{window}: {body}");
        assert_eq!(
            body["error"]["status"], "INVALID_ARGUMENT",
            "{window}: {body}"
        );
        assert_eq!(
            body["error"]["details"][0]["field"], "window",
            "{window}: {body}"
        );
    }
    // As a `timeout` past the longest wait, a window past an hour is an hour.
    for (window, seconds) in [("2h", 3600), ("10s", 60), ("15m", 900)] {
        let (status, body) = api
            .get(&metrics_path("small", &format!("?window={window}")))
            .await;
        assert_eq!(status, 200, "{window}: {body}");
        assert_eq!(body["windowSeconds"], seconds, "{window}: {body}");
    }
    let (status, body) = api.get(&metrics_path("small", "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["windowSeconds"], 3600,
        "the default window is an hour: {body}"
    );

    let (status, body) = api.get(&metrics_path("nonesuch", "")).await;
    assert_eq!(status, 404, "{body}");

    // Another project's token sees nothing of it.
    let (status, t) = api.post("/v1/tokens", json!({"project": "other"})).await;
    assert_eq!(status, 200, "{t}");
    let other = str_field(&t, "token");
    let (status, body) = api
        .req(Method::GET, &metrics_path("small", ""), Some(other), None)
        .await;
    assert!(status == 403 || status == 404, "{status} {body}");
    let (status, body) = api
        .req(Method::GET, &metrics_path("small", ""), None, None)
        .await;
    assert_eq!(status, 401, "{body}");
}

/// The charts' figures come from real engines: memory, clients and commands per
/// second on the primary, lag on the replicas (the API's sampler, every 10 s).
#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_of_a_real_instance_have_the_figures_the_charts_draw() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let parent = PARENT;
    let body = json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2, "readReplicasMode": "READ_REPLICAS_ENABLED"});
    let (inst, auth) = cacheplane_testkit::api::create_ready(&api, parent, "figures", body).await;
    let host = str_field(&inst, "host").to_string();
    let port = inst["port"].as_u64().expect("a port").to_string();
    let path = format!("{parent}/instances/figures/metrics?window=5m");
    let what = "two samples of every node, with commands on the primary";
    let got: Value = wait_until(
        what,
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let (api, path, host, port, auth) = (&api, &path, &host, &port, &auth);
            async move {
                redis_cli(
                    host,
                    port.parse().unwrap_or(6379),
                    Some(auth),
                    &["set", "k", "v"],
                );
                let (status, body) = api.get(path).await;
                assert_eq!(status, 200, "{body}");
                let nodes = body["nodes"].as_array().cloned().unwrap_or_default();
                let ready = nodes.len() == 3
                    && nodes
                        .iter()
                        .all(|n| n["points"].as_array().is_some_and(|p| p.len() >= 2))
                    && body["nodes"][0]["points"]
                        .as_array()
                        .and_then(|p| p.last())
                        .is_some_and(|p| p["commandsPerSecond"].as_f64().is_some_and(|c| c > 0.0));
                if ready {
                    Ok(body)
                } else {
                    not_yet::<_, String>(body.to_string())
                }
            }
        },
    )
    .await;
    let primary = got["nodes"][0]["points"]
        .as_array()
        .and_then(|p| p.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(primary["role"], "PRIMARY", "{got}");
    assert!(
        primary["usedMemoryBytes"].as_i64().is_some_and(|m| m > 0),
        "{got}"
    );
    assert_eq!(primary["maxmemoryBytes"].as_i64(), Some(GIB), "{got}");
    assert!(
        primary["connectedClients"].as_i64().is_some_and(|c| c >= 1),
        "{got}"
    );
    for replica in &got["nodes"].as_array().cloned().unwrap_or_default()[1..] {
        let last = replica["points"]
            .as_array()
            .and_then(|p| p.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(last["role"], "REPLICA", "{got}");
        assert!(last["lagBytes"].as_i64().is_some_and(|l| l >= 0), "{got}");
    }
}
