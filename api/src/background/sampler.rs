//! The sampler: every [`INTERVAL`], copies each node's last reported figures into
//! `node_sample` (one row per node and 10-second bucket, whichever replica writes it
//! first) and removes the samples older than [`KEEP`]. Two statements per interval per
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
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => pass(&state).await,
        }
    }
}

/// One pass: the figures of the nodes whose hosts reported within `--host-timeout`
/// (a silent host's figures are not repeated), then the removal of old samples.
pub async fn pass(state: &AppState) {
    if let Err(e) = samples::sample(&state.pool, state.config.host_timeout).await {
        tracing::warn!(error = %e, "sampling the nodes' figures failed; will retry");
    }
    if let Err(e) = samples::prune(&state.pool, KEEP).await {
        tracing::warn!(error = %e, "removing old samples failed; will retry");
    }
}
