//! Repair: a replica lost with its host (silent for longer than `--repair-after`) is
//! re-created on another host, with a new address from the instance's range, and the
//! lost node is dropped (its agent stops the engine if the host ever returns, since the
//! node has left its config). The health monitor decides when
//! ([`crate::background::health::lost_replicas`]); this module places and writes.

use std::time::Duration;

use cacheplane_types::NodeRole;
use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{hosts, nodes, quarantine};
use crate::error::ApiResult;
use crate::instances::{add_nodes, touch_nodes, InstanceRow, NewNode, NodeRow, Placement};
use crate::instances::{placement_context, PlacementContext};
use crate::scheduler;

/// Re-creates `lost` (a replica of `inst`, whose nodes are `all`, or any node of an
/// instance being created, which holds no data yet) on an up host: in its
/// zone, else the instance's alternative zone, else any zone of the region. Returns the
/// new node, or `None` when no host has room (the instance stays REPAIRING and the next
/// sweep tries again). The caller's transaction holds the instance's row lock.
pub async fn replace_lost(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    all: &[NodeRow],
    lost: &NodeRow,
    host_timeout: Duration,
) -> ApiResult<Option<Uuid>> {
    let PlacementContext {
        range,
        mut candidates,
        region_zones,
    } = placement_context(&mut *tx, inst, host_timeout).await?;
    let in_use: Vec<String> = all
        .iter()
        .filter(|n| !n.removing && n.id != lost.id)
        .map(|n| n.host_id.clone())
        .collect();
    let zones = scheduler::repair_zones(
        &lost.zone_id,
        inst.alternative_location_id.as_deref(),
        &region_zones,
    );
    // A zone with a free host that holds no other node of the instance first; then any
    // zone where a host has room.
    let fits = |z: &str, spread: bool| {
        candidates.iter().any(|c| {
            c.zone_id == z
                && c.up
                && c.free_bytes >= lost.memory_bytes
                && c.engines.contains(&inst.redis_version)
                && !(spread && in_use.contains(&c.id))
        })
    };
    let zone = zones
        .iter()
        .find(|z| fits(z, true))
        .or_else(|| zones.iter().find(|z| fits(z, false)))
        .cloned();
    let Some(zone) = zone else {
        return Ok(None);
    };
    // Every address the instance's nodes hold stays taken, the lost node's included: its
    // engine may still hold it on the silent host.
    let used: Vec<IpNet> = all.iter().map(|n| n.address).collect();
    let placement = Placement {
        instance: inst.id,
        range,
        engine: &inst.redis_version,
        bytes: lost.memory_bytes,
        candidates: &mut candidates,
        hosts_in_use: in_use,
        used_addresses: &used,
        first_ordinal: all.iter().map(|n| n.ordinal + 1).max().unwrap_or(0),
    };
    // The lost node's host (should it return) and the primary's (its read endpoint lists
    // the replicas) get a new config.
    let mut changed = vec![lost.id];
    changed.extend(
        all.iter()
            .filter(|n| !n.removing && n.role == NodeRole::Primary)
            .map(|n| n.id),
    );
    hosts::bump_generations_of(&mut *tx, &changed).await?;
    // Its engine may still hold its address: the range is not handed out again, once
    // the instance lets it go, before that host confirms the engine is gone.
    quarantine::hold(&mut *tx, inst.id, std::slice::from_ref(&lost.host_id)).await?;
    nodes::delete(&mut *tx, &[lost.id]).await?;
    let new = add_nodes(
        &mut *tx,
        placement,
        &[NewNode {
            zone,
            role: lost.role,
        }],
    )
    .await?;
    if lost.role == NodeRole::Primary {
        // A primary re-placed (only ever during a create, before it holds data): the
        // other nodes follow its new address.
        let others: Vec<Uuid> = all
            .iter()
            .filter(|n| !n.removing && n.id != lost.id)
            .map(|n| n.id)
            .collect();
        touch_nodes(&mut *tx, &others).await?;
    }
    Ok(new.first().copied())
}
