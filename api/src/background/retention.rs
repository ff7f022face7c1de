//! Retention: finished operations and `requestId` claims are removed once they are
//! older than `--operation-retention`, at most every [`INTERVAL`], a batch at a time. A
//! retry with a `requestId` older than that makes a new operation. The sweep also lets
//! the rate limiter forget idle buckets.

use std::time::{Duration, Instant};

use crate::db::retention as db;
use crate::state::AppState;

/// How often the removal runs.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// When the removal last ran on this replica.
#[derive(Debug, Default)]
pub struct Schedule {
    last: std::sync::Mutex<Option<Instant>>,
}

impl Schedule {
    /// Whether it is time to run again; if so, notes that it runs now.
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Removes what is past retention (one batch of each kind), when due.
pub async fn sweep(state: &AppState) {
    if !state.retention.due() {
        return;
    }
    state.limits.shrink();
    let Ok(retention) = chrono::Duration::from_std(state.config.operation_retention) else {
        return;
    };
    let cutoff = chrono::Utc::now() - retention;
    let requests = db::delete_requests(&state.pool, cutoff).await;
    let operations = db::delete_operations(&state.pool, cutoff).await;
    match (requests, operations) {
        (Ok(0), Ok(0)) => {}
        (Ok(r), Ok(o)) => tracing::info!(requests = r, operations = o, "removed past retention"),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "removing old operations failed; will retry")
        }
    }
}
