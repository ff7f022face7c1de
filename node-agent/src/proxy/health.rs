//! The health check of a read endpoint's replicas: `INFO replication` every
//! [`CHECK_EVERY`] while healthy, every [`RECHECK_EVERY`] while not (a replica that has
//! just linked takes connections within that), and at once when a client finds no
//! healthy replica. A replica may take new connections only while it is a replica whose
//! link to its primary is up and that is not in a full sync.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backend::Backend;
use super::EndpointConfig;
use crate::redis::acl::Login;
use crate::redis::client::{Client, ClientError, Reply};
use crate::redis::observe::Info;

/// How often each healthy replica is checked.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How often each unhealthy replica is checked.
pub const RECHECK_EVERY: Duration = Duration::from_millis(50);
/// Longest a check may take (connect, AUTH, INFO); a slower replica counts as unhealthy.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a replica whose `INFO replication` says `info` may take new connections:
/// `role:slave` (never a primary, e.g. one promoted before the config says so),
/// `master_link_status:up` and `master_sync_in_progress:0`.
pub fn is_serving(info: &Info) -> Result<(), &'static str> {
    if info.get("role") != Some("slave") {
        return Err("not a replica");
    }
    if info.get("master_link_status") != Some("up") {
        return Err("link to its primary is down");
    }
    if info.get("master_sync_in_progress") != Some("0") {
        return Err("full sync in progress");
    }
    Ok(())
}

/// How the checks reach the replicas: the logins to try (the agent's engine user) and,
/// when its engines serve TLS only, the instance's CA.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Dialing {
    /// The logins, best first.
    pub auth: Vec<Login>,
    /// The instance's CA (PEM).
    pub tls_ca: Option<String>,
}

impl Dialing {
    /// What `config` says.
    pub fn of(config: &EndpointConfig) -> Dialing {
        Dialing {
            auth: config.auth.clone(),
            tls_ca: config.tls_ca.clone(),
        }
    }
}

/// Checks `backend` until it is closed, authenticating with the endpoint's current auth
/// string (over TLS for a TLS instance); logs changes of its health.
pub async fn watch(backend: Arc<Backend>, mut auth: watch::Receiver<Dialing>) {
    let mut client: Option<Client> = None;
    let mut first = true;
    loop {
        let next = if first {
            Duration::ZERO
        } else if backend.is_healthy() {
            CHECK_EVERY
        } else {
            RECHECK_EVERY
        };
        first = false;
        tokio::select! {
            _ = backend.closed.cancelled() => return,
            _ = backend.check_now.notified() => {}
            _ = tokio::time::sleep(next) => {}
        }
        if auth.has_changed().unwrap_or(false) {
            auth.mark_unchanged();
            client = None;
        }
        let pw = auth.borrow().clone();
        let verdict =
            match tokio::time::timeout(CHECK_TIMEOUT, check(&mut client, &backend, pw)).await {
                Ok(Ok(info)) => is_serving(&info).map_err(str::to_string),
                Ok(Err(e)) => {
                    client = None;
                    Err(e.to_string())
                }
                Err(_) => {
                    client = None;
                    Err(format!("no answer within {CHECK_TIMEOUT:?}"))
                }
            };
        if backend.set_healthy(verdict.is_ok()) {
            match verdict {
                Ok(()) => {
                    tracing::info!(replica = %backend.address, "read endpoint: replica takes connections")
                }
                Err(why) => {
                    tracing::warn!(replica = %backend.address, %why, "read endpoint: replica takes no new connections")
                }
            }
        }
    }
}

async fn check(
    client: &mut Option<Client>,
    backend: &Backend,
    dialing: Dialing,
) -> Result<Info, ClientError> {
    let c = match client {
        Some(c) => c,
        None => client.insert(
            backend
                .dialer
                .client(
                    &backend.address,
                    backend.port,
                    &dialing.auth,
                    dialing.tls_ca.as_deref(),
                )
                .await?,
        ),
    };
    match c.call(&["INFO", "replication"]).await? {
        Reply::Bulk(Some(b)) => Ok(Info::parse(&String::from_utf8_lossy(&b))),
        other => Err(ClientError::Protocol(format!("INFO answered {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKED: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.64.0.4\r\nmaster_port:6379\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:0\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:1000\r\n";

    #[test]
    fn a_linked_replica_serves() {
        assert_eq!(is_serving(&Info::parse(LINKED)), Ok(()));
    }

    #[test]
    fn link_down_full_sync_or_primary_do_not() {
        let down = LINKED.replace("master_link_status:up", "master_link_status:down");
        assert!(is_serving(&Info::parse(&down)).is_err());
        let syncing = LINKED.replace("master_sync_in_progress:0", "master_sync_in_progress:1");
        assert_eq!(
            is_serving(&Info::parse(&syncing)),
            Err("full sync in progress")
        );
        let primary = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n";
        assert_eq!(is_serving(&Info::parse(primary)), Err("not a replica"));
        assert!(is_serving(&Info::parse("")).is_err());
    }
}
