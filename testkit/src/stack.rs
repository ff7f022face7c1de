//! The real stack: the API as a process, real `cacheplane-node-agent` processes and the
//! `redis-server`s they run, with `redis-cli` to check them as a user would.
//!
//! Each test gets its own 127.X.0.0/16 for instance addresses (the project's default
//! network; see [`crate::net::private_supernet`]), so tests running in parallel never
//! bind the same address.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use crate::agent::{Agent, AgentOptions};
use crate::api::{Api, Caller};
use crate::db::TestDb;
use crate::net::private_supernet;
use crate::wait::{try_wait_until, wait_until, Poll, WaitError};

/// How long the hosts may take to come UP.
pub const HOSTS_UP_TIMEOUT: Duration = Duration::from_secs(60);

/// An API process whose projects' default networks come from this test's own /16 (held
/// by the returned listener).
pub async fn start_api(db: &TestDb, extra: &[&str]) -> (Api, TcpListener) {
    let (supernet, guard) = private_supernet();
    let mut args = vec!["--default-network-supernet", &supernet];
    args.extend_from_slice(extra);
    (Api::start_with_args(db, &args).await, guard)
}

/// `n` API processes on one database (the same admin token and `extra` flags, each on a
/// port of its own), whose projects' default networks come from this test's own /16
/// (held by the returned listener): replicas of one API.
pub async fn start_api_replicas(db: &TestDb, n: usize, extra: &[&str]) -> (Vec<Api>, TcpListener) {
    let (first, guard) = start_api(db, extra).await;
    let mut apis = vec![first];
    for _ in 1..n {
        let replica = apis[0].start_replica(db).await;
        apis.push(replica);
    }
    (apis, guard)
}

/// The replicas' base URLs as one comma-separated list, as `--api-url` and
/// `CACHECTL_API_URL` take it.
pub fn api_urls(apis: &[Api]) -> String {
    let bases: Vec<&str> = apis.iter().map(|a| a.base.as_str()).collect();
    bases.join(",")
}

/// Three agents (the workspace's binary, 250 ms heartbeats), host-a/b/c in
/// local-a/b/c, once all three are registered and UP.
pub async fn three_agents(api: &Api, memory_bytes: i64) -> Vec<Agent> {
    three_agents_with(api, memory_bytes, &[]).await
}

/// [`three_agents`] given every replica of `apis` (`--api-url` the list of
/// [`api_urls`], in that order: they talk to the first until it fails).
pub async fn three_agents_on_replicas(apis: &[Api], memory_bytes: i64) -> Vec<Agent> {
    three_agents_at(&apis[0], &api_urls(apis), memory_bytes, &[]).await
}

/// [`three_agents`] with `args` added to each agent's command line (e.g.
/// `--network-mode netns --netns-prefix t1ab`).
pub async fn three_agents_with(api: &Api, memory_bytes: i64, args: &[&str]) -> Vec<Agent> {
    three_agents_at(api, &api.base, memory_bytes, args).await
}

/// Three agents speaking to `api_url` (one URL or a list) with `api`'s admin token,
/// waited for through `api`.
async fn three_agents_at(api: &Api, api_url: &str, memory_bytes: i64, args: &[&str]) -> Vec<Agent> {
    let mut agents: Vec<Agent> = ["a", "b", "c"]
        .iter()
        .map(|z| {
            let options = AgentOptions::for_tests(
                api_url,
                &api.admin_token,
                &format!("host-{z}"),
                &format!("local-{z}"),
                memory_bytes,
            )
            .with_args(args);
            Agent::spawn(options).unwrap_or_else(|e| panic!("starting agent host-{z}: {e}"))
        })
        .collect();
    wait_hosts_up(&api.caller(), &mut agents, 3)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    agents
}

/// Waits until `n` hosts are registered and UP; fails at once when one of `agents`
/// exits.
pub async fn wait_hosts_up(
    api: &Caller,
    agents: &mut [Agent],
    n: usize,
) -> Result<(), WaitError<String>> {
    let what = format!("{n} hosts are UP");
    try_wait_until(&what, HOSTS_UP_TIMEOUT, Duration::from_millis(50), || {
        let exited = agents.iter_mut().find_map(Agent::exited);
        async move {
            if let Some(msg) = exited {
                return Err(Poll::Permanent(msg));
            }
            let (status, body) = api.req(reqwest::Method::GET, "/v1/hosts", None).await;
            let up = body["hosts"]
                .as_array()
                .map_or(0, |h| h.iter().filter(|h| h["state"] == "UP").count());
            if status == 200 && up >= n {
                Ok(())
            } else {
                Err(Poll::NotYet(format!("{up} UP: {status} {body}")))
            }
        }
    })
    .await
}

/// Runs `redis-cli -h host -p port [-a auth] ARGS…` and returns its trimmed output
/// (errors included, as a user sees them).
pub fn redis_cli(host: &str, port: u16, auth: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", host, "-p", &port.to_string(), "--no-auth-warning"]);
    if let Some(a) = auth {
        cmd.env("REDISCLI_AUTH", a);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim().to_string()
}

/// Polls `check` every 100 ms until it returns true, for at most `limit`: the
/// [`wait_until`] of a plain condition.
pub async fn eventually<F: FnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    wait_until(what, limit, Duration::from_millis(100), || {
        let done = check();
        async move { crate::wait::ready_if::<String, _>(done, || "still false") }
    })
    .await
}
