//! `cachectl networks` and `cachectl connectors` as a user runs them, against the live
//! API in its default loopback mode: connectors are READY at once and have no namespace,
//! so `connectors exec` says why it cannot run there.

mod common;

use common::Stack;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn connectors_round_trip_and_hold_their_network() {
    let stack = Stack::api_only();
    stack
        .cachectl()
        .args([
            "networks",
            "create",
            "backend",
            "--ip-range",
            "10.21.0.0/16",
        ])
        .assert()
        .success();
    let net = stack.json(&["networks", "describe", "backend"]);
    assert_eq!(net["ipRange"], "10.21.0.0/16", "{net}");
    // 127.0.0.0/16 is refused, naming the field.
    let out = stack
        .cachectl()
        .args(["networks", "create", "lo", "--ip-range", "127.0.0.0/16"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("ipRange"), "{}", stderr(&out));

    let app = stack.json(&["connectors", "create", "app", "--network", "backend"]);
    let name = format!("projects/{}/locations/local/connectors/app", stack.project);
    assert_eq!(app["name"], name.as_str(), "{app}");
    assert_eq!(app["state"], "READY", "{app}");
    assert_eq!(
        app["network"],
        format!("projects/{}/networks/backend", stack.project)
    );
    let range = app["ipCidrRange"]
        .as_str()
        .expect("ipCidrRange")
        .to_string();
    assert!(
        range.starts_with("10.21.") && range.ends_with("/28"),
        "{app}"
    );
    assert!(app["namespace"].is_null(), "loopback: no namespace: {app}");

    let described = stack.json(&["connectors", "describe", "app"]);
    assert_eq!(described, app);
    let list = stack.json(&["connectors", "list"]);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], name.as_str());
    let table = stack
        .cachectl()
        .args(["connectors", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("app") && text.contains(&range), "{text}");

    // The range is taken; a /28 elsewhere in the pool is not.
    let out = stack
        .cachectl()
        .args(["connectors", "create", "app2", "--network", "backend"])
        .args(["--range", &range])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("ipCidrRange"), "{}", stderr(&out));
    let app2 = stack.json(&[
        "connectors",
        "create",
        "app2",
        "--network",
        "projects/cli-test/networks/backend",
        "--range",
        "10.21.200.0/28",
    ]);
    assert_eq!(app2["ipCidrRange"], "10.21.200.0/28", "{app2}");

    // exec needs a namespace, which loopback mode does not make.
    let out = stack
        .cachectl()
        .args(["connectors", "exec", "app", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no network namespace"),
        "{}",
        stderr(&out)
    );

    // The network stays while its connectors use it.
    let out = stack
        .cachectl()
        .args(["networks", "delete", "backend", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&name), "{}", stderr(&out));

    for c in ["app", "app2"] {
        let out = stack
            .cachectl()
            .args(["connectors", "delete", c, "--quiet"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Deleted connector"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = stack
        .cachectl()
        .args(["connectors", "describe", "app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    stack
        .cachectl()
        .args(["networks", "delete", "backend", "--quiet"])
        .assert()
        .success();
}
