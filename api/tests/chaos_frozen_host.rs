//! Chaos on a cache host, on the real stack (an API process, three agents in local-a/b/c,
//! real `redis-server`s): while a client writes `SET w:i i` every 10 ms through a
//! STANDARD_HA instance's `host:port` (2 replicas, primary in local-a), the primary's
//! whole host (agent and engines) is frozen (SIGSTOP) for 30 s. The instance fails over
//! within a stated bound, writes resume at the same `host:port`, and once the host
//! resumes its old primary rejoins as a replica without taking a write; only the
//! asynchronous replication window before the freeze (~1 s) may be lost.
//!
//! Limitation on one machine: the engines of all hosts share the loopback, and the
//! frozen old primary keeps holding its socket on the primary endpoint's address, so the
//! new primary cannot bind it ("Failed to bind") until the old one resumes and gives it
//! up. Writes at `host:port` therefore resume only after the thaw here (on real hosts the
//! endpoint address moves with the primary role); the test checks that they resume,
//! that none acknowledged after the freeze is lost, and that the failover starts within
//! its bound while the host is still frozen.
//!
//! The test prints its figures (`CHAOS …` lines): writes acknowledged and failed (by
//! error), writes lost (with when each was acknowledged), the failover's timing. Run with
//! `--no-capture` (or nextest's `--success-output final`) to see them.

use std::time::{Duration, Instant};

use cacheplane_testkit::chaos::{
    create_ha, failover_ops, instance, node, primary_node, until_all_ready, Frozen,
};
use cacheplane_testkit::json::string_field;
use cacheplane_testkit::stack::{redis_cli, start_api, three_agents};
use cacheplane_testkit::wait::not_yet;
use cacheplane_testkit::writer::Writer;
use cacheplane_testkit::{wait_until, TestDb, GIB};

/// Under `chaos` so that `cargo nextest run chaos` selects the suite.
mod chaos {
    use super::*;

    /// How long the freeze lasts.
    const FREEZE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn a_frozen_primary_host_fails_over_and_its_old_primary_rejoins_without_taking_writes() {
        let db = TestDb::new().await;
        let (api, _net) = start_api(&db, &[]).await;
        let agents = three_agents(&api, 8 * GIB).await;
        let ha = create_ha(&api, "host-frozen").await;
        assert_eq!(ha.primary_zone, "local-a", "{ha:?}");
        let old_addr = string_field(
            &node(&instance(&api, &ha.name).await, &ha.primary),
            "address",
        );

        let writer = Writer::start(&ha.host, ha.port, &ha.auth, "w");
        writer.wait_acked(100, Duration::from_secs(10)).await;

        let frozen = Frozen::host(&agents[0]);
        let frozen_at = Instant::now();
        // The bound on noticing the loss: the API's host timeout (10 s) and the replicas'
        // `repl-timeout` (10 s, the agent's engine config; Redis's cron adds up to 1 s),
        // which run at the same time, plus a margin for the agents' report (≤ 1 s), the
        // heartbeat and the API's sweep: 10 s + 1 s + 4 s. (With Redis's default
        // `repl-timeout` of 60 s it came at ~61 s.)
        let failover_bound = Duration::from_secs(15);
        let op = wait_until(
            "a failover operation starts while the host is frozen",
            failover_bound,
            Duration::from_millis(100),
            || async {
                match failover_ops(&api).await.into_iter().next() {
                    Some(op) => Ok(op),
                    None => not_yet::<_, String>("no failover operation yet"),
                }
            },
        )
        .await;
        let failover_started = frozen_at.elapsed();
        let remaining = FREEZE.saturating_sub(frozen_at.elapsed());
        tokio::time::sleep(remaining).await;
        let during = writer.snapshot();
        frozen.thaw();
        let thawed_at = Instant::now();

        // The old primary rejoins as a replica, and the instance is READY again.
        let back = until_all_ready(&api, &ha.name, Duration::from_secs(60)).await;
        let ready_after_thaw = thawed_at.elapsed();
        let new_primary = string_field(&primary_node(&back), "id");
        assert_ne!(new_primary, ha.primary, "the primary changed: {back}");
        assert_eq!(
            string_field(&node(&back, &ha.primary), "role"),
            "REPLICA",
            "{back}"
        );
        let role = redis_cli(&old_addr, ha.port, Some(&ha.auth), &["ROLE"]);
        assert!(
            role.starts_with("slave"),
            "the old primary runs as a replica: {role}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let log = writer.stop();
        let lost = log
            .lost(&ha.host, ha.port, &ha.auth)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        // Only writes acknowledged before the freeze, in the last ~1 s of asynchronous
        // replication, may be lost; any write acknowledged after it went to the old primary
        // (split brain) or to the new one, and must be there.
        let window = log.acked_between(frozen_at - Duration::from_secs(1), frozen_at);
        let lost_after_freeze: Vec<u64> = lost
            .iter()
            .copied()
            .filter(|i| log.acked_at(*i).is_some_and(|t| t > frozen_at))
            .collect();
        let first_ok_after_freeze = log.first_ack_after(frozen_at).map(|t| t - frozen_at);
        let acked_while_frozen = during.acked_between(frozen_at, thawed_at);
        eprintln!("CHAOS frozen primary host, {FREEZE:?}: {}", log.summary());
        eprintln!(
            "CHAOS frozen primary host: failover operation started {failover_started:?} after \
         the freeze ({}); writes acknowledged at host:port during the freeze: \
         {acked_while_frozen}; first acknowledged write after the freeze at {:?}; READY \
         {ready_after_thaw:?} after the thaw",
            op["name"], first_ok_after_freeze
        );
        eprintln!(
            "CHAOS frozen primary host: {} acknowledged writes lost ({} of them acknowledged \
         after the freeze began); {window} acknowledged in the last 1 s before the freeze",
            lost.len(),
            lost_after_freeze.len()
        );
        for i in lost.iter().take(10) {
            let at = log.acked_at(*i).map(|t| {
                format!(
                    "{:+.3} s from the freeze, {:+.3} s from the thaw",
                    signed_secs(t, frozen_at),
                    signed_secs(t, thawed_at)
                )
            });
            eprintln!(
                "CHAOS frozen primary host: lost {} acknowledged at {at:?}",
                log.key(*i)
            );
        }
        assert!(
            lost_after_freeze.is_empty(),
            "no write acknowledged after the freeze is lost: {lost_after_freeze:?}"
        );
        assert!(
            lost.len() <= window,
            "at most the last ~1 s before the freeze is lost: {} lost > {window}: {:?}",
            lost.len(),
            &lost[..lost.len().min(20)]
        );
        assert!(
            first_ok_after_freeze.is_some(),
            "writes resume at {}:{}: {}",
            ha.host,
            ha.port,
            log.summary()
        );
        assert_eq!(
            redis_cli(&ha.host, ha.port, Some(&ha.auth), &["SET", "after", "1"]),
            "OK"
        );
    }

    /// `t - origin` in seconds, negative when `t` is earlier.
    fn signed_secs(t: Instant, origin: Instant) -> f64 {
        if t >= origin {
            (t - origin).as_secs_f64()
        } else {
            -(origin - t).as_secs_f64()
        }
    }
}
