//! `connector` rows and the host config's view of them. A connector's range is an
//! `address_range` row of purpose CONNECTOR (see `crate::db::ranges`).

use cacheplane_types::ConnectorState;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

/// A connector row with its network and range.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectorRow {
    /// Internal id.
    pub id: Uuid,
    /// Project.
    pub project_id: String,
    /// Region.
    pub region_id: String,
    /// Connector id.
    pub name: String,
    /// Its network.
    pub network_id: Uuid,
    /// `projects/{p}/networks/{n}`.
    pub network_name: String,
    /// The network's pool.
    pub network_ip_range: IpNet,
    /// Lifecycle state.
    #[sqlx(try_from = "String")]
    pub state: ConnectorState,
    /// The host realising it (netns mode).
    pub host_id: Option<String>,
    /// Its namespace on that host (netns mode).
    pub namespace: Option<String>,
    /// The host generation carrying its last change (netns mode).
    pub desired_generation: Option<i64>,
    /// Its range (absent only between insert and reservation).
    pub ip_cidr_range: Option<IpNet>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = r#"
    select c.id, c.project_id, c.region_id, c.name, c.network_id,
           'projects/' || w.project_id || '/networks/' || w.name as network_name,
           w.ip_range::inet as network_ip_range, c.state, c.host_id, c.namespace,
           c.desired_generation,
           (select a.range::inet from address_range a where a.connector_id = c.id) as ip_cidr_range,
           c.created_at
    from connector c join network w on w.id = c.network_id"#;

/// What a new connector row holds.
#[derive(Debug)]
pub struct NewConnector<'a> {
    /// Its id.
    pub id: Uuid,
    /// Project.
    pub project: &'a str,
    /// Region.
    pub region: &'a str,
    /// Connector id.
    pub name: &'a str,
    /// Its network.
    pub network: Uuid,
    /// Initial state.
    pub state: ConnectorState,
    /// Host and namespace (netns mode).
    pub host: Option<(&'a str, &'a str)>,
    /// The host generation that adds it (netns mode).
    pub desired_generation: Option<i64>,
}

/// Inserts a connector; ALREADY_EXISTS when the name is taken in the project and region.
pub async fn insert(conn: &mut PgConnection, c: &NewConnector<'_>) -> ApiResult<()> {
    sqlx::query(
        r#"insert into connector (id, project_id, region_id, name, network_id, state, host_id,
               namespace, desired_generation)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
    )
    .bind(c.id)
    .bind(c.project)
    .bind(c.region)
    .bind(c.name)
    .bind(c.network)
    .bind(c.state.as_str())
    .bind(c.host.map(|h| h.0))
    .bind(c.host.map(|h| h.1))
    .bind(c.desired_generation)
    .execute(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("connector_name_key") => {
            ApiError::AlreadyExists(format!("connector '{}' already exists", c.name))
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// One connector by name.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<ConnectorRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} where c.project_id = $1 and c.region_id = $2 and c.name = $3"
    ))
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// One connector by id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<Option<ConnectorRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} where c.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Locks a connector by name for the rest of the transaction.
pub async fn lock(
    conn: &mut PgConnection,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<Option<ConnectorRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} where c.project_id = $1 and c.region_id = $2 and c.name = $3 for update of c"
    ))
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Locks a connector by id without waiting for another transaction that holds it.
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> ApiResult<TryLock> {
    let row: Option<ConnectorRow> = sqlx::query_as(&format!(
        "{SELECT} where c.id = $1 for update of c skip locked"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(TryLock::Locked(Box::new(row)));
    }
    let exists: bool = sqlx::query_scalar("select exists (select 1 from connector where id = $1)")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(if exists { TryLock::Busy } else { TryLock::Gone })
}

/// The outcome of [`try_lock`].
#[derive(Debug)]
pub enum TryLock {
    /// Locked.
    Locked(Box<ConnectorRow>),
    /// Another transaction holds it.
    Busy,
    /// It no longer exists.
    Gone,
}

/// Up to `limit` connectors of a project in a region (`-`: every region), by (region,
/// name), after the key `after`.
pub async fn list_page(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    after: Option<(&str, &str)>,
    limit: i64,
) -> ApiResult<Vec<ConnectorRow>> {
    Ok(sqlx::query_as(&format!(
        r#"{SELECT}
           where c.project_id = $1 and ($2 = '-' or c.region_id = $2)
             and ($3::text is null or (c.region_id, c.name) > ($3 collate "C", $4 collate "C"))
           order by c.region_id, c.name limit $5"#
    ))
    .bind(project)
    .bind(region)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Sets a connector's state and, in netns mode, the host generation that carries the
/// change.
pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: ConnectorState,
    desired_generation: Option<i64>,
) -> ApiResult<()> {
    sqlx::query(
        r#"update connector set state = $2, desired_generation = coalesce($3, desired_generation),
               updated_at = now() where id = $1"#,
    )
    .bind(id)
    .bind(state.as_str())
    .bind(desired_generation)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes a connector (its range row goes with it).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> ApiResult<()> {
    sqlx::query("delete from connector where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How many connectors a project has (those being deleted included).
pub async fn count(conn: &mut PgConnection, project: &str) -> ApiResult<i64> {
    Ok(
        sqlx::query_scalar("select count(*) from connector where project_id = $1")
            .bind(project)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// How many connectors each of `hosts` realises, as (host, count) for those with any.
pub async fn per_host(conn: &mut PgConnection, hosts: &[String]) -> ApiResult<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        r#"select host_id, count(*) from connector where host_id = any($1)
           group by host_id"#,
    )
    .bind(hosts)
    .fetch_all(&mut *conn)
    .await?)
}

/// The connectors a host must realise (not being deleted), by name.
pub async fn on_host(db: impl PgExecutor<'_>, host: &str) -> ApiResult<Vec<ConnectorRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} where c.host_id = $1 and c.state <> 'DELETING' order by c.project_id, c.region_id, c.name"
    ))
    .bind(host)
    .fetch_all(db)
    .await?)
}
