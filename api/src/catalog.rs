//! Regions, zones and tiers.

use cacheplane_types::{Region, Tier, TierInfo, Zone};
use sqlx::PgExecutor;

use crate::error::{ApiError, ApiResult};

/// Every region with its zones.
pub async fn list_regions(db: impl PgExecutor<'_>) -> ApiResult<Vec<Region>> {
    let rows: Vec<(String, Vec<String>)> = sqlx::query_as(
        r#"select r.id, coalesce(array_agg(z.id order by z.id) filter (where z.id is not null), '{}')
           from region r left join zone z on z.region_id = r.id
           group by r.id order by r.id"#,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, zones)| Region {
            name: format!("regions/{id}"),
            region_id: id,
            zones,
        })
        .collect())
}

/// The zones of a region, NOT_FOUND if the region does not exist.
pub async fn list_zones(db: impl PgExecutor<'_> + Copy, region: &str) -> ApiResult<Vec<Zone>> {
    require_region(db, region).await?;
    let zones: Vec<String> =
        sqlx::query_scalar("select id from zone where region_id = $1 order by id")
            .bind(region)
            .fetch_all(db)
            .await?;
    Ok(zones
        .into_iter()
        .map(|z| Zone {
            name: format!("regions/{region}/zones/{z}"),
            zone_id: z,
            region_id: region.to_string(),
        })
        .collect())
}

/// NOT_FOUND unless the region exists.
pub async fn require_region(db: impl PgExecutor<'_>, region: &str) -> ApiResult<()> {
    let found: Option<i32> = sqlx::query_scalar("select 1 from region where id = $1")
        .bind(region)
        .fetch_optional(db)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ApiError::NotFound(format!("region '{region}' not found")))
}

#[derive(sqlx::FromRow)]
struct TierRow {
    id: String,
    description: String,
    min_memory_size_gb: i32,
    max_memory_size_gb: i32,
    min_replica_count: i32,
    max_replica_count: i32,
    automatic_failover: bool,
}

impl TierRow {
    fn into_info(self) -> Option<TierInfo> {
        Some(TierInfo {
            name: format!("tiers/{}", self.id),
            tier: Tier::parse(&self.id)?,
            description: self.description,
            min_memory_size_gb: self.min_memory_size_gb,
            max_memory_size_gb: self.max_memory_size_gb,
            min_replica_count: self.min_replica_count,
            max_replica_count: self.max_replica_count,
            automatic_failover: self.automatic_failover,
        })
    }
}

/// Every tier with its limits.
pub async fn list_tiers(db: impl PgExecutor<'_>) -> ApiResult<Vec<TierInfo>> {
    let rows: Vec<TierRow> = sqlx::query_as("select * from tier order by id")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().filter_map(TierRow::into_info).collect())
}

/// One tier's limits.
pub async fn get_tier(db: impl PgExecutor<'_>, tier: Tier) -> ApiResult<TierInfo> {
    let row: Option<TierRow> = sqlx::query_as("select * from tier where id = $1")
        .bind(tier.as_str())
        .fetch_optional(db)
        .await?;
    row.and_then(TierRow::into_info)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("tier {} is not seeded", tier.as_str())))
}
