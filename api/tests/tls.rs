//! TLS in transit (docs/architecture.md#tls-in-transit): an instance created with
//! `SERVER_AUTHENTICATION` serves TLS only on port 6378, with a server certificate from
//! its own CA; replication runs over TLS; failover and rotation keep clients working.
//! Checked as a user would: `redis-cli --tls --cacert`, `openssl s_client`, and the
//! API's JSON.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cacheplane_testkit::agent::Agent;
use cacheplane_testkit::json::{array_field, port_field, str_field, string_field};
use cacheplane_testkit::stack::{eventually, redis_cli, start_api, three_agents};
use cacheplane_testkit::{Api, Fleet, TestDb, GIB};
use common::checks::{expect_error, expect_invalid, expect_ok};
use common::client::{instance, op_name, wait_op, PARENT};
use common::stack::create_ready;
use serde_json::{json, Value};

const SA: &str = "SERVER_AUTHENTICATION";

/// `redis-cli --tls --cacert CA -h host -p port` with AUTH `auth`: its trimmed output.
fn tls_cli(ca: &Path, host: &str, port: u16, auth: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-h", host, "-p", &port.to_string(), "--no-auth-warning"])
        .env("REDISCLI_AUTH", auth)
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s.trim().to_string()
}

/// The serial (hex, as openssl prints it) of the certificate `host:port` presents,
/// verified against `ca` and for the IP address `host`; the error output otherwise.
fn served_serial(ca: &Path, host: &str, port: u16) -> Result<String, String> {
    let script = format!(
        "openssl s_client -connect {host}:{port} -CAfile '{}' -verify_ip {host} \
         -verify_return_error </dev/null 2>/tmp/s_client.$$ | openssl x509 -noout -serial; \
         rc=$?; cat /tmp/s_client.$$ >&2; rm -f /tmp/s_client.$$; exit $rc",
        ca.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("running openssl (install openssl)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.trim().strip_prefix("serial=") {
        Some(s) if out.status.success() => Ok(s.to_uppercase()),
        _ => Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.contains("error") || l.contains("verify"))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

/// The `openssl x509` view of a PEM certificate: `-serial` and `-fingerprint -sha1`.
fn openssl_facts(pem: &str, dir: &Path) -> (String, String) {
    let file = dir.join("facts.pem");
    std::fs::write(&file, pem).expect("writing a PEM");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-fingerprint", "-sha1", "-in"])
        .arg(&file)
        .output()
        .expect("running openssl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let get = |p: &str| {
        text.lines()
            .find_map(|l| l.split_once('=').filter(|(k, _)| k.ends_with(p)))
            .map(|(_, v)| v.replace(':', "").to_lowercase())
            .unwrap_or_else(|| panic!("no {p} in {text}"))
    };
    (get("serial"), get("Fingerprint"))
}

fn nodes(inst: &Value) -> Vec<(String, String, String)> {
    array_field(inst, "nodes")
        .iter()
        .map(|n| {
            (
                string_field(n, "id"),
                string_field(n, "role"),
                string_field(n, "address"),
            )
        })
        .collect()
}

/// Fails when `doc` holds a private key anywhere.
#[track_caller]
fn no_private_key(what: &str, doc: &Value) {
    let text = doc.to_string();
    assert!(
        !text.contains("PRIVATE KEY"),
        "{what} carries a private key: {text}"
    );
}

/// Every answer a user can get about the instance and its operations: none holds a key.
async fn assert_no_key_in_answers(api: &Api, name: &str) {
    for path in [
        format!("{PARENT}/instances/{name}"),
        format!("{PARENT}/instances"),
        "/v1/projects/proj/locations/-/instances".to_string(),
        format!("{PARENT}/operations"),
        format!("{PARENT}/instances/{name}/authString"),
    ] {
        let (status, body) = api.get(&path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        no_private_key(&path, &body);
    }
}

/// The engine pids of `agents`, by node id.
fn pids(agents: &[Agent]) -> std::collections::BTreeMap<String, u32> {
    agents.iter().flat_map(|a| a.engine_pids()).collect()
}

#[tokio::test]
async fn tls_instance_serves_replicates_fails_over_and_rotates_online() {
    let db = TestDb::new().await;
    let (mut api, _net) = start_api(&db, &[]).await;
    let agents = three_agents(&api, 8 * GIB).await;
    let dir = tempfile_dir();

    let (inst, auth) = create_ready(
        &api,
        "secure",
        json!({
            "tier": "STANDARD_HA", "memorySizeGb": 1, "replicaCount": 2,
            "readReplicasMode": "READ_REPLICAS_ENABLED",
            "locationId": "local-a", "alternativeLocationId": "local-b",
            "transitEncryptionMode": SA,
        }),
    )
    .await;
    assert_eq!(inst["transitEncryptionMode"], SA, "{inst}");
    let port = port_field(&inst, "port");
    assert_eq!(port, 6378, "TLS instances serve on 6378: {inst}");
    assert_eq!(port_field(&inst, "readEndpointPort"), 6378, "{inst}");
    let host = string_field(&inst, "host");
    let read_host = string_field(&inst, "readEndpoint");

    // serverCaCerts: Memorystore's shape, and what openssl reads in the certificate.
    let cas = array_field(&inst, "serverCaCerts").clone();
    assert_eq!(cas.len(), 1, "{inst}");
    let ca = &cas[0];
    let pem = str_field(ca, "cert");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let (serial_hex, sha1) = openssl_facts(pem, &dir);
    let serial: u64 = str_field(ca, "serialNumber")
        .parse()
        .expect("a decimal serial");
    assert_eq!(
        u64::from_str_radix(&serial_hex, 16).ok(),
        Some(serial),
        "{ca}"
    );
    assert_eq!(str_field(ca, "sha1Fingerprint"), sha1, "{ca}");
    let created = str_field(ca, "createTime").parse::<chrono::DateTime<chrono::Utc>>();
    let expires = str_field(ca, "expireTime").parse::<chrono::DateTime<chrono::Utc>>();
    assert!(
        matches!((&created, &expires), (Ok(c), Ok(e)) if c < e && *c <= chrono::Utc::now()),
        "{ca}"
    );
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pem).expect("writing ca.pem");
    assert_no_key_in_answers(&api, "secure").await;

    // A TLS client with the CA gets in; a plaintext client gets no answer.
    assert_eq!(
        tls_cli(&ca_file, &host, port, &auth, &["set", "k", "v1"]),
        "OK"
    );
    assert_eq!(tls_cli(&ca_file, &host, port, &auth, &["get", "k"]), "v1");
    let plain = redis_cli(&host, port, Some(&auth), &["ping"]);
    assert!(
        !plain.contains("PONG"),
        "a plaintext client was answered: {plain}"
    );
    let plain_6379 = redis_cli(&host, 6379, Some(&auth), &["ping"]);
    assert!(
        !plain_6379.contains("PONG"),
        "port 6379 answered: {plain_6379}"
    );

    // Replicas replicate over TLS: the write is on every replica, read over TLS; every
    // node presents the instance's certificate for its own address; the node's key file
    // is private to the agent.
    let first = served_serial(&ca_file, &host, port).expect("the primary endpoint's certificate");
    for (id, role, address) in nodes(&inst) {
        assert_eq!(
            served_serial(&ca_file, &address, port),
            Ok(first.clone()),
            "node {address}"
        );
        if role == "REPLICA" {
            eventually(
                &format!("replica {address} has k"),
                Duration::from_secs(10),
                || tls_cli(&ca_file, &address, port, &auth, &["get", "k"]) == "v1",
            )
            .await;
        }
        let agent = agents
            .iter()
            .find(|a| a.node_dir(&id).join("server.key").exists())
            .unwrap_or_else(|| panic!("no agent has the key of node {id}"));
        for f in ["server.key", "server.pem", "ca.pem"] {
            let mode = std::fs::metadata(agent.node_dir(&id).join(f))
                .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
            assert_eq!(mode.ok(), Some(0o600), "{f} of node {id}");
        }
    }
    // Through the read endpoint (a TCP relay): the replica's TLS, valid for the
    // endpoint's address too.
    assert_eq!(served_serial(&ca_file, &read_host, port), Ok(first.clone()));
    eventually(
        "the read endpoint serves k over TLS",
        Duration::from_secs(10),
        || tls_cli(&ca_file, &read_host, port, &auth, &["get", "k"]) == "v1",
    )
    .await;

    // Rotation: a new server certificate from the same CA, on every node, no restart.
    let before = pids(&agents);
    let (status, op) = api
        .post(
            &format!("{PARENT}/instances/secure/rotateServerCertificate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "rotate: {op}");
    no_private_key("the rotate operation", &op);
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "rotate: {done}"
    );
    no_private_key("the finished rotate operation", &done);
    let rotated = instance(&api, "secure").await;
    assert_eq!(
        rotated["serverCaCerts"], inst["serverCaCerts"],
        "the CA stays"
    );
    let second = served_serial(&ca_file, &host, port).expect("the rotated certificate");
    assert_ne!(second, first, "the server certificate was not rotated");
    for (_, _, address) in nodes(&rotated) {
        assert_eq!(
            served_serial(&ca_file, &address, port),
            Ok(second.clone()),
            "node {address}"
        );
    }
    assert_eq!(pids(&agents), before, "rotation restarted an engine");
    assert_eq!(tls_cli(&ca_file, &host, port, &auth, &["get", "k"]), "v1");
    assert_no_key_in_answers(&api, "secure").await;

    // A failover keeps TLS (same endpoint, same certificate on the promoted replica).
    let (status, op) = api
        .post(&format!("{PARENT}/instances/secure/failover"), json!({}))
        .await;
    assert_eq!(status, 200, "failover: {op}");
    let done = wait_op(&api, &op_name(&op), "60s").await;
    assert!(
        done["done"] == true && done["error"].is_null(),
        "failover: {done}"
    );
    eventually(
        "writes over TLS after the failover",
        Duration::from_secs(10),
        || tls_cli(&ca_file, &host, port, &auth, &["set", "k", "v2"]) == "OK",
    )
    .await;
    assert_eq!(tls_cli(&ca_file, &host, port, &auth, &["get", "k"]), "v2");
    assert_eq!(served_serial(&ca_file, &host, port), Ok(second));

    // Set at create only.
    let path = format!("{PARENT}/instances/secure");
    let got = api
        .patch(
            &format!("{path}?updateMask=transitEncryptionMode"),
            json!({"transitEncryptionMode": "DISABLED"}),
        )
        .await;
    expect_invalid("patch transitEncryptionMode", &got, "transitEncryptionMode");
    assert_no_key_in_answers(&api, "secure").await;
    let log = api.log_tail(16 << 20);
    assert!(!log.contains("PRIVATE KEY"), "the API logged a private key");
    drop(agents);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory under the system's temp dir, for CA files.
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cp-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).expect("a temp dir");
    d
}

const INSTANCES: &str = "/v1/projects/proj/locations/local/instances";

/// In-process, with fake agents: the enum, the port, the create-only rule and which
/// instances may be rotated.
#[tokio::test]
async fn transit_encryption_mode_is_validated_and_set_at_create_only() {
    let db = TestDb::new().await;
    let api = Api::in_process(&db).await;
    let mut fleet = Fleet::three_zones(&api, 64 * GIB).await;
    let body =
        |mode: Value| json!({"tier": "BASIC", "memorySizeGb": 1, "transitEncryptionMode": mode});
    for bad in [
        json!("SOMETIMES"),
        json!("server_authentication"),
        json!(""),
    ] {
        let got = api
            .post(&format!("{INSTANCES}?instanceId=bad"), body(bad.clone()))
            .await;
        expect_invalid(
            &format!("transitEncryptionMode {bad}"),
            &got,
            "transitEncryptionMode",
        );
    }
    let (list_status, list) = api.get(INSTANCES).await;
    assert_eq!(
        (list_status, list["instances"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );

    for (name, mode, port) in [
        ("plain", json!("DISABLED"), 6379),
        ("dflt", Value::Null, 6379),
        ("tls", json!(SA), 6378),
    ] {
        let op = expect_ok(
            &format!("create {name}"),
            &api.post(&format!("{INSTANCES}?instanceId={name}"), body(mode))
                .await,
        );
        let op = fleet.converge(&api, &op).await;
        assert!(op["error"].is_null(), "{op}");
        let inst = &op["response"];
        assert_eq!(port_field(inst, "port"), port, "{name}: {inst}");
        let tls = port == 6378;
        assert_eq!(
            inst["transitEncryptionMode"],
            if tls { SA } else { "DISABLED" },
            "{inst}"
        );
        assert_eq!(inst["serverCaCerts"].is_array(), tls, "{name}: {inst}");
        no_private_key(name, inst);
        for patch in [
            (
                "?updateMask=transitEncryptionMode",
                json!({"transitEncryptionMode": SA}),
            ),
            ("?updateMask=transitEncryptionMode", json!({})),
            (
                "?updateMask=labels",
                json!({"transitEncryptionMode": "DISABLED"}),
            ),
        ] {
            let got = api
                .patch(&format!("{INSTANCES}/{name}{}", patch.0), patch.1.clone())
                .await;
            expect_invalid(
                &format!("patch {name} {patch:?}"),
                &got,
                "transitEncryptionMode",
            );
        }
    }
    let got = api
        .post(
            &format!("{INSTANCES}/plain/rotateServerCertificate"),
            json!({}),
        )
        .await;
    expect_error("rotate without TLS", &got, 409, "FAILED_PRECONDITION", None);
    let got = api
        .post(
            &format!("{INSTANCES}/nope/rotateServerCertificate"),
            json!({}),
        )
        .await;
    expect_error("rotate a missing instance", &got, 404, "NOT_FOUND", None);
    let op = expect_ok(
        "rotate tls",
        &api.post(
            &format!("{INSTANCES}/tls/rotateServerCertificate"),
            json!({}),
        )
        .await,
    );
    assert_eq!(op["metadata"]["verb"], "update", "{op}");
    no_private_key("rotate", &op);
    let op = fleet.converge(&api, &op).await;
    assert!(op["error"].is_null(), "{op}");
    assert_eq!(op["response"]["state"], "READY", "{op}");
}
