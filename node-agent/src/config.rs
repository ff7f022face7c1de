//! Agent configuration, from flags or the environment (`cacheplane-node-agent --help`).

use std::path::PathBuf;
use std::time::Duration;

use cacheplane_types::secret::{self, Secret, SecretError};

/// How the agent puts node addresses on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkMode {
    /// Addresses in 127.0.0.0/8, all reachable on Linux loopback; needs no privileges.
    Loopback,
    /// One network namespace per network (root).
    Netns,
    /// Secondary addresses on a host interface (root).
    Host,
}

/// Who serves the read endpoints of the agent's own namespace (`--read-endpoint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadEndpointPath {
    /// The kernel in netns mode; the userspace proxy in loopback and host modes.
    Auto,
    /// nftables DNAT (root). In host mode, connections from other machines to replicas
    /// on other hosts are forwarded: the host must have `net.ipv4.ip_forward=1`.
    Kernel,
    /// The agent's TCP proxy (loopback and host modes only).
    Userspace,
}

/// How the node agent is configured. `Debug` leaves the token out.
#[derive(Clone, clap::Parser)]
#[command(
    name = "cacheplane-node-agent",
    version,
    about = "The Cacheplane node agent: runs and supervises cache engines on this host"
)]
pub struct Config {
    /// Base URL of the Cacheplane API, e.g. `http://127.0.0.1:8080`, or a
    /// comma-separated list of the API replicas' URLs: calls go to the one that answered
    /// last and move on to the next when it cannot be reached or answers 502/503.
    #[arg(long, env = "CACHEPLANE_API_URL")]
    pub api_url: String,

    /// Bearer token of this host (or an admin token): from `CACHEPLANE_AGENT_TOKEN` or the
    /// first line of `--token-file`, never a flag (see [`Config::load`]).
    #[arg(skip)]
    pub token: Secret,

    /// A file whose first line is the host's token, instead of `CACHEPLANE_AGENT_TOKEN`.
    #[arg(long, env = "CACHEPLANE_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,

    /// Host id to register as (default: this machine's hostname, lowercased).
    #[arg(long, env = "CACHEPLANE_HOST_ID")]
    pub host_id: Option<String>,

    /// The zone this host is in, e.g. `local-a`.
    #[arg(long, env = "CACHEPLANE_ZONE")]
    pub zone: String,

    /// The host's address, as registered with the API.
    #[arg(long, env = "CACHEPLANE_HOST_ADDRESS", default_value = "127.0.0.1")]
    pub address: String,

    /// Where the agent keeps its saved config and one directory per node.
    #[arg(long, env = "CACHEPLANE_DATA_DIR")]
    pub data_dir: PathBuf,

    /// How node addresses are put on the host.
    #[arg(
        long,
        env = "CACHEPLANE_NETWORK_MODE",
        value_enum,
        default_value = "loopback"
    )]
    pub network_mode: NetworkMode,

    /// Prefix of the namespaces, bridges and veths the agent makes in netns mode (1-6
    /// lowercase letters or digits), so that separate installations or test runs on one
    /// machine never share them.
    #[arg(long, env = "CACHEPLANE_NETNS_PREFIX", default_value = "cp")]
    pub netns_prefix: String,

    /// Most client connections one read endpoint relays at once where the agent serves
    /// it in userspace (loopback mode); new ones beyond are closed at once and counted.
    /// The kernel path (netns and host modes) has no such cap.
    #[arg(long, env = "CACHEPLANE_READ_ENDPOINT_MAX_CONNECTIONS", default_value_t = crate::proxy::DEFAULT_MAX_CONNECTIONS)]
    pub read_endpoint_max_connections: usize,

    /// A read endpoint connection relayed in userspace with no byte in either direction
    /// for this long is closed (0: never). Redis itself never closes idle clients, so
    /// the default is long: an hour, which reclaims only clients that vanished.
    #[arg(long, env = "CACHEPLANE_READ_ENDPOINT_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_duration)]
    pub read_endpoint_idle_timeout: Duration,

    /// Who serves read endpoints: `auto` (the kernel in netns mode, the userspace proxy
    /// otherwise), `kernel` (nftables DNAT; root) or `userspace` (not in netns mode).
    /// See docs/networking.md#kernel-read-endpoint.
    #[arg(
        long,
        env = "CACHEPLANE_READ_ENDPOINT",
        value_enum,
        default_value = "auto"
    )]
    pub read_endpoint: ReadEndpointPath,

    /// Worker threads that relay read endpoint connections in userspace (started with
    /// the first such endpoint).
    #[arg(long, env = "CACHEPLANE_READ_ENDPOINT_THREADS", default_value_t = crate::proxy::DEFAULT_THREADS)]
    pub read_endpoint_threads: usize,

    /// In host mode: the interface that gets node and endpoint addresses (as /32
    /// secondary addresses), e.g. `eth0`.
    #[arg(long, env = "CACHEPLANE_HOST_INTERFACE")]
    pub host_interface: Option<String>,

    /// The `redis-server` binary (a path, or a name looked up on PATH).
    #[arg(long, env = "CACHEPLANE_REDIS_SERVER", default_value = "redis-server")]
    pub redis_server: PathBuf,

    /// The `memcached` binary (a path, or a name looked up on PATH). When it is missing
    /// the agent runs no Memcached nodes and does not offer the engine.
    #[arg(long, env = "CACHEPLANE_MEMCACHED", default_value = "memcached")]
    pub memcached: PathBuf,

    /// Memory offered to caches, in bytes (default: MemTotal of /proc/meminfo).
    #[arg(long, env = "CACHEPLANE_MEMORY_BYTES")]
    pub memory_bytes: Option<i64>,

    /// How often the agent observes its nodes, reconciles and heartbeats.
    #[arg(long, env = "CACHEPLANE_HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// No longer used: primaries are fenced by their replicas (`write_fence`), not by a
    /// lease on heartbeats. Accepted so that existing unit files keep working; ignored.
    #[arg(long, env = "CACHEPLANE_PRIMARY_LEASE", hide = true)]
    pub primary_lease: Option<String>,

    /// Apply host configs that would stop all or most (more than half) of this host's
    /// nodes, or whose generation went back. Without it such a config is refused, logged
    /// and reported in heartbeats, and the agent keeps running what it runs.
    #[arg(long, env = "CACHEPLANE_ACCEPT_CONFIG_DROPS")]
    pub accept_config_drops: bool,

    /// Longest wait of one config long-poll.
    #[arg(long, env = "CACHEPLANE_POLL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub poll_timeout: Duration,

    /// Serve Prometheus metrics of this host's nodes on `GET /metrics` at this address,
    /// e.g. `127.0.0.1:9465` (port 0: any free port; the bound address is logged and
    /// written to `metrics-address` in the data directory). Unset: no listener. It has
    /// no authentication: bind it to an address only your Prometheus server reaches.
    #[arg(long, env = "CACHEPLANE_AGENT_METRICS_ADDRESS")]
    pub metrics_address: Option<std::net::SocketAddr>,

    /// Log format.
    #[arg(long, env = "CACHEPLANE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_url", &self.api_url)
            .field("token", &"***")
            .field("host_id", &self.host_id)
            .field("zone", &self.zone)
            .field("address", &self.address)
            .field("data_dir", &self.data_dir)
            .field("network_mode", &self.network_mode)
            .field("netns_prefix", &self.netns_prefix)
            .field(
                "read_endpoint_max_connections",
                &self.read_endpoint_max_connections,
            )
            .field(
                "read_endpoint_idle_timeout",
                &self.read_endpoint_idle_timeout,
            )
            .field("read_endpoint_threads", &self.read_endpoint_threads)
            .field("host_interface", &self.host_interface)
            .field("redis_server", &self.redis_server)
            .field("memcached", &self.memcached)
            .field("memory_bytes", &self.memory_bytes)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("primary_lease", &self.primary_lease)
            .field("poll_timeout", &self.poll_timeout)
            .field("accept_config_drops", &self.accept_config_drops)
            .field("metrics_address", &self.metrics_address)
            .finish()
    }
}

/// Why [`Config::load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad flags, or `--help`/`--version` (clap prints and exits: [`clap::Error::exit`]).
    #[error("{0}")]
    Args(clap::Error),
    /// The token is missing or unreadable.
    #[error("{0}")]
    Secret(SecretError),
}

impl Config {
    /// The configuration from the command line `args` and the environment; the token
    /// comes from `CACHEPLANE_AGENT_TOKEN` or `--token-file` only, since a flag's value is
    /// visible to every local user (`ps`, `/proc/PID/cmdline`).
    pub fn load<I, T>(args: I) -> Result<Config, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser as _;
        let mut c = Config::try_parse_from(args).map_err(LoadError::Args)?;
        c.token = secret::from_env_or_file(
            "CACHEPLANE_AGENT_TOKEN",
            c.token_file.as_deref(),
            "--token-file",
        )
        .map_err(LoadError::Secret)?;
        Ok(c)
    }

    /// Refuses settings this build cannot honour.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.network_mode != NetworkMode::Loopback && !nix::unistd::geteuid().is_root() {
            let name = clap::ValueEnum::to_possible_value(&self.network_mode)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default();
            anyhow::bail!(
                "--network-mode {name} needs root (it creates namespaces, bridges and \
                 addresses); run the agent as root or use --network-mode loopback"
            );
        }
        let p = &self.netns_prefix;
        if !(1..=6).contains(&p.len())
            || !p
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            anyhow::bail!("--netns-prefix must be 1-6 lowercase letters or digits, got '{p}'");
        }
        match (&self.host_interface, self.network_mode) {
            (None, NetworkMode::Host) => {
                anyhow::bail!("--network-mode host needs --host-interface (e.g. eth0)")
            }
            (Some(i), _) if i.is_empty() || i.len() > 15 || i.contains(['/', ' ']) => {
                anyhow::bail!(
                    "--host-interface must be an interface name of 1-15 characters, got '{i}'"
                )
            }
            _ => {}
        }
        match (self.read_endpoint, self.network_mode) {
            (ReadEndpointPath::Kernel, _) if !nix::unistd::geteuid().is_root() => {
                anyhow::bail!(
                    "--read-endpoint kernel needs root (it writes nftables rules); run the \
                     agent as root or use --read-endpoint userspace"
                )
            }
            (ReadEndpointPath::Kernel, NetworkMode::Host)
                if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                    .is_ok_and(|v| v.trim() != "1") =>
            {
                anyhow::bail!(
                    "--read-endpoint kernel in host mode forwards connections to replicas on \
                     other hosts: set net.ipv4.ip_forward=1 on this host first, or use \
                     --read-endpoint userspace"
                )
            }
            (ReadEndpointPath::Userspace, NetworkMode::Netns) => anyhow::bail!(
                "--read-endpoint userspace is not offered in netns mode, whose read \
                 endpoints the kernel serves; use auto or kernel"
            ),
            _ => {}
        }
        if self.read_endpoint_max_connections == 0 {
            anyhow::bail!("--read-endpoint-max-connections must be at least 1");
        }
        if !(1..=64).contains(&self.read_endpoint_threads) {
            anyhow::bail!("--read-endpoint-threads must be 1 to 64");
        }
        if self.heartbeat_interval.is_zero() {
            anyhow::bail!("--heartbeat-interval must be more than 0");
        }
        if self.api_url.trim().is_empty() {
            anyhow::bail!("--api-url must not be empty");
        }
        for url in self.api_url.split(',').map(str::trim) {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(str::is_empty) {
                anyhow::bail!(
                    "--api-url must be http(s) URLs separated by commas (e.g. \
                     http://10.0.0.1:8080,http://10.0.0.2:8080), got '{url}'"
                );
            }
        }
        Ok(())
    }

    /// Whether the kernel serves the read endpoints of the agent's own namespace.
    pub fn kernel_read_endpoints(&self) -> bool {
        self.read_endpoint == ReadEndpointPath::Kernel
    }

    /// The API replicas' base URLs from `--api-url`, in the order given.
    pub fn api_urls(&self) -> Vec<String> {
        self.api_url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The host id: the flag, or this machine's hostname lowercased.
    pub fn host_id(&self) -> anyhow::Result<String> {
        if let Some(id) = &self.host_id {
            return Ok(id.clone());
        }
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map_err(|e| anyhow::anyhow!("cannot read the hostname ({e}); pass --host-id"))?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            anyhow::bail!("the hostname is empty; pass --host-id");
        }
        Ok(name)
    }
}

pub use cacheplane_types::duration::parse_duration;

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The required flags.
    const BASE: [&str; 7] = [
        "agent",
        "--api-url",
        "http://x",
        "--zone",
        "z",
        "--data-dir",
        "/d",
    ];

    #[test]
    fn network_modes_and_their_flags_are_checked() {
        let c = Config::try_parse_from(BASE).expect("parses");
        assert!(c.check().is_ok());
        assert_eq!(c.netns_prefix, "cp");
        let c = Config {
            token: Secret::new("s3cret"),
            ..c
        };
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "Debug hides the token"
        );
        let with = |more: &[&str]| {
            Config::try_parse_from(BASE.iter().copied().chain(more.iter().copied()))
                .expect("parses")
                .check()
                .map_err(|e| e.to_string())
        };
        let root = nix::unistd::geteuid().is_root();
        let netns = with(&["--network-mode", "netns"]);
        if root {
            assert!(netns.is_ok(), "{netns:?}");
        } else {
            assert!(netns.expect_err("needs root").contains("needs root"));
        }
        let err = with(&["--network-mode", "netns", "--read-endpoint", "userspace"])
            .expect_err("netns endpoints are the kernel's");
        assert!(err.contains("--read-endpoint userspace"), "{err}");
        let kernel = with(&["--read-endpoint", "kernel"]);
        if root {
            assert!(kernel.is_ok(), "{kernel:?}");
        } else {
            assert!(kernel.expect_err("needs root").contains("needs root"));
        }
        let err = with(&["--netns-prefix", "Bad-Prefix"]).expect_err("refused");
        assert!(err.contains("--netns-prefix"), "{err}");
        let err = with(&["--netns-prefix", "toolong1"]).expect_err("refused");
        assert!(err.contains("1-6"), "{err}");
        if root {
            let err = with(&["--network-mode", "host"]).expect_err("needs an interface");
            assert!(err.contains("--host-interface"), "{err}");
            assert!(with(&["--network-mode", "host", "--host-interface", "eth0"]).is_ok());
        }
        let err = with(&["--host-interface", "a-very-long-interface"]).expect_err("refused");
        assert!(err.contains("1-15"), "{err}");
    }

    #[test]
    fn read_endpoint_limits_have_defaults_and_a_floor() {
        let c = Config::try_parse_from(BASE).expect("parses");
        assert_eq!(c.read_endpoint_max_connections, 10_000);
        assert_eq!(c.read_endpoint_idle_timeout, Duration::from_secs(3600));
        let c = Config::try_parse_from(BASE.iter().copied().chain([
            "--read-endpoint-max-connections",
            "0",
            "--read-endpoint-idle-timeout",
            "0",
        ]))
        .expect("parses");
        assert_eq!(c.read_endpoint_idle_timeout, Duration::ZERO, "0: never");
        let err = c.check().expect_err("no connection allowed").to_string();
        assert!(err.contains("--read-endpoint-max-connections"), "{err}");
    }

    #[test]
    fn api_url_takes_a_list_of_replicas() {
        let parse = |urls: &str| {
            let mut args = BASE.to_vec();
            args[2] = urls;
            Config::try_parse_from(args).expect("parses")
        };
        let c = parse("http://a:1, http://b:2/");
        assert!(c.check().is_ok());
        assert_eq!(c.api_urls(), ["http://a:1", "http://b:2/"]);
        let err = parse("http://a:1,,http://b:2")
            .check()
            .expect_err("an empty entry")
            .to_string();
        assert!(err.contains("--api-url"), "{err}");
        let err = parse("a:1").check().expect_err("no scheme").to_string();
        assert!(err.contains("'a:1'"), "{err}");
    }

    #[test]
    fn the_metrics_address_is_optional_and_must_be_an_address() {
        let c = Config::try_parse_from(BASE).expect("parses");
        assert_eq!(c.metrics_address, None, "no listener by default");
        let c = Config::try_parse_from(
            BASE.iter()
                .copied()
                .chain(["--metrics-address", "127.0.0.1:9465"]),
        )
        .expect("parses");
        assert_eq!(
            c.metrics_address,
            Some("127.0.0.1:9465".parse().expect("addr"))
        );
        let err = Config::try_parse_from(
            BASE.iter()
                .copied()
                .chain(["--metrics-address", "localhost"]),
        )
        .expect_err("refused")
        .to_string();
        assert!(err.contains("--metrics-address"), "{err}");
    }

    #[test]
    fn the_old_lease_flag_is_accepted_and_ignored() {
        let c = Config::try_parse_from(BASE.iter().copied().chain(["--primary-lease", "1s"]))
            .expect("parses");
        assert!(c.check().is_ok());
        assert_eq!(c.primary_lease.as_deref(), Some("1s"));
    }
}
