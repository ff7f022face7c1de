//! The sampler: copies each node's last reported figures into `node_sample` once per
//! 10-second bucket (whichever replica gets there first; the others find the bucket
//! taken), and removes the samples older than [`KEEP`]. It wakes every [`INTERVAL`], so
//! a late pass never skips a bucket, and runs at most two statements per wake-up and
//! API replica, whatever the number of nodes; the heartbeat path writes nothing more.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::samples;
use crate::state::AppState;

/// How often the sampler runs: twice per 10-second bucket, so that no bucket is missed
/// when a pass is late.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// How long samples are kept: the longest window served, and an hour more.
pub const KEEP: Duration = Duration::from_secs(2 * 3600);

/// Samples every [`INTERVAL`] until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => last = pass(&state, last).await,
        }
    }
}

/// One pass, unless this replica already sampled the current bucket (`last`): the
/// figures of the nodes whose hosts reported within `--host-timeout` (a silent host's
/// figures are not repeated), then the removal of old samples. Returns the bucket
/// sampled (or still `last` when the write failed, to retry).
pub async fn pass(state: &AppState, last: Option<i64>) -> Option<i64> {
    let bucket = chrono::Utc::now()
        .timestamp()
        .div_euclid(samples::STEP_SECS);
    if last == Some(bucket) {
        return last;
    }
    let done = match samples::sample(&state.pool, state.config.host_timeout).await {
        Ok(_) => Some(bucket),
        Err(e) => {
            tracing::warn!(error = %e, "sampling the nodes' figures failed; will retry");
            last
        }
    };
    if let Err(e) = samples::prune(&state.pool, KEEP).await {
        tracing::warn!(error = %e, "removing old samples failed; will retry");
    }
    done
}
