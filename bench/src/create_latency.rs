//! Targets (docs/architecture.md#performance-targets): create → READY on the local
//! stack, BASIC p50 < 100 ms; STANDARD_HA with 2 replicas, every replica linked, p50 <
//! 500 ms and max < 1 s. Also measured, with no target of its own: a 3-node Memcached
//! instance (docs/memcached.md), one node per zone, every node READY and the discovery
//! endpoint serving.
//!
//! On the real stack ([`crate::stack`]: fresh database, release API, three real node
//! agents running real `redis-server`s), instances are created one at a time through the
//! API, each timed from sending the POST until `operations/{id}/wait` answers that the
//! operation is done (without error), then deleted (untimed) before the next.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};

use crate::admin::PARENT;
use crate::report::{Row, Section};
use crate::stack::{Stack, StackConfig, SUPERNET};
use crate::stats::{ms, Samples};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// The `cacheplane-node-agent` binary.
    pub agent_bin: PathBuf,
    /// Creates per tier.
    pub creates: u32,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

/// One tier's measurement.
struct Tier {
    /// Row label.
    label: &'static str,
    /// Instance id prefix.
    prefix: &'static str,
    /// The collection it is created in (`instances`, `memcacheInstances`).
    collection: &'static str,
    /// The field listing its nodes (`nodes`, `memcacheNodes`).
    nodes_field: &'static str,
    /// The create body.
    body: Value,
    /// Nodes a READY instance has.
    nodes: usize,
    /// The p50 target (`None`: measured only).
    target: Option<Duration>,
    /// The max target, where there is one.
    max_target: Option<Duration>,
}

struct Measured {
    /// POST sent → operation done.
    ready: Vec<Duration>,
    /// POST sent → POST answered.
    accepted: Vec<Duration>,
}

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(cfg.creates >= 1, "--creates must be at least 1");
    let stack = Stack::start(&StackConfig {
        database_url: cfg.database_url.clone(),
        api_bin: cfg.api_bin.clone(),
        agent_bin: cfg.agent_bin.clone(),
        db_prefix: "cacheplane_bench_create",
        keep_db: cfg.keep_db,
        agent_args: Vec::new(),
    })
    .await?;
    eprintln!(
        "[create-latency] API, 3 agents UP (database {})",
        stack.db_name()
    );
    let result = measure(cfg, &stack).await;
    stack.stop(result.is_err()).await?;
    result
}

async fn measure(cfg: &Config, stack: &Stack) -> anyhow::Result<Section> {
    let tiers = [
        Tier {
            label: "BASIC 1 GB",
            prefix: "lat-basic",
            collection: "instances",
            nodes_field: "nodes",
            body: json!({"tier": "BASIC", "memorySizeGb": 1}),
            nodes: 1,
            target: Some(Duration::from_millis(100)),
            max_target: None,
        },
        Tier {
            label: "STANDARD_HA 1 GB, 2 read replicas",
            prefix: "lat-ha",
            collection: "instances",
            nodes_field: "nodes",
            body: json!({
                "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
                "readReplicasMode": "READ_REPLICAS_ENABLED"
            }),
            nodes: 3,
            target: Some(Duration::from_millis(500)),
            max_target: Some(Duration::from_secs(1)),
        },
        Tier {
            label: "Memcached, 3 nodes of 1024 MB",
            prefix: "lat-mc",
            collection: "memcacheInstances",
            nodes_field: "memcacheNodes",
            body: json!({"nodeCount": 3, "nodeConfig": {"cpuCount": 1, "memorySizeMb": 1024}}),
            nodes: 3,
            target: None,
            max_target: None,
        },
    ];
    let mut rows = Vec::new();
    let mut notes = vec![
        format!(
            "The real stack: a fresh database, the release API binary (RUST_LOG=warn, \
             `--default-network-supernet {SUPERNET}`) and three release \
             `cacheplane-node-agent`s (loopback mode, one each in local-a/b/c, 16 GiB offered, \
             default 1 s heartbeat and 30 s config long-poll, admin token) running real \
             `redis-server` {} and `memcached`; all on this machine with Postgres and the bench client.",
            redis_version()
        ),
        format!(
            "Each create is timed from just before sending `POST {PARENT}/instances?instanceId=ID` \
             until `POST /v1/{{operation}}/wait?timeout=30s` (which answers as soon as the \
             operation is done) answers done with no `error`; the instance is then checked \
             READY with all its nodes, deleted, and the delete waited for (untimed) before the \
             next create. {} creates per tier, one at a time, no warm-up: the first create is \
             counted.",
            cfg.creates
        ),
    ];
    for tier in &tiers {
        eprintln!("[create-latency] {}: {} creates", tier.label, cfg.creates);
        let m = measure_tier(cfg, stack, tier).await?;
        let ready = Samples::new(m.ready.clone());
        let accepted = Samples::new(m.accepted.clone());
        let p50 = ready.quantile(0.5);
        let label = format!(
            "create → READY p50, {} ({} creates)",
            tier.label,
            ready.len()
        );
        rows.push(match tier.target {
            Some(target) => Row::check(label, ms(p50), format!("< {}", ms(target)), p50 < target),
            None => Row::info(label, ms(p50)),
        });
        rows.push(match tier.max_target {
            Some(max) => Row::check(
                format!("create → READY min / max, {}", tier.label),
                format!("{} / {}", ms(ready.quantile(0.0)), ms(ready.max())),
                format!("max < {}", ms(max)),
                ready.max() < max,
            ),
            None => Row::info(
                format!("create → READY min / max, {}", tier.label),
                format!("{} / {}", ms(ready.quantile(0.0)), ms(ready.max())),
            ),
        });
        rows.push(Row::info(
            format!("create POST answered p50, {}", tier.label),
            ms(accepted.quantile(0.5)),
        ));
        let all: Vec<String> = m.ready.iter().map(|d| ms(*d)).collect();
        notes.push(format!(
            "{} ({} node{}), in order: {}.",
            tier.label,
            tier.nodes,
            if tier.nodes == 1 { "" } else { "s" },
            all.join(", ")
        ));
    }
    Ok(Section {
        id: "create-latency",
        title: "Create → READY on the local stack".into(),
        rows,
        notes,
    })
}

async fn measure_tier(cfg: &Config, stack: &Stack, tier: &Tier) -> anyhow::Result<Measured> {
    let mut m = Measured {
        ready: Vec::new(),
        accepted: Vec::new(),
    };
    for i in 0..cfg.creates {
        let id = format!("{}-{i:02}", tier.prefix);
        let start = Instant::now();
        let (op, answered) = stack
            .api()
            .send_create_in(tier.collection, &id, &tier.body)
            .await?;
        stack.api().wait_op(&op).await?;
        let ready = start.elapsed();
        m.ready.push(ready);
        m.accepted.push(answered - start);

        let inst = stack.api().resource(tier.collection, &id).await?;
        let nodes = inst[tier.nodes_field].as_array().map_or(0, Vec::len);
        let nodes_ready = inst[tier.nodes_field]
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n["state"] == "READY"));
        ensure!(
            inst["state"] == "READY" && nodes == tier.nodes && nodes_ready,
            "{id}: operation done but the instance is not READY with {} READY nodes: {inst}",
            tier.nodes
        );
        stack
            .api()
            .delete_in(tier.collection, &id)
            .await
            .with_context(|| format!("deleting {id}"))?;
        eprintln!("[create-latency]   {id}: {}", ms(ready));
    }
    Ok(m)
}

/// `7.0.15`, from `redis-server --version`.
pub fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}
