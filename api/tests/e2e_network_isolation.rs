//! Network isolation end to end: the API in netns mode, three real agents in netns mode
//! and real clients. Two projects' networks have the same pool; an app in project A's
//! connector namespace reaches A's instance with its AUTH string (`redis-cli` under
//! `ip netns exec`, and `cachectl connectors exec`), cannot open a TCP connection to B's
//! instance, and at addresses both networks use it reaches A's data, never B's; the root
//! namespace reaches neither; a deleted connector's namespace is gone; after a failover
//! a new connector reaches A at the same primary endpoint. Needs root, `ip`, `nft` and
//! `redis-cli`: fails under CI when it cannot run. Every namespace, bridge and veth the
//! test made is deleted when it ends, pass or fail.

use std::process::Command;
use std::time::{Duration, Instant};

use cacheplane_testkit::api::{create_ready, op_name, wait_op};
use cacheplane_testkit::json::{port_field, str_field, string_field};
use cacheplane_testkit::netns::{
    can_run, cli_at, cli_in, namespaces, tcp_opens, tcp_opens_at, NetGuard, Resident,
};
use cacheplane_testkit::process::workspace_bin;
use cacheplane_testkit::stack::{eventually, three_agents_with};
use cacheplane_testkit::{Api, TestDb, GIB};
use serde_json::{json, Value};

/// The longest the whole test may take.
const TEST_LIMIT: Duration = Duration::from_secs(240);
/// Both projects' networks use this pool.
const POOL: &str = "10.130.0.0/16";
const A: &str = "/v1/projects/pa/locations/local";
const B: &str = "/v1/projects/pb/locations/local";

async fn create_network(api: &Api, project: &str) {
    let (status, body) = api
        .post(
            &format!("/v1/projects/{project}/networks?networkId=net"),
            json!({ "ipRange": POOL }),
        )
        .await;
    assert_eq!(status, 200, "network of {project}: {body}");
}

/// Creates connector `name` in `parent`'s network `net`, waits until its operation is
/// done (30 s at most) and answers the connector, READY with a namespace.
async fn create_connector(api: &Api, guard: &NetGuard, parent: &str, name: &str) -> Value {
    let (status, op) = api
        .post(
            &format!("{parent}/connectors?connectorId={name}"),
            json!({ "network": "net" }),
        )
        .await;
    assert_eq!(status, 200, "create connector {name}: {op}");
    let done = wait_op(api, &op_name(&op), "30s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "create connector {name}: {done}"
    );
    let (status, c) = api.get(&format!("{parent}/connectors/{name}")).await;
    assert_eq!(status, 200, "GET connector {name}: {c}");
    assert_eq!(c["state"], "READY", "{c}");
    guard.adopt(str_field(&c, "namespace"));
    c
}

/// Waits (20 s at most) until an authenticated PING from `ns` to `host:port` answers.
async fn wait_pong(ns: &str, host: &str, port: u16, auth: &str) {
    eventually(
        &format!("{host}:{port} answers PING from {ns}"),
        Duration::from_secs(20),
        || cli_in(Some(ns), host, port, auth, &["PING"]).is_ok_and(|t| t == "PONG"),
    )
    .await;
}

/// The instance's node addresses.
fn node_addresses(inst: &Value) -> Vec<String> {
    inst["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| string_field(n, "address"))
        .collect()
}

/// `cachectl connectors exec NAME -- ARGS…` as project `pa`'s user: its exit status
/// and output.
fn cachectl_exec(api: &Api, name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("20")
        .arg(workspace_bin("cachectl"))
        .args(["connectors", "exec", name, "--"])
        .args(args)
        .env("CACHECTL_API_URL", &api.base)
        .env("CACHECTL_TOKEN", &api.admin_token)
        .env("CACHECTL_PROJECT", "pa")
        .env("CACHECTL_REGION", "local")
        .env("CACHECTL_CONFIG", "/nonexistent/cachectl.toml")
        .output()
        .expect("running cachectl");
    let mut text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_reach_their_own_network_only_across_projects_with_the_same_pool() {
    if !can_run() {
        return;
    }
    // Declared first, dropped last: after the agents and their engines are gone.
    let guard = NetGuard::new(1);
    let db = TestDb::new().await;
    let started = Instant::now();
    let lap = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    tokio::time::timeout(TEST_LIMIT, async {
        // Namespaces keep every network's addresses off the host: the projects' default
        // networks need no 127.X/16 of the test's own.
        let api = Api::start_with_args(
            &db,
            &[
                "--network-mode",
                "netns",
                "--network-supernets",
                "10.128.0.0/9",
                "--default-network-supernet",
                "10.192.0.0/12",
            ],
        )
        .await;
        let netns = ["--network-mode", "netns", "--netns-prefix", &guard.prefix];
        let _agents = three_agents_with(&api, 8 * GIB, &netns).await;
        lap("API and three netns agents up");

        create_network(&api, "pa").await;
        create_network(&api, "pb").await;
        let (a, auth_a) = create_ready(
            &api,
            A,
            "ha",
            json!({"tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 1,
                   "readReplicasMode": "READ_REPLICAS_ENABLED", "authorizedNetwork": "net"}),
        )
        .await;
        // B's twin takes the very range of A's instance (the pool's first /28) ...
        let (b, auth_b) = create_ready(
            &api,
            B,
            "twin",
            json!({"tier": "BASIC", "memorySizeGb": 1, "authorizedNetwork": "net"}),
        )
        .await;
        // ... and another of B's lies where A has nothing.
        let (b2, auth_b2) = create_ready(
            &api,
            B,
            "apart",
            json!({"tier": "BASIC", "memorySizeGb": 1, "authorizedNetwork": "net",
                   "reservedIpRange": "10.130.0.64/28"}),
        )
        .await;
        lap("instances READY (A: STANDARD_HA, B: two BASIC)");
        let host_a = string_field(&a, "host");
        let port = port_field(&a, "port");
        assert_eq!(
            host_a,
            string_field(&b, "host"),
            "the pools overlap: {a} {b}"
        );
        let host_b2 = string_field(&b2, "host");

        let ca = create_connector(&api, &guard, A, "app").await;
        let cb = create_connector(&api, &guard, B, "app").await;
        lap("connectors READY");
        let ns_a = string_field(&ca, "namespace");
        let ns_b = string_field(&cb, "namespace");
        assert_ne!(ns_a, ns_b);

        // From A's connector, a real client reaches A's instance with its AUTH string.
        wait_pong(&ns_a, &host_a, port, &auth_a).await;
        let set = cli_in(Some(&ns_a), &host_a, port, &auth_a, &["SET", "k", "from-a"]);
        assert_eq!(set.as_deref(), Ok("OK"));
        // B writes the same key at the same address in its own network.
        wait_pong(&ns_b, &host_a, port, &auth_b).await;
        let set = cli_in(Some(&ns_b), &host_a, port, &auth_b, &["SET", "k", "from-b"]);
        assert_eq!(set.as_deref(), Ok("OK"));
        wait_pong(&ns_b, &host_b2, port, &auth_b2).await;

        // Each connector sees its own network's data at the shared address.
        let get = cli_in(Some(&ns_a), &host_a, port, &auth_a, &["GET", "k"]);
        assert_eq!(get.as_deref(), Ok("from-a"));
        let get = cli_in(Some(&ns_b), &host_a, port, &auth_b, &["GET", "k"]);
        assert_eq!(get.as_deref(), Ok("from-b"));
        // B's AUTH string opens nothing from A's connector: that address is A's engine.
        let wrong = cli_in(Some(&ns_a), &host_a, port, &auth_b, &["GET", "k"]);
        assert!(wrong.is_err(), "B's secret from A's connector: {wrong:?}");
        // No TCP connection from A's connector to B's instance where A has nothing.
        for addr in std::iter::once(host_b2.clone()).chain(node_addresses(&b2)) {
            assert!(
                !tcp_opens(&ns_a, &addr, port),
                "{addr}:{port} (B's) opens from A's connector"
            );
            assert!(
                tcp_opens(&ns_b, &addr, port),
                "{addr}:{port} from B's connector"
            );
        }
        // A's nodes (not only its endpoint) answer from A's connector.
        for addr in node_addresses(&a) {
            wait_pong(&ns_a, &addr, port, &auth_a).await;
        }
        // The read endpoint (served by the kernel in the primary's namespace) leads to
        // the replica, which has A's write.
        let read_a = string_field(&a, "readEndpoint");
        let read_port = port_field(&a, "readEndpointPort");
        let (ns, h, au) = (ns_a.clone(), read_a.clone(), auth_a.clone());
        eventually(
            "A's read endpoint serves k from the replica",
            Duration::from_secs(20),
            move || {
                cli_in(Some(&ns), &h, read_port, &au, &["GET", "k"]).is_ok_and(|v| v == "from-a")
            },
        )
        .await;
        let role = cli_in(Some(&ns_a), &read_a, read_port, &auth_a, &["ROLE"]);
        assert!(
            role.as_deref().is_ok_and(|r| r.starts_with("slave")),
            "{role:?}"
        );
        assert!(
            !tcp_opens(&ns_b, &read_a, read_port),
            "A's read endpoint {read_a} opens from B's connector"
        );

        // The CLI's way in: `cachectl connectors exec`.
        let (ok, out) = cachectl_exec(
            &api,
            "app",
            &[
                "redis-cli",
                "--no-auth-warning",
                "-h",
                &host_a,
                "-p",
                &port.to_string(),
                "-a",
                &auth_a,
                "GET",
                "k",
            ],
        );
        assert!(ok && out == "from-a", "cachectl connectors exec: {out}");

        // The root namespace reaches neither project (an authenticated PING: this
        // machine's default gateway may accept any TCP connection itself).
        for (host, auth) in [(&host_a, &auth_a), (&read_a, &auth_a), (&host_b2, &auth_b2)] {
            let got = cli_in(None, host, port, auth, &["PING"]);
            assert!(
                got.is_err(),
                "{host}:{port} from the root namespace: {got:?}"
            );
        }
        lap("isolation checked");

        // Deleting A's connector removes its namespace: nothing is reachable from it,
        // not even from an app that stays in it.
        let app = Resident::start(&ns_a).expect("a process in A's connector");
        eventually(
            "the app in the connector reaches A",
            Duration::from_secs(10),
            || cli_at(app.at(), &host_a, port, &auth_a, &["PING"]).is_ok_and(|t| t == "PONG"),
        )
        .await;
        let (status, op) = api.delete(&format!("{A}/connectors/app")).await;
        assert_eq!(status, 200, "delete connector: {op}");
        let done = wait_op(&api, &op_name(&op), "30s").await;
        assert!(done["done"] == true && done["error"].is_null(), "{done}");
        assert!(
            !namespaces().contains(&ns_a),
            "{ns_a} is gone once the delete is done"
        );
        let after = cli_in(Some(&ns_a), &host_a, port, &auth_a, &["PING"]);
        assert!(after.is_err(), "from the deleted connector: {after:?}");
        assert!(!tcp_opens(&ns_a, &host_a, port));
        for addr in std::iter::once(host_a.clone()).chain(node_addresses(&a)) {
            let got = cli_at(app.at(), &addr, port, &auth_a, &["PING"]);
            assert!(
                got.is_err(),
                "{addr} from the app left in the connector: {got:?}"
            );
            assert!(
                !tcp_opens_at(app.at(), &addr, port),
                "{addr} opens from the app"
            );
        }
        drop(app);
        lap("connector deleted");

        // A failover keeps A at the same primary endpoint, reached from a new connector.
        let c2 = create_connector(&api, &guard, A, "app2").await;
        let ns_a2 = string_field(&c2, "namespace");
        let primary_before = primary_address(&a);
        for addr in node_addresses(&a) {
            let (ns, addr2, auth) = (ns_a2.clone(), addr.clone(), auth_a.clone());
            eventually(
                &format!("{addr} has k"),
                Duration::from_secs(20),
                move || {
                    cli_in(Some(&ns), &addr2, port, &auth, &["GET", "k"])
                        .is_ok_and(|v| v == "from-a")
                },
            )
            .await;
        }
        lap("new connector READY, both of A's nodes have k");
        let (status, op) = api
            .post(&format!("{A}/instances/ha/failover"), json!({}))
            .await;
        assert_eq!(status, 200, "failover: {op}");
        let done = wait_op(&api, &op_name(&op), "60s").await;
        assert!(done["done"] == true && done["error"].is_null(), "{done}");
        lap("failover operation done");
        let (_, after) = api.get(&format!("{A}/instances/ha")).await;
        assert_eq!(string_field(&after, "host"), host_a, "{after}");
        assert_ne!(primary_address(&after), primary_before, "{after}");
        let (ns, h, au) = (ns_a2.clone(), host_a.clone(), auth_a.clone());
        eventually(
            "A's endpoint takes writes after the failover",
            // Well under the engines' repl-timeout (10 s): the old primary's link to the
            // new one must survive the endpoint's move (it once left from the endpoint's
            // address and hung until that timeout, refusing writes with NOREPLICAS).
            Duration::from_secs(5),
            move || {
                cli_in(Some(&ns), &h, port, &au, &["SET", "k2", "after"]).is_ok_and(|v| v == "OK")
            },
        )
        .await;
        let get = cli_in(Some(&ns_a2), &host_a, port, &auth_a, &["GET", "k"]);
        assert_eq!(get.as_deref(), Ok("from-a"));
        let role = cli_in(Some(&ns_a2), &host_a, port, &auth_a, &["ROLE"]);
        assert!(
            role.as_deref().is_ok_and(|r| r.starts_with("master")),
            "{role:?}"
        );
        // B still has its own value at the same address.
        let get = cli_in(Some(&ns_b), &host_a, port, &auth_b, &["GET", "k"]);
        assert_eq!(get.as_deref(), Ok("from-b"));
        lap("failover: A reached at the same endpoint from a new connector");
    })
    .await
    .unwrap_or_else(|_| panic!("the test took longer than {TEST_LIMIT:?}"));
}

/// The address of the instance's PRIMARY node.
fn primary_address(inst: &Value) -> String {
    inst["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["role"] == "PRIMARY")
        .map(|n| string_field(n, "address"))
        .unwrap_or_else(|| panic!("no PRIMARY node: {inst}"))
}
