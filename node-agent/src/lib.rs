//! The Cacheplane node agent: registers its host with the API, pulls the host's desired
//! config (the nodes it must run), runs and supervises one `redis-server` per node, and
//! reports what it observes. See docs/architecture.md#node-agent.
//!
//! Layout: [`config`] (flags), [`api`] (the agent protocol), [`store`] (the saved
//! config), [`plan`] (the pure reconcile decision), [`redis`] (engine files, processes,
//! client, INFO), [`adopt`] (taking over running engines at start), [`exits`] (an
//! engine's exit as it happens), [`relink`] (a replica links as soon as its primary
//! listens), [`safety`] (configs not applied without confirmation), [`supervisor`]
//! (observe, plan, apply), [`proxy`] (read endpoints), [`net`] (namespaces, bridges,
//! addresses and firewall of the netns and host modes), [`metrics`] (Prometheus
//! metrics of the nodes and read endpoints), [`agent`] (the loops).

pub mod adopt;
pub mod agent;
pub mod api;
pub mod backoff;
pub mod config;
pub mod exits;
pub mod logtail;
pub mod memcache;
pub mod meminfo;
pub mod metrics;
pub mod net;
pub mod pids;
pub mod plan;
pub mod proxy;
pub mod redis;
pub mod relink;
pub mod safety;
pub mod store;
pub mod supervisor;
pub mod switchover;

#[cfg(test)]
mod testutil;
