//! Targets (docs/architecture.md#performance-targets): redis-benchmark through the
//! primary endpoint ≥ 0.98× straight to redis-server, and through the read endpoint
//! ≥ 0.8× straight to a replica where the agent's userspace proxy serves it, ≥ 0.95×
//! where the kernel does (nftables DNAT, `--read-endpoint kernel`).
//!
//! On the real stack ([`crate::stack`]) one STANDARD_HA instance (1 GB, 2 replicas, read
//! endpoint on) is created, and `redis-benchmark` (Debian's redis-tools) is pointed at
//! four addresses: the primary node's own, the primary endpoint (the instance's
//! host:port, which the primary's `redis-server` also binds), one replica node's own,
//! and the read endpoint (a TCP proxy in the agent that runs the primary, spreading
//! connections over the replicas). SET and GET through the primary's two addresses, GET
//! through the replicas'. Every configuration runs `--repeats` times, interleaved with
//! the others (the order reversed every other pass), and the medians are compared.
//!
//! As root, a second stack follows whose agents serve read endpoints in the kernel
//! (`--read-endpoint kernel`); there the replica's own address and the read endpoint
//! are measured again, side by side, in the same way.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};

use crate::create_latency::redis_version;
use crate::report::{Row, Section};
use crate::server;
use crate::stack::{self, Stack, StackConfig, SUPERNET};
use crate::stats::count;
use cacheplane_testkit::resp::{self, call_text, info_field};
use cacheplane_testkit::wait::{try_wait_until, Poll};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// The `cacheplane-node-agent` binary.
    pub agent_bin: PathBuf,
    /// Requests per test without pipelining (`-n`).
    pub requests: u32,
    /// Requests per test with `-P 16` (`-n`): pipelined tests run many times faster.
    pub pipelined_requests: u32,
    /// Connections (`-c`).
    pub clients: u32,
    /// Runs of each configuration; the median is compared.
    pub repeats: u32,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

const ID: &str = "throughput-ha";
const NODES: usize = 3;
const PRIMARY_TARGET: f64 = 0.98;
/// Who serves the read endpoint in one stack of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPath {
    /// The agent's TCP proxy (loopback mode's default).
    Userspace,
    /// nftables DNAT in the agent's namespace (`--read-endpoint kernel`, root).
    Kernel,
}

impl ReadPath {
    /// The read endpoint's target, as a ratio to one replica.
    fn target(self) -> f64 {
        match self {
            ReadPath::Userspace => 0.8,
            ReadPath::Kernel => 0.95,
        }
    }

    /// Extra agent arguments.
    fn agent_args(self) -> Vec<String> {
        match self {
            ReadPath::Userspace => Vec::new(),
            ReadPath::Kernel => vec!["--read-endpoint".into(), "kernel".into()],
        }
    }

    /// Where to connect in this stack.
    fn vias(self) -> &'static [Via] {
        match self {
            ReadPath::Userspace => &Via::ALL,
            ReadPath::Kernel => &[Via::ReplicaNode, Via::ReadEndpoint],
        }
    }

    fn label(self) -> &'static str {
        match self {
            ReadPath::Userspace => "userspace proxy",
            ReadPath::Kernel => "kernel (nftables DNAT)",
        }
    }
}
const PIPELINES: [u32; 2] = [1, 16];
/// The key redis-benchmark's GET reads (its placeholder is only replaced with `-r`), set
/// beforehand to the 3 bytes its SET writes, so that every GET finds a value.
const KEY: &str = "key:__rand_int__";
const VALUE: &str = "xxx";
/// Longest a single redis-benchmark run may take.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Where redis-benchmark connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    PrimaryNode,
    PrimaryEndpoint,
    ReplicaNode,
    ReadEndpoint,
}

impl Via {
    const ALL: [Via; 4] = [
        Via::PrimaryNode,
        Via::PrimaryEndpoint,
        Via::ReplicaNode,
        Via::ReadEndpoint,
    ];

    fn label(self) -> &'static str {
        match self {
            Via::PrimaryNode => "straight to the primary node",
            Via::PrimaryEndpoint => "through the primary endpoint",
            Via::ReplicaNode => "straight to one replica node",
            Via::ReadEndpoint => "through the read endpoint",
        }
    }

    /// The `-t` tests: writes only where they are accepted.
    fn tests(self) -> &'static [&'static str] {
        match self {
            Via::PrimaryNode | Via::PrimaryEndpoint => &["SET", "GET"],
            Via::ReplicaNode | Via::ReadEndpoint => &["GET"],
        }
    }
}

/// The four addresses.
struct Targets {
    primary: (String, u16),
    endpoint: (String, u16),
    replica: (String, u16),
    read: (String, u16),
}

impl Targets {
    fn of(&self, via: Via) -> &(String, u16) {
        match via {
            Via::PrimaryNode => &self.primary,
            Via::PrimaryEndpoint => &self.endpoint,
            Via::ReplicaNode => &self.replica,
            Via::ReadEndpoint => &self.read,
        }
    }
}

/// One test's result in one run.
#[derive(Debug, Clone, PartialEq)]
struct Measured {
    test: String,
    rps: f64,
    p50_ms: Option<f64>,
}

/// Every run of one (address, pipeline, test), in order.
struct Series {
    via: Via,
    pipeline: u32,
    test: &'static str,
    rps: Vec<f64>,
    p50_ms: Vec<f64>,
}

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(cfg.repeats >= 1, "--tp-repeats must be at least 1");
    ensure!(
        cfg.requests >= 1000 && cfg.pipelined_requests >= 1000,
        "--tp-requests and --tp-pipelined-requests must be at least 1000"
    );
    let rb = std::process::Command::new("redis-benchmark")
        .arg("--version")
        .output()
        .context("running redis-benchmark --version: install redis-tools")?;
    ensure!(rb.status.success(), "redis-benchmark --version failed");
    let rb_version = String::from_utf8_lossy(&rb.stdout).trim().to_string();
    let mut paths = vec![ReadPath::Userspace];
    if nix::unistd::geteuid().is_root() {
        paths.push(ReadPath::Kernel);
    } else {
        eprintln!("[throughput] not root: the kernel read endpoint is not measured");
    }
    let mut phases = Vec::new();
    for path in paths {
        let stack = Stack::start(&StackConfig {
            database_url: cfg.database_url.clone(),
            api_bin: cfg.api_bin.clone(),
            agent_bin: cfg.agent_bin.clone(),
            db_prefix: "cacheplane_bench_throughput",
            keep_db: cfg.keep_db,
            agent_args: path.agent_args(),
        })
        .await?;
        eprintln!(
            "[throughput] API, 3 agents UP, read endpoints: {} (database {})",
            path.label(),
            stack.db_name()
        );
        let result = measure(cfg, &stack, path).await;
        stack.stop(result.is_err()).await?;
        phases.push(result?);
    }
    Ok(section(cfg, &phases, &rb_version))
}

/// What one stack of the run measured.
struct Phase {
    path: ReadPath,
    series: Vec<Series>,
    targets: Targets,
    /// The agent serving the read endpoint, and its CPU and wall time during the read
    /// endpoint's runs, per pipeline depth.
    proxy_host: String,
    proxy_cpu: [Duration; PIPELINES.len()],
    proxy_wall: [Duration; PIPELINES.len()],
}

fn address(v: &serde_json::Value, host: &str, port: &str) -> anyhow::Result<(String, u16)> {
    let h = v[host]
        .as_str()
        .with_context(|| format!("no {host} in {v}"))?;
    let p = v[port]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("no {port} in {v}"))?;
    Ok((h.to_string(), p))
}

async fn measure(cfg: &Config, stack: &Stack, path: ReadPath) -> anyhow::Result<Phase> {
    stack
        .api()
        .create(ID, &stack::ha_body())
        .await
        .with_context(|| format!("creating {ID}"))?;
    let inst = stack
        .api()
        .wait_ready(ID, NODES, Duration::from_secs(60))
        .await?;
    let primary = stack::node_with_role(&inst, "PRIMARY")?;
    let replica = stack::node_with_role(&inst, "REPLICA")?;
    let targets = Targets {
        primary: address(primary, "address", "port")?,
        endpoint: address(&inst, "host", "port")?,
        replica: address(replica, "address", "port")?,
        read: address(&inst, "readEndpoint", "readEndpointPort")?,
    };
    let auth = stack.api().auth_string(ID).await?;
    let primary_id = primary["id"].as_str().context("node id")?;
    let proxy_agent = stack
        .agent_of(primary_id)
        .with_context(|| format!("no agent runs the primary {primary_id}"))?;
    let (proxy_host, proxy_pid) = (
        proxy_agent.host.clone(),
        proxy_agent.pid().context("the agent runs")?,
    );
    prepare(&targets, &auth).await?;
    eprintln!(
        "[throughput] {ID} READY: primary {}:{}, endpoint {}:{}, replica {}:{}, read endpoint {}:{} (agent {proxy_host})",
        targets.primary.0,
        targets.primary.1,
        targets.endpoint.0,
        targets.endpoint.1,
        targets.replica.0,
        targets.replica.1,
        targets.read.0,
        targets.read.1
    );

    // Warm-up: one short run of each, not counted.
    for &via in path.vias() {
        let (h, p) = targets.of(via);
        bench(h, *p, &auth, cfg.clients, cfg.requests / 10, 1, via.tests()).await?;
    }

    let mut series: Vec<Series> = Vec::new();
    for pipeline in PIPELINES {
        for &via in path.vias() {
            for test in via.tests() {
                series.push(Series {
                    via,
                    pipeline,
                    test,
                    rps: Vec::new(),
                    p50_ms: Vec::new(),
                });
            }
        }
    }
    // The agent's CPU while it relays the read endpoint's runs, per pipeline depth.
    let mut proxy_cpu = [Duration::ZERO; PIPELINES.len()];
    let mut proxy_wall = [Duration::ZERO; PIPELINES.len()];
    let stat = format!("/proc/{proxy_pid}/stat");
    for r in 0..cfg.repeats {
        let mut order = path.vias().to_vec();
        if r % 2 == 1 {
            order.reverse();
        }
        for (pi, pipeline) in PIPELINES.into_iter().enumerate() {
            let n = if pipeline == 1 {
                cfg.requests
            } else {
                cfg.pipelined_requests
            };
            for &via in &order {
                let (h, p) = targets.of(via);
                let cpu0 = server::cpu_time(&stat);
                let t0 = Instant::now();
                let got = bench(h, *p, &auth, cfg.clients, n, pipeline, via.tests()).await?;
                if via == Via::ReadEndpoint {
                    let cpu1 = server::cpu_time(&stat);
                    if let (Some(a), Some(b)) = (cpu0, cpu1) {
                        proxy_cpu[pi] += b.saturating_sub(a);
                        proxy_wall[pi] += t0.elapsed();
                    }
                }
                let line: Vec<String> = got
                    .iter()
                    .map(|m| format!("{} {} req/s", m.test, count(m.rps.round() as u64)))
                    .collect();
                eprintln!(
                    "[throughput]   pass {} -P {pipeline} {}: {}",
                    r + 1,
                    via.label(),
                    line.join(", ")
                );
                for m in got {
                    if let Some(s) = series
                        .iter_mut()
                        .find(|s| s.via == via && s.pipeline == pipeline && s.test == m.test)
                    {
                        s.rps.push(m.rps);
                        s.p50_ms.extend(m.p50_ms);
                    }
                }
            }
        }
    }
    Ok(Phase {
        path,
        series,
        targets,
        proxy_host,
        proxy_cpu,
        proxy_wall,
    })
}

/// Writes the key the GETs read and waits (30 s at most) until both replicas' ways
/// serve it: the replica's own address, and the read endpoint, which must lead to a
/// replica.
async fn prepare(t: &Targets, auth: &str) -> anyhow::Result<()> {
    let mut c = resp::connect(&t.endpoint.0, t.endpoint.1, Some(auth))
        .await
        .context("connecting to the primary endpoint")?;
    c.call(&["SET", KEY, VALUE]).await?;
    let what = format!("the replicas serve {KEY}");
    try_wait_until(
        &what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async {
            for (h, p) in [&t.replica, &t.read] {
                if let Err(e) = replica_serves(h, *p, auth).await {
                    return Err(Poll::<String>::NotYet(format!("{h}:{p}: {e:#}")));
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(())
}

/// `host:port` leads to a replica that has the key.
async fn replica_serves(host: &str, port: u16, auth: &str) -> anyhow::Result<()> {
    let mut c = resp::connect(host, port, Some(auth)).await?;
    let info = call_text(&mut c, &["INFO", "replication"]).await?;
    ensure!(
        info_field(&info, "role") == Some("slave"),
        "not a replica: role {:?}",
        info_field(&info, "role")
    );
    let v = call_text(&mut c, &["GET", KEY]).await?;
    ensure!(v == VALUE, "{KEY} is {v:?}");
    Ok(())
}

/// One `redis-benchmark -q` run; the results of its tests.
async fn bench(
    host: &str,
    port: u16,
    auth: &str,
    clients: u32,
    requests: u32,
    pipeline: u32,
    tests: &[&str],
) -> anyhow::Result<Vec<Measured>> {
    let t = tests.join(",").to_lowercase();
    let run = tokio::process::Command::new("redis-benchmark")
        .args(["-h", host, "-p", &port.to_string(), "-a", auth])
        .args(["-c", &clients.to_string(), "-n", &requests.to_string()])
        .args(["-P", &pipeline.to_string(), "-t", &t, "-q"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .with_context(|| format!("redis-benchmark against {host}:{port} ran over {RUN_LIMIT:?}"))?
        .context("running redis-benchmark")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "redis-benchmark against {host}:{port} failed ({}): {}",
        out.status,
        stderr.trim()
    );
    let got = parse_quiet(&stdout);
    for test in tests {
        ensure!(
            got.iter().any(|m| m.test == *test),
            "no {test} result from redis-benchmark against {host}:{port}: {stdout:?} {stderr:?}"
        );
    }
    Ok(got)
}

/// The results in `redis-benchmark -q` output: `SET: 81234.57 requests per second,
/// p50=0.287 msec`, after progress lines separated by carriage returns.
fn parse_quiet(out: &str) -> Vec<Measured> {
    out.split(['\r', '\n'])
        .filter_map(|line| {
            let (test, rest) = line.trim().split_once(": ")?;
            let (rps, rest) = rest.split_once(" requests per second")?;
            let p50_ms = rest
                .split_once("p50=")
                .and_then(|(_, p)| p.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            Some(Measured {
                test: test.to_string(),
                rps: rps.trim().parse().ok()?,
                p50_ms,
            })
        })
        .collect()
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn rps(v: f64) -> String {
    format!("{} req/s", count(v.round() as u64))
}

fn section(cfg: &Config, phases: &[Phase], rb_version: &str) -> Section {
    let mut rows = Vec::new();
    let mut paired = Vec::new();
    for phase in phases {
        phase_rows(cfg, phase, &mut rows, &mut paired);
    }
    let Some(first) = phases.first() else {
        return Section {
            id: "throughput",
            title: "redis-benchmark through the endpoints".into(),
            rows,
            notes: Vec::new(),
        };
    };
    let (t, proxy_host) = (&first.targets, &first.proxy_host);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let notes = vec![
        format!(
            "The real stack: a fresh database, the release API binary (`--default-network-supernet \
             {SUPERNET}`) and three release `cacheplane-node-agent`s (loopback mode, one each in \
             local-a/b/c) running real `redis-server` {}. One STANDARD_HA instance `{ID}` (1 GB, \
             `replicaCount` 2, READ_REPLICAS_ENABLED, AUTH on): primary node {}:{}, primary \
             endpoint {}:{} (the same `redis-server`, which also binds the endpoint address), \
             replica node {}:{}, read endpoint {}:{} (a userspace TCP proxy in the agent of the \
             primary, {proxy_host}, spreading connections over both replicas; the direct figure \
             is one replica).",
            redis_version(),
            t.primary.0,
            t.primary.1,
            t.endpoint.0,
            t.endpoint.1,
            t.replica.0,
            t.replica.1,
            t.read.0,
            t.read.1
        ),
        format!(
            "`{rb_version}`: `redis-benchmark -h ADDR -p PORT -a AUTH -c {} -n N -P P -t TESTS -q`, \
             N = {} for -P 1 and {} for -P 16 (pipelined runs are many times faster), TESTS = \
             set,get against the primary's two addresses and get against the replicas'. The key \
             GET reads ({KEY}) holds the 3 bytes SET writes, set before the runs. After one \
             uncounted warm-up run of each address ({} requests, -P 1), each configuration ran \
             {} times, interleaved (all four addresses at -P 1, then at -P 16, per pass; the \
             order of the addresses reversed every other pass); the table compares the medians.",
            cfg.clients,
            count(u64::from(cfg.requests)),
            count(u64::from(cfg.pipelined_requests)),
            count(u64::from(cfg.requests / 10)),
            cfg.repeats
        ),
        format!(
            "As root, a second stack of three agents run with `--read-endpoint kernel` \
             follows, with a new instance: there the read endpoint is an nftables table in \
             the root namespace of the primary's agent that DNATs each new connection to a \
             healthy replica (nothing relays the bytes), and only the replica's own address \
             and the read endpoint are measured, side by side, as above. {}",
            if phases.iter().any(|p| p.path == ReadPath::Kernel) {
                "Measured in this run."
            } else {
                "Not measured in this run (not root)."
            }
        ),
        format!("All runs: {}.", paired.join("; ")),
        format!(
            "This machine has {cores} cores, shared by redis-benchmark (one thread), the engines \
             and, for the read endpoint, the agent's proxy, which copies every request and reply \
             through userspace: two more socket hops and wake-ups per round trip, on the same \
             cores the client and the engines need. Through the primary endpoint nothing is in \
             between (the engine listens on the endpoint address itself), so that ratio only \
             shows the noise of the measurement. The agent's CPU is utime + stime of \
             `/proc/PID/stat` over the read endpoint's runs, per relayed request."
        ),
    ];
    Section {
        id: "throughput",
        title: "redis-benchmark through the endpoints".into(),
        rows,
        notes,
    }
}

/// The rows of one stack: each endpoint against its direct address, and the CPU of the
/// agent serving the read endpoint; the per-pass figures go to `paired`.
fn phase_rows(cfg: &Config, phase: &Phase, rows: &mut Vec<Row>, paired: &mut Vec<String>) {
    let (series, proxy_host, proxy_cpu, proxy_wall) = (
        &phase.series,
        &phase.proxy_host,
        &phase.proxy_cpu,
        &phase.proxy_wall,
    );
    let path = phase.path;
    let find = |via: Via, pipeline: u32, test: &str| {
        series
            .iter()
            .find(|s| s.via == via && s.pipeline == pipeline && s.test == test)
    };
    let comparisons = [
        (
            Via::PrimaryEndpoint,
            Via::PrimaryNode,
            "SET",
            PRIMARY_TARGET,
        ),
        (
            Via::PrimaryEndpoint,
            Via::PrimaryNode,
            "GET",
            PRIMARY_TARGET,
        ),
        (Via::ReadEndpoint, Via::ReplicaNode, "GET", path.target()),
    ];
    for pipeline in PIPELINES {
        for (via, direct, test, target) in comparisons {
            let (Some(a), Some(b)) = (find(via, pipeline, test), find(direct, pipeline, test))
            else {
                continue;
            };
            let (ma, mb) = (median(&a.rps), median(&b.rps));
            let ratio = if mb > 0.0 { ma / mb } else { 0.0 };
            let figure = if via == Via::ReadEndpoint {
                format!(
                    "{test} -P {pipeline}: {} ({}) vs {}",
                    via.label(),
                    path.label(),
                    direct.label()
                )
            } else {
                format!(
                    "{test} -P {pipeline}: {} vs {}",
                    via.label(),
                    direct.label()
                )
            };
            let measured = format!(
                "{ratio:.2}× ({} vs {}; p50 {:.3} vs {:.3} ms)",
                rps(ma),
                rps(mb),
                median(&a.p50_ms),
                median(&b.p50_ms)
            );
            rows.push(if pipeline == 1 {
                Row::check(figure, measured, format!("≥ {target}×"), ratio >= target)
            } else {
                Row::info(figure, measured)
            });
            let per_pass: Vec<String> = a
                .rps
                .iter()
                .zip(&b.rps)
                .map(|(x, y)| format!("{:.2}×", x / y))
                .collect();
            let served_by = if via == Via::ReadEndpoint {
                format!(" ({})", path.label())
            } else {
                String::new()
            };
            paired.push(format!(
                "{test} -P {pipeline} {}{served_by}: {} req/s; {}: {} req/s; ratio per pass {}",
                via.label(),
                list(&a.rps),
                direct.label(),
                list(&b.rps),
                per_pass.join(", ")
            ));
        }
    }
    let mut cpu = Vec::new();
    for (i, pipeline) in PIPELINES.into_iter().enumerate() {
        let Some(s) = find(Via::ReadEndpoint, pipeline, "GET") else {
            continue;
        };
        let n = if pipeline == 1 {
            cfg.requests
        } else {
            cfg.pipelined_requests
        };
        let requests = f64::from(n) * s.rps.len() as f64;
        let wall = proxy_wall[i].as_secs_f64();
        cpu.push(format!(
            "-P {pipeline}: {:.1} µs/request, {:.0} % of a core",
            proxy_cpu[i].as_secs_f64() * 1e6 / requests.max(1.0),
            if wall > 0.0 {
                proxy_cpu[i].as_secs_f64() / wall * 100.0
            } else {
                0.0
            }
        ));
    }
    rows.push(Row::info(
        format!(
            "agent {proxy_host} CPU during the read endpoint's runs ({})",
            path.label()
        ),
        cpu.join("; "),
    ));
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| count(x.round() as u64))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_output_is_parsed_past_the_progress_lines() {
        let out = "\rSET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r   \
                   \rSET: 37950.66 requests per second, p50=0.455 msec\n\
                   \rGET: rps=32502.0 (overall: 37251.1) avg_msec=0.842 (overall: 0.842)\r \
                   \rGET: 36101.08 requests per second, p50=0.415 msec\n\n";
        let got = parse_quiet(out);
        assert_eq!(
            got,
            vec![
                Measured {
                    test: "SET".into(),
                    rps: 37950.66,
                    p50_ms: Some(0.455)
                },
                Measured {
                    test: "GET".into(),
                    rps: 36101.08,
                    p50_ms: Some(0.415)
                },
            ]
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
