//! A manual failover with `dataProtectionMode: LIMITED_DATA_LOSS` while a client writes
//! `SET w:i i` every 10 ms through the instance's `host:port`, on the real stack: the
//! primary moves, writes resume at the same `host:port`, and no acknowledged write is
//! lost: the old primary hands over by itself (`FAILOVER TO`, see
//! `api/src/instances/failover/switchover.rs`). Writes that fail during the switch (the
//! old primary's READONLY once it is a replica, a refused connection until the new
//! primary binds the endpoint) are allowed; they are counted and printed.
//!
//! The test prints its figures (`CHAOS …` lines). Run with `--no-capture` (or nextest's
//! `--success-output final`) to see them.

use std::time::{Duration, Instant};

use cacheplane_testkit::api::{op_name, wait_op};
use cacheplane_testkit::chaos::{create_ha, primary_node, until_all_ready, PARENT};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::writer::Writer;
use cacheplane_testkit::{wait_until, TestDb, GIB};
use serde_json::json;

/// Under `chaos` so that `cargo nextest run chaos` selects the suite.
mod chaos {
    use super::*;

    #[tokio::test]
    async fn a_limited_data_loss_manual_failover_loses_no_acknowledged_write() {
        let db = TestDb::new().await;
        let (api, _net) = start_api(&db, &[]).await;
        let _agents = three_agents(&api, 8 * GIB).await;
        let ha = create_ha(&api, "switchover").await;

        let writer = Writer::start(&ha.host, ha.port, &ha.auth, "w");
        writer.wait_acked(200, Duration::from_secs(10)).await;

        let asked_at = Instant::now();
        let op = wait_until(
            "a LIMITED_DATA_LOSS failover is accepted",
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                match api
                    .post(
                        &format!("{PARENT}/instances/{}/failover", ha.name),
                        json!({"dataProtectionMode": "LIMITED_DATA_LOSS"}),
                    )
                    .await
                {
                    (200, op) => Ok(op),
                    (status, body) => not_yet::<_, String>(format!("{status} {body}")),
                }
            },
        )
        .await;
        let done = wait_op(&api, &op_name(&op), "60s").await;
        let done_after = asked_at.elapsed();
        assert!(
            done["done"] == true && done["error"].is_null(),
            "the failover succeeds: {done}"
        );
        let after = until_all_ready(&api, &ha.name, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = writer.stop();
        let lost = log
            .lost(&ha.host, ha.port, &ha.auth)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        eprintln!(
            "CHAOS manual failover (LIMITED_DATA_LOSS): {}",
            log.summary()
        );
        eprintln!(
            "CHAOS manual failover (LIMITED_DATA_LOSS): operation done {done_after:?} after the \
         request; {} acknowledged writes lost; {} failed attempts; writes stopped for {:?} \
         (longest gap between acknowledgements)",
            lost.len(),
            log.failed.len(),
            log.longest_gap()
        );
        for i in lost.iter().take(10) {
            let at = log.acked_at(*i).map(|t| {
                if t >= asked_at {
                    format!("+{:.3} s", (t - asked_at).as_secs_f64())
                } else {
                    format!("-{:.3} s", (asked_at - t).as_secs_f64())
                }
            });
            eprintln!(
                "CHAOS manual failover (LIMITED_DATA_LOSS): lost {} acknowledged {at:?} from \
                 the request",
                log.key(*i)
            );
        }
        assert_ne!(
            string_field(&primary_node(&after), "id"),
            ha.primary,
            "the primary moved: {after}"
        );
        assert!(
            log.first_ack_after(asked_at + done_after).is_some(),
            "writes resume at {}:{}: {}",
            ha.host,
            ha.port,
            log.summary()
        );
        assert!(
            lost.is_empty(),
            "no acknowledged write is lost: {} lost, first {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
    }
}
