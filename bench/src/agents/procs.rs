//! What the simulation reads about the processes around it: CPU time of the PostgreSQL
//! server (postmaster and backends), open files, the load average, connections and lock
//! waits in `pg_stat_activity`, and the open-files limit it raises for its own sockets.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use crate::server::cpu_time;

/// The PostgreSQL server's postmaster: the parent of the backend serving `pool`.
pub async fn postmaster_pid(pool: &PgPool) -> anyhow::Result<u32> {
    let backend: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(pool)
        .await?;
    let stat = std::fs::read_to_string(format!("/proc/{backend}/stat")).with_context(|| {
        format!(
            "reading /proc/{backend}/stat: PostgreSQL must run on this machine for its CPU time"
        )
    })?;
    stat_fields(&stat)
        .and_then(|f| f.get(1)?.parse().ok())
        .context("no parent pid in the backend's /proc stat")
}

/// The fields of a `/proc/PID/stat` line after the command name (field 3 onwards).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// CPU time the PostgreSQL server has used: the postmaster's own and that of its exited
/// children (cutime, cstime), plus every live child's (the backends, the WAL writer, …).
/// Every database of the cluster counts, so nothing else should use it meanwhile.
pub fn postgres_cpu(postmaster: u32) -> Duration {
    let own = std::fs::read_to_string(format!("/proc/{postmaster}/stat"))
        .ok()
        .and_then(|s| {
            let f = stat_fields(&s)?;
            let ticks: u64 = f[11..15]
                .iter()
                .map(|v| v.parse::<u64>().unwrap_or(0))
                .sum();
            Some(ticks)
        })
        .unwrap_or(0);
    let mut total = crate::server::clock_tick() * u32::try_from(own).unwrap_or(u32::MAX);
    for pid in children(postmaster) {
        total += cpu_time(&format!("/proc/{pid}/stat")).unwrap_or_default();
    }
    total
}

/// The live children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| stat_fields(&s)?.get(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// How many files (sockets included) process `pid` has open.
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raises this process's soft open-files limit to the hard limit (the API servers it
/// starts inherit it); returns the limit now in force.
pub fn raise_open_files() -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(NOFILE)")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("setrlimit(NOFILE)")?;
    }
    Ok(hard)
}

/// One look at the benchmark database's sessions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity {
    /// Connections to the database.
    pub connections: i64,
    /// Of them, running a statement now.
    pub active: i64,
    /// Of them, waiting for a lock held by another.
    pub lock_waits: i64,
}

/// The sessions of database `name` now.
pub async fn activity(pool: &PgPool, name: &str) -> anyhow::Result<Activity> {
    let (connections, active, lock_waits): (i64, i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where state = 'active'),
                count(*) filter (where wait_event_type = 'Lock')
         from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(Activity {
        connections,
        active,
        lock_waits,
    })
}

/// What the active sessions of database `name` wait for now: "wait event: statement"
/// (the statement's first 90 characters, blanks squeezed) → how many sessions.
pub async fn waits(pool: &PgPool, name: &str) -> anyhow::Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        r"select coalesce(wait_event_type || '/' || wait_event, 'on CPU') || ': '
                 || left(regexp_replace(query, '\s+', ' ', 'g'), 90), count(*)
         from pg_stat_activity
         where datname = $1 and state = 'active' and pid <> pg_backend_pid()
         group by 1 order by 2 desc",
    )
    .bind(name)
    .fetch_all(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_with_spaces() {
        let f = stat_fields("42 (post gres: x) S 7 42 42 0").expect("fields");
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "7");
    }

    #[test]
    fn this_process_is_seen() {
        assert!(open_files(std::process::id()).is_some_and(|n| n >= 3));
        assert!(load_average().is_some());
        assert!(raise_open_files().expect("rlimit") >= 1024);
    }
}
