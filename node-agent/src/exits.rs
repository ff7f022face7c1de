//! Learning of an engine's exit as it happens. Engines are daemonized, so they are not
//! the agent's children (and adopted ones never were): instead the agent holds one idle
//! connection per running engine. The kernel closes an exiting process's sockets, so the
//! connection reads EOF the moment the engine dies; the agent then checks that the pid
//! is gone and wakes the reconciler, which heartbeats at once (failover starts within
//! milliseconds of a crash instead of on the next pass). A frozen engine (SIGSTOP, a
//! long command) keeps the connection open and is not taken for dead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use cacheplane_types::NodeSpec;

use crate::redis::{acl, local, process, NodeDir};

/// How long after EOF the process may still be seen (its sockets close just before it
/// becomes a zombie).
const GONE_WITHIN: Duration = Duration::from_millis(200);
/// How often the pid is looked at meanwhile.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// The watch on one engine process; dropping it stops the watch.
#[derive(Debug)]
pub struct ExitWatch {
    pid: u32,
    task: AbortHandle,
}

impl ExitWatch {
    /// Watches engine `pid` of the node in `dir` (running `spec`); `exited` is notified
    /// when it exits. A watch that cannot connect, or whose connection the engine drops
    /// while it keeps running, just ends: the next pass starts another.
    pub fn spawn(pid: u32, dir: NodeDir, spec: NodeSpec, exited: Arc<Notify>) -> Self {
        let task = tokio::spawn(async move {
            let Ok(mut c) = local::connect(&dir, &spec, &acl::logins(&[&spec])).await else {
                return;
            };
            c.closed().await;
            let deadline = Instant::now() + GONE_WITHIN;
            loop {
                if !process::is_running(pid) {
                    tracing::warn!(pid, engine = %format!("{}:{}", spec.address, spec.port), "engine exited");
                    exited.notify_one();
                    return;
                }
                if Instant::now() >= deadline {
                    tracing::debug!(pid, "engine closed the watch connection but runs");
                    return;
                }
                tokio::time::sleep(LOOK_EVERY).await;
            }
        })
        .abort_handle();
        ExitWatch { pid, task }
    }

    /// Whether it still watches engine `pid`.
    pub fn watches(&self, pid: u32) -> bool {
        self.pid == pid && !self.task.is_finished()
    }
}

impl Drop for ExitWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often [`PidWatch`] looks at its process.
const PID_WATCH_EVERY: Duration = Duration::from_millis(100);

/// A watch on an engine process by its pid alone, for engines the agent keeps no
/// connection to (memcached closes idle connections when told to): `/proc` is looked at
/// every 100 ms, and `exited` notified when the process is gone. Dropping it stops the
/// watch.
#[derive(Debug)]
pub struct PidWatch {
    pid: u32,
    task: AbortHandle,
}

impl PidWatch {
    /// Watches process `pid`.
    pub fn spawn(pid: u32, exited: Arc<Notify>) -> Self {
        let task = tokio::spawn(async move {
            while crate::pids::is_running(pid) {
                tokio::time::sleep(PID_WATCH_EVERY).await;
            }
            tracing::warn!(pid, "engine exited");
            exited.notify_one();
        })
        .abort_handle();
        PidWatch { pid, task }
    }

    /// Whether it still watches process `pid`.
    pub fn watches(&self, pid: u32) -> bool {
        self.pid == pid && !self.task.is_finished()
    }
}

impl Drop for PidWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
