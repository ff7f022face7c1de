//! Change notifications across API replicas, through Postgres LISTEN/NOTIFY: a long-poll
//! on any replica wakes when a host config or an operation changes on any other. A
//! notification is only a hint to look again; waiters re-read the database. When the
//! LISTEN connection drops, notifications sent before it listens again are lost, so once
//! it listens again every waiter looks again ([`Change::Resync`]). Waiters also look
//! again every [`SAFETY_RECHECK`], the bound on a wake-up that still went missing.

use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const HOST_CHANNEL: &str = "cp_host";
const OPERATION_CHANNEL: &str = "cp_operation";

/// How often a waiter looks again without a notification. Notifications are not lost
/// while the LISTEN connection stands, and a reconnect makes every waiter look again, so
/// this is only a backstop; at one look per second, 1 000 agents' config long-polls
/// cost as many queries as their heartbeats (BENCHMARKS.md, `agents`).
pub const SAFETY_RECHECK: Duration = Duration::from_secs(10);

/// Something changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A host's desired config (its generation was bumped).
    Host(String),
    /// An operation (progress, done).
    Operation(Uuid),
    /// The LISTEN connection was lost and listens again: anything may have changed.
    Resync,
}

/// Subscribes waiters to changes.
#[derive(Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Change>,
    /// Cancelled at shutdown; long-polls return early.
    pub shutdown: CancellationToken,
}

impl Notifier {
    /// Starts listening; the listener reconnects by itself until `shutdown`.
    pub async fn start(pool: &PgPool, shutdown: CancellationToken) -> anyhow::Result<Notifier> {
        let (tx, _) = broadcast::channel(1024);
        let mut listener = PgListener::connect_with(pool).await?;
        listener
            .listen_all([HOST_CHANNEL, OPERATION_CHANNEL])
            .await?;
        let sender = tx.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => {
                            let change = match n.channel() {
                                HOST_CHANNEL => Change::Host(n.payload().to_string()),
                                _ => match n.payload().parse() {
                                    Ok(id) => Change::Operation(id),
                                    Err(_) => continue,
                                },
                            };
                            let _ = sender.send(change);
                        }
                        // The connection dropped: listen again, then have every
                        // waiter look again for what changed meanwhile.
                        Ok(None) => {
                            relisten(&mut listener, &stop).await;
                            let _ = sender.send(Change::Resync);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            relisten(&mut listener, &stop).await;
                            let _ = sender.send(Change::Resync);
                        }
                    }
                }
            }
        });
        Ok(Notifier { tx, shutdown })
    }

    /// Waits until `check` returns `Some` or `timeout` passes (then `None`). `check` runs
    /// at once, on every relevant change and every [`Change::Resync`], and at least every
    /// [`SAFETY_RECHECK`].
    pub async fn wait_for<T, F, Fut>(
        &self,
        relevant: impl Fn(&Change) -> bool,
        timeout: Duration,
        mut check: F,
    ) -> crate::error::ApiResult<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = crate::error::ApiResult<Option<T>>>,
    {
        let mut rx = self.tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = check().await? {
                return Ok(Some(v));
            }
            let tick = (tokio::time::Instant::now() + SAFETY_RECHECK).min(deadline);
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep_until(tick) => break,
                    r = rx.recv() => match r {
                        Ok(Change::Resync) => break,
                        Ok(c) if relevant(&c) => break,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return Ok(None),
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return check().await;
            }
        }
    }
}

/// Listens on the channels again after the connection dropped, retrying every second
/// until it works or `stop` is cancelled.
async fn relisten(listener: &mut PgListener, stop: &CancellationToken) {
    while !stop.is_cancelled() {
        match listener.listen_all([HOST_CHANNEL, OPERATION_CHANNEL]).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Announces (at commit) that a host's config changed.
pub async fn host_changed(conn: &mut PgConnection, host: &str) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(HOST_CHANNEL)
        .bind(host)
        .execute(conn)
        .await?;
    Ok(())
}

/// Announces (at commit) that an operation changed.
pub async fn operation_changed(conn: &mut PgConnection, op: Uuid) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(OPERATION_CHANNEL)
        .bind(op.to_string())
        .execute(conn)
        .await?;
    Ok(())
}
