//! Where the local stack keeps its files: the data directory, PostgreSQL's directory,
//! each part's pid and log files, and the small files (`api.listen`, `pg.dir`) that tell
//! a later `cachectl local …` what the last `up` did.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{postgres, process, Dirs};
use crate::error::{Error, Result};

/// The zones of region `local`; the agent of zone Z is host `Z-1`.
pub const ZONES: [&str; 3] = ["local-a", "local-b", "local-c"];
/// The PostgreSQL directory as root when the `postgres` user cannot reach the data dir
/// (root's home is usually closed to it).
const ROOT_PG_DIR: &str = "/var/lib/cacheplane/pg";

/// The host id of the agent in `zone`.
pub fn host_of(zone: &str) -> String {
    format!("{zone}-1")
}

/// The files of one local stack.
pub struct Layout {
    /// The data directory.
    pub data: PathBuf,
    /// PostgreSQL's directory (the cluster in `pg/data`).
    pub pg: PathBuf,
}

impl Layout {
    /// The directories from the flags, the recorded PostgreSQL directory, or the
    /// defaults. With `create`, makes the data directory (readable by its owner only;
    /// as root passable by others, so that the postgres user can reach DATA_DIR/pg).
    pub fn resolve(dirs: &Dirs, create: bool) -> Result<Layout> {
        let data = match &dirs.data_dir {
            Some(d) => d.clone(),
            None => default_data_dir()?,
        };
        let data =
            std::path::absolute(&data).with_context(|| format!("resolving {}", data.display()))?;
        // A directory that is already there keeps its mode (it may be the user's own).
        if create && !data.exists() {
            fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
            let mode = if postgres::is_root() { 0o711 } else { 0o700 };
            fs::set_permissions(&data, fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {mode:o} {}", data.display()))?;
        }
        if create {
            fs::create_dir_all(data.join("agents"))
                .with_context(|| format!("creating {}", data.join("agents").display()))?;
        }
        let recorded = read_line(&data.join("pg.dir")).map(PathBuf::from);
        let pg = match (&dirs.pg_dir, recorded) {
            (Some(d), _) => {
                std::path::absolute(d).with_context(|| format!("resolving {}", d.display()))?
            }
            (None, Some(d)) => d,
            // A data dir that does not exist has no cluster anywhere.
            (None, None) if !data.exists() => data.join("pg"),
            (None, None) => {
                if postgres::is_root() && !postgres::postgres_can_reach(&data) {
                    PathBuf::from(ROOT_PG_DIR)
                } else {
                    data.join("pg")
                }
            }
        };
        Ok(Layout { data, pg })
    }

    /// The admin token (mode 600).
    pub fn token(&self) -> PathBuf {
        self.data.join("admin-token")
    }
    /// The API's `pid` or `log` file (of its first replica), or `listen`: the addresses
    /// its replicas listen on, separated by commas.
    pub fn api_file(&self, ext: &str) -> PathBuf {
        self.data.join(format!("api.{ext}"))
    }
    /// API replica `r`'s (from 1) `pid` or `log` file: `api.pid` for the first,
    /// `api-R.pid` for the others.
    pub fn replica_file(&self, r: usize, ext: &str) -> PathBuf {
        match r {
            1 => self.api_file(ext),
            _ => self.data.join(format!("api-{r}.{ext}")),
        }
    }
    /// The API replicas' URLs from the last `up`, comma-separated (`http://127.0.0.1:8080,…`).
    pub fn api_urls(&self) -> Option<String> {
        let listen = read_line(&self.api_file("listen"))?;
        let urls: Vec<String> = listen.split(',').map(|l| format!("http://{l}")).collect();
        Some(urls.join(","))
    }
    /// The file recording where PostgreSQL's directory is.
    pub fn pg_dir_record(&self) -> PathBuf {
        self.data.join("pg.dir")
    }
    /// HOST's agent's data directory (one `nodes/ID/` per engine).
    pub fn agent_dir(&self, host: &str) -> PathBuf {
        self.agents().join(host)
    }
    /// The demo instance's AUTH string (mode 600), which `local demo` writes.
    pub fn demo_auth(&self) -> PathBuf {
        self.data.join("demo-auth")
    }
    /// The agents' pid files, logs and data directories.
    pub fn agents(&self) -> PathBuf {
        self.data.join("agents")
    }
    /// HOST's agent's `pid` or `log` file.
    pub fn agent_file(&self, host: &str, ext: &str) -> PathBuf {
        self.agents().join(format!("{host}.{ext}"))
    }

    /// API replica `r`'s pid, if the process in its pid file runs and is an API.
    pub fn replica_pid_running(&self, r: usize) -> Option<i32> {
        process::live_pid(&self.replica_file(r, "pid"), |args| {
            args.iter().any(|a| a.contains("cacheplane-api"))
        })
    }

    /// The API replicas with a pid file (1, and any `api-R.pid`), in order; always 1.
    pub fn api_replicas(&self) -> Vec<usize> {
        let mut replicas = vec![1];
        for e in fs::read_dir(&self.data).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = name
                .strip_prefix("api-")
                .and_then(|n| n.strip_suffix(".pid"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(r) = r.filter(|r| *r > 1) {
                replicas.push(r);
            }
        }
        replicas.sort_unstable();
        replicas.dedup();
        replicas
    }

    /// The pid of HOST's agent, if the process in its pid file runs and is that agent.
    pub fn agent_pid_running(&self, host: &str) -> Option<i32> {
        let dir = self.agent_dir(host).to_string_lossy().into_owned();
        process::live_pid(&self.agent_file(host, "pid"), |args| {
            process::has_flag(args, "--host-id", host)
                && process::has_flag(args, "--data-dir", &dir)
        })
    }

    /// The hosts with an agent directory or pid file: the three of the stack, and any
    /// other a previous version left.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = ZONES.iter().map(|z| host_of(z)).collect();
        for e in fs::read_dir(self.agents()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let host = if e.path().is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".pid").map(str::to_string)
            };
            if let Some(h) = host.filter(|h| !hosts.contains(h)) {
                hosts.push(h);
            }
        }
        hosts
    }
}

/// `$XDG_DATA_HOME/cacheplane`, else `~/.local/share/cacheplane`.
fn default_data_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    match (non_empty("XDG_DATA_HOME"), non_empty("HOME")) {
        (Some(xdg), _) => Ok(PathBuf::from(xdg).join("cacheplane")),
        (None, Some(home)) => Ok(PathBuf::from(home).join(".local/share/cacheplane")),
        (None, None) => Err(Error::Usage(
            "cannot find the data directory: neither XDG_DATA_HOME nor HOME is set; pass \
             --data-dir DIR"
                .into(),
        )),
    }
}

/// The first line of a small file, trimmed; `None` when missing or empty.
pub fn read_line(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// Writes `line` and a newline to `path`.
pub fn write_line(path: &Path, line: &str) -> Result<()> {
    fs::write(path, format!("{line}\n")).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `line` and a newline to `path`, readable by its owner only (mode 600, also
/// when the file was there before with another mode): for secrets.
pub fn write_private_line(path: &Path, line: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_follows_xdg() {
        let dirs = Dirs {
            data_dir: Some(PathBuf::from("/nonexistent/cp")),
            pg_dir: Some(PathBuf::from("/nonexistent/pg")),
        };
        let l = Layout::resolve(&dirs, false).unwrap();
        assert_eq!(l.data, Path::new("/nonexistent/cp"));
        assert_eq!(l.pg, Path::new("/nonexistent/pg"));
        assert_eq!(
            l.agent_file("local-a-1", "pid"),
            Path::new("/nonexistent/cp/agents/local-a-1.pid")
        );
        assert_eq!(l.hosts(), ["local-a-1", "local-b-1", "local-c-1"]);
        assert_eq!(
            l.replica_file(1, "log"),
            Path::new("/nonexistent/cp/api.log")
        );
        assert_eq!(
            l.replica_file(2, "pid"),
            Path::new("/nonexistent/cp/api-2.pid")
        );
        assert_eq!(l.api_replicas(), [1]);
    }

    #[test]
    fn private_files_stay_private() {
        let dir = std::env::temp_dir().join(format!("cachectl-private-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_line(&path, "new").unwrap();
        assert_eq!(read_line(&path).as_deref(), Some("new"));
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }
}
