use cacheplane_types::{NodeRole, Tier};

use super::*;
use crate::fixtures::{host_silent, instance, node, now, reported, TIMEOUT};

fn primary() -> NodeRow {
    node(0, NodeRole::Primary, "a")
}

fn replica(ordinal: i32, zone: &str) -> NodeRow {
    node(ordinal, NodeRole::Replica, zone)
}

fn engine_down(n: NodeRow) -> NodeRow {
    reported(n, |r| r.process_up = false)
}

fn link_down(n: NodeRow) -> NodeRow {
    reported(n, |r| r.master_link_up = Some(false))
}

fn unresponsive(n: NodeRow, secs: i64) -> NodeRow {
    reported(n, |r| r.unresponsive_seconds = Some(secs))
}

const LIMITS: Limits = Limits {
    host_timeout: TIMEOUT,
    unresponsive_timeout: std::time::Duration::from_secs(10),
};

/// The verdict in short: "healthy", "repairing: MESSAGE" or "failover to ORDINAL: REASON".
fn summary(tier: Tier, nodes: &[NodeRow]) -> String {
    match verdict(&instance(tier), nodes, now(), LIMITS) {
        Verdict::Healthy => "healthy".into(),
        Verdict::Repairing(m) => format!("repairing: {m}"),
        Verdict::FailOver {
            old, new, reason, ..
        } => {
            assert_eq!(old.role, NodeRole::Primary);
            format!("failover to {}: {reason}", new.ordinal)
        }
    }
}

#[test]
fn verdicts() {
    let p = primary().id;
    let r1 = replica(1, "b").id;
    let cases: Vec<(&str, Tier, Vec<NodeRow>, String)> = vec![
        (
            "all well",
            Tier::StandardHa,
            vec![primary(), replica(1, "b")],
            "healthy".into(),
        ),
        (
            "a replica's host is silent",
            Tier::StandardHa,
            vec![primary(), host_silent(replica(1, "b"))],
            format!("repairing: replica node {r1} in zone b is down"),
        ),
        (
            "nodes being removed do not count",
            Tier::StandardHa,
            vec![
                primary(),
                NodeRow {
                    removing: true,
                    ..host_silent(replica(1, "b"))
                },
            ],
            "healthy".into(),
        ),
        (
            "a BASIC primary down is repaired in place",
            Tier::Basic,
            vec![engine_down(primary())],
            format!("repairing: primary node {p} in zone a is down"),
        ),
        (
            "lost primary engine: fail over",
            Tier::StandardHa,
            vec![engine_down(primary()), replica(1, "b")],
            "failover to 1: the primary's engine in a is down".into(),
        ),
        (
            "silent primary host, its replica still linked: the engine serves, no failover",
            Tier::StandardHa,
            vec![host_silent(primary()), replica(1, "b")],
            format!("repairing: primary node {p} in zone a is down"),
        ),
        (
            "silent primary host, every replica lost its link: fail over",
            Tier::StandardHa,
            vec![host_silent(primary()), link_down(replica(1, "b")), link_down(replica(2, "c"))],
            "failover to 1: the primary's host host-0 in a stopped heartbeating and every replica lost its link to it".into(),
        ),
        (
            "silent primary host, one replica still linked: no failover",
            Tier::StandardHa,
            vec![host_silent(primary()), link_down(replica(1, "b")), replica(2, "c")],
            format!(
                "repairing: primary node {p} in zone a is down; replica node {r1} in zone b is starting"
            ),
        ),
        (
            "silent primary host, replicas on silent hosts say nothing: no failover",
            Tier::StandardHa,
            vec![host_silent(primary()), host_silent(link_down(replica(1, "b")))],
            format!(
                "repairing: primary node {p} in zone a is down; replica node {r1} in zone b is down"
            ),
        ),
        (
            "silent primary host, a replica on a live host with its engine down is no witness",
            Tier::StandardHa,
            vec![host_silent(primary()), engine_down(replica(1, "b")), link_down(replica(2, "c"))],
            "failover to 2: the primary's host host-0 in a stopped heartbeating and every replica lost its link to it".into(),
        ),
        (
            "silent primary host, a link-down report older than the config is no witness",
            Tier::StandardHa,
            vec![
                host_silent(primary()),
                NodeRow {
                    desired_generation: 2,
                    ..link_down(replica(1, "b"))
                },
            ],
            format!(
                "repairing: primary node {p} in zone a is down; replica node {r1} in zone b is starting"
            ),
        ),
        (
            "a primary engine slow for a moment is not lost",
            Tier::StandardHa,
            vec![unresponsive(primary(), 3), replica(1, "b")],
            "healthy".into(),
        ),
        (
            "a primary engine unresponsive past the bound: fail over",
            Tier::StandardHa,
            vec![unresponsive(primary(), 11), replica(1, "b")],
            "failover to 1: the primary's engine in a has not answered for 11 s".into(),
        ),
        (
            "a primary engine that failed: fail over",
            Tier::StandardHa,
            vec![reported(primary(), |r| r.error = Some("oom".into())), replica(1, "b")],
            "failover to 1: the primary's engine in a failed".into(),
        ),
        (
            "no replica can take over",
            Tier::StandardHa,
            vec![host_silent(primary()), host_silent(replica(1, "b"))],
            format!(
                "repairing: primary node {p} in zone a is down; replica node {r1} in zone b is down"
            ),
        ),
    ];
    for (name, tier, nodes, want) in cases {
        assert_eq!(summary(tier, &nodes), want, "{name}");
    }
}

#[test]
fn successor_choice() {
    let offset = |n: NodeRow, o: i64| reported(n, |r| r.replication_offset = Some(o));
    // (case, replicas, the expected choice by ordinal)
    let cases: Vec<(&str, Vec<NodeRow>, Option<i32>)> = vec![
        (
            "most data wins",
            vec![offset(replica(1, "a"), 10), offset(replica(2, "b"), 20)],
            Some(2),
        ),
        (
            "equal data: the old primary's zone",
            vec![replica(1, "b"), replica(2, "a")],
            Some(2),
        ),
        (
            "equal data and zone: the oldest",
            vec![replica(2, "b"), replica(1, "b")],
            Some(1),
        ),
        (
            "silent hosts, stopped, failing, syncing and removed replicas do not qualify",
            vec![
                host_silent(replica(1, "a")),
                engine_down(replica(2, "a")),
                reported(replica(3, "a"), |r| r.error = Some("oom".into())),
                reported(replica(4, "a"), |r| r.full_sync_in_progress = true),
                unresponsive(replica(6, "a"), 2),
                NodeRow {
                    removing: true,
                    ..replica(5, "a")
                },
            ],
            None,
        ),
        (
            "a replica whose link is down may still take over",
            vec![reported(replica(1, "b"), |r| {
                r.master_link_up = Some(false)
            })],
            Some(1),
        ),
    ];
    for (name, replicas, want) in cases {
        let mut nodes = vec![host_silent(primary())];
        nodes.extend(replicas);
        let got = successor(&nodes, "a", now(), TIMEOUT).map(|n| n.ordinal);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn write_fence() {
    // (case, replicas, whether the primary's fence should be on)
    let cases: Vec<(&str, Vec<NodeRow>, bool)> = vec![
        ("a linked replica", vec![replica(1, "b")], true),
        (
            "a replica still starting could acknowledge soon",
            vec![NodeRow {
                observed: None,
                ..replica(1, "b")
            }],
            true,
        ),
        (
            "a replica whose link is down (it may come back)",
            vec![link_down(replica(1, "b"))],
            true,
        ),
        (
            "the only replica's host is silent",
            vec![host_silent(replica(1, "b"))],
            false,
        ),
        (
            "the only replica's engine is down",
            vec![engine_down(replica(1, "b"))],
            false,
        ),
        (
            "the only replica failed",
            vec![reported(replica(1, "b"), |r| r.error = Some("oom".into()))],
            false,
        ),
        (
            "the only replica is being removed",
            vec![NodeRow {
                removing: true,
                ..replica(1, "b")
            }],
            false,
        ),
        (
            "one of two replicas is well",
            vec![host_silent(replica(1, "b")), replica(2, "c")],
            true,
        ),
        ("no replica", vec![], false),
    ];
    for (name, replicas, want) in cases {
        let mut nodes = vec![primary()];
        nodes.extend(replicas);
        assert_eq!(fence_wanted(&nodes, now(), TIMEOUT), want, "{name}");
    }
}

#[test]
fn lost_replicas_are_found_after_the_repair_bound() {
    let repair_after = std::time::Duration::from_secs(30);
    let silent_for = |n: NodeRow, secs| NodeRow {
        host_last_heartbeat_at: Some(crate::fixtures::ago(secs)),
        ..n
    };
    // (case, nodes, the lost replica's ordinal)
    let cases: Vec<(&str, Vec<NodeRow>, Option<i32>)> = vec![
        ("all heartbeating", vec![primary(), replica(1, "b")], None),
        (
            "silent, not yet for the bound",
            vec![primary(), silent_for(replica(1, "b"), 20)],
            None,
        ),
        (
            "silent past the bound",
            vec![primary(), silent_for(replica(1, "b"), 31)],
            Some(1),
        ),
        (
            "the first of two",
            vec![
                primary(),
                silent_for(replica(2, "c"), 40),
                silent_for(replica(1, "b"), 40),
            ],
            Some(1),
        ),
        (
            "a primary on a silent host is never re-created",
            vec![silent_for(primary(), 90), replica(1, "b")],
            None,
        ),
        (
            "nodes being removed are not",
            vec![
                primary(),
                NodeRow {
                    removing: true,
                    ..silent_for(replica(1, "b"), 90)
                },
            ],
            None,
        ),
        (
            "a host that never heartbeated is not lost",
            vec![
                primary(),
                NodeRow {
                    host_last_heartbeat_at: None,
                    ..replica(1, "b")
                },
            ],
            None,
        ),
    ];
    for (name, nodes, want) in cases {
        let got = lost_replica(&nodes, now(), repair_after).map(|n| n.ordinal);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn each_automatic_failover_names_its_cause_for_the_metrics() {
    use crate::instances::failover::Reason;
    let cause =
        |nodes: Vec<NodeRow>| match verdict(&instance(Tier::StandardHa), &nodes, now(), LIMITS) {
            Verdict::FailOver { cause, .. } => Some(cause),
            _ => None,
        };
    let failed = reported(primary(), |r| r.error = Some("oom".into()));
    let cases: Vec<(Vec<NodeRow>, Reason)> = vec![
        (
            vec![engine_down(primary()), replica(1, "b")],
            Reason::EngineDown,
        ),
        (vec![failed, replica(1, "b")], Reason::EngineFailed),
        (
            vec![unresponsive(primary(), 60), replica(1, "b")],
            Reason::EngineUnresponsive,
        ),
        (
            vec![host_silent(primary()), link_down(replica(1, "b"))],
            Reason::HostLost,
        ),
    ];
    for (nodes, want) in cases {
        assert_eq!(cause(nodes), Some(want));
        assert!(want.automatic(), "{want:?}");
    }
    assert!(!Reason::Switchover.automatic() && !Reason::Promote.automatic());
}
