//! When a host's silence starts to count. Right after the API starts, or after it could
//! not reach PostgreSQL (an error, or a query that stalled), every host may look silent
//! only because its heartbeats could not be recorded. Silence therefore counts from the
//! later of the host's last heartbeat and the moment this process last (re)gained the
//! database, so a failover, a repair or a deadline never fires on a control-plane outage.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::nodes::NodeRow;

#[cfg(test)]
mod tests;

/// The pure clock: what the process knows of its own contact with the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceClock {
    /// Silence counts from here on.
    pub from: DateTime<Utc>,
    /// The last completed database contact.
    pub last_seen: DateTime<Utc>,
    /// A database error since then.
    pub lost: bool,
}

impl GraceClock {
    /// The clock of a process started at `now`: silence counts from now on.
    pub fn started(now: DateTime<Utc>) -> GraceClock {
        GraceClock {
            from: now,
            last_seen: now,
            lost: false,
        }
    }

    /// A database call failed.
    pub fn lost(&mut self) {
        self.lost = true;
    }

    /// A database call completed at `now`. After an error, or after no contact for more
    /// than `stall` (a database or a process that froze), the grace period restarts.
    pub fn seen(&mut self, now: DateTime<Utc>, stall: Duration) {
        let gap = now
            .signed_duration_since(self.last_seen)
            .to_std()
            .unwrap_or_default();
        if self.lost || gap > stall {
            self.from = self.from.max(now);
        }
        self.lost = false;
        self.last_seen = self.last_seen.max(now);
    }
}

/// The clock shared by the worker and the heartbeat follow-ups of one API process.
#[derive(Debug)]
pub struct Grace(Mutex<GraceClock>);

impl Grace {
    /// A clock started now.
    pub fn new() -> Grace {
        Grace(Mutex::new(GraceClock::started(Utc::now())))
    }

    /// See [`GraceClock::lost`].
    pub fn lost(&self) {
        self.lock().lost();
    }

    /// See [`GraceClock::seen`]; returns when silence counts from.
    pub fn seen(&self, now: DateTime<Utc>, stall: Duration) -> DateTime<Utc> {
        let mut c = self.lock();
        c.seen(now, stall);
        c.from
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GraceClock> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Grace {
    fn default() -> Self {
        Grace::new()
    }
}

/// The longest pause between two database contacts that does not restart the grace
/// period: half the host timeout (the worker contacts the database every tick).
pub fn stall(host_timeout: Duration) -> Duration {
    host_timeout / 2
}

/// Counts each node's host silence from `from` at the earliest: a host that heartbeated
/// before `from` is treated as if it heartbeated at `from`. Hosts that never did stay so.
pub fn apply(nodes: &mut [NodeRow], from: DateTime<Utc>) {
    for n in nodes {
        if let Some(last) = n.host_last_heartbeat_at.as_mut() {
            *last = (*last).max(from);
        }
    }
}
