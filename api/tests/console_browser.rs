//! The web console in a real browser: Debian's Chromium, driven by playwright-core
//! (console/tests/browser.mjs), against a real API process, PostgreSQL and three node
//! agents running redis-server. The script signs in with a project token, sees a field
//! error for a bad size, pages through the list, creates an HA instance through the form and watches it become
//! READY, scales it, fails it over and sees the marker on the charts, and deletes it;
//! its screenshots of every page land in target/console-screenshots/.
//!
//! It needs `node`, `console/node_modules` (`npm ci` in console/; scripts/test.sh runs
//! it) and Chromium (`/usr/bin/chromium`, or `CHROMIUM`). Under CI (`CI=true`) a
//! missing one fails the test; elsewhere it says why and returns.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cacheplane_testkit::json::str_field;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::{TestDb, GIB};
use serde_json::json;

const PROJECT: &str = "console-project";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser and node, or why the test cannot run (a panic under CI).
fn tools() -> Option<(PathBuf, String)> {
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = repo().join("console/node_modules/playwright-core");
    let mut missing = Vec::new();
    if !chromium.is_file() {
        missing.push(format!(
            "Chromium at {} (apt-get install chromium)",
            chromium.display()
        ));
    }
    if !node_ok {
        missing.push("node (apt-get install nodejs npm)".to_string());
    }
    if !modules.is_dir() {
        missing.push("console/node_modules (npm ci in console/)".to_string());
    }
    if missing.is_empty() {
        return Some((chromium, "node".to_string()));
    }
    let why = format!("the console's browser test needs {}", missing.join(", "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// Where the screenshots go: `target/console-screenshots` beside the test binary's
/// `target/debug`.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map_or_else(|| repo().join("target"), Path::to_path_buf);
    target.join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_runs_an_instance_through_its_life_in_a_browser() {
    let Some((chromium, node)) = tools() else {
        return;
    };
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (status, t) = api
        .post(
            "/v1/tokens",
            json!({"project": PROJECT, "description": "console browser test"}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let token = str_field(&t, "token").to_string();
    // A second instance, so that the list has two pages of one.
    let parent = format!("/v1/projects/{PROJECT}/locations/local");
    let basic = json!({"tier": "BASIC", "memorySizeGb": 1, "labels": {"env": "dev"}});
    cacheplane_testkit::api::create_ready(&api, &parent, "basic-cache", basic).await;

    let shots = screenshots_dir();
    let script = repo().join("console/tests/browser.mjs");
    let mut cmd = tokio::process::Command::new(node);
    cmd.arg(&script)
        .current_dir(repo().join("console"))
        .env("CONSOLE_URL", format!("{}/console/", api.base))
        .env("CONSOLE_TOKEN", &token)
        .env("CONSOLE_PROJECT", PROJECT)
        .env("CONSOLE_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("the browser script finished within 10 minutes")
        .expect("running node console/tests/browser.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser script failed ({}); screenshots in {}:\n{stdout}\n{stderr}",
        out.status,
        shots.display()
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "the token was printed"
    );

    // What the browser did, as the API saw it: one failover, and the instance gone.
    let (status, body) = api.get(&format!("{parent}/instances/web-cache")).await;
    assert_eq!(status, 404, "{body}");
    let (_, ops) = api.get(&format!("{parent}/operations")).await;
    let verbs: Vec<&str> = ops["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["done"] == true && o["error"].is_null())
        .filter_map(|o| o["metadata"]["verb"].as_str())
        .collect();
    for verb in ["create", "update", "failover", "delete"] {
        assert!(verbs.contains(&verb), "no {verb} done in {ops}");
    }
    for page in [
        "01-sign-in",
        "02-create-field-error",
        "04-instance",
        "07-failover-marker",
        "10-instances",
        "11-networks",
        "12-catalog",
        "14-deleted",
    ] {
        let png = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&png).map_or(0, |m| m.len());
        assert!(size > 5000, "{} is {size} bytes", png.display());
    }
}
