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

/// The verdict in short: "healthy", "repairing: MESSAGE" or "failover to ORDINAL: REASON".
fn summary(tier: Tier, nodes: &[NodeRow]) -> String {
    match verdict(&instance(tier), nodes, now(), TIMEOUT) {
        Verdict::Healthy => "healthy".into(),
        Verdict::Repairing(m) => format!("repairing: {m}"),
        Verdict::FailOver { old, new, reason } => {
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
            "lost primary host: fail over",
            Tier::StandardHa,
            vec![host_silent(primary()), replica(1, "b")],
            "failover to 1: the primary's host host-0 in a stopped heartbeating".into(),
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
