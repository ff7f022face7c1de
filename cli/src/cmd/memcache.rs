//! `cachectl memcache instances …`: Memcached instances (docs/memcached.md), pools of
//! memcached nodes that clients find through a discovery endpoint.

use std::collections::BTreeMap;

use cacheplane_types::{
    ApplyMemcacheParametersRequest, CreateMemcacheInstanceRequest, ListMemcacheInstancesResponse,
    MemcacheInstance, MemcacheNodeConfig, MemcacheParameters, Operation, OperationResponse,
    PatchMemcacheInstanceRequest, UpdateMemcacheParametersRequest,
};

use super::list::{list, Page};
use super::operations::{self, LroArgs};
use super::{confirm, parse_kv, Ctx, Located};
use crate::error::{Error, Result};
use crate::output::{self, emit, Format};

/// The API's name for the collection.
pub const COLLECTION: &str = "memcacheInstances";

/// `cachectl memcache …`.
#[derive(Debug, clap::Subcommand)]
pub enum MemcacheCommand {
    /// Memcached instances: nodes of memcached found through a discovery endpoint.
    #[command(subcommand)]
    Instances(Command),
}

/// `cachectl memcache instances …`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Creates a Memcached instance and waits until every node is READY, then shows it.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances create sessions --node-count 3 --cpu-count 1 --memory-size-mb 1024\n  \
        cachectl memcache instances create pages --node-count 2 --zones local-a,local-b \\\n    \
        --parameters max-item-size=2097152,idle-timeout=300")]
    Create {
        /// The new instance's id: 1-40 lowercase letters, digits or hyphens.
        instance: String,
        /// Number of nodes (1-13).
        #[arg(long)]
        node_count: i64,
        /// Worker threads per node (1-32).
        #[arg(long, default_value_t = 1)]
        cpu_count: i64,
        /// Item memory per node in MB (at least 1024).
        #[arg(long, default_value_t = 1024)]
        memory_size_mb: i64,
        /// Zones to spread the nodes over [default: every zone of the region].
        #[arg(long, value_delimiter = ',')]
        zones: Vec<String>,
        /// The network it is reachable from [default: default].
        #[arg(long)]
        network: Option<String>,
        /// Free text for people.
        #[arg(long)]
        display_name: Option<String>,
        /// Labels, KEY=VALUE,… .
        #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
        labels: Vec<(String, String)>,
        /// Memcached parameters, NAME=VALUE,… (docs/memcached.md lists them).
        #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
        parameters: Vec<(String, String)>,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Shows an instance: discovery endpoint, nodes, parameters, state.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances describe sessions\n  \
        cachectl memcache instances describe sessions --format json | jq -r .discoveryEndpoint")]
    Describe {
        /// The instance's id, or its full name.
        instance: String,
    },
    /// Lists the project's Memcached instances in the region (every region when none is
    /// set).
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances list\n  \
        cachectl memcache instances list --format yaml")]
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Changes the node count (online: the nodes that stay keep their data), the display
    /// name or the labels; waits for it, then shows the instance.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances update sessions --node-count 5\n  \
        cachectl memcache instances update sessions --update-labels env=prod")]
    Update {
        /// The instance's id, or its full name.
        instance: String,
        /// New number of nodes (1-13).
        #[arg(long)]
        node_count: Option<i64>,
        /// New display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Labels to add or change, KEY=VALUE,… .
        #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
        update_labels: Vec<(String, String)>,
        /// Labels to remove, KEY,… .
        #[arg(long, value_delimiter = ',')]
        remove_labels: Vec<String>,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Stages parameters (no node changes until apply-parameters), merged into the ones
    /// staged already; shows the instance.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances update-parameters sessions --set idle-timeout=300\n  \
        cachectl memcache instances update-parameters sessions --unset max-item-size")]
    UpdateParameters {
        /// The instance's id, or its full name.
        instance: String,
        /// Parameters to set, NAME=VALUE,… .
        #[arg(long, value_parser = parse_kv, value_delimiter = ',')]
        set: Vec<(String, String)>,
        /// Parameters to remove (back to memcached's default), NAME,… .
        #[arg(long, value_delimiter = ',')]
        unset: Vec<String>,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Gives nodes the staged parameters: each node whose parameters change restarts
    /// (empty). Waits until they run them, then shows the instance.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances apply-parameters sessions --node node-1\n  \
        cachectl memcache instances apply-parameters sessions --all")]
    ApplyParameters {
        /// The instance's id, or its full name.
        instance: String,
        /// The nodes (`node-1`, …), NODE,… .
        #[arg(long = "node", value_delimiter = ',', conflicts_with = "all")]
        nodes: Vec<String>,
        /// Every node.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Deletes an instance: every node stops and its range is freed. Asks for
    /// confirmation on a terminal; without a terminal it refuses unless --quiet is given.
    #[command(after_help = "Examples:\n  \
        cachectl memcache instances delete sessions --quiet")]
    Delete {
        /// The instance's id, or its full name.
        instance: String,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        lro: LroArgs,
    },
    /// Prints shell lines for clients: MEMCACHED_DISCOVERY (the discovery endpoint,
    /// `host:port`) and MEMCACHED_SERVERS (the nodes, comma-separated).
    #[command(after_help = "Examples:\n  \
        source <(cachectl memcache instances env sessions)\n  \
        printf 'config get cluster\\r\\n' | nc -q1 ${MEMCACHED_DISCOVERY%:*} ${MEMCACHED_DISCOVERY#*:}")]
    Env {
        /// The instance's id, or its full name.
        instance: String,
        /// Prefix each line with `export ` so that child processes see the variables.
        #[arg(long)]
        export: bool,
    },
}

impl Page for ListMemcacheInstancesResponse {
    type Item = MemcacheInstance;
    fn into_parts(self) -> (Vec<MemcacheInstance>, Option<String>) {
        (self.instances, self.next_page_token)
    }
}

/// Runs `memcache …`.
pub async fn run(ctx: &Ctx, cmd: MemcacheCommand) -> Result<()> {
    let MemcacheCommand::Instances(cmd) = cmd;
    match cmd {
        Command::Create {
            instance,
            node_count,
            cpu_count,
            memory_size_mb,
            zones,
            network,
            display_name,
            labels,
            parameters,
            lro,
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let body = CreateMemcacheInstanceRequest {
                display_name,
                labels: labels.into_iter().collect(),
                authorized_network: network,
                zones,
                node_count: Some(node_count),
                node_config: Some(MemcacheNodeConfig {
                    cpu_count,
                    memory_size_mb,
                }),
                memcache_version: None,
                parameters: (!parameters.is_empty()).then(|| MemcacheParameters {
                    id: String::new(),
                    params: parameters.into_iter().collect(),
                }),
            };
            let mut query = vec![("instanceId", l.id.as_str())];
            query.extend(lro.request_id_query());
            let op: Operation = ctx
                .client
                .post(&l.collection(COLLECTION), &query, &body)
                .await?;
            finish(ctx, op, &lro).await
        }
        Command::Describe { instance } => {
            let l = ctx.located(COLLECTION, &instance)?;
            print(ctx.format, &get(ctx, &l).await?)
        }
        Command::List { limit } => {
            let path = ctx.list_path(COLLECTION)?;
            let all = list::<ListMemcacheInstancesResponse>(ctx, &path, &[], limit).await?;
            emit(ctx.format, &all, |all| table(all))
        }
        Command::Update {
            instance,
            node_count,
            display_name,
            update_labels,
            remove_labels,
            lro,
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            let mut mask = Vec::new();
            let mut req = PatchMemcacheInstanceRequest::default();
            if let Some(n) = node_count {
                req.node_count = Some(n);
                mask.push("nodeCount");
            }
            if let Some(d) = display_name {
                req.display_name = Some(d);
                mask.push("displayName");
            }
            if !update_labels.is_empty() || !remove_labels.is_empty() {
                let current = get(ctx, &l).await?;
                req.etag = Some(current.etag);
                req.labels = Some(merge(current.labels, update_labels, &remove_labels));
                mask.push("labels");
            }
            if mask.is_empty() {
                return Err(Error::Usage(
                    "nothing to change: pass --node-count, --display-name, --update-labels \
                     or --remove-labels"
                        .into(),
                ));
            }
            let mask = mask.join(",");
            let mut query = vec![("updateMask", mask.as_str())];
            query.extend(lro.request_id_query());
            let op: Operation = ctx.client.patch(&l.path(COLLECTION), &query, &req).await?;
            finish(ctx, op, &lro).await
        }
        Command::UpdateParameters {
            instance,
            set,
            unset,
            lro,
        } => {
            if set.is_empty() && unset.is_empty() {
                return Err(Error::Usage(
                    "nothing to change: pass --set or --unset".into(),
                ));
            }
            let l = ctx.located(COLLECTION, &instance)?;
            let current = get(ctx, &l).await?;
            let body = UpdateMemcacheParametersRequest {
                update_mask: "params".into(),
                parameters: MemcacheParameters {
                    id: String::new(),
                    params: merge(current.parameters.params, set, &unset),
                },
            };
            let op = custom(ctx, &l, "updateParameters", &lro, &body).await?;
            finish(ctx, op, &lro).await
        }
        Command::ApplyParameters {
            instance,
            nodes,
            all,
            lro,
        } => {
            if nodes.is_empty() && !all {
                return Err(Error::Usage(
                    "name the nodes with --node node-1,… or pass --all".into(),
                ));
            }
            let l = ctx.located(COLLECTION, &instance)?;
            let body = ApplyMemcacheParametersRequest {
                node_ids: nodes,
                apply_all: all,
            };
            let op = custom(ctx, &l, "applyParameters", &lro, &body).await?;
            finish(ctx, op, &lro).await
        }
        Command::Delete {
            instance,
            quiet,
            lro,
        } => {
            let l = ctx.located(COLLECTION, &instance)?;
            confirm(
                &format!(
                    "Delete Memcached instance {} (project {}, region {}) and all its data",
                    l.id, l.project, l.region
                ),
                quiet,
            )?;
            let query = lro.request_id_query();
            let op: Operation = ctx.client.delete(&l.path(COLLECTION), &query).await?;
            if lro.no_wait {
                return print_async(ctx, op);
            }
            let op = operations::wait(ctx, op, lro.timeout).await?;
            match ctx.format {
                Format::Table => {
                    println!("Deleted Memcached instance {}.", op.metadata.target);
                    Ok(())
                }
                _ => operations::print(ctx, &op),
            }
        }
        Command::Env { instance, export } => {
            let l = ctx.located(COLLECTION, &instance)?;
            print!("{}", env_lines(&get(ctx, &l).await?, export));
            Ok(())
        }
    }
}

async fn get(ctx: &Ctx, l: &Located) -> Result<MemcacheInstance> {
    ctx.client.get(&l.path(COLLECTION), &[]).await
}

/// `POST …/memcacheInstances/{id}:VERB`.
async fn custom<B: serde::Serialize>(
    ctx: &Ctx,
    l: &Located,
    verb: &str,
    lro: &LroArgs,
    body: &B,
) -> Result<Operation> {
    let segment = format!("{}:{verb}", l.id);
    let mut path = l.collection(COLLECTION);
    path.push(&segment);
    ctx.client.post(&path, &lro.request_id_query(), body).await
}

/// With --async, prints the operation; otherwise waits and prints the instance it left.
async fn finish(ctx: &Ctx, op: Operation, lro: &LroArgs) -> Result<()> {
    if lro.no_wait {
        return print_async(ctx, op);
    }
    let op = operations::wait(ctx, op, lro.timeout).await?;
    match &op.response {
        Some(OperationResponse::MemcacheInstance(m)) => print(ctx.format, m),
        _ => operations::print(ctx, &op),
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

/// The `env` lines: the discovery endpoint and the nodes.
pub fn env_lines(m: &MemcacheInstance, export: bool) -> String {
    let prefix = if export { "export " } else { "" };
    let servers: Vec<String> = m
        .memcache_nodes
        .iter()
        .map(|n| format!("{}:{}", n.host, n.port))
        .collect();
    format!(
        "{prefix}MEMCACHED_DISCOVERY={}\n{prefix}MEMCACHED_SERVERS={}\n",
        m.discovery_endpoint,
        servers.join(",")
    )
}

fn table(all: &[MemcacheInstance]) -> String {
    output::rows(
        &[
            "NAME",
            "NODES",
            "NODE_CONFIG",
            "DISCOVERY_ENDPOINT",
            "STATE",
        ],
        all.iter().map(|m| {
            vec![
                output::short(&m.name).to_string(),
                m.node_count.to_string(),
                format!(
                    "{} cpu, {} MB",
                    m.node_config.cpu_count, m.node_config.memory_size_mb
                ),
                m.discovery_endpoint.clone(),
                output::wire(&m.state),
            ]
        }),
    )
}

fn print(format: Format, m: &MemcacheInstance) -> Result<()> {
    emit(format, m, |m| {
        let mut out = output::fields([
            ("name", m.name.clone()),
            ("displayName", m.display_name.clone()),
            ("state", output::wire(&m.state)),
            ("statusMessage", m.status_message.clone()),
            ("discoveryEndpoint", m.discovery_endpoint.clone()),
            ("nodeCount", m.node_count.to_string()),
            ("cpuCount", m.node_config.cpu_count.to_string()),
            ("memorySizeMb", m.node_config.memory_size_mb.to_string()),
            ("memcacheVersion", m.memcache_version.clone()),
            ("memcacheFullVersion", m.memcache_full_version.clone()),
            ("parameters", output::map(&m.parameters.params)),
            ("zones", m.zones.join(",")),
            ("authorizedNetwork", m.authorized_network.clone()),
            ("reservedIpRange", m.reserved_ip_range.clone()),
            ("labels", output::map(&m.labels)),
            ("createTime", output::time(&m.create_time)),
            ("updateTime", output::time(&m.update_time)),
        ]);
        if !m.memcache_nodes.is_empty() {
            out.push_str("\n\nnodes:\n");
            out.push_str(&output::rows(
                &["ID", "ZONE", "ADDRESS", "STATE", "PARAMETERS"],
                m.memcache_nodes.iter().map(|n| {
                    vec![
                        n.node_id.clone(),
                        n.zone.clone(),
                        format!("{}:{}", n.host, n.port),
                        output::wire(&n.state),
                        output::map(&n.parameters.params),
                    ]
                }),
            ));
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use cacheplane_types::{MemcacheInstanceState, MemcacheNode, MemcacheNodeState};

    use super::*;

    #[test]
    fn env_names_the_discovery_endpoint_and_the_nodes() {
        let node = |id: &str, host: &str| MemcacheNode {
            node_id: id.into(),
            zone: "local-a".into(),
            state: MemcacheNodeState::Ready,
            host: host.into(),
            port: 11211,
            parameters: MemcacheParameters::default(),
        };
        let m = MemcacheInstance {
            name: "projects/p/locations/local/memcacheInstances/m".into(),
            display_name: String::new(),
            labels: BTreeMap::new(),
            authorized_network: "projects/p/networks/default".into(),
            zones: vec!["local-a".into()],
            node_count: 2,
            node_config: MemcacheNodeConfig {
                cpu_count: 1,
                memory_size_mb: 1024,
            },
            memcache_version: "MEMCACHE_1_6".into(),
            parameters: MemcacheParameters::default(),
            memcache_nodes: vec![node("node-1", "10.0.0.2"), node("node-2", "10.0.0.3")],
            discovery_endpoint: "10.0.0.1:11211".into(),
            reserved_ip_range: "10.0.0.0/28".into(),
            state: MemcacheInstanceState::Ready,
            status_message: String::new(),
            memcache_full_version: String::new(),
            create_time: chrono::Utc::now(),
            update_time: chrono::Utc::now(),
            etag: "v1".into(),
        };
        assert_eq!(
            env_lines(&m, true),
            "export MEMCACHED_DISCOVERY=10.0.0.1:11211\n\
             export MEMCACHED_SERVERS=10.0.0.2:11211,10.0.0.3:11211\n"
        );
    }
}
