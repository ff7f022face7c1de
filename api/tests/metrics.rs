//! `GET /metrics` on the API server (docs/metrics.md#api-server), read as Prometheus
//! reads it: over HTTP with the admin token, parsed by a Prometheus text parser
//! (`openmetrics-parser`). The counters move when they should: a request raises its
//! route's counter with its status, a create and a failover raise the operations they
//! finish, a failover (manual, then automatic on host loss with real agents) raises the
//! failovers by reason, and the host gauges follow the heartbeats.

use std::collections::HashMap;
use std::time::Duration;

use cacheplane_testkit::api::{op_name, wait_op};
use cacheplane_testkit::chaos::{
    create_ha, failover_ops, instance, primary_node, until_all_ready, PARENT, PROJECT,
};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::{wait_until, Api, TestDb, GIB};
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::PrometheusValue;
use reqwest::Method;
use serde_json::json;

/// One series of a scrape: its family, labels and value.
struct Series {
    family: String,
    labels: HashMap<String, String>,
    value: PrometheusValue,
}

/// What `GET /metrics` answered, parsed.
struct Metrics {
    series: Vec<Series>,
    families: Vec<String>,
}

impl Metrics {
    /// Scrapes `api` with the admin token: 200, the Prometheus text content type, and
    /// text the parser reads.
    async fn scrape(api: &Api) -> Metrics {
        let response = reqwest::Client::new()
            .get(format!("{}/metrics", api.base))
            .bearer_auth(&api.admin_token)
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200, "GET /metrics with the admin token");
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "content type {content_type}"
        );
        let text = response.text().await.expect("reading /metrics");
        let exposition = parse_prometheus(&text)
            .unwrap_or_else(|e| panic!("the Prometheus text parser reads /metrics: {e:?}\n{text}"));
        let mut series = Vec::new();
        for (name, family) in &exposition.families {
            let names = family.get_label_names();
            for sample in family.iter_samples() {
                let labels = sample
                    .get_labelset()
                    .unwrap_or_else(|e| panic!("labels of {name}: {e:?}"));
                let labels = names
                    .iter()
                    .filter_map(|n| Some((n.clone(), labels.get_label_value(n)?.to_string())))
                    .collect();
                series.push(Series {
                    family: name.clone(),
                    labels,
                    value: sample.value.clone(),
                });
            }
        }
        let families = exposition.families.keys().cloned().collect();
        Metrics { series, families }
    }

    /// The series of `family` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        family: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Series> + 'a {
        self.series.iter().filter(move |s| {
            s.family == family
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the counter or gauge series of `family` with `labels` (0 when there is
    /// none: a counter not yet raised has no series).
    fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels)
            .map(|s| match &s.value {
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Gauge(v) => v.as_f64(),
                other => panic!("{family} is not a counter or gauge: {other:?}"),
            })
            .sum()
    }

    /// The observations of histogram `family` with `labels` (its `_count`).
    fn observations(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(family, labels)
            .map(|s| match &s.value {
                PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                other => panic!("{family} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// Whether the exposition has family `name` (it appears once it has a series).
    fn has(&self, name: &str) -> bool {
        self.families.iter().any(|f| f == name)
    }

    /// Every value label `name` takes in `family`.
    fn label_values(&self, family: &str, name: &str) -> Vec<String> {
        self.matching(family, &[])
            .filter_map(|s| s.labels.get(name).cloned())
            .collect()
    }
}

const REQUESTS: &str = "cacheplane_http_requests_total";
const LATENCY: &str = "cacheplane_http_request_duration_seconds";
const OPERATIONS: &str = "cacheplane_operations_total";
const OPERATION_TIME: &str = "cacheplane_operation_duration_seconds";
const FAILOVERS: &str = "cacheplane_failovers_total";
const HOSTS: &str = "cacheplane_hosts";
const HEARTBEAT_AGE: &str = "cacheplane_host_heartbeat_age_seconds";

/// A project token's secret (`POST /v1/tokens`).
async fn project_token(api: &Api, project: &str) -> String {
    let (status, t) = api
        .post(
            "/v1/tokens",
            json!({"project": project, "description": "metrics test"}),
        )
        .await;
    assert_eq!(status, 200, "creating a project token: {t}");
    string_field(&t, "token")
}

#[tokio::test]
async fn only_an_admin_token_reads_the_metrics() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let (status, body) = api.req(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 401, "no token: {body}");
    let token = project_token(&api, "metrics-auth").await;
    let (status, body) = api.req(Method::GET, "/metrics", Some(&token), None).await;
    assert_eq!(status, 403, "a project token: {body}");

    let m = Metrics::scrape(&api).await;
    for family in [
        REQUESTS,
        LATENCY,
        "cacheplane_db_pool_connections",
        "cacheplane_db_pool_max_connections",
        "cacheplane_db_up",
    ] {
        assert!(m.has(family), "{family} is served");
    }
    // The refused scrapes were counted under their route.
    let metrics_route = [("route", "/metrics"), ("method", "GET")];
    assert_eq!(m.sum(REQUESTS, &[metrics_route[0], ("status", "401")]), 1.0);
    assert_eq!(m.sum(REQUESTS, &[metrics_route[0], ("status", "403")]), 1.0);
    assert!(m.observations(LATENCY, &metrics_route) >= 2.0);
    assert_eq!(m.sum("cacheplane_db_up", &[]), 1.0);
    // The server's defaults: --db-pool and --db-agent-pool.
    let max = |pool| m.sum("cacheplane_db_pool_max_connections", &[("pool", pool)]);
    assert!(max("main") >= 1.0 && max("agents") >= 1.0, "pool sizes");
    let open = m.sum("cacheplane_db_pool_connections", &[("pool", "main")]);
    assert!(
        open >= 1.0 && open <= max("main"),
        "{open} open connections"
    );
}

#[tokio::test]
async fn requests_count_by_route_template_method_and_status() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    let route = "/v1/projects/{project}/locations/{region}/instances/{instance}";
    let labels = [("route", route), ("method", "GET"), ("status", "404")];
    let before = Metrics::scrape(&api).await;
    for _ in 0..2 {
        let (status, body) = api
            .get("/v1/projects/metrics-p/locations/local/instances/no-such-cache")
            .await;
        assert_eq!(status, 404, "{body}");
    }
    let (status, _) = api.get("/v1/no/such/path").await;
    assert_eq!(status, 404);

    let after = Metrics::scrape(&api).await;
    assert_eq!(
        after.sum(REQUESTS, &labels) - before.sum(REQUESTS, &labels),
        2.0
    );
    let timed = [("route", route), ("method", "GET")];
    assert_eq!(
        after.observations(LATENCY, &timed) - before.observations(LATENCY, &timed),
        2.0
    );
    assert_eq!(
        after.sum(REQUESTS, &[("route", "unmatched"), ("status", "404")])
            - before.sum(REQUESTS, &[("route", "unmatched"), ("status", "404")]),
        1.0
    );
    // Routes are templates: no label carries a path with ids.
    let routes = after.label_values(REQUESTS, "route");
    assert!(
        routes
            .iter()
            .all(|r| !r.contains("no-such") && !r.contains("metrics-p")),
        "{routes:?}"
    );
}

#[tokio::test]
async fn a_create_with_no_room_counts_a_failed_create() {
    let db = TestDb::new().await;
    let api = Api::start(&db).await;
    // No host registered: the create finishes at once, RESOURCE_EXHAUSTED.
    let (status, op) = api
        .post(
            "/v1/projects/metrics-room/locations/local/instances?instanceId=nowhere",
            json!({"tier": "BASIC", "memorySizeGb": 1}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["error"]["status"], "RESOURCE_EXHAUSTED", "{op}");

    let m = Metrics::scrape(&api).await;
    let labels = [
        ("project", "metrics-room"),
        ("resource", "instance"),
        ("verb", "create"),
        ("result", "RESOURCE_EXHAUSTED"),
    ];
    assert_eq!(m.sum(OPERATIONS, &labels), 1.0);
    let timed = [("verb", "create"), ("result", "RESOURCE_EXHAUSTED")];
    assert_eq!(m.observations(OPERATION_TIME, &timed), 1.0);
    assert_eq!(m.sum(OPERATIONS, &[("result", "done")]), 0.0);
    assert_eq!(m.sum(HOSTS, &[]), 0.0, "no host registered");
}

/// Scrapes `api` until `check` holds (30 s at most): an operation's counter moves
/// right after its transaction commits, a moment after a waiter may see it done.
async fn scrape_until(api: &Api, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
    wait_until(
        what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            let m = Metrics::scrape(api).await;
            if check(&m) {
                Ok(m)
            } else {
                not_yet::<_, String>("not yet")
            }
        },
    )
    .await
}

/// Waits until `api` has `n` failover operations, all done; answers them.
async fn failovers_done(api: &Api, n: usize) -> Vec<serde_json::Value> {
    wait_until(
        &format!("{n} failover operations are done"),
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let ops = failover_ops(api).await;
            if ops.len() >= n && ops.iter().all(|o| o["done"] == true) {
                Ok(ops)
            } else {
                not_yet::<_, String>(format!("{ops:?}"))
            }
        },
    )
    .await
}

#[tokio::test]
async fn creates_failovers_and_host_loss_move_the_metrics_on_the_real_stack() {
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &["--host-timeout", "2s", "--worker-interval", "250ms"]).await;
    let mut agents = three_agents(&api, 8 * GIB).await;
    let ha = create_ha(&api, "watched").await;

    let create = [
        ("project", PROJECT),
        ("resource", "instance"),
        ("verb", "create"),
        ("result", "done"),
    ];
    let m = scrape_until(&api, "the create is counted", |m| {
        m.sum(OPERATIONS, &create) > 0.0
    })
    .await;
    assert_eq!(m.sum(OPERATIONS, &create), 1.0);
    assert_eq!(
        m.observations(OPERATION_TIME, &[("verb", "create"), ("result", "done")]),
        1.0
    );
    assert_eq!(m.sum(HOSTS, &[("state", "UP")]), 3.0);
    assert_eq!(m.sum(HOSTS, &[("state", "DOWN")]), 0.0);
    for host in ["host-a", "host-b", "host-c"] {
        let age = m.sum(HEARTBEAT_AGE, &[("host", host)]);
        assert!((0.0..2.0).contains(&age), "{host} heartbeat age {age} s");
    }
    assert_eq!(m.sum(FAILOVERS, &[]), 0.0);

    // A manual failover (FORCE_DATA_LOSS promotes a replica at once).
    let (status, op) = api
        .post(
            &format!("{PARENT}/instances/{}/failover", ha.name),
            json!({"dataProtectionMode": "FORCE_DATA_LOSS"}),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(
        done["error"].is_null(),
        "the manual failover succeeds: {done}"
    );
    let inst = until_all_ready(&api, &ha.name, Duration::from_secs(30)).await;
    let failover_done = [("verb", "failover"), ("result", "done")];
    let m = scrape_until(&api, "the failover is counted", |m| {
        m.sum(OPERATIONS, &failover_done) > 0.0
    })
    .await;
    let manual = [
        ("project", PROJECT),
        ("instance", ha.name.as_str()),
        ("trigger", "manual"),
        ("reason", "promote"),
    ];
    assert_eq!(m.sum(FAILOVERS, &manual), 1.0);
    assert_eq!(m.sum(OPERATIONS, &failover_done), 1.0);

    // The new primary's host goes away (agent and engines): the health monitor fails
    // over on its own, and the host shows DOWN with a growing heartbeat age.
    let zone = string_field(&primary_node(&inst), "zone");
    let lost = ["local-a", "local-b", "local-c"]
        .iter()
        .position(|z| *z == zone)
        .unwrap_or_else(|| panic!("primary in unknown zone {zone}"));
    agents[lost].kill_host();
    failovers_done(&api, 2).await;
    let lost_host = format!("host-{}", &zone["local-".len()..]);
    let down = [("zone", zone.as_str()), ("state", "DOWN")];
    let m = scrape_until(&api, &format!("{lost_host} is DOWN in the metrics"), |m| {
        m.sum(HOSTS, &down) == 1.0 && m.sum(OPERATIONS, &[("verb", "failover")]) >= 2.0
    })
    .await;
    let automatic = [
        ("instance", ha.name.as_str()),
        ("trigger", "automatic"),
        ("reason", "host_lost"),
    ];
    assert_eq!(
        m.sum(FAILOVERS, &automatic),
        1.0,
        "{:?}",
        instance(&api, &ha.name).await
    );
    assert_eq!(m.sum(FAILOVERS, &[]), 2.0);
    assert_eq!(m.sum(HOSTS, &[("state", "UP")]), 2.0);
    let age = m.sum(HEARTBEAT_AGE, &[("host", lost_host.as_str())]);
    assert!(age > 2.0, "{lost_host} silent for {age} s");
    assert_eq!(
        m.sum(OPERATIONS, &[("verb", "failover")]),
        2.0,
        "both failovers finished, each counted once"
    );
}
