//! `cachectl regions|zones|tiers list`: what an instance can be created in and as.

use cacheplane_types::{ListRegionsResponse, ListTiersResponse, ListZonesResponse};

use super::Ctx;
use crate::error::Result;
use crate::output::{self, emit};

/// Regions.
#[derive(Debug, clap::Subcommand)]
pub enum RegionsCommand {
    /// Lists the regions and their zones.
    #[command(after_help = "Examples:\n  \
        cachectl regions list\n  \
        cachectl regions list --format json")]
    List,
}

/// Zones of a region.
#[derive(Debug, clap::Subcommand)]
pub enum ZonesCommand {
    /// Lists the zones of the region (--region, CACHECTL_REGION or the config file).
    #[command(after_help = "Examples:\n  \
        cachectl zones list --region local")]
    List,
}

/// Service tiers.
#[derive(Debug, clap::Subcommand)]
pub enum TiersCommand {
    /// Lists the tiers and their limits (sizes, replicas).
    #[command(after_help = "Examples:\n  \
        cachectl tiers list")]
    List,
}

/// Runs `regions …`.
pub async fn regions(ctx: &Ctx, cmd: RegionsCommand) -> Result<()> {
    let RegionsCommand::List = cmd;
    let r: ListRegionsResponse = ctx.client.get(&["v1", "regions"], &[]).await?;
    emit(ctx.format, &r.regions, |regions| {
        output::rows(
            &["REGION", "ZONES"],
            regions
                .iter()
                .map(|r| vec![r.region_id.clone(), r.zones.join(",")]),
        )
    })
}

/// Runs `zones …`.
pub async fn zones(ctx: &Ctx, cmd: ZonesCommand) -> Result<()> {
    let ZonesCommand::List = cmd;
    let region = ctx.region()?;
    let r: ListZonesResponse = ctx
        .client
        .get(&["v1", "regions", region, "zones"], &[])
        .await?;
    emit(ctx.format, &r.zones, |zones| {
        output::rows(
            &["ZONE", "REGION"],
            zones
                .iter()
                .map(|z| vec![z.zone_id.clone(), z.region_id.clone()]),
        )
    })
}

/// Runs `tiers …`.
pub async fn tiers(ctx: &Ctx, cmd: TiersCommand) -> Result<()> {
    let TiersCommand::List = cmd;
    let r: ListTiersResponse = ctx.client.get(&["v1", "tiers"], &[]).await?;
    emit(ctx.format, &r.tiers, |tiers| {
        output::rows(
            &["TIER", "SIZE_GB", "REPLICAS", "FAILOVER", "DESCRIPTION"],
            tiers.iter().map(|t| {
                vec![
                    output::wire(&t.tier),
                    format!("{}-{}", t.min_memory_size_gb, t.max_memory_size_gb),
                    format!("{}-{}", t.min_replica_count, t.max_replica_count),
                    if t.automatic_failover {
                        "automatic"
                    } else {
                        "-"
                    }
                    .to_string(),
                    t.description.clone(),
                ]
            }),
        )
    })
}
