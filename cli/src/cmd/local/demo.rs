//! `local demo`: the demo cache scripts/dev.sh shows, made or mended so that it answers.
//! Whether the instance exists, whether it is READY, whether it is stuck (its primary
//! down with no failover coming, as after `local down` emptied its caches) and so must
//! be replaced, and the redis-cli line that reaches it.

use std::path::Path;
use std::time::{Duration, Instant};

use cacheplane_types::{
    CreateInstanceRequest, Instance, InstanceState, NodeRole, NodeState, ReadReplicasMode, Tier,
};
use serde::Serialize;

use super::super::instances::{self, post_create, post_delete};
use super::super::operations::{self, LroArgs};
use super::super::{Ctx, Located};
use super::api::api_ready;
use super::layout::{read_line, write_private_line, Layout};
use super::{say, DEFAULT_PROJECT, REGION};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output::{emit, shell_quote, wire, Format};

/// The demo instance's id.
const DEMO: &str = "demo";
/// How long an instance that exists has to become READY.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long its primary may be down, with no failover under way, before it counts as
/// stuck.
const STUCK_AFTER: Duration = Duration::from_secs(10);
/// How often its state is read while waiting.
const POLL: Duration = Duration::from_secs(1);

/// What `local demo` shows: the instance, where its AUTH string is, and the line that
/// pings it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Demo {
    /// The instance, as `instances describe` shows it.
    instance: Instance,
    /// The file holding its AUTH string (mode 600).
    auth_file: String,
    /// The redis-cli command that pings it.
    redis_cli: String,
}

/// Where an existing instance stands, from one look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// READY, and so is every node.
    Ready,
    /// It will not get to READY by itself: FAILED.
    Failed,
    /// Its primary is down and no failover is under way: stuck unless that changes soon.
    PrimaryDown,
    /// On its way (creating, repairing, failing over): wait.
    Settling,
}

fn health(inst: &Instance) -> Health {
    let all_ready = inst.nodes.iter().all(|n| n.state == NodeState::Ready);
    let primary_down = inst.nodes.iter().any(|n| {
        n.role == NodeRole::Primary && !matches!(n.state, NodeState::Ready | NodeState::Creating)
    });
    match inst.state {
        InstanceState::Ready if all_ready => Health::Ready,
        InstanceState::Failed => Health::Failed,
        InstanceState::Creating | InstanceState::FailingOver => Health::Settling,
        _ if primary_down => Health::PrimaryDown,
        _ => Health::Settling,
    }
}

/// `local demo`: makes sure the demo instance exists and is READY, writes its AUTH string
/// to DATA_DIR/demo-auth, and shows it with the redis-cli line last.
pub async fn demo(layout: &Layout, format: Format) -> Result<()> {
    let ctx = stack_ctx(layout, format).await?;
    let l = Located {
        project: DEFAULT_PROJECT.into(),
        region: REGION.into(),
        id: DEMO.into(),
    };
    match instances::find(&ctx, &l).await? {
        None => create(&ctx, &l).await?,
        Some(_) => {
            if settle(&ctx, &l).await? {
                say(&format!("instance {DEMO} already exists and is READY"));
            } else {
                say(&format!(
                    "instance {DEMO} cannot recover by itself (its caches were stopped); \
                     replacing it"
                ));
                let op = post_delete(&ctx, &l, &LroArgs::default()).await?;
                operations::wait(&ctx, op, LroArgs::default().timeout).await?;
                create(&ctx, &l).await?;
            }
        }
    }
    let instance = instances::get(&ctx, &l).await?;

    // The AUTH string goes to a file only its owner can read, and to redis-cli through
    // the environment, never a command line.
    let auth_file = layout.demo_auth();
    let auth = instances::auth_string(&ctx, &l).await?.auth_string;
    write_private_line(&auth_file, &auth)?;
    let demo = Demo {
        redis_cli: redis_cli_line(&auth_file, &instance.host, instance.port),
        auth_file: auth_file.display().to_string(),
        instance,
    };
    emit(format, &demo, |d| {
        format!("{}\n\n{}", instances::table(&d.instance), d.redis_cli)
    })
}

/// A context for the local stack's API, from the files `local up` wrote: its address
/// and the admin token. Fails with a hint when the stack does not run.
async fn stack_ctx(layout: &Layout, format: Format) -> Result<Ctx> {
    let not_up = || {
        Error::Usage(format!(
            "the local stack in {} is not running: `cachectl local up` starts it",
            layout.data.display()
        ))
    };
    let api_url = layout.api_urls().ok_or_else(not_up)?;
    let token = read_line(&layout.token()).ok_or_else(not_up)?;
    let mut ready = false;
    for url in api_url.split(',') {
        ready |= api_ready(url).await;
    }
    if !ready {
        return Err(not_up());
    }
    Ok(Ctx {
        client: Client::new(&api_url, Some(token))?,
        project: Some(DEFAULT_PROJECT.into()),
        region: Some(REGION.into()),
        format,
    })
}

/// Creates the demo instance and waits until it is READY.
async fn create(ctx: &Ctx, l: &Located) -> Result<()> {
    say(&format!(
        "creating instance {DEMO} (STANDARD_HA, 1 GB, 2 replicas) in project {}, region {}",
        l.project, l.region
    ));
    // More than one replica needs read replicas.
    let req = CreateInstanceRequest {
        display_name: None,
        tier: Tier::StandardHa,
        memory_size_gb: 1,
        replica_count: Some(2),
        read_replicas_mode: Some(ReadReplicasMode::ReadReplicasEnabled),
        location_id: None,
        alternative_location_id: None,
        redis_version: None,
        redis_configs: Default::default(),
        authorized_network: None,
        transit_encryption_mode: None,
        reserved_ip_range: None,
        auth_enabled: None,
        labels: Default::default(),
    };
    let lro = LroArgs::default();
    let op = post_create(ctx, l, &req, &lro).await?;
    operations::wait(ctx, op, lro.timeout).await?;
    Ok(())
}

/// Waits (60 s) for the existing instance and all its nodes to be READY: true once they
/// are, false as soon as it cannot get there by itself (FAILED, or its primary down for
/// 10 s with no failover).
async fn settle(ctx: &Ctx, l: &Located) -> Result<bool> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut primary_down_since: Option<Instant> = None;
    loop {
        let inst = instances::get(ctx, l).await?;
        match health(&inst) {
            Health::Ready => return Ok(true),
            Health::Failed => return Ok(false),
            Health::PrimaryDown => {
                let since = *primary_down_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STUCK_AFTER {
                    return Ok(false);
                }
            }
            Health::Settling => primary_down_since = None,
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "instance {DEMO} is still {} after {} s: {}",
                wire(&inst.state),
                SETTLE_TIMEOUT.as_secs(),
                inst.status_message
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `REDISCLI_AUTH=$(cat FILE) redis-cli -h HOST -p PORT ping`: the AUTH string read from
/// its file, so that it shows on no command line.
fn redis_cli_line(auth_file: &Path, host: &str, port: u16) -> String {
    format!(
        "REDISCLI_AUTH=$(cat {}) redis-cli -h {} -p {port} ping",
        shell_quote(&auth_file.to_string_lossy()),
        shell_quote(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: InstanceState, nodes: &[(NodeRole, NodeState)]) -> Instance {
        let mut inst: Instance = serde_json::from_value(serde_json::json!({
            "name": "projects/demo-project/locations/local/instances/demo",
            "displayName": "",
            "tier": "STANDARD_HA",
            "memorySizeGb": 1,
            "replicaCount": 2,
            "readReplicasMode": "READ_REPLICAS_ENABLED",
            "state": "READY",
            "statusMessage": "",
            "host": "127.64.0.1",
            "port": 6379,
            "authEnabled": true,
            "locationId": "local-a",
            "redisVersion": "REDIS_7_0",
            "redisConfigs": {},
            "authorizedNetwork": "projects/demo-project/networks/default",
            "reservedIpRange": "127.64.0.0/28",
            "labels": {},
            "createTime": "2026-01-01T00:00:00Z",
            "updateTime": "2026-01-01T00:00:00Z",
            "etag": "x",
            "nodes": [],
        }))
        .expect("a valid instance");
        inst.state = state;
        inst.nodes = nodes
            .iter()
            .enumerate()
            .map(|(i, (role, state))| cacheplane_types::Node {
                id: format!("node-{i}"),
                zone: "local-a".into(),
                role: *role,
                address: "127.64.0.2".into(),
                port: 6379,
                state: *state,
            })
            .collect();
        inst
    }

    #[test]
    fn how_an_existing_demo_stands() {
        use InstanceState as I;
        use NodeRole::*;
        use NodeState as N;
        let ready = [
            (Primary, N::Ready),
            (Replica, N::Ready),
            (Replica, N::Ready),
        ];
        assert_eq!(health(&instance(I::Ready, &ready)), Health::Ready);
        let replica_down = [(Primary, N::Ready), (Replica, N::Down), (Replica, N::Ready)];
        assert_eq!(
            health(&instance(I::Repairing, &replica_down)),
            Health::Settling
        );
        // READY overall but a node still catching up: wait.
        assert_eq!(health(&instance(I::Ready, &replica_down)), Health::Settling);
        let primary_down = [(Primary, N::Down), (Replica, N::Ready), (Replica, N::Ready)];
        assert_eq!(
            health(&instance(I::Repairing, &primary_down)),
            Health::PrimaryDown
        );
        // A failover under way, or a primary still being made, is progress.
        assert_eq!(
            health(&instance(I::FailingOver, &primary_down)),
            Health::Settling
        );
        let primary_new = [(Primary, N::Creating), (Replica, N::Ready)];
        assert_eq!(
            health(&instance(I::Repairing, &primary_new)),
            Health::Settling
        );
        assert_eq!(health(&instance(I::Failed, &ready)), Health::Failed);
    }

    #[test]
    fn the_ping_line_quotes_the_file() {
        assert_eq!(
            redis_cli_line(Path::new("/home/a b/demo-auth"), "127.64.0.1", 6379),
            "REDISCLI_AUTH=$(cat '/home/a b/demo-auth') redis-cli -h 127.64.0.1 -p 6379 ping"
        );
    }
}
