//! The local stack's `cacheplane-api`: starting it and waiting until it is ready.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;

use super::daemon::Daemon;
use super::layout::Layout;
use super::{port_free, process};
use crate::error::{Error, Result};

/// Keeps API replica `replica` (from 1) if it runs as wanted, else (re)starts it on
/// 127.0.0.1:`port` with `args`, the admin `token` and `database_url` (in its
/// environment); answers its pid.
pub async fn start_api(
    layout: &Layout,
    bin: &Path,
    replica: usize,
    port: u16,
    args: &[&str],
    token: &str,
    database_url: &str,
) -> Result<i32> {
    let api = Daemon {
        name: replica_name(replica),
        bin,
        args: args.iter().map(|s| s.to_string()).collect(),
        pid_file: layout.replica_file(replica, "pid"),
        log: layout.replica_file(replica, "log"),
        secrets: vec![
            ("CACHEPLANE_ADMIN_TOKEN", token.to_string()),
            ("DATABASE_URL", database_url.to_string()),
        ],
    };
    if let Some(pid) = api.reuse(layout.replica_pid_running(replica)).await {
        return Ok(pid);
    }
    if !port_free(port) {
        return Err(Error::Usage(format!(
            "port {port} (of API replica {replica}) is taken by another program; pass \
             --api-port PORT (the replicas take consecutive ports from it)"
        )));
    }
    api.start(&format!("on 127.0.0.1:{port}"))
}

/// How progress lines name API replica `r`: `cacheplane-api`, `cacheplane-api 2`.
pub fn replica_name(r: usize) -> String {
    match r {
        1 => "cacheplane-api".into(),
        _ => format!("cacheplane-api {r}"),
    }
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

/// Waits until API replica `replica` (process `pid`, at `api_url`) answers ready; fails
/// at once if it exits, and with a timeout past `deadline`.
pub async fn wait_ready(
    layout: &Layout,
    replica: usize,
    api_url: &str,
    pid: i32,
    deadline: Instant,
) -> Result<()> {
    let log = layout.replica_file(replica, "log");
    let name = replica_name(replica);
    loop {
        if api_ready(api_url).await {
            return Ok(());
        }
        if !process::running(pid) {
            return Err(anyhow!(
                "{name} exited during start-up (log: {}):\n{}",
                log.display(),
                process::tail(&log, 30)
            )
            .into());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "{name} is not ready at {api_url} in time (--timeout; log: {}):\n{}",
                log.display(),
                process::tail(&log, 30)
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
