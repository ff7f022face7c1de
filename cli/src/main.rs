//! `cachectl`, the Cacheplane command-line client: drives the API the way `gcloud redis`
//! drives Memorystore. The clap types below and in `cmd/` are the help text.

mod client;
mod cmd;
mod config;
mod error;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::client::Client;
use crate::cmd::Ctx;
use crate::error::{Error, Result};
use crate::output::Format;

/// The API URL when none is configured: the local stack's.
const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// cachectl: create and manage Redis caches on a Cacheplane control plane.
///
/// The API URL, token, project and region come from the flags, else from
/// CACHECTL_API_URL, CACHECTL_TOKEN, CACHECTL_PROJECT and CACHECTL_REGION, else from the
/// configuration file (`cachectl config path`).
///
/// Exit codes: 0 done, 1 other failures (e.g. the API unreachable), 2 usage errors,
/// 3 errors from the API (including operations that failed), 4 timeouts.
#[derive(Debug, Parser)]
#[command(
    name = "cachectl",
    version,
    after_help = "Examples:\n  \
        cachectl local up\n  \
        cachectl config set project my-project && cachectl config set region local\n  \
        cachectl instances create my-cache --tier standard-ha --size 1 --replica-count 2\n  \
        cachectl instances describe my-cache\n  \
        source <(cachectl instances env my-cache) && redis-cli -h $REDISHOST -p $REDISPORT -a $REDISAUTH ping\n  \
        cachectl instances delete my-cache"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Settings every command accepts.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
struct Global {
    /// Base URL of the Cacheplane API, or the API replicas' URLs separated by commas
    /// (cachectl fails over between them) [default: http://127.0.0.1:8080].
    #[arg(long, env = "CACHECTL_API_URL", global = true)]
    api_url: Option<String>,
    /// API token (sent as `Authorization: Bearer`).
    #[arg(long, env = "CACHECTL_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Project id.
    #[arg(long, env = "CACHECTL_PROJECT", global = true)]
    project: Option<String>,
    /// Region id, e.g. `local`; list commands show every region when none is set.
    #[arg(long, env = "CACHECTL_REGION", global = true)]
    region: Option<String>,
    /// How to print resources and operations.
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    format: Format,
    /// The configuration file [default: $XDG_CONFIG_HOME/cachectl/config.toml].
    #[arg(long, env = "CACHECTL_CONFIG", global = true)]
    config: Option<PathBuf>,
}

// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Managed Redis caches: create, describe, list, update, scale, delete, failover.
    #[command(subcommand)]
    Instances(cmd::instances::Command),
    /// Long-running operations: describe, list, wait.
    #[command(subcommand)]
    Operations(cmd::operations::Command),
    /// Regions.
    #[command(subcommand)]
    Regions(cmd::catalog::RegionsCommand),
    /// Zones of a region.
    #[command(subcommand)]
    Zones(cmd::catalog::ZonesCommand),
    /// Service tiers and their limits.
    #[command(subcommand)]
    Tiers(cmd::catalog::TiersCommand),
    /// Networks: the address pools of a project.
    #[command(subcommand)]
    Networks(cmd::networks::Command),
    /// Connectors: how client processes outside a network reach its instances.
    #[command(subcommand)]
    Connectors(cmd::connectors::Command),
    /// Memcached instances: `cachectl memcache instances create|describe|list|update|
    /// delete|update-parameters|apply-parameters|env`.
    #[command(subcommand)]
    Memcache(cmd::memcache::MemcacheCommand),
    /// Cache hosts (admin).
    #[command(subcommand)]
    Hosts(cmd::admin::HostsCommand),
    /// API tokens (admin).
    #[command(subcommand)]
    Tokens(cmd::admin::TokensCommand),
    /// The configuration file: set, unset, list, path.
    #[command(subcommand)]
    Config(cmd::config::Command),
    /// The local stack on this machine (PostgreSQL, the API, three node agents): up,
    /// down, status, and the demo cache.
    #[cfg(unix)]
    #[command(subcommand)]
    Local(cmd::local::Command),
    /// Prints a shell completion script.
    #[command(after_help = "Examples:\n  \
        source <(cachectl completion bash)\n  \
        cachectl completion zsh > \"${fpath[1]}/_cachectl\"\n  \
        cachectl completion fish > ~/.config/fish/completions/cachectl.fish")]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(e.code())
        }
    }
}

/// The error with its causes (`anyhow`'s chain), on one line.
fn message(e: &Error) -> String {
    match e {
        Error::Other(e) => format!("{e:#}"),
        e => e.to_string(),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let g = cli.global;
    let config_path = config::path(g.config.as_deref());
    match cli.command {
        Command::Completion { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cachectl", &mut script);
            // A closed pipe (`… | head`) is not worth an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return Ok(());
        }
        Command::Config(c) => return cmd::config::run(&config_path?, c),
        #[cfg(unix)]
        Command::Local(c) => {
            let globals = cmd::local::Globals {
                config_path: config_path?,
                project: g.project,
                region: g.region,
                format: g.format,
            };
            return cmd::local::run(c, globals).await;
        }
        _ => {}
    }
    let file = config::FileConfig::load(&config_path?)?;
    let api_url = g
        .api_url
        .or(file.api_url)
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let token = g
        .token
        .or(file.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::Usage(
            "no API token: pass --token T, set CACHECTL_TOKEN or run `cachectl config set token T`"
                .into(),
        )
        })?;
    let ctx = Ctx {
        client: Client::new(&api_url, Some(token))?,
        project: g.project.or(file.project).filter(|s| !s.is_empty()),
        region: g.region.or(file.region).filter(|s| !s.is_empty()),
        format: g.format,
    };
    match cli.command {
        Command::Instances(c) => cmd::instances::run(&ctx, c).await,
        Command::Operations(c) => cmd::operations::run(&ctx, c).await,
        Command::Regions(c) => cmd::catalog::regions(&ctx, c).await,
        Command::Zones(c) => cmd::catalog::zones(&ctx, c).await,
        Command::Tiers(c) => cmd::catalog::tiers(&ctx, c).await,
        Command::Networks(c) => cmd::networks::run(&ctx, c).await,
        Command::Connectors(c) => cmd::connectors::run(&ctx, c).await,
        Command::Memcache(c) => cmd::memcache::run(&ctx, c).await,
        Command::Hosts(c) => cmd::admin::hosts(&ctx, c).await,
        Command::Tokens(c) => cmd::admin::tokens(&ctx, c).await,
        Command::Config(_) | Command::Completion { .. } => Ok(()),
        #[cfg(unix)]
        Command::Local(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
