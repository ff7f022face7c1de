use cacheplane_types::{NodeRole, OperationVerb, SwitchoverReport, SwitchoverState};
use serde_json::json;

use super::*;
use crate::fixtures::{ago, host_silent, node, now, operation, reported, TIMEOUT};

fn old() -> NodeRow {
    node(0, NodeRole::Primary, "a")
}

fn new() -> NodeRow {
    node(1, NodeRole::Replica, "b")
}

fn other() -> NodeRow {
    node(2, NodeRole::Replica, "c")
}

fn switchover_op() -> OperationRow {
    operation(
        OperationVerb::Failover,
        json!({ "newPrimary": new().id, "oldPrimary": old().id, "switchover": true }),
    )
}

/// The old primary marked (its agent told to hand over).
fn armed(n: NodeRow) -> NodeRow {
    NodeRow {
        switchover_id: Some(switchover_op().id),
        ..n
    }
}

fn outcome(n: NodeRow, state: SwitchoverState, message: Option<&str>) -> NodeRow {
    reported(n, |r| {
        r.switchover = Some(SwitchoverReport {
            id: switchover_op().id,
            state,
            message: message.map(str::to_string),
        })
    })
}

fn decide_on(op: &OperationRow, nodes: &[NodeRow]) -> Option<Next> {
    decide(op, nodes, now(), TIMEOUT)
}

fn abandoned(next: Option<Next>) -> (&'static str, String) {
    match next {
        Some(Next::Abandon {
            status, message, ..
        }) => (status, message),
        other => panic!("expected an abandon, got {other:?}"),
    }
}

#[test]
fn other_operations_and_recorded_switchovers_are_not_its_business() {
    let plain = operation(
        OperationVerb::Failover,
        json!({ "newPrimary": new().id, "oldPrimary": old().id }),
    );
    assert_eq!(decide_on(&plain, &[old(), new()]), None);
    let create = operation(OperationVerb::Create, json!({ "switchover": true }));
    assert_eq!(decide_on(&create, &[old(), new()]), None);
    // Roles recorded: the old primary is a replica now, the usual convergence follows.
    let swapped = [
        node(0, NodeRole::Replica, "a"),
        node(1, NodeRole::Primary, "b"),
    ];
    assert_eq!(decide_on(&switchover_op(), &swapped), None);
}

#[test]
fn the_primary_is_armed_only_once_the_target_applied_its_mark() {
    let op = switchover_op();
    let pending = NodeRow {
        desired_generation: 2,
        ..new()
    };
    assert!(matches!(
        decide_on(&op, &[old(), pending, other()]),
        Some(Next::Wait(_))
    ));
    assert_eq!(decide_on(&op, &[old(), new(), other()]), Some(Next::Arm));
    assert!(matches!(
        decide_on(&op, &[armed(old()), new(), other()]),
        Some(Next::Wait(w)) if w.contains("hands over")
    ));
}

#[test]
fn a_handover_reported_by_either_side_records_the_roles() {
    let op = switchover_op();
    let done = outcome(armed(old()), SwitchoverState::Done, None);
    assert_eq!(decide_on(&op, &[done, new()]), Some(Next::Record));
    let promoted = reported(new(), |r| r.role = Some(NodeRole::Primary));
    assert_eq!(
        decide_on(&op, &[armed(old()), promoted]),
        Some(Next::Record)
    );
    // An outcome of another switchover says nothing about this one.
    let stale = reported(outcome(armed(old()), SwitchoverState::Done, None), |r| {
        if let Some(s) = r.switchover.as_mut() {
            s.id = uuid::Uuid::from_u128(99);
        }
    });
    assert!(matches!(
        decide_on(&op, &[stale, new()]),
        Some(Next::Wait(_))
    ));
}

#[test]
fn an_aborted_handover_fails_the_operation_naming_why() {
    let aborted = outcome(
        armed(old()),
        SwitchoverState::Aborted,
        Some("Replica never caught up before timeout"),
    );
    let (status, message) = abandoned(decide_on(&switchover_op(), &[aborted, new()]));
    assert_eq!(status, "ABORTED");
    assert!(message.contains("never caught up"), "{message}");
    assert!(message.contains("still the primary"), "{message}");
}

#[test]
fn a_node_going_down_or_the_deadline_abandons_the_switchover() {
    let op = switchover_op();
    let (status, message) = abandoned(decide_on(&op, &[host_silent(armed(old())), new()]));
    assert_eq!(status, "ABORTED");
    assert!(message.contains("the primary"), "{message}");
    let down = reported(new(), |r| r.process_up = false);
    let (_, message) = abandoned(decide_on(&op, &[armed(old()), down]));
    assert!(message.contains("replica taking over"), "{message}");
    let late = OperationRow {
        created_at: ago(DEADLINE.as_secs() as i64 + 1),
        ..op
    };
    let (status, _) = abandoned(decide_on(&late, &[armed(old()), new()]));
    assert_eq!(status, "DEADLINE_EXCEEDED");
    let (_, message) = abandoned(decide_on(&late, &[armed(old())]));
    assert!(message.contains("removed"), "{message}");
}

#[test]
fn only_a_healthy_answering_primary_hands_over() {
    assert!(can_hand_over(&old(), now(), TIMEOUT));
    assert!(!can_hand_over(&host_silent(old()), now(), TIMEOUT));
    let slow = reported(old(), |r| r.unresponsive_seconds = Some(3));
    assert!(!can_hand_over(&slow, now(), TIMEOUT));
    let down = reported(old(), |r| r.process_up = false);
    assert!(!can_hand_over(&down, now(), TIMEOUT));
}

#[test]
fn the_spec_names_the_target_and_the_timeout() {
    let id = uuid::Uuid::from_u128(7);
    let s = spec(Some(id), Some("10.0.0.4/32".parse().unwrap())).unwrap();
    assert_eq!(s.id, id);
    assert_eq!(s.target_address, "10.0.0.4");
    assert_eq!(s.timeout_ms, 5000);
    assert!(spec(Some(id), None).is_none());
    assert!(spec(None, Some("10.0.0.4/32".parse().unwrap())).is_none());
}
