//! Chaos on a cache host, on the real stack (an API process, three agents in local-a/b/c,
//! real `redis-server`s): while a client writes `SET w:i i` every 10 ms through a
//! STANDARD_HA instance's `host:port` (2 replicas, primary in local-a), the primary's
//! agent alone is frozen (SIGSTOP) for 30 s. Its engines keep serving and keep their
//! replicas linked, so nothing may fail over and no write may fail or be lost; after
//! SIGCONT everything is as before (same primary, READY).
//!
//! The test prints its figures (`CHAOS …` lines): writes acknowledged and failed (by
//! error), writes lost, failover operations. Run with `--no-capture` (or nextest's
//! `--success-output final`) to see them.

use std::time::{Duration, Instant};

use cacheplane_testkit::chaos::{
    create_ha, failover_ops, instance, primary_node, until_all_ready, Frozen,
};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::writer::Writer;
use cacheplane_testkit::{TestDb, GIB};

/// Under `chaos` so that `cargo nextest run chaos` selects the suite.
mod chaos {
    use super::*;

    /// How long the freeze lasts.
    const FREEZE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_frozen_primary_agent_neither_fails_over_nor_fails_or_loses_a_write() {
        let db = TestDb::new().await;
        let (api, _net) = start_api(&db, &[]).await;
        let agents = three_agents(&api, 8 * GIB).await;
        let ha = create_ha(&api, "agent-frozen").await;
        assert_eq!(ha.primary_zone, "local-a", "{ha:?}");

        let writer = Writer::start(&ha.host, ha.port, &ha.auth, "w");
        writer.wait_acked(100, Duration::from_secs(10)).await;

        let frozen = Frozen::agent(&agents[0]);
        let frozen_at = Instant::now();
        tokio::time::sleep(FREEZE).await;
        frozen.thaw();
        let thawed_at = Instant::now();
        // Time for the control plane to hear from the host again and for anything it would
        // do about the silence to show.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = writer.stop();
        let lost = log
            .lost(&ha.host, ha.port, &ha.auth)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let failovers = failover_ops(&api).await;
        let after = instance(&api, &ha.name).await;

        eprintln!("CHAOS frozen primary agent, {FREEZE:?}: {}", log.summary());
        eprintln!(
            "CHAOS frozen primary agent: {} writes lost, {} acknowledged during the freeze, {} \
         failover operations",
            lost.len(),
            log.acked_between(frozen_at, thawed_at),
            failovers.len()
        );
        assert!(failovers.is_empty(), "no failover: {failovers:?}");
        assert!(
            log.failed.is_empty(),
            "no failed write: {} ({:?}…)",
            log.summary(),
            log.failed.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            lost.is_empty(),
            "no lost write: {} lost, first {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
        assert_eq!(
            string_field(&primary_node(&after), "id"),
            ha.primary,
            "same primary: {after}"
        );
        until_all_ready(&api, &ha.name, Duration::from_secs(30)).await;
    }
}
