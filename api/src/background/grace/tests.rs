use std::time::Duration;

use cacheplane_types::NodeRole;

use super::*;
use crate::fixtures::{ago, host_silent, node, now};

const STALL: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
enum Event {
    /// A database call completed, `secs` seconds before `now()`.
    Seen(i64),
    /// A database call failed.
    Lost,
}

#[test]
fn grace_restarts_after_an_error_or_a_stall() {
    use Event::*;
    // (case, clock started `secs` before now, events, silence counts from (secs before now))
    let cases: Vec<(&str, i64, Vec<Event>, i64)> = vec![
        ("just started", 0, vec![], 0),
        (
            "regular contact",
            60,
            vec![Seen(59), Seen(58), Seen(55), Seen(51)],
            60,
        ),
        (
            "an error: from the next contact",
            60,
            vec![Seen(58), Lost, Seen(57)],
            57,
        ),
        ("an error, never seen since", 60, vec![Seen(58), Lost], 60),
        (
            "a stall: from the contact after it",
            60,
            vec![Seen(58), Seen(30), Seen(29)],
            30,
        ),
        (
            "a pause of exactly the stall bound",
            60,
            vec![Seen(58), Seen(53)],
            60,
        ),
        (
            "contact reported out of order",
            60,
            vec![Seen(58), Seen(59)],
            60,
        ),
    ];
    for (name, started, events, want) in cases {
        let mut c = GraceClock::started(ago(started));
        for e in events {
            match e {
                Seen(s) => c.seen(ago(s), STALL),
                Lost => c.lost(),
            }
        }
        assert_eq!(c.from, ago(want), "{name}");
    }
}

#[test]
fn silence_counts_from_the_grace_start() {
    let mut nodes = vec![
        host_silent(node(0, NodeRole::Primary, "a")),
        node(1, NodeRole::Replica, "b"),
        NodeRow {
            host_last_heartbeat_at: None,
            ..node(2, NodeRole::Replica, "c")
        },
    ];
    apply(&mut nodes, ago(5));
    assert_eq!(
        nodes[0].host_last_heartbeat_at,
        Some(ago(5)),
        "silent before the grace"
    );
    assert_eq!(
        nodes[1].host_last_heartbeat_at,
        Some(ago(1)),
        "heartbeat after it"
    );
    assert_eq!(nodes[2].host_last_heartbeat_at, None, "never heartbeated");
    assert!(now() > ago(5));
}
