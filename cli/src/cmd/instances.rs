//! `cachectl instances …`: the managed caches.

use std::collections::BTreeMap;

use cacheplane_types::{
    CreateInstanceRequest, DataProtectionMode, FailoverRequest, Instance, InstanceAuthString,
    ListInstancesResponse, Operation, PatchInstanceRequest, ReadReplicasMode, Tier,
};

mod view;

pub use view::print;

use super::operations::{self, LroArgs};
use super::{confirm, parse_kv, Ctx, Located};
use crate::error::{Error, Result};
use crate::output::{self, emit, Format};

const COLLECTION: &str = "instances";

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
        cachectl instances describe my-cache --format json | jq -r .host")]
    Describe {
        /// The instance's id, or its full name.
        instance: String,
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
    /// Prints REDISHOST, REDISPORT and REDISAUTH lines for an application to source.
    #[command(after_help = "Examples:\n  \
        source <(cachectl instances env my-cache)\n  \
        redis-cli -h \"$REDISHOST\" -p \"$REDISPORT\" -a \"$REDISAUTH\" ping\n  \
        cachectl instances env my-cache --export > my-cache.env")]
    Env {
        /// The instance's id, or its full name.
        instance: String,
        /// Prefix each line with `export ` so that child processes see the variables.
        #[arg(long)]
        export: bool,
    },
}

/// `--tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TierArg {
    /// One node, no replicas (BASIC).
    Basic,
    /// A primary and replicas across zones with automatic failover (STANDARD_HA).
    StandardHa,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Tier {
        match t {
            TierArg::Basic => Tier::Basic,
            TierArg::StandardHa => Tier::StandardHa,
        }
    }
}

/// `--read-replicas-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadReplicasArg {
    /// A read endpoint spreads connections over the replicas.
    Enabled,
    /// No read endpoint.
    Disabled,
}

impl From<ReadReplicasArg> for ReadReplicasMode {
    fn from(m: ReadReplicasArg) -> ReadReplicasMode {
        match m {
            ReadReplicasArg::Enabled => ReadReplicasMode::ReadReplicasEnabled,
            ReadReplicasArg::Disabled => ReadReplicasMode::ReadReplicasDisabled,
        }
    }
}

/// `--data-protection-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataProtectionArg {
    /// Refuse while the best replica lags by 30 MB or more.
    LimitedDataLoss,
    /// Fail over whatever the lag.
    ForceDataLoss,
}

impl From<DataProtectionArg> for DataProtectionMode {
    fn from(m: DataProtectionArg) -> DataProtectionMode {
        match m {
            DataProtectionArg::LimitedDataLoss => DataProtectionMode::LimitedDataLoss,
            DataProtectionArg::ForceDataLoss => DataProtectionMode::ForceDataLoss,
        }
    }
}

/// `instances create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The new instance's id: 1-40 lowercase letters, digits or hyphens.
    instance: String,
    /// The service tier.
    #[arg(long, value_enum, default_value_t = TierArg::Basic)]
    tier: TierArg,
    /// Memory limit in GB (GiB).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    size: i64,
    /// Replicas (STANDARD_HA): 1 without read replicas, 1-5 with them. More than 1
    /// enables read replicas unless --read-replicas-mode says otherwise.
    #[arg(long, allow_negative_numbers = true)]
    replica_count: Option<i64>,
    /// Serve reads from the replicas on a read endpoint (STANDARD_HA).
    #[arg(long, value_enum)]
    read_replicas_mode: Option<ReadReplicasArg>,
    /// Zone of the primary (chosen by the system if omitted).
    #[arg(long)]
    zone: Option<String>,
    /// Zone of the first replica (STANDARD_HA; chosen by the system if omitted).
    #[arg(long)]
    alternative_zone: Option<String>,
    /// The network to reach it from, by id or full name (default: `default`).
    #[arg(long)]
    network: Option<String>,
    /// The instance's address range: a CIDR of /28 or larger inside the network's pool
    /// (allocated if omitted).
    #[arg(long)]
    reserved_ip_range: Option<String>,
    /// Engine version, e.g. REDIS_7_0 (the default).
    #[arg(long)]
    redis_version: Option<String>,
    /// Engine settings, KEY=VALUE[,KEY=VALUE…], e.g. maxmemory-policy=allkeys-lru.
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    redis_config: Vec<(String, String)>,
    /// Labels, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    labels: Vec<(String, String)>,
    /// Free text for people, at most 80 characters.
    #[arg(long)]
    display_name: Option<String>,
    /// Let clients in without AUTH (AUTH is on by default).
    #[arg(long)]
    no_auth: bool,
    #[command(flatten)]
    lro: LroArgs,
}

/// `instances update`.
#[derive(Debug, Default, clap::Args)]
pub struct UpdateArgs {
    /// The instance's id, or its full name.
    instance: String,
    /// New memory limit in GB.
    #[arg(long, allow_negative_numbers = true)]
    size: Option<i64>,
    /// New number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    replica_count: Option<i64>,
    /// `enabled` turns read replicas on (alone, without other changes).
    #[arg(long, value_enum)]
    read_replicas_mode: Option<ReadReplicasArg>,
    /// With --read-replicas-mode enabled: the further /28 the read endpoint needs, or
    /// `auto` (the default) to allocate one.
    #[arg(long, requires = "read_replicas_mode")]
    secondary_ip_range: Option<String>,
    /// Engine settings to set, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    update_redis_config: Vec<(String, String)>,
    /// Engine settings to remove, KEY[,KEY…].
    #[arg(long, value_delimiter = ',')]
    remove_redis_config: Vec<String>,
    /// Labels to set, KEY=VALUE[,KEY=VALUE…].
    #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
    update_labels: Vec<(String, String)>,
    /// Labels to remove, KEY[,KEY…].
    #[arg(long, value_delimiter = ',')]
    remove_labels: Vec<String>,
    /// New display name.
    #[arg(long)]
    display_name: Option<String>,
    #[command(flatten)]
    lro: LroArgs,
}

/// `instances scale`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["size", "replica_count"])))]
pub struct ScaleArgs {
    /// The instance's id, or its full name.
    instance: String,
    /// New memory limit in GB.
    #[arg(long, allow_negative_numbers = true)]
    size: Option<i64>,
    /// New number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    replica_count: Option<i64>,
    #[command(flatten)]
    lro: LroArgs,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    match cmd {
        Command::Create(a) => create(ctx, a).await,
        Command::Describe { instance } => {
            let inst = get(ctx, &ctx.located(COLLECTION, &instance)?).await?;
            print(ctx.format, &inst)
        }
        Command::List { filter, limit } => list(ctx, filter, limit).await,
        Command::Update(a) => update(ctx, a).await,
        Command::Scale(a) => {
            let args = UpdateArgs {
                instance: a.instance,
                size: a.size,
                replica_count: a.replica_count,
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
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let mut path = l.path(COLLECTION);
            path.push("failover");
            let body = FailoverRequest {
                data_protection_mode: Some(data_protection_mode.into()),
            };
            let op: Operation = ctx.client.post(&path, &request_id(&lro), &body).await?;
            finish(ctx, op, &lro).await
        }
        Command::GetAuthString { instance } => {
            let auth = auth_string(ctx, &ctx.located(COLLECTION, &instance)?).await?;
            emit(ctx.format, &auth, |a| {
                output::fields([("authString", a.auth_string.clone())])
            })
        }
        Command::Env { instance, export } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let inst = get(ctx, &l).await?;
            let auth = if inst.auth_enabled {
                auth_string(ctx, &l).await?.auth_string
            } else {
                String::new()
            };
            print!("{}", view::env_lines(&inst, &auth, export));
            Ok(())
        }
    }
}

async fn get(ctx: &Ctx, l: &Located) -> Result<Instance> {
    ctx.client.get(&l.path(COLLECTION), &[]).await
}

async fn auth_string(ctx: &Ctx, l: &Located) -> Result<InstanceAuthString> {
    let mut path = l.path(COLLECTION);
    path.push("authString");
    ctx.client.get(&path, &[]).await
}

fn request_id(lro: &LroArgs) -> Vec<(&'static str, &str)> {
    lro.request_id
        .as_deref()
        .map(|r| vec![("requestId", r)])
        .unwrap_or_default()
}

/// The read replicas mode to ask for: the user's, or enabled when they asked STANDARD_HA
/// for more than one replica (the only way the API allows that), with a note saying so.
fn read_replicas_for(
    tier: TierArg,
    replicas: Option<i64>,
    mode: Option<ReadReplicasArg>,
) -> (Option<ReadReplicasMode>, bool) {
    match (tier, replicas, mode) {
        (_, _, Some(m)) => (Some(m.into()), false),
        (TierArg::StandardHa, Some(n), None) if n > 1 => {
            (Some(ReadReplicasMode::ReadReplicasEnabled), true)
        }
        _ => (None, false),
    }
}

async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, &a.instance)?;
    let (mode, implied) = read_replicas_for(a.tier, a.replica_count, a.read_replicas_mode);
    if implied {
        eprintln!(
            "note: enabling read replicas: STANDARD_HA allows more than one replica only with \
             them (pass --read-replicas-mode disabled to refuse)"
        );
    }
    let req = CreateInstanceRequest {
        display_name: a.display_name,
        tier: a.tier.into(),
        memory_size_gb: a.size,
        replica_count: a.replica_count,
        read_replicas_mode: mode,
        location_id: a.zone,
        alternative_location_id: a.alternative_zone,
        redis_version: a.redis_version,
        redis_configs: a.redis_config.into_iter().collect(),
        authorized_network: a.network,
        reserved_ip_range: a.reserved_ip_range,
        auth_enabled: a.no_auth.then_some(false),
        labels: a.labels.into_iter().collect(),
    };
    let mut query = vec![("instanceId", l.id.as_str())];
    query.extend(request_id(&a.lro));
    let op: Operation = ctx
        .client
        .post(&l.collection(COLLECTION), &query, &req)
        .await?;
    finish(ctx, op, &a.lro).await
}

async fn list(ctx: &Ctx, filter: Option<String>, limit: usize) -> Result<()> {
    let project = ctx.project()?;
    let path = [
        "v1",
        "projects",
        project,
        "locations",
        ctx.region_or_all(),
        COLLECTION,
    ];
    let mut all: Vec<Instance> = Vec::new();
    let mut token: Option<String> = None;
    while all.len() < limit {
        let size = (limit - all.len()).min(1000).to_string();
        let mut query = vec![("pageSize", size.as_str())];
        if let Some(f) = &filter {
            query.push(("filter", f));
        }
        if let Some(t) = &token {
            query.push(("pageToken", t));
        }
        let page: ListInstancesResponse = ctx.client.get(&path, &query).await?;
        all.extend(page.instances);
        match page.next_page_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    all.truncate(limit);
    emit(ctx.format, &all, |all| view::list_table(all))
}

/// Builds the patch and its update mask from the flags. Engine settings and labels are
/// whole maps on the wire, so changing some keys means reading the instance and sending
/// the merged map with the etag read (the API refuses it if the instance changed since).
async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, &a.instance)?;
    let lro = &a.lro;
    let mut mask: Vec<&str> = Vec::new();
    let mut req = PatchInstanceRequest::default();
    let changes_configs = !a.update_redis_config.is_empty() || !a.remove_redis_config.is_empty();
    let changes_labels = !a.update_labels.is_empty() || !a.remove_labels.is_empty();
    let others = a.size.is_some()
        || a.replica_count.is_some()
        || a.display_name.is_some()
        || changes_configs
        || changes_labels;
    if let Some(mode) = a.read_replicas_mode {
        if others {
            return Err(Error::Usage(
                "--read-replicas-mode is changed on its own: run the other changes in a \
                 second `cachectl instances update`"
                    .into(),
            ));
        }
        req.read_replicas_mode = Some(mode.into());
        mask.push("readReplicasMode");
        if mode == ReadReplicasArg::Enabled {
            req.secondary_ip_range = Some(a.secondary_ip_range.unwrap_or_else(|| "auto".into()));
            mask.push("secondaryIpRange");
        }
    } else if !others {
        return Err(Error::Usage(
            "nothing to change: pass --size, --replica-count, --read-replicas-mode, \
             --update-redis-config, --remove-redis-config, --update-labels, --remove-labels \
             or --display-name"
                .into(),
        ));
    }
    if let Some(gb) = a.size {
        req.memory_size_gb = Some(gb);
        mask.push("memorySizeGb");
    }
    if let Some(n) = a.replica_count {
        req.replica_count = Some(n);
        mask.push("replicaCount");
    }
    if let Some(d) = a.display_name {
        req.display_name = Some(d);
        mask.push("displayName");
    }
    if changes_configs || changes_labels {
        let current = get(ctx, &l).await?;
        req.etag = Some(current.etag.clone());
        if changes_configs {
            let merged = merge(
                current.redis_configs,
                a.update_redis_config,
                &a.remove_redis_config,
            );
            req.redis_configs = Some(merged);
            mask.push("redisConfigs");
        }
        if changes_labels {
            req.labels = Some(merge(current.labels, a.update_labels, &a.remove_labels));
            mask.push("labels");
        }
    }
    let mask = mask.join(",");
    let mut query = vec![("updateMask", mask.as_str())];
    query.extend(request_id(lro));
    let op: Operation = ctx.client.patch(&l.path(COLLECTION), &query, &req).await?;
    finish(ctx, op, lro).await
}

fn merge(
    mut map: BTreeMap<String, String>,
    set: Vec<(String, String)>,
    remove: &[String],
) -> BTreeMap<String, String> {
    for k in remove {
        map.remove(k.trim());
    }
    map.extend(set);
    map
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
    let op: Operation = ctx
        .client
        .delete(&l.path(COLLECTION), &request_id(&lro))
        .await?;
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

/// After a mutating call: with --async, print the operation; otherwise wait for it and
/// print the instance it left.
async fn finish(ctx: &Ctx, op: Operation, lro: &LroArgs) -> Result<()> {
    if lro.no_wait {
        return print_async(ctx, op);
    }
    let op = operations::wait(ctx, op, lro.timeout).await?;
    match &op.response {
        Some(inst) => print(ctx.format, inst),
        None => operations::print(ctx, &op),
    }
}

fn print_async(ctx: &Ctx, op: Operation) -> Result<()> {
    operations::print(ctx, &op)?;
    let op = operations::check(op)?;
    if !op.done && ctx.format == Format::Table {
        eprintln!("`cachectl operations wait {}` waits for it.", op.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_one_ha_replica_enables_read_replicas() {
        use ReadReplicasArg::*;
        use TierArg::*;
        let on = Some(ReadReplicasMode::ReadReplicasEnabled);
        assert_eq!(read_replicas_for(StandardHa, Some(2), None), (on, true));
        assert_eq!(read_replicas_for(StandardHa, Some(1), None), (None, false));
        assert_eq!(read_replicas_for(StandardHa, None, None), (None, false));
        assert_eq!(
            read_replicas_for(StandardHa, Some(2), Some(Disabled)),
            (Some(ReadReplicasMode::ReadReplicasDisabled), false)
        );
        assert_eq!(read_replicas_for(Basic, Some(2), None), (None, false));
        assert_eq!(read_replicas_for(Basic, None, Some(Enabled)), (on, false));
    }

    #[test]
    fn merges_maps() {
        let m = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        let m = merge(
            m,
            vec![("c".into(), "3".into()), ("a".into(), "9".into())],
            &["b".into()],
        );
        assert_eq!(output::map(&m), "a=9,c=3");
    }
}
