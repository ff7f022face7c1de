//! Protection of the control plane (docs/architecture.md#protection-of-the-control-plane):
//! heartbeats stay prompt under a flood of user long-polls and bad tokens, rate limits
//! answer 429 with Retry-After, concurrency caps answer at once, quotas name themselves
//! and allocate nothing, old operations and requestIds go, and a client that sends half a
//! request head is cut off.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cacheplane_testkit::api::op_name;
use cacheplane_testkit::{wait_until, Api, Caller, FakeAgent, Fleet, TestDb, GIB};
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use common::checks::{expect_error, expect_ok};
use common::client::{allocations, basic, create, create_ok, instance, PARENT, PROJECT};

/// The agents' primary lease in the node agent's default configuration.
const PRIMARY_LEASE: Duration = Duration::from_secs(5);

/// Creates a project token and returns its secret.
async fn project_token(api: &Api, project: &str) -> String {
    let body = json!({"project": project, "description": "protection test"});
    let t = expect_ok("create token", &api.post("/v1/tokens", body).await);
    t["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {t}"))
        .to_string()
}

/// A made-up token nobody issued.
fn bad_token() -> String {
    format!("cp_{}", uuid::Uuid::new_v4().simple())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// While 200 user long-polls wait on an operation and clients send about 2 000 requests
/// a second with made-up tokens, for 10 s, every heartbeat of three agents is answered
/// within half the primary lease: a heartbeat later than that could let a lease run out,
/// demoting a healthy primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_does_not_delay_heartbeats() {
    const LONG_POLLS: usize = 200;
    const FLOOD_TASKS: usize = 40;
    const FLOOD_PERIOD: Duration = Duration::from_millis(20); // 40 × 50/s = 2 000/s
    const FLOOD_FOR: Duration = Duration::from_secs(10);

    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let token = project_token(&api, PROJECT).await;
    // Each agent heartbeats on a client of its own, with the config it held before
    // the create: it never applies it, so the operation stays running and waits on it
    // last their whole timeout.
    let mut agents = Vec::new();
    for agent in &fleet.agents {
        let caller = Caller::http(&api.base, &api.admin_token);
        let mut agent = FakeAgent::attach(caller, &agent.host, &agent.zone).await;
        agent.applied = agent.config.generation;
        agents.push(agent);
    }
    let op = op_name(&create_ok(&api, "flooded", basic(1)).await);
    let user = Caller::http(&api.base, &token);
    // Known to be valid from now on: the flood from the same address cannot lock it out.
    let (status, body) = user.req(Method::GET, &format!("/v1/{op}"), None).await;
    assert_eq!(status, 200, "{body}");

    let stop = Arc::new(AtomicBool::new(false));
    let mut long_polls = JoinSet::new();
    for _ in 0..LONG_POLLS {
        let (user, stop, path) = (
            user.clone(),
            stop.clone(),
            format!("/v1/{op}/wait?timeout=3s"),
        );
        long_polls.spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(user.req(Method::POST, &path, Some(json!({}))).await.0);
            }
            statuses
        });
    }
    let mut flood = JoinSet::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for _ in 0..FLOOD_TASKS {
        let (client, stop) = (client.clone(), stop.clone());
        let url = format!("{}{PARENT}/instances", api.base);
        flood.spawn(async move {
            let mut statuses = Vec::new();
            let mut tick = tokio::time::interval(FLOOD_PERIOD);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let sent = client
                    .get(&url)
                    .header(AUTHORIZATION, format!("Bearer {}", bad_token()))
                    .send()
                    .await;
                statuses.push(sent.map(|r| r.status().as_u16()).unwrap_or(0));
            }
            statuses
        });
    }

    // Every agent heartbeats every 250 ms, as the test agents do.
    let mut beats = JoinSet::new();
    for agent in agents {
        let stop = stop.clone();
        beats.spawn(async move {
            let mut latencies = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let sent = Instant::now();
                agent.heartbeat().await;
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }

    tokio::time::sleep(FLOOD_FOR).await;
    stop.store(true, Ordering::Relaxed);

    let mut latencies: Vec<Duration> = Vec::new();
    while let Some(l) = beats.join_next().await {
        latencies.extend(l.expect("heartbeat task"));
    }
    let mut flood_statuses = Vec::new();
    while let Some(s) = flood.join_next().await {
        flood_statuses.extend(s.expect("flood task"));
    }
    let mut poll_statuses = Vec::new();
    while let Some(s) = long_polls.join_next().await {
        poll_statuses.extend(s.expect("long-poll task"));
    }

    latencies.sort();
    let count = |v: &[u16], s: u16| v.iter().filter(|&&x| x == s).count();
    eprintln!(
        "heartbeats: {} (p50 {:?}, p99 {:?}, max {:?}); bad-token requests: {} in {FLOOD_FOR:?} ({} 401, {} 429); long-polls answered: {}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        flood_statuses.len(),
        count(&flood_statuses, 401),
        count(&flood_statuses, 429),
        poll_statuses.len(),
    );
    assert!(
        latencies.len() >= 3 * 20,
        "too few heartbeats: {}",
        latencies.len()
    );
    let max = latencies.last().copied().unwrap_or_default();
    assert!(
        max < PRIMARY_LEASE / 2,
        "a heartbeat took {max:?} during the flood, more than half the primary lease ({:?})",
        PRIMARY_LEASE / 2
    );
    let tally = |v: &[u16]| {
        let mut t = std::collections::BTreeMap::new();
        v.iter().for_each(|s| *t.entry(*s).or_insert(0) += 1);
        t
    };
    assert!(
        flood_statuses.iter().all(|s| matches!(s, 401 | 429)),
        "bad tokens are refused (401) or rate-limited (429), nothing else (0: no answer): {:?}",
        tally(&flood_statuses)
    );
    assert!(
        poll_statuses.iter().all(|&s| s == 200),
        "the long-polls (fewer than --max-long-polls) are all answered: {:?}",
        tally(&poll_statuses)
    );
    assert!(
        flood_statuses.len() > 5_000,
        "the flood sent only {}",
        flood_statuses.len()
    );
}

/// One GET with `token`; the status, the Retry-After header and the body.
async fn get_with(base: &str, path: &str, token: &str) -> (u16, Option<u64>, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

/// Past `--rate-limit` a token gets 429 RESOURCE_EXHAUSTED with Retry-After, and so does
/// an address sending bad tokens; another token and the agents' protocol are unaffected;
/// after the advertised wait the token works again.
#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let db = TestDb::new().await;
    let api = Api::start_with_args(&db, &["--rate-limit", "5"]).await;
    let fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let token = project_token(&api, PROJECT).await;
    let path = format!("{PARENT}/instances");

    let mut limited = None;
    for _ in 0..20 {
        let got = get_with(&api.base, &path, &token).await;
        if got.0 == 429 {
            limited = Some(got);
            break;
        }
        assert_eq!(got.0, 200, "{}", got.2);
    }
    let (status, retry, body) =
        limited.expect("20 quick requests over a rate of 5/s: one gets 429");
    expect_error(
        "rate limited",
        &(status, body.clone()),
        429,
        "RESOURCE_EXHAUSTED",
        None,
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{body}"
    );
    let retry = retry.unwrap_or_else(|| panic!("no Retry-After header: {body}"));
    assert!((1..=2).contains(&retry), "Retry-After {retry}");

    // The admin token has a bucket of its own, and the agents' protocol too.
    let (status, _, body) = get_with(&api.base, "/v1/regions", &api.admin_token).await;
    assert_eq!(status, 200, "{body}");
    fleet.agents[0].heartbeat().await;

    // Bad tokens are counted against the client's address.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get_with(&api.base, &path, &bad_token()).await.0);
    }
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&429),
        "bad tokens are rate-limited: {statuses:?}"
    );

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _, body) = get_with(&api.base, &path, &token).await;
    assert_eq!(status, 200, "after Retry-After: {body}");
}

/// Past `--max-long-polls`, a wait is answered at once with 503 UNAVAILABLE and
/// Retry-After; other requests still work, and so do waits once the others end.
#[tokio::test]
async fn long_polls_past_the_cap_are_refused_at_once() {
    let db = TestDb::new().await;
    let api = Api::start_with_args(&db, &["--max-long-polls", "2"]).await;
    let _fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let op = op_name(&create_ok(&api, "waited", basic(1)).await);
    let path = format!("/v1/{op}/wait?timeout=3s");

    let mut waits = JoinSet::new();
    for _ in 0..2 {
        let (caller, path) = (api.caller(), path.clone());
        waits.spawn(async move { caller.req(Method::POST, &path, Some(json!({}))).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{}{path}", api.base))
        .header(AUTHORIZATION, format!("Bearer {}", api.admin_token))
        .send()
        .await
        .expect("request");
    let retry = r.headers().get(RETRY_AFTER).cloned();
    let got = (
        r.status().as_u16(),
        r.json::<Value>().await.unwrap_or(Value::Null),
    );
    expect_error("third wait", &got, 503, "UNAVAILABLE", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-long-polls"),
        "{}",
        got.1
    );
    assert!(retry.is_some(), "Retry-After on 503");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not queued"
    );
    expect_ok(
        "a plain request meanwhile",
        &api.get(&format!("/v1/{op}")).await,
    );

    while let Some(w) = waits.join_next().await {
        let (status, body) = w.expect("wait task");
        assert_eq!(status, 200, "{body}");
    }
    // The slots are free again.
    api.caller().wait_op(&op, "0s").await;
}

/// Creates, scales and network creates over a quota fail with RESOURCE_EXHAUSTED naming
/// the quota and its limit, and allocate nothing; concurrent creates never get past it.
#[tokio::test]
async fn quotas_refuse_and_name_themselves() {
    let db = TestDb::new().await;
    let args = [
        "--quota-instances",
        "2",
        "--quota-memory-gb",
        "4",
        "--quota-networks",
        "2",
    ];
    let api = Api::in_process_with_args(&db, &args).await;
    let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let op = create_ok(&api, "a", basic(1)).await;
    fleet.converge(&api, &op).await;
    let before = allocations(&api).await;

    // 1 GB used; a STANDARD_HA of 2 GB with one replica needs 4 more.
    let ha = json!({"tier": "STANDARD_HA", "memorySizeGb": 2, "replicaCount": 1,
                    "locationId": "local-a", "alternativeLocationId": "local-b"});
    let got = create(&api, "ha", ha).await;
    expect_error("memory quota", &got, 429, "RESOURCE_EXHAUSTED", None);
    let msg = got.1["error"]["message"].as_str().unwrap();
    assert!(msg.contains("memoryGb") && msg.contains("4 GB"), "{msg}");
    assert_eq!(allocations(&api).await, before, "nothing allocated");
    expect_error(
        "not created",
        &(api.get(&format!("{PARENT}/instances/ha")).await),
        404,
        "NOT_FOUND",
        None,
    );

    // Scaling up past the memory quota.
    let got = api
        .patch(
            &format!("{PARENT}/instances/a?updateMask=memorySizeGb"),
            json!({"memorySizeGb": 5}),
        )
        .await;
    expect_error("scale over quota", &got, 429, "RESOURCE_EXHAUSTED", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memoryGb"),
        "{}",
        got.1
    );
    assert_eq!(instance(&api, "a").await["memorySizeGb"], 1);
    assert_eq!(allocations(&api).await, before, "nothing allocated");
    // Within it, it works.
    let got = api
        .patch(
            &format!("{PARENT}/instances/a?updateMask=memorySizeGb"),
            json!({"memorySizeGb": 2}),
        )
        .await;
    let op = expect_ok("scale within quota", &got);
    fleet.converge(&api, &op).await;

    // The instance quota: a second instance fits, a third does not.
    let op = create_ok(&api, "b", basic(1)).await;
    fleet.converge(&api, &op).await;
    let got = create(&api, "c", basic(1)).await;
    expect_error("instance quota", &got, 429, "RESOURCE_EXHAUSTED", None);
    let msg = got.1["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'instances'") && msg.contains("2 instances"),
        "{msg}"
    );

    // Networks: `default` and one more.
    let net = |id: &str| format!("/v1/projects/{PROJECT}/networks?networkId={id}");
    expect_ok(
        "second network",
        &api.post(&net("net-b"), json!({"ipRange": "10.9.0.0/24"}))
            .await,
    );
    let got = api
        .post(&net("net-c"), json!({"ipRange": "10.9.1.0/24"}))
        .await;
    expect_error("network quota", &got, 429, "RESOURCE_EXHAUSTED", None);
    let msg = got.1["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'networks'") && msg.contains("2 networks"),
        "{msg}"
    );

    // Eight concurrent creates in a fresh project: exactly two get through.
    let mut creates = JoinSet::new();
    for i in 0..8 {
        let caller = api.caller();
        creates.spawn(async move {
            let path = format!("/v1/projects/other/locations/local/instances?instanceId=i{i}");
            caller.req(Method::POST, &path, Some(basic(1))).await
        });
    }
    let mut accepted = 0;
    while let Some(r) = creates.join_next().await {
        let (status, body) = r.expect("create task");
        match status {
            200 => accepted += 1,
            _ => expect_error(
                "concurrent create",
                &(status, body),
                429,
                "RESOURCE_EXHAUSTED",
                None,
            ),
        }
    }
    assert_eq!(
        accepted, 2,
        "--quota-instances 2 holds under concurrent creates"
    );
}

/// The background sweep removes finished operations and requestIds older than
/// `--operation-retention`, and keeps recent ones and running ones.
#[tokio::test]
async fn retention_removes_old_operations_and_request_ids() {
    let db = TestDb::new().await;
    // The operation deadline is set past the "running" operation's age (2 h), so the
    // driver does not end it for being overdue: it must stay because it runs.
    let api = Api::in_process_with_args(
        &db,
        &["--operation-retention", "1h", "--operation-deadline", "5h"],
    )
    .await;
    // No hosts: each create ends at once (no room), a finished operation.
    let with_request = |name: &str, request: &str| {
        format!("{PARENT}/instances?instanceId={name}&requestId={request}")
    };
    let old_req = uuid::Uuid::new_v4();
    let new_req = uuid::Uuid::new_v4();
    let old = expect_ok(
        "old",
        &api.post(&with_request("old", &old_req.to_string()), basic(1))
            .await,
    );
    let new = expect_ok(
        "new",
        &api.post(&with_request("new", &new_req.to_string()), basic(1))
            .await,
    );
    assert_eq!(old["done"], true, "{old}");
    // A running operation, started long ago, stays.
    let _fleet = Fleet::three_zones(&api, 8 * GIB).await;
    let run_req = uuid::Uuid::new_v4();
    let running = expect_ok(
        "running",
        &api.post(&with_request("running", &run_req.to_string()), basic(1))
            .await,
    );
    assert_eq!(running["done"], false, "{running}");

    let id = |op: &Value| {
        op_name(op)
            .rsplit('/')
            .next()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    let mut conn = db.connect().await;
    sqlx::query(
        "update operation set created_at = now() - interval '2 hours',
                ended_at = case when done then now() - interval '2 hours' end
         where id = any($1)",
    )
    .bind(vec![id(&old), id(&running)])
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "update request set created_at = now() - interval '2 hours' where request_id = any($1)",
    )
    .bind(vec![old_req, run_req])
    .execute(&mut conn)
    .await
    .unwrap();

    let old_path = format!("/v1/{}", op_name(&old));
    wait_until(
        "the old operation is removed",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            cacheplane_testkit::wait::ready_if::<String, _>(
                api.get(&old_path).await.0 == 404,
                || "still there",
            )
        },
    )
    .await;
    let requests: Vec<uuid::Uuid> = sqlx::query_scalar("select request_id from request")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        !requests.contains(&old_req),
        "old requestId removed: {requests:?}"
    );
    assert!(
        requests.contains(&new_req) && requests.contains(&run_req),
        "recent and running kept: {requests:?}"
    );
    expect_ok(
        "recent operation kept",
        &api.get(&format!("/v1/{}", op_name(&new))).await,
    );
    expect_ok(
        "running operation kept",
        &api.get(&format!("/v1/{}", op_name(&running))).await,
    );
}

/// A client that sends half a request head, or nothing, is disconnected after
/// `--header-read-timeout`, and one whose body stops arriving is answered 400 after
/// `--body-idle-timeout`; complete requests are served as before.
#[tokio::test]
async fn half_a_header_is_cut_off() {
    let db = TestDb::new().await;
    let args = ["--header-read-timeout", "1s", "--body-idle-timeout", "1s"];
    let mut api = Api::start_with_args(&db, &args).await;
    let addr = format!("127.0.0.1:{}", api.port());

    for (what, sent) in [
        (
            "half a header",
            &b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "[..],
        ),
        ("nothing", &b""[..]),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue, // an error answer (408) before the close is fine
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "{what}: the connection is still open after 10 s"
        );
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(800),
            "{what}: closed after {after:?}, before the timeout"
        );
    }
    let (status, body) = api.get("/healthz").await;
    assert_eq!(status, 200, "{body}");

    // A body that stops arriving is cut off too, with an answer in the error shape.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/projects/{PROJECT}/networks?networkId=slow HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{",
        api.admin_token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "a trickled body is still waited for after 10 s"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("INVALID_ARGUMENT"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(800), "{answer}");
    expect_error(
        "not created",
        &api.get(&format!("/v1/projects/{PROJECT}/networks/slow"))
            .await,
        404,
        "NOT_FOUND",
        None,
    );
}
