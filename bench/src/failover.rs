//! Target (docs/architecture.md#performance-targets): primary killed → writes accepted
//! again at the same host:port, p50 < 200 ms and max < 500 ms over 20 failovers.
//!
//! On the real stack ([`crate::stack`]) one STANDARD_HA instance (1 GB, 2 replicas, read
//! endpoint on) is created. A writer task keeps one connection to the instance's
//! host:port (the primary endpoint), AUTHs and sends a SET every few milliseconds,
//! reconnecting after any error with a 50 ms pause. Each round SIGKILLs the primary's
//! `redis-server` (its pid from the pid file in the node's directory of the agent that
//! runs it) and measures the window from the kill to the first SET sent after the kill
//! that is answered OK. The round then waits for the failover operation and until the
//! instance is READY with every node READY again (the old primary back as a replica)
//! before the next. The writer's READONLY errors after each failover operation ended are
//! counted: none is allowed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::Value;

use crate::admin::PARENT;
use crate::create_latency::redis_version;
use crate::report::{Row, Section};
use crate::stack::{self, Stack, StackConfig, SUPERNET};
use crate::stats::{ms, Samples};
use cacheplane_testkit::resp::{self, is_readonly, Client};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// The `cacheplane-api` binary.
    pub api_bin: PathBuf,
    /// The `cacheplane-node-agent` binary.
    pub agent_bin: PathBuf,
    /// Failovers to measure.
    pub failovers: u32,
    /// Pause between two SETs of the writer.
    pub write_interval: Duration,
    /// Quiet time between the instance being READY again and the next kill; longer than
    /// the agents' 5 s of quick (200 ms) passes after they last acted, so that each kill
    /// meets agents in their steady 1 s rhythm.
    pub settle: Duration,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

const ID: &str = "failover-ha";
const NODES: usize = 3;
const P50_TARGET: Duration = Duration::from_millis(200);
const MAX_TARGET: Duration = Duration::from_millis(500);
/// The writer's pause after an error before it reconnects.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// Longest wait for writes to resume after a kill before the run is given up.
const RESUME_LIMIT: Duration = Duration::from_secs(60);
/// Longest wait for the instance to be READY with every node again.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// What one write attempt of the writer came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `+OK`.
    Ok,
    /// `-READONLY …`: the connection reached a replica.
    Readonly,
    /// Any other error reply, a reset, a timeout.
    Error,
    /// Connect or AUTH failed (refused while no engine holds the endpoint address).
    NoConnection,
}

/// One write attempt.
#[derive(Debug, Clone)]
struct Event {
    /// When the command was sent (or the connect begun).
    sent: Instant,
    /// When its answer (or failure) came.
    at: Instant,
    /// `at` on the wall clock, to compare with the operation's `endTime`.
    wall: DateTime<Utc>,
    outcome: Outcome,
}

type Log = Arc<Mutex<Vec<Event>>>;

fn events(log: &Log) -> std::sync::MutexGuard<'_, Vec<Event>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// One failover as measured.
struct Round {
    old_primary: String,
    new_primary: String,
    new_zone: String,
    killed_at: Instant,
    killed_wall: DateTime<Utc>,
    /// Kill → first OK of a SET sent after the kill.
    window: Duration,
    /// How long the `kill` command took (the kill is timed from before it started).
    kill_took: Duration,
    /// The failover operation's `endTime`.
    op_end: DateTime<Utc>,
    /// Kill → instance READY with every node READY (the bench's polling, 50 ms).
    ready: Duration,
}

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    ensure!(cfg.failovers >= 1, "--failovers must be at least 1");
    let stack = Stack::start(&StackConfig {
        database_url: cfg.database_url.clone(),
        api_bin: cfg.api_bin.clone(),
        agent_bin: cfg.agent_bin.clone(),
        db_prefix: "cacheplane_bench_failover",
        keep_db: cfg.keep_db,
        agent_args: Vec::new(),
    })
    .await?;
    eprintln!("[failover] API, 3 agents UP (database {})", stack.db_name());
    let result = measure(cfg, &stack).await;
    stack.stop(result.is_err()).await?;
    result
}

async fn measure(cfg: &Config, stack: &Stack) -> anyhow::Result<Section> {
    stack
        .api()
        .create(ID, &stack::ha_body())
        .await
        .with_context(|| format!("creating {ID}"))?;
    let inst = stack.api().wait_ready(ID, NODES, READY_LIMIT).await?;
    let host = inst["host"].as_str().context("no host")?.to_string();
    let port = inst["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("no port")?;
    let auth = stack.api().auth_string(ID).await?;
    eprintln!(
        "[failover] {ID} READY at {host}:{port}; {} failovers",
        cfg.failovers
    );

    let log: Log = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(write_loop(
        host.clone(),
        port,
        auth,
        cfg.write_interval,
        log.clone(),
        stop.clone(),
    ));
    let rounds = run_rounds(cfg, stack, &log, &host, port).await;
    // A last stretch of writes after the last failover, for its READONLY count.
    if rounds.is_ok() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    let rounds = rounds?;
    let all = events(&log).clone();
    Ok(section(cfg, &rounds, &all, &host, port))
}

async fn run_rounds(
    cfg: &Config,
    stack: &Stack,
    log: &Log,
    host: &str,
    port: u16,
) -> anyhow::Result<Vec<Round>> {
    let mut rounds = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    for i in 0..cfg.failovers {
        let round = one_round(cfg, stack, log, &mut known, host, port)
            .await
            .with_context(|| format!("failover {}", i + 1))?;
        eprintln!(
            "[failover]   {}: writes OK again after {}, operation done after {}, READY after {} (new primary in {})",
            i + 1,
            ms(round.window),
            ms(signed(round.op_end, round.killed_wall)),
            ms(round.ready),
            round.new_zone
        );
        rounds.push(round);
    }
    Ok(rounds)
}

async fn one_round(
    cfg: &Config,
    stack: &Stack,
    log: &Log,
    known: &mut HashSet<String>,
    host: &str,
    port: u16,
) -> anyhow::Result<Round> {
    // Steady state first: agents out of their quick passes, and the kill at a random
    // phase of their 1 s observe/heartbeat rhythm.
    let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..1000));
    tokio::time::sleep(cfg.settle + jitter).await;
    let inst = stack.api().wait_ready(ID, NODES, READY_LIMIT).await?;
    let primary = stack::node_with_role(&inst, "PRIMARY")?;
    let old_primary = primary["id"].as_str().context("node id")?.to_string();
    let agent = stack
        .agent_of(&old_primary)
        .with_context(|| format!("no agent has node {old_primary}"))?;
    let pid = agent
        .engine_pid(&old_primary)
        .with_context(|| format!("no running redis-server for node {old_primary}"))?;
    wait_writes_ok(log).await?;
    for op in stack.api().operations().await? {
        if let Some(name) = op["name"].as_str() {
            known.insert(name.to_string());
        }
    }

    let killed_wall = Utc::now();
    let killed_at = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("running kill")?;
    let kill_took = killed_at.elapsed();
    ensure!(killed.success(), "kill -KILL {pid} failed: {killed}");

    let window = first_ok_after(log, killed_at).await?;
    let op = failover_op(stack, known).await?;
    let name = op["name"].as_str().context("operation name")?.to_string();
    let done = stack.api().wait_op(&name).await?;
    let op_end = done["metadata"]["endTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("no endTime in the done operation {done}"))?;
    let after = stack.api().wait_ready(ID, NODES, READY_LIMIT).await?;
    let ready = killed_at.elapsed();

    ensure!(
        after["host"] == host && after["port"] == port,
        "the primary endpoint moved: {host}:{port} before, {}:{} after",
        after["host"],
        after["port"]
    );
    let new = stack::node_with_role(&after, "PRIMARY")?;
    let new_primary = new["id"].as_str().context("node id")?.to_string();
    ensure!(
        new_primary != old_primary,
        "node {old_primary} is still the primary after the failover"
    );
    let rejoined = after["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == old_primary.as_str()))
        .is_some_and(|n| n["role"] == "REPLICA" && n["state"] == "READY");
    ensure!(
        rejoined,
        "the old primary {old_primary} is not a READY replica: {after}"
    );
    Ok(Round {
        old_primary,
        new_primary,
        new_zone: new["zone"]
            .as_str()
            .with_context(|| format!("no zone in {new}"))?
            .to_string(),
        killed_at,
        killed_wall,
        window,
        kill_took,
        op_end,
        ready,
    })
}

/// Waits (5 s at most) until a SET sent from now on is answered OK, so that a round
/// starts with the writer connected.
async fn wait_writes_ok(log: &Log) -> anyhow::Result<()> {
    let from = Instant::now();
    let deadline = from + Duration::from_secs(5);
    loop {
        if events(log)
            .iter()
            .rev()
            .take_while(|e| e.sent >= from)
            .any(|e| e.outcome == Outcome::Ok)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            let last = events(log).last().cloned();
            bail!("the writer has had no OK for 5 s before a kill; last attempt: {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Kill → the first OK of a SET sent after the kill (a SET already in flight at the
/// kill may still have been answered by the old primary).
async fn first_ok_after(log: &Log, killed_at: Instant) -> anyhow::Result<Duration> {
    loop {
        let first = events(log)
            .iter()
            .rev()
            .take_while(|e| e.sent >= killed_at)
            .filter(|e| e.outcome == Outcome::Ok)
            .last()
            .map(|e| e.at);
        if let Some(at) = first {
            return Ok(at - killed_at);
        }
        if killed_at.elapsed() > RESUME_LIMIT {
            bail!(
                "no write accepted in the {:.0} s after the kill",
                RESUME_LIMIT.as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The failover operation of the instance that is not in `known` (30 s at most).
async fn failover_op(stack: &Stack, known: &mut HashSet<String>) -> anyhow::Result<Value> {
    let target = format!("{}/instances/{ID}", PARENT.trim_start_matches("/v1/"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ops = stack.api().operations().await?;
        if let Some(op) = ops.into_iter().find(|o| {
            o["metadata"]["verb"] == "failover"
                && o["metadata"]["target"] == target.as_str()
                && o["name"].as_str().is_some_and(|n| !known.contains(n))
        }) {
            if let Some(name) = op["name"].as_str() {
                known.insert(name.to_string());
            }
            return Ok(op);
        }
        if Instant::now() > deadline {
            bail!("no failover operation for {target} 30 s after the kill");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The writer: one connection to `host:port`, a SET every `interval`, a reconnect after
/// any failure (after [`RECONNECT_PAUSE`]); every attempt is logged.
async fn write_loop(
    host: String,
    port: u16,
    auth: String,
    interval: Duration,
    log: Log,
    stop: Arc<AtomicBool>,
) {
    let mut conn: Option<Client> = None;
    let mut n: u64 = 0;
    let record = |sent: Instant, outcome: Outcome| {
        events(&log).push(Event {
            sent,
            at: Instant::now(),
            wall: Utc::now(),
            outcome,
        });
    };
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let sent = Instant::now();
                match resp::connect(&host, port, Some(&auth)).await {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        record(sent, Outcome::NoConnection);
                        tokio::time::sleep(RECONNECT_PAUSE).await;
                        continue;
                    }
                }
            }
        };
        n += 1;
        let sent = Instant::now();
        let value = n.to_string();
        match c.call(&["SET", "bench:failover:writer", &value]).await {
            Ok(_) => {
                record(sent, Outcome::Ok);
                tokio::time::sleep(interval).await;
            }
            Err(e) => {
                let outcome = if is_readonly(&e) {
                    Outcome::Readonly
                } else {
                    Outcome::Error
                };
                record(sent, outcome);
                conn = None;
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
}

/// `a - b`, zero when negative.
fn signed(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (a - b).to_std().unwrap_or_default()
}

fn section(cfg: &Config, rounds: &[Round], all: &[Event], host: &str, port: u16) -> Section {
    let windows = Samples::new(rounds.iter().map(|r| r.window).collect());
    let op_done = Samples::new(
        rounds
            .iter()
            .map(|r| signed(r.op_end, r.killed_wall))
            .collect(),
    );
    let ready = Samples::new(rounds.iter().map(|r| r.ready).collect());
    let p50 = windows.quantile(0.5);
    let max = windows.max();

    // Per round: the writer's attempts from its kill to the next kill (or the end).
    let mut readonly_after = 0;
    let mut readonly_before = 0;
    let mut failed = 0;
    let mut per_round = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let next = rounds.get(i + 1).map(|n| n.killed_at);
        let mine: Vec<&Event> = all
            .iter()
            .filter(|e| e.sent >= r.killed_at && next.is_none_or(|t| e.sent < t))
            .collect();
        let ro_after = mine
            .iter()
            .filter(|e| e.outcome == Outcome::Readonly && e.wall >= r.op_end)
            .count();
        let ro_before = mine
            .iter()
            .filter(|e| e.outcome == Outcome::Readonly && e.wall < r.op_end)
            .count();
        let errors = mine
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Error | Outcome::NoConnection))
            .count();
        readonly_after += ro_after;
        readonly_before += ro_before;
        failed += errors;
        per_round.push(format!(
            "{} (op done {}, READY {}, {} failed attempts, {} READONLY after done)",
            ms(r.window),
            ms(signed(r.op_end, r.killed_wall)),
            ms(r.ready),
            errors,
            ro_after
        ));
    }
    let first_kill = rounds.first().map(|r| r.killed_at);
    let errors_outside = first_kill.map_or(0, |k| {
        all.iter()
            .filter(|e| e.sent < k && e.outcome != Outcome::Ok)
            .count()
    });
    let oks = all.iter().filter(|e| e.outcome == Outcome::Ok).count();
    let kill_took = rounds.iter().map(|r| r.kill_took).max().unwrap_or_default();
    let n = rounds.len();
    let zones: Vec<&str> = rounds.iter().map(|r| r.new_zone.as_str()).collect();
    let distinct: HashSet<&str> = rounds
        .iter()
        .flat_map(|r| [r.old_primary.as_str(), r.new_primary.as_str()])
        .collect();

    let rows = vec![
        Row::check(
            format!("failover window p50: kill -9 of the primary → first write OK at host:port ({n} failovers)"),
            ms(p50),
            format!("< {}", ms(P50_TARGET)),
            p50 < P50_TARGET,
        ),
        Row::check(
            "failover window max",
            ms(max),
            format!("< {}", ms(MAX_TARGET)),
            max < MAX_TARGET,
        ),
        Row::check(
            format!("READONLY errors after the failover operation completed (all {n})"),
            readonly_after.to_string(),
            "0",
            readonly_after == 0,
        ),
        Row::info("failover window min", ms(windows.quantile(0.0))),
        Row::info(
            "kill → failover operation done (endTime) p50 / max",
            format!("{} / {}", ms(op_done.quantile(0.5)), ms(op_done.max())),
        ),
        Row::info(
            "kill → instance READY, every node READY (old primary rejoined) p50 / max",
            format!("{} / {}", ms(ready.quantile(0.5)), ms(ready.max())),
        ),
        Row::info(
            "writer: failed attempts during the failovers, READONLY before done",
            format!("{failed} ({:.1} per failover), {readonly_before}", failed as f64 / n.max(1) as f64),
        ),
    ];
    let notes = vec![
        format!(
            "The real stack: a fresh database, the release API binary (`--default-network-supernet \
             {SUPERNET}`, default 1 s worker interval) and three release `cacheplane-node-agent`s \
             (loopback mode, one each in local-a/b/c, default 1 s heartbeat) running real \
             `redis-server` {}. One STANDARD_HA instance `{ID}` (1 GB, `replicaCount` 2, \
             READ_REPLICAS_ENABLED: a node in each zone), primary endpoint {host}:{port}.",
            redis_version()
        ),
        format!(
            "The writer: one task of the bench with a persistent TCP connection to {host}:{port} \
             (a small RESP client over tokio's TcpStream, TCP_NODELAY), AUTH with the instance's \
             auth string (`GET …/instances/{ID}/authString`), then `SET` every {} ms (the pause \
             after each OK), reconnecting after any error (reset, refused connect, error reply, \
             2 s without a reply) with a {} ms pause. It made {oks} successful writes in all, \
             and {errors_outside} failed ones before the first kill.",
            cfg.write_interval.as_millis(),
            RECONNECT_PAUSE.as_millis()
        ),
        format!(
            "Each round: {} s of quiet plus a random 0–1 s after the instance is READY (longer \
             than the agents' 5 s of 200 ms passes after they last acted, so each kill meets \
             them in their steady 1 s rhythm, at a random phase); the primary is the node with \
             role PRIMARY in `GET …/instances/{ID}`, its pid read from `nodes/<nodeId>/redis.pid` \
             in the data directory of the agent that runs it; `kill -KILL PID` (the window is \
             timed from just before the `kill` command starts; it took at most {}). The window \
             ends when the first SET *sent* after the kill is answered OK, so a write in flight \
             at the kill does not count; while no engine holds the endpoint address the \
             reconnects are refused every {} ms, which bounds the resolution. Then the round \
             waits for the new `failover` operation in `GET …/operations` (its `endTime` \
             is the \"op done\" time) and for the instance to be READY with its 3 nodes READY, \
             the old primary a replica again (polled every 50 ms), and checks that host:port \
             did not change.",
            cfg.settle.as_secs_f64(),
            ms(kill_took),
            RECONNECT_PAUSE.as_millis()
        ),
        format!(
            "READONLY: every writer attempt from a round's kill to the next kill (the last: to 1 s \
             after READY) answered READONLY after the round's failover operation's `endTime` \
             counts against \"never READONLY once failover has completed\"; \
             {readonly_before} came before an operation was done. {} nodes were primary in \
             turn; the new primaries' zones: {}.",
            distinct.len(),
            zones.join(", ")
        ),
        format!("Each failover in order: {}.", per_round.join("; ")),
    ];
    Section {
        id: "failover",
        title: "Failover: primary killed → writes accepted again at the same endpoint".into(),
        rows,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(base: Instant, sent_ms: u64, at_ms: u64, outcome: Outcome) -> Event {
        Event {
            sent: base + Duration::from_millis(sent_ms),
            at: base + Duration::from_millis(at_ms),
            wall: Utc::now(),
            outcome,
        }
    }

    #[tokio::test]
    async fn the_window_ends_at_the_first_ok_sent_after_the_kill() {
        let base = Instant::now();
        let log: Log = Arc::default();
        events(&log).extend([
            ev(base, 0, 1, Outcome::Ok),
            // In flight at the kill (10 ms), answered after it: not the end.
            ev(base, 9, 11, Outcome::Ok),
            ev(base, 20, 21, Outcome::Error),
            ev(base, 71, 72, Outcome::NoConnection),
            ev(base, 122, 125, Outcome::Ok),
            ev(base, 135, 136, Outcome::Ok),
        ]);
        let killed = base + Duration::from_millis(10);
        let w = first_ok_after(&log, killed).await.expect("a window");
        assert_eq!(w, Duration::from_millis(115));
    }
}
