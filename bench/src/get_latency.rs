//! Target (docs/architecture.md#performance-targets): "get instance at 10 000 instances in the database — p99 < 5 ms at 500 req/s
//! on 2 cores".
//!
//! A fresh database is seeded with SQL: project `bench`, one network, a few hosts that
//! heartbeat, and N READY BASIC instances, each with its PRIMARY address range and one
//! PRIMARY node whose agent report is current, so a get renders a realistic instance.
//! The real API binary serves it; GETs of random instances are driven open-loop at a
//! fixed rate (latency from the scheduled send time, so a stall is not hidden by
//! coordinated omission) and then closed-loop for the maximum throughput.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cacheplane_types::{CreateNetworkRequest, Instance, InstanceState, NodeRole, NodeState};
use ipnet::{IpNet, Ipv4Net};
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

use crate::db::FreshDb;
use crate::report::{Row, Section};
use crate::server::{self, ApiServer};
use crate::stats::{count, ms, Samples};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// Instances in the database.
    pub instances: u32,
    /// Hosts the nodes are spread over.
    pub hosts: u32,
    /// Open-loop rate, requests per second.
    pub rate: f64,
    /// Open-loop duration.
    pub open_secs: f64,
    /// Closed-loop concurrent clients.
    pub clients: usize,
    /// Closed-loop duration.
    pub closed_secs: f64,
    /// Warm-up before measuring.
    pub warmup_secs: f64,
    /// Keep the database afterwards.
    pub keep_db: bool,
    /// Write every open-loop request (scheduled offset, latency, ok) as CSV here.
    pub latency_csv: Option<PathBuf>,
}

const PROJECT: &str = "bench";
const NETWORK: &str = "bench";
const ZONES: [&str; 3] = ["local-a", "local-b", "local-c"];

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(
        cfg.instances >= 1 && cfg.instances <= 99_999,
        "--instances must be 1-99999"
    );
    ensure!(
        cfg.rate > 0.0 && cfg.open_secs > 0.0,
        "--rate and --open-secs must be > 0"
    );
    let db = FreshDb::create(&cfg.database_url, "cacheplane_bench_get", cfg.keep_db).await?;
    let result = run_in(cfg, &db).await;
    db.drop_db().await?;
    result
}

async fn run_in(cfg: &Config, db: &FreshDb) -> anyhow::Result<Section> {
    let pool = db.pool(4).await?;
    let t = Instant::now();
    seed(&pool, cfg.instances, cfg.hosts).await?;
    eprintln!(
        "[get-latency] seeded {} instances in {:.1} s (database {})",
        cfg.instances,
        t.elapsed().as_secs_f64(),
        db.name()
    );

    // Agents heartbeat; without it every node would turn DOWN after the host timeout.
    let heartbeat = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let _ = sqlx::query(
                    "update host set last_heartbeat_at = now() where id like 'bench-host-%'",
                )
                .execute(&pool)
                .await;
            }
        })
    };

    let token = cacheplane_api::auth::generate_secret();
    let server = ApiServer::start(&cfg.api_bin, db.url(), &token).await?;
    let result = drive(cfg, &server, &token).await;
    server.stop().await?;
    heartbeat.abort();
    pool.close().await;
    result
}

/// Seeds project, network, hosts, instances, address ranges and nodes.
async fn seed(pool: &PgPool, instances: u32, hosts: u32) -> anyhow::Result<()> {
    let n = i64::from(instances);
    // /28 per instance; the smallest pool that holds them.
    let bits = (64 - (n as u64 * 16 - 1).leading_zeros()).max(8);
    let pool_net = Ipv4Net::new([10, 0, 0, 0].into(), (32 - bits) as u8)?;
    ensure!(pool_net.prefix_len() >= 8, "too many instances");

    let mut tx = pool.begin().await?;
    sqlx::query("insert into project (id) values ($1)")
        .bind(PROJECT)
        .execute(&mut *tx)
        .await?;
    let network = cacheplane_api::networks::create(
        &mut tx,
        &cacheplane_api::pools::Rules::default(),
        PROJECT,
        Some(NETWORK),
        &CreateNetworkRequest {
            ip_range: pool_net.to_string(),
            description: "benchmark".into(),
        },
    )
    .await?;

    let zones: Vec<String> = ZONES.iter().map(|z| z.to_string()).collect();
    sqlx::query(
        r#"insert into host (id, zone_id, address, memory_bytes, engines, generation,
                             applied_generation, free_memory_bytes, last_heartbeat_at)
           select 'bench-host-' || h, ($2::text[])[1 + (h - 1) % 3], '127.0.0.1',
                  1::bigint << 42, '{REDIS_6_X,REDIS_7_0,REDIS_7_2}', 1, 1, 1::bigint << 41, now()
           from generate_series(1, $1) h"#,
    )
    .bind(hosts.max(1) as i32)
    .bind(&zones)
    .execute(&mut *tx)
    .await?;

    sqlx::query(
        r#"create temp table seed on commit drop as
           select g, gen_random_uuid() as iid, gen_random_uuid() as nid,
                  'bench-host-' || (1 + g % $2) as host_id
           from generate_series(0, $1 - 1) g"#,
    )
    .bind(n)
    .bind(hosts.max(1) as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into instance (id, project_id, region_id, name, display_name, tier_id,
                                 memory_size_gb, replica_count, location_id, redis_version,
                                 redis_configs, network_id, auth_string, state, labels)
           select s.iid, $1, 'local', 'inst-' || lpad(s.g::text, 5, '0'), 'Benchmark instance',
                  'BASIC', 1, 0, h.zone_id, 'REDIS_7_0', '{"maxmemory-policy": "allkeys-lru"}',
                  $2, md5(random()::text), 'READY', '{"env": "bench", "team": "cacheplane"}'
           from seed s join host h on h.id = s.host_id"#,
    )
    .bind(PROJECT)
    .bind(network.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r#"insert into address_range (instance_id, network_id, purpose, range)
           select iid, $1, 'PRIMARY', set_masklen($2::inet + g * 16, 28)::cidr from seed"#,
    )
    .bind(network.id)
    .bind(IpNet::V4(pool_net))
    .execute(&mut *tx)
    .await?;
    let report = serde_json::to_value(cacheplane_types::NodeReport {
        process_up: true,
        role: Some(NodeRole::Primary),
        replication_offset: Some(123_456),
        used_memory_bytes: Some(4 << 20),
        connected_clients: Some(3),
        pid: Some(4242),
        engine_version: Some("7.0.15".into()),
        ..Default::default()
    })?;
    sqlx::query(
        r#"insert into node (id, instance_id, ordinal, host_id, zone_id, role, address,
                             memory_bytes, desired_generation, observed, observed_generation,
                             observed_at)
           select s.nid, s.iid, 0, h.id, h.zone_id, 'PRIMARY', $1::inet + (s.g * 16 + 3),
                  1::bigint << 30, 1, $2::jsonb || jsonb_build_object('nodeId', s.nid), 1, now()
           from seed s join host h on h.id = s.host_id"#,
    )
    .bind(IpNet::V4(pool_net))
    .bind(&report)
    .execute(&mut *tx)
    .await?;

    // Keep the allocator's invariant: free blocks + ranges = the whole pool.
    let used_end = u64::from(u32::from(pool_net.network())) + n as u64 * 16;
    let free: Vec<String> =
        aligned_blocks(used_end, u64::from(u32::from(pool_net.broadcast())) + 1)
            .iter()
            .map(Ipv4Net::to_string)
            .collect();
    sqlx::query("delete from network_free_block where network_id = $1")
        .bind(network.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into network_free_block (network_id, block) select $1, unnest($2::text[])::cidr",
    )
    .bind(network.id)
    .bind(&free)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("vacuum analyze").execute(pool).await?;
    Ok(())
}

/// The largest aligned blocks covering addresses `[start, end)`.
fn aligned_blocks(mut start: u64, end: u64) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    while start < end {
        let mut size = if start == 0 {
            1 << 32
        } else {
            start & start.wrapping_neg()
        };
        while start + size > end {
            size /= 2;
        }
        let prefix = 32 - size.trailing_zeros() as u8;
        if let Ok(net) = Ipv4Net::new((start as u32).into(), prefix) {
            out.push(net);
        }
        start += size;
    }
    out
}

struct Target {
    client: reqwest::Client,
    base: String,
    token: String,
    instances: u32,
}

impl Target {
    fn url(&self, i: u32) -> String {
        format!(
            "{}/v1/projects/{PROJECT}/locations/local/instances/inst-{i:05}",
            self.base
        )
    }

    /// One GET of instance `i`, body read; `Err` on a transport error or non-200.
    async fn get(&self, i: u32) -> anyhow::Result<()> {
        let resp = self
            .client
            .get(self.url(i))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

async fn drive(cfg: &Config, server: &ApiServer, token: &str) -> anyhow::Result<Section> {
    let base = server.base_url();
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .build()?,
        base: base.to_string(),
        token: token.to_string(),
        instances: cfg.instances,
    });

    // What a get returns: a READY instance with its READY primary node.
    let last = cfg.instances - 1;
    let inst: Instance = target
        .client
        .get(target.url(last))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()
        .context("getting the last seeded instance")?
        .json()
        .await?;
    let body_len = serde_json::to_vec(&inst)?.len();
    ensure!(
        inst.state == InstanceState::Ready
            && inst.nodes.len() == 1
            && inst.nodes[0].state == NodeState::Ready
            && inst.nodes[0].role == NodeRole::Primary,
        "unexpected seeded instance: {inst:?}"
    );

    // Warm up with the load to be measured, so connection pools (client and API) have
    // grown to what it needs and caches are hot.
    eprintln!(
        "[get-latency] warm-up: {} req/s for {:.0} s",
        cfg.rate, cfg.warmup_secs
    );
    open_loop(&target, cfg.rate, Duration::from_secs_f64(cfg.warmup_secs)).await?;

    eprintln!(
        "[get-latency] open loop: {} req/s for {:.0} s",
        cfg.rate, cfg.open_secs
    );
    let cpu_before = (server.cpu_time(), server::cpu_time("/proc/self/stat"));
    let open = open_loop(&target, cfg.rate, Duration::from_secs_f64(cfg.open_secs)).await?;
    let cpu_after = (server.cpu_time(), server::cpu_time("/proc/self/stat"));
    let per_request = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(b), Some(a)) if open.sent > 0 => ms(a.saturating_sub(b) / open.sent as u32),
        _ => "?".to_string(),
    };
    let api_cpu = per_request(cpu_before.0, cpu_after.0);
    let client_cpu = per_request(cpu_before.1, cpu_after.1);
    if let Some(path) = &cfg.latency_csv {
        let mut csv = String::from("scheduled_ms,latency_ms,ok\n");
        for (at, latency, ok) in &open.trace {
            let _ = writeln!(
                csv,
                "{:.3},{:.3},{ok}",
                at.as_secs_f64() * 1e3,
                latency.as_secs_f64() * 1e3
            );
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "[get-latency] closed loop: {} clients for {:.0} s",
        cfg.clients, cfg.closed_secs
    );
    let closed = closed_loop(
        &target,
        cfg.clients,
        Duration::from_secs_f64(cfg.closed_secs),
    )
    .await?;

    let p99 = open.latency.quantile(0.99);
    let n = count(u64::from(cfg.instances));
    let rate_ok = open.errors == 0 && open.achieved >= cfg.rate * 0.99;
    let rows = vec![
        Row::check(
            format!(
                "get instance p99 at {} req/s, {n} instances (open loop)",
                cfg.rate
            ),
            ms(p99),
            "< 5 ms",
            p99 < Duration::from_millis(5) && rate_ok,
        ),
        Row::info(
            "get instance p50 / p99.9 / max (open loop)",
            format!(
                "{} / {} / {}",
                ms(open.latency.quantile(0.5)),
                ms(open.latency.quantile(0.999)),
                ms(open.latency.max())
            ),
        ),
        Row::check(
            "get instance achieved rate, errors (open loop)",
            format!("{:.1} req/s, {} errors", open.achieved, open.errors),
            format!("{} req/s, 0 errors", cfg.rate),
            rate_ok,
        ),
        Row::info(
            "CPU per get: API server / bench client (open loop)",
            format!("{api_cpu} / {client_cpu}"),
        ),
        Row::info(
            format!(
                "get instance max throughput ({} clients, closed loop)",
                cfg.clients
            ),
            format!(
                "{} req/s, p50 {}, p99 {}, {} errors",
                count(closed.achieved.round() as u64),
                ms(closed.latency.quantile(0.5)),
                ms(closed.latency.quantile(0.99)),
                closed.errors
            ),
        ),
    ];
    let notes = vec![
        format!(
            "Database: {n} READY BASIC instances in project `{PROJECT}`, each with its /28 \
             PRIMARY range and one READY PRIMARY node on one of {} heartbeating hosts, seeded \
             with SQL in a fresh database; a get returns {body_len} bytes of JSON.",
            cfg.hosts
        ),
        format!(
            "The release API binary (default pool of 20 connections, RUST_LOG=warn) serves \
             `GET /v1/projects/{PROJECT}/locations/local/instances/{{random}}` with the admin \
             token; client, server and Postgres share the machine."
        ),
        format!(
            "Open loop: {} requests on a fixed timetable of {} req/s for {:.0} s (after {:.0} s \
             of the same load as warm-up), any number in flight; each latency runs from the \
             scheduled send time to the last body byte, so stalls are not hidden (no \
             coordinated omission). Achieved rate = responses / time from first scheduled \
             send to last response. CPU per get = the process's user + system time over the \
             open loop / requests (Postgres not included).",
            count(open.sent),
            cfg.rate,
            cfg.open_secs,
            cfg.warmup_secs
        ),
        format!(
            "Closed loop, right after: {} clients each sending the next request when the \
             last returns, for {:.0} s; {} responses.",
            cfg.clients,
            cfg.closed_secs,
            count(closed.latency.len() as u64)
        ),
    ];
    Ok(Section {
        id: "get-latency",
        title: format!("Get instance at {n} instances"),
        rows,
        notes,
    })
}

struct LoadResult {
    latency: Samples,
    sent: u64,
    errors: u64,
    /// Successful responses per second.
    achieved: f64,
    /// Open loop only: each request's scheduled offset from the start, latency and success.
    trace: Vec<(Duration, Duration, bool)>,
}

/// Sends on a fixed timetable from a thread of its own (`std::thread::sleep` is precise
/// to tens of microseconds, tokio's timer only to a millisecond) and measures each request
/// from its scheduled time.
async fn open_loop(
    target: &Arc<Target>,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let handle = tokio::runtime::Handle::current();
    let target = Arc::clone(target);
    let start = Instant::now() + Duration::from_millis(20);
    let tasks = tokio::task::spawn_blocking(move || {
        let mut rng = rand::rngs::StdRng::from_entropy();
        let mut tasks = Vec::with_capacity(total as usize);
        for k in 0..total {
            let scheduled = start + Duration::from_secs_f64(k as f64 / rate);
            let now = Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            let i = rng.gen_range(0..target.instances);
            let target = Arc::clone(&target);
            tasks.push(handle.spawn(async move {
                let r = target.get(i).await;
                (r.is_ok(), Instant::now(), scheduled)
            }));
        }
        tasks
    })
    .await?;
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    let mut last_done = start;
    let mut trace = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (ok, done, scheduled) = t.await?;
        last_done = last_done.max(done);
        trace.push((scheduled - start, done - scheduled, ok));
        if ok {
            latencies.push(done - scheduled);
        } else {
            errors += 1;
        }
    }
    let elapsed = (last_done - start).as_secs_f64().max(1e-9);
    Ok(LoadResult {
        achieved: latencies.len() as f64 / elapsed,
        latency: Samples::new(latencies),
        sent: total,
        errors,
        trace,
    })
}

/// `clients` tasks, each sending its next request when the previous one returns.
async fn closed_loop(
    target: &Arc<Target>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let target = Arc::clone(target);
        set.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64 ^ 0x5eed);
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let i = rng.gen_range(0..target.instances);
                let t = Instant::now();
                match target.get(i).await {
                    Ok(()) => latencies.push(t.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(r) = set.join_next().await {
        let (l, e) = r?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent = latencies.len() as u64 + errors;
    Ok(LoadResult {
        achieved: latencies.len() as f64 / elapsed,
        latency: Samples::new(latencies),
        sent,
        errors,
        trace: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_blocks_cover_the_rest_of_the_pool() {
        let pool: Ipv4Net = "10.0.0.0/14".parse().unwrap();
        let start = u64::from(u32::from(pool.network()));
        let end = u64::from(u32::from(pool.broadcast())) + 1;
        let used = start + 10_000 * 16;
        let blocks = aligned_blocks(used, end);
        let total: u64 = blocks.iter().map(|b| 1u64 << (32 - b.prefix_len())).sum();
        assert_eq!(total, end - used);
        assert_eq!(blocks[0], "10.2.113.0/24".parse::<Ipv4Net>().unwrap());
        assert!(blocks.iter().all(|b| b.trunc() == *b && pool.contains(b)));
        assert_eq!(aligned_blocks(start, end), vec![pool]);
    }
}
