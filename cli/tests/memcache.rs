//! `cachectl memcache instances …` as a user runs them, against the live API and agents
//! running real memcached: create, describe, list, update (scale), update-parameters,
//! apply-parameters, env (sourced by bash and used with the memcached protocol), delete;
//! the API's field errors exit 3, usage errors 2.

mod common;

use common::Stack;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn memcache_instances_round_trip() {
    cacheplane_testkit::process::require_memcached();
    let stack = Stack::with_agents();
    let m = stack.json(&[
        "memcache",
        "instances",
        "create",
        "sessions",
        "--node-count",
        "2",
        "--cpu-count",
        "1",
        "--memory-size-mb",
        "1024",
        "--labels",
        "env=test",
    ]);
    assert_eq!(m["state"], "READY", "{m}");
    assert_eq!(m["nodeCount"], 2, "{m}");
    assert_eq!(m["labels"]["env"], "test", "{m}");
    let endpoint = m["discoveryEndpoint"]
        .as_str()
        .expect("discoveryEndpoint")
        .to_string();

    let described = stack.json(&["memcache", "instances", "describe", "sessions"]);
    assert_eq!(described["discoveryEndpoint"], endpoint.as_str());
    let list = stack.json(&["memcache", "instances", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let table = stack
        .cachectl()
        .args(["memcache", "instances", "describe", "sessions"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&endpoint) && text.contains("node-1"),
        "{text}"
    );

    // env, sourced by bash: a memcached client reaches the discovery endpoint with it.
    let script = format!(
        "source <({} memcache instances env sessions) && \
         exec 3<>/dev/tcp/${{MEMCACHED_DISCOVERY%:*}}/${{MEMCACHED_DISCOVERY#*:}} && \
         printf 'config get cluster\\r\\n' >&3 && IFS= read -r -t 5 line <&3; \
         printf '%s\\n' \"$line\"; \
         echo \"servers=$MEMCACHED_SERVERS\"",
        env!("CARGO_BIN_EXE_cachectl")
    );
    let out = std::process::Command::new("timeout")
        .args(["10", "bash", "-c", &script])
        .env("CACHECTL_API_URL", &stack.api_url)
        .env("CACHECTL_TOKEN", &stack.admin_token)
        .env("CACHECTL_PROJECT", &stack.project)
        .env("CACHECTL_REGION", "local")
        .env("CACHECTL_CONFIG", stack.config_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("CONFIG cluster 0 "),
        "{text} {}",
        stderr(&out)
    );
    let servers = text.lines().last().unwrap_or_default();
    assert_eq!(servers.matches(":11211").count(), 2, "{text}");

    // Scale, stage and apply parameters.
    let m = stack.json(&[
        "memcache",
        "instances",
        "update",
        "sessions",
        "--node-count",
        "3",
    ]);
    assert_eq!(m["nodeCount"], 3, "{m}");
    assert_eq!(m["memcacheNodes"].as_array().map(Vec::len), Some(3), "{m}");
    let m = stack.json(&[
        "memcache",
        "instances",
        "update-parameters",
        "sessions",
        "--set",
        "idle-timeout=60",
    ]);
    assert_eq!(m["parameters"]["params"]["idle-timeout"], "60", "{m}");
    let m = stack.json(&[
        "memcache",
        "instances",
        "apply-parameters",
        "sessions",
        "--all",
    ]);
    assert_eq!(m["state"], "READY", "{m}");
    for n in m["memcacheNodes"].as_array().expect("nodes") {
        assert_eq!(n["parameters"]["params"]["idle-timeout"], "60", "{n}");
    }

    // Errors: the API's field (exit 3), usage (exit 2).
    let out = stack
        .cachectl()
        .args([
            "memcache",
            "instances",
            "update-parameters",
            "sessions",
            "--set",
            "track-sizes=maybe",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("parameters.params.track-sizes"),
        "{}",
        stderr(&out)
    );
    let out = stack
        .cachectl()
        .args([
            "memcache",
            "instances",
            "create",
            "big",
            "--node-count",
            "14",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("nodeCount"), "{}", stderr(&out));
    let out = stack
        .cachectl()
        .args(["memcache", "instances", "apply-parameters", "sessions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    stack
        .cachectl()
        .args(["memcache", "instances", "delete", "sessions", "--quiet"])
        .assert()
        .success();
    let out = stack
        .cachectl()
        .args(["memcache", "instances", "describe", "sessions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
