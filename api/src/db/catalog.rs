//! Regions, zones and tiers (seeded by migrations, read-only here).

use cacheplane_types::Tier;
use sqlx::PgExecutor;

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

/// A tier and its limits.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TierRow {
    /// The tier (the row's id).
    #[sqlx(rename = "id", try_from = "String")]
    pub tier: Tier,
    /// Free text.
    pub description: String,
    /// Smallest `memorySizeGb`.
    pub min_memory_size_gb: i32,
    /// Largest `memorySizeGb`.
    pub max_memory_size_gb: i32,
    /// Fewest replicas.
    pub min_replica_count: i32,
    /// Most replicas.
    pub max_replica_count: i32,
    /// Whether a lost primary is replaced automatically.
    pub automatic_failover: bool,
}

/// Every tier, in id order.
pub async fn list_tiers(db: impl PgExecutor<'_>) -> ApiResult<Vec<TierRow>> {
    Ok(sqlx::query_as("select * from tier order by id")
        .fetch_all(db)
        .await?)
}

/// One tier (`None` when it is not seeded).
pub async fn get_tier(db: impl PgExecutor<'_>, tier: Tier) -> ApiResult<Option<TierRow>> {
    Ok(sqlx::query_as("select * from tier where id = $1")
        .bind(tier.as_str())
        .fetch_optional(db)
        .await?)
}
