//! A private PostgreSQL cluster (`initdb`) in a directory of its own, started and stopped
//! with `pg_ctl`: the local stack's, and the throwaway clusters of the scripts and tests
//! (`cachectl local postgres`, which scripts/lib/pg.sh runs). It listens on 127.0.0.1
//! with password authentication (scram-sha-256) for the superuser `postgres` (so it may
//! create databases), whose generated password only the cluster's user reads
//! (`DIR/password`, mode 600); its Unix socket, in its own directory (mode 700), takes
//! only the cluster owner's own connections (peer). As root, the cluster is owned and
//! run by the `postgres` user (initdb and postgres refuse root). Clusters made before
//! passwords (trust) keep working: they have no password file.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use super::layout::write_private_line;
use super::token::random_hex;
use super::{process, say};
use crate::output::shell_quote;
use anyhow::Result;

/// The database the local stack's API uses.
pub const DATABASE: &str = "cacheplane";

/// How many free ports `start_on_free_port` tries before it gives up.
const PORT_ATTEMPTS: u32 = 5;

/// The URL of `database` in the cluster listening on 127.0.0.1:`port`, as its
/// superuser, with its `password` if it has one (hex digits: nothing to escape).
pub fn url(port: u16, database: &str, password: Option<&str>) -> String {
    match password {
        Some(pw) => format!("postgres://postgres:{pw}@127.0.0.1:{port}/{database}"),
        None => format!("postgres://postgres@127.0.0.1:{port}/{database}"),
    }
}

/// The file holding a cluster's superuser password, in its directory.
pub const PASSWORD_FILE: &str = "password";

/// Whether this process runs as root, so that the cluster must belong to `postgres`.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The directory holding `initdb` and `pg_ctl`: `$PG_BINDIR`, `pg_config --bindir`, the
/// newest `/usr/lib/postgresql/*/bin`, else the directory of `initdb` on PATH.
pub fn bindir() -> Result<PathBuf> {
    let has_tools = |d: &Path| {
        process::is_executable(&d.join("initdb")) && process::is_executable(&d.join("pg_ctl"))
    };
    if let Some(d) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        if has_tools(&d) {
            return Ok(d);
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&d) {
            return Ok(d);
        }
    }
    // /usr/lib/postgresql/15/bin, …/16/bin: the highest version wins.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_tools(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Ok(d);
    }
    if let Some(d) = process::find_on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf))
    {
        if has_tools(&d) {
            return Ok(d);
        }
    }
    Err(anyhow!(
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: \
         `apt-get install postgresql` (or set PG_BINDIR to their directory)"
    ))
}

/// Whether the `postgres` user can reach `dir` (as root, the cluster must be somewhere
/// it can get to).
pub fn postgres_can_reach(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The postmaster running the cluster in `dir/data`, from its `postmaster.pid`: its pid
/// and port.
pub fn running(dir: &Path) -> Option<(i32, u16)> {
    let text = fs::read_to_string(dir.join("data").join("postmaster.pid")).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let pid: i32 = lines.first()?.trim().parse().ok()?;
    let port: u16 = lines.get(3)?.trim().parse().ok()?;
    let ours = process::argv(pid)
        .first()
        .is_some_and(|a| a.contains("postgres") || a.contains("postmaster"));
    (process::running(pid) && ours).then_some((pid, port))
}

/// A cluster in `dir` (its data in `dir/data`, its log `dir/postgres.log`).
pub struct Cluster {
    /// The directory.
    pub dir: PathBuf,
    bindir: PathBuf,
    /// Root runs everything through `runuser -u postgres`.
    as_postgres: bool,
}

impl Cluster {
    /// The cluster in `dir`, run with the programs of `bindir()`.
    pub fn new(dir: &Path) -> Result<Cluster> {
        Ok(Cluster {
            dir: dir.to_path_buf(),
            bindir: bindir()?,
            as_postgres: is_root(),
        })
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The superuser's password; `None` for a cluster made before passwords (trust).
    pub fn password(&self) -> Option<String> {
        fs::read_to_string(self.dir.join(PASSWORD_FILE))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .filter(|p| !p.is_empty())
    }

    /// The URL of `database` in this cluster running on `port`.
    pub fn url(&self, port: u16, database: &str) -> String {
        url(port, database, self.password().as_deref())
    }

    /// A command run as the cluster's owner, in its directory.
    fn owner_command(&self, program: &str) -> Command {
        let prog = self.bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(prog);
            c
        } else {
            Command::new(prog)
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    /// Creates the directory (mode 700; owned by `postgres` as root) and, unless it holds
    /// one already, a cluster in it (saying so). Answers whether it ran initdb.
    pub fn init(&self) -> Result<bool> {
        if self.as_postgres {
            if process::find_on_path("runuser").is_none() {
                bail!("running as root needs runuser (util-linux) to run PostgreSQL as postgres");
            }
            if nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .is_none()
            {
                bail!(
                    "running as root, but there is no 'postgres' user to run PostgreSQL \
                     (`apt-get install postgresql` creates it)"
                );
            }
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 700 {}", self.dir.display()))?;
        if self.as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| anyhow!("no 'postgres' user"))?;
            std::os::unix::fs::chown(&self.dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("chown postgres {}", self.dir.display()))?;
            if !postgres_can_reach(&self.dir) {
                bail!(
                    "the postgres user, which runs PostgreSQL as root, cannot reach {}: a \
                     directory above it is closed to others; put the cluster elsewhere \
                     (e.g. a directory of its own right under /tmp)",
                    self.dir.display()
                );
            }
        }
        if self.data().join("PG_VERSION").exists() {
            return Ok(false);
        }
        let log = self.dir.join("initdb.log");
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let password = random_hex()?;
        write_private_line(&self.dir.join(PASSWORD_FILE), &password)?;
        // initdb reads the password from a file its user (postgres, as root) can read;
        // removed as soon as it ran.
        let pwfile = self.dir.join(".initdb-pwfile");
        write_private_line(&pwfile, &password)?;
        if self.as_postgres {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| anyhow!("no 'postgres' user"))?;
            std::os::unix::fs::chown(&pwfile, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .with_context(|| format!("chown postgres {}", pwfile.display()))?;
        }
        let status = self
            .owner_command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["--auth-host=scram-sha-256", "--auth-local=peer"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .stdout(out.try_clone().context("duplicating a file handle")?)
            .stderr(out)
            .status()
            .context("running initdb");
        let _ = fs::remove_file(&pwfile);
        let status = status?;
        if !status.success() {
            bail!(
                "initdb failed (log: {}):\n{}",
                log.display(),
                process::tail(&log, 20)
            );
        }
        say(&format!(
            "initialized a PostgreSQL cluster in {}",
            self.data().display()
        ));
        Ok(true)
    }

    /// Starts the cluster on 127.0.0.1:`port` (its socket in its directory) and waits
    /// until it accepts connections.
    pub fn start(&self, port: u16) -> Result<()> {
        say(&format!(
            "starting PostgreSQL on 127.0.0.1:{port} (log: {})",
            self.log().display()
        ));
        // pg_ctl hands -o to a shell: quote the directory.
        let socket_dir = shell_quote(&self.dir.to_string_lossy());
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={socket_dir} \
             -c fsync=off -c max_connections=300"
        );
        let out = self
            .owner_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .context("running pg_ctl start")?;
        if !out.status.success() {
            bail!(
                "PostgreSQL did not start: {}\n{} (log: {})",
                output_text(&out),
                process::tail(&self.log(), 20),
                self.log().display()
            );
        }
        Ok(())
    }

    /// Starts the cluster on a port nobody listens on, trying another when a program
    /// takes it first; answers the port.
    pub fn start_on_free_port(&self) -> Result<u16> {
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port()?;
            let err = match self.start(port) {
                Ok(()) => return Ok(port),
                Err(e) => e,
            };
            let log = process::tail(&self.log(), 10);
            if !(log.contains("could not bind") || log.contains("Address already in use")) {
                return Err(err);
            }
            say(&format!(
                "port {port} was taken; trying another ({attempt}/{PORT_ATTEMPTS})"
            ));
        }
        bail!(
            "PostgreSQL found no free port in {PORT_ATTEMPTS} attempts (log: {})",
            self.log().display()
        )
    }

    /// Fast shutdown (open connections are closed), waiting until it is down.
    pub fn stop(&self) -> Result<()> {
        let out = self
            .owner_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "fast", "-w", "-t", "60"])
            .output()
            .context("running pg_ctl stop")?;
        if !out.status.success() {
            bail!("pg_ctl stop failed: {}", output_text(&out));
        }
        Ok(())
    }

    /// Runs `sql` in `database` of the cluster on `port` as its superuser; answers the
    /// output (unaligned, tuples only).
    fn psql(&self, port: u16, database: &str, sql: &str) -> Result<String> {
        let psql = Some(self.bindir.join("psql"))
            .filter(|p| process::is_executable(p))
            .unwrap_or_else(|| PathBuf::from("psql"));
        let out = Command::new(&psql)
            .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &port.to_string(), "-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .envs(self.password().map(|pw| ("PGPASSWORD", pw)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", psql.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(anyhow!("psql: {}", output_text(&out)))
        }
    }

    /// Creates `database` unless it exists (retrying while the server warms up).
    pub fn ensure_database(&self, port: u16, database: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let exists = loop {
            let sql = format!("select 1 from pg_database where datname = '{database}'");
            match self.psql(port, "postgres", &sql) {
                Ok(v) => break v == "1",
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        };
        if !exists {
            say(&format!("creating database {database}"));
            self.psql(port, "postgres", &format!("create database \"{database}\""))?;
        }
        Ok(())
    }
}

/// A port on 127.0.0.1 nobody listens on right now (the system's pick).
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

/// A command's stderr, else its stdout, on one block.
fn output_text(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let text = if err.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        err
    };
    text.trim().to_string()
}
