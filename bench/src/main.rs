//! `cacheplane-bench`: measures the performance targets (docs/architecture.md#performance-targets), prints a table and records it in
//! BENCHMARKS.md. Usually run through `scripts/bench.sh`.
//!
//! Each figure is a module with a `Config` and an `async fn run(&Config) ->
//! anyhow::Result<report::Section>`; to add one, add the module, a [`Bench`] variant and
//! its arm in [`run_bench`].

mod admin;
mod agent_idle;
mod agents;
mod alloc;
mod create_latency;
mod db;
mod failover;
mod get_latency;
mod memcached_throughput;
mod report;
mod server;
mod stack;
mod stats;
mod throughput;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// A benchmark that can be selected with `--bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Bench {
    /// Get-instance latency at 10 000 instances (open and closed loop).
    GetLatency,
    /// 4 096 /28 allocations in a /16: the last vs the first.
    Alloc,
    /// Create → READY for BASIC and STANDARD_HA on the real stack (API, 3 agents, redis).
    CreateLatency,
    /// The node agents' RSS and CPU while idle with instances READY.
    AgentIdle,
    /// Primary's redis-server SIGKILLed → first write OK at the same host:port.
    Failover,
    /// redis-benchmark through the primary and read endpoints vs straight to the nodes.
    Throughput,
    /// 1 000 simulated agents against 1 and 2 API replicas: heartbeats, config
    /// wake-ups, CPU per heartbeat, silent hosts.
    Agents,
    /// Memcached-protocol ops/s and latency straight to a memcached started with a
    /// node's flags, from a small load generator (no target).
    MemcachedThroughput,
}

/// Measures the performance targets of the Cacheplane control plane.
#[derive(Debug, Parser)]
#[command(name = "cacheplane-bench", version)]
struct Args {
    /// Postgres cluster in which each benchmark creates (and drops) a database of its own.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,

    /// The `cacheplane-api` binary (release build).
    #[arg(long, default_value = "target/release/cacheplane-api")]
    api_bin: PathBuf,

    /// The `cacheplane-node-agent` binary (default: next to --api-bin).
    #[arg(long)]
    agent_bin: Option<PathBuf>,

    /// Benchmarks to run (comma-separated); all by default.
    #[arg(long = "bench", value_enum, value_delimiter = ',')]
    benches: Vec<Bench>,

    /// File to record the results in.
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: PathBuf,

    /// Print only; leave BENCHMARKS.md alone.
    #[arg(long)]
    no_write: bool,

    /// The command line recorded in BENCHMARKS.md (default: this process's arguments).
    #[arg(long)]
    command: Option<String>,

    /// Exit with status 1 when a target is missed.
    #[arg(long)]
    strict: bool,

    /// Keep the benchmark databases instead of dropping them.
    #[arg(long)]
    keep_db: bool,

    /// get-latency: instances in the database.
    #[arg(long, default_value_t = 10_000)]
    instances: u32,

    /// get-latency: hosts the instances' nodes are spread over.
    #[arg(long, default_value_t = 6)]
    hosts: u32,

    /// get-latency: open-loop request rate (req/s).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,

    /// get-latency: open-loop duration (s).
    #[arg(long, default_value_t = 20.0)]
    open_secs: f64,

    /// get-latency: closed-loop concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,

    /// get-latency: closed-loop duration (s).
    #[arg(long, default_value_t = 10.0)]
    closed_secs: f64,

    /// get-latency: warm-up before measuring (s).
    #[arg(long, default_value_t = 5.0)]
    warmup_secs: f64,

    /// get-latency: write each open-loop request (scheduled_ms, latency_ms, ok) to this CSV.
    #[arg(long)]
    latency_csv: Option<PathBuf>,

    /// create-latency: creates per tier (BASIC, STANDARD_HA, a 3-node Memcached instance).
    #[arg(long, default_value_t = 12)]
    creates: u32,

    /// agent-idle: the measuring window (s).
    #[arg(long, default_value_t = 30.0)]
    idle_secs: f64,

    /// agent-idle: quiet time between the instances turning READY and the window (s).
    #[arg(long, default_value_t = 10.0)]
    settle_secs: f64,

    /// failover: failovers to measure.
    #[arg(long, default_value_t = 20)]
    failovers: u32,

    /// failover: the writer's pause between two SETs (ms).
    #[arg(long, default_value_t = 10)]
    write_interval_ms: u64,

    /// failover: quiet time between the instance being READY again and the next kill (s;
    /// plus a random 0–1 s).
    #[arg(long, default_value_t = 6.0)]
    failover_settle_secs: f64,

    /// throughput: requests per redis-benchmark test without pipelining (-n).
    #[arg(long, default_value_t = 200_000)]
    tp_requests: u32,

    /// throughput: requests per redis-benchmark test with -P 16 (-n).
    #[arg(long, default_value_t = 1_000_000)]
    tp_pipelined_requests: u32,

    /// throughput: redis-benchmark connections (-c).
    #[arg(long, default_value_t = 50)]
    tp_clients: u32,

    /// throughput: runs of each configuration (the median is compared).
    #[arg(long, default_value_t = 3)]
    tp_repeats: u32,

    /// agents: simulated agent counts (comma-separated), each run against every
    /// --sim-replicas.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000")]
    sim_agents: Vec<u32>,

    /// agents: API replica counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    sim_replicas: Vec<u32>,

    /// agents: the measured window (s).
    #[arg(long, default_value_t = 20.0)]
    sim_secs: f64,

    /// agents: warm-up after the last registration (s).
    #[arg(long, default_value_t = 5.0)]
    sim_warmup_secs: f64,

    /// agents: concurrent create/delete loops during the window (0: heartbeats alone).
    /// One is a busy control plane (about 5 create–delete cycles a second here); each
    /// loop runs flat out, so 4 saturate the 2 cores the targets are stated for.
    #[arg(long, default_value_t = 1)]
    sim_churn: usize,

    /// agents: hosts of STANDARD_HA primaries silenced after the window.
    #[arg(long, default_value_t = 3)]
    sim_silences: usize,

    /// agents: the API's --host-timeout (s).
    #[arg(long, default_value_t = 10.0)]
    sim_host_timeout_secs: f64,

    /// agents: the simulated agents' heartbeat interval (s; the real agent's default 1).
    #[arg(long, default_value_t = 1.0)]
    sim_interval_secs: f64,

    /// agents: one more flag for every API process, e.g.
    /// `--sim-api-arg=--max-agent-requests=8192` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    sim_api_arg: Vec<String>,

    /// memcached-throughput: the `memcached` binary.
    #[arg(long, default_value = "memcached")]
    mc_memcached: PathBuf,

    /// memcached-throughput: load generator connections.
    #[arg(long, default_value_t = 50)]
    mc_connections: usize,

    /// memcached-throughput: measured seconds per configuration.
    #[arg(long, default_value_t = 10.0)]
    mc_secs: f64,

    /// memcached-throughput: bytes per value.
    #[arg(long, default_value_t = 100)]
    mc_value_size: usize,

    /// memcached-throughput: keys set before measuring.
    #[arg(long, default_value_t = 10_000)]
    mc_keys: u32,

    /// memcached-throughput: share of sets (the rest are gets).
    #[arg(long, default_value_t = 0.1)]
    mc_set_ratio: f64,

    /// memcached-throughput: the node's memory in MB (-m).
    #[arg(long, default_value_t = 1024)]
    mc_memory_mb: u32,

    /// memcached-throughput: the node's worker threads (-t).
    #[arg(long, default_value_t = 2)]
    mc_threads: u32,
}

impl Args {
    fn agent_bin(&self) -> PathBuf {
        self.agent_bin
            .clone()
            .unwrap_or_else(|| stack::default_agent_bin(&self.api_bin))
    }
}

async fn run_bench(bench: Bench, args: &Args) -> anyhow::Result<report::Section> {
    match bench {
        Bench::GetLatency => {
            get_latency::run(&get_latency::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                instances: args.instances,
                hosts: args.hosts,
                rate: args.rate,
                open_secs: args.open_secs,
                clients: args.clients,
                closed_secs: args.closed_secs,
                warmup_secs: args.warmup_secs,
                keep_db: args.keep_db,
                latency_csv: args.latency_csv.clone(),
            })
            .await
        }
        Bench::Alloc => {
            alloc::run(&alloc::Config {
                database_url: args.database_url.clone(),
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::CreateLatency => {
            create_latency::run(&create_latency::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                agent_bin: args.agent_bin(),
                creates: args.creates,
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::AgentIdle => {
            agent_idle::run(&agent_idle::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                agent_bin: args.agent_bin(),
                window_secs: args.idle_secs,
                settle_secs: args.settle_secs,
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::Failover => {
            failover::run(&failover::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                agent_bin: args.agent_bin(),
                failovers: args.failovers,
                write_interval: std::time::Duration::from_millis(args.write_interval_ms),
                settle: std::time::Duration::from_secs_f64(args.failover_settle_secs.max(0.0)),
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::Throughput => {
            throughput::run(&throughput::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                agent_bin: args.agent_bin(),
                requests: args.tp_requests,
                pipelined_requests: args.tp_pipelined_requests,
                clients: args.tp_clients,
                repeats: args.tp_repeats,
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::Agents => {
            let secs = |s: f64| std::time::Duration::from_secs_f64(s.max(0.0));
            agents::run(&agents::Config {
                database_url: args.database_url.clone(),
                api_bin: args.api_bin.clone(),
                agents: args.sim_agents.clone(),
                replicas: args.sim_replicas.clone(),
                window: secs(args.sim_secs),
                warmup: secs(args.sim_warmup_secs),
                churn_loops: args.sim_churn,
                silences: args.sim_silences,
                host_timeout: secs(args.sim_host_timeout_secs),
                interval: secs(args.sim_interval_secs.max(0.01)),
                api_args: args.sim_api_arg.clone(),
                keep_db: args.keep_db,
            })
            .await
        }
        Bench::MemcachedThroughput => {
            memcached_throughput::run(&memcached_throughput::Config {
                memcached: args.mc_memcached.clone(),
                connections: args.mc_connections,
                secs: args.mc_secs,
                value_size: args.mc_value_size,
                keys: args.mc_keys,
                set_ratio: args.mc_set_ratio,
                memory_mb: args.mc_memory_mb,
                threads: args.mc_threads,
            })
            .await
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let benches = if args.benches.is_empty() {
        Bench::value_variants().to_vec()
    } else {
        args.benches.clone()
    };
    let command = args
        .command
        .clone()
        .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" "));
    let postgres = db::server_version(&args.database_url).await?;
    let idle = report::cpu_idle(std::time::Duration::from_secs(2)).await;
    if let Some(idle) = idle.filter(|f| *f < 0.8) {
        eprintln!(
            "[bench] warning: the CPUs were only {:.0} % idle before the run; something else is busy and the figures will suffer",
            idle * 100.0
        );
    }
    let run = report::RunInfo::collect(command, &postgres, idle);

    let mut sections = Vec::new();
    for bench in benches {
        let name = bench
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        eprintln!("[bench] running {name}");
        sections.push(run_bench(bench, &args).await?);
    }

    report::print(&run, &sections);
    if !args.no_write {
        report::write_markdown(&args.output, &run, &sections)?;
        eprintln!("[bench] updated {}", args.output.display());
    }
    let missed: usize = sections.iter().map(report::Section::missed).sum();
    if args.strict && missed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
