//! What every handler shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::TokenCache;
use crate::background::grace::Grace;
use crate::background::retention::Schedule;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// The API's shared state. It holds no domain state of its own: Postgres is the only
/// source of truth, so several API replicas can serve side by side. What it keeps in
/// memory (token lookups, rate-limit buckets) only protects this replica.
#[derive(Clone)]
pub struct AppState {
    /// The database, for user requests and background work.
    pub pool: PgPool,
    /// A small pool of its own for the agent protocol, so user load never delays a
    /// heartbeat waiting for a connection.
    pub agent_pool: PgPool,
    /// The configuration.
    pub config: Arc<Config>,
    /// Wakes long-polls when a host config or an operation changes (on any replica).
    pub notifier: Notifier,
    /// When host silence starts to count for this process (the health monitor's grace
    /// period after a start or a database outage).
    pub grace: Arc<Grace>,
    /// Recent token lookups (`--token-cache-ttl`).
    pub tokens: Arc<TokenCache>,
    /// Concurrency caps and rate limits.
    pub limits: Arc<Limits>,
    /// When the retention sweep last ran.
    pub retention: Arc<Schedule>,
    /// This process's Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The same state whose `pool` is the agent protocol's pool: the agent handlers
    /// call the services with it, so every query they make uses the agents' connections.
    pub fn for_agents(&self) -> AppState {
        AppState {
            pool: self.agent_pool.clone(),
            ..self.clone()
        }
    }
}
