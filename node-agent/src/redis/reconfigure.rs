//! Online changes to a running engine (CONFIG SET, REPLICAOF): no restart, no data loss.

use std::collections::BTreeSet;

use cacheplane_types::{redis_config, NodeRole, NodeSpec};

use super::acl;
use super::client::{Client, ClientError};
use super::conf;
use crate::plan::Change;

/// Why an online change failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ReconfigureError {
    /// The step that failed, e.g. `CONFIG SET maxmemory`.
    pub what: String,
    /// The engine's answer.
    #[source]
    pub source: ClientError,
}

impl ReconfigureError {
    /// Whether trying again later may work: a lost connection, or an address still held
    /// by another engine (the old primary during a failover). An engine refusing a value
    /// is not transient.
    pub fn is_transient(&self) -> bool {
        !matches!(self.source, ClientError::Server(_))
            || self.source.is_busy()
            || self.what.contains("bind")
            || self.what.contains("port")
    }
}

async fn set(c: &mut Client, key: &str, value: &str) -> Result<(), ReconfigureError> {
    c.config_set(key, value)
        .await
        .map_err(|source| ReconfigureError {
            what: format!("CONFIG SET {key}"),
            source,
        })
}

/// Applies `what` so that the engine behind `c` runs `spec`; `previous` is the spec it
/// ran before (to reset removed settings), if known.
pub async fn apply(
    c: &mut Client,
    spec: &NodeSpec,
    previous: Option<&NodeSpec>,
    what: &BTreeSet<Change>,
) -> Result<(), ReconfigureError> {
    if what.contains(&Change::Auth) {
        auth(c, spec).await?;
    }
    if what.contains(&Change::Maxmemory) {
        set(c, "maxmemory", &conf::effective_maxmemory(spec).to_string()).await?;
    }
    if what.contains(&Change::Configs) {
        for (k, v) in conf::passthrough_configs(spec) {
            set(c, k, v).await?;
        }
        if let Some(old) = previous {
            for (k, _) in conf::passthrough_configs(old) {
                if spec.redis_configs.contains_key(k) {
                    continue;
                }
                match redis_config::config_key(k).and_then(|key| key.default) {
                    Some(default) => set(c, k, default).await?,
                    None => tracing::warn!(
                        key = k,
                        "no default known for a removed setting; left as it was"
                    ),
                }
            }
        }
    }
    // Promotion: fence first (a replica takes no writes anyway), stop replicating before
    // taking the endpoint, so that no client reaches it while it is still read-only.
    // Demotion: give up the endpoint first, lift the fence last, once it is a replica.
    if spec.role == NodeRole::Primary {
        fence(c, spec, what).await?;
        replication(c, spec, what).await?;
        bind(c, spec, previous, what).await?;
    } else {
        bind(c, spec, previous, what).await?;
        replication(c, spec, what).await?;
        fence(c, spec, what).await?;
    }
    Ok(())
}

/// The engine's users (or, before the lockdown, its passwords): see [`acl::apply`].
async fn auth(c: &mut Client, spec: &NodeSpec) -> Result<(), ReconfigureError> {
    acl::apply(c, spec).await.map_err(|e| ReconfigureError {
        what: e.what.to_string(),
        source: e.source,
    })
}

async fn fence(
    c: &mut Client,
    spec: &NodeSpec,
    what: &BTreeSet<Change>,
) -> Result<(), ReconfigureError> {
    if what.contains(&Change::Fence) {
        let (min_replicas, max_lag) = conf::write_fence(spec);
        set(c, "min-replicas-max-lag", &max_lag.to_string()).await?;
        set(c, "min-replicas-to-write", &min_replicas.to_string()).await?;
    }
    Ok(())
}

async fn bind(
    c: &mut Client,
    spec: &NodeSpec,
    previous: Option<&NodeSpec>,
    what: &BTreeSet<Change>,
) -> Result<(), ReconfigureError> {
    if what.contains(&Change::Bind) {
        if previous.is_some_and(|p| p.port != spec.port) {
            let key = if spec.tls.is_some() {
                "tls-port"
            } else {
                "port"
            };
            set(c, key, &spec.port.to_string()).await?;
        }
        set(c, "replica-announce-ip", &spec.address).await?;
        set(c, "bind", &conf::bind_addresses(spec).join(" ")).await?;
    }
    Ok(())
}

async fn replication(
    c: &mut Client,
    spec: &NodeSpec,
    what: &BTreeSet<Change>,
) -> Result<(), ReconfigureError> {
    // A replica told no primary (one is being replaced) keeps following its old one.
    let orphan = spec.role == NodeRole::Replica && conf::replicaof(spec).is_none();
    if what.contains(&Change::Replication) && !orphan {
        let target = conf::replicaof(spec);
        let what = match target {
            Some((h, p)) => format!("REPLICAOF {h} {p}"),
            None => "REPLICAOF NO ONE".to_string(),
        };
        c.replicaof(target)
            .await
            .map_err(|source| ReconfigureError { what, source })?;
    }
    Ok(())
}
