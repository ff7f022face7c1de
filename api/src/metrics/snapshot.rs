//! The gauges computed at scrape time: hosts by state and their heartbeat age (one
//! query on `host`), and the database pools' connections (read from the pools). A
//! scrape replaces them whole, so a deleted host drops out; [`refresh`] runs under the
//! scrape lock so that two scrapes never interleave a clear and an encode.

use std::collections::BTreeMap;

use chrono::Utc;
use sqlx::PgPool;

use super::{HostLabels, HostStateLabels, Metrics, PoolLabels, PoolStateLabels};
use crate::db::hosts::{self, HeartbeatRow};
use crate::instances::node_state::heartbeat_fresh;
use crate::state::AppState;

/// Sets the scrape-time gauges from the database and the pools. When the database does
/// not answer, the host gauges are left empty (not stale) and `cacheplane_db_up` is 0.
pub async fn refresh(state: &AppState) {
    let metrics = &state.metrics;
    pools(
        metrics,
        &[("main", &state.pool), ("agents", &state.agent_pool)],
    );
    metrics.hosts.clear();
    metrics.heartbeat_age.clear();
    match hosts::heartbeats(&state.pool).await {
        Ok(rows) => {
            metrics.db_up.set(1);
            set_hosts(metrics, &rows, state.config.host_timeout);
        }
        Err(e) => {
            metrics.db_up.set(0);
            tracing::warn!(error = %e, "reading hosts for the metrics failed");
        }
    }
}

fn pools(metrics: &Metrics, pools: &[(&'static str, &PgPool)]) {
    for &(pool, p) in pools {
        let idle = i64::try_from(p.num_idle()).unwrap_or(i64::MAX);
        let open = i64::from(p.size());
        let state = |state| PoolStateLabels { pool, state };
        metrics
            .pool_connections
            .get_or_create(&state("idle"))
            .set(idle);
        metrics
            .pool_connections
            .get_or_create(&state("in_use"))
            .set((open - idle).max(0));
        metrics
            .pool_max
            .get_or_create(&PoolLabels { pool })
            .set(i64::from(p.options().get_max_connections()));
    }
}

/// Hosts by zone and state (every zone with a host shows both states, 0 included, so
/// an alert on `DOWN > 0` has a series to compare) and each host's heartbeat age.
fn set_hosts(metrics: &Metrics, rows: &[HeartbeatRow], timeout: std::time::Duration) {
    let now = Utc::now();
    let mut by_zone: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for row in rows {
        let counts = by_zone.entry(&row.zone_id).or_default();
        if heartbeat_fresh(row.last_heartbeat_at, now, timeout) {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        if let Some(at) = row.last_heartbeat_at {
            let age = now.signed_duration_since(at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics
                .heartbeat_age
                .get_or_create(&HostLabels {
                    host: row.id.clone(),
                    zone: row.zone_id.clone(),
                })
                .set(age);
        }
    }
    for (zone, (up, down)) in by_zone {
        for (state, n) in [("UP", up), ("DOWN", down)] {
            metrics
                .hosts
                .get_or_create(&HostStateLabels {
                    zone: zone.to_string(),
                    state,
                })
                .set(n);
        }
    }
}
