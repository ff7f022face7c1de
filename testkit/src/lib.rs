//! The test kit of the Cacheplane workspace (dev-only, never published): what the API,
//! CLI, agent and bench tests share.
//!
//! - [`db`]: a throwaway database per test in the `DATABASE_URL` cluster ([`TestDb`]).
//! - [`net`]: free ports, and a 127.X.0.0/16 of a test's own ([`net::private_supernet`]).
//! - [`netns`]: for netns-mode tests: can they run here, a guard deleting their
//!   namespaces and links, clients inside a namespace.
//! - [`wait`]: the one polling helper, [`wait_until`], which tells "not yet" from a
//!   permanent failure and returns the value it waited for.
//! - [`json`]: field access that fails naming the missing field and showing the document.
//! - [`memcache`]: a Memcached text-protocol client: discovery (`config get cluster`)
//!   and a ketama-style consistent hash ring over the nodes.
//! - [`api`]: the API server, as a child process or in-process on the router ([`Api`]),
//!   and a cloneable handle for requests ([`Caller`]).
//! - [`agent`]: a real `cacheplane-node-agent` process and the engines it starts.
//! - [`fake_agent`]: a node agent that plays the protocol without engines ([`Fleet`]).
//! - [`stack`]: the API plus three real agents, and `redis-cli`.
//! - [`resp`]: the RESP client (the agent's own) and what tests read from replies.
//! - [`process`]: built binaries, log tails, pids.
//! - [`writer`]: a client writing through `host:port` that counts failed and lost writes.
//! - [`chaos`]: freezing processes (SIGSTOP, always resumed) and the questions the chaos
//!   tests ask the API.
//! - [`pg`]: a PostgreSQL cluster of a test's own, for tests that stop it.
//!
//! ```ignore
//! let db = TestDb::new().await;
//! let api = Api::in_process(&db).await; // or Api::start(&db) for a real process
//! let mut fleet = Fleet::three_zones(&api, 8 * GIB).await;
//! let (status, body) = api.get("/v1/regions").await;
//! ```

pub mod agent;
pub mod api;
pub mod chaos;
pub mod db;
pub mod fake_agent;
pub mod json;
pub mod memcache;
pub mod net;
pub mod netns;
pub mod pg;
pub mod process;
pub mod resp;
pub mod stack;
pub mod wait;
pub mod writer;

pub use api::{Api, Caller};
pub use db::TestDb;
pub use fake_agent::{FakeAgent, Fleet};
pub use wait::{wait_until, Poll};

/// Bytes in one GiB (`memorySizeGb` is GiB).
pub const GIB: i64 = 1 << 30;
