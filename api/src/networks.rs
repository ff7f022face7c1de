//! Projects and their networks (address pools).

use cacheplane_types::{CreateNetworkRequest, Network};
use ipnet::{IpNet, Ipv4Net};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::db::networks as db;
use crate::error::{ApiError, ApiResult};
use crate::ids::is_resource_id;
use crate::{alloc, pools};

pub use crate::db::networks::NetworkRow;

impl NetworkRow {
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

/// Checks a project id: 2–63 lowercase letters, digits and hyphens, starting with a letter.
pub fn validate_project_id(project: &str) -> ApiResult<()> {
    check_id("project", project, 2)
}

/// Checks a network id: 1–63 lowercase letters, digits and hyphens, starting with a letter.
pub fn validate_network_id(field: &str, name: &str) -> ApiResult<()> {
    check_id(field, name, 1)
}

fn check_id(field: &str, id: &str, min: usize) -> ApiResult<()> {
    if is_resource_id(id, min, 63) {
        return Ok(());
    }
    Err(ApiError::field(
        field,
        format!("must be {min}-63 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen"),
    ))
}

/// Parses a CIDR that must be IPv4, written plainly (decimal octets and prefix without
/// leading zeros or spaces, as openapi.yaml's pattern has it) and aligned (no host bits
/// set).
pub fn parse_cidr(field: &str, raw: &str) -> ApiResult<Ipv4Net> {
    let net: Ipv4Net = raw
        .parse()
        .ok()
        .filter(|n: &Ipv4Net| n.to_string() == raw)
        .ok_or_else(|| {
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
    if !db::insert_project(conn, project).await? {
        return Ok(());
    }
    // One default pool at a time, so two new projects never pick the same /16.
    db::lock_default_pool_choice(conn).await?;
    let used = db::pools_overlapping(conn, supernet).await?;
    let hosts = db::host_addresses(conn).await?;
    let prefix = supernet.prefix_len().max(16);
    let pool = supernet
        .subnets(prefix)
        .ok()
        .into_iter()
        .flatten()
        .find(|candidate| {
            !used.iter().any(|u| overlaps(u, candidate))
                && pools::refused(*candidate, &hosts).is_none()
        })
        .ok_or_else(|| {
            ApiError::ResourceExhausted(format!(
                "no free /{prefix} left in the default network supernet {supernet} for project '{project}'"
            ))
        })?;
    let row = db::insert(conn, project, "default", pool, "created with the project").await?;
    alloc::init_pool(conn, row.id, pool).await
}

fn overlaps(a: &IpNet, b: &Ipv4Net) -> bool {
    match a {
        IpNet::V4(a) => a.contains(&b.network()) || b.contains(&a.network()),
        IpNet::V6(_) => false,
    }
}

/// Creates a network after validating its id and pool (see [`pools::check`]).
pub async fn create(
    conn: &mut PgConnection,
    rules: &pools::Rules,
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
    pools::check(&mut *conn, rules, project, pool).await?;
    let row = db::insert(conn, project, name, pool, &req.description).await?;
    alloc::init_pool(conn, row.id, pool).await?;
    Ok(row)
}

/// The project's networks by name.
pub async fn list(db: impl PgExecutor<'_>, project: &str) -> ApiResult<Vec<NetworkRow>> {
    db::list(db, project).await
}

/// One network by id, NOT_FOUND otherwise.
pub async fn get(db: impl PgExecutor<'_>, project: &str, name: &str) -> ApiResult<NetworkRow> {
    db::get(db, project, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("network '{name}' not found")))
}

/// Fetches a network by internal id.
pub async fn get_by_id(db: impl PgExecutor<'_>, id: Uuid) -> ApiResult<NetworkRow> {
    db::get_by_id(db, id).await
}

/// Deletes a network that no instance and no connector uses; FAILED_PRECONDITION
/// naming them otherwise.
pub async fn delete(conn: &mut PgConnection, project: &str, name: &str) -> ApiResult<()> {
    let net = get(&mut *conn, project, name).await?;
    alloc::lock_network(conn, net.id).await?;
    let users = db::users(conn, net.id).await?;
    if !users.is_empty() {
        const SHOWN: usize = 10;
        let mut list = users
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if users.len() > SHOWN {
            list.push_str(&format!(" and {} more", users.len() - SHOWN));
        }
        return Err(ApiError::FailedPrecondition(format!(
            "network '{name}' is used by {list}; delete them first"
        )));
    }
    db::delete(conn, net.id).await
}

/// Resolves an instance's `authorizedNetwork` (`default`, `NAME` or
/// `projects/{project}/networks/{name}`) within the project.
pub async fn resolve(
    conn: &mut PgConnection,
    project: &str,
    raw: Option<&str>,
) -> ApiResult<NetworkRow> {
    resolve_as(conn, "authorizedNetwork", project, raw).await
}

/// Resolves a reference to a network of the project given in `field` (`NAME`,
/// `projects/{project}/networks/{name}`, or Memorystore's
/// `projects/{project}/global/networks/{name}`; `default` when empty). A reference of
/// another shape is INVALID_ARGUMENT; one to a network that is not the project's (absent,
/// or another project's) is NOT_FOUND, its message starting with the field.
pub async fn resolve_as(
    conn: &mut PgConnection,
    field: &str,
    project: &str,
    raw: Option<&str>,
) -> ApiResult<NetworkRow> {
    let raw = raw.filter(|s| !s.is_empty()).unwrap_or("default");
    // `…/global/networks/NAME` is how Memorystore names a VPC network.
    let name = match raw
        .strip_prefix(&format!("projects/{project}/networks/"))
        .or_else(|| raw.strip_prefix(&format!("projects/{project}/global/networks/")))
    {
        Some(n) => n,
        None if other_projects_network(raw) => {
            return Err(ApiError::NotFound(format!(
                "{field}: {raw} is not a network of project '{project}'"
            )))
        }
        None if raw.contains('/') => {
            return Err(ApiError::field(
                field,
                format!("must be a network name or projects/{project}/networks/NAME"),
            ))
        }
        None => raw,
    };
    get(&mut *conn, project, name).await.map_err(|_| {
        ApiError::NotFound(format!(
            "{field}: network '{name}' does not exist in project '{project}'"
        ))
    })
}

/// Whether `raw` is a network's full name (`projects/P/networks/N` or
/// `projects/P/global/networks/N`), whatever its project.
fn other_projects_network(raw: &str) -> bool {
    let parts: Vec<&str> = raw.split('/').collect();
    matches!(
        parts.as_slice(),
        ["projects", p, "networks", n] | ["projects", p, "global", "networks", n]
            if !p.is_empty() && !n.is_empty()
    )
}
