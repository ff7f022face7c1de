//! `cachectl connectors …`: the way client processes outside a network reach its
//! instances. In the API's netns mode a connector is a Linux network namespace on a
//! cache host; `exec` runs a command inside it.

use cacheplane_types::{Connector, CreateConnectorRequest, ListConnectorsResponse, Operation};

use super::list::{list, Page};
use super::operations::{self, LroArgs};
use super::{confirm, Ctx};
use crate::error::{Error, Result};
use crate::output::{self, emit, Format};

/// The API's name for the collection.
pub const COLLECTION: &str = "connectors";

/// Connectors: a /28 of a network from which client processes reach its instances (in
/// netns mode, a network namespace on a cache host).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates a connector and waits until it is READY, then shows it.
    #[command(after_help = "Examples:\n  \
        cachectl connectors create app --network default\n  \
        cachectl connectors create app --network backend --range 10.128.0.16/28")]
    Create {
        /// The new connector's id: 1-40 lowercase letters, digits or hyphens.
        connector: String,
        /// The network it joins, by id or full name.
        #[arg(long)]
        network: String,
        /// Its /28 inside the network's pool (default: the first free /28).
        #[arg(long)]
        range: Option<String>,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Shows a connector: network, range, state, and its host and namespace.
    #[command(after_help = "Examples:\n  \
        cachectl connectors describe app\n  \
        cachectl connectors describe app --format json | jq -r .namespace")]
    Describe {
        /// The connector's id, or its full name.
        connector: String,
    },
    /// Lists the project's connectors in the region (every region when none is set).
    #[command(after_help = "Examples:\n  \
        cachectl connectors list\n  \
        cachectl connectors list --format yaml")]
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Deletes a connector: the path through it is cut and its range freed. Asks for
    /// confirmation on a terminal; without a terminal it refuses unless --quiet is given.
    #[command(after_help = "Examples:\n  \
        cachectl connectors delete app --quiet")]
    Delete {
        /// The connector's id, or its full name.
        connector: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Runs a command inside the connector's network namespace on this machine
    /// (`ip netns exec NAMESPACE CMD…`; needs root and the connector's host to be this
    /// machine). Exits with the command's own exit code.
    #[command(after_help = "Examples:\n  \
        cachectl connectors exec app -- redis-cli -h 10.128.0.1 ping\n  \
        cachectl connectors exec app -- ip addr")]
    Exec {
        /// The connector's id, or its full name.
        connector: String,
        /// The command and its arguments (after `--`).
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
}

impl Page for ListConnectorsResponse {
    type Item = Connector;
    fn into_parts(self) -> (Vec<Connector>, Option<String>) {
        (self.connectors, self.next_page_token)
    }
}

/// Runs `connectors …`.
pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    match cmd {
        Command::Create {
            connector,
            network,
            range,
            lro,
        } => {
            let l = ctx.located(COLLECTION, &connector)?;
            let body = CreateConnectorRequest {
                network,
                ip_cidr_range: range,
            };
            let mut query = vec![("connectorId", l.id.as_str())];
            query.extend(lro.request_id_query());
            let op: Operation = ctx
                .client
                .post(&l.collection(COLLECTION), &query, &body)
                .await?;
            if lro.no_wait {
                return print_operation(ctx, op);
            }
            operations::wait(ctx, op, lro.timeout).await?;
            let c = get(ctx, &connector).await?;
            print(ctx.format, &c)
        }
        Command::Describe { connector } => print(ctx.format, &get(ctx, &connector).await?),
        Command::List { limit } => {
            let path = ctx.list_path(COLLECTION)?;
            let all = list::<ListConnectorsResponse>(ctx, &path, &[], limit).await?;
            emit(ctx.format, &all, |all| table(all))
        }
        Command::Delete {
            connector,
            quiet,
            lro,
        } => {
            let l = ctx.located(COLLECTION, &connector)?;
            confirm(
                &format!(
                    "Delete connector {} (project {}, region {})",
                    l.id, l.project, l.region
                ),
                quiet,
            )?;
            let query = lro.request_id_query();
            let op: Operation = ctx.client.delete(&l.path(COLLECTION), &query).await?;
            if lro.no_wait {
                return print_operation(ctx, op);
            }
            let op = operations::wait(ctx, op, lro.timeout).await?;
            match ctx.format {
                Format::Table => {
                    println!("Deleted connector {}.", op.metadata.target);
                    Ok(())
                }
                _ => operations::print(ctx, &op),
            }
        }
        Command::Exec { connector, command } => {
            let c = get(ctx, &connector).await?;
            exec(&c, &command)
        }
    }
}

async fn get(ctx: &Ctx, connector: &str) -> Result<Connector> {
    let l = ctx.located(COLLECTION, connector)?;
    ctx.client.get(&l.path(COLLECTION), &[]).await
}

fn print_operation(ctx: &Ctx, op: Operation) -> Result<()> {
    operations::print(ctx, &op)?;
    let op = operations::check(op)?;
    if !op.done && ctx.format == Format::Table {
        eprintln!("`cachectl operations wait {}` waits for it.", op.name);
    }
    Ok(())
}

/// The `ip netns exec` command line that runs `command` in the connector's namespace;
/// a usage error when the connector has none (the API runs in loopback or host mode).
pub fn exec_argv(c: &Connector, command: &[String]) -> Result<Vec<String>> {
    let Some(ns) = c.namespace.as_deref().filter(|n| !n.is_empty()) else {
        return Err(Error::Usage(format!(
            "connector {} has no network namespace: the API runs in loopback or host mode, \
             where connectors are not realised and every process of a host reaches the \
             network directly (see docs/networking.md)",
            c.name
        )));
    };
    let mut argv = vec!["ip".to_string(), "netns".into(), "exec".into(), ns.into()];
    argv.extend(command.iter().cloned());
    Ok(argv)
}

fn exec(c: &Connector, command: &[String]) -> Result<()> {
    let argv = exec_argv(c, command)?;
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .status()
        .map_err(|e| anyhow::anyhow!("running {}: {e}", argv.join(" ")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => Err(anyhow::anyhow!("{} was killed by a signal", argv.join(" ")).into()),
    }
}

fn table(all: &[Connector]) -> String {
    output::rows(
        &[
            "NAME",
            "NETWORK",
            "IP_CIDR_RANGE",
            "STATE",
            "HOST",
            "NAMESPACE",
        ],
        all.iter().map(|c| {
            vec![
                output::short(&c.name).to_string(),
                output::short(&c.network).to_string(),
                c.ip_cidr_range.clone(),
                c.state.as_str().to_string(),
                c.host
                    .as_deref()
                    .map(output::short)
                    .unwrap_or("-")
                    .to_string(),
                c.namespace.clone().unwrap_or_else(|| "-".into()),
            ]
        }),
    )
}

fn print(format: Format, c: &Connector) -> Result<()> {
    emit(format, c, |c| {
        output::fields([
            ("name", c.name.clone()),
            ("network", c.network.clone()),
            ("ipCidrRange", c.ip_cidr_range.clone()),
            ("state", c.state.as_str().to_string()),
            ("host", c.host.clone().unwrap_or_else(|| "-".into())),
            (
                "namespace",
                c.namespace.clone().unwrap_or_else(|| "-".into()),
            ),
            ("createTime", output::time(&c.create_time)),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(namespace: Option<&str>) -> Connector {
        Connector {
            name: "projects/p/locations/local/connectors/app".into(),
            network: "projects/p/networks/default".into(),
            ip_cidr_range: "10.0.0.16/28".into(),
            state: cacheplane_types::ConnectorState::Ready,
            host: namespace.map(|_| "hosts/h".into()),
            namespace: namespace.map(String::from),
            create_time: chrono::Utc::now(),
        }
    }

    #[test]
    fn exec_runs_ip_netns_exec_in_the_namespace() {
        let cmd = vec!["redis-cli".to_string(), "ping".into()];
        let argv = exec_argv(&connector(Some("cpc-0123456789ab")), &cmd).unwrap();
        assert_eq!(
            argv,
            [
                "ip",
                "netns",
                "exec",
                "cpc-0123456789ab",
                "redis-cli",
                "ping"
            ]
        );
        let e = exec_argv(&connector(None), &cmd).unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
