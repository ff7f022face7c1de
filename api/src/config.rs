//! Server configuration, from flags or the environment.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cacheplane_types::secret::{self, Secret};

use ipnet::Ipv4Net;

/// How the API server is configured (`cacheplane-api --help`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cacheplane-api",
    version,
    about = "The Cacheplane control-plane API server"
)]
pub struct Config {
    /// Postgres connection URL (it may hold a password): from `DATABASE_URL`, or the
    /// first line of `--database-url-file`. Never a flag: see [`Config::load`].
    #[arg(skip)]
    pub database_url: Secret,

    /// A file whose first line is the Postgres connection URL, instead of `DATABASE_URL`.
    #[arg(long, env = "CACHEPLANE_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Address to serve HTTP on.
    #[arg(long, env = "CACHEPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The admin token (bootstrap credential), from `CACHEPLANE_ADMIN_TOKEN` or the first
    /// line of `--admin-token-file`. Stored hashed; changing it revokes the old one.
    #[arg(skip)]
    pub admin_token: Secret,

    /// A file whose first line is the admin token, instead of `CACHEPLANE_ADMIN_TOKEN`.
    #[arg(long, env = "CACHEPLANE_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Address space from which each new project's `default` network gets a /16.
    #[arg(
        long,
        env = "CACHEPLANE_DEFAULT_NETWORK_SUPERNET",
        default_value = "127.64.0.0/10"
    )]
    pub default_network_supernet: Ipv4Net,

    /// Where network pools may lie: a comma-separated list of IPv4 supernets. A pool
    /// must fit inside one of them or inside `--default-network-supernet`;
    /// 127.0.0.0/16 and the hosts' own addresses are refused whatever this says.
    #[arg(
        long,
        env = "CACHEPLANE_NETWORK_SUPERNETS",
        value_delimiter = ',',
        default_value = "127.64.0.0/10,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    )]
    pub network_supernets: Vec<Ipv4Net>,

    /// How the agents realise networks: `loopback` (no isolation, no root), `netns`
    /// (a namespace and bridge per network; connectors are namespaces on a host) or
    /// `host` (addresses on a real interface). Decides whether pools of different
    /// projects may overlap (netns only) and where connectors live.
    #[arg(
        long,
        env = "CACHEPLANE_NETWORK_MODE",
        value_enum,
        default_value_t = NetworkMode::Loopback
    )]
    pub network_mode: NetworkMode,

    /// A host silent for this long is DOWN: no new nodes are placed on it.
    #[arg(long, env = "CACHEPLANE_HOST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub host_timeout: Duration,

    /// A STANDARD_HA primary whose engine runs but has not answered its agent for longer
    /// than this counts as lost (one slow answer never does).
    #[arg(long, env = "CACHEPLANE_UNRESPONSIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub unresponsive_timeout: Duration,

    /// A create or update whose node sits on a silent host fails after this long,
    /// naming the node and the host (a failed create is rolled back).
    #[arg(long, env = "CACHEPLANE_OPERATION_DEADLINE", default_value = "2m", value_parser = parse_duration)]
    pub operation_deadline: Duration,

    /// A replica whose host has been silent this long is re-created on another host
    /// (same zone, else the alternative zone, else any).
    #[arg(long, env = "CACHEPLANE_REPAIR_AFTER", default_value = "60s", value_parser = parse_duration)]
    pub repair_after: Duration,

    /// Longest wait of a long-poll (host config, operation wait).
    #[arg(long, env = "CACHEPLANE_MAX_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub max_wait: Duration,

    /// How often the background worker looks at unfinished operations.
    #[arg(long, env = "CACHEPLANE_WORKER_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub worker_interval: Duration,

    /// Database connection pool size.
    #[arg(long, env = "CACHEPLANE_DB_POOL", default_value_t = 20)]
    pub db_pool: u32,

    /// Pool of database connections kept apart for the agent protocol (register,
    /// heartbeat, host config), so user traffic never starves heartbeats.
    #[arg(long, env = "CACHEPLANE_DB_AGENT_POOL", default_value_t = 8)]
    pub db_agent_pool: u32,

    /// A connection must send a request's complete head within this long of opening or
    /// of its previous answer, or it is closed: the header-read and keep-alive idle timeout.
    #[arg(long, env = "CACHEPLANE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// A request body that sends nothing for this long is cut off (400 on `body`): a
    /// client cannot hold a request open by trickling its body.
    #[arg(long, env = "CACHEPLANE_BODY_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_idle_timeout: Duration,

    /// Most user requests served at once (long-polls and the agent protocol apart);
    /// beyond it a request is answered UNAVAILABLE (503) at once.
    #[arg(long, env = "CACHEPLANE_MAX_REQUESTS", default_value_t = 256)]
    pub max_requests: usize,

    /// Most user long-polls (operation waits) at once; beyond it UNAVAILABLE (503).
    #[arg(long, env = "CACHEPLANE_MAX_LONG_POLLS", default_value_t = 256)]
    pub max_long_polls: usize,

    /// Most agent-protocol requests (register, heartbeat, config long-polls) at once;
    /// beyond it UNAVAILABLE (503).
    #[arg(long, env = "CACHEPLANE_MAX_AGENT_REQUESTS", default_value_t = 2048)]
    pub max_agent_requests: usize,

    /// Requests per second allowed per token (per client address without a valid
    /// token), with bursts of twice as many; beyond it RESOURCE_EXHAUSTED (429) with
    /// Retry-After.
    #[arg(long, env = "CACHEPLANE_RATE_LIMIT", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,

    /// How long a token lookup (valid or not) is cached: a revoked token keeps working
    /// for at most this long.
    #[arg(long, env = "CACHEPLANE_TOKEN_CACHE_TTL", default_value = "5s", value_parser = parse_duration)]
    pub token_cache_ttl: Duration,

    /// Default quota: instances per project (Redis and Memcached together).
    #[arg(long, env = "CACHEPLANE_QUOTA_INSTANCES", default_value_t = 100)]
    pub quota_instances: i64,

    /// Default quota: memory per project in GB, counted over every node
    /// (`memorySizeGb` × (1 + `replicaCount`); Memcached: `nodeCount` × `memorySizeMb`,
    /// rounded up to GB).
    #[arg(long, env = "CACHEPLANE_QUOTA_MEMORY_GB", default_value_t = 1000)]
    pub quota_memory_gb: i64,

    /// Default quota: networks per project, `default` included.
    #[arg(long, env = "CACHEPLANE_QUOTA_NETWORKS", default_value_t = 10)]
    pub quota_networks: i64,

    /// Default quota: connectors per project.
    #[arg(long, env = "CACHEPLANE_QUOTA_CONNECTORS", default_value_t = 20)]
    pub quota_connectors: i64,

    /// Finished operations and their requestIds are removed this long after they end
    /// (e.g. `7d`, `12h`).
    #[arg(long, env = "CACHEPLANE_OPERATION_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub operation_retention: Duration,

    /// Log format.
    #[arg(long, env = "CACHEPLANE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Why [`Config::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad flags, or `--help`/`--version` (clap prints and exits: [`clap::Error::exit`]).
    #[error("{0}")]
    Args(clap::Error),
    /// A secret is missing or unreadable.
    #[error("{0}")]
    Secret(secret::SecretError),
}

impl Config {
    /// The configuration from the command line `args` and the environment, secrets
    /// included: the database URL and the admin token come from their environment
    /// variables or files only, since a flag's value is visible to every local user
    /// (`ps`, `/proc/PID/cmdline`).
    pub fn load<I, T>(args: I) -> Result<Config, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        use clap::Parser as _;
        let mut c = Config::try_parse_from(args).map_err(LoadError::Args)?;
        c.database_url = secret::from_env_or_file(
            "DATABASE_URL",
            c.database_url_file.as_deref(),
            "--database-url-file",
        )
        .map_err(LoadError::Secret)?;
        c.admin_token = secret::from_env_or_file(
            "CACHEPLANE_ADMIN_TOKEN",
            c.admin_token_file.as_deref(),
            "--admin-token-file",
        )
        .map_err(LoadError::Secret)?;
        Ok(c)
    }
}

/// How the agents realise networks (see docs/networking.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// Every address on the loopback interface: one address space, no isolation.
    Loopback,
    /// A Linux network namespace and bridge per network on each host.
    Netns,
    /// Secondary addresses on a real interface: one address space.
    Host,
}

impl NetworkMode {
    /// The flag's value: `loopback`, `netns` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Loopback => "loopback",
            NetworkMode::Netns => "netns",
            NetworkMode::Host => "host",
        }
    }

    /// Whether every network shares one address space, so that no two pools, of any
    /// projects, may overlap.
    pub fn one_address_space(self) -> bool {
        self != NetworkMode::Netns
    }
}

pub use cacheplane_types::duration::parse_duration;

/// A retention: whole days (`7d`) or a duration [`parse_duration`] reads (at most 24 h).
pub fn parse_retention(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .ok()
            .filter(|d| (1..=3650).contains(d))
            .map(|d| Duration::from_secs(d * 86_400))
            .ok_or_else(|| format!("'{s}' is not a number of days from 1 to 3650, such as 7d")),
        None => parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_takes_days() {
        assert_eq!(parse_retention("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_retention("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_retention("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_retention("0d").is_err());
        assert!(parse_retention("xd").is_err());
    }
}
