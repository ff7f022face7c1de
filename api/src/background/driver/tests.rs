use cacheplane_types::{NodeRole, OperationVerb, Tier};
use serde_json::json;

use super::*;
use crate::fixtures::{ago, host_silent, instance, node, now, operation, reported, TIMEOUT};

/// The operation deadline of every test (the test operations started 10 s ago).
const DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

fn primary() -> NodeRow {
    node(0, NodeRole::Primary, "a")
}

fn replica(ordinal: i32) -> NodeRow {
    node(ordinal, NodeRole::Replica, "b")
}

fn removing(n: NodeRow) -> NodeRow {
    NodeRow {
        removing: true,
        ..n
    }
}

fn starting(n: NodeRow) -> NodeRow {
    NodeRow {
        observed: None,
        ..n
    }
}

fn failed(n: NodeRow) -> NodeRow {
    reported(n, |r| r.error = Some("bad config".into()))
}

/// A name, the operation, its instance and nodes, and the step expected.
type Case<'a> = (
    &'a str,
    &'a OperationRow,
    Option<&'a InstanceRow>,
    Vec<NodeRow>,
    Step,
);

#[test]
fn steps() {
    let create = operation(OperationVerb::Create, json!({}));
    let delete = operation(OperationVerb::Delete, json!({}));
    let update = operation(OperationVerb::Update, json!({}));
    let promoted = replica(1);
    let failover = operation(
        OperationVerb::Failover,
        json!({ "newPrimary": promoted.id, "oldPrimary": primary().id }),
    );
    let old_create = OperationRow {
        created_at: ago(121),
        ..create.clone()
    };
    let old_update = OperationRow {
        created_at: ago(121),
        ..update.clone()
    };
    let old_failover = OperationRow {
        created_at: ago(121),
        ..failover.clone()
    };
    let inst = instance(Tier::StandardHa);
    let progress = |percent, detail: &str| Step::Progress {
        percent,
        detail: detail.into(),
    };
    let cases: Vec<Case> = vec![
        ("instance gone", &create, None, vec![], Step::Gone),
        (
            "delete of a gone instance",
            &delete,
            None,
            vec![],
            Step::Gone,
        ),
        (
            "create: every node ready",
            &create,
            Some(&inst),
            vec![primary(), replica(1)],
            Step::Ready,
        ),
        (
            "create: a node still starting",
            &create,
            Some(&inst),
            vec![primary(), starting(replica(1))],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "create: a node failed",
            &create,
            Some(&inst),
            vec![primary(), failed(replica(1))],
            Step::Fail {
                message: format!(
                    "node {} in zone b could not start: bad config",
                    replica(1).id
                ),
            },
        ),
        (
            "create: a replica still in its initial sync",
            &create,
            Some(&inst),
            vec![
                primary(),
                reported(replica(1), |r| r.full_sync_in_progress = true),
            ],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "create: a replica whose link is not up yet",
            &create,
            Some(&inst),
            vec![
                primary(),
                reported(replica(1), |r| r.master_link_up = Some(false)),
            ],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "create: a node on a silent host, within the deadline",
            &create,
            Some(&inst),
            vec![primary(), host_silent(starting(replica(1)))],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "create: a node on a silent host, past the deadline: placed again",
            &old_create,
            Some(&inst),
            vec![primary(), host_silent(starting(replica(1)))],
            Step::Replace {
                node: replica(1).id,
                message: format!(
                    "node {} in zone b could not come up: its host host-1 has been silent since {}",
                    replica(1).id,
                    ago(60).to_rfc3339()
                ),
            },
        ),
        (
            "create: even its primary, which holds no data yet",
            &old_create,
            Some(&inst),
            vec![host_silent(starting(primary())), replica(1)],
            Step::Replace {
                node: primary().id,
                message: format!(
                    "node {} in zone a could not come up: its host host-0 has been silent since {}",
                    primary().id,
                    ago(60).to_rfc3339()
                ),
            },
        ),
        (
            "update: a replica on a silent host is placed again",
            &old_update,
            Some(&inst),
            vec![primary(), host_silent(replica(1))],
            Step::Replace {
                node: replica(1).id,
                message: format!(
                    "node {} in zone b could not come up: its host host-1 has been silent since {}",
                    replica(1).id,
                    ago(60).to_rfc3339()
                ),
            },
        ),
        (
            "update: a primary on a silent host is never placed again empty",
            &old_update,
            Some(&inst),
            vec![host_silent(primary()), replica(1)],
            Step::Fail {
                message: format!(
                    "node {} in zone a could not come up: its host host-0 has been silent since {}",
                    primary().id,
                    ago(60).to_rfc3339()
                ),
            },
        ),
        (
            "create past the deadline with every host up keeps waiting",
            &old_create,
            Some(&inst),
            vec![primary(), starting(replica(1))],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "failover past the deadline is not bound by it",
            &old_failover,
            Some(&inst),
            vec![promoted.clone(), host_silent(replica(2))],
            Step::Ready,
        ),
        (
            "update: a removed replica still stopping",
            &update,
            Some(&inst),
            vec![primary(), replica(1), removing(replica(2))],
            progress(50, "2 of 3 nodes ready, 1 stopping"),
        ),
        (
            "failover: a down host does not hold it up",
            &failover,
            Some(&inst),
            vec![promoted.clone(), host_silent(replica(2))],
            Step::Ready,
        ),
        (
            "failover: a failed node is left to the health monitor",
            &failover,
            Some(&inst),
            vec![promoted.clone(), failed(replica(2))],
            Step::Ready,
        ),
        (
            "failover: waits for the promoted node",
            &failover,
            Some(&inst),
            vec![host_silent(promoted.clone()), replica(2)],
            progress(50, "1 of 2 nodes ready"),
        ),
        (
            "delete: nodes on live hosts are still stopping",
            &delete,
            Some(&inst),
            vec![removing(primary()), removing(replica(1))],
            Step::AwaitStop {
                drop: vec![],
                left: 2,
            },
        ),
        (
            "delete: a node on a silent host goes at once",
            &delete,
            Some(&inst),
            vec![removing(primary()), host_silent(removing(replica(1)))],
            Step::AwaitStop {
                drop: vec![replica(1).id],
                left: 1,
            },
        ),
        (
            "delete: every node gone",
            &delete,
            Some(&inst),
            vec![],
            Step::Remove { drop: vec![] },
        ),
        (
            "delete: the last nodes sit on silent hosts",
            &delete,
            Some(&inst),
            vec![host_silent(removing(primary()))],
            Step::Remove {
                drop: vec![primary().id],
            },
        ),
    ];
    for (name, op, inst, nodes, want) in cases {
        assert_eq!(
            decide(op, inst, &nodes, now(), TIMEOUT, DEADLINE),
            want,
            "{name}"
        );
    }
}

#[test]
fn an_operation_ends_ready_only_when_every_node_serves() {
    let p = primary();
    let r = replica(1);
    // (case, nodes, the status message: empty means READY, else REPAIRING)
    let cases: Vec<(&str, Vec<NodeRow>, String)> = vec![
        ("all serve", vec![primary(), replica(1)], String::new()),
        (
            "a replica on a silent host after a failover",
            vec![primary(), host_silent(replica(1))],
            format!("replica node {} in zone b is down", r.id),
        ),
        (
            "a replica not linked",
            vec![
                primary(),
                reported(replica(1), |x| x.master_link_up = Some(false)),
            ],
            format!("replica node {} in zone b is starting", r.id),
        ),
        (
            "a primary failed",
            vec![failed(primary()), replica(1)],
            format!("primary node {} in zone a is failed", p.id),
        ),
        (
            "nodes being removed do not count",
            vec![primary(), removing(host_silent(replica(1)))],
            String::new(),
        ),
    ];
    for (name, nodes, want) in cases {
        assert_eq!(health::sick(&nodes, now(), TIMEOUT), want, "{name}");
    }
}
