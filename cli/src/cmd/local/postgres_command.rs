//! `cachectl local postgres start|stop` (hidden): a PostgreSQL cluster of its own in a
//! given directory, for scripts/lib/pg.sh, which runs the throwaway clusters of
//! scripts/test.sh and of people running tests by hand. The same cluster code as the
//! local stack's, so that there is one way of running PostgreSQL.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use serde::Serialize;

use super::{port_free, postgres, say};
use crate::error::{Error, Result};
use crate::output::{emit, shell_quote, Format};

/// The files `start` leaves in a cluster's directory, with the socket and its lock
/// (`.s.PGSQL.PORT`, left behind by a server that was killed): all that `stop --remove`
/// deletes.
const CLUSTER_FILES: [&str; 4] = [
    "data",
    "postgres.log",
    "initdb.log",
    postgres::PASSWORD_FILE,
];
const SOCKET_PREFIX: &str = ".s.PGSQL.";

/// A PostgreSQL cluster in a directory of its own (for scripts/lib/pg.sh).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Initializes a cluster in DIR unless it holds one, starts it unless it runs, and
    /// prints `export` lines for the shell: DATABASE_URL (the superuser `postgres`, who
    /// may create databases, on database `postgres`), CACHEPLANE_PG_DIR and
    /// CACHEPLANE_PG_PORT. As root the cluster runs as the postgres user, which must be
    /// able to reach DIR.
    #[command(after_help = "Examples:\n  \
        eval \"$(cachectl local postgres start --dir \"$(mktemp -d)\")\"\n  \
        cachectl local postgres start --dir /tmp/pg --port 54330 --format json")]
    Start {
        /// The cluster's directory (its data in DIR/data, its log DIR/postgres.log).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The port on 127.0.0.1 [default: a free one].
        #[arg(long)]
        port: Option<u16>,
    },
    /// Stops the cluster in DIR if it runs (fast shutdown); with --remove deletes DIR
    /// too.
    #[command(after_help = "Examples:\n  \
        cachectl local postgres stop --dir \"$CACHEPLANE_PG_DIR\" --remove")]
    Stop {
        /// The cluster's directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Delete DIR once the cluster is down; refused when DIR holds other files than
        /// a cluster's.
        #[arg(long)]
        remove: bool,
    },
}

/// A running cluster, as `start` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    database_url: String,
    /// The cluster's directory.
    dir: String,
    /// Its port.
    port: u16,
}

impl Started {
    /// `export NAME=value` lines, quoted for the shell.
    fn export_lines(&self) -> String {
        [
            ("DATABASE_URL", self.database_url.clone()),
            ("CACHEPLANE_PG_DIR", self.dir.clone()),
            ("CACHEPLANE_PG_PORT", self.port.to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("export {k}={}", shell_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
    }
}

/// Runs `local postgres …`.
pub fn run(cmd: Command, format: Format) -> Result<()> {
    match cmd {
        Command::Start { dir, port } => {
            let started = start(&dir, port)?;
            emit(format, &started, Started::export_lines)
        }
        Command::Stop { dir, remove } => stop(&dir, remove),
    }
}

fn start(dir: &Path, port: Option<u16>) -> Result<Started> {
    let dir = std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let cluster = postgres::Cluster::new(&dir)?;
    cluster.init()?;
    let port = match (postgres::running(&dir), port) {
        (Some((_, running)), Some(wanted)) if running != wanted => {
            return Err(Error::Usage(format!(
                "the cluster in {} already runs on port {running}, not {wanted}",
                dir.display()
            )))
        }
        (Some((pid, running)), _) => {
            say(&format!("PostgreSQL already runs (pid {pid})"));
            running
        }
        (None, Some(port)) => {
            if !port_free(port) {
                return Err(Error::Usage(format!(
                    "port {port} is taken by another program; pass another --port, or none"
                )));
            }
            cluster.start(port)?;
            port
        }
        (None, None) => cluster.start_on_free_port()?,
    };
    // Answers only once it takes queries.
    cluster.ensure_database(port, "postgres")?;
    Ok(Started {
        database_url: cluster.url(port, "postgres"),
        dir: dir.display().to_string(),
        port,
    })
}

fn stop(dir: &Path, remove: bool) -> Result<()> {
    if let Some((pid, _)) = postgres::running(dir) {
        say(&format!(
            "stopping PostgreSQL (pid {pid}, {})",
            dir.display()
        ));
        postgres::Cluster::new(dir)?.stop()?;
    }
    if remove && dir.exists() {
        let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        for e in entries {
            let name = e.context("reading a directory")?.file_name();
            let ours = CLUSTER_FILES.iter().any(|f| name == *f)
                || name.to_string_lossy().starts_with(SOCKET_PREFIX);
            if !ours {
                return Err(anyhow!(
                    "refusing to remove {}: it holds {}, which is not a cluster's",
                    dir.display(),
                    name.to_string_lossy()
                )
                .into());
            }
        }
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        say(&format!("removed {}", dir.display()));
    }
    Ok(())
}
