//! `instance` rows, and the one guarded update of an instance's state.

use std::collections::BTreeMap;
use std::time::Duration;

use cacheplane_types::{InstanceState, Tier, TlsCertificate, TransitEncryptionMode};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

mod list;

pub use list::{list, push_terms, Filter, Term};

/// An instance row with its network's name and its ranges.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    /// Internal id.
    pub id: Uuid,
    /// Project.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// Instance id within the project and region.
    pub name: String,
    /// Free text.
    pub display_name: String,
    /// Tier.
    #[sqlx(rename = "tier_id", try_from = "String")]
    pub tier: Tier,
    /// Memory per node.
    pub memory_size_gb: i32,
    /// Replicas wanted.
    pub replica_count: i32,
    /// Whether the read endpoint is on.
    pub read_replicas_enabled: bool,
    /// The primary's zone.
    pub location_id: String,
    /// The first replica's zone.
    pub alternative_location_id: Option<String>,
    /// Engine version.
    pub redis_version: String,
    /// Engine settings.
    pub redis_configs: Json<BTreeMap<String, String>>,
    /// Its network.
    pub network_id: Uuid,
    /// Its network's name.
    pub network_name: String,
    /// Port.
    pub port: i32,
    /// Whether AUTH is on.
    pub auth_enabled: bool,
    /// The AUTH password.
    pub auth_string: String,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub state: InstanceState,
    /// Why it is in that state.
    pub status_message: String,
    /// Labels.
    pub labels: Json<BTreeMap<String, String>>,
    /// Bumped on every change; the etag.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The range of its endpoints and nodes.
    pub primary_range: Option<IpNet>,
    /// The further range taken for read replicas.
    pub secondary_range: Option<IpNet>,
    /// TLS in transit.
    #[sqlx(try_from = "String")]
    pub transit_encryption_mode: TransitEncryptionMode,
    /// The public part of its CA certificates (`serverCaCerts`); no key.
    pub server_ca_certs: Json<Vec<TlsCertificate>>,
}

impl InstanceRow {
    /// `projects/{project}/locations/{region}/instances/{name}`.
    pub fn full_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/instances/{}",
            self.project_id, self.region_id, self.name
        )
    }
}

/// The columns of an [`InstanceRow`].
const INSTANCE_SELECT: &str = r#"
    select i.*, n.name as network_name,
        (select range::inet from address_range a where a.instance_id = i.id and purpose = 'PRIMARY') as primary_range,
        (select range::inet from address_range a where a.instance_id = i.id and purpose = 'SECONDARY') as secondary_range
    from instance i join network n on n.id = i.network_id"#;

/// One instance by project, region and name.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<InstanceRow>> {
    Ok(sqlx::query_as(&format!(
        "{INSTANCE_SELECT} where i.project_id = $1 and i.region_id = $2 and i.name = $3"
    ))
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// One instance by id (`None` once deleted).
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<Option<InstanceRow>> {
    Ok(
        sqlx::query_as(&format!("{INSTANCE_SELECT} where i.id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// Locks an instance row for the rest of the transaction, by name, and reads it.
pub async fn lock(
    conn: &mut PgConnection,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<InstanceRow>> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "select id from instance where project_id = $1 and region_id = $2 and name = $3 for update",
    )
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    match id {
        Some(id) => get_by_id(&mut *conn, id).await,
        None => Ok(None),
    }
}

/// What [`try_lock`] found.
#[derive(Debug)]
pub enum TryLock {
    /// Locked for the rest of the transaction.
    Locked(Box<InstanceRow>),
    /// Another transaction holds it.
    Busy,
    /// It does not exist (any more).
    Gone,
}

/// Locks an instance row without waiting for another transaction that holds it.
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> ApiResult<TryLock> {
    let locked: Option<i32> =
        sqlx::query_scalar("select 1 from instance where id = $1 for update skip locked")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if locked.is_none() {
        let exists: bool =
            sqlx::query_scalar("select exists(select 1 from instance where id = $1)")
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
        return Ok(if exists { TryLock::Busy } else { TryLock::Gone });
    }
    Ok(match get_by_id(&mut *conn, id).await? {
        Some(row) => TryLock::Locked(Box::new(row)),
        None => TryLock::Gone,
    })
}

/// Locks an instance that is READY or REPAIRING and runs no operation, without waiting
/// for another transaction that holds it; `None` otherwise.
pub async fn try_lock_idle(conn: &mut PgConnection, id: Uuid) -> ApiResult<Option<InstanceRow>> {
    let locked: Option<Uuid> = sqlx::query_scalar(
        r#"select id from instance i where id = $1 and state in ('READY', 'REPAIRING')
             and not exists (select 1 from operation o where o.instance_id = i.id and not o.done)
           for update skip locked"#,
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match locked {
        Some(id) => get_by_id(&mut *conn, id).await,
        None => Ok(None),
    }
}

/// Instances whose health is worth a look now: READY ones with a node on a host silent
/// for longer than `host_timeout`, and every REPAIRING one.
pub async fn list_suspects(
    db: impl PgExecutor<'_>,
    host_timeout: Duration,
) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        r#"select i.id from instance i where i.state = 'REPAIRING'
           union
           select distinct n.instance_id from node n
               join host h on h.id = n.host_id join instance i on i.id = n.instance_id
           where i.state = 'READY' and not n.removing
             and (h.last_heartbeat_at is null or h.last_heartbeat_at < now() - make_interval(secs => $1))"#,
    )
    .bind(host_timeout.as_secs_f64())
    .fetch_all(db)
    .await?)
}

/// An instance about to be stored (in state CREATING).
pub struct NewInstance<'a> {
    /// Internal id.
    pub id: Uuid,
    /// Project.
    pub project: &'a str,
    /// Region.
    pub region: &'a str,
    /// Instance id (ALREADY_EXISTS when taken).
    pub name: &'a str,
    /// Free text.
    pub display_name: &'a str,
    /// Tier.
    pub tier: Tier,
    /// Memory per node.
    pub memory_size_gb: i32,
    /// Replicas wanted.
    pub replica_count: i32,
    /// Whether the read endpoint is on.
    pub read_replicas_enabled: bool,
    /// The primary's zone.
    pub location: &'a str,
    /// The first replica's zone.
    pub alternative_location: Option<&'a str>,
    /// Engine version.
    pub redis_version: &'a str,
    /// Engine settings.
    pub redis_configs: &'a BTreeMap<String, String>,
    /// Its network.
    pub network: Uuid,
    /// Whether AUTH is on.
    pub auth_enabled: bool,
    /// The AUTH password.
    pub auth_string: &'a str,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// Stores a new instance in state CREATING.
pub async fn insert(conn: &mut PgConnection, new: &NewInstance<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into instance (id, project_id, region_id, name, display_name, tier_id, memory_size_gb,
               replica_count, read_replicas_enabled, location_id, alternative_location_id, redis_version,
               redis_configs, network_id, auth_enabled, auth_string, state, labels)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"#,
    )
    .bind(new.id)
    .bind(new.project)
    .bind(new.region)
    .bind(new.name)
    .bind(new.display_name)
    .bind(new.tier.as_str())
    .bind(new.memory_size_gb)
    .bind(new.replica_count)
    .bind(new.read_replicas_enabled)
    .bind(new.location)
    .bind(new.alternative_location)
    .bind(new.redis_version)
    .bind(Json(new.redis_configs))
    .bind(new.network)
    .bind(new.auth_enabled)
    .bind(new.auth_string)
    .bind(InstanceState::Creating.as_str())
    .bind(Json(new.labels))
    .execute(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("instance_name_key") => {
            ApiError::AlreadyExists(format!("instance '{}' already exists", new.name))
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// When [`set_state`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Always: other columns changed in the same transaction, so the version must move.
    Always,
    /// Only when the state or the message differ from the stored ones, so that an
    /// instance that did not change keeps its etag.
    IfChanged,
}

/// Sets an instance's state and status message (`None` keeps the message) and bumps its
/// version, which is its etag: the one place an instance's state changes. With
/// [`Guard::IfChanged`] nothing is written when state and message are already those.
/// Returns whether the row changed.
pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: InstanceState,
    message: Option<&str>,
    guard: Guard,
) -> ApiResult<bool> {
    let changed = sqlx::query(
        r#"update instance set state = $2, status_message = coalesce($3, status_message),
               version = version + 1, updated_at = now()
           where id = $1
             and (not $4 or (state, status_message) is distinct from ($2, coalesce($3, status_message)))"#,
    )
    .bind(id)
    .bind(state.as_str())
    .bind(message)
    .bind(guard == Guard::IfChanged)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(changed > 0)
}

/// A change to the fields of an instance that a patch may set (each `None` keeps it).
/// The state and version move with [`set_state`].
#[derive(Debug, Default)]
pub struct FieldChanges<'a> {
    /// Free text.
    pub display_name: Option<&'a str>,
    /// Labels.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// Engine settings.
    pub redis_configs: Option<&'a BTreeMap<String, String>>,
    /// Memory per node.
    pub memory_size_gb: Option<i32>,
    /// Replicas wanted.
    pub replica_count: Option<i32>,
    /// Turns the read endpoint on.
    pub enable_read_replicas: bool,
}

/// Writes the fields given in `changes`.
pub async fn update_fields(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &FieldChanges<'_>,
) -> ApiResult<()> {
    sqlx::query(
        r#"update instance set
               display_name = coalesce($2, display_name),
               labels = coalesce($3, labels),
               redis_configs = coalesce($4, redis_configs),
               memory_size_gb = coalesce($5, memory_size_gb),
               replica_count = coalesce($6, replica_count),
               read_replicas_enabled = read_replicas_enabled or $7
           where id = $1"#,
    )
    .bind(id)
    .bind(changes.display_name)
    .bind(changes.labels.map(Json))
    .bind(changes.redis_configs.map(Json))
    .bind(changes.memory_size_gb)
    .bind(changes.replica_count)
    .bind(changes.enable_read_replicas)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes an instance (its nodes must be gone and its ranges freed).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> ApiResult<()> {
    sqlx::query("delete from instance where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
