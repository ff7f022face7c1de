//! `cachectl networks …`: a project's address pools.

use cacheplane_types::{CreateNetworkRequest, ListNetworksResponse, Network};

use super::{confirm, Ctx};
use crate::error::Result;
use crate::output::{self, emit, Format};

/// Networks: the address pools instances get their ranges from. Each project starts
/// with one called `default`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates a network with its address pool.
    #[command(after_help = "Examples:\n  \
        cachectl networks create backend --ip-range 127.100.0.0/16\n  \
        cachectl networks create backend --ip-range 127.100.0.0/16 --description 'web tier'")]
    Create {
        /// The new network's id.
        network: String,
        /// The pool in CIDR notation, /8 to /28, inside a supernet the API allows
        /// (`--network-supernets`); never 127.0.0.0/16 or a host's address. It may not
        /// overlap another network of the project, nor, unless the API runs in netns
        /// mode, any other project's.
        #[arg(long)]
        ip_range: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Lists the project's networks.
    #[command(after_help = "Examples:\n  \
        cachectl networks list\n  \
        cachectl networks list --format yaml")]
    List,
    /// Shows a network.
    #[command(after_help = "Examples:\n  \
        cachectl networks describe default")]
    Describe {
        /// The network's id.
        network: String,
    },
    /// Deletes a network that no instance and no connector uses. Asks for confirmation on a terminal;
    /// without a terminal it refuses unless --quiet is given.
    #[command(after_help = "Examples:\n  \
        cachectl networks delete backend --quiet")]
    Delete {
        /// The network's id.
        network: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        quiet: bool,
    },
}

/// Runs `networks …`.
pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    let project = ctx.project()?;
    let collection = ["v1", "projects", project, "networks"];
    match cmd {
        Command::Create {
            network,
            ip_range,
            description,
        } => {
            let req = CreateNetworkRequest {
                ip_range,
                description,
            };
            let n: Network = ctx
                .client
                .post(&collection, &[("networkId", &network)], &req)
                .await?;
            print(ctx.format, &n)
        }
        Command::List => {
            let r: ListNetworksResponse = ctx.client.get(&collection, &[]).await?;
            emit(ctx.format, &r.networks, |networks| {
                output::rows(
                    &["NAME", "IP_RANGE", "DESCRIPTION", "CREATED"],
                    networks.iter().map(|n| {
                        vec![
                            output::short(&n.name).to_string(),
                            n.ip_range.clone(),
                            n.description.clone(),
                            output::time(&n.create_time),
                        ]
                    }),
                )
            })
        }
        Command::Describe { network } => {
            let path = ["v1", "projects", project, "networks", &network];
            let n: Network = ctx.client.get(&path, &[]).await?;
            print(ctx.format, &n)
        }
        Command::Delete { network, quiet } => {
            confirm(
                &format!("Delete network {network} of project {project}"),
                quiet,
            )?;
            let path = ["v1", "projects", project, "networks", &network];
            ctx.client.delete::<()>(&path, &[]).await?;
            if ctx.format == Format::Table {
                println!("Deleted network projects/{project}/networks/{network}.");
            }
            Ok(())
        }
    }
}

fn print(format: Format, n: &Network) -> Result<()> {
    emit(format, n, |n| {
        output::fields([
            ("name", n.name.clone()),
            ("ipRange", n.ip_range.clone()),
            ("description", n.description.clone()),
            ("createTime", output::time(&n.create_time)),
        ])
    })
}
