//! Helpers shared by the integration tests that drive real `redis-server`s on
//! 127.78.x.y addresses.

#![allow(dead_code)] // each test file uses its own part

pub mod fake_api;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cacheplane_node_agent::redis::acl::{self, Login};
use cacheplane_node_agent::redis::client::{Client, ClientError, Reply};
use cacheplane_node_agent::redis::observe::Info;
use cacheplane_node_agent::redis::{process, NodeDir};
use cacheplane_testkit::wait::ready_if;
use cacheplane_types::{NodeRole, NodeSpec, Secret};
use uuid::Uuid;

/// The auth string of the test instances.
pub const AUTH: &str = "it-secret-pw";
/// The admin secret of the test instances (the agent's engine user).
pub const ADMIN: &str = "it-admin-secret";

/// The tenant's login: the default user with the AUTH string.
pub fn tenant_login() -> Login {
    Login {
        user: "default".into(),
        password: Secret::new(AUTH),
    }
}

/// The agent's login.
pub fn admin_login() -> Login {
    Login {
        user: acl::AGENT_USER.into(),
        password: Secret::new(ADMIN),
    }
}

/// Sets up logging and answers the `redis-server` binary; fails the test when it is
/// not installed (a test that cannot run must not pass).
#[macro_export]
macro_rules! require_redis {
    () => {{
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .try_init();
        cacheplane_testkit::process::require_redis_server()
    }};
}

/// A data dir whose engines are killed and files removed when the test ends, pass or
/// fail.
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("cacheplane-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creates the data dir");
        DataDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        cacheplane_testkit::process::kill_engines(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An address in 127.78.0.0/16 that concurrent test runs are unlikely to share.
pub fn address(n: u8) -> String {
    format!("127.78.{}.{n}", std::process::id() % 250 + 1)
}

/// A STANDARD_HA node at `address(n)`; a replica follows `of`.
pub fn spec(n: u8, role: NodeRole, of: Option<&NodeSpec>) -> NodeSpec {
    NodeSpec {
        network: None,
        switchover: None,
        node_id: Uuid::new_v4(),
        instance: "projects/p/locations/local/instances/it".into(),
        engine_version: "REDIS_7_0".into(),
        role,
        address: address(n),
        port: 6379,
        endpoint_address: None,
        primary_address: of.map(|p| p.address.clone()),
        maxmemory_bytes: 64 << 20,
        redis_configs: BTreeMap::from([("maxmemory-policy".into(), "allkeys-lru".into())]),
        read_endpoint: None,
        restart_in_place: false,
        auth_string: Some(AUTH.into()),
        admin_secret: Some(Secret::new(ADMIN)),
        write_fence: None,
        tls: None,
    }
}

/// Starts the engine of `s` under `data`.
pub async fn start(bin: &Path, data: &DataDir, s: &NodeSpec) {
    process::start(bin, s, &NodeDir::new(data.path(), s.node_id))
        .await
        .unwrap_or_else(|e| panic!("{} starts: {e}", s.address));
}

/// A connection to `host:6379` as the agent's user.
pub async fn connect(host: &str) -> Client {
    Client::connect(host, 6379, Some(&admin_login()))
        .await
        .unwrap_or_else(|e| panic!("connects to {host}: {e}"))
}

/// `INFO section` over `c`.
pub async fn info(c: &mut Client, section: &str) -> Result<Info, ClientError> {
    match c.call(&["INFO", section]).await? {
        Reply::Bulk(Some(b)) => Ok(Info::parse(&String::from_utf8_lossy(&b))),
        other => Err(ClientError::Protocol(format!("INFO answered {other:?}"))),
    }
}

/// The `run_id` of the engine behind `c`.
pub async fn run_id(c: &mut Client) -> String {
    info(c, "server")
        .await
        .expect("INFO server")
        .get("run_id")
        .expect("a run_id")
        .to_string()
}

/// Waits (up to `secs` seconds, looking every 50 ms) until `check` is true: the test
/// kit's `wait_until` for a plain condition.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let limit = Duration::from_secs(secs);
    cacheplane_testkit::wait_until(what, limit, Duration::from_millis(50), || {
        let done = check();
        async { ready_if::<String, _>(done.await, || "still false") }
    })
    .await
}

/// Whether the replica at `host` is linked to its primary.
pub async fn linked(host: &str) -> bool {
    let Ok(mut c) = Client::connect(host, 6379, Some(&admin_login())).await else {
        return false;
    };
    info(&mut c, "replication")
        .await
        .is_ok_and(|i| i.get("master_link_status") == Some("up"))
}

/// Whether `primary`'s engine lists `replica` as an online replica: it then counts it
/// for its write fence (a replica reports its link up a little before that).
pub async fn listed_online(primary: &NodeSpec, replica: &NodeSpec) -> bool {
    let Ok(mut c) = Client::connect(&primary.address, primary.port, Some(&admin_login())).await
    else {
        return false;
    };
    info(&mut c, "replication").await.is_ok_and(|i| {
        cacheplane_node_agent::relink::lists_online(&i, &replica.address, replica.port)
    })
}

/// The agent's flags for host `host` with data in `data`, against `api_url`, passes and
/// heartbeats every `interval`.
pub fn agent_config(
    api_url: &str,
    host: &str,
    data: &DataDir,
    bin: &Path,
    interval: &str,
) -> cacheplane_node_agent::config::Config {
    agent_config_at(api_url, host, data.path(), bin, interval)
}

/// [`agent_config`] with the data in directory `data`.
pub fn agent_config_at(
    api_url: &str,
    host: &str,
    data: &Path,
    bin: &Path,
    interval: &str,
) -> cacheplane_node_agent::config::Config {
    let data_dir = data.to_string_lossy().into_owned();
    let bin_path = bin.to_string_lossy().into_owned();
    <cacheplane_node_agent::config::Config as clap::Parser>::try_parse_from([
        "agent",
        "--api-url",
        api_url,
        "--zone",
        "z",
        "--host-id",
        host,
        "--data-dir",
        &data_dir,
        "--redis-server",
        &bin_path,
        "--memory-bytes",
        "1073741824",
        "--heartbeat-interval",
        interval,
    ])
    .map(|c| cacheplane_node_agent::config::Config {
        token: cacheplane_types::secret::Secret::new("t"),
        ..c
    })
    .expect("flags parse")
}

/// `CONFIG GET key` over `c`.
pub async fn config_get(c: &mut Client, key: &str) -> String {
    match c.call(&["CONFIG", "GET", key]).await.expect("CONFIG GET") {
        Reply::Array(Some(items)) => match items.get(1) {
            Some(Reply::Bulk(Some(v))) => String::from_utf8_lossy(v).into_owned(),
            other => panic!("unexpected CONFIG GET item {other:?}"),
        },
        other => panic!("unexpected CONFIG GET reply {other:?}"),
    }
}

/// What a write of `probe` on `host` answers: `Ok` or the engine's error.
pub async fn try_write(host: &str) -> Result<(), String> {
    let mut c = connect(host).await;
    match c.call(&["SET", "probe", "1"]).await {
        Ok(_) => Ok(()),
        Err(ClientError::Server(m)) => Err(m),
        Err(e) => Err(e.to_string()),
    }
}
