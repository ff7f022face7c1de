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

/// Parses `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 500ms, 30s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("'{s}': the unit must be ms, s or m")),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{s}' is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
