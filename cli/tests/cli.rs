//! `cachectl` run as a user runs it, as a subprocess against the live API (and real
//! agents running redis-server where instances must become READY): JSON output parsed
//! and checked, exit codes, the API's messages, and `instances env` sourced by bash.

mod common;

use std::process::Command;

use common::Stack;
use serde_json::Value;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The instance with this id in a JSON list.
fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|i| {
        i["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("/{id}")))
    })
}

#[test]
fn instance_lifecycle_on_real_agents() {
    let stack = Stack::with_agents();
    let regions = stack.json(&["regions", "list"]);
    assert_eq!(regions[0]["regionId"], "local", "{regions}");

    // More than one STANDARD_HA replica needs read replicas: the CLI turns them on and
    // says so.
    let out = stack
        .cachectl()
        .args([
            "instances",
            "create",
            "my-cache",
            "--tier",
            "standard-ha",
            "--size",
            "1",
        ])
        .args(["--replica-count", "2", "--labels", "env=test,team=cli"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "create failed:\n{}", stderr(&out));
    assert!(
        stderr(&out).contains("enabling read replicas"),
        "{}",
        stderr(&out)
    );
    let created: Value = serde_json::from_slice(&out.stdout).expect("create prints JSON");
    let name = format!(
        "projects/{}/locations/local/instances/my-cache",
        stack.project
    );
    assert_eq!(created["name"], name.as_str(), "{created}");
    assert_eq!(created["state"], "READY", "{created}");
    assert_eq!(created["tier"], "STANDARD_HA", "{created}");
    assert_eq!(created["memorySizeGb"], 1, "{created}");
    assert_eq!(created["replicaCount"], 2, "{created}");
    assert_eq!(
        created["readReplicasMode"], "READ_REPLICAS_ENABLED",
        "{created}"
    );
    assert_eq!(created["labels"]["env"], "test", "{created}");
    let nodes = created["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{created}");
    assert!(nodes.iter().all(|n| n["state"] == "READY"), "{created}");

    let described = stack.json(&["instances", "describe", "my-cache"]);
    assert_eq!(described["name"], name.as_str());
    assert_eq!(described["state"], "READY");
    assert_eq!(described["host"], created["host"]);
    // A full name works without the project and region settings.
    let out = stack
        .bare_cachectl()
        .env("CACHECTL_API_URL", &stack.api_url)
        .env("CACHECTL_TOKEN", &stack.admin_token)
        .args(["instances", "describe", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.contains("READY"), "{table}");
    assert!(
        table.contains(&format!("{}:6379", created["host"].as_str().unwrap())),
        "{table}"
    );

    // The nodes' figures: JSON for scripts, a row per node for people.
    let figures = stack.json(&["instances", "describe", "my-cache", "--metrics"]);
    let rows = figures["nodes"].as_array().expect("nodes");
    assert_eq!(rows.len(), 3, "{figures}");
    assert_eq!(rows[0]["role"], "PRIMARY", "primary first: {figures}");
    assert!(rows.iter().all(|n| n["up"] == true), "{figures}");
    let out = stack
        .cachectl()
        .args(["instances", "describe", "my-cache", "--metrics"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table.contains("HIT%") && table.contains("RESTARTS"),
        "{table}"
    );
    assert_eq!(table.matches(" yes ").count(), 3, "three nodes up: {table}");

    let listed = stack.json(&["instances", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(find(&listed, "my-cache").unwrap()["state"], "READY");
    let filtered = stack.json(&["instances", "list", "--filter", "labels.env=prod"]);
    assert_eq!(filtered, Value::Array(vec![]), "{filtered}");

    // `instances env`, sourced by bash, is all redis-cli needs.
    let out = stack
        .cachectl()
        .args(["instances", "env", "my-cache"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines.len(), 3, "{env}");
    assert_eq!(
        lines[0],
        format!("REDISHOST={}", created["host"].as_str().unwrap())
    );
    assert_eq!(lines[1], "REDISPORT=6379");
    assert!(
        lines[2].starts_with("REDISAUTH=") && lines[2].len() > 20,
        "{env}"
    );
    let env_file = stack.path("my-cache.env");
    std::fs::write(&env_file, &env).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"set -e; source "$1"
            redis-cli -h $REDISHOST -p $REDISPORT -a $REDISAUTH --no-auth-warning SET cli-key hello
            redis-cli -h $REDISHOST -p $REDISPORT -a $REDISAUTH --no-auth-warning GET cli-key"#,
        )
        .arg("bash")
        .arg(&env_file)
        .output()
        .expect("running bash");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "OK\nhello\n", "{}", stderr(&out));

    let auth = stack.json(&["instances", "get-auth-string", "my-cache"]);
    assert_eq!(
        format!("REDISAUTH={}", auth["authString"].as_str().unwrap()),
        lines[2]
    );

    let scaled = stack.json(&["instances", "scale", "my-cache", "--size", "2"]);
    assert_eq!(scaled["memorySizeGb"], 2, "{scaled}");
    assert_eq!(scaled["state"], "READY", "{scaled}");
    let updated = stack.json(&[
        "instances",
        "update",
        "my-cache",
        "--update-labels",
        "env=prod",
        "--remove-labels",
        "team",
    ]);
    assert_eq!(
        updated["labels"],
        serde_json::json!({"env": "prod"}),
        "{updated}"
    );
    assert_eq!(updated["memorySizeGb"], 2, "{updated}");

    // Waiting has a limit: past it, exit 4 while the operation goes on.
    let out = stack
        .cachectl()
        .args(["instances", "create", "quick", "--timeout", "0s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("still running"), "{}", stderr(&out));
    let ops = stack.json(&["operations", "list"]);
    let create_op = ops
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["metadata"]["target"]
                .as_str()
                .unwrap()
                .ends_with("/quick")
        })
        .unwrap_or_else(|| panic!("no operation for quick: {ops}"));
    let op_id = create_op["name"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let done = stack.json(&["operations", "wait", op_id]);
    assert_eq!(done["done"], true, "{done}");
    assert_eq!(done["response"]["state"], "READY", "{done}");
    let verbs: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["verb"].as_str().unwrap())
        .collect();
    assert!(
        verbs.contains(&"create") && verbs.contains(&"update"),
        "{ops}"
    );

    // Delete asks first; without a terminal it refuses rather than wait for an answer.
    let out = stack
        .cachectl()
        .args(["instances", "delete", "my-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--quiet"), "{}", stderr(&out));
    assert_eq!(
        stack.json(&["instances", "describe", "my-cache"])["state"],
        "READY"
    );

    let deleted = stack.json(&["instances", "delete", "my-cache", "--quiet"]);
    assert_eq!(deleted["done"], true, "{deleted}");
    assert_eq!(deleted["metadata"]["verb"], "delete", "{deleted}");
    let out = stack
        .cachectl()
        .args(["instances", "describe", "my-cache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("404 NOT_FOUND"), "{}", stderr(&out));

    // --async answers with the operation at once; `operations wait` finishes it.
    let op = stack.json(&["instances", "delete", "quick", "--quiet", "--async"]);
    assert_eq!(op["metadata"]["verb"], "delete", "{op}");
    let done = stack.json(&["operations", "wait", op["name"].as_str().unwrap()]);
    assert_eq!(done["done"], true, "{done}");
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(stack.json(&["instances", "list"]), Value::Array(vec![]));
}

#[test]
fn bad_input_and_errors_exit_with_distinct_codes() {
    let stack = Stack::api_only();

    // The API's field message, with status, on stderr; exit 3.
    let out = stack
        .cachectl()
        .args(["instances", "create", "c1", "--size", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("400 INVALID_ARGUMENT"), "{err}");
    assert!(
        err.contains(
            "memorySizeGb: must be a whole number of GB from 1 to 300 for tier BASIC, not 0"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{}", stdout(&out));

    let out = stack
        .cachectl()
        .args(["networks", "create", "n1", "--ip-range", "10.0.0.0/33"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ipRange: '10.0.0.0/33' is not an IPv4 CIDR such as 10.0.0.0/28"),
        "{}",
        stderr(&out)
    );
    let out = stack
        .cachectl()
        .args([
            "instances",
            "create",
            "c2",
            "--reserved-ip-range",
            "127.0.0.0/99",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reservedIpRange: '127.0.0.0/99' is not an IPv4 CIDR"),
        "{}",
        stderr(&out)
    );

    // An unknown flag is clap's usage error: exit 2 with the usage line.
    let out = stack
        .cachectl()
        .args(["instances", "create", "c3", "--colour", "blue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unexpected argument '--colour'"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Usage: cachectl instances create"),
        "{}",
        stderr(&out)
    );

    // A create that finds no host ends with a failed operation: exit 3, its status shown.
    let out = stack
        .cachectl()
        .args(["instances", "create", "c4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("RESOURCE_EXHAUSTED"),
        "{}",
        stderr(&out)
    );

    // Settings: none at all is a usage error; a wrong token is the API's 401.
    let out = stack
        .bare_cachectl()
        .args(["tiers", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no API token"), "{}", stderr(&out));
    let out = stack
        .cachectl()
        .env("CACHECTL_TOKEN", "wrong")
        .args(["tiers", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("401 UNAUTHENTICATED"),
        "{}",
        stderr(&out)
    );
    let out = stack
        .cachectl()
        .env("CACHECTL_API_URL", "http://127.0.0.1:9")
        .args(["tiers", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the API"),
        "{}",
        stderr(&out)
    );

    // The configuration file, written by `config set`, is the last resort; flags win.
    for (key, value) in [
        ("api-url", stack.api_url.as_str()),
        ("token", stack.admin_token.as_str()),
        ("project", stack.project.as_str()),
        ("region", "local"),
    ] {
        stack
            .bare_cachectl()
            .args(["config", "set", key, value])
            .assert()
            .success();
    }
    let out = stack
        .bare_cachectl()
        .args(["config", "list"])
        .output()
        .unwrap();
    assert!(
        !stdout(&out).contains(&stack.admin_token),
        "{}",
        stdout(&out)
    );
    let out = stack
        .bare_cachectl()
        .args(["zones", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let zones: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = zones
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zoneId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["local-a", "local-b", "local-c"]);
    let out = stack
        .bare_cachectl()
        .args(["zones", "list", "--region", "atlantis"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("404 NOT_FOUND"), "{}", stderr(&out));

    // Networks round trip, in YAML for a change.
    let out = stack
        .bare_cachectl()
        .args([
            "networks",
            "create",
            "backend",
            "--ip-range",
            "10.20.0.0/16",
        ])
        .args(["--format", "yaml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ipRange: 10.20.0.0/16"),
        "{}",
        stdout(&out)
    );
    let networks = stack.json(&["networks", "list"]);
    assert!(
        networks
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["ipRange"] == "10.20.0.0/16"),
        "{networks}"
    );
    stack
        .cachectl()
        .args(["networks", "delete", "backend", "--quiet"])
        .assert()
        .success();
    let out = stack
        .cachectl()
        .args(["networks", "describe", "backend"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Tokens: a project token works for its project, and no other, until it is revoked.
    // (The test's address space has room for one project's default network, so the
    // token is for the same project.)
    let project = stack.project.clone();
    let token = stack.json(&["tokens", "create", "--project", &project]);
    assert_eq!(token["kind"], "PROJECT", "{token}");
    let secret = token["token"].as_str().expect("the secret, once");
    let out = stack
        .cachectl()
        .env("CACHECTL_TOKEN", secret)
        .args(["networks", "list", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stack
        .cachectl()
        .env("CACHECTL_TOKEN", secret)
        .args(["networks", "list", "--project", "elsewhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let id = token["name"].as_str().unwrap().rsplit('/').next().unwrap();
    stack
        .cachectl()
        .args(["tokens", "revoke", id, "--quiet"])
        .assert()
        .success();
    let out = stack
        .cachectl()
        .env("CACHECTL_TOKEN", secret)
        .args(["networks", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_cachectl()"),
        ("zsh", "#compdef cachectl"),
        ("fish", "cachectl"),
    ] {
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cachectl"))
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("instances"), "{shell}");
    }
}

/// TLS in transit from the command line: create with --transit-encryption-mode, the CA
/// file from get-server-ca, `instances env` pointing redis-cli at TLS, and rotation.
#[test]
fn tls_instance_commands() {
    let stack = Stack::with_agents();
    let created = stack.json(&[
        "instances",
        "create",
        "secure",
        "--transit-encryption-mode",
        "server-authentication",
    ]);
    assert_eq!(created["state"], "READY", "{created}");
    assert_eq!(created["port"], 6378, "{created}");
    assert_eq!(
        created["transitEncryptionMode"], "SERVER_AUTHENTICATION",
        "{created}"
    );

    let ca = stack.path("ca.pem");
    let out = stack
        .cachectl()
        .args(["instances", "get-server-ca", "secure", "--out"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pem = std::fs::read_to_string(&ca).expect("get-server-ca wrote the file");
    assert_eq!(
        pem.trim(),
        created["serverCaCerts"][0]["cert"]
            .as_str()
            .expect("a CA")
            .trim()
    );

    // `instances env` writes the CA next to the configuration and says where.
    let out = stack
        .cachectl()
        .args(["instances", "env", "secure"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    assert!(env.contains("REDISPORT=6378\n"), "{env}");
    assert!(env.contains("REDISTLS=1\n"), "{env}");
    let env_file = stack.path("secure.env");
    std::fs::write(&env_file, &env).unwrap();
    let cli = |what: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                r#"set -e; source "$1"; test "$REDISTLS" = 1
                redis-cli --tls --cacert "$REDISCACERT" -h $REDISHOST -p $REDISPORT -a $REDISAUTH --no-auth-warning {what}"#
            ))
            .arg("bash")
            .arg(&env_file)
            .output()
            .expect("running bash");
        format!("{}{}", stdout(&out), stderr(&out))
    };
    assert_eq!(cli("SET tls-key hello"), "OK\n");
    assert_eq!(cli("GET tls-key"), "hello\n");

    let out = stack
        .cachectl()
        .args([
            "instances",
            "rotate-server-certificate",
            "secure",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rotated: Value = serde_json::from_slice(&out.stdout).expect("rotate prints JSON");
    assert_eq!(rotated["state"], "READY", "{rotated}");
    assert_eq!(
        rotated["serverCaCerts"], created["serverCaCerts"],
        "{rotated}"
    );
    assert_eq!(cli("GET tls-key"), "hello\n", "after the rotation");

    // Without TLS there is no CA to get.
    stack.json(&["instances", "create", "plain"]);
    let out = stack
        .cachectl()
        .args(["instances", "get-server-ca", "plain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("DISABLED"), "{}", stderr(&out));
}
