//! What one read endpoint's userspace proxy allows: at most so many client connections
//! at once, and how long a connection may stay silent in both directions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default of `--read-endpoint-max-connections`: Memorystore's own per-node client limit
/// is 65 000 on the largest tiers; a proxy that holds two sockets per connection on a
/// host shared by many instances stops well before the usual 64 Ki descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of `--read-endpoint-idle-timeout`: Redis (and Memorystore, whose `timeout`
/// defaults to 0) never closes an idle client, and connection pools keep connections
/// open between bursts for minutes, so only connections silent for an hour are closed:
/// those of clients that vanished without a FIN.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Refusals are logged at most this often, with the count since the last line.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits of every read endpoint of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections one endpoint relays at once; new ones beyond are closed at
    /// once. At least 1.
    pub max_connections: usize,
    /// A connection with no byte in either direction for this long is closed; zero
    /// never closes one.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// One endpoint's admission: a permit per live connection, and the count of those
/// refused.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
    /// When a refusal was last logged and the count then.
    logged: Mutex<(Option<Instant>, u64)>,
}

impl Admission {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refused: AtomicU64::new(0),
            logged: Mutex::new((None, 0)),
        }
    }

    /// A slot for a new connection, held until dropped; `None` (counted, and logged at
    /// most every [`REFUSAL_LOG_EVERY`]) when all are taken.
    pub fn admit(&self, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Some(p);
        }
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let due = logged.0.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY);
        if due {
            tracing::warn!(
                endpoint,
                max_connections = self.max,
                refused = total - logged.1,
                "read endpoint at its connection cap: new connections closed"
            );
            *logged = (Some(Instant::now()), total);
        }
        None
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}
