//! Per-project quotas (`--quota-instances`, `--quota-memory-gb`, `--quota-networks`,
//! `--quota-connectors`):
//! checked inside the transaction that would allocate, under a lock on the project's
//! row, so concurrent creates of one project are counted one after the other. Over a
//! quota, the request fails with RESOURCE_EXHAUSTED naming the quota and its limit, and
//! its transaction (allocation included) rolls back.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::Config;
use crate::db::quotas as db;
use crate::error::{ApiError, ApiResult};

/// The memory an instance takes over all its nodes, in GB.
pub fn footprint_gb(memory_gb: i32, replicas: i32) -> i64 {
    i64::from(memory_gb) * (1 + i64::from(replicas))
}

/// The error of a quota: names it, its limit (with its unit) and the flag that sets it.
fn exceeded(project: &str, quota: &str, flag: &str, limit: String, detail: String) -> ApiError {
    ApiError::QuotaExceeded(format!(
        "quota '{quota}' exceeded: project '{project}' may have at most {limit} ({flag}); {detail}"
    ))
}

/// Locks the project and checks that one more instance of `memory_gb` with `replicas`
/// fits its instance and memory quotas.
pub async fn check_create(
    conn: &mut PgConnection,
    config: &Config,
    project: &str,
    memory_gb: i32,
    replicas: i32,
) -> ApiResult<()> {
    check_new_instance(conn, config, project, footprint_gb(memory_gb, replicas)).await
}

/// The memory a Memcached instance takes over all its nodes, in GB rounded up.
pub fn memcache_footprint_gb(node_count: i32, memory_mb: i32) -> i64 {
    (i64::from(node_count) * i64::from(memory_mb) + 1023) / 1024
}

/// Locks the project and checks that one more instance (Redis or Memcached) taking
/// `footprint_gb` fits its instance and memory quotas.
pub async fn check_new_instance(
    conn: &mut PgConnection,
    config: &Config,
    project: &str,
    footprint: i64,
) -> ApiResult<()> {
    db::lock_project(conn, project).await?;
    let used = db::instance_usage(conn, project, None).await?;
    if used.instances + 1 > config.quota_instances {
        let detail = format!("it has {} instances", used.instances);
        return Err(exceeded(
            project,
            "instances",
            "--quota-instances",
            format!("{} instances", config.quota_instances),
            detail,
        ));
    }
    check_memory(config, project, used.memory_gb, footprint)
}

/// Locks the project, so that a resize checked later with [`check_resize`] is counted
/// against every concurrent change of the project. Call it before locking hosts.
pub async fn lock(conn: &mut PgConnection, project: &str) -> ApiResult<()> {
    db::lock_project(conn, project).await
}

/// Checks that instance `instance` with its new size and replicas fits the memory
/// quota; a change that does not grow the instance always passes (a project over a
/// lowered quota may still shrink). Needs [`lock`] first.
pub async fn check_resize(
    conn: &mut PgConnection,
    config: &Config,
    project: &str,
    instance: Uuid,
    before_gb: i64,
    after_gb: i64,
) -> ApiResult<()> {
    if after_gb <= before_gb {
        return Ok(());
    }
    let others = db::instance_usage(conn, project, Some(instance)).await?;
    check_memory(config, project, others.memory_gb, after_gb)
}

fn check_memory(config: &Config, project: &str, used_gb: i64, more_gb: i64) -> ApiResult<()> {
    if used_gb + more_gb <= config.quota_memory_gb {
        return Ok(());
    }
    let detail = format!("its other instances use {used_gb} GB and this one would use {more_gb} GB (memorySizeGb × nodes; Memcached: memorySizeMb × nodes)");
    Err(exceeded(
        project,
        "memoryGb",
        "--quota-memory-gb",
        format!("{} GB of memory", config.quota_memory_gb),
        detail,
    ))
}

/// Locks the project and checks that one more network fits its network quota.
pub async fn check_network(
    conn: &mut PgConnection,
    config: &Config,
    project: &str,
) -> ApiResult<()> {
    db::lock_project(conn, project).await?;
    let count = db::network_count(conn, project).await?;
    if count + 1 > config.quota_networks {
        return Err(exceeded(
            project,
            "networks",
            "--quota-networks",
            format!("{} networks", config.quota_networks),
            format!("it has {count} networks"),
        ));
    }
    Ok(())
}

/// Locks the project and checks that one more connector fits its connector quota.
pub async fn check_connector(
    conn: &mut PgConnection,
    config: &Config,
    project: &str,
) -> ApiResult<()> {
    db::lock_project(conn, project).await?;
    let count = crate::db::connectors::count(conn, project).await?;
    if count + 1 > config.quota_connectors {
        return Err(exceeded(
            project,
            "connectors",
            "--quota-connectors",
            format!("{} connectors", config.quota_connectors),
            format!("it has {count} connectors"),
        ));
    }
    Ok(())
}
