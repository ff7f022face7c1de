//! SQL for instances and their nodes.

use std::collections::BTreeMap;

use cacheplane_types::NodeReport;
use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::instances::filter::{Filter, Term};

/// An instance row with its network and ranges.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: Uuid,
    pub project_id: String,
    pub region_id: String,
    pub name: String,
    pub display_name: String,
    pub tier_id: String,
    pub memory_size_gb: i32,
    pub replica_count: i32,
    pub read_replicas_enabled: bool,
    pub location_id: String,
    pub alternative_location_id: Option<String>,
    pub redis_version: String,
    pub redis_configs: Json<BTreeMap<String, String>>,
    pub network_id: Uuid,
    pub network_name: String,
    pub port: i32,
    pub auth_enabled: bool,
    pub auth_string: String,
    pub state: String,
    pub status_message: String,
    pub labels: Json<BTreeMap<String, String>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub primary_range: Option<IpNet>,
    pub secondary_range: Option<IpNet>,
}

impl InstanceRow {
    /// `projects/{project}/locations/{region}/instances/{name}`.
    pub fn full_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/instances/{}",
            self.project_id, self.region_id, self.name
        )
    }

    /// The range holding the endpoints and nodes.
    pub fn range(&self) -> Option<Ipv4Net> {
        match self.primary_range {
            Some(IpNet::V4(n)) => Some(n),
            _ => None,
        }
    }

    /// The primary endpoint address: the first usable address of the range.
    pub fn endpoint(&self) -> Option<std::net::Ipv4Addr> {
        self.range().map(|r| offset(r, PRIMARY_ENDPOINT_OFFSET))
    }

    /// The read endpoint address, when read replicas are enabled.
    pub fn read_endpoint(&self) -> Option<std::net::Ipv4Addr> {
        self.range()
            .filter(|_| self.read_replicas_enabled)
            .map(|r| offset(r, READ_ENDPOINT_OFFSET))
    }
}

/// Offset of the primary endpoint inside an instance's range.
pub const PRIMARY_ENDPOINT_OFFSET: u32 = 1;
/// Offset of the read endpoint.
pub const READ_ENDPOINT_OFFSET: u32 = 2;
/// Offset of the first node address.
pub const FIRST_NODE_OFFSET: u32 = 3;

/// The address `n` places into `range`.
pub fn offset(range: Ipv4Net, n: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(range.network()) + n)
}

/// A node row with what its host last applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub ordinal: i32,
    pub host_id: String,
    pub zone_id: String,
    pub role: String,
    pub address: IpNet,
    pub memory_bytes: i64,
    pub desired_generation: i64,
    pub removing: bool,
    pub observed: Option<Json<NodeReport>>,
    pub observed_generation: Option<i64>,
    pub host_applied_generation: i64,
    pub host_last_heartbeat_at: Option<DateTime<Utc>>,
}

const INSTANCE_SELECT: &str = r#"
    select i.*, n.name as network_name,
        (select range::inet from address_range a where a.instance_id = i.id and purpose = 'PRIMARY') as primary_range,
        (select range::inet from address_range a where a.instance_id = i.id and purpose = 'SECONDARY') as secondary_range
    from instance i join network n on n.id = i.network_id"#;

const NODE_SELECT: &str = r#"
    select n.id, n.instance_id, n.ordinal, n.host_id, n.zone_id, n.role, n.address, n.memory_bytes,
        n.desired_generation, n.removing, n.observed, n.observed_generation,
        h.applied_generation as host_applied_generation, h.last_heartbeat_at as host_last_heartbeat_at
    from node n join host h on h.id = n.host_id"#;

/// One instance by name, NOT_FOUND otherwise.
pub async fn get(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<InstanceRow> {
    let row: Option<InstanceRow> = sqlx::query_as(&format!(
        "{INSTANCE_SELECT} where i.project_id = $1 and i.region_id = $2 and i.name = $3"
    ))
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(db)
    .await?;
    row.ok_or_else(|| ApiError::NotFound(format!("instance '{name}' not found")))
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

/// Locks an instance row for the rest of the transaction, by name.
pub async fn lock(
    conn: &mut PgConnection,
    project: &str,
    region: &str,
    name: &str,
) -> ApiResult<InstanceRow> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "select id from instance where project_id = $1 and region_id = $2 and name = $3 for update",
    )
    .bind(project)
    .bind(region)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    let id = id.ok_or_else(|| ApiError::NotFound(format!("instance '{name}' not found")))?;
    get_by_id(&mut *conn, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("instance '{name}' not found")))
}

/// The nodes of some instances, by instance then ordinal.
pub async fn nodes_of(db: impl PgExecutor<'_>, instances: &[Uuid]) -> ApiResult<Vec<NodeRow>> {
    Ok(sqlx::query_as(&format!(
        "{NODE_SELECT} where n.instance_id = any($1) order by n.instance_id, n.ordinal"
    ))
    .bind(instances)
    .fetch_all(db)
    .await?)
}

/// One page of a project's instances in a region (`-` for every region), by region and
/// name, after the key `after` (`region/name`).
pub async fn list(
    db: impl PgExecutor<'_>,
    project: &str,
    region: &str,
    filter: &Filter,
    after: Option<(String, String)>,
    limit: i64,
) -> ApiResult<Vec<InstanceRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(INSTANCE_SELECT);
    q.push(" where i.project_id = ")
        .push_bind(project.to_string());
    if region != "-" {
        q.push(" and i.region_id = ").push_bind(region.to_string());
    }
    if let Some((r, n)) = after {
        q.push(" and (i.region_id, i.name) > (")
            .push_bind(r)
            .push(", ")
            .push_bind(n)
            .push(")");
    }
    for term in &filter.terms {
        match term {
            Term::State(s) => {
                q.push(" and i.state = ").push_bind(s.as_str());
            }
            Term::Label { key, value: None } => {
                q.push(" and i.labels ? ").push_bind(key.clone());
            }
            Term::Label {
                key,
                value: Some(v),
            } => {
                q.push(" and i.labels ->> ")
                    .push_bind(key.clone())
                    .push(" = ")
                    .push_bind(v.clone());
            }
            Term::Tier(t) => {
                q.push(" and i.tier_id = ").push_bind(t.as_str());
            }
        }
    }
    q.push(" order by i.region_id, i.name limit ")
        .push_bind(limit);
    Ok(q.build_query_as().fetch_all(db).await?)
}
