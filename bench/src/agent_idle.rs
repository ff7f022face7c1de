//! Target (docs/architecture.md#performance-targets): "agent idle — < 20 MB RSS, < 1 % CPU".
//!
//! On the real stack ([`crate::stack`]) with one BASIC and one STANDARD_HA instance (2
//! read replicas) READY, so every agent supervises at least one engine, each agent's
//! resident set (`VmRSS` of `/proc/PID/status`) is sampled every second and its CPU time
//! (utime + stime of `/proc/PID/stat`) taken at both ends of a window during which
//! nothing is asked of the control plane. The worst agent is held to the target.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::json;

use crate::create_latency::redis_version;
use crate::report::{Row, Section};
use crate::server;
use crate::stack::{rss_bytes, Agent, Stack, StackConfig, SUPERNET};
use crate::stats::ms;

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// The `cacheplane-node-agent` binary.
    pub agent_bin: PathBuf,
    /// The measuring window.
    pub window_secs: f64,
    /// Quiet time between the instances turning READY and the window; longer than the
    /// agent's 5 s of quick (200 ms) passes after it last acted.
    pub settle_secs: f64,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

/// One agent over the window.
struct AgentIdle {
    host: String,
    engines: usize,
    max_rss: u64,
    first_rss: u64,
    cpu: Duration,
}

const MB: f64 = 1e6;
const RSS_TARGET_MB: f64 = 20.0;
const CPU_TARGET_PERCENT: f64 = 1.0;

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(cfg.window_secs >= 1.0, "--idle-secs must be at least 1 (s)");
    let stack = Stack::start(&StackConfig {
        database_url: cfg.database_url.clone(),
        api_bin: cfg.api_bin.clone(),
        agent_bin: cfg.agent_bin.clone(),
        db_prefix: "cacheplane_bench_idle",
        keep_db: cfg.keep_db,
        agent_args: Vec::new(),
    })
    .await?;
    eprintln!(
        "[agent-idle] API, 3 agents UP (database {})",
        stack.db_name()
    );
    let result = measure(cfg, &stack).await;
    stack.stop(result.is_err()).await?;
    result
}

async fn measure(cfg: &Config, stack: &Stack) -> anyhow::Result<Section> {
    let basic = stack
        .api()
        .create("idle-basic", &json!({"tier": "BASIC", "memorySizeGb": 1}))
        .await
        .context("creating idle-basic")?;
    let ha = stack
        .api()
        .create(
            "idle-ha",
            &json!({
                "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
                "readReplicasMode": "READ_REPLICAS_ENABLED"
            }),
        )
        .await
        .context("creating idle-ha")?;
    for inst in [&basic, &ha] {
        ensure!(inst["state"] == "READY", "not READY: {inst}");
    }
    eprintln!(
        "[agent-idle] idle-basic and idle-ha READY; settling {:.0} s, then a {:.0} s window",
        cfg.settle_secs, cfg.window_secs
    );
    tokio::time::sleep(Duration::from_secs_f64(cfg.settle_secs)).await;

    let agents = stack.agents();
    let stat = |pid: u32| format!("/proc/{pid}/stat");
    let cpu_start: Vec<Option<Duration>> = agents
        .iter()
        .map(|a| server::cpu_time(&stat(agent_pid(a))))
        .collect();
    let api_start = stack.server().cpu_time();
    let mut rss: Vec<Vec<u64>> = vec![Vec::new(); agents.len()];
    let start = Instant::now();
    let window = Duration::from_secs_f64(cfg.window_secs);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for (a, samples) in agents.iter().zip(&mut rss) {
            samples.push(rss_bytes(agent_pid(a)).with_context(|| {
                format!("reading /proc/{}/status of agent {}", agent_pid(a), a.host)
            })?);
        }
        if start.elapsed() >= window {
            break;
        }
    }
    let cpu_end: Vec<Option<Duration>> = agents
        .iter()
        .map(|a| server::cpu_time(&stat(agent_pid(a))))
        .collect();
    let api_end = stack.server().cpu_time();
    let elapsed = start.elapsed();

    let mut measured = Vec::new();
    for (i, a) in agents.iter().enumerate() {
        let (Some(c0), Some(c1)) = (cpu_start[i], cpu_end[i]) else {
            anyhow::bail!(
                "cannot read /proc/{}/stat of agent {}",
                agent_pid(a),
                a.host
            );
        };
        measured.push(AgentIdle {
            host: a.host.clone(),
            engines: a.engine_pids().len(),
            max_rss: rss[i].iter().copied().max().unwrap_or(0),
            first_rss: rss[i].first().copied().unwrap_or(0),
            cpu: c1.saturating_sub(c0),
        });
    }
    let pct = |cpu: Duration| cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0;
    let worst_rss = measured.iter().map(|m| m.max_rss).max().unwrap_or(0) as f64 / MB;
    let worst_cpu = measured.iter().map(|m| pct(m.cpu)).fold(0.0_f64, f64::max);

    let mut rows = vec![
        Row::check(
            "agent idle RSS, max over the window (worst agent)",
            format!("{worst_rss:.1} MB"),
            format!("< {RSS_TARGET_MB:.0} MB"),
            worst_rss < RSS_TARGET_MB,
        ),
        Row::check(
            "agent idle CPU over the window (worst agent)",
            format!("{worst_cpu:.2} %"),
            format!("< {CPU_TARGET_PERCENT:.0} %"),
            worst_cpu < CPU_TARGET_PERCENT,
        ),
    ];
    for m in &measured {
        rows.push(Row::info(
            format!(
                "agent {} ({} engine{}): max RSS, CPU",
                m.host,
                m.engines,
                if m.engines == 1 { "" } else { "s" }
            ),
            format!(
                "{:.1} MB, {:.2} % ({} CPU in {:.0} s)",
                m.max_rss as f64 / MB,
                pct(m.cpu),
                ms(m.cpu),
                elapsed.as_secs_f64()
            ),
        ));
    }
    if let (Some(a0), Some(a1)) = (api_start, api_end) {
        let api = a1.saturating_sub(a0);
        rows.push(Row::info(
            "API server CPU over the same window (3 agents heartbeating)",
            format!("{:.2} %", pct(api)),
        ));
    }
    let first: Vec<String> = measured
        .iter()
        .map(|m| format!("{} {:.1} MB", m.host, m.first_rss as f64 / MB))
        .collect();
    let notes = vec![
        format!(
            "The real stack: a fresh database, the release API binary (`--default-network-supernet \
             {SUPERNET}`) and three release `cacheplane-node-agent`s (loopback mode, one each in \
             local-a/b/c, default 1 s heartbeat and 30 s config long-poll, default `info` log \
             level) running real `redis-server` {}.",
            redis_version()
        ),
        format!(
            "READY before the window: `idle-basic` (BASIC 1 GB) and `idle-ha` (STANDARD_HA 1 GB, \
             2 read replicas: one node per zone), so every agent supervises one or two engines, \
             observes them and heartbeats every second. Then {:.0} s of quiet and a {:.0} s \
             window with no API calls from the bench.",
            cfg.settle_secs, cfg.window_secs
        ),
        format!(
            "RSS = `VmRSS` of `/proc/PID/status`, sampled every second ({} samples per agent), \
             in MB of 10^6 bytes; at the start of the window: {}. CPU = utime + stime of \
             `/proc/PID/stat` (all the agent's threads, not its engines) at the end minus at the \
             start, over the window's wall time; the kernel counts it in ticks of {}, {:.3} % \
             of the window. The engines' own footprint is not counted.",
            rss.first().map_or(0, Vec::len),
            first.join(", "),
            ms(server::clock_tick()),
            server::clock_tick().as_secs_f64() / elapsed.as_secs_f64() * 100.0
        ),
    ];
    Ok(Section {
        id: "agent-idle",
        title: "Node agent idle footprint".into(),
        rows,
        notes,
    })
}

/// The pid of an agent of the stack (which never stops one while it measures).
fn agent_pid(a: &Agent) -> u32 {
    a.pid().expect("the agents of the stack run")
}
