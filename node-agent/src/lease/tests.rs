use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::*;

fn spec(role: NodeRole, restart_in_place: bool) -> NodeSpec {
    NodeSpec {
        node_id: Uuid::from_u128(4),
        instance: "projects/p/locations/local/instances/c1".into(),
        engine_version: "REDIS_7_0".into(),
        role,
        address: "127.64.0.4".into(),
        port: 6379,
        endpoint_address: None,
        primary_address: (role == NodeRole::Replica).then(|| "127.64.0.5".into()),
        maxmemory_bytes: 1 << 30,
        redis_configs: BTreeMap::new(),
        read_endpoint: None,
        restart_in_place,
        auth_string: Some("pw".into()),
        write_fence: None,
    }
}

fn reconfigure(spec: &NodeSpec, what: &[Change]) -> Action {
    Action::Reconfigure {
        spec: spec.clone(),
        what: what.iter().copied().collect::<BTreeSet<_>>(),
    }
}

#[test]
fn the_lease_runs_out_strictly_after_its_length() {
    let t0 = Instant::now();
    let len = Duration::from_secs(5);
    assert!(!expired(t0, len, t0));
    assert!(!expired(t0, len, t0 + len));
    assert!(expired(t0, len, t0 + len + Duration::from_millis(1)));
    // A renewal stamped after `now` (clock races) is not expired.
    assert!(!expired(t0 + len, len, t0));
}

#[test]
fn renewals_move_the_lease_forward_only() {
    let len = Duration::from_secs(5);
    let now = Instant::now();
    let Some(long_ago) = now.checked_sub(Duration::from_secs(8)) else {
        return; // the clock started less than 8 s ago: nothing to test
    };
    let lease = Lease::starting_at(len, long_ago);
    assert!(lease.is_expired());
    let sent = now - Duration::from_secs(1);
    lease.renew(sent);
    assert!(!lease.is_expired(), "renewed 1 s ago");
    // An older heartbeat answered late does not shorten it.
    lease.renew(long_ago);
    assert_eq!(lease.expires_at(), sent + len);
    assert!(Lease::new(len).expires_at() >= now + len);
}

#[test]
fn only_ha_primaries_are_fenced() {
    assert!(fences(&spec(NodeRole::Primary, false)));
    assert!(!fences(&spec(NodeRole::Primary, true)), "BASIC");
    assert!(!fences(&spec(NodeRole::Replica, false)));
}

#[test]
fn promotions_and_primary_starts_are_withheld() {
    let ha = spec(NodeRole::Primary, false);
    assert_eq!(withhold(Action::Start(ha.clone())), None);
    assert_eq!(withhold(Action::Restart(ha.clone())), None);
    // The demoted primary reads as a replica: the plan wants REPLICAOF NO ONE.
    assert_eq!(withhold(reconfigure(&ha, &[Change::Replication])), None);
    // Other changes of the same node still apply.
    assert_eq!(
        withhold(reconfigure(&ha, &[Change::Maxmemory, Change::Replication])),
        Some(reconfigure(&ha, &[Change::Maxmemory]))
    );
}

#[test]
fn everything_else_goes_through() {
    let basic = spec(NodeRole::Primary, true);
    let replica = spec(NodeRole::Replica, false);
    for a in [
        Action::Start(basic.clone()),
        Action::Restart(basic.clone()),
        reconfigure(&basic, &[Change::Replication]),
        Action::Start(replica.clone()),
        // A demotion ordered by the API (failover happened) is welcome.
        reconfigure(&replica, &[Change::Replication]),
        Action::Stop(Uuid::nil()),
    ] {
        assert_eq!(withhold(a.clone()), Some(a));
    }
}
