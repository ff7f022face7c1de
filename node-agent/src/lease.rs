//! The primary lease (docs/architecture.md#primary-lease, split brain): a primary cut off from the control plane
//! stops taking writes, so that two primaries never take writes at once.
//!
//! Every heartbeat the API answers (while the agent holds the API's current config)
//! renews the lease, counted from when that heartbeat was *sent*: the API saw it later,
//! so the agent's lease always runs out before the API's host timeout (10 s by default;
//! the lease is 5 s), after which the API may fail over and promote a replica elsewhere.
//!
//! When the lease runs out, [`guard`] demotes every STANDARD_HA primary of the host with
//! `REPLICAOF 127.0.0.1 1` ([`DEMOTE_TO`]) and repeats it every second while the lease
//! stays expired. Why this target:
//! - the engine becomes a replica, so it answers every write (MULTI/EXEC and scripts
//!   included) with `-READONLY` and keeps serving reads (`replica-serve-stale-data`);
//! - `127.0.0.1` is the loopback of whatever network namespace the engine runs in, and
//!   port 1 is privileged: no Redis ever listens there, the connection is refused at
//!   once on every retry, so no sync ever succeeds and the dataset is never replaced;
//! - Redis keeps its dataset (and its replication id, cached as its own "master") when a
//!   primary turns replica, so `REPLICAOF NO ONE` later gives back the same data, and
//!   `REPLICAOF new-primary` follows a primary promoted meanwhile (whose data then
//!   replaces it, which is right: that primary took the writes since).
//!
//! `REPLICAOF` is chosen over `min-replicas-to-write` (writes fail with `-NOREPLICAS`)
//! because clients and failover tooling know `-READONLY` as "this is not the primary".
//!
//! While the lease is expired the supervisor [`withhold`]s whatever would make an
//! engine a writable STANDARD_HA primary (a promotion, `REPLICAOF NO ONE`, or starting
//! one), so it never undoes the demotion. Once heartbeats succeed again the normal
//! reconcile applies what the API wants now.
//!
//! BASIC primaries (`restartInPlace`) are left alone: the API never fails them over, so
//! no second primary can exist, and demoting them would only turn every BASIC cache
//! read-only whenever the API is away (docs/architecture.md#when-the-control-plane-is-away).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacheplane_types::{HostConfig, NodeRole, NodeSpec};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::plan::{Action, Change};
use crate::redis::client::{Client, ClientError};

/// The primary a demoted engine is pointed at: one that can never answer.
pub const DEMOTE_TO: (&str, u16) = ("127.0.0.1", 1);

/// How often demotion is repeated while the lease stays expired (it is idempotent, and
/// catches an engine promoted by a pass that raced the expiry).
const REDEMOTE_EVERY: Duration = Duration::from_secs(1);

/// The lease, shared by the heartbeat (which renews it), the supervisor and the guard.
#[derive(Debug)]
pub struct Lease {
    length: Duration,
    renewed: Mutex<Instant>,
}

impl Lease {
    /// A lease of `length`, counted from now: an agent that starts cut off demotes its
    /// primaries once `length` has passed without a heartbeat.
    pub fn new(length: Duration) -> Self {
        Self::starting_at(length, Instant::now())
    }

    /// A lease of `length` last renewed at `renewed`.
    pub fn starting_at(length: Duration, renewed: Instant) -> Self {
        Lease {
            length,
            renewed: Mutex::new(renewed),
        }
    }

    /// Its length.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// Renews the lease from `sent_at`, when the successful heartbeat was sent. Never
    /// moves it back.
    pub fn renew(&self, sent_at: Instant) {
        let mut r = self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        *r = (*r).max(sent_at);
    }

    /// When it runs out, unless renewed.
    pub fn expires_at(&self) -> Instant {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) + self.length
    }

    /// Whether it has run out.
    pub fn is_expired(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        expired(renewed, self.length, Instant::now())
    }
}

/// The lease decision: expired once more than `length` has passed since `renewed`.
pub fn expired(renewed: Instant, length: Duration, now: Instant) -> bool {
    now.saturating_duration_since(renewed) > length
}

/// Whether the lease fences `spec`: a STANDARD_HA primary (not BASIC, see the module).
pub fn fences(spec: &NodeSpec) -> bool {
    spec.role == NodeRole::Primary && !spec.restart_in_place
}

/// What of `action` may run while the lease is expired: no start of a fenced primary,
/// and no replication change towards one (that would undo the demotion). Other changes
/// of the same action (size, configs, AUTH, binding) still apply.
pub fn withhold(action: Action) -> Option<Action> {
    match action {
        Action::Start(s) | Action::Restart(s) if fences(&s) => None,
        Action::Reconfigure { spec, mut what } if fences(&spec) => {
            what.remove(&Change::Replication);
            (!what.is_empty()).then_some(Action::Reconfigure { spec, what })
        }
        other => Some(other),
    }
}

/// Demotes the fenced primaries of the current config whenever the lease is expired
/// (at once when it runs out, then every second), until `cancel` fires.
pub async fn guard(
    lease: &Lease,
    config: watch::Receiver<Option<Arc<HostConfig>>>,
    cancel: &CancellationToken,
) {
    let mut fenced = false;
    loop {
        let wake = if lease.is_expired() {
            Instant::now() + REDEMOTE_EVERY
        } else {
            lease.expires_at() + Duration::from_millis(1)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {}
        }
        if !lease.is_expired() {
            if fenced {
                tracing::info!("primary lease renewed; the reconcile restores what the API wants");
                fenced = false;
            }
            continue;
        }
        let targets: Vec<NodeSpec> = config
            .borrow()
            .as_ref()
            .map(|c| c.nodes.iter().filter(|s| fences(s)).cloned().collect())
            .unwrap_or_default();
        if !fenced {
            fenced = true;
            tracing::warn!(
                lease = ?lease.length(),
                primaries = targets.len(),
                "no successful heartbeat within the primary lease; demoting primaries (they keep serving reads)"
            );
        }
        demote_all(targets).await;
    }
}

/// Demotes each of `targets` concurrently; a failure is logged and retried next time.
async fn demote_all(targets: Vec<NodeSpec>) {
    let mut set = JoinSet::new();
    for spec in targets {
        set.spawn(async move {
            let r = demote(&spec).await;
            (spec, r)
        });
    }
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((spec, Err(e))) => {
                tracing::warn!(node = %spec.node_id, error = %e, "cannot demote primary; will retry");
            }
            Ok((spec, Ok(()))) => {
                tracing::debug!(node = %spec.node_id, "primary demoted");
            }
            Err(e) => tracing::warn!(error = %e, "demotion task failed"),
        }
    }
}

/// `REPLICAOF 127.0.0.1 1` on the engine of `spec` (a no-op when already done).
pub async fn demote(spec: &NodeSpec) -> Result<(), ClientError> {
    let mut c = Client::connect(&spec.address, spec.port, spec.auth_string.as_deref()).await?;
    c.replicaof(Some(DEMOTE_TO)).await
}

#[cfg(test)]
mod tests;
