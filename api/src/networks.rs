//! Projects and their networks (address pools).

use cacheplane_types::{CreateNetworkRequest, Network};
use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::alloc;
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

    /// The wire resource.
    pub fn to_wire(&self) -> Network {
        Network {
            name: self.full_name(),
            ip_range: self.pool().to_string(),
            description: self.description.clone(),
            create_time: self.created_at,
        }
    }
}

const NETWORK_COLUMNS: &str =
    "id, project_id, name, ip_range::inet as ip_range, description, created_at";

/// Checks a project id: 2–63 lowercase letters, digits and hyphens, starting with a letter.
pub fn validate_project_id(project: &str) -> ApiResult<()> {
    let ok = (2..=63).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && !project.ends_with('-')
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            "project",
            "must be 2-63 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen",
        ))
    }
}

/// Checks a network id: 1–63 lowercase letters, digits and hyphens, starting with a letter.
pub fn validate_network_id(field: &str, name: &str) -> ApiResult<()> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be 1-63 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen",
        ))
    }
}

/// Parses a CIDR that must be IPv4 and aligned (no host bits set).
pub fn parse_cidr(field: &str, raw: &str) -> ApiResult<Ipv4Net> {
    let net: Ipv4Net = raw.trim().parse().map_err(|_| {
        ApiError::field(
            field,
            format!("'{raw}' is not an IPv4 CIDR such as 10.0.0.0/28"),
        )
    })?;
    if net.trunc() != net {
        return Err(ApiError::field(
            field,
            format!(
                "'{raw}' is not aligned: its address must be the start of the range ({})",
                net.trunc()
            ),
        ));
    }
    Ok(net)
}

/// Creates the project if it is new, with its `default` network: the first /16 of
/// `supernet` that no network uses yet.
pub async fn ensure_project(
    conn: &mut PgConnection,
    project: &str,
    supernet: Ipv4Net,
) -> ApiResult<()> {
    validate_project_id(project)?;
    let created = sqlx::query("insert into project (id) values ($1) on conflict do nothing")
        .bind(project)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if created == 0 {
        return Ok(());
    }
    // One default pool at a time, so two new projects never pick the same /16.
    sqlx::query("select pg_advisory_xact_lock(hashtext('cacheplane.default_network'))")
        .execute(&mut *conn)
        .await?;
    let used: Vec<IpNet> =
        sqlx::query_scalar("select ip_range::inet from network where ip_range && $1::cidr")
            .bind(IpNet::V4(supernet))
            .fetch_all(&mut *conn)
            .await?;
    let prefix = supernet.prefix_len().max(16);
    let pool = supernet
        .subnets(prefix)
        .ok()
        .into_iter()
        .flatten()
        .find(|candidate| !used.iter().any(|u| overlaps(u, candidate)))
        .ok_or_else(|| {
            ApiError::ResourceExhausted(format!(
                "no free /{prefix} left in the default network supernet {supernet} for project '{project}'"
            ))
        })?;
    insert_network(conn, project, "default", pool, "created with the project").await?;
    Ok(())
}

fn overlaps(a: &IpNet, b: &Ipv4Net) -> bool {
    match a {
        IpNet::V4(a) => a.contains(&b.network()) || b.contains(&a.network()),
        IpNet::V6(_) => false,
    }
}

async fn insert_network(
    conn: &mut PgConnection,
    project: &str,
    name: &str,
    pool: Ipv4Net,
    description: &str,
) -> ApiResult<NetworkRow> {
    let id = Uuid::new_v4();
    let row: NetworkRow = sqlx::query_as(&format!(
        r#"insert into network (id, project_id, name, ip_range, description)
           values ($1, $2, $3, $4::cidr, $5) returning {NETWORK_COLUMNS}"#
    ))
    .bind(id)
    .bind(project)
    .bind(name)
    .bind(IpNet::V4(pool))
    .bind(description)
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| match constraint_of(&e) {
        Some("network_ip_range_excl") => ApiError::field(
            "ipRange",
            format!("{pool} overlaps the pool of another network"),
        ),
        Some("network_project_id_name_key") => {
            ApiError::AlreadyExists(format!("network '{name}' already exists"))
        }
        _ => e.into(),
    })?;
    alloc::init_pool(conn, id, pool).await?;
    Ok(row)
}

/// Creates a network after validating its id and pool.
pub async fn create(
    conn: &mut PgConnection,
    project: &str,
    network_id: Option<&str>,
    req: &CreateNetworkRequest,
) -> ApiResult<NetworkRow> {
    let name = network_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::field("networkId", "is required"))?;
    validate_network_id("networkId", name)?;
    let pool = parse_cidr("ipRange", &req.ip_range)?;
    if !(8..=28).contains(&pool.prefix_len()) {
        return Err(ApiError::field(
            "ipRange",
            "the prefix length must be between /8 and /28",
        ));
    }
    if req.description.len() > 256 {
        return Err(ApiError::field(
            "description",
            "must be at most 256 characters",
        ));
    }
    insert_network(conn, project, name, pool, &req.description).await
}

/// The project's networks by name.
pub async fn list(db: impl PgExecutor<'_>, project: &str) -> ApiResult<Vec<NetworkRow>> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where project_id = $1 order by name"
    ))
    .bind(project)
    .fetch_all(db)
    .await?)
}

/// One network by id, NOT_FOUND otherwise.
pub async fn get(db: impl PgExecutor<'_>, project: &str, name: &str) -> ApiResult<NetworkRow> {
    let row: Option<NetworkRow> = sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where project_id = $1 and name = $2"
    ))
    .bind(project)
    .bind(name)
    .fetch_optional(db)
    .await?;
    row.ok_or_else(|| ApiError::NotFound(format!("network '{name}' not found")))
}

/// Fetches a network by internal id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<NetworkRow> {
    Ok(sqlx::query_as(&format!(
        "select {NETWORK_COLUMNS} from network where id = $1"
    ))
    .bind(id)
    .fetch_one(db)
    .await?)
}

/// Deletes a network that no instance uses.
pub async fn delete(conn: &mut PgConnection, project: &str, name: &str) -> ApiResult<()> {
    let net = get(&mut *conn, project, name).await?;
    alloc::lock_network(conn, net.id).await?;
    let in_use: i64 = sqlx::query_scalar("select count(*) from instance where network_id = $1")
        .bind(net.id)
        .fetch_one(&mut *conn)
        .await?;
    if in_use > 0 {
        return Err(ApiError::FailedPrecondition(format!(
            "network '{name}' is used by {in_use} instance(s); delete them first"
        )));
    }
    sqlx::query("delete from network where id = $1")
        .bind(net.id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Resolves an instance's `authorizedNetwork` (`default`, `NAME` or
/// `projects/{project}/networks/{name}`) within the project.
pub async fn resolve(
    conn: &mut PgConnection,
    project: &str,
    raw: Option<&str>,
) -> ApiResult<NetworkRow> {
    let raw = raw.filter(|s| !s.is_empty()).unwrap_or("default");
    let name = match raw.strip_prefix(&format!("projects/{project}/networks/")) {
        Some(n) => n,
        None if raw.contains('/') => {
            return Err(ApiError::field(
                "authorizedNetwork",
                format!("must be a network name or projects/{project}/networks/NAME"),
            ))
        }
        None => raw,
    };
    get(&mut *conn, project, name).await.map_err(|_| {
        ApiError::field(
            "authorizedNetwork",
            format!("network '{name}' does not exist in project '{project}'"),
        )
    })
}
