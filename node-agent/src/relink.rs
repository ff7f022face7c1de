//! Linking a replica as soon as its primary listens. A replica whose primary is not
//! listening yet (both started by one create, on different hosts, in any order) or is
//! being restarted tries again only from Redis's replication cron, once a second. For a
//! while after a replica starts or is pointed at a primary, the agent watches its link
//! every [`EVERY`]; once the primary accepts connections and the replica is still not
//! linked nor syncing, it makes the replica connect at once: `REPLICAOF` to the same
//! primary is a no-op in Redis, so it points the replica at [`NOWHERE`] and back, which
//! starts a connection immediately. The replica stays a read-only replica throughout and
//! keeps its data until a sync with the real primary replaces it.
//!
//! Once linked, a replica may still not receive the primary's writes for up to a
//! second: after a diskless full sync, the primary starts streaming to a replica only on
//! a `REPLCONF ACK` that arrives after it has reaped the fork that sent the snapshot
//! (its `serverCron`, 10 times a second), but the replica sends its first ACK the moment
//! it has loaded the snapshot, usually before that, and the next one a second later.
//! Reads from such a replica missed writes made 50 ms earlier. So once the primary lists
//! the replica `online`, the agent asks the replica for an ACK at once
//! (`REPLCONF GETACK *`), and until then the agent reports the link as not yet up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cacheplane_types::NodeSpec;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::net::dial::Dialer;
use crate::redis::acl;
use crate::redis::client::{Client, Reply};
use crate::redis::observe::Info;
use crate::redis::{conf, local, NodeDir};

/// How long after a start or a change of primary the link is hastened.
pub const HASTEN_FOR: Duration = Duration::from_secs(5);
/// How often the link is looked at meanwhile.
pub const EVERY: Duration = Duration::from_millis(50);
/// Least time between two nudges of one replica, so that a handshake in progress (which
/// INFO does not show) is not cut again and again.
const NUDGE_GAP: Duration = Duration::from_millis(1000);
/// Longest wait to learn whether the primary accepts connections.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// A primary nothing ever listens on (loopback, privileged port): connecting to it
/// fails at once.
pub const NOWHERE: (&str, u16) = ("127.0.0.1", 1);

/// How often the primary is asked whether it lists the replica online.
const STREAM_EVERY: Duration = Duration::from_millis(10);

/// The hastening of one replica's link; dropping it stops it.
#[derive(Debug)]
pub struct Relink {
    task: AbortHandle,
    streaming: Arc<AtomicBool>,
}

impl Relink {
    /// Whether a link the replica reports up may not carry the primary's writes yet: the
    /// hastening still runs and has not seen the stream start.
    pub fn unsettled(&self) -> bool {
        !self.task.is_finished() && !self.streaming.load(Ordering::Relaxed)
    }
}

impl Drop for Relink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts hastening the link of replica `spec` (`None` for a primary, or a replica told
/// no primary). The primary is dialled with `dialer` (from the replica's namespace).
pub fn hasten(dir: &NodeDir, spec: &NodeSpec, dialer: Dialer) -> Option<Relink> {
    let (host, port) = conf::replicaof(spec)?;
    let primary = (host.to_string(), port);
    let spec = spec.clone();
    let dir = dir.clone();
    let streaming = Arc::new(AtomicBool::new(false));
    let flag = streaming.clone();
    let task = tokio::spawn(async move {
        let deadline = Instant::now() + HASTEN_FOR;
        let mut client: Option<Client> = None;
        let mut nudged_at: Option<Instant> = None;
        while Instant::now() < deadline {
            match step(&mut client, &dir, &spec, &primary, &dialer, &mut nudged_at).await {
                Ok(Some(Look::Linked)) => {
                    if let Some(c) = client.as_mut() {
                        if start_stream(c, &spec, &primary, &dialer, deadline).await {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    return;
                }
                Ok(Some(_)) => return,
                Ok(None) => {}
                Err(()) => client = None,
            }
            tokio::time::sleep(EVERY).await;
        }
    });
    Some(Relink {
        task: task.abort_handle(),
        streaming,
    })
}

/// Once the primary lists the linked replica `online`, asks the replica for an ACK, on
/// which the primary starts streaming to it. True once asked.
async fn start_stream(
    replica: &mut Client,
    spec: &NodeSpec,
    primary: &(String, u16),
    dialer: &Dialer,
    deadline: Instant,
) -> bool {
    let mut p: Option<Client> = None;
    while Instant::now() < deadline {
        if p.is_none() {
            let ca = crate::redis::tls::ca_of(spec);
            p = dialer
                .client(&primary.0, primary.1, &acl::logins(&[spec]), ca)
                .await
                .ok();
        }
        if let Some(c) = p.as_mut() {
            match c.call(&["INFO", "replication"]).await {
                Ok(Reply::Bulk(Some(b))) => {
                    let info = Info::parse(&String::from_utf8_lossy(&b));
                    if lists_online(&info, &spec.address, spec.port) {
                        return replica.replconf_getack().await.is_ok();
                    }
                }
                _ => p = None,
            }
        }
        tokio::time::sleep(STREAM_EVERY).await;
    }
    false
}

/// Whether a primary's `INFO replication` lists replica `address:port` as `online`.
pub fn lists_online(info: &Info, address: &str, port: u16) -> bool {
    let ip = format!("ip={address},");
    let port = format!("port={port},");
    (0..64).any(|i| {
        info.get(&format!("slave{i}"))
            .is_some_and(|v| v.starts_with(&ip) && v.contains(&port) && v.contains("state=online"))
    })
}

/// One look; `Some` once there is nothing more to nudge.
async fn step(
    client: &mut Option<Client>,
    dir: &NodeDir,
    spec: &NodeSpec,
    primary: &(String, u16),
    dialer: &Dialer,
    nudged_at: &mut Option<Instant>,
) -> Result<Option<Look>, ()> {
    let c = match client {
        Some(c) => c,
        None => client.insert(
            local::connect(dir, spec, &acl::logins(&[spec]))
                .await
                .map_err(|_| ())?,
        ),
    };
    let info = match c.call(&["INFO", "replication"]).await.map_err(|_| ())? {
        Reply::Bulk(Some(b)) => Info::parse(&String::from_utf8_lossy(&b)),
        _ => return Err(()),
    };
    match decide(&info, primary) {
        done @ (Look::Done | Look::Linked) => return Ok(Some(done)),
        Look::Wait => return Ok(None),
        Look::NudgeIfListening => {}
    }
    if nudged_at.is_some_and(|at| at.elapsed() < NUDGE_GAP) {
        return Ok(None);
    }
    let listening = tokio::time::timeout(PROBE_TIMEOUT, dialer.tcp(&primary.0, primary.1))
        .await
        .is_ok_and(|r| r.is_ok());
    if !listening {
        return Ok(None);
    }
    *nudged_at = Some(Instant::now());
    tracing::debug!(replica = %spec.address, primary = %primary.0, "primary listens; replica connects now");
    c.replicaof(Some(NOWHERE)).await.map_err(|_| ())?;
    c.replicaof(Some((primary.0.as_str(), primary.1)))
        .await
        .map_err(|_| ())?;
    Ok(None)
}

/// What a look at a replica's `INFO replication` calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// No longer a replica of this primary: stop.
    Done,
    /// Linked: see that the primary streams to it, then stop.
    Linked,
    /// A sync is under way: leave it alone.
    Wait,
    /// Not linked and not syncing: connect now if the primary listens.
    NudgeIfListening,
}

/// The pure decision of one look.
pub fn decide(info: &Info, primary: &(String, u16)) -> Look {
    if info.master().as_ref() != Some(primary) {
        return Look::Done;
    }
    if info.get("master_link_status") == Some("up") {
        return Look::Linked;
    }
    if info.get("master_sync_in_progress") != Some("0") {
        return Look::Wait;
    }
    Look::NudgeIfListening
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.64.0.4\r\nmaster_port:6379\r\nmaster_link_status:down\r\nmaster_sync_in_progress:0\r\n";

    fn p() -> (String, u16) {
        ("127.64.0.4".into(), 6379)
    }

    #[test]
    fn an_unlinked_idle_replica_is_nudged() {
        assert_eq!(decide(&Info::parse(DOWN), &p()), Look::NudgeIfListening);
    }

    #[test]
    fn a_sync_under_way_is_left_alone() {
        let syncing = DOWN.replace("master_sync_in_progress:0", "master_sync_in_progress:1");
        assert_eq!(decide(&Info::parse(&syncing), &p()), Look::Wait);
    }

    #[test]
    fn the_primary_lists_its_online_replicas() {
        let info = Info::parse("role:master\r\nslave0:ip=127.64.0.5,port=6379,state=wait_bgsave,offset=0,lag=0\r\nslave1:ip=127.64.0.6,port=6379,state=online,offset=9,lag=0\r\n");
        assert!(!lists_online(&info, "127.64.0.5", 6379));
        assert!(lists_online(&info, "127.64.0.6", 6379));
        assert!(!lists_online(&info, "127.64.0.60", 6379), "whole address");
        assert!(!lists_online(&info, "127.64.0.6", 6380));
    }

    #[test]
    fn linked_promoted_or_moved_replicas_are_done() {
        let up = DOWN.replace("master_link_status:down", "master_link_status:up");
        assert_eq!(decide(&Info::parse(&up), &p()), Look::Linked);
        let primary = "# Replication\r\nrole:master\r\n";
        assert_eq!(decide(&Info::parse(primary), &p()), Look::Done);
        let other = DOWN.replace("127.64.0.4", "127.64.0.9");
        assert_eq!(decide(&Info::parse(&other), &p()), Look::Done);
    }
}
