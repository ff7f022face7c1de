//! Concurrent creates (ranges never overlap, requestId yields one operation) and paging
//! through 10 000 instances (docs/architecture.md#invariants).

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cacheplane_testkit::fake_agent::*;
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::GIB;
use cacheplane_testkit::{Api, TestDb};
use common::client::*;
use ipnet::Ipv4Net;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Sends `count` creates at once; returns (status, body) of each.
async fn concurrent_creates(
    api: &Api,
    count: usize,
    request: impl Fn(usize) -> (String, Value),
) -> Vec<(u16, Value)> {
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let caller = api.caller();
        let (path, body) = request(i);
        tasks.spawn(async move { caller.req(Method::POST, &path, Some(body)).await });
    }
    let mut out = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        out.push(r.expect("create task panicked"));
    }
    out
}

/// Every instance of the project, through the list method (pages of `page_size`).
async fn list_all(api: &Api, page_size: usize) -> (Vec<Value>, usize) {
    let mut all = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let (status, page) = api
            .get(&format!(
                "{PARENT}/instances?pageSize={page_size}&pageToken={token}"
            ))
            .await;
        assert_eq!(status, 200, "list page {pages}: {page}");
        pages += 1;
        let items = page["instances"]
            .as_array()
            .unwrap_or_else(|| panic!("no instances in page {pages}: {page}"));
        assert!(
            items.len() <= page_size,
            "page {pages} has {} items",
            items.len()
        );
        all.extend(items.iter().cloned());
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => return (all, pages),
        }
        assert!(pages <= 100_000 / page_size + 2, "the list never ends");
    }
}

#[tokio::test]
async fn fifty_concurrent_creates_get_disjoint_ranges() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let mut fleet = Fleet::three_zones(&api, 32 * GIB).await;

    let results = concurrent_creates(&api, 50, |i| {
        (
            format!("{PARENT}/instances?instanceId=c{i:02}"),
            json!({"tier": "BASIC", "memorySizeGb": 1}),
        )
    })
    .await;
    let mut ops = HashSet::new();
    for (status, body) in &results {
        assert!(
            *status < 500,
            "server error under concurrent creates: {status} {body}"
        );
        assert_eq!(*status, 200, "{body}");
        assert!(body["error"].is_null(), "{body}");
        ops.insert(op_name(body));
    }
    assert_eq!(ops.len(), 50, "operations: {ops:?}");

    let (instances, _) = list_all(&api, 100).await;
    assert_eq!(instances.len(), 50);
    let ranges: Vec<Ipv4Net> = instances
        .iter()
        .map(|i| {
            let r: Ipv4Net = i["reservedIpRange"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("no range in {i}"));
            assert_eq!(r.prefix_len(), 28, "{i}");
            r
        })
        .collect();
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            assert!(
                !a.contains(&b.network()) && !b.contains(&a.network()),
                "{a} overlaps {b}"
            );
        }
    }
    let total: i64 = allocations(&api).await.values().sum();
    assert_eq!(total, 50 * GIB);

    // And all of them come up.
    fleet.sync().await;
    for op in &ops {
        let done = wait_done(&api, &Value::String(op.clone())).await;
        assert_eq!(done["response"]["state"], "READY", "{done}");
    }
}

#[tokio::test]
async fn concurrent_retries_with_one_request_id_make_one_instance() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let _fleet = Fleet::three_zones(&api, 8 * GIB).await;

    let request_id = uuid::Uuid::new_v4();
    let path = format!("{PARENT}/instances?instanceId=once&requestId={request_id}");
    let body = standard_ha(1, 2);
    let results = concurrent_creates(&api, 20, |_| (path.clone(), body.clone())).await;
    let mut names = HashSet::new();
    for (status, op) in &results {
        assert_eq!(*status, 200, "{op}");
        assert!(op["error"].is_null(), "{op}");
        names.insert(op_name(op));
    }
    assert_eq!(
        names.len(),
        1,
        "one requestId, several operations: {names:?}"
    );

    let (instances, _) = list_all(&api, 100).await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(
        instances[0]["name"],
        format!("projects/{PROJECT}/locations/local/instances/once")
    );
    let total: i64 = allocations(&api).await.values().sum();
    assert_eq!(total, 3 * GIB);

    // A later retry gets the same operation too.
    let (status, op) = api.post(&path, body).await;
    assert_eq!(status, 200, "{op}");
    assert!(names.contains(&op_name(&op)), "{op}");

    // The same requestId for another request is refused (409: the id is taken), naming it.
    let other = concurrent_creates(&api, 1, |_| (path.clone(), standard_ha(2, 2))).await;
    let other_name = format!("{PARENT}/instances?instanceId=twice&requestId={request_id}");
    let other_target = api.post(&other_name, standard_ha(1, 2)).await;
    for (what, (status, body)) in [("another body", &other[0]), ("another name", &other_target)] {
        let msg = assert_error(what, (*status, body), 409, "ALREADY_EXISTS");
        assert!(msg.contains("requestId"), "{what}: {body}");
    }
    assert_eq!(list_all(&api, 100).await.0.len(), 1);
}

#[tokio::test]
async fn paging_through_ten_thousand_instances() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let mut conn = db.connect().await;
    // Rows as the API would hold them, minus address ranges and nodes (listing needs
    // neither). Names come in no particular order.
    sqlx::raw_sql(&format!(
        r#"
        insert into project (id) values ('{PROJECT}');
        insert into network (id, project_id, name, ip_range)
            values (gen_random_uuid(), '{PROJECT}', 'default', '10.200.0.0/16');
        insert into instance (id, project_id, region_id, name, tier_id, memory_size_gb,
                replica_count, location_id, redis_version, network_id, auth_string, state)
            select gen_random_uuid(), '{PROJECT}', 'local',
                   'i-' || substr(md5(g::text), 1, 10) || '-' || g, 'BASIC', 1, 0, 'local-a',
                   'REDIS_7_0', (select id from network where project_id = '{PROJECT}'),
                   md5(random()::text), 'READY'
            from generate_series(1, 10000) g;
        "#
    ))
    .execute(&mut conn)
    .await
    .expect("inserting 10 000 instances");

    for page_size in [1000, 333] {
        let (instances, pages) = list_all(&api, page_size).await;
        let names: Vec<String> = instances.iter().map(|i| string_field(i, "name")).collect();
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            names.len(),
            10_000,
            "pageSize {page_size}: {} names",
            names.len()
        );
        assert_eq!(distinct.len(), 10_000, "pageSize {page_size}: duplicates");
        let mut sorted = names.clone();
        sorted.sort();
        assert!(names == sorted, "pageSize {page_size}: not sorted by name");
        assert_eq!(
            pages,
            10_000usize.div_ceil(page_size),
            "pageSize {page_size}"
        );
        assert!(
            instances
                .iter()
                .all(|i| i["reservedIpRange"] == "" && i["state"] == "READY"),
            "pageSize {page_size}"
        );
    }
}

/// 20 STANDARD_HA instances (READY, or still CREATING) deleted at once while every agent
/// heartbeats in a loop, as real agents do: every delete and every heartbeat is accepted
/// and everything is freed.
async fn deletes_racing_heartbeats(ready: bool) {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let count = 20;
    let mut creates = Vec::new();
    for i in 0..count {
        creates.push(create_ok(&api, &format!("d{i:02}"), standard_ha(1, 2)).await);
    }
    if ready {
        fleet.sync().await;
        for op in &creates {
            assert_eq!(wait_done(&api, op).await["response"]["state"], "READY");
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let loops = fleet.heartbeat_loops(&stop);
    let mut deletes = JoinSet::new();
    for i in 0..count {
        let caller = api.caller();
        let path = instance_path(&format!("d{i:02}"));
        deletes.spawn(async move { caller.req(Method::DELETE, &path, None).await });
    }
    let ops = join_racing("deletes", deletes, loops, &stop).await;

    for op in &ops {
        let done = fleet.converge(&api, op).await;
        assert!(done["error"].is_null(), "{done}");
    }
    assert!(list_all(&api, 100).await.0.is_empty());
    assert!(allocations(&api).await.values().all(|&b| b == 0));
}

#[tokio::test]
async fn deletes_of_ready_instances_racing_heartbeats() {
    deletes_racing_heartbeats(true).await;
}

#[tokio::test]
async fn deletes_of_creating_instances_racing_heartbeats() {
    deletes_racing_heartbeats(false).await;
}
