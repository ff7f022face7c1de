//! `cachectl local …`: the embedded default stack on this machine. A private PostgreSQL
//! cluster, `cacheplane-api` and three `cacheplane-node-agent`s (zones local-a, local-b
//! and local-c of region `local`, loopback mode), each a background process with a pid
//! file and a log file in the stack's data directory:
//!
//! ```text
//! DATA_DIR                  $XDG_DATA_HOME/cacheplane, else ~/.local/share/cacheplane
//!   admin-token             the API's admin token (generated once, mode 600)
//!   api.pid api.log api.listen  api.listen: every replica's address, comma-separated
//!   api-R.pid api-R.log     API replica R (2, 3, …) with --api-replicas
//!   pg.dir                  where the PostgreSQL cluster is (next line)
//!   demo-auth               the demo instance's AUTH string (`local demo`, mode 600)
//!   agents/HOST.pid HOST.log
//!   agents/HOST/            the agent's data dir: nodes/ID/ per redis-server
//! PG_DIR                    DATA_DIR/pg; as root, when the postgres user cannot reach
//!                           DATA_DIR, /var/lib/cacheplane/pg
//!   data/ postgres.log initdb.log
//! ```
//!
//! The same layout and ports as the earlier scripts/dev.sh, which now drives this. One
//! module per part: `layout` (where the files are), `up` and `down`, `postgres` (the
//! cluster), `api` and `agents` (starting them and waiting for them), `daemon` (keeping
//! or restarting a background part), `process` (pids and signals), `token`, `config`
//! (pointing cachectl at the stack), `status`, `demo` (the demo cache of scripts/dev.sh)
//! and `postgres_command` (the hidden `local postgres` of scripts/lib/pg.sh).

mod agents;
mod api;
mod config;
mod daemon;
mod demo;
mod down;
mod layout;
mod postgres;
mod postgres_command;
mod process;
mod status;
mod token;
mod up;

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use super::parse_duration;
use crate::error::Result;
use crate::output::{emit, Format};

use layout::Layout;
use status::Status;

/// The project `local up` configures when none is set (the one scripts/dev.sh uses).
const DEFAULT_PROJECT: &str = "demo-project";
/// The local stack's only region.
const REGION: &str = "local";

/// The local stack: PostgreSQL, the API and three node agents on this machine.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Starts the local stack, or reuses what already runs, waits until the API is ready
    /// and its three hosts are UP, and points cachectl at it.
    ///
    /// Initializes a private PostgreSQL cluster the first time (initdb; as root it runs as
    /// the postgres user), generates the admin token once (mode 600; handed to the API
    /// and the agents through their environment, never a command line), then starts
    /// cacheplane-api and the agents local-a-1, local-b-1 and local-c-1 (found next to
    /// cachectl or on PATH) in the background, each with its log file. A part that runs
    /// is kept unless its binary was rebuilt or its settings changed. Finally writes the
    /// API URL, the admin token, a project (demo-project unless one is set) and region
    /// `local` to the configuration file, and shows what runs.
    ///
    /// Needs PostgreSQL's server programs (initdb, pg_ctl) and redis-server; root is not
    /// needed.
    #[command(after_help = "Examples:\n  \
        cachectl local up\n  \
        cachectl local up --api-port 8081 --pg-port 54330\n  \
        cachectl local up --api-replicas 2\n  \
        cachectl local up --format json | jq '.parts[] | {name, pid}'\n  \
        cachectl local up && cachectl instances create my-cache --tier standard-ha --replica-count 2")]
    Up(UpArgs),
    /// Stops the local stack: the agents, the redis-servers they started, the API and
    /// PostgreSQL, leaving nothing running. The caches keep no data on disk; PostgreSQL's
    /// data stays for the next `local up`.
    #[command(after_help = "Examples:\n  \
        cachectl local down")]
    Down(Dirs),
    /// Shows each part of the local stack: running or stopped, pid, address, health
    /// (API ready, hosts UP, redis-servers) and log file. Exits 0 either way.
    #[command(after_help = "Examples:\n  \
        cachectl local status\n  \
        cachectl local status --format json | jq .apiReady")]
    Status(Dirs),
    /// Makes sure the local stack has a demo cache that answers, and prints the
    /// redis-cli line that pings it (scripts/dev.sh runs this).
    ///
    /// The demo cache is the STANDARD_HA instance `demo` with two replicas in project
    /// demo-project, region local. Creates it unless it exists; waits (60 s) for one that
    /// exists to be READY, and replaces it when it cannot get there by itself (FAILED, or
    /// its primary down for 10 s with no failover, as after `local down` emptied its
    /// caches).
    ///
    /// Then writes its AUTH string to DATA_DIR/demo-auth (mode 600) and shows the
    /// instance; the last line of the table output is the redis-cli command that pings
    /// it, reading the AUTH string from that file (scripts/dev.sh runs it).
    #[command(after_help = "Examples:\n  \
        cachectl local up && cachectl local demo\n  \
        cachectl local demo --format json | jq -r .redisCli")]
    Demo(Dirs),
    /// A PostgreSQL cluster of its own in a directory, for scripts/lib/pg.sh.
    #[command(subcommand, hide = true)]
    Postgres(postgres_command::Command),
}

/// Where the local stack keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct Dirs {
    /// The stack's data directory [default: $XDG_DATA_HOME/cacheplane, else
    /// ~/.local/share/cacheplane].
    #[arg(long, env = "CACHECTL_LOCAL_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL's directory (the cluster in DIR/data) [default: the one used last, else
    /// DATA_DIR/pg; as root, when the postgres user cannot reach DATA_DIR,
    /// /var/lib/cacheplane/pg].
    #[arg(long, env = "CACHECTL_LOCAL_PG_DIR", value_name = "DIR")]
    pub pg_dir: Option<PathBuf>,
}

/// `local up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub dirs: Dirs,
    /// PostgreSQL's port on 127.0.0.1 (a cluster that already runs keeps its port).
    #[arg(long, env = "CACHECTL_LOCAL_PG_PORT", default_value_t = 54329)]
    pub pg_port: u16,
    /// The API's port on 127.0.0.1 (its replicas take the next ports).
    #[arg(long, env = "CACHECTL_LOCAL_API_PORT", default_value_t = 8080)]
    pub api_port: u16,
    /// How many API processes to run, on consecutive ports from --api-port, all on the
    /// one database. The agents and cachectl are given the list of their addresses and
    /// fail over between them (no load balancer). 1 to 9.
    #[arg(
        long,
        env = "CACHECTL_LOCAL_API_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=9)
    )]
    pub api_replicas: u16,
    /// The address space each new project's default network takes a /16 of (the API's
    /// --default-network-supernet); caches get addresses in it, on loopback.
    #[arg(
        long,
        env = "CACHECTL_LOCAL_SUPERNET",
        default_value = "127.64.0.0/10",
        value_parser = parse_supernet
    )]
    pub supernet: String,
    /// The cacheplane-api binary [default: next to cachectl, else on PATH].
    #[arg(long, env = "CACHECTL_LOCAL_API_BIN", value_name = "PATH")]
    pub api_bin: Option<PathBuf>,
    /// The cacheplane-node-agent binary [default: next to cachectl, else on PATH].
    #[arg(long, env = "CACHECTL_LOCAL_AGENT_BIN", value_name = "PATH")]
    pub agent_bin: Option<PathBuf>,
    /// How long to wait for the API to be ready and the hosts UP (exit 4 past it).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// The global settings `local` uses.
pub struct Globals {
    /// The configuration file `local up` writes.
    pub config_path: PathBuf,
    /// `--project` / `CACHECTL_PROJECT`.
    pub project: Option<String>,
    /// `--region` / `CACHECTL_REGION`.
    pub region: Option<String>,
    /// `--format`.
    pub format: Format,
}

/// Runs `local …`.
pub async fn run(cmd: Command, g: Globals) -> Result<()> {
    match cmd {
        Command::Up(args) => up::up(args, &g).await,
        Command::Down(dirs) => {
            let layout = Layout::resolve(&dirs, false)?;
            down::down(&layout).await?;
            let status = Status::collect(&layout).await;
            emit(g.format, &status, |s| {
                format!("{}\n\nThe local stack is stopped.", s.table())
            })
        }
        Command::Status(dirs) => {
            let layout = Layout::resolve(&dirs, false)?;
            let status = Status::collect(&layout).await;
            emit(g.format, &status, |s| {
                format!("{}\n\n{}", s.table(), s.summary())
            })
        }
        Command::Demo(dirs) => demo::demo(&Layout::resolve(&dirs, false)?, g.format).await,
        Command::Postgres(c) => postgres_command::run(c, g.format),
    }
}

/// A progress line (on stderr, so that stdout stays the result).
pub(crate) fn say(msg: &str) {
    eprintln!("{msg}");
}

fn parse_supernet(s: &str) -> Result<String, String> {
    let bad = || format!("'{s}' is not an IPv4 CIDR such as 127.64.0.0/10");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    addr.parse::<Ipv4Addr>().map_err(|_| bad())?;
    match len.parse::<u8>() {
        Ok(n) if n <= 16 => Ok(s.to_string()),
        Ok(_) => Err(format!(
            "'{s}': the supernet must hold at least one /16 (a prefix of 16 or less)"
        )),
        Err(_) => Err(bad()),
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (binding it works).
fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supernets() {
        assert!(parse_supernet("127.64.0.0/10").is_ok());
        assert!(parse_supernet("127.201.0.0/16").is_ok());
        assert!(parse_supernet("127.201.0.0/24").is_err());
        assert!(parse_supernet("127.201.0.0").is_err());
        assert!(parse_supernet("x/8").is_err());
    }
}
