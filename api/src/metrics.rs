//! The API server's Prometheus metrics (listed in `docs/metrics.md#api-server`), served
//! at `GET /metrics` in the Prometheus text format (`crate::http::metrics`).
//!
//! Counters and histograms live in memory, one set per process: each replica counts
//! the requests it answered, the operations it finished and the failovers it started
//! (Prometheus sums them over replicas). Recording takes no database query: a family
//! lookup under a read lock and an atomic add (plus the label values' copies). The
//! gauges of hosts and pools are computed at scrape time instead ([`snapshot`]). Labels
//! carry route templates, project and instance names, never paths with ids, tokens or
//! secrets.

pub mod snapshot;

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::instances::failover::Reason;
use crate::operations::Finished;

/// Upper bounds (seconds) of the request latency buckets: 1 ms to a long-poll's minute.
const REQUEST_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Upper bounds (seconds) of the operation duration buckets: a failover's tenth of a
/// second to a create that waits half an hour for its host.
const OPERATION_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// An HTTP method as a label: the standard ones by name, anything else as `OTHER`, so
/// a client cannot grow the label set with made-up methods.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    /// GET.
    GET,
    /// HEAD.
    HEAD,
    /// POST.
    POST,
    /// PUT.
    PUT,
    /// PATCH.
    PATCH,
    /// DELETE.
    DELETE,
    /// OPTIONS.
    OPTIONS,
    /// Any other.
    OTHER,
}

impl From<&axum::http::Method> for Method {
    fn from(m: &axum::http::Method) -> Method {
        use axum::http::Method as M;
        match *m {
            M::GET => Method::GET,
            M::HEAD => Method::HEAD,
            M::POST => Method::POST,
            M::PUT => Method::PUT,
            M::PATCH => Method::PATCH,
            M::DELETE => Method::DELETE,
            M::OPTIONS => Method::OPTIONS,
            _ => Method::OTHER,
        }
    }
}

/// The route label of a request no route matched (a 404 or 405 of the fallback).
pub const UNMATCHED: &str = "unmatched";

/// Labels of `cacheplane_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route template (`/v1/projects/{project}/...`), or [`UNMATCHED`].
    pub route: String,
    /// The method.
    pub method: Method,
    /// The answer's status code.
    pub status: u16,
}

/// Labels of `cacheplane_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route template, or [`UNMATCHED`].
    pub route: String,
    /// The method.
    pub method: Method,
}

/// Labels of `cacheplane_operations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The project.
    pub project: String,
    /// `instance`, `connector` or `memcacheInstance`.
    pub resource: &'static str,
    /// `create`, `update`, `delete`, `failover`.
    pub verb: &'static str,
    /// `done`, or the error's status (`UNAVAILABLE`, `ABORTED`, ...).
    pub result: String,
}

/// Labels of `cacheplane_operation_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationKindLabels {
    /// `instance`, `connector` or `memcacheInstance`.
    pub resource: &'static str,
    /// The verb.
    pub verb: &'static str,
    /// `done` or the error's status.
    pub result: String,
}

/// Labels of `cacheplane_failovers_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    /// The project.
    pub project: String,
    /// The instance's name.
    pub instance: String,
    /// `automatic` (the health monitor) or `manual` (the failover method).
    pub trigger: &'static str,
    /// Why: see [`Reason::as_str`].
    pub reason: &'static str,
}

/// Labels of `cacheplane_hosts`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostStateLabels {
    /// The zone.
    pub zone: String,
    /// `UP` or `DOWN`, as `GET /v1/hosts` says.
    pub state: &'static str,
}

/// Labels of `cacheplane_host_heartbeat_age_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The host's id.
    pub host: String,
    /// Its zone.
    pub zone: String,
}

/// Labels of the database pool gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `main` (user requests, background work) or `agents` (the agent protocol).
    pub pool: &'static str,
}

/// Labels of `cacheplane_db_pool_connections`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolStateLabels {
    /// The pool, as in [`PoolLabels`].
    pub pool: &'static str,
    /// `idle` or `in_use`.
    pub state: &'static str,
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn operation_histogram() -> Histogram {
    Histogram::new(OPERATION_BUCKETS)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric of one API process, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by route template, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from a request's arrival to its answer's head, by route and method.
    pub request_duration: HistogramFamily<RouteLabels>,
    /// Operations this process finished, by project, resource, verb and result.
    pub operations: Family<OperationLabels, Counter>,
    /// Time from an operation's start to its end, by resource, verb and result.
    pub operation_duration: HistogramFamily<OperationKindLabels>,
    /// Failovers this process started, by project, instance, trigger and reason.
    pub failovers: Family<FailoverLabels, Counter>,
    /// Registered hosts by zone and state (at scrape time).
    pub hosts: Family<HostStateLabels, Gauge>,
    /// Seconds since each host's last heartbeat (at scrape time).
    pub heartbeat_age: Family<HostLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Connections open in each database pool, idle or in use (at scrape time).
    pub pool_connections: Family<PoolStateLabels, Gauge>,
    /// Most connections each database pool opens.
    pub pool_max: Family<PoolLabels, Gauge>,
    /// 1 when the scrape's database query answered, else 0.
    pub db_up: Gauge,
    /// Held by a scrape while it refreshes and encodes the scrape-time gauges.
    pub scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family, registered under the `cacheplane_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cacheplane");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route template, method and status code",
            requests.clone(),
        );
        let request_duration =
            HistogramFamily::new_with_constructor(request_histogram as fn() -> _);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by route template and method (long-polls wait up to their timeout)",
            Unit::Seconds,
            request_duration.clone(),
        );
        let operations = Family::default();
        registry.register(
            "operations",
            "Long-running operations this process finished, by project, resource, verb and result (done or the error's status)",
            operations.clone(),
        );
        let operation_duration =
            HistogramFamily::new_with_constructor(operation_histogram as fn() -> _);
        registry.register_with_unit(
            "operation_duration",
            "Time from an operation's start to its end, by resource, verb and result",
            Unit::Seconds,
            operation_duration.clone(),
        );
        let failovers = Family::default();
        registry.register(
            "failovers",
            "Failovers this process started, by project, instance, trigger (automatic or manual) and reason",
            failovers.clone(),
        );
        let hosts = Family::default();
        registry.register(
            "hosts",
            "Registered hosts by zone and state (UP: heartbeat within --host-timeout)",
            hosts.clone(),
        );
        let heartbeat_age = Family::default();
        registry.register_with_unit(
            "host_heartbeat_age",
            "Time since each host's last heartbeat",
            Unit::Seconds,
            heartbeat_age.clone(),
        );
        let pool_connections = Family::default();
        registry.register(
            "db_pool_connections",
            "Open database connections of this process by pool (main, agents) and state (idle, in_use)",
            pool_connections.clone(),
        );
        let pool_max = Family::default();
        registry.register(
            "db_pool_max_connections",
            "Most database connections each pool of this process opens",
            pool_max.clone(),
        );
        let db_up = Gauge::default();
        registry.register(
            "db_up",
            "1 when this process's query for the scrape-time gauges answered, 0 when PostgreSQL did not",
            db_up.clone(),
        );
        Metrics {
            registry,
            requests,
            request_duration,
            operations,
            operation_duration,
            failovers,
            hosts,
            heartbeat_age,
            pool_connections,
            pool_max,
            db_up,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one answered request and its latency.
    pub fn request(&self, route: &str, method: Method, status: u16, elapsed: Duration) {
        let route = route.to_string();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
                method,
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Counts operations finished in a transaction that committed.
    pub fn operations_finished(&self, finished: impl IntoIterator<Item = Finished>) {
        for f in finished {
            let resource = f.resource;
            let verb = f.verb.as_str();
            let result = f.error.unwrap_or_else(|| "done".to_string());
            self.operation_duration
                .get_or_create(&OperationKindLabels {
                    resource,
                    verb,
                    result: result.clone(),
                })
                .observe(f.duration.as_secs_f64());
            self.operations
                .get_or_create(&OperationLabels {
                    project: f.project,
                    resource,
                    verb,
                    result,
                })
                .inc();
        }
    }

    /// Counts a failover started in a transaction that committed.
    pub fn failover_started(&self, project: &str, instance: &str, reason: Reason) {
        self.failovers
            .get_or_create(&FailoverLabels {
                project: project.to_string(),
                instance: instance.to_string(),
                trigger: if reason.automatic() {
                    "automatic"
                } else {
                    "manual"
                },
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Every family in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; should the encoder still report an error, the
        // scrape answers what was written.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        text
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        let odd = axum::http::Method::from_bytes(b"BREW").unwrap();
        assert_eq!(Method::from(&odd), Method::OTHER);
        assert_eq!(Method::from(&axum::http::Method::PATCH), Method::PATCH);
    }

    #[test]
    fn encoded_families_carry_their_prefix_type_and_labels() {
        let m = Metrics::new();
        m.request("/v1/hosts", Method::GET, 200, Duration::from_millis(3));
        m.failover_started("p", "cache", Reason::HostLost);
        let text = m.encode();
        assert!(
            text.contains("# TYPE cacheplane_http_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"cacheplane_http_requests_total{route="/v1/hosts",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"cacheplane_failovers_total{project="p",instance="cache",trigger="automatic",reason="host_lost"} 1"#),
            "{text}"
        );
    }
}
