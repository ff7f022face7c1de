//! Target (docs/architecture.md#performance-targets): the 4 096th /28 allocation in a
//! /16 takes at most 3× the time of the 1st.
//!
//! In a fresh database, project `bench` and network `alloc` (10.20.0.0/16) are created
//! through the library, 4 096 CREATING instance rows are inserted up front (untimed),
//! and then each /28 is allocated the way instance creation does it, one transaction
//! each: begin, `alloc::lock_network`, `alloc::allocate_auto(.., 28)`, insert the
//! instance's PRIMARY `address_range` row (so its exclusion constraint is checked against
//! every range taken so far), commit. The whole transaction is timed, and the
//! `allocate_auto` call on its own.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use cacheplane_api::{alloc, networks};
use cacheplane_types::CreateNetworkRequest;
use ipnet::{IpNet, Ipv4Net};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::db::FreshDb;
use crate::report::{Row, Section};
use crate::stats::{count, median, ms};

/// Knobs (flags of `cacheplane-bench`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The cluster to create the database in.
    pub database_url: String,
    /// Keep the database afterwards.
    pub keep_db: bool,
}

const PROJECT: &str = "bench";
const POOL: &str = "10.20.0.0/16";
const PREFIX: u8 = 28;
/// /28s in a /16.
const ALLOCS: usize = 1 << (PREFIX - 16);
/// Allocations averaged at each end.
const WINDOW: usize = 10;

/// Runs the benchmark.
pub async fn run(cfg: &Config) -> anyhow::Result<Section> {
    let db = FreshDb::create(&cfg.database_url, "cacheplane_bench_alloc", cfg.keep_db).await?;
    let result = run_in(&db).await;
    db.drop_db().await?;
    result
}

struct Timing {
    txn: Duration,
    allocator: Duration,
}

async fn run_in(db: &FreshDb) -> anyhow::Result<Section> {
    let mut conn = db.connect().await?;
    let pool: Ipv4Net = POOL.parse()?;

    let mut tx = conn.begin().await?;
    networks::ensure_project(&mut tx, PROJECT, "127.64.0.0/10".parse()?).await?;
    let network = networks::create(
        &mut tx,
        &cacheplane_api::pools::Rules::default(),
        PROJECT,
        Some("alloc"),
        &CreateNetworkRequest {
            ip_range: POOL.into(),
            description: "benchmark".into(),
        },
    )
    .await?;
    sqlx::query(
        r#"insert into instance (id, project_id, region_id, name, tier_id, memory_size_gb,
                                 replica_count, location_id, redis_version, network_id,
                                 auth_string, state)
           select gen_random_uuid(), $1, 'local', 'alloc-' || lpad(g::text, 5, '0'), 'BASIC',
                  1, 0, 'local-a', 'REDIS_7_0', $2, md5(random()::text), 'CREATING'
           from generate_series(1, $3) g"#,
    )
    .bind(PROJECT)
    .bind(network.id)
    .bind(ALLOCS as i32 + 1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let instances: Vec<Uuid> = sqlx::query_scalar(
        "select id from instance where project_id = $1 and network_id = $2 order by name",
    )
    .bind(PROJECT)
    .bind(network.id)
    .fetch_all(&mut conn)
    .await?;
    sqlx::query("vacuum analyze").execute(&mut conn).await?;

    // Prepare the statements on this connection (sqlx caches them) with allocations that
    // are rolled back, so the 1st timed allocation does not pay for parsing and planning.
    for _ in 0..3 {
        let mut tx = conn.begin().await?;
        allocate(&mut tx, network.id, instances[0]).await?;
        tx.rollback().await?;
    }

    eprintln!("[alloc] allocating {ALLOCS} /{PREFIX}s in {POOL}");
    let mut timings = Vec::with_capacity(ALLOCS);
    let mut ranges = Vec::with_capacity(ALLOCS);
    for &instance in instances.iter().take(ALLOCS) {
        let t = Instant::now();
        let mut tx = conn.begin().await?;
        let (range, allocator) = allocate(&mut tx, network.id, instance).await?;
        tx.commit().await?;
        let Some(range) = range else {
            bail!("pool full after {} allocations", ranges.len());
        };
        timings.push(Timing {
            txn: t.elapsed(),
            allocator,
        });
        ranges.push(range);
    }

    // The 4 097th: the pool is full.
    let mut tx = conn.begin().await?;
    let (overflow, overflow_time) = allocate(&mut tx, network.id, instances[ALLOCS]).await?;
    tx.rollback().await?;

    // The pool is exactly covered by what was handed out.
    let free_left: i64 =
        sqlx::query_scalar("select count(*) from network_free_block where network_id = $1")
            .bind(network.id)
            .fetch_one(&mut conn)
            .await?;
    let mut sorted = ranges.clone();
    sorted.sort();
    sorted.dedup();
    ensure!(
        sorted.len() == ALLOCS
            && sorted
                .iter()
                .all(|r| pool.contains(r) && r.prefix_len() == PREFIX)
            && free_left == 0,
        "allocations do not tile the pool: {} distinct, {free_left} free blocks left",
        sorted.len()
    );
    conn.close().await.ok();

    let txn: Vec<Duration> = timings.iter().map(|t| t.txn).collect();
    let only: Vec<Duration> = timings.iter().map(|t| t.allocator).collect();
    let head = median(&txn[..WINDOW]);
    let tail = median(&txn[ALLOCS - WINDOW..]);
    let ratio = tail.as_secs_f64() / head.as_secs_f64();
    let single = txn[ALLOCS - 1].as_secs_f64() / txn[0].as_secs_f64();
    let only_ratio =
        median(&only[ALLOCS - WINDOW..]).as_secs_f64() / median(&only[..WINDOW]).as_secs_f64();
    let mut all = txn.clone();
    all.sort();
    let p99 = all[(all.len() * 99).div_ceil(100) - 1];

    let rows = vec![
        Row::info("/28 allocation in a /16: 1st", ms(txn[0])),
        Row::info("/28 allocation: median of 1st–10th", ms(head)),
        Row::info("/28 allocation: median of 4 087th–4 096th", ms(tail)),
        Row::info("/28 allocation: 4 096th", ms(txn[ALLOCS - 1])),
        Row::check(
            "/28 allocation: 4 096th vs 1st (medians of ten)",
            format!("{ratio:.2}×"),
            "≤ 3×",
            ratio <= 3.0,
        ),
        Row::info(
            "/28 allocation: 4 096th / 1st (single samples)",
            format!("{single:.2}×"),
        ),
        Row::info(
            "/28 allocation: allocate_auto alone, last ten vs first ten",
            format!(
                "{} vs {} ({only_ratio:.2}×)",
                ms(median(&only[ALLOCS - WINDOW..])),
                ms(median(&only[..WINDOW]))
            ),
        ),
        Row::check(
            "/28 allocation: 4 097th in the full /16",
            match overflow {
                None => format!("None (pool full), {}", ms(overflow_time)),
                Some(r) => format!("Some({r})"),
            },
            "None",
            overflow.is_none(),
        ),
    ];
    let notes = vec![
        format!(
            "Each allocation is one transaction on one connection: begin, \
             `alloc::lock_network`, `alloc::allocate_auto(.., {PREFIX})`, insert the \
             instance's PRIMARY `address_range` row (checked by the exclusion constraint), \
             commit. The instance rows were inserted beforehand, untimed; the times are of \
             the whole transaction unless stated."
        ),
        format!(
            "The project and the {POOL} network were made with `networks::ensure_project` and \
             `networks::create`; three rolled-back allocations first prepared the statements, \
             so the 1st is not charged for planning."
        ),
        format!(
            "All {} allocations: median {}, p99 {}, max {}, total {:.2} s; the ranges \
             tile the pool ({} … {}) and no free block is left.",
            count(ALLOCS as u64),
            ms(median(&txn)),
            ms(p99),
            ms(*all.last().unwrap_or(&Duration::ZERO)),
            txn.iter().sum::<Duration>().as_secs_f64(),
            ranges.first().map(|r| r.to_string()).unwrap_or_default(),
            ranges.last().map(|r| r.to_string()).unwrap_or_default(),
        ),
        "The 1st allocation splits the whole /16 (one delete and 12 inserts of free \
         blocks); most later ones split one or two levels and the 4 096th none, so the \
         single-sample ratio understates the growth. The target is judged on the medians \
         of ten at each end, which also damp scheduling noise."
            .to_string(),
    ];
    Ok(Section {
        id: "alloc",
        title: format!(
            "Address allocation: {} /{PREFIX}s in a /16",
            count(ALLOCS as u64)
        ),
        rows,
        notes,
    })
}

/// One allocation inside `tx`: lock, allocate, record the range. Returns the range (or
/// `None` when the pool is full) and how long `allocate_auto` took.
async fn allocate(
    conn: &mut PgConnection,
    network: Uuid,
    instance: Uuid,
) -> anyhow::Result<(Option<Ipv4Net>, Duration)> {
    alloc::lock_network(conn, network).await?;
    let t = Instant::now();
    let range = alloc::allocate_auto(conn, network, PREFIX).await?;
    let took = t.elapsed();
    if let Some(range) = range {
        sqlx::query(
            "insert into address_range (instance_id, network_id, purpose, range) values ($1, $2, 'PRIMARY', $3::cidr)",
        )
        .bind(instance)
        .bind(network)
        .bind(IpNet::V4(range))
        .execute(&mut *conn)
        .await
        .context("inserting the address range")?;
    }
    Ok((range, took))
}
