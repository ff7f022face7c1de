//! Long-running operations: every create, update and delete answers with one, and the
//! provider waits for it with the API's long-poll (`POST …/operations/ID/wait`), up to
//! the resource's timeout.

use std::time::{Duration, Instant};

use cacheplane_types::{Operation, Status};
use reqwest::Method;

use crate::client::{ApiError, Client};

/// How long one long-poll asks the server to wait (the server caps it at its maximum).
const POLL: Duration = Duration::from_secs(30);

/// Why waiting for an operation did not end in success.
#[derive(Debug)]
pub enum WaitError {
    /// The operation finished with this error.
    Failed(Status),
    /// It was still running when the timeout passed (it goes on on the server).
    Timeout(String),
    /// The wait itself failed.
    Api(ApiError),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::Failed(s) => write!(f, "{} {}: {}", s.code, s.status, s.message),
            WaitError::Timeout(m) => f.write_str(m),
            WaitError::Api(e) => e.fmt(f),
        }
    }
}

/// Waits until `op` is done, for at most `timeout`; the finished operation, or why not.
pub async fn wait(
    client: &Client,
    mut op: Operation,
    timeout: Duration,
) -> Result<Operation, WaitError> {
    let deadline = Instant::now() + timeout;
    loop {
        if op.done {
            return match op.error {
                Some(status) => Err(WaitError::Failed(status)),
                None => Ok(op),
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WaitError::Timeout(format!(
                "operation {} ({} {}) is still running after {}s (the `timeouts` block \
                 sets how long to wait); it goes on in the API",
                op.name,
                op.metadata.verb,
                op.metadata.target,
                timeout.as_secs()
            )));
        }
        let step = POLL.min(left).max(Duration::from_millis(1));
        let step_ms = format!("{}ms", step.as_millis());
        let mut path: Vec<&str> = op.name.split('/').collect();
        path.push("wait");
        op = client
            .call(
                Method::POST,
                &path,
                &[("timeout", step_ms.as_str())],
                None::<&()>,
                step + Duration::from_secs(30),
            )
            .await
            .map_err(WaitError::Api)?;
    }
}
