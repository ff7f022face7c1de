use super::*;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn primary(n: u128) -> NodeSpec {
    NodeSpec {
        network: None,
        switchover: None,
        node_id: id(n),
        instance: "projects/p/locations/local/instances/c1".into(),
        engine_version: "REDIS_7_0".into(),
        role: NodeRole::Primary,
        address: format!("127.64.0.{n}"),
        port: 6379,
        endpoint_address: Some("127.64.0.1".into()),
        primary_address: None,
        maxmemory_bytes: 1 << 30,
        redis_configs: BTreeMap::from([("maxmemory-policy".into(), "allkeys-lru".into())]),
        read_endpoint: None,
        restart_in_place: false,
        auth_string: Some("pw".into()),
        admin_secret: None,
        write_fence: None,
        tls: None,
    }
}

fn basic(n: u128) -> NodeSpec {
    NodeSpec {
        read_endpoint: None,
        restart_in_place: true,
        ..primary(n)
    }
}

fn replica(n: u128, of: &str) -> NodeSpec {
    NodeSpec {
        role: NodeRole::Replica,
        endpoint_address: None,
        primary_address: Some(of.into()),
        ..primary(n)
    }
}

fn up(spec: &NodeSpec) -> Observed {
    let (role, master) = match spec.role {
        NodeRole::Primary => (NodeRole::Primary, None),
        NodeRole::Replica => (
            NodeRole::Replica,
            spec.primary_address.clone().map(|a| (a, spec.port)),
        ),
    };
    Observed {
        applied: Some(spec.clone()),
        process: Process::Up {
            role: Some(role),
            master,
        },
    }
}

fn down(spec: &NodeSpec, was_up: bool, retry_due: bool) -> Observed {
    Observed {
        applied: Some(spec.clone()),
        process: Process::Down { was_up, retry_due },
    }
}

fn obs(entries: Vec<(u128, Observed)>) -> BTreeMap<Uuid, Observed> {
    entries.into_iter().map(|(n, o)| (id(n), o)).collect()
}

fn reconfigure(spec: &NodeSpec, what: &[Change]) -> Action {
    Action::Reconfigure {
        spec: spec.clone(),
        what: what.iter().copied().collect(),
    }
}

#[test]
fn nothing_to_do_when_everything_runs_as_desired() {
    let (p, r) = (primary(4), replica(5, "127.64.0.4"));
    let o = obs(vec![(4, up(&p)), (5, up(&r))]);
    assert_eq!(plan(&[p, r], &o), vec![]);
    assert_eq!(plan(&[], &BTreeMap::new()), vec![]);
}

#[test]
fn starts_missing_nodes_and_stops_unwanted_ones_first() {
    let (a, b) = (basic(4), basic(5));
    let o = obs(vec![(9, up(&basic(9)))]);
    assert_eq!(
        plan(&[a.clone(), b.clone()], &o),
        vec![Action::Stop(id(9)), Action::Start(a), Action::Start(b)]
    );
}

#[test]
fn stops_unwanted_nodes_whatever_their_state() {
    let o = obs(vec![
        (1, down(&basic(1), true, false)),
        (
            2,
            Observed {
                applied: None,
                process: Process::Unknown,
            },
        ),
    ]);
    assert_eq!(
        plan(&[], &o),
        vec![Action::Stop(id(1)), Action::Stop(id(2))]
    );
}

#[test]
fn resize_is_an_online_maxmemory_change() {
    let old = basic(4);
    let new = NodeSpec {
        maxmemory_bytes: 2 << 30,
        ..old.clone()
    };
    let o = obs(vec![(4, up(&old))]);
    assert_eq!(
        plan(std::slice::from_ref(&new), &o),
        vec![reconfigure(&new, &[Change::Maxmemory])]
    );
}

#[test]
fn maxmemory_gb_counts_as_a_maxmemory_change_not_a_config() {
    let old = basic(4);
    let mut new = old.clone();
    new.redis_configs
        .insert("maxmemory-gb".into(), "0.5".into());
    let o = obs(vec![(4, up(&old))]);
    assert_eq!(
        plan(std::slice::from_ref(&new), &o),
        vec![reconfigure(&new, &[Change::Maxmemory])]
    );
    // The same effective size written differently is no change.
    let mut same = old.clone();
    same.redis_configs.insert("maxmemory-gb".into(), "1".into());
    assert_eq!(plan(&[same], &o), vec![]);
}

#[test]
fn config_and_auth_changes() {
    let old = basic(4);
    let mut new = old.clone();
    new.redis_configs
        .insert("maxmemory-policy".into(), "volatile-lru".into());
    new.auth_string = None;
    let o = obs(vec![(4, up(&old))]);
    assert_eq!(
        plan(std::slice::from_ref(&new), &o),
        vec![reconfigure(&new, &[Change::Configs, Change::Auth])]
    );
    let mut removed = old.clone();
    removed.redis_configs.clear();
    assert_eq!(
        plan(std::slice::from_ref(&removed), &o),
        vec![reconfigure(&removed, &[Change::Configs])]
    );
}

#[test]
fn promotion_moves_the_endpoint_and_stops_replicating() {
    let r = replica(5, "127.64.0.4");
    let promoted = NodeSpec {
        role: NodeRole::Primary,
        primary_address: None,
        endpoint_address: Some("127.64.0.1".into()),
        ..r.clone()
    };
    let o = obs(vec![(5, up(&r))]);
    assert_eq!(
        plan(std::slice::from_ref(&promoted), &o),
        vec![reconfigure(&promoted, &[Change::Bind, Change::Replication])]
    );
}

#[test]
fn demotion_and_new_primary() {
    let p = primary(4);
    let demoted = replica(4, "127.64.0.5");
    let o = obs(vec![(4, up(&p))]);
    assert_eq!(
        plan(std::slice::from_ref(&demoted), &o),
        vec![reconfigure(&demoted, &[Change::Bind, Change::Replication])]
    );
    let r = replica(6, "127.64.0.4");
    let follows_new = replica(6, "127.64.0.5");
    let o = obs(vec![(6, up(&r))]);
    assert_eq!(
        plan(std::slice::from_ref(&follows_new), &o),
        vec![reconfigure(&follows_new, &[Change::Replication])]
    );
}

#[test]
fn live_role_drift_is_corrected() {
    // The spec did not change, but the engine was made a primary behind the agent's back.
    let r = replica(5, "127.64.0.4");
    let mut o = up(&r);
    o.process = Process::Up {
        role: Some(NodeRole::Primary),
        master: None,
    };
    assert_eq!(
        plan(std::slice::from_ref(&r), &obs(vec![(5, o)])),
        vec![reconfigure(&r, &[Change::Replication])]
    );
    // A primary that is live a replica is promoted back.
    let p = primary(4);
    let mut o = up(&p);
    o.process = Process::Up {
        role: Some(NodeRole::Replica),
        master: Some(("127.64.0.9".into(), 6379)),
    };
    assert_eq!(
        plan(std::slice::from_ref(&p), &obs(vec![(4, o)])),
        vec![reconfigure(&p, &[Change::Replication])]
    );
}

#[test]
fn a_replica_without_a_primary_keeps_following_its_old_one() {
    let r = replica(5, "127.64.0.4");
    let orphan = NodeSpec {
        primary_address: None,
        ..r.clone()
    };
    assert_eq!(plan(&[orphan], &obs(vec![(5, up(&r))])), vec![]);
}

#[test]
fn an_adopted_node_without_a_record_gets_everything_set() {
    let p = primary(4);
    let o = Observed {
        applied: None,
        process: Process::Up {
            role: Some(NodeRole::Primary),
            master: None,
        },
    };
    assert_eq!(
        plan(std::slice::from_ref(&p), &obs(vec![(4, o)])),
        vec![reconfigure(
            &p,
            &[
                Change::Maxmemory,
                Change::Configs,
                Change::Auth,
                Change::Bind,
                Change::Replication,
                Change::Fence,
                Change::Tls
            ]
        )]
    );
}

#[test]
fn a_new_certificate_is_reloaded_online_and_nothing_else_changes() {
    let tls = |cert: &str| {
        Some(cacheplane_types::TlsSpec {
            ca_cert: "ca".into(),
            cert: cert.into(),
            key: format!("key of {cert}"),
        })
    };
    let old = NodeSpec {
        port: 6378,
        tls: tls("one"),
        ..primary(4)
    };
    let new = NodeSpec {
        tls: tls("two"),
        ..old.clone()
    };
    assert_eq!(
        plan(std::slice::from_ref(&new), &obs(vec![(4, up(&old))])),
        vec![reconfigure(&new, &[Change::Tls])],
        "a rotation neither restarts nor reconfigures anything else"
    );
    assert_eq!(
        plan(std::slice::from_ref(&new), &obs(vec![(4, up(&new))])),
        vec![]
    );
}

#[test]
fn the_write_fence_is_set_and_lifted_online() {
    let fence = Some(cacheplane_types::WriteFence {
        min_replicas: 1,
        max_lag_seconds: 3,
    });
    let p = primary(4);
    let fenced = NodeSpec {
        write_fence: fence,
        ..p.clone()
    };
    assert_eq!(
        plan(std::slice::from_ref(&fenced), &obs(vec![(4, up(&p))])),
        vec![reconfigure(&fenced, &[Change::Fence])]
    );
    assert_eq!(
        plan(std::slice::from_ref(&p), &obs(vec![(4, up(&fenced))])),
        vec![reconfigure(&p, &[Change::Fence])],
        "the API lifts the fence (no live replica): writes come back"
    );
    // A demotion lifts it too; the same fence on a replica is no fence at all.
    let demoted = replica(4, "127.64.0.5");
    assert_eq!(
        plan(std::slice::from_ref(&demoted), &obs(vec![(4, up(&fenced))])),
        vec![reconfigure(
            &demoted,
            &[Change::Bind, Change::Replication, Change::Fence]
        )]
    );
    let r = replica(5, "127.64.0.4");
    let r_fenced = NodeSpec {
        write_fence: fence,
        ..r.clone()
    };
    assert_eq!(plan(&[r_fenced], &obs(vec![(5, up(&r))])), vec![]);
}

#[test]
fn a_busy_engine_is_left_alone() {
    let p = basic(4);
    let o = Observed {
        applied: Some(p.clone()),
        process: Process::Unknown,
    };
    assert_eq!(plan(&[p], &obs(vec![(4, o)])), vec![]);
}

#[test]
fn crashed_basic_node_restarts_in_place_when_backoff_allows() {
    let b = basic(4);
    assert_eq!(
        plan(
            std::slice::from_ref(&b),
            &obs(vec![(4, down(&b, true, true))])
        ),
        vec![Action::Restart(b.clone())]
    );
    assert_eq!(
        plan(
            std::slice::from_ref(&b),
            &obs(vec![(4, down(&b, true, false))])
        ),
        vec![]
    );
}

#[test]
fn crashed_replica_restarts() {
    let r = replica(5, "127.64.0.4");
    assert_eq!(
        plan(
            std::slice::from_ref(&r),
            &obs(vec![(5, down(&r, true, true))])
        ),
        vec![Action::Restart(r)]
    );
}

#[test]
fn crashed_ha_primary_is_never_restarted_in_place() {
    let p = primary(4);
    assert_eq!(
        plan(
            std::slice::from_ref(&p),
            &obs(vec![(4, down(&p, true, true))])
        ),
        vec![]
    );
}

#[test]
fn crashed_primary_demoted_by_failover_rejoins_as_a_replica() {
    let p = primary(4);
    let demoted = replica(4, "127.64.0.5");
    assert_eq!(
        plan(
            std::slice::from_ref(&demoted),
            &obs(vec![(4, down(&p, true, true))])
        ),
        vec![Action::Restart(demoted)]
    );
}

#[test]
fn failed_start_is_retried_with_backoff_for_any_role() {
    let p = primary(4);
    assert_eq!(
        plan(
            std::slice::from_ref(&p),
            &obs(vec![(4, down(&p, false, true))])
        ),
        vec![Action::Start(p.clone())]
    );
    assert_eq!(
        plan(
            std::slice::from_ref(&p),
            &obs(vec![(4, down(&p, false, false))])
        ),
        vec![]
    );
}

#[test]
fn order_is_stops_then_changes_then_starts() {
    let (a, b, c) = (basic(1), basic(2), basic(3));
    let bigger_b = NodeSpec {
        maxmemory_bytes: 2 << 30,
        ..b.clone()
    };
    let o = obs(vec![(2, up(&b)), (9, up(&basic(9)))]);
    assert_eq!(
        plan(&[a.clone(), bigger_b.clone(), c.clone()], &o),
        vec![
            Action::Stop(id(9)),
            reconfigure(&bigger_b, &[Change::Maxmemory]),
            Action::Start(a),
            Action::Start(c),
        ]
    );
}

fn switching_to(target: &str) -> Option<cacheplane_types::SwitchoverSpec> {
    Some(cacheplane_types::SwitchoverSpec {
        id: id(77),
        target_address: target.into(),
        timeout_ms: 5000,
    })
}

fn live(spec: &NodeSpec, role: NodeRole, master: Option<&str>) -> Observed {
    Observed {
        applied: Some(spec.clone()),
        process: Process::Up {
            role: Some(role),
            master: master.map(|m| (m.to_string(), 6379)),
        },
    }
}

#[test]
fn a_switchover_owns_the_roles_of_its_two_engines() {
    // The primary handing over is a replica of the target once done: not promoted back.
    let p = primary(4);
    let handing = NodeSpec {
        switchover: switching_to("127.64.0.5"),
        ..p.clone()
    };
    let o = obs(vec![(4, live(&p, NodeRole::Replica, Some("127.64.0.5")))]);
    assert_eq!(plan(std::slice::from_ref(&handing), &o), vec![]);
    // The target made primary by the handover keeps that role.
    let r = replica(5, "127.64.0.4");
    let target = NodeSpec {
        switchover: switching_to("127.64.0.5"),
        ..r.clone()
    };
    let o = obs(vec![(5, live(&r, NodeRole::Primary, None))]);
    assert_eq!(plan(std::slice::from_ref(&target), &o), vec![]);
    // Another replica named in no switchover is still put back on its primary.
    let bystander = NodeSpec {
        switchover: switching_to("127.64.0.9"),
        ..r.clone()
    };
    let o = obs(vec![(5, live(&r, NodeRole::Primary, None))]);
    assert_eq!(
        plan(std::slice::from_ref(&bystander), &o),
        vec![reconfigure(&bystander, &[Change::Replication])]
    );
    // Once the roles are recorded, the old primary gives up the endpoint and the fence
    // (again: the handover did already) and keeps following the new primary.
    let demoted = replica(4, "127.64.0.5");
    let o = obs(vec![(
        4,
        live(&handing, NodeRole::Replica, Some("127.64.0.5")),
    )]);
    assert_eq!(
        plan(std::slice::from_ref(&demoted), &o),
        vec![reconfigure(&demoted, &[Change::Bind])]
    );
}
