//! `cachectl local …`: the embedded default stack on this machine. A private PostgreSQL
//! cluster, `cacheplane-api` and three `cacheplane-node-agent`s (zones local-a, local-b
//! and local-c of region `local`, loopback mode), each a background process with a pid
//! file and a log file in the stack's data directory:
//!
//! ```text
//! DATA_DIR                  $XDG_DATA_HOME/cacheplane, else ~/.local/share/cacheplane
//!   admin-token             the API's admin token (generated once, mode 600)
//!   api.pid api.log api.listen
//!   pg.dir                  where the PostgreSQL cluster is (next line)
//!   agents/HOST.pid HOST.log
//!   agents/HOST/            the agent's data dir: nodes/ID/ per redis-server
//! PG_DIR                    DATA_DIR/pg; as root, when the postgres user cannot reach
//!                           DATA_DIR, /var/lib/cacheplane/pg
//!   data/ postgres.log initdb.log
//! ```
//!
//! The same layout and ports as the earlier scripts/dev.sh, which now drives this.

mod postgres;
mod process;
mod status;

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use cacheplane_types::{HostState, ListHostsResponse};
use chrono::{DateTime, Utc};

use super::parse_duration;
use crate::client::Client;
use crate::config::FileConfig;
use crate::error::{Error, Result};
use crate::output::{emit, Format};

use status::Status;

/// The zones of region `local`; the agent of zone Z is host `Z-1`.
const ZONES: [&str; 3] = ["local-a", "local-b", "local-c"];
/// The project `local up` configures when none is set (the one scripts/dev.sh uses).
const DEFAULT_PROJECT: &str = "demo-project";
/// The local stack's only region.
const REGION: &str = "local";
/// The PostgreSQL directory as root when the `postgres` user cannot reach the data dir
/// (root's home is usually closed to it).
const ROOT_PG_DIR: &str = "/var/lib/cacheplane/pg";

/// The local stack: PostgreSQL, the API and three node agents on this machine.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Starts the local stack, or reuses what already runs, waits until the API is ready
    /// and its three hosts are UP, and points cachectl at it.
    ///
    /// Initializes a private PostgreSQL cluster the first time (initdb; as root it runs as
    /// the postgres user), generates the admin token once (mode 600; handed to the API
    /// and the agents through their environment, never a command line), then starts
    /// cacheplane-api and the agents local-a-1, local-b-1 and local-c-1 (found next to
    /// cachectl or on PATH) in the background, each with its log file. A part that runs
    /// is kept unless its binary was rebuilt or its settings changed. Finally writes the
    /// API URL, the admin token, a project (demo-project unless one is set) and region
    /// `local` to the configuration file, and shows what runs.
    ///
    /// Needs PostgreSQL's server programs (initdb, pg_ctl) and redis-server; root is not
    /// needed.
    #[command(after_help = "Examples:\n  \
        cachectl local up\n  \
        cachectl local up --api-port 8081 --pg-port 54330\n  \
        cachectl local up --format json | jq '.parts[] | {name, pid}'\n  \
        cachectl local up && cachectl instances create my-cache --tier standard-ha --replica-count 2")]
    Up(UpArgs),
    /// Stops the local stack: the agents, the redis-servers they started, the API and
    /// PostgreSQL, leaving nothing running. The caches keep no data on disk; PostgreSQL's
    /// data stays for the next `local up`.
    #[command(after_help = "Examples:\n  \
        cachectl local down")]
    Down(Dirs),
    /// Shows each part of the local stack: running or stopped, pid, address, health
    /// (API ready, hosts UP, redis-servers) and log file. Exits 0 either way.
    #[command(after_help = "Examples:\n  \
        cachectl local status\n  \
        cachectl local status --format json | jq .apiReady")]
    Status(Dirs),
}

/// Where the local stack keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub struct Dirs {
    /// The stack's data directory [default: $XDG_DATA_HOME/cacheplane, else
    /// ~/.local/share/cacheplane].
    #[arg(long, env = "CACHECTL_LOCAL_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL's directory (the cluster in DIR/data) [default: the one used last, else
    /// DATA_DIR/pg; as root, when the postgres user cannot reach DATA_DIR,
    /// /var/lib/cacheplane/pg].
    #[arg(long, env = "CACHECTL_LOCAL_PG_DIR", value_name = "DIR")]
    pg_dir: Option<PathBuf>,
}

/// `local up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    dirs: Dirs,
    /// PostgreSQL's port on 127.0.0.1 (a cluster that already runs keeps its port).
    #[arg(long, env = "CACHECTL_LOCAL_PG_PORT", default_value_t = 54329)]
    pg_port: u16,
    /// The API's port on 127.0.0.1.
    #[arg(long, env = "CACHECTL_LOCAL_API_PORT", default_value_t = 8080)]
    api_port: u16,
    /// The address space each new project's default network takes a /16 of (the API's
    /// --default-network-supernet); caches get addresses in it, on loopback.
    #[arg(
        long,
        env = "CACHECTL_LOCAL_SUPERNET",
        default_value = "127.64.0.0/10",
        value_parser = parse_supernet
    )]
    supernet: String,
    /// The cacheplane-api binary [default: next to cachectl, else on PATH].
    #[arg(long, env = "CACHECTL_LOCAL_API_BIN", value_name = "PATH")]
    api_bin: Option<PathBuf>,
    /// The cacheplane-node-agent binary [default: next to cachectl, else on PATH].
    #[arg(long, env = "CACHECTL_LOCAL_AGENT_BIN", value_name = "PATH")]
    agent_bin: Option<PathBuf>,
    /// How long to wait for the API to be ready and the hosts UP (exit 4 past it).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
}

/// The global settings `local` uses.
pub struct Globals {
    /// The configuration file `local up` writes.
    pub config_path: PathBuf,
    /// `--project` / `CACHECTL_PROJECT`.
    pub project: Option<String>,
    /// `--region` / `CACHECTL_REGION`.
    pub region: Option<String>,
    /// `--format`.
    pub format: Format,
}

pub async fn run(cmd: Command, g: Globals) -> Result<()> {
    match cmd {
        Command::Up(args) => up(args, &g).await,
        Command::Down(dirs) => {
            let layout = Layout::resolve(&dirs, false)?;
            down(&layout).await?;
            let status = Status::collect(&layout).await;
            emit(g.format, &status, |s| {
                format!("{}\n\nThe local stack is stopped.", s.table())
            })
        }
        Command::Status(dirs) => {
            let layout = Layout::resolve(&dirs, false)?;
            let status = Status::collect(&layout).await;
            emit(g.format, &status, |s| {
                format!("{}\n\n{}", s.table(), s.summary())
            })
        }
    }
}

/// A progress line (on stderr, so that stdout stays the result).
pub(crate) fn say(msg: &str) {
    eprintln!("{msg}");
}

fn parse_supernet(s: &str) -> Result<String, String> {
    let bad = || format!("'{s}' is not an IPv4 CIDR such as 127.64.0.0/10");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    addr.parse::<Ipv4Addr>().map_err(|_| bad())?;
    match len.parse::<u8>() {
        Ok(n) if n <= 16 => Ok(s.to_string()),
        Ok(_) => Err(format!(
            "'{s}': the supernet must hold at least one /16 (a prefix of 16 or less)"
        )),
        Err(_) => Err(bad()),
    }
}

// ---------------------------------------------------------------------------------------
// where things are

/// The files of one local stack.
struct Layout {
    data: PathBuf,
    pg: PathBuf,
}

impl Layout {
    /// The directories from the flags, the recorded PostgreSQL directory, or the
    /// defaults. With `create`, makes the data directory (readable by its owner only;
    /// as root passable by others, so that the postgres user can reach DATA_DIR/pg).
    fn resolve(dirs: &Dirs, create: bool) -> Result<Layout> {
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

    fn token(&self) -> PathBuf {
        self.data.join("admin-token")
    }
    fn api_pid(&self) -> PathBuf {
        self.data.join("api.pid")
    }
    fn api_log(&self) -> PathBuf {
        self.data.join("api.log")
    }
    fn api_listen(&self) -> PathBuf {
        self.data.join("api.listen")
    }
    fn agents(&self) -> PathBuf {
        self.data.join("agents")
    }
    fn agent_dir(&self, host: &str) -> PathBuf {
        self.agents().join(host)
    }
    fn agent_file(&self, host: &str, ext: &str) -> PathBuf {
        self.agents().join(format!("{host}.{ext}"))
    }

    /// The API's pid, if the process in api.pid runs and is an API.
    fn api_pid_running(&self) -> Option<i32> {
        process::live_pid(&self.api_pid(), |args| {
            args.iter().any(|a| a.contains("cacheplane-api"))
        })
    }

    /// The pid of HOST's agent, if the process in its pid file runs and is that agent.
    fn agent_pid_running(&self, host: &str) -> Option<i32> {
        let dir = self.agent_dir(host).to_string_lossy().into_owned();
        process::live_pid(&self.agent_file(host, "pid"), |args| {
            process::has_flag(args, "--host-id", host)
                && process::has_flag(args, "--data-dir", &dir)
        })
    }

    /// The hosts with an agent directory or pid file: the three of the stack, and any
    /// other a previous version left.
    fn hosts(&self) -> Vec<String> {
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

fn host_of(zone: &str) -> String {
    format!("{zone}-1")
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
fn read_line(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

fn write_line(path: &Path, line: &str) -> Result<()> {
    fs::write(path, format!("{line}\n")).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// up

async fn up(args: UpArgs, g: &Globals) -> Result<()> {
    let api_bin = find_binary(args.api_bin.as_deref(), "cacheplane-api", "--api-bin")?;
    let agent_bin = find_binary(
        args.agent_bin.as_deref(),
        "cacheplane-node-agent",
        "--agent-bin",
    )?;
    if std::env::var_os("CACHEPLANE_REDIS_SERVER").is_none()
        && process::find_on_path("redis-server").is_none()
    {
        return Err(anyhow!(
            "redis-server is not installed (the agents run it): `apt-get install redis-server`"
        )
        .into());
    }
    let layout = Layout::resolve(&args.dirs, true)?;
    let deadline = Instant::now() + args.timeout;

    let pg_port = start_postgres(&layout, args.pg_port)?;
    let token = ensure_token(&layout.token())?;

    let listen = format!("127.0.0.1:{}", args.api_port);
    let api_url = format!("http://{listen}");
    let database_url = format!(
        "postgres://postgres@127.0.0.1:{pg_port}/{}",
        postgres::DATABASE
    );
    let api_pid = start_api(
        &layout,
        &api_bin,
        args.api_port,
        &[
            "--database-url",
            &database_url,
            "--listen",
            &listen,
            "--default-network-supernet",
            &args.supernet,
        ],
        &token,
    )
    .await?;
    write_line(&layout.api_listen(), &listen)?;
    wait_ready(&layout, &api_url, api_pid, deadline).await?;

    // Heartbeats from before this point may come from agents since replaced.
    let since = Utc::now();
    let mut agents = Vec::new();
    for zone in ZONES {
        let pid = start_agent(&layout, &agent_bin, zone, &api_url, &token).await?;
        agents.push((host_of(zone), pid));
    }
    let client = Client::new(&api_url, Some(token.clone()))?;
    wait_hosts_up(&layout, &client, &agents, since, deadline).await?;

    let project = write_config(g, &api_url, &token)?;
    let status = Status::collect(&layout).await;
    let config_path = g.config_path.display().to_string();
    emit(g.format, &status, |s| {
        format!(
            "{}\n\n{}\ncachectl is set up for it in {config_path} (project {project}, region \
             {REGION}):\n  \
             cachectl instances create my-cache --tier standard-ha --size 1 --replica-count 2\n  \
             cachectl local status\n  \
             cachectl local down",
            s.table(),
            s.summary()
        )
    })
}

/// The binary: the flag's, else next to cachectl, else on PATH.
fn find_binary(explicit: Option<&Path>, name: &str, flag: &str) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !process::is_executable(p) {
            return Err(Error::Usage(format!(
                "{flag} {}: not an executable file",
                p.display()
            )));
        }
        return Ok(std::path::absolute(p).context("resolving a path")?);
    }
    process::find_sibling_or_on_path(name).ok_or_else(|| {
        anyhow!(
            "cannot find {name} next to cachectl or on PATH: build it (`cargo build --release \
             -p {name}`) or pass {flag} PATH"
        )
        .into()
    })
}

/// Whether nothing listens on 127.0.0.1:`port` (binding it works).
fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Initializes (once) and starts (unless it runs) the cluster; answers its port.
fn start_postgres(layout: &Layout, port: u16) -> Result<u16> {
    let cluster = postgres::Cluster::new(&layout.pg)?;
    if layout.pg != layout.data.join("pg") {
        say(&format!("PostgreSQL directory: {}", layout.pg.display()));
    }
    if cluster.init()? {
        say(&format!(
            "initialized a PostgreSQL cluster in {}",
            layout.pg.join("data").display()
        ));
    }
    write_line(&layout.data.join("pg.dir"), &layout.pg.to_string_lossy())?;
    let port = match postgres::running(&layout.pg) {
        Some((pid, running_port)) => {
            if running_port != port {
                say(&format!(
                    "PostgreSQL already runs on port {running_port} (not {port}); using it"
                ));
            } else {
                say(&format!("PostgreSQL already runs (pid {pid})"));
            }
            running_port
        }
        None => {
            if !port_free(port) {
                return Err(Error::Usage(format!(
                    "port {port} is taken by another program; pass --pg-port PORT"
                )));
            }
            say(&format!(
                "starting PostgreSQL on 127.0.0.1:{port} (log: {})",
                cluster.log().display()
            ));
            cluster.start(port)?;
            port
        }
    };
    cluster.ensure_database(port)?;
    Ok(port)
}

/// The admin token: read from `path`, or generated (32 random bytes, hex) and written
/// with mode 600 the first time.
fn ensure_token(path: &Path) -> Result<String> {
    if let Some(t) = read_line(path) {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
        return Ok(t);
    }
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(
        &mut fs::File::open("/dev/urandom").context("opening /dev/urandom")?,
        &mut bytes,
    )
    .context("reading /dev/urandom")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    say(&format!("generated the admin token ({})", path.display()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{token}").with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Why a running process must be restarted, if it must: its binary is newer than its
/// pid file, or it runs with other arguments than `want`.
fn restart_reason(pid: i32, pid_file: &Path, bin: &Path, want: &[String]) -> Option<&'static str> {
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(b), Some(p)) = (mtime(bin), mtime(pid_file)) {
        if b > p {
            return Some("its binary was rebuilt");
        }
    }
    (process::argv(pid) != want).then_some("its settings changed")
}

/// Keeps the API if it runs as wanted, else (re)starts it; answers its pid.
async fn start_api(
    layout: &Layout,
    bin: &Path,
    port: u16,
    args: &[&str],
    token: &str,
) -> Result<i32> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut want = vec![bin.to_string_lossy().into_owned()];
    want.extend(args.iter().cloned());
    if let Some(pid) = layout.api_pid_running() {
        match restart_reason(pid, &layout.api_pid(), bin, &want) {
            None => {
                say(&format!("cacheplane-api already runs (pid {pid})"));
                return Ok(pid);
            }
            Some(why) => {
                say(&format!("restarting cacheplane-api: {why}"));
                process::stop("cacheplane-api", pid).await;
            }
        }
    }
    if !port_free(port) {
        return Err(Error::Usage(format!(
            "port {port} is taken by another program; pass --api-port PORT"
        )));
    }
    say(&format!(
        "starting cacheplane-api on 127.0.0.1:{port} (log: {})",
        layout.api_log().display()
    ));
    let rust_log = rust_log();
    let pid = process::spawn(
        bin,
        &args,
        &[("CACHEPLANE_ADMIN_TOKEN", token), ("RUST_LOG", &rust_log)],
        &layout.api_log(),
    )?;
    write_line(&layout.api_pid(), &pid.to_string())?;
    Ok(pid)
}

/// `RUST_LOG` for the processes: the caller's, else `info`.
fn rust_log() -> String {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".into())
}

/// Whether `GET /readyz` answers 200.
async fn api_ready(api_url: &str) -> bool {
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

async fn wait_ready(layout: &Layout, api_url: &str, pid: i32, deadline: Instant) -> Result<()> {
    let log = layout.api_log();
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

/// Keeps ZONE's agent if it runs as wanted, else (re)starts it; answers its pid.
async fn start_agent(
    layout: &Layout,
    bin: &Path,
    zone: &str,
    api_url: &str,
    token: &str,
) -> Result<i32> {
    let host = host_of(zone);
    let dir = layout.agent_dir(&host);
    let pid_file = layout.agent_file(&host, "pid");
    let log = layout.agent_file(&host, "log");
    let args: Vec<String> = [
        "--api-url",
        api_url,
        "--host-id",
        &host,
        "--zone",
        zone,
        "--address",
        "127.0.0.1",
        "--network-mode",
        "loopback",
        "--data-dir",
        &dir.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut want = vec![bin.to_string_lossy().into_owned()];
    want.extend(args.iter().cloned());
    if let Some(pid) = layout.agent_pid_running(&host) {
        match restart_reason(pid, &pid_file, bin, &want) {
            None => {
                say(&format!("agent {host} already runs (pid {pid})"));
                return Ok(pid);
            }
            Some(why) => {
                say(&format!("restarting agent {host}: {why}"));
                process::stop(&format!("agent {host}"), pid).await;
            }
        }
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))?;
    say(&format!(
        "starting agent {host} in zone {zone} (log: {})",
        log.display()
    ));
    // The admin token stands in for a host token, through the environment.
    let rust_log = rust_log();
    let pid = process::spawn(
        bin,
        &args,
        &[("CACHEPLANE_AGENT_TOKEN", token), ("RUST_LOG", &rust_log)],
        &log,
    )?;
    write_line(&pid_file, &pid.to_string())?;
    Ok(pid)
}

/// Waits until the host of every agent (host, pid) is UP with a heartbeat sent since
/// `since`.
async fn wait_hosts_up(
    layout: &Layout,
    client: &Client,
    agents: &[(String, i32)],
    since: DateTime<Utc>,
    deadline: Instant,
) -> Result<()> {
    let names: Vec<String> = agents.iter().map(|(h, _)| format!("hosts/{h}")).collect();
    loop {
        // By pid alone: a process just started may not show its arguments yet.
        for (host, pid) in agents {
            if !process::running(*pid) {
                let log = layout.agent_file(host, "log");
                return Err(anyhow!(
                    "agent {host} exited (log: {}):\n{}",
                    log.display(),
                    process::tail(&log, 30)
                )
                .into());
            }
        }
        let hosts: ListHostsResponse = client.get(&["v1", "hosts"], &[]).await?;
        let up = hosts
            .hosts
            .iter()
            .filter(|h| names.contains(&h.name) && h.state == HostState::Up)
            .filter(|h| h.last_heartbeat_time.is_some_and(|t| t >= since))
            .count();
        if up == names.len() {
            say(&format!("{up} hosts UP"));
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "only {up} of {} hosts UP in time (--timeout; logs: {}/*.log)",
                names.len(),
                layout.agents().display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Points the configuration file at the stack: its URL, the admin token, region `local`
/// and a project (the flag's, else the file's, else demo-project). Answers the project.
fn write_config(g: &Globals, api_url: &str, token: &str) -> Result<String> {
    let mut file = FileConfig::load(&g.config_path)?;
    let project = g
        .project
        .clone()
        .or(file.project.take())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
    if let Some(r) = g.region.as_deref().filter(|r| *r != REGION) {
        say(&format!(
            "note: the local stack's only region is {REGION}, not {r}"
        ));
    }
    file.api_url = Some(api_url.to_string());
    file.token = Some(token.to_string());
    file.project = Some(project.clone());
    file.region = Some(REGION.to_string());
    file.save(&g.config_path)?;
    for (var, ours) in [("CACHECTL_API_URL", api_url), ("CACHECTL_TOKEN", token)] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty() && v != ours) {
            say(&format!(
                "note: {var} is set and wins over the configuration file: unset it to reach \
                 the local stack"
            ));
        }
    }
    Ok(project)
}

// ---------------------------------------------------------------------------------------
// down

async fn down(layout: &Layout) -> Result<()> {
    let hosts = layout.hosts();
    // Agents first, so that none restarts an engine; engines outlive their agent.
    for host in &hosts {
        if let Some(pid) = layout.agent_pid_running(host) {
            process::stop(&format!("agent {host}"), pid).await;
        }
        let _ = fs::remove_file(layout.agent_file(host, "pid"));
    }
    for host in &hosts {
        for pid in process::engine_pids(&layout.agent_dir(host)) {
            process::stop(&format!("redis-server of {host}"), pid).await;
        }
    }
    if let Some(pid) = layout.api_pid_running() {
        process::stop("cacheplane-api", pid).await;
    }
    let _ = fs::remove_file(layout.api_pid());
    if let Some((pid, _)) = postgres::running(&layout.pg) {
        say(&format!(
            "stopping PostgreSQL (pid {pid}, {})",
            layout.pg.display()
        ));
        postgres::Cluster::new(&layout.pg)?.stop()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supernets() {
        assert!(parse_supernet("127.64.0.0/10").is_ok());
        assert!(parse_supernet("127.201.0.0/16").is_ok());
        assert!(parse_supernet("127.201.0.0/24").is_err());
        assert!(parse_supernet("127.201.0.0").is_err());
        assert!(parse_supernet("x/8").is_err());
    }

    #[test]
    fn tokens_are_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!("cachectl-token-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin-token");
        let t = ensure_token(&path).unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(ensure_token(&path).unwrap(), t);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

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
    }
}
