//! Chaos on the control plane, on the real stack (API process, three agents in
//! local-a/b/c, real `redis-server`s): while a client writes through each of three
//! STANDARD_HA instances' `host:port`, PostgreSQL (a cluster of the test's own) or every
//! API process goes away for 60 s and comes back. The caches must not notice: no failed
//! write, no lost write, no failover, every instance READY afterwards.
//!
//! Each test prints its figures (`CHAOS …` lines). Run with `--no-capture` (or nextest's
//! `--success-output final`) to see them.

use std::time::{Duration, Instant};

use cacheplane_testkit::chaos::{
    create_ha, failover_ops, instance, primary_node, until_all_ready, HaInstance,
};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::pg::PrivatePg;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::writer::{WriteLog, Writer};
use cacheplane_testkit::{Api, TestDb, GIB};

/// Under `chaos` so that `cargo nextest run chaos` selects the suite.
mod chaos {
    use super::*;

    /// How long the outage lasts.
    const OUTAGE: Duration = Duration::from_secs(60);
    /// How long the test watches after the outage for a late reaction (a failover, a write
    /// refused) before it counts.
    const AFTERMATH: Duration = Duration::from_secs(15);

    /// Three READY STANDARD_HA instances, each with a writer going (100 writes acknowledged).
    async fn three_written_instances(api: &Api) -> Vec<(HaInstance, Writer)> {
        let (a, b, c) = tokio::join!(
            create_ha(api, "cache-1"),
            create_ha(api, "cache-2"),
            create_ha(api, "cache-3")
        );
        let mut out = Vec::new();
        for ha in [a, b, c] {
            let w = Writer::start(&ha.host, ha.port, &ha.auth, "w");
            out.push((ha, w));
        }
        for (_, w) in &out {
            w.wait_acked(100, Duration::from_secs(10)).await;
        }
        out
    }

    /// Stops the writers, reads their writes back and checks: no failed write, no lost
    /// write, no failover, every instance READY on its old primary. `what` names the outage
    /// in the printed figures.
    async fn check_unharmed(api: &Api, what: &str, written: Vec<(HaInstance, Writer)>) {
        let mut logs: Vec<(HaInstance, WriteLog, Vec<u64>)> = Vec::new();
        for (ha, w) in written {
            let log = w.stop();
            let lost = log
                .lost(&ha.host, ha.port, &ha.auth)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", ha.name));
            logs.push((ha, log, lost));
        }
        let failovers = failover_ops(api).await;
        let mut problems = Vec::new();
        for (ha, log, lost) in &logs {
            eprintln!("CHAOS {what}: {}: {}", ha.name, log.summary());
            eprintln!("CHAOS {what}: {}: {} writes lost", ha.name, lost.len());
            if !log.failed.is_empty() {
                problems.push(format!(
                    "{}: {} failed writes, first {:?}",
                    ha.name,
                    log.failed.len(),
                    log.failed.first()
                ));
            }
            if !lost.is_empty() {
                problems.push(format!(
                    "{}: {} lost writes, first {:?}",
                    ha.name,
                    lost.len(),
                    &lost[..lost.len().min(10)]
                ));
            }
            let now = instance(api, &ha.name).await;
            let primary = string_field(&primary_node(&now), "id");
            if primary != ha.primary {
                problems.push(format!(
                    "{}: primary moved from {} to {primary}",
                    ha.name, ha.primary
                ));
            }
        }
        eprintln!("CHAOS {what}: {} failover operations", failovers.len());
        if !failovers.is_empty() {
            problems.push(format!("failover operations: {failovers:?}"));
        }
        assert!(problems.is_empty(), "{what}: {}", problems.join("\n"));
        for (ha, _, _) in &logs {
            until_all_ready(api, &ha.name, Duration::from_secs(30)).await;
        }
    }

    #[tokio::test]
    async fn a_minute_without_postgresql_fails_no_write_and_fails_nothing_over() {
        let pg = PrivatePg::start();
        let db = TestDb::new_in(&pg.url).await;
        let (api, _net) = start_api(&db, &[]).await;
        let _agents = three_agents(&api, 8 * GIB).await;
        let written = three_written_instances(&api).await;

        pg.stop();
        let stopped_at = Instant::now();
        tokio::time::sleep(OUTAGE).await;
        pg.start_again();
        eprintln!(
            "CHAOS PostgreSQL down for {:?}",
            stopped_at.elapsed().as_secs_f64()
        );
        // The API answers again once its pool has reconnected.
        let caller = api.caller();
        cacheplane_testkit::wait_until(
            "the API answers again",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || {
                let caller = caller.clone();
                async move {
                    let (status, body) = caller.req(reqwest::Method::GET, "/v1/hosts", None).await;
                    cacheplane_testkit::wait::ready_if::<String, _>(status == 200, || {
                        format!("{status} {body}")
                    })
                }
            },
        )
        .await;
        tokio::time::sleep(AFTERMATH).await;
        check_unharmed(&api, "PostgreSQL down 60 s", written).await;
        drop(api);
        drop(db);
        drop(pg);
    }

    #[tokio::test]
    async fn a_minute_without_any_api_process_fails_no_write_and_fails_nothing_over() {
        let db = TestDb::new().await;
        let (mut api, _net) = start_api(&db, &[]).await;
        let _agents = three_agents(&api, 8 * GIB).await;
        let written = three_written_instances(&api).await;

        let status = api.terminate(Duration::from_secs(10)).await;
        let stopped_at = Instant::now();
        eprintln!("CHAOS API stopped with SIGTERM: {status:?}");
        tokio::time::sleep(OUTAGE).await;
        api.restart().await;
        eprintln!(
            "CHAOS API away for {:?} s",
            stopped_at.elapsed().as_secs_f64()
        );
        tokio::time::sleep(AFTERMATH).await;
        check_unharmed(&api, "API down 60 s", written).await;
    }
}
