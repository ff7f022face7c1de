//! What every handler shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::background::grace::Grace;
use crate::config::Config;
use crate::notify::Notifier;

/// The API's shared state. It holds no domain state of its own: Postgres is the only
/// source of truth, so several API replicas can serve side by side.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// The configuration.
    pub config: Arc<Config>,
    /// Wakes long-polls when a host config or an operation changes (on any replica).
    pub notifier: Notifier,
    /// When host silence starts to count for this process (the health monitor's grace
    /// period after a start or a database outage).
    pub grace: Arc<Grace>,
}
