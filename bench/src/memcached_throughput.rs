//! Memcached-protocol throughput straight to a node: one `memcached` started by the
//! agent's own code ([`cacheplane_node_agent::memcache::process::start`], so with the
//! flags a node runs with), and a small load generator in this process: `connections`
//! TCP connections, each sending batches of `pipeline` commands (a set/get mix of small
//! values over a prefilled key space) and reading their replies before the next batch.
//! It reports operations per second and the latency of a batch (for `pipeline` 1, of
//! one command) at p50 and p99, without and with pipelining. No target: the figure
//! tells what a node serves on this machine, as `redis-benchmark` does for Redis.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use cacheplane_node_agent::memcache::client::McClient;
use cacheplane_node_agent::memcache::{process, McDir};
use cacheplane_node_agent::net::dial::Dialer;
use cacheplane_types::MemcacheNodeSpec;
use rand::{Rng, SeedableRng};

use crate::report::{Row, Section};
use crate::stats::{count, ms, Samples};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The `memcached` binary.
    pub memcached: PathBuf,
    /// Connections of the load generator.
    pub connections: usize,
    /// Measured seconds per configuration.
    pub secs: f64,
    /// Bytes per value.
    pub value_size: usize,
    /// Keys set before measuring (gets hit them).
    pub keys: u32,
    /// Share of sets among the commands (the rest are gets).
    pub set_ratio: f64,
    /// The node's memory in MB (`-m`).
    pub memory_mb: u32,
    /// The node's worker threads (`-t`).
    pub threads: u32,
}

const ID: &str = "memcached-throughput";
/// The node's address: in 127/8, so on `lo` already.
const ADDRESS: &str = "127.66.0.2";
/// Its port (not 11211: a packaged memcached may run on this machine).
const PORT: u16 = 11311;

/// One configuration's outcome.
struct Measured {
    ops: u64,
    elapsed: Duration,
    batches: Samples,
    errors: u64,
}

/// Runs the benchmark: without pipelining, then 16 commands per batch.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    let data = std::env::temp_dir().join(format!("cacheplane-bench-mc-{}", std::process::id()));
    let spec = MemcacheNodeSpec {
        node_id: uuid::Uuid::new_v4(),
        instance: "projects/bench/locations/local/memcacheInstances/bench".into(),
        memcache_version: "MEMCACHE_1_6".into(),
        address: ADDRESS.into(),
        port: PORT,
        memory_mb: cfg.memory_mb,
        threads: cfg.threads,
        max_connections: u32::try_from(cfg.connections * 2 + 64).unwrap_or(u32::MAX),
        parameters: BTreeMap::new(),
        network: None,
    };
    let dir = McDir::new(&data, spec.node_id);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    let pid = process::start(&cfg.memcached, &spec, &dir, None)
        .await
        .map_err(|e| anyhow::anyhow!("memcached did not start: {e}"))?;
    // The pid file's path is the run's own temp directory: shown as `NODE_DIR`.
    let node_dir = dir.dir.to_string_lossy().into_owned();
    let args: Vec<String> = process::args(&spec, &dir)
        .map_err(|e| anyhow::anyhow!(e))?
        .into_iter()
        .map(|a| a.replace(&node_dir, "NODE_DIR"))
        .collect();
    let result = measure_all(cfg, &spec).await;
    let stopped = process::stop(&dir, Some(&spec)).await;
    let _ = std::fs::remove_dir_all(&data);
    let (plain, piped, version) = result?;
    stopped.context("stopping memcached")?;
    eprintln!("[bench] memcached {version} pid {pid}: {}", args.join(" "));

    let mut rows = Vec::new();
    for (label, m) in [("no pipelining", &plain), ("16 per batch", &piped)] {
        let rate = m.ops as f64 / m.elapsed.as_secs_f64();
        rows.push(Row::info(
            format!("ops/s, {} connections, {label}", cfg.connections),
            count(rate as u64),
        ));
        rows.push(Row::info(
            format!("batch latency p50 / p99, {label}"),
            format!(
                "{} / {}",
                ms(m.batches.quantile(0.5)),
                ms(m.batches.quantile(0.99))
            ),
        ));
    }
    let errors = plain.errors + piped.errors;
    Ok(Section {
        id: ID,
        title: "Memcached: protocol throughput straight to a node".into(),
        rows,
        notes: vec![
            format!(
                "one memcached {version} started by the agent's own code, so with a node's flags: `memcached {}`",
                args.join(" ")
            ),
            format!(
                "load generator in the bench process (tokio): {} connections, each sending a batch and reading its replies before the next; {:.0} % sets, the rest gets, {}-byte values over {} keys set beforehand; {:.0} s per configuration",
                cfg.connections,
                cfg.set_ratio * 100.0,
                cfg.value_size,
                cfg.keys,
                cfg.secs
            ),
            "latency is that of a whole batch (one command without pipelining, 16 with)".into(),
            format!("errors (unexpected replies): {errors}"),
            format!(
                "the generator and memcached share the machine's CPUs; the 1-minute load average when the run started was {load} (anything above 0 is other work on the machine)"
            ),
        ],
    })
}

/// Prefills the keys, then measures both configurations; answers memcached's version.
async fn measure_all(
    cfg: &Config,
    spec: &MemcacheNodeSpec,
) -> anyhow::Result<(Measured, Measured, String)> {
    let mut c = McClient::connect(&Dialer::here(), &spec.address, spec.port).await?;
    let version = c.version().await?;
    let value = vec![b'v'; cfg.value_size];
    for k in 0..cfg.keys {
        c.queue_set(&key(k), &value, 0).await?;
        if k % 100 == 99 || k + 1 == cfg.keys {
            c.flush().await?;
            for _ in 0..=(k % 100) {
                c.read_set_reply().await?;
            }
        }
    }
    let plain = measure(cfg, spec, 1).await?;
    let piped = measure(cfg, spec, 16).await?;
    Ok((plain, piped, version))
}

fn key(k: u32) -> String {
    format!("key:{k:08}")
}

/// `cfg.connections` connections sending batches of `pipeline` commands for
/// `cfg.secs`.
async fn measure(
    cfg: &Config,
    spec: &MemcacheNodeSpec,
    pipeline: usize,
) -> anyhow::Result<Measured> {
    let secs = Duration::from_secs_f64(cfg.secs.max(0.5));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let until = started + secs;
    for n in 0..cfg.connections {
        let mut c = McClient::connect(&Dialer::here(), &spec.address, spec.port).await?;
        let cfg = cfg.clone();
        tasks.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
            let value = vec![b'v'; cfg.value_size];
            let mut latencies = Vec::new();
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut sets = Vec::with_capacity(pipeline);
            while Instant::now() < until {
                sets.clear();
                let t = Instant::now();
                for _ in 0..pipeline {
                    let k = key(rng.gen_range(0..cfg.keys.max(1)));
                    let set = rng.gen_bool(cfg.set_ratio.clamp(0.0, 1.0));
                    sets.push(set);
                    if set {
                        c.queue_set(&k, &value, 0).await?;
                    } else {
                        c.queue_get(&k).await?;
                    }
                }
                c.flush().await?;
                for set in &sets {
                    let ok = if *set {
                        c.read_set_reply().await.is_ok()
                    } else {
                        c.read_get_reply().await.is_ok_and(|v| v.is_some())
                    };
                    errors += u64::from(!ok);
                }
                latencies.push(t.elapsed());
                ops += pipeline as u64;
            }
            anyhow::Ok((ops, errors, latencies))
        });
    }
    let (mut ops, mut errors, mut all) = (0, 0, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let (o, e, l) = joined.context("a load connection panicked")??;
        ops += o;
        errors += e;
        all.extend(l);
    }
    Ok(Measured {
        ops,
        elapsed: started.elapsed(),
        batches: Samples::new(all),
        errors,
    })
}
