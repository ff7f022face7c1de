//! `cachectl instances …`: the managed caches. The flags of create, update and scale are
//! in `args`, what each of those does in its own module, and how an instance is shown in
//! `view`.

use cacheplane_types::{
    FailoverRequest, Instance, InstanceAuthString, InstanceNodeMetrics, ListInstancesResponse,
    Operation,
};

mod args;
mod create;
mod finish;
mod tls;
mod update;
mod view;

pub use create::post_create;
pub use view::{print, table};

use super::list::list;
use super::operations::{self, LroArgs};
use super::{confirm, Ctx, Located};
use crate::error::{Error, Result};
use crate::output::{self, emit, Format};
use args::{CreateArgs, DataProtectionArg, ScaleArgs, UpdateArgs};
use create::create;
use finish::{finish, print_async, request_id};
use update::update;

/// The API's name for the collection.
pub const COLLECTION: &str = "instances";

/// Managed Redis caches.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates an instance and waits until it is READY, then shows it.
    ///
    /// STANDARD_HA keeps a primary and replicas in different zones and fails over by
    /// itself. It takes exactly one replica unless read replicas are enabled (then 1-5):
    /// a --replica-count above 1 without --read-replicas-mode therefore enables read
    /// replicas.
    #[command(after_help = "Examples:\n  \
        cachectl instances create my-cache --region local\n  \
        cachectl instances create my-cache --tier standard-ha --size 1 --replica-count 2\n  \
        cachectl instances create my-cache --tier standard-ha --zone local-a --alternative-zone local-b \\\n      \
        --redis-config maxmemory-policy=allkeys-lru --labels env=dev,team=web\n  \
        cachectl instances create my-cache --async --format json")]
    Create(CreateArgs),
    /// Shows an instance: endpoint, state and nodes.
    #[command(after_help = "Examples:\n  \
        cachectl instances describe my-cache\n  \
        cachectl instances describe my-cache --format json | jq -r .host\n  \
        cachectl instances describe my-cache --metrics")]
    Describe {
        /// The instance's id, or its full name.
        instance: String,
        /// Show the current figures of its nodes instead (memory, clients, commands,
        /// hit ratio, evictions, replication lag, restarts), as their agents last
        /// reported them (each agent's /metrics has them as time series).
        #[arg(long)]
        metrics: bool,
    },
    /// Lists the project's instances in the region (every region when none is set).
    #[command(after_help = "Examples:\n  \
        cachectl instances list\n  \
        cachectl instances list --region - --filter 'state=READY AND labels.env=prod'\n  \
        cachectl instances list --limit 10 --format json")]
    List {
        /// Only instances matching every term: state=READY, tier=STANDARD_HA,
        /// labels.KEY=VALUE or labels.KEY:* (has the label), joined by spaces or AND.
        #[arg(long)]
        filter: Option<String>,
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Changes an instance's size, replicas, settings, labels or display name; waits
    /// until the change is applied, then shows the instance.
    ///
    /// Read replicas are enabled on their own, in a call without other changes; once
    /// enabled they cannot be disabled.
    #[command(after_help = "Examples:\n  \
        cachectl instances update my-cache --size 2\n  \
        cachectl instances update my-cache --update-redis-config maxmemory-policy=allkeys-lru\n  \
        cachectl instances update my-cache --update-labels env=prod --remove-labels team\n  \
        cachectl instances update my-cache --read-replicas-mode enabled")]
    Update(UpdateArgs),
    /// Changes an instance's size or replica count: the short form of update.
    #[command(after_help = "Examples:\n  \
        cachectl instances scale my-cache --size 4\n  \
        cachectl instances scale my-cache --replica-count 3")]
    Scale(ScaleArgs),
    /// Deletes an instance, in any state, and waits until it is gone. Asks for
    /// confirmation on a terminal; without a terminal it refuses unless --quiet is given.
    #[command(after_help = "Examples:\n  \
        cachectl instances delete my-cache\n  \
        cachectl instances delete my-cache --quiet --async")]
    Delete {
        /// The instance's id, or its full name.
        instance: String,
        /// Do not ask for confirmation (needed when standard input is not a terminal).
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Promotes a replica of a STANDARD_HA instance to primary; the endpoint moves with
    /// it. Waits until it is done, then shows the instance.
    #[command(after_help = "Examples:\n  \
        cachectl instances failover my-cache\n  \
        cachectl instances failover my-cache --data-protection-mode force-data-loss")]
    Failover {
        /// The instance's id, or its full name.
        instance: String,
        /// limited-data-loss refuses while the best replica lags by 30 MB or more;
        /// force-data-loss fails over whatever the lag.
        #[arg(long, value_enum, default_value_t = DataProtectionArg::LimitedDataLoss)]
        data_protection_mode: DataProtectionArg,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Shows the AUTH string clients send (empty when AUTH is off).
    #[command(after_help = "Examples:\n  \
        cachectl instances get-auth-string my-cache\n  \
        cachectl instances get-auth-string my-cache --format json | jq -r .authString")]
    GetAuthString {
        /// The instance's id, or its full name.
        instance: String,
    },
    /// Prints REDISHOST, REDISPORT and REDISAUTH lines for an application to source;
    /// for a TLS instance also REDISTLS=1 and REDISCACERT, the file it writes the
    /// instance's CA to.
    #[command(after_help = "Examples:\n  \
        source <(cachectl instances env my-cache)\n  \
        redis-cli -h \"$REDISHOST\" -p \"$REDISPORT\" -a \"$REDISAUTH\" ping\n  \
        redis-cli --tls --cacert \"$REDISCACERT\" -h \"$REDISHOST\" -p \"$REDISPORT\" -a \"$REDISAUTH\" ping\n  \
        cachectl instances env my-cache --export > my-cache.env")]
    Env {
        /// The instance's id, or its full name.
        instance: String,
        /// Prefix each line with `export ` so that child processes see the variables.
        #[arg(long)]
        export: bool,
        /// For a TLS instance: where to write its CA [default: server-ca/PROJECT/REGION/
        /// INSTANCE.pem next to cachectl's configuration file].
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// Writes the CA certificate of a TLS instance (PEM): what clients pass as
    /// `--cacert`. To standard output unless --out is given.
    #[command(after_help = "Examples:\n  \
        cachectl instances get-server-ca my-cache --out ca.pem\n  \
        redis-cli --tls --cacert ca.pem -h HOST -p 6378 -a AUTH ping")]
    GetServerCa {
        /// The instance's id, or its full name.
        instance: String,
        /// The file to write.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Issues a new server certificate for a TLS instance from its CA and reloads it on
    /// every node, without a restart; clients keep trusting the same CA. Waits until
    /// every node serves it, then shows the instance.
    #[command(after_help = "Examples:\n  \
        cachectl instances rotate-server-certificate my-cache")]
    RotateServerCertificate {
        /// The instance's id, or its full name.
        instance: String,
        #[command(flatten)]
        lro: LroArgs,
    },
}

/// Runs `instances …`.
pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    match cmd {
        Command::Create(a) => create(ctx, a).await,
        Command::Describe {
            instance,
            metrics: false,
        } => {
            let inst = get(ctx, &ctx.located(COLLECTION, &instance)?).await?;
            print(ctx.format, &inst)
        }
        Command::Describe {
            instance,
            metrics: true,
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let mut path = l.path(COLLECTION);
            path.push("nodeMetrics");
            let m: InstanceNodeMetrics = ctx.client.get(&path, &[]).await?;
            emit(ctx.format, &m, view::metrics_table)
        }
        Command::List { filter, limit } => {
            let path = ctx.list_path(COLLECTION)?;
            let filter: Vec<(&str, &str)> = filter.iter().map(|f| ("filter", f.as_str())).collect();
            let all = list::<ListInstancesResponse>(ctx, &path, &filter, limit).await?;
            emit(ctx.format, &all, |all| view::list_table(all))
        }
        Command::Update(a) => update(ctx, a).await,
        Command::Scale(a) => {
            let args = UpdateArgs {
                instance: a.instance,
                resize: a.resize,
                lro: a.lro,
                ..UpdateArgs::default()
            };
            update(ctx, args).await
        }
        Command::Delete {
            instance,
            quiet,
            lro,
        } => delete(ctx, &instance, quiet, lro).await,
        Command::Failover {
            instance,
            data_protection_mode,
            lro,
        } => failover(ctx, &instance, data_protection_mode, lro).await,
        Command::GetAuthString { instance } => {
            let auth = auth_string(ctx, &ctx.located(COLLECTION, &instance)?).await?;
            emit(ctx.format, &auth, |a| {
                output::fields([("authString", a.auth_string.clone())])
            })
        }
        Command::Env {
            instance,
            export,
            ca_file,
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let inst = get(ctx, &l).await?;
            let auth = if inst.auth_enabled {
                auth_string(ctx, &l).await?.auth_string
            } else {
                String::new()
            };
            let ca = match inst.server_ca_certs.is_empty() {
                true => None,
                false => {
                    let path = match ca_file {
                        Some(p) => p,
                        None => tls::default_ca_file(&l)?,
                    };
                    tls::write_ca(&path, &tls::ca_pem(&inst)?)?;
                    Some(path)
                }
            };
            print!("{}", view::env_lines(&inst, &auth, ca.as_deref(), export));
            Ok(())
        }
        Command::GetServerCa { instance, out } => {
            let inst = get(ctx, &ctx.located(COLLECTION, &instance)?).await?;
            let pem = tls::ca_pem(&inst)?;
            match out {
                Some(path) => {
                    tls::write_ca(&path, &pem)?;
                    eprintln!("Wrote the CA of {} to {}.", inst.name, path.display());
                }
                None => print!("{pem}"),
            }
            Ok(())
        }
        Command::RotateServerCertificate { instance, lro } => {
            tls::rotate(ctx, &instance, lro).await
        }
    }
}

/// The instance `l`.
pub async fn get(ctx: &Ctx, l: &Located) -> Result<Instance> {
    ctx.client.get(&l.path(COLLECTION), &[]).await
}

/// The instance `l`, or `None` when there is no such instance.
pub async fn find(ctx: &Ctx, l: &Located) -> Result<Option<Instance>> {
    match get(ctx, l).await {
        Ok(inst) => Ok(Some(inst)),
        Err(Error::Api { status, .. }) if status.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// The AUTH string of the instance `l`.
pub async fn auth_string(ctx: &Ctx, l: &Located) -> Result<InstanceAuthString> {
    let mut path = l.path(COLLECTION);
    path.push("authString");
    ctx.client.get(&path, &[]).await
}

async fn failover(ctx: &Ctx, instance: &str, mode: DataProtectionArg, lro: LroArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, instance)?;
    let mut path = l.path(COLLECTION);
    path.push("failover");
    let body = FailoverRequest {
        data_protection_mode: Some(mode.into()),
    };
    let op: Operation = ctx.client.post(&path, &request_id(&lro), &body).await?;
    finish(ctx, op, &lro).await
}

/// Starts deleting the instance `l` (the delete operation).
pub async fn post_delete(ctx: &Ctx, l: &Located, lro: &LroArgs) -> Result<Operation> {
    ctx.client
        .delete(&l.path(COLLECTION), &request_id(lro))
        .await
}

async fn delete(ctx: &Ctx, instance: &str, quiet: bool, lro: LroArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, instance)?;
    confirm(
        &format!(
            "Delete instance {} (project {}, region {}) and all its data",
            l.id, l.project, l.region
        ),
        quiet,
    )?;
    let op = post_delete(ctx, &l, &lro).await?;
    if lro.no_wait {
        return print_async(ctx, op);
    }
    let op = operations::wait(ctx, op, lro.timeout).await?;
    match ctx.format {
        Format::Table => {
            println!("Deleted instance {}.", op.metadata.target);
            Ok(())
        }
        _ => operations::print(ctx, &op),
    }
}
