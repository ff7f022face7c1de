//! Server configuration, from flags or the environment.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::Ipv4Net;

/// How the API server is configured (`cacheplane-api --help`).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "cacheplane-api",
    version,
    about = "The Cacheplane control-plane API server"
)]
pub struct Config {
    /// Postgres connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Address to serve HTTP on.
    #[arg(long, env = "CACHEPLANE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The admin token (bootstrap credential). Stored hashed; changing it revokes the old one.
    #[arg(long, env = "CACHEPLANE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,

    /// Address space from which each new project's `default` network gets a /16.
    #[arg(
        long,
        env = "CACHEPLANE_DEFAULT_NETWORK_SUPERNET",
        default_value = "127.64.0.0/10"
    )]
    pub default_network_supernet: Ipv4Net,

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

    /// Log format.
    #[arg(long, env = "CACHEPLANE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

pub use cacheplane_types::duration::parse_duration;
