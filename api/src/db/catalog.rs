//! Regions, zones and tiers (seeded by migrations, read-only here).

use cacheplane_types::{Tier, TierInfo};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgExecutor, Row};

use crate::error::ApiResult;

/// A region with its zones, in id order.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegionRow {
    /// Region id.
    pub id: String,
    /// Its zone ids.
    pub zones: Vec<String>,
}

/// Every region with its zones.
pub async fn list_regions(db: impl PgExecutor<'_>) -> ApiResult<Vec<RegionRow>> {
    Ok(sqlx::query_as(
        r#"select r.id, coalesce(array_agg(z.id order by z.id) filter (where z.id is not null), '{}') as zones
           from region r left join zone z on z.region_id = r.id
           group by r.id order by r.id"#,
    )
    .fetch_all(db)
    .await?)
}

/// Whether the region exists.
pub async fn region_exists(db: impl PgExecutor<'_>, region: &str) -> ApiResult<bool> {
    let found: Option<i32> = sqlx::query_scalar("select 1 from region where id = $1")
        .bind(region)
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

/// The zone ids of a region, in id order (empty for an unknown region).
pub async fn zones_of(db: impl PgExecutor<'_>, region: &str) -> ApiResult<Vec<String>> {
    Ok(
        sqlx::query_scalar("select id from zone where region_id = $1 order by id")
            .bind(region)
            .fetch_all(db)
            .await?,
    )
}

/// A `tier` row, decoded into the catalog type it is.
struct TierRow(TierInfo);

impl FromRow<'_, PgRow> for TierRow {
    fn from_row(row: &PgRow) -> sqlx::Result<Self> {
        let id: String = row.try_get("id")?;
        let tier = id.parse().map_err(|e| sqlx::Error::ColumnDecode {
            index: "id".into(),
            source: Box::new(e),
        })?;
        Ok(TierRow(TierInfo {
            name: format!("tiers/{id}"),
            tier,
            description: row.try_get("description")?,
            min_memory_size_gb: row.try_get("min_memory_size_gb")?,
            max_memory_size_gb: row.try_get("max_memory_size_gb")?,
            min_replica_count: row.try_get("min_replica_count")?,
            max_replica_count: row.try_get("max_replica_count")?,
            automatic_failover: row.try_get("automatic_failover")?,
        }))
    }
}

/// Every tier with its limits, in id order.
pub async fn list_tiers(db: impl PgExecutor<'_>) -> ApiResult<Vec<TierInfo>> {
    let rows: Vec<TierRow> = sqlx::query_as("select * from tier order by id")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// One tier's limits (`None` when it is not seeded).
pub async fn get_tier(db: impl PgExecutor<'_>, tier: Tier) -> ApiResult<Option<TierInfo>> {
    let row: Option<TierRow> = sqlx::query_as("select * from tier where id = $1")
        .bind(tier.as_str())
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| r.0))
}
