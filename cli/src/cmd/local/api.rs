//! The local stack's `cacheplane-api`: starting it and waiting until it is ready.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::daemon::Daemon;
use super::layout::Layout;
use super::{port_free, process};
use crate::error::{Error, Result};

/// Keeps the API if it runs as wanted, else (re)starts it on 127.0.0.1:`port` with
/// `args`, the admin `token` and `database_url` (in its environment); answers its pid.
pub async fn start_api(
    layout: &Layout,
    bin: &Path,
    port: u16,
    args: &[&str],
    token: &str,
    database_url: &str,
) -> Result<i32> {
    let api = Daemon {
        name: "cacheplane-api".into(),
        bin,
        args: args.iter().map(|s| s.to_string()).collect(),
        pid_file: layout.api_file("pid"),
        log: layout.api_file("log"),
        secrets: vec![
            ("CACHEPLANE_ADMIN_TOKEN", token.to_string()),
            ("DATABASE_URL", database_url.to_string()),
        ],
    };
    if let Some(pid) = api.reuse(layout.api_pid_running()).await {
        return Ok(pid);
    }
    if !port_free(port) {
        return Err(Error::Usage(format!(
            "port {port} is taken by another program; pass --api-port PORT"
        )));
    }
    api.start(&format!("on 127.0.0.1:{port}"))
}

/// Whether `GET /readyz` answers 200.
pub async fn api_ready(api_url: &str) -> bool {
    let Ok(http) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    http.get(format!("{api_url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Waits until the API (process `pid`) answers ready; fails at once if it exits, and
/// with a timeout past `deadline`.
pub async fn wait_ready(layout: &Layout, api_url: &str, pid: i32, deadline: Instant) -> Result<()> {
    let log = layout.api_file("log");
    loop {
        if api_ready(api_url).await {
            return Ok(());
        }
        if !process::running(pid) {
            return Err(anyhow!(
                "cacheplane-api exited during start-up (log: {}):\n{}",
                log.display(),
                process::tail(&log, 30)
            )
            .into());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "cacheplane-api is not ready at {api_url} in time (--timeout; log: {}):\n{}",
                log.display(),
                process::tail(&log, 30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
