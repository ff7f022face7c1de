//! Prometheus metrics of this host's nodes and read endpoints (docs/metrics.md#node-agent).
//!
//! The reconciler already asks every engine for INFO each pass to build its heartbeat
//! reports; it publishes the same reports here ([`Metrics::publish`]), together with the
//! read endpoints' status, and a scrape renders the latest of them ([`encode`]): no
//! engine is asked anything for a scrape, and the figures are at most one pass old.
//! [`serve`] answers `GET /metrics` on `--metrics-address`.

mod encode;
pub mod serve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cacheplane_types::{MemcacheNodeReport, MemcacheNodeSpec, NodeReport, NodeSpec};
use prometheus_client::registry::Registry;
use uuid::Uuid;

use crate::proxy::EndpointStatus;

/// Who a node or endpoint belongs to, from its instance's full name
/// (`projects/{project}/locations/{location}/instances/{instance}`).
///
/// The instance's id goes in `instance_id`, not `instance`: Prometheus gives every
/// scraped series an `instance` label of its own (the target's address) and would rename
/// ours to `exported_instance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The project's id.
    pub project: String,
    /// The location (region).
    pub location: String,
    /// The instance's id.
    pub instance_id: String,
}

impl Owner {
    /// The owner named by an instance's full name; a name of another shape (none is
    /// expected) is kept whole as the instance id.
    pub fn of(instance: &str) -> Owner {
        let parts: Vec<&str> = instance.split('/').collect();
        match parts.as_slice() {
            ["projects", project, "locations", location, "instances" | "memcacheInstances", id] => {
                Owner {
                    project: project.to_string(),
                    location: location.to_string(),
                    instance_id: id.to_string(),
                }
            }
            _ => Owner {
                project: String::new(),
                location: String::new(),
                instance_id: instance.to_string(),
            },
        }
    }
}

/// One node as last observed.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// Its instance.
    pub owner: Owner,
    /// What the last pass reported of it.
    pub report: NodeReport,
}

/// One memcached node as last observed.
#[derive(Debug, Clone, PartialEq)]
pub struct McSample {
    /// Its instance.
    pub owner: Owner,
    /// What the last pass reported of it.
    pub report: MemcacheNodeReport,
}

/// What the last reconcile pass saw, for the next scrapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Every node the agent runs or is stopping.
    pub nodes: Vec<NodeSample>,
    /// Every read endpoint the agent serves.
    pub endpoints: Vec<(Owner, EndpointStatus)>,
    /// Every memcached node the agent runs or is stopping.
    pub memcache: Vec<McSample>,
}

impl Snapshot {
    /// The snapshot of one pass: `reports` labelled with the instance of their node in
    /// `specs` (the desired nodes and those still being stopped), and `endpoints`.
    /// A report whose node no spec names (none is expected) is left out.
    pub fn of<'a>(
        specs: impl IntoIterator<Item = &'a NodeSpec>,
        reports: &[NodeReport],
        endpoints: Vec<EndpointStatus>,
    ) -> Snapshot {
        Self::labelled(
            specs.into_iter().map(|s| (s.node_id, s.instance.as_str())),
            reports,
            endpoints,
        )
    }

    /// [`Snapshot::of`] with each node's instance given by `(node id, instance name)`.
    pub fn labelled<'a>(
        instances: impl IntoIterator<Item = (Uuid, &'a str)>,
        reports: &[NodeReport],
        endpoints: Vec<EndpointStatus>,
    ) -> Snapshot {
        let instance_of: HashMap<Uuid, &str> = instances.into_iter().collect();
        let nodes = reports
            .iter()
            .filter_map(|r| {
                let instance = instance_of.get(&r.node_id)?;
                Some(NodeSample {
                    owner: Owner::of(instance),
                    report: r.clone(),
                })
            })
            .collect();
        let endpoints = endpoints
            .into_iter()
            .map(|e| (Owner::of(&e.instance), e))
            .collect();
        Snapshot {
            nodes,
            endpoints,
            memcache: Vec::new(),
        }
    }

    /// This snapshot with the memcached nodes' `reports`, labelled with the instance of
    /// their node in `specs` (desired, and those still being stopped).
    pub fn with_memcache<'a>(
        mut self,
        specs: impl IntoIterator<Item = &'a MemcacheNodeSpec>,
        reports: &[MemcacheNodeReport],
    ) -> Snapshot {
        let instance_of: HashMap<Uuid, &str> = specs
            .into_iter()
            .map(|s| (s.node_id, s.instance.as_str()))
            .collect();
        self.memcache = reports
            .iter()
            .filter_map(|r| {
                Some(McSample {
                    owner: Owner::of(instance_of.get(&r.node_id)?),
                    report: r.clone(),
                })
            })
            .collect();
        self
    }
}

/// The agent's metrics: the latest snapshot, and the registry that renders it.
#[derive(Debug, Clone)]
pub struct Metrics {
    latest: Arc<Mutex<Snapshot>>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty: no node until the first [`Metrics::publish`].
    pub fn new() -> Metrics {
        let latest = Arc::new(Mutex::new(Snapshot::default()));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(encode::Collector::new(latest.clone())));
        Metrics {
            latest,
            registry: Arc::new(registry),
        }
    }

    /// Replaces what the next scrapes show.
    pub fn publish(&self, snapshot: Snapshot) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// The latest snapshot in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a String cannot fail; a collector's error would be a bug.
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests;
