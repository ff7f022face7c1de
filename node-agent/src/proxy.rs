//! Read endpoints (docs/architecture.md#read-replicas). The agent of an instance's primary node
//! serves its read endpoint: a TCP proxy on the endpoint's address and port that spreads
//! client *connections* over the instance's healthy replicas.
//!
//! - Each new connection goes to the healthy replica with the fewest connections, ties
//!   round-robin ([`choose`]); never to the primary, never to a replica whose link is
//!   down or that is in a full sync (checked every 250 ms, see [`health`]). With no
//!   healthy replica, a new connection is closed at once.
//! - A connection stays on its replica for its life: plain bidirectional copying, large
//!   buffers, `TCP_NODELAY` on both sides, no parsing.
//! - A replica that leaves the config (removed, or promoted) has its connections closed;
//!   an endpoint that leaves it (the primary moved to another host, the instance was
//!   deleted) stops listening and closes all of its connections.
//!
//! In netns mode, and in host or loopback mode where the agent is told to
//! (`--read-endpoint kernel`), the kernel serves the endpoint instead ([`kernel`]:
//! nftables DNAT in the primary's namespace, rewritten as the replicas' health changes),
//! with the same health checks and the same rules, except that a replica leaving the
//! endpoint keeps the connections it has (conntrack) rather than having them closed.
//!
//! The relays run on a small runtime of their own, started with the first endpoint, so
//! that the agent's control work (files, fsync, process starts) never stalls the data
//! path, and an agent without read endpoints costs nothing more.

mod backend;
mod endpoint;
pub mod health;
mod idle;
mod kernel;
mod limits;

use std::collections::BTreeMap;

use crate::redis::acl::{self, Login};
use cacheplane_types::NodeSpec;
use tokio::runtime::{Handle, Runtime};

use crate::net::dial::Dialer;
use crate::net::Net;

pub use backend::{choose, Candidate};
use endpoint::Endpoint;
pub use limits::{Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS};

/// Default of `--read-endpoint-threads`: worker threads of the proxy runtime.
pub const DEFAULT_THREADS: usize = 2;

/// What one read endpoint must serve.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The instance whose read endpoint it is (its full name), for metrics and logs.
    pub instance: String,
    /// The replicas, `(address, port)`.
    pub replicas: Vec<(String, u16)>,
    /// How the health checks log in to the replicas (the agent's engine user).
    pub auth: Vec<Login>,
    /// Where it listens and dials its replicas from: the primary's namespace.
    pub dialer: Dialer,
    /// The instance's CA (PEM) when its engines serve TLS only: the health checks dial
    /// the replicas over TLS. Client connections pass through as bytes, TLS and all.
    pub tls_ca: Option<String>,
}

impl std::fmt::Debug for EndpointConfig {
    // Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("instance", &self.instance)
            .field("replicas", &self.replicas)
            .field(
                "auth",
                &self.auth.iter().map(|l| &l.user).collect::<Vec<_>>(),
            )
            .field("dialer", &self.dialer)
            .field("tls", &self.tls_ca.is_some())
            .finish()
    }
}

/// The read endpoints `nodes` ask this host to serve, by `(address, port)`: those of
/// its primaries. The node itself and its primary endpoint are never backends.
pub fn desired(nodes: &[NodeSpec]) -> BTreeMap<(String, u16), EndpointConfig> {
    desired_in(nodes, &Net::loopback())
        .into_iter()
        .map(|((_, address, port), c)| ((address, port), c))
        .collect()
}

/// A read endpoint by namespace (networks' pools may overlap), address and port.
pub type EndpointKey = (Option<String>, String, u16);

/// [`desired`], each endpoint in its primary's namespace as `net` places it.
pub fn desired_in(nodes: &[NodeSpec], net: &Net) -> BTreeMap<EndpointKey, EndpointConfig> {
    let mut out = BTreeMap::new();
    for spec in nodes {
        let Some(re) = &spec.read_endpoint else {
            continue;
        };
        let replicas = re
            .replicas
            .iter()
            .filter(|a| **a != spec.address && Some(*a) != spec.endpoint_address.as_ref())
            .map(|a| (a.clone(), spec.port))
            .collect();
        out.insert(
            (net.netns_of(spec), re.address.clone(), re.port),
            EndpointConfig {
                instance: spec.instance.clone(),
                replicas,
                auth: acl::logins(&[spec]),
                dialer: net.dialer(spec),
                tls_ca: crate::redis::tls::ca_of(spec).map(str::to_string),
            },
        );
    }
    out
}

/// A read endpoint's state, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The instance it serves (its full name).
    pub instance: String,
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Whether it listens.
    pub listening: bool,
    /// Served by the kernel (nftables DNAT; see `--read-endpoint`) rather than relayed in userspace:
    /// then no connection is counted.
    pub kernel: bool,
    /// Client connections the userspace proxy holds now (always 0 on the kernel path).
    pub connections: usize,
    /// Client connections refused at the cap so far.
    pub refused: u64,
    /// Its replicas.
    pub backends: Vec<BackendStatus>,
}

/// A replica behind a read endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Whether it takes new connections.
    pub healthy: bool,
    /// Client connections it serves.
    pub connections: usize,
}

/// The read endpoints this agent serves.
pub struct ReadEndpoints {
    runtime: Option<Runtime>,
    endpoints: BTreeMap<EndpointKey, Endpoint>,
    net: Option<Net>,
    limits: Limits,
    threads: usize,
    /// Whether the kernel serves the endpoints of the agent's own namespace.
    kernel: bool,
    /// Whether stale tables of an earlier run were looked for.
    swept: bool,
}

impl ReadEndpoints {
    /// None yet.
    pub fn new() -> Self {
        ReadEndpoints {
            runtime: None,
            endpoints: BTreeMap::new(),
            net: None,
            limits: Limits::default(),
            threads: DEFAULT_THREADS,
            kernel: false,
            swept: false,
        }
    }

    /// None yet; endpoints will listen in their primaries' namespaces as `net` says.
    pub fn with_net(net: Net) -> Self {
        let mut e = Self::new();
        e.net = Some(net);
        e
    }

    /// The same, with the userspace proxy's connection cap and idle timeout (for
    /// endpoints started from now on).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same, with `threads` (at least 1) worker threads for the proxy runtime,
    /// once it starts.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The same, with the endpoints of the agent's own namespace (loopback and host
    /// modes) served by the kernel (`kernel`, which needs root) rather than the
    /// userspace proxy. Netns mode's endpoints are the kernel's either way.
    pub fn with_kernel(mut self, kernel: bool) -> Self {
        self.kernel = kernel;
        self
    }

    /// Serves the read endpoints `nodes` ask for: starts new ones, updates the replicas
    /// of the others, stops those no longer asked for, and retries listening where it
    /// failed before. Cheap when nothing changed: call it every pass.
    pub fn update(&mut self, nodes: &[NodeSpec]) {
        let net = self.net.clone().unwrap_or_else(Net::loopback);
        let tag = net.names().tag();
        let want = desired_in(nodes, &net);
        self.endpoints.retain(|key, _| want.contains_key(key));
        // As root, whatever serves the endpoints now, this host's tables that a run of the
        // agent left (a kernel endpoint outlives its agent on purpose) and that it does
        // not serve go at the first pass: they would redirect addresses given out since.
        let sweep = !self.swept && (self.kernel || nix::unistd::geteuid().is_root());
        if want.is_empty() && !sweep {
            return;
        }
        let handle = match self.handle() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the read endpoint runtime");
                return;
            }
        };
        let kernel_here = self.kernel;
        let table = |(ns, address, port): &EndpointKey, config: &EndpointConfig| {
            let name = crate::net::nft::read_endpoint_table(&tag, address, *port);
            match config.dialer.netns() {
                Some(ns) => Some(kernel::Table {
                    ns: Some(ns.to_string()),
                    name,
                }),
                None if kernel_here => Some(kernel::Table {
                    ns: ns.clone(),
                    name,
                }),
                None => None,
            }
        };
        if sweep {
            self.swept = true;
            let keep = want
                .iter()
                .filter_map(|(k, c)| table(k, c))
                .filter(|t| t.ns.is_none())
                .map(|t| t.name)
                .collect::<Vec<_>>();
            handle.spawn(kernel::remove_stale(tag.clone(), keep));
        }
        for (key, config) in want {
            let e = match self.endpoints.entry(key) {
                std::collections::btree_map::Entry::Occupied(o) => {
                    let e = o.into_mut();
                    e.set(config);
                    e
                }
                std::collections::btree_map::Entry::Vacant(v) => {
                    let kernel = table(v.key(), &config);
                    let (_, address, port) = v.key().clone();
                    v.insert(Endpoint::new(
                        address,
                        port,
                        config,
                        self.limits,
                        kernel,
                        handle.clone(),
                    ))
                }
            };
            e.listen();
        }
    }

    /// The endpoints served now.
    pub fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints.values().map(Endpoint::status).collect()
    }

    fn handle(&mut self) -> std::io::Result<Handle> {
        if let Some(rt) = &self.runtime {
            return Ok(rt.handle().clone());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads.max(1))
            .thread_name("read-endpoint")
            .enable_all()
            .build()?;
        let h = rt.handle().clone();
        self.runtime = Some(rt);
        Ok(h)
    }
}

impl Default for ReadEndpoints {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ReadEndpoints {
    /// Stops every endpoint; the runtime goes without blocking (this may run inside the
    /// agent's own runtime).
    fn drop(&mut self) {
        self.endpoints.clear();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests;
