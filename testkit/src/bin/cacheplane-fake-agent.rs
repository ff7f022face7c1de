//! `cacheplane-fake-agent`: plays the node agents of registered hosts (fetch the config,
//! report every node up in its role) until an operation is done. The contract test
//! (scripts/schemathesis.sh) seeds READY instances with it, without engines.

use clap::Parser;
use serde_json::json;

use cacheplane_testkit::{Caller, FakeAgent, Fleet};

/// Syncs the fake agents of `--host`s until `--until-done` is done without error.
#[derive(Debug, Parser)]
#[command(name = "cacheplane-fake-agent")]
struct Args {
    /// The API's base URL.
    #[arg(long)]
    api_url: String,
    /// The token the agents send.
    #[arg(long, env = "CACHEPLANE_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// A registered host to play, as `HOST` or `HOST=ZONE` (repeat).
    #[arg(long = "host", required = true)]
    hosts: Vec<String>,
    /// The operation (`projects/P/locations/L/operations/ID`) to wait for.
    #[arg(long)]
    until_done: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let caller = Caller::http(&args.api_url, &args.token);
    let mut fleet = Fleet { agents: Vec::new() };
    for host in &args.hosts {
        let (host, zone) = host.split_once('=').unwrap_or((host, ""));
        fleet
            .agents
            .push(FakeAgent::attach(caller.clone(), host, zone).await);
    }
    let done = fleet.converge_via(&caller, &json!(args.until_done)).await;
    anyhow::ensure!(
        done["error"].is_null(),
        "operation {} failed: {done}",
        args.until_done
    );
    Ok(())
}
