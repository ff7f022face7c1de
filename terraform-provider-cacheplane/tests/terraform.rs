//! The provider driven by the real `terraform` binary against the real stack (API,
//! PostgreSQL, agents running redis-server): apply a network, two instances and a
//! connector; plan again and see no changes; resize in place (the same redis-server
//! keeps its keys); change the tier (replacement); drift (an instance deleted or changed
//! outside Terraform shows in the next plan); import by full name and by id; errors on
//! the attribute at fault; destroy leaves nothing.

mod common;

use cacheplane_testkit::stack::redis_cli;
use common::terraform::Terraform;
use common::Stack;
use serde_json::Value;

const PROJECT: &str = "tf-test";

/// The configuration: provider settings, the network `tf-net` (its pool `pool`), the
/// instances `tf-basic` (tier `basic_tier`) and `tf-ha` (`ha_size` GB), the connector,
/// the data sources and outputs, and `extra` appended.
fn config(api_url: &str, pool: &str, basic_tier: &str, ha_size: u32, extra: &str) -> String {
    let basic_replicas = if basic_tier == "BASIC" { 0 } else { 1 };
    format!(
        r#"
terraform {{
  required_providers {{
    cacheplane = {{ source = "cacheplane/cacheplane" }}
  }}
}}

provider "cacheplane" {{
  endpoint = "{api_url}"
  project  = "{PROJECT}"
  region   = "local"
}}

resource "cacheplane_network" "main" {{
  network_id  = "tf-net"
  ip_range    = "{pool}"
  description = "made by terraform"
}}

resource "cacheplane_instance" "basic" {{
  instance_id        = "tf-basic"
  display_name       = "basic cache"
  tier               = "{basic_tier}"
  memory_size_gb     = 1
  replica_count      = {basic_replicas}
  authorized_network = cacheplane_network.main.network_id
  labels             = {{ env = "test" }}
  timeouts {{
    create = "2m"
  }}
}}

resource "cacheplane_instance" "ha" {{
  instance_id        = "tf-ha"
  tier               = "STANDARD_HA"
  memory_size_gb     = {ha_size}
  replica_count      = 1
  location_id        = "local-a"
  authorized_network = cacheplane_network.main.name
  redis_configs      = {{ "maxmemory-policy" = "allkeys-lru" }}
}}

resource "cacheplane_connector" "app" {{
  connector_id = "tf-app"
  network      = cacheplane_network.main.network_id
}}

data "cacheplane_zones" "local" {{}}
data "cacheplane_tiers" "all" {{}}
data "cacheplane_instance" "ha" {{
  instance_id = cacheplane_instance.ha.instance_id
}}

output "ha_host" {{ value = cacheplane_instance.ha.host }}
output "ha_port" {{ value = cacheplane_instance.ha.port }}
output "ha_nodes" {{ value = length(cacheplane_instance.ha.nodes) }}
output "ha_read_by_data_source" {{ value = data.cacheplane_instance.ha.host }}
output "zones" {{ value = data.cacheplane_zones.local.zones }}
output "tiers" {{ value = [for t in data.cacheplane_tiers.all.tiers : t.tier] }}
output "connector_range" {{ value = cacheplane_connector.app.ip_cidr_range }}
output "basic_auth" {{
  value     = cacheplane_instance.basic.auth_string
  sensitive = true
}}
{extra}
"#
    )
}

/// The instance `id` made outside Terraform, as a configuration declares it to import it.
fn imported_block(id: &str) -> String {
    format!(
        r#"
resource "cacheplane_instance" "ext" {{
  instance_id    = "{id}"
  tier           = "BASIC"
  memory_size_gb = 1
}}
"#
    )
}

/// `process_id` of `INFO server` through `host:port`.
fn redis_pid(host: &str, port: u16, auth: &str) -> String {
    let info = redis_cli(host, port, Some(auth), &["INFO", "server"]);
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap_or_else(|| panic!("no process_id in INFO server: {info}"))
        .trim()
        .to_string()
}

/// Asserts that a plan shows no changes (exit 0 and Terraform's "No changes").
#[track_caller]
fn assert_no_changes(tf: &Terraform, after: &str) -> String {
    let plan = tf.plan();
    assert!(
        plan.code == 0 && plan.stdout.contains("No changes"),
        "plan after {after} should show no changes:\n{}",
        plan.both()
    );
    plan.stdout
}

/// The `sensitive_attributes` of a resource instance in the state, as text.
fn sensitive_paths(state: &Value, kind: &str, name: &str) -> String {
    let res = state["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["type"] == kind && r["name"] == name))
        .unwrap_or_else(|| panic!("{kind}.{name} not in the state: {state}"));
    res["instances"][0]["sensitive_attributes"].to_string()
}

#[test]
fn terraform_manages_networks_instances_and_connectors() {
    let stack = Stack::start(PROJECT);
    let provider = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-cacheplane"));
    let tf = Terraform::new(provider, &stack.api.admin_token);
    let (url, pool) = (stack.api.base.clone(), stack.pool.clone());

    // 1. Apply: a network, two instances, a connector, data sources.
    tf.write_config(&config(&url, &pool, "BASIC", 1, ""));
    let applied = tf.apply();
    assert!(
        applied
            .stdout
            .contains("Apply complete! Resources: 4 added, 0 changed, 0 destroyed."),
        "{}",
        applied.both()
    );
    let basic_auth = stack.auth_string("tf-basic");
    assert!(
        !applied.stdout.contains(&basic_auth) && !applied.stderr.contains(&basic_auth),
        "the AUTH string must not be shown"
    );
    let out = tf.outputs();
    let ha = stack.instance("tf-ha");
    assert_eq!(ha["state"], "READY", "{ha}");
    assert_eq!(out["ha_host"]["value"], ha["host"], "{out}");
    assert_eq!(out["ha_port"]["value"], ha["port"], "{out}");
    assert_eq!(out["ha_nodes"]["value"], 2, "{out}");
    assert_eq!(out["ha_read_by_data_source"]["value"], ha["host"], "{out}");
    assert_eq!(
        out["zones"]["value"],
        serde_json::json!(["local-a", "local-b", "local-c"])
    );
    assert_eq!(
        out["tiers"]["value"],
        serde_json::json!(["BASIC", "STANDARD_HA"])
    );
    assert_eq!(out["basic_auth"]["sensitive"], true, "{out}");
    assert_eq!(out["basic_auth"]["value"], basic_auth.as_str());
    assert_eq!(
        ha["authorizedNetwork"],
        format!("projects/{PROJECT}/networks/tf-net")
    );
    assert_eq!(
        ha["redisConfigs"]["maxmemory-policy"], "allkeys-lru",
        "{ha}"
    );
    let basic = stack.instance("tf-basic");
    assert_eq!(basic["labels"]["env"], "test", "{basic}");
    assert_eq!(basic["displayName"], "basic cache", "{basic}");
    let (status, conn) = stack.get(&format!("{}/connectors/tf-app", stack.parent()));
    assert_eq!(status, 200, "{conn}");
    assert_eq!(
        out["connector_range"]["value"], conn["ipCidrRange"],
        "{out}"
    );
    // The AUTH strings are in the state only as sensitive values.
    let state = tf.state();
    for name in ["basic", "ha"] {
        let paths = sensitive_paths(&state, "cacheplane_instance", name);
        assert!(paths.contains("auth_string"), "{name}: {paths}");
    }

    // 2. A second plan shows no changes.
    let plan = assert_no_changes(&tf, "the first apply");
    println!("--- terraform plan after apply ---\n{plan}");

    // 3. A bigger size is an in-place update: the same redis-server, with its keys.
    let (host, port) = (
        ha["host"].as_str().unwrap().to_string(),
        ha["port"].as_u64().unwrap() as u16,
    );
    let auth = stack.auth_string("tf-ha");
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["SET", "tf-key", "kept"]),
        "OK"
    );
    let pid = redis_pid(&host, port, &auth);
    tf.write_config(&config(&url, &pool, "BASIC", 2, ""));
    let plan = tf.plan();
    assert_eq!(plan.code, 2, "{}", plan.both());
    assert!(
        plan.stdout
            .contains("cacheplane_instance.ha will be updated in-place")
            && plan
                .stdout
                .contains("Plan: 0 to add, 1 to change, 0 to destroy."),
        "{}",
        plan.both()
    );
    let applied = tf.apply();
    assert!(
        applied.stdout.contains("0 added, 1 changed, 0 destroyed"),
        "{}",
        applied.both()
    );
    assert_eq!(stack.instance("tf-ha")["memorySizeGb"], 2);
    assert_eq!(
        redis_pid(&host, port, &auth),
        pid,
        "the resize restarted redis-server"
    );
    assert_eq!(
        redis_cli(&host, port, Some(&auth), &["GET", "tf-key"]),
        "kept"
    );
    assert_no_changes(&tf, "the resize");

    // 4. Another tier replaces the instance.
    let before = stack.instance("tf-basic");
    tf.write_config(&config(&url, &pool, "STANDARD_HA", 2, ""));
    let plan = tf.plan();
    assert!(
        plan.code == 2
            && plan
                .stdout
                .contains("cacheplane_instance.basic must be replaced")
            && plan.stdout.contains("# forces replacement"),
        "{}",
        plan.both()
    );
    let applied = tf.apply();
    assert!(
        applied.stdout.contains("1 added, 0 changed, 1 destroyed"),
        "{}",
        applied.both()
    );
    let after = stack.instance("tf-basic");
    assert_eq!(after["tier"], "STANDARD_HA", "{after}");
    assert_ne!(after["createTime"], before["createTime"], "a new instance");
    assert_no_changes(&tf, "the replacement");

    // 5. Drift: a display name changed outside Terraform is put back; an instance
    // deleted outside Terraform is created again.
    let path = format!(
        "{}/instances/tf-basic?updateMask=displayName",
        stack.parent()
    );
    let answer = stack.rt.block_on(
        stack
            .api
            .patch(&path, serde_json::json!({"displayName": "renamed"})),
    );
    stack.run_op("rename tf-basic", answer);
    let plan = tf.plan();
    assert!(
        plan.code == 2 && plan.stdout.contains("\"renamed\" -> \"basic cache\""),
        "{}",
        plan.both()
    );
    stack.delete_instance("tf-ha");
    let plan = tf.plan();
    assert!(
        plan.code == 2
            && plan
                .stdout
                .contains("cacheplane_instance.ha will be created"),
        "{}",
        plan.both()
    );
    let applied = tf.apply();
    assert!(
        applied.stdout.contains("1 added, 1 changed, 0 destroyed"),
        "{}",
        applied.both()
    );
    assert_eq!(stack.instance("tf-ha")["state"], "READY");
    assert_eq!(stack.instance("tf-basic")["displayName"], "basic cache");
    assert_no_changes(&tf, "repairing the drift");

    // 6. An error of the API names the attribute at fault.
    let bad = r#"
resource "cacheplane_instance" "bad" {
  instance_id    = "tf-bad"
  tier           = "BASIC"
  memory_size_gb = 100000
}
"#;
    tf.write_config(&config(&url, &pool, "STANDARD_HA", 2, bad));
    let failed = tf.run(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(failed.code, 1, "{}", failed.both());
    assert!(
        failed
            .stderr
            .contains("memory_size_gb: must be a whole number of GB")
            && failed.stderr.contains("memory_size_gb = 100000"),
        "{}",
        failed.both()
    );

    // 7. Import an instance made outside Terraform, by full name and by id.
    stack.create_instance("ext");
    tf.write_config(&config(
        &url,
        &pool,
        "STANDARD_HA",
        2,
        &imported_block("ext"),
    ));
    let full = format!("projects/{PROJECT}/locations/local/instances/ext");
    tf.ok(&["import", "-no-color", "cacheplane_instance.ext", &full]);
    assert_no_changes(&tf, "importing by full name");
    tf.ok(&["state", "rm", "-no-color", "cacheplane_instance.ext"]);
    tf.ok(&["import", "-no-color", "cacheplane_instance.ext", "ext"]);
    assert_no_changes(&tf, "importing by id");

    // 8. Destroy leaves nothing.
    let destroyed = tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    assert!(
        destroyed.stdout.contains("Resources: 5 destroyed."),
        "{}",
        destroyed.both()
    );
    let (_, list) = stack.get(&format!("{}/instances", stack.parent()));
    assert_eq!(list["instances"], serde_json::json!([]), "{list}");
    let (_, list) = stack.get(&format!("{}/connectors", stack.parent()));
    assert_eq!(list["connectors"], serde_json::json!([]), "{list}");
    let (status, net) = stack.get(&format!("/v1/projects/{PROJECT}/networks/tf-net"));
    assert_eq!(status, 404, "{net}");
}
