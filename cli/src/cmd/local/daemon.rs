//! One background part of the stack (the API or an agent) as `local up` keeps it: reused
//! while it runs as wanted, restarted when its binary was rebuilt or its arguments
//! changed, and started with its secrets in its environment (never its arguments, which
//! any local user can read) and its pid recorded.

use std::fs;
use std::path::{Path, PathBuf};

use super::layout::write_line;
use super::{process, say};
use crate::error::Result;

/// A part of the stack `local up` runs in the background.
pub struct Daemon<'a> {
    /// How progress lines name it: `cacheplane-api`, `agent local-a-1`.
    pub name: String,
    /// Its binary.
    pub bin: &'a Path,
    /// Its arguments (the token is never one of them).
    pub args: Vec<String>,
    /// Its pid file.
    pub pid_file: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Its secrets, as environment variables (name, value).
    pub secrets: Vec<(&'static str, String)>,
}

impl Daemon<'_> {
    /// Keeps `running` (the pid its pid file names, if that process is this part) when it
    /// runs as wanted and answers its pid; otherwise stops it and answers `None`.
    pub async fn reuse(&self, running: Option<i32>) -> Option<i32> {
        let pid = running?;
        match self.restart_reason(pid) {
            None => {
                say(&format!("{} already runs (pid {pid})", self.name));
                Some(pid)
            }
            Some(why) => {
                say(&format!("restarting {}: {why}", self.name));
                process::stop(&self.name, pid).await;
                None
            }
        }
    }

    /// Why the running `pid` must be restarted, if it must: its binary is newer than its
    /// pid file, or it runs with other arguments than wanted.
    fn restart_reason(&self, pid: i32) -> Option<&'static str> {
        let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(b), Some(p)) = (mtime(self.bin), mtime(&self.pid_file)) {
            if b > p {
                return Some("its binary was rebuilt");
            }
        }
        let mut want = vec![self.bin.to_string_lossy().into_owned()];
        want.extend(self.args.iter().cloned());
        (process::argv(pid) != want).then_some("its settings changed")
    }

    /// Starts it in the background, `where_` saying where for the progress line (`on
    /// 127.0.0.1:8080`, `in zone local-a`), and records its pid.
    pub fn start(&self, where_: &str) -> Result<i32> {
        say(&format!(
            "starting {} {where_} (log: {})",
            self.name,
            self.log.display()
        ));
        let rust_log = rust_log();
        let mut env: Vec<(&str, &str)> =
            self.secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("RUST_LOG", &rust_log));
        let pid = process::spawn(self.bin, &self.args, &env, &self.log)?;
        write_line(&self.pid_file, &pid.to_string())?;
        Ok(pid)
    }
}

/// `RUST_LOG` for the processes: the caller's, else `info`.
fn rust_log() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".into())
}
