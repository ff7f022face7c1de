//! Background work: the operation driver (moves unfinished operations forward from what
//! the agents report) and the health monitor (marks instances REPAIRING and READY again,
//! and starts automatic failovers). Both run on a timer in [`run_worker`] and right
//! after the events that may let them move (a heartbeat, a delete).
//!
//! Dependencies go one way: this module calls the services (`instances`, `operations`,
//! `db`), and no service imports it. Each step's decision is a pure function
//! ([`driver::decide`], [`health::verdict`], [`health::successor`]) tested with tables;
//! the code around it reads rows, locks, and writes what was decided.
//!
//! Errors are handled per operation and per instance: one that fails is logged with its
//! id and retried on the next tick, and the others go on.

pub mod connectors;
pub mod driver;
pub mod grace;
pub mod health;
pub mod memcache;
pub mod retention;
pub mod sampler;

use std::fmt::Display;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::hosts::Heartbeat;
use crate::state::AppState;

pub use driver::advance;

/// The most unfinished operations one sweep looks at.
const SWEEP_LIMIT: i64 = 1000;

/// Sweeps every `worker_interval` until shutdown, with the sampler beside it.
pub async fn run_worker(state: AppState, shutdown: CancellationToken) {
    let sampler = tokio::spawn(sampler::run(state.clone(), shutdown.clone()));
    let mut tick = tokio::time::interval(state.config.worker_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => sweep(&state).await,
        }
    }
    let _ = sampler.await;
}

/// One pass: advances every unfinished operation, then checks every instance whose
/// health is in doubt.
pub async fn sweep(state: &AppState) {
    let stall = grace::stall(state.config.host_timeout);
    match db::operations::list_unfinished(&state.pool, SWEEP_LIMIT).await {
        Ok(ops) => {
            state.grace.seen(chrono::Utc::now(), stall);
            advance_each(state, &ops).await
        }
        Err(e) => {
            state.grace.lost();
            tracing::warn!(error = %e, "listing unfinished operations failed; will retry")
        }
    }
    match db::instances::list_suspects(&state.pool, state.config.host_timeout).await {
        Ok(instances) => check_each(state, &instances).await,
        Err(e) => {
            state.grace.lost();
            tracing::warn!(error = %e, "listing instances to check failed; will retry")
        }
    }
    if let Err(e) = memcache::sweep(state).await {
        tracing::warn!(error = %e, "the Memcached sweep failed; will retry");
    }
    retention::sweep(state).await;
}

/// Follows up a committed heartbeat: the operations and instances it may have moved.
pub async fn after_heartbeat(state: &AppState, beat: &Heartbeat) {
    advance_each(state, &beat.operations).await;
    check_each(state, &beat.instances).await;
}

/// Advances one operation now (e.g. a delete whose nodes sit on hosts that are down);
/// a failure is left to the next sweep.
pub async fn nudge(state: &AppState, op: Uuid) {
    log_failure(state, "operation", op, advance(state, op).await);
}

async fn advance_each(state: &AppState, ops: &[Uuid]) {
    for &op in ops {
        log_failure(state, "operation", op, advance(state, op).await);
    }
}

async fn check_each(state: &AppState, instances: &[Uuid]) {
    for &instance in instances {
        log_failure(
            state,
            "instance",
            instance,
            health::check(state, instance).await,
        );
    }
}

fn log_failure(state: &AppState, what: &str, id: impl Display, result: ApiResult<()>) {
    if let Err(e) = result {
        if lost_database(&e) {
            state.grace.lost();
        }
        tracing::warn!(%id, error = %e, "{what} step failed; will retry on the next sweep");
    }
}

/// Whether an error says the database could not be reached (as opposed to a query it
/// refused): the health monitor's grace period then restarts.
fn lost_database(e: &ApiError) -> bool {
    let ApiError::Internal(e) = e else {
        return false;
    };
    matches!(
        e.downcast_ref::<sqlx::Error>(),
        Some(
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed
        )
    )
}
