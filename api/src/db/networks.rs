//! `project` and `network` rows: projects and their address pools.

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{constraint_of, ApiError, ApiResult};

/// A network row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NetworkRow {
    /// Internal id.
    pub id: Uuid,
    /// Owning project.
    pub project_id: String,
    /// Network id within the project.
    pub name: String,
    /// The pool.
    pub ip_range: IpNet,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl NetworkRow {
    /// The pool as IPv4 (pools are IPv4 by a check constraint).
    pub fn pool(&self) -> Ipv4Net {
        match self.ip_range {
            IpNet::V4(n) => n,
            IpNet::V6(_) => Ipv4Net::default(),
        }
    }

    /// `projects/{project}/networks/{network}`.
    pub fn full_name(&self) -> String {
        format!("projects/{}/networks/{}", self.project_id, self.name)
    }
}

const NETWORK_COLUMNS: &str =
    "id, project_id, name, ip_range::inet as ip_range, description, created_at";

/// Inserts a project; `false` when it exists already.
pub async fn insert_project(conn: &mut PgConnection, project: &str) -> ApiResult<bool> {
    let created = sqlx::query("insert into project (id) values ($1) on conflict do nothing")
        .bind(project)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(created == 1)
}

/// Serialises the choice of default pools until the transaction ends, so that two new
/// projects never pick the same one.
pub async fn lock_default_pool_choice(conn: &mut PgConnection) -> ApiResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('cacheplane.default_network'))")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The pools of every network that overlaps `range`.
pub async fn pools_overlapping(conn: &mut PgConnection, range: Ipv4Net) -> ApiResult<Vec<IpNet>> {
    Ok(
        sqlx::query_scalar("select ip_range::inet from network where ip_range && $1::cidr")
            .bind(IpNet::V4(range))
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// The networks, of every project, whose pools overlap `range`.
pub async fn networks_overlapping(
    conn: &mut PgConnection,
    range: Ipv4Net,
) -> ApiResult<Vec<NetworkRow>> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where ip_range && $1::cidr order by project_id, name"
    ))
    .bind(IpNet::V4(range))
    .fetch_all(&mut *conn)
    .await?)
}

/// The addresses of every registered host (no pool may hold one).
pub async fn host_addresses(conn: &mut PgConnection) -> ApiResult<Vec<IpNet>> {
    Ok(sqlx::query_scalar("select address from host")
        .fetch_all(&mut *conn)
        .await?)
}

/// Inserts a network. An overlapping pool is INVALID_ARGUMENT on `ipRange`, a taken name
/// ALREADY_EXISTS.
pub async fn insert(
    conn: &mut PgConnection,
    project: &str,
    name: &str,
    pool: Ipv4Net,
    description: &str,
) -> ApiResult<NetworkRow> {
    sqlx::query_as(&format!(
        r#"insert into network (id, project_id, name, ip_range, description)
           values ($1, $2, $3, $4::cidr, $5) returning {NETWORK_COLUMNS}"#
    ))
    .bind(Uuid::new_v4())
    .bind(project)
    .bind(name)
    .bind(IpNet::V4(pool))
    .bind(description)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("network_ip_range_excl") => ApiError::field(
            "ipRange",
            format!("{pool} overlaps the pool of another network of project '{project}'"),
        ),
        Some("network_project_id_name_key") => {
            ApiError::AlreadyExists(format!("network '{name}' already exists"))
        }
        _ => e.into(),
    })
}

/// A project's networks by name.
pub async fn list(db: impl PgExecutor<'_>, project: &str) -> ApiResult<Vec<NetworkRow>> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where project_id = $1 order by name"
    ))
    .bind(project)
    .fetch_all(db)
    .await?)
}

/// One network of a project by name.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    name: &str,
) -> ApiResult<Option<NetworkRow>> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where project_id = $1 and name = $2"
    ))
    .bind(project)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// One network by internal id (an error if it does not exist).
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<NetworkRow> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where id = $1"
    ))
    .bind(id)
    .fetch_one(db)
    .await?)
}

/// The full names of the instances, connectors and Memcached instances in a network, in
/// that order, each by name.
pub async fn users(conn: &mut PgConnection, network: Uuid) -> ApiResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        r#"select full_name from (
               select 0 as kind, region_id, name,
                      'projects/' || project_id || '/locations/' || region_id || '/instances/' || name as full_name
               from instance where network_id = $1
               union all
               select 1, region_id, name,
                      'projects/' || project_id || '/locations/' || region_id || '/connectors/' || name
               from connector where network_id = $1
               union all
               select 2, region_id, name,
                      'projects/' || project_id || '/locations/' || region_id || '/memcacheInstances/' || name
               from memcache_instance where network_id = $1) u
           order by kind, region_id, name"#,
    )
    .bind(network)
    .fetch_all(&mut *conn)
    .await?)
}

/// Deletes a network (its free blocks go with it).
pub async fn delete(conn: &mut PgConnection, network: Uuid) -> ApiResult<()> {
    sqlx::query("delete from network where id = $1")
        .bind(network)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
