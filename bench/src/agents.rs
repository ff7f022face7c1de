//! A thousand agents (docs/architecture.md#performance-targets: heartbeat p99 < 50 ms with 1 000 simulated agents and 2
//! API replicas; a silent host detected within the host timeout + 1 s).
//!
//! For each agent count and each replica count: a fresh database, that many real
//! `cacheplane-api` processes on it, one host token per simulated host, and the simulated
//! agents ([`fleet`], one Tokio task each in this process) spread over the region's three
//! zones and over the replicas (agent i talks to replica i mod R). After a warm-up, a
//! measured window in which a client creates and deletes BASIC and STANDARD_HA instances
//! that get placed on the simulated hosts, while every heartbeat's latency, every config
//! the agents receive and the CPU time of the API processes and of PostgreSQL are
//! recorded. Then the hosts of a few STANDARD_HA primaries go silent and the failovers
//! are timed.

mod fleet;
mod procs;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminClient;
use crate::db::FreshDb;
use crate::report::{Row, Section};
use crate::server::{cpu_time, ApiServer};
use crate::stats::{count, ms, Samples};
use fleet::{Board, HostSpec, Timing};
use procs::Activity;

/// docs/architecture.md#performance-targets: heartbeat p99 with 1 000 agents and 2 replicas.
const BEAT_P99_TARGET: Duration = Duration::from_millis(50);

/// The agent count the targets are stated for.
const TARGET_AGENTS: u32 = 1_000;

/// Memory each simulated host offers (64 GiB).
const HOST_MEMORY_BYTES: i64 = 64 << 30;

/// How long registering every agent may take.
const REGISTER_LIMIT: Duration = Duration::from_secs(120);

/// What the simulation needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the databases in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// Agent counts to simulate.
    pub agents: Vec<u32>,
    /// API replica counts to run each agent count against.
    pub replicas: Vec<u32>,
    /// The measured window.
    pub window: Duration,
    /// Between the last registration and the window.
    pub warmup: Duration,
    /// Concurrent create/delete loops during the window.
    pub churn_loops: usize,
    /// STANDARD_HA instances whose primary's host goes silent after the window.
    pub silences: usize,
    /// The API's `--host-timeout`.
    pub host_timeout: Duration,
    /// The agents' heartbeat interval (the real agent's default is 1 s).
    pub interval: Duration,
    /// More flags for every API process (e.g. `--max-agent-requests=4096`).
    pub api_args: Vec<String>,
    /// Keep the databases afterwards.
    pub keep_db: bool,
}

/// Runs every agent count against every replica count.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(
        !cfg.agents.is_empty() && !cfg.replicas.is_empty(),
        "no agent or replica count"
    );
    ensure!(
        cfg.replicas.iter().all(|r| *r > 0),
        "replica counts must be at least 1"
    );
    let files = procs::raise_open_files()?;
    let most = u64::from(cfg.agents.iter().copied().max().unwrap_or(0));
    // Each agent holds two connections (heartbeat, long-poll): both ends live on this
    // machine, the client ends in this process.
    if files < most * 2 + 1_000 {
        eprintln!("[bench] warning: the open-files limit ({files}) is below what {most} agents need (~{}); raise `ulimit -Hn`", most * 2 + 1_000);
    }
    let mut outcomes = Vec::new();
    let mut failed = Vec::new();
    for &agents in &cfg.agents {
        for &replicas in &cfg.replicas {
            eprintln!("[bench] agents: {agents} agents, {replicas} API replica(s)");
            match scenario(cfg, agents, replicas).await {
                Ok(o) => {
                    eprintln!("[bench] agents: {}", o.summary());
                    outcomes.push(o);
                }
                // The other counts still say something: recorded as a missed row.
                Err(e) => {
                    eprintln!(
                        "[bench] agents: {agents} agents, {replicas} replica(s) failed: {e:#}"
                    );
                    failed.push(Row::check(
                        format!(
                            "{} agents, {replicas} API replica(s): run",
                            count(u64::from(agents))
                        ),
                        format!("failed: {}", first_line(&format!("{e:#}"))),
                        "completes",
                        false,
                    ));
                }
            }
        }
    }
    let mut section = section(cfg, &outcomes, files);
    section.rows.extend(failed);
    Ok(section)
}

/// The figures of one agent count × replica count.
#[derive(Debug)]
struct Outcome {
    agents: u32,
    replicas: u32,
    registered_in: Duration,
    window: Duration,
    beats: Samples,
    beat_failures: BTreeMap<String, u64>,
    poll_failures: BTreeMap<String, u64>,
    register_failures: BTreeMap<String, u64>,
    configs: u64,
    wake: Samples,
    wake_early: usize,
    wake_missing: usize,
    cycles: u64,
    churn_failures: Vec<String>,
    api_cpu: Duration,
    pg_cpu: Duration,
    bench_cpu: Duration,
    peak: Activity,
    lock_wait_samples: i64,
    samples: i64,
    api_files: usize,
    /// What the active sessions waited for, summed over the samples.
    waits: BTreeMap<String, i64>,
    load: (f64, f64),
    silences: Vec<workload::Silence>,
}

impl Outcome {
    fn label(&self) -> String {
        format!(
            "{} agents, {} API replica{}",
            count(u64::from(self.agents)),
            self.replicas,
            if self.replicas == 1 { "" } else { "s" }
        )
    }

    fn per_beat(&self, cpu: Duration) -> String {
        let n = self.beats.len().max(1) as f64;
        format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / n)
    }

    fn share(&self, cpu: Duration) -> String {
        format!(
            "{:.0} %",
            cpu.as_secs_f64() * 100.0 / self.window.as_secs_f64().max(1e-9)
        )
    }

    fn summary(&self) -> String {
        format!(
            "{}: heartbeat p50 {} p99 {} ({} beats); wake-up p50 {} p99 {}; CPU/beat API {} PG {}; silence→primary max {}",
            self.label(),
            ms(self.beats.quantile(0.5)),
            ms(self.beats.quantile(0.99)),
            self.beats.len(),
            ms(self.wake.quantile(0.5)),
            ms(self.wake.quantile(0.99)),
            self.per_beat(self.api_cpu),
            self.per_beat(self.pg_cpu),
            secs(self.silence_max()),
        )
    }

    fn silence_max(&self) -> Duration {
        self.silences
            .iter()
            .map(|s| s.to_new_primary)
            .max()
            .unwrap_or_default()
    }
}

/// The first line of `s`, at most 300 characters.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn failures(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{v} {k}")).collect();
    parts.join(", ")
}

async fn scenario(cfg: &Config, agents: u32, replicas: u32) -> anyhow::Result<Outcome> {
    let db = FreshDb::create(&cfg.database_url, "bench_agents", cfg.keep_db).await?;
    let token = cacheplane_api::auth::generate_secret();
    let timeout = format!("--host-timeout={}ms", cfg.host_timeout.as_millis());
    let mut args: Vec<&str> = vec![&timeout];
    args.extend(cfg.api_args.iter().map(String::as_str));
    let mut servers = Vec::new();
    let mut result = Ok(());
    for _ in 0..replicas {
        match ApiServer::start_with_args(&cfg.api_bin, db.url(), &token, &args).await {
            Ok(s) => servers.push(s),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let outcome = match result {
        Ok(()) => simulate(cfg, &db, &servers, &token, agents).await,
        Err(e) => Err(e),
    };
    for s in servers {
        s.stop().await.ok();
    }
    db.drop_db().await?;
    outcome
}

/// One host token per simulated host (`POST /v1/tokens`), 16 at a time.
async fn host_tokens(admin: &AdminClient, hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let mut tokens = vec![String::new(); hosts.len()];
    for (c, chunk) in hosts.chunks(16).enumerate() {
        let mut set = JoinSet::new();
        for (i, host) in chunk.iter().enumerate() {
            let (admin, host) = (admin.clone(), host.clone());
            set.spawn(async move {
                for _ in 0..10 {
                    let body = json!({ "host": host, "description": "simulated agent" });
                    let (status, t) = admin
                        .call(reqwest::Method::POST, "/v1/tokens", Some(&body))
                        .await?;
                    match status {
                        200 => {
                            let secret = t["token"].as_str().context("no token in the answer")?;
                            return Ok((c * 16 + i, secret.to_string()));
                        }
                        429 | 503 => tokio::time::sleep(Duration::from_secs(1)).await,
                        _ => bail!("host token for {host}: {status} {t}"),
                    }
                }
                bail!("host token for {host}: refused 10 times")
            });
        }
        while let Some(r) = set.join_next().await {
            let (i, t) = r.context("a token task panicked")??;
            tokens[i] = t;
        }
    }
    Ok(tokens)
}

async fn simulate(
    cfg: &Config,
    db: &FreshDb,
    servers: &[ApiServer],
    token: &str,
    agents: u32,
) -> anyhow::Result<Outcome> {
    let admin = AdminClient::new(servers[0].base_url(), token)?;
    let hosts: Vec<String> = (0..agents).map(|i| format!("sim-{i:05}")).collect();
    let tokens = host_tokens(&admin, &hosts).await?;

    let board = Arc::new(Board::default());
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();
    let mut set = JoinSet::new();
    let timing = Timing {
        interval: cfg.interval,
        jitter: 0.1,
        poll_timeout: Duration::from_secs(30),
    };
    let started = Instant::now();
    let mut controls = Vec::new();
    for (i, (host, token)) in hosts.iter().zip(tokens).enumerate() {
        let spec = HostSpec {
            index: i,
            host: host.clone(),
            zone: format!("local-{}", ["a", "b", "c"][i % 3]),
            base: servers[i % servers.len()].base_url().to_string(),
            token,
            memory_bytes: HOST_MEMORY_BYTES,
        };
        controls.push(fleet::spawn(&mut set, spec, timing, board.clone(), &stop)?);
    }
    while board.registered() < hosts.len() {
        if started.elapsed() > REGISTER_LIMIT {
            bail!(
                "only {} of {} agents registered in {REGISTER_LIMIT:?}; retried: {}",
                board.registered(),
                hosts.len(),
                failures(&board.records().register_failures)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registered_in = started.elapsed();

    // The instances whose primaries' hosts go silent at the end.
    let targets: Vec<String> = (0..cfg.silences).map(|i| format!("silent-{i}")).collect();
    let mut creates = JoinSet::new();
    for id in &targets {
        let (admin, id) = (admin.clone(), id.clone());
        creates.spawn(async move {
            let (op, _) = admin.send_create(&id, &workload::ha_body()).await?;
            admin.wait_op(&op).await
        });
    }
    while let Some(r) = creates.join_next().await {
        r.context("a create task panicked")??;
    }
    tokio::time::sleep(cfg.warmup).await;

    let pool = db.pool(2).await?;
    let postmaster = procs::postmaster_pid(&pool).await?;
    let api_cpu = || -> Duration { servers.iter().filter_map(ApiServer::cpu_time).sum() };
    let self_cpu = || cpu_time("/proc/self/stat").unwrap_or_default();
    let load0 = procs::load_average().unwrap_or(f64::NAN);
    let (api0, pg0, me0) = (api_cpu(), procs::postgres_cpu(postmaster), self_cpu());
    board.set_measuring(true);
    let window_start = Instant::now();
    let until = window_start + cfg.window;

    let sampler = {
        let (pool, name) = (pool.clone(), db.name().to_string());
        let pids: Vec<u32> = servers.iter().filter_map(ApiServer::pid).collect();
        tokio::spawn(async move {
            let (mut peak, mut lock_waits, mut samples, mut files) = (Activity::default(), 0, 0, 0);
            let mut waits: BTreeMap<String, i64> = BTreeMap::new();
            while Instant::now() < until {
                if let Ok(a) = procs::activity(&pool, &name).await {
                    peak.connections = peak.connections.max(a.connections);
                    peak.active = peak.active.max(a.active);
                    peak.lock_waits = peak.lock_waits.max(a.lock_waits);
                    lock_waits += a.lock_waits;
                    samples += 1;
                }
                for (what, n) in procs::waits(&pool, &name).await.unwrap_or_default() {
                    *waits.entry(what).or_default() += n;
                }
                files = files.max(pids.iter().filter_map(|p| procs::open_files(*p)).sum());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (peak, lock_waits, samples, files, waits)
        })
    };
    let churn = workload::churn(&admin, cfg.churn_loops, until, "churn").await;
    tokio::time::sleep_until(until.into()).await;
    board.set_measuring(false);
    let window = window_start.elapsed();
    let (api1, pg1, me1) = (api_cpu(), procs::postgres_cpu(postmaster), self_cpu());
    let load1 = procs::load_average().unwrap_or(f64::NAN);
    let (peak, lock_wait_samples, samples, api_files, waits) = sampler.await?;
    pool.close().await;

    let silences = workload::silence(
        &admin,
        &board,
        &controls,
        &targets,
        Duration::from_millis(500),
        cfg.host_timeout + Duration::from_secs(20),
    )
    .await?;
    stop.cancel();
    while set.join_next().await.is_some() {}

    let records = std::mem::take(&mut *board.records());
    let mut wake = Vec::new();
    let (mut wake_early, mut wake_missing) = (0, 0);
    for (name, accepted) in &churn.accepted {
        match records.seen.get(name) {
            None => wake_missing += 1,
            Some(seen) => {
                for at in seen {
                    if at < accepted {
                        wake_early += 1;
                    }
                    wake.push(at.saturating_duration_since(*accepted));
                }
            }
        }
    }
    Ok(Outcome {
        agents,
        replicas: servers.len() as u32,
        registered_in,
        window,
        beats: Samples::new(records.beats),
        beat_failures: records.beat_failures,
        poll_failures: records.poll_failures,
        register_failures: records.register_failures,
        configs: records.configs,
        wake: Samples::new(wake),
        wake_early,
        wake_missing,
        cycles: churn.cycles,
        churn_failures: churn.failures,
        api_cpu: api1.saturating_sub(api0),
        pg_cpu: pg1.saturating_sub(pg0),
        bench_cpu: me1.saturating_sub(me0),
        peak,
        lock_wait_samples,
        samples,
        api_files,
        waits,
        load: (load0, load1),
        silences,
    })
}

fn section(cfg: &Config, outcomes: &[Outcome], files: u64) -> Section {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let limit = cfg.host_timeout + Duration::from_secs(1);
    for o in outcomes {
        let l = o.label();
        let p99 = o.beats.quantile(0.99);
        let beat = format!(
            "{} (p50 {}, max {})",
            ms(p99),
            ms(o.beats.quantile(0.5)),
            ms(o.beats.max())
        );
        rows.push(if o.agents == TARGET_AGENTS && o.replicas >= 2 {
            Row::check(
                format!("{l}: heartbeat p99"),
                beat,
                format!("< {}", ms(BEAT_P99_TARGET)),
                p99 < BEAT_P99_TARGET && o.beat_failures.is_empty(),
            )
        } else {
            Row::info(format!("{l}: heartbeat p99"), beat)
        });
        rows.push(Row::info(
            format!("{l}: heartbeats answered / failed"),
            format!(
                "{} in {} ({:.0}/s) / {}",
                count(o.beats.len() as u64),
                secs(o.window),
                o.beats.len() as f64 / o.window.as_secs_f64().max(1e-9),
                failures(&o.beat_failures)
            ),
        ));
        rows.push(Row::info(
            format!("{l}: config wake-up after a create, p50 / p99 / max"),
            format!(
                "{} / {} / {} ({} host configs, {} create–delete cycles)",
                ms(o.wake.quantile(0.5)),
                ms(o.wake.quantile(0.99)),
                ms(o.wake.max()),
                o.wake.len(),
                o.cycles
            ),
        ));
        rows.push(Row::info(
            format!("{l}: CPU per heartbeat, API / PostgreSQL"),
            format!(
                "{} / {} (API {} of a core, PostgreSQL {}, the agents {})",
                o.per_beat(o.api_cpu),
                o.per_beat(o.pg_cpu),
                o.share(o.api_cpu),
                o.share(o.pg_cpu),
                o.share(o.bench_cpu)
            ),
        ));
        let worst = o.silence_max();
        let agent_worst = o.silences.iter().filter_map(|s| s.to_agent).max();
        let silence = format!(
            "{} (median {}; promotion at the agent, max {}; {} hosts)",
            secs(worst),
            secs(crate::stats::median(
                &o.silences
                    .iter()
                    .map(|s| s.to_new_primary)
                    .collect::<Vec<_>>()
            )),
            agent_worst.map_or_else(|| "not seen".into(), secs),
            o.silences.len()
        );
        let what = format!("{l}: host silent → new primary, max");
        rows.push(if o.agents == TARGET_AGENTS {
            Row::check(
                what,
                silence,
                format!("< {} (host timeout + 1 s)", secs(limit)),
                !o.silences.is_empty() && worst < limit,
            )
        } else {
            Row::info(what, silence)
        });
        rows.push(Row::info(
            format!("{l}: peak DB connections / active / waiting on a lock; API open files"),
            format!(
                "{} / {} / {} (lock waits in {} of {} samples); {}",
                o.peak.connections,
                o.peak.active,
                o.peak.lock_waits,
                o.lock_wait_samples.min(o.samples),
                o.samples,
                o.api_files
            ),
        ));
        rows.push(Row::info(
            format!("{l}: load average (1 min) before / after the window"),
            format!("{:.2} / {:.2}", o.load.0, o.load.1),
        ));
        let mut trouble = Vec::new();
        if !o.poll_failures.is_empty() {
            trouble.push(format!(
                "config polls failed: {}",
                failures(&o.poll_failures)
            ));
        }
        if !o.register_failures.is_empty() {
            trouble.push(format!(
                "registrations retried: {}",
                failures(&o.register_failures)
            ));
        }
        if o.wake_missing > 0 {
            trouble.push(format!("{} creates reached no agent", o.wake_missing));
        }
        if !o.churn_failures.is_empty() {
            trouble.push(format!(
                "{} create/delete cycles failed, e.g. {}",
                o.churn_failures.len(),
                o.churn_failures[0]
            ));
        }
        let mut waits: Vec<(&String, &i64)> = o.waits.iter().collect();
        waits.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = waits
            .iter()
            .take(4)
            .map(|(w, n)| format!("{n}× `{w}`"))
            .collect();
        if !top.is_empty() {
            trouble.push(format!(
                "active sessions seen in {} samples: {}",
                o.samples,
                top.join(", ")
            ));
        }
        notes.push(format!(
            "{l}: all registered in {}; {} new configs received in the window; {} of the wake-ups came before the create's answer (counted as 0){}",
            secs(o.registered_in),
            count(o.configs),
            o.wake_early,
            if trouble.is_empty() { String::new() } else { format!("; {}", trouble.join("; ")) }
        ));
    }
    notes.splice(
        0..0,
        [
            format!(
                "Simulated agents: one Tokio task per host in the benchmark process, each with its own HTTP client and host token, registered round-robin in local-a/b/c and, with R replicas, talking to replica i mod R. They heartbeat every {} (a random phase per agent, each period ±10 %), and at once after applying a config; they long-poll the config (30 s) as cacheplane-node-agent does and report every node of it running in the role asked (replicas linked, offsets growing).",
                secs(cfg.interval)
            ),
            format!(
                "Measured window: {} after a {} warm-up, while {} client loop(s) create and delete BASIC and STANDARD_HA (1 replica) instances, each waiting for its operation. Heartbeat latency is client side (send to answer). A wake-up is from the create's answer to a host holding one of its nodes receiving the config with it. CPU per heartbeat is the CPU time (from /proc/PID/stat) of the API process(es), and of the PostgreSQL postmaster and all its children, over the window divided by the heartbeats answered in it: it includes the long-polls, the client's requests and the background sweeps.",
                secs(cfg.window),
                secs(cfg.warmup),
                cfg.churn_loops
            ),
            format!(
                "Silence: after the window the hosts of {} STANDARD_HA primaries go down with their engines, 0.5 s apart: their agents stop heartbeating and polling, and the replicas of their nodes on other hosts report their link down from then on (the API fails a silent host's primary over only once every replica has lost it, so that a dead agent alone never causes one). Timed from each host's last heartbeat sent to the instance showing another primary (GET every 20 ms), and to that node's agent receiving its promotion. API --host-timeout {}.",
                cfg.silences,
                secs(cfg.host_timeout)
            ),
            format!(
                "Open-files limit {files} (raised to the hard limit in-process; the API processes inherit it). The machine is shared: the load average beside each run says how busy it was; re-run on a quiet machine for clean figures."
            ),
        ],
    );
    Section {
        id: "agents",
        title: "A thousand agents: heartbeats, config wake-ups and silent hosts with 1 and 2 API replicas".into(),
        rows,
        notes,
    }
}
