//! The appliers of a patch, one per group of fields that reach the nodes: memory size,
//! engine settings, replica count and read replicas. Each checks its fields, changes the
//! nodes it must, and notes which nodes its hosts must see again.

use std::collections::{BTreeMap, HashMap};

use cacheplane_types::{NodeRole, PatchInstanceRequest, ReadReplicasMode, TierInfo};
use ipnet::IpNet;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::ranges::Purpose;
use crate::db::{hosts, nodes};
use crate::error::{ApiError, ApiResult};
use crate::instances::{
    add_nodes, render, validate, InstanceRow, NewNode, NodeRow, Placement, GIB,
};
use crate::instances::{placement_context, PlacementContext};
use crate::state::AppState;
use crate::{alloc, networks, scheduler};

/// A patch being applied to a locked instance.
pub(super) struct Patching<'a> {
    /// The server's state (its configuration).
    pub state: &'a AppState,
    /// The instance, locked.
    pub inst: &'a InstanceRow,
    /// Its nodes that are not being removed.
    pub nodes: &'a [NodeRow],
    /// The patch.
    pub req: &'a PatchInstanceRequest,
    /// Nodes whose configuration changed.
    pub touched: Vec<Uuid>,
}

fn missing(field: &str) -> ApiError {
    ApiError::field(field, "is in updateMask but not in the body")
}

impl Patching<'_> {
    fn touch_all(&mut self) {
        self.touched.extend(self.nodes.iter().map(|n| n.id));
    }

    /// `memorySizeGb`: resizes every node; returns the memory size from now on.
    pub async fn memory(
        &mut self,
        tx: &mut PgConnection,
        tier: &TierInfo,
        asked: bool,
    ) -> ApiResult<i32> {
        if !asked {
            return Ok(self.inst.memory_size_gb);
        }
        let gb = self
            .req
            .memory_size_gb
            .ok_or_else(|| missing("memorySizeGb"))?;
        let memory_gb = validate::memory_size(gb, tier)?;
        if memory_gb != self.inst.memory_size_gb {
            resize(tx, self.inst, self.nodes, memory_gb).await?;
            self.touch_all();
        }
        Ok(memory_gb)
    }

    /// `redisConfigs` (or a new memory size, which bounds `maxmemory-gb`): returns the new
    /// settings when they changed.
    pub fn configs(
        &mut self,
        asked: bool,
        memory_gb: i32,
    ) -> ApiResult<Option<BTreeMap<String, String>>> {
        let current = &self.inst.redis_configs.0;
        if !asked && memory_gb == self.inst.memory_size_gb {
            return Ok(None);
        }
        let wanted = match asked {
            true => self.req.redis_configs.clone().unwrap_or_default(),
            false => current.clone(),
        };
        let configs = validate::redis_configs_with_defaults(wanted, memory_gb)?;
        if configs == *current {
            return Ok(None);
        }
        self.touch_all();
        Ok(Some(configs))
    }

    /// `replicaCount`: adds replicas (placed like at create) or removes the newest ones;
    /// returns the replica count from now on.
    pub async fn replicas(
        &mut self,
        tx: &mut PgConnection,
        tier: &TierInfo,
        memory_gb: i32,
    ) -> ApiResult<i32> {
        let mode = render::read_replicas_mode(self.inst);
        let wanted = self
            .req
            .replica_count
            .ok_or_else(|| missing("replicaCount"))?;
        let wanted = validate::replica_count(Some(wanted), tier, mode)?;
        let changed = rescale(self.state, tx, self.inst, self.nodes, wanted, memory_gb).await?;
        if !changed.is_empty() {
            // The primary's read endpoint lists the replicas: its host must see the change.
            let primaries = self.nodes.iter().filter(|n| n.role == NodeRole::Primary);
            self.touched.extend(primaries.map(|n| n.id));
        }
        self.touched.extend(changed);
        Ok(wanted)
    }

    /// `readReplicasMode` (with `secondaryIpRange`): enables read replicas, which takes a
    /// further range for the instance; the read endpoint comes from the original range.
    /// It cannot be undone. Returns whether it was enabled now.
    pub async fn read_replicas(&mut self, tx: &mut PgConnection) -> ApiResult<bool> {
        let mode = self
            .req
            .read_replicas_mode
            .ok_or_else(|| missing("readReplicasMode"))?;
        match (mode, self.inst.read_replicas_enabled) {
            (ReadReplicasMode::ReadReplicasDisabled, true) => {
                return Err(ApiError::field(
                    "readReplicasMode",
                    "read replicas cannot be disabled once enabled",
                ))
            }
            (ReadReplicasMode::ReadReplicasDisabled, false)
            | (ReadReplicasMode::ReadReplicasEnabled, true) => return Ok(false),
            (ReadReplicasMode::ReadReplicasEnabled, false) => {}
        }
        validate::read_replicas_mode(mode, self.inst.tier)?;
        let raw = self
            .req
            .secondary_ip_range
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::field(
                    "secondaryIpRange",
                    "is required to enable read replicas: a /28 CIDR or 'auto'",
                )
            })?;
        let network = networks::get_by_id(&mut *tx, self.inst.network_id).await?;
        let exact = match raw {
            "auto" => None,
            raw => {
                let r = networks::parse_cidr("secondaryIpRange", raw)?;
                if r.prefix_len() != 28 {
                    return Err(ApiError::field(
                        "secondaryIpRange",
                        "must be a /28 or 'auto'",
                    ));
                }
                if !network.pool().contains(&r) {
                    return Err(ApiError::conflict(
                        "secondaryIpRange",
                        format!(
                            "{r} is not inside network '{}' ({})",
                            network.name,
                            network.pool()
                        ),
                    ));
                }
                Some(r)
            }
        };
        let got = alloc::reserve(tx, self.inst.id, network.id, Purpose::Secondary, exact).await?;
        match (got, exact) {
            (Some(_), _) => {}
            (None, Some(r)) => {
                return Err(ApiError::conflict(
                    "secondaryIpRange",
                    format!("{r} overlaps the range of another instance"),
                ))
            }
            (None, None) => {
                return Err(ApiError::ResourceExhausted(format!(
                    "network '{}' has no free /28 left",
                    network.name
                )))
            }
        }
        self.touch_all();
        Ok(true)
    }
}

/// Changes every node's memory, refusing before any change if a host lacks room.
async fn resize(
    tx: &mut PgConnection,
    inst: &InstanceRow,
    nodes: &[NodeRow],
    memory_gb: i32,
) -> ApiResult<()> {
    let delta = i64::from(memory_gb - inst.memory_size_gb) * GIB;
    if delta > 0 {
        let mut per_host: HashMap<&str, i64> = HashMap::new();
        for n in nodes {
            *per_host.entry(n.host_id.as_str()).or_default() += delta;
        }
        let ids: Vec<String> = per_host.keys().map(|h| h.to_string()).collect();
        for host in hosts::lock_free_memory(&mut *tx, &ids).await? {
            let need = per_host.get(host.id.as_str()).copied().unwrap_or(0);
            if need > host.free_bytes {
                return Err(ApiError::ResourceExhausted(format!(
                    "host '{}' in zone '{}' has {} GiB free; {memory_gb} GB needs {} GiB more",
                    host.id,
                    host.zone_id,
                    host.free_bytes.max(0) / GIB,
                    need / GIB
                )));
            }
        }
    }
    nodes::set_memory(tx, inst.id, i64::from(memory_gb) * GIB).await
}

/// Adds replicas (placed like at create) or removes the newest ones; returns the nodes
/// added or being removed.
async fn rescale(
    state: &AppState,
    tx: &mut PgConnection,
    inst: &InstanceRow,
    current_nodes: &[NodeRow],
    wanted: i32,
    memory_gb: i32,
) -> ApiResult<Vec<Uuid>> {
    let current = current_nodes
        .iter()
        .filter(|n| n.role == NodeRole::Replica)
        .count() as i32;
    if wanted < current {
        return nodes::remove_newest_replicas(tx, inst.id, i64::from(current - wanted)).await;
    }
    if wanted == current {
        return Ok(Vec::new());
    }
    let PlacementContext {
        range,
        mut candidates,
        region_zones,
    } = placement_context(&mut *tx, inst, state.config.host_timeout).await?;
    let all = nodes::of_instances(&mut *tx, &[inst.id]).await?;
    let existing_zones: Vec<String> = current_nodes.iter().map(|n| n.zone_id.clone()).collect();
    let zones = scheduler::plan_zones(
        (wanted - current) as usize,
        &existing_zones,
        &inst.location_id,
        inst.alternative_location_id.as_deref(),
        &region_zones,
    );
    let new: Vec<NewNode> = zones
        .into_iter()
        .map(|zone| NewNode {
            zone,
            role: NodeRole::Replica,
        })
        .collect();
    let used: Vec<IpNet> = all.iter().map(|n| n.address).collect();
    let placement = Placement {
        instance: inst.id,
        range,
        engine: &inst.redis_version,
        bytes: i64::from(memory_gb) * GIB,
        candidates: &mut candidates,
        hosts_in_use: current_nodes.iter().map(|n| n.host_id.clone()).collect(),
        used_addresses: &used,
        first_ordinal: all.iter().map(|n| n.ordinal + 1).max().unwrap_or(0),
    };
    add_nodes(tx, placement, &new).await
}
