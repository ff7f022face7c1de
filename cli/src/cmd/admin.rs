//! `cachectl hosts …` and `cachectl tokens …`: what an admin token may do.

use cacheplane_types::{CreateTokenRequest, Host, ListHostsResponse, ListTokensResponse, Token};

use super::{confirm, Ctx};
use crate::error::Result;
use crate::output::{self, emit, Format};

const GIB: f64 = (1u64 << 30) as f64;

/// Cache hosts: the machines node agents run on (admin).
#[derive(Debug, clap::Subcommand)]
pub enum HostsCommand {
    /// Lists the hosts with their zone, state and memory.
    #[command(after_help = "Examples:\n  \
        cachectl hosts list\n  \
        cachectl hosts list --format json | jq -r '.[] | select(.state == \"UP\") | .name'")]
    List,
    /// Shows a host.
    #[command(after_help = "Examples:\n  \
        cachectl hosts describe local-a-1")]
    Describe {
        /// The host's id.
        host: String,
    },
}

/// API tokens (admin). The admin token itself is set when the API starts.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Creates a token for one host (its agent) with --host, else for the project
    /// (--project, CACHECTL_PROJECT or the config file: its resources); the secret is
    /// shown in this answer only. A new project is created with its `default` network.
    #[command(after_help = "Examples:\n  \
        cachectl tokens create --project my-project --description 'CI'\n  \
        cachectl tokens create --host cache-host-7 --format json | jq -r .token")]
    Create {
        /// The host whose agent protocol the token may speak.
        #[arg(long)]
        host: Option<String>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists the tokens not revoked (without their secrets).
    #[command(after_help = "Examples:\n  \
        cachectl tokens list")]
    List,
    /// Revokes a token at once. Asks for confirmation on a terminal; without a terminal
    /// it refuses unless --quiet is given.
    #[command(after_help = "Examples:\n  \
        cachectl tokens revoke 3f1c… --quiet")]
    Revoke {
        // Not named `token`: that is the id of the global --token flag, whose value clap
        // would replace with this one.
        /// The token's id (the last part of its name `tokens/ID`).
        #[arg(value_name = "TOKEN_ID")]
        token_id: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Runs `hosts …`.
pub async fn hosts(ctx: &Ctx, cmd: HostsCommand) -> Result<()> {
    match cmd {
        HostsCommand::List => {
            let r: ListHostsResponse = ctx.client.get(&["v1", "hosts"], &[]).await?;
            emit(ctx.format, &r.hosts, |hosts| {
                output::rows(
                    &[
                        "NAME",
                        "ZONE",
                        "ADDRESS",
                        "STATE",
                        "MEMORY_GB",
                        "ENGINES",
                        "GENERATION",
                        "LAST_HEARTBEAT",
                    ],
                    hosts.iter().map(|h| {
                        vec![
                            output::short(&h.name).to_string(),
                            h.zone.clone(),
                            h.address.clone(),
                            output::wire(&h.state),
                            memory(h),
                            h.engines.join(","),
                            format!("{}/{}", h.applied_generation, h.config_generation),
                            h.last_heartbeat_time
                                .as_ref()
                                .map(output::time)
                                .unwrap_or_default(),
                        ]
                    }),
                )
            })
        }
        HostsCommand::Describe { host } => {
            let h: Host = ctx.client.get(&["v1", "hosts", &host], &[]).await?;
            emit(ctx.format, &h, |h| {
                output::fields([
                    ("name", h.name.clone()),
                    ("zone", h.zone.clone()),
                    ("address", h.address.clone()),
                    ("state", output::wire(&h.state)),
                    ("memoryGb", memory(h)),
                    ("engines", h.engines.join(",")),
                    ("configGeneration", h.config_generation.to_string()),
                    ("appliedGeneration", h.applied_generation.to_string()),
                    (
                        "lastHeartbeatTime",
                        h.last_heartbeat_time
                            .as_ref()
                            .map(output::time)
                            .unwrap_or_default(),
                    ),
                    ("createTime", output::time(&h.create_time)),
                ])
            })
        }
    }
}

/// `allocated/offered`, in GiB.
fn memory(h: &Host) -> String {
    format!(
        "{:.1}/{:.1}",
        h.allocated_memory_bytes as f64 / GIB,
        h.memory_bytes as f64 / GIB
    )
}

/// Runs `tokens …`.
pub async fn tokens(ctx: &Ctx, cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::Create { host, description } => {
            let project = match host {
                Some(_) => None,
                None => Some(ctx.project()?.to_string()),
            };
            let req = CreateTokenRequest {
                project,
                host,
                description,
            };
            let t: Token = ctx.client.post(&["v1", "tokens"], &[], &req).await?;
            if ctx.format == Format::Table {
                eprintln!("The token's secret is shown this once; keep it safe.");
            }
            emit(ctx.format, &t, |t| {
                output::fields([
                    ("name", t.name.clone()),
                    ("kind", output::wire(&t.kind)),
                    ("project", t.project.clone().unwrap_or_default()),
                    ("host", t.host.clone().unwrap_or_default()),
                    ("description", t.description.clone()),
                    ("createTime", output::time(&t.create_time)),
                    ("token", t.token.clone().unwrap_or_default()),
                ])
            })
        }
        TokensCommand::List => {
            let r: ListTokensResponse = ctx.client.get(&["v1", "tokens"], &[]).await?;
            emit(ctx.format, &r.tokens, |tokens| {
                output::rows(
                    &["ID", "KIND", "FOR", "DESCRIPTION", "CREATED"],
                    tokens.iter().map(|t| {
                        vec![
                            output::short(&t.name).to_string(),
                            output::wire(&t.kind),
                            t.project.clone().or(t.host.clone()).unwrap_or_default(),
                            t.description.clone(),
                            output::time(&t.create_time),
                        ]
                    }),
                )
            })
        }
        TokensCommand::Revoke { token_id, quiet } => {
            let id = output::short(&token_id).to_string();
            confirm(&format!("Revoke token {id}"), quiet)?;
            ctx.client.delete::<()>(&["v1", "tokens", &id], &[]).await?;
            if ctx.format == Format::Table {
                println!("Revoked token tokens/{id}.");
            }
            Ok(())
        }
    }
}
