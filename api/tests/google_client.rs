//! Google's published Memorystore client against the real stack: the API, PostgreSQL,
//! three agents and their redis-servers. `google-cloud-redis` (REST transport, a project
//! token as its bearer credentials) creates, gets, lists (also across regions), updates
//! with a field mask, fails over, reads the AUTH string of and deletes an instance, and
//! every result is checked (api/tests/google_client/client_test.py says what).
//!
//! The client runs in the Python of the venv that `scripts/google-client.sh install`
//! makes; scripts/test.sh exports its path as `CACHEPLANE_GOOGLE_CLIENT_PYTHON`. Without it
//! the test fails and says how to install it: it never passes untested.

use std::process::Stdio;
use std::time::Duration;

use cacheplane_testkit::json::str_field;
use cacheplane_testkit::stack::{start_api, three_agents};
use cacheplane_testkit::{TestDb, GIB};
use serde_json::json;

/// Where the test finds the venv's Python.
const PYTHON_VAR: &str = "CACHEPLANE_GOOGLE_CLIENT_PYTHON";
/// The project the client works in.
const PROJECT: &str = "gproj";
/// How long the whole client run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The venv's Python, or a failure that says how to get it.
fn python() -> String {
    let how = format!(
        "install Google's client with `export {PYTHON_VAR}=$(bash scripts/google-client.sh install)` \
         (scripts/test.sh does it)"
    );
    let python =
        std::env::var(PYTHON_VAR).unwrap_or_else(|_| panic!("{PYTHON_VAR} is not set: {how}"));
    assert!(
        std::path::Path::new(&python).is_file(),
        "{PYTHON_VAR}={python} does not exist: {how}"
    );
    python
}

#[tokio::test]
async fn googles_memorystore_client_manages_an_instance() {
    let python = python();
    let db = TestDb::new().await;
    let (api, _net) = start_api(&db, &[]).await;
    let _agents = three_agents(&api, 8 * GIB).await;
    let (status, token) = api
        .post(
            "/v1/tokens",
            json!({"project": PROJECT, "description": "google client"}),
        )
        .await;
    assert_eq!(status, 200, "{token}");
    let token = str_field(&token, "token");

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/google_client/client_test.py"
    );
    let run = tokio::process::Command::new(&python)
        .arg(script)
        // The token goes through the environment, never the command line.
        .env("CACHEPLANE_API_URL", &api.base)
        .env("CACHEPLANE_TOKEN", token)
        .env("CACHEPLANE_PROJECT", PROJECT)
        .env("CACHEPLANE_REGION", "local")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the client ran longer than {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the Google client's run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("every check passed"),
        "the run ended early:\n{stdout}"
    );
}
