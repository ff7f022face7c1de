use cacheplane_types::{NodeRole, OperationVerb, Tier};
use serde_json::json;

use super::*;
use crate::fixtures::{host_silent, instance, node, now, operation, reported, TIMEOUT};

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
        assert_eq!(decide(op, inst, &nodes, now(), TIMEOUT), want, "{name}");
    }
}
