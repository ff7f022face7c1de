//! Regions, zones and tiers.

use cacheplane_types::{Region, Tier, TierInfo, Zone};
use sqlx::PgExecutor;

use crate::db::catalog as db;
use crate::error::{ApiError, ApiResult};

/// Every region with its zones.
pub async fn list_regions(db: impl PgExecutor<'_>) -> ApiResult<Vec<Region>> {
    Ok(db::list_regions(db)
        .await?
        .into_iter()
        .map(|r| Region {
            name: format!("regions/{}", r.id),
            region_id: r.id,
            zones: r.zones,
        })
        .collect())
}

/// The zones of a region, NOT_FOUND if the region does not exist.
pub async fn list_zones(db: impl PgExecutor<'_> + Copy, region: &str) -> ApiResult<Vec<Zone>> {
    require_region(db, region).await?;
    Ok(db::zones_of(db, region)
        .await?
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
    if db::region_exists(db, region).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("region '{region}' not found")))
    }
}

/// Every tier with its limits.
pub async fn list_tiers(db: impl PgExecutor<'_>) -> ApiResult<Vec<TierInfo>> {
    db::list_tiers(db).await
}

/// One tier's limits.
pub async fn get_tier(db: impl PgExecutor<'_>, tier: Tier) -> ApiResult<TierInfo> {
    db::get_tier(db, tier)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("tier {} is not seeded", tier.as_str())))
}
