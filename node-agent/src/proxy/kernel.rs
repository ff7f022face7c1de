//! The read endpoint in the kernel (netns mode, and host or loopback mode with
//! `--read-endpoint kernel`): rather than a listener relaying bytes, an nftables table in
//! the primary's namespace DNATs each new connection to one of the healthy replicas
//! ([`crate::net::nft::read_endpoint_ruleset`]). The replicas' health
//! comes from the same checks as the userspace proxy's ([`super::health`]); the table is
//! rewritten (atomically) whenever the healthy set changes, and removed when the
//! endpoint stops. Connections already made stay on their replica (conntrack), as with
//! the proxy; a replica that leaves the endpoint takes new connections no more.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backend::Backend;
use crate::net::nft;

/// How often the healthy set is compared with the table.
const LOOK_EVERY: Duration = Duration::from_millis(50);
/// How long a table found at start (left by a previous run of the agent) keeps serving
/// before the first health checks could pass: not emptied for replicas not checked yet.
const FIRST_CHECKS: Duration = Duration::from_secs(1);

/// Where a kernel read endpoint's table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The namespace (the agent's own for `None`).
    pub ns: Option<String>,
    /// The table's name ([`nft::read_endpoint_table`]).
    pub name: String,
}

/// Removes the read endpoint tables of this agent (named with `tag`) found in the
/// agent's own namespace but not in `keep`: left by a run of the agent that was killed
/// before it could remove them. A stale table would keep redirecting an address that
/// may since serve something else.
pub async fn remove_stale(tag: String, keep: Vec<String>) {
    let found = match nft::tables(None, &nft::read_endpoint_tables_of(&tag)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the kernel read endpoint tables");
            return;
        }
    };
    for t in found.iter().filter(|t| !keep.contains(t)) {
        match nft::remove_table(None, t).await {
            Ok(()) => tracing::info!(table = %t, "stale kernel read endpoint removed"),
            Err(e) => {
                tracing::warn!(table = %t, error = %format!("{e:#}"), "cannot remove a stale kernel read endpoint")
            }
        }
    }
}

/// Keeps `table`, the endpoint `address:port`, in step with the healthy `backends`
/// until `cancel`, then removes it.
pub async fn serve(
    table: Table,
    address: String,
    port: u16,
    backends: watch::Receiver<Vec<Arc<Backend>>>,
    cancel: CancellationToken,
) {
    let endpoint = format!("{address}:{port}");
    let ns = table.ns.as_deref();
    let mut applied: Option<Vec<(String, u16)>> = None;
    let mut failed = false;
    let started = tokio::time::Instant::now();
    loop {
        let healthy: Vec<(String, u16)> = backends
            .borrow()
            .iter()
            .filter(|b| b.is_healthy())
            .map(|b| (b.address.clone(), b.port))
            .collect();
        let too_early = applied.is_none() && healthy.is_empty() && started.elapsed() < FIRST_CHECKS;
        if applied.as_ref() != Some(&healthy) && !too_early {
            match nft::apply_read_endpoint(ns, &table.name, &address, port, &healthy).await {
                Ok(()) => {
                    tracing::info!(%endpoint, namespace = ?ns, replicas = ?healthy, "kernel read endpoint updated");
                    applied = Some(healthy);
                    failed = false;
                }
                Err(e) if !failed => {
                    tracing::warn!(%endpoint, error = %format!("{e:#}"), "cannot update the kernel read endpoint; will retry");
                    failed = true;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(LOOK_EVERY) => {}
        }
    }
    match nft::remove_table(ns, &table.name).await {
        Ok(()) => tracing::info!(%endpoint, namespace = ?ns, "kernel read endpoint removed"),
        Err(e) => {
            tracing::warn!(%endpoint, error = %format!("{e:#}"), "cannot remove the kernel read endpoint")
        }
    }
}
