//! Hosts and the agent protocol: registration, heartbeats carrying observed node state,
//! and the host config (desired state) served by long-poll.

use std::time::Duration;

use cacheplane_types::{
    HeartbeatRequest, HeartbeatResponse, Host, HostConfig, HostState, NetworkSpec, NodeRole,
    NodeSpec, ReadEndpointSpec, RegisterHostRequest, ReleaseRangesResponse, Tier, TlsSpec,
    WriteFence,
};
use chrono::Utc;
use ipnet::IpNet;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::db::heartbeats as beats;
use crate::db::hosts::{self as db, HostRow, Registration, SpecRow};
use crate::error::{ApiError, ApiResult};
use crate::instances::layout;
use crate::instances::node_state::heartbeat_fresh;
use crate::notify::Change;
use crate::state::AppState;

/// Checks a host id: 1–63 lowercase letters, digits, dots and hyphens.
pub fn validate_host_id(field: &str, id: &str) -> ApiResult<()> {
    let ok = (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be 1-63 lowercase letters, digits, dots or hyphens, starting and ending with a letter or digit",
        ))
    }
}

fn to_wire(row: &HostRow, timeout: Duration) -> Host {
    let up = heartbeat_fresh(row.last_heartbeat_at, Utc::now(), timeout);
    Host {
        name: format!("hosts/{}", row.id),
        zone: row.zone_id.clone(),
        address: row.address.addr().to_string(),
        memory_bytes: row.memory_bytes,
        allocated_memory_bytes: row.allocated,
        engines: row.engines.clone(),
        state: if up { HostState::Up } else { HostState::Down },
        config_generation: row.generation,
        applied_generation: row.applied_generation,
        last_heartbeat_time: row.last_heartbeat_at,
        create_time: row.created_at,
    }
}

async fn get_row(db: impl PgExecutor<'_>, host: &str) -> ApiResult<HostRow> {
    db::get(db, host)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("host '{host}' not found")))
}

/// Registers a host or updates its registration; counts as a heartbeat.
pub async fn register(state: &AppState, host: &str, req: &RegisterHostRequest) -> ApiResult<Host> {
    validate_host_id("host", host)?;
    let address: std::net::IpAddr = req.address.parse().map_err(|_| {
        ApiError::field("address", format!("'{}' is not an IP address", req.address))
    })?;
    if req.memory_bytes <= 0 {
        return Err(ApiError::field("memoryBytes", "must be more than 0"));
    }
    if req.engines.len() > 16
        || req
            .engines
            .iter()
            .any(|e| e.is_empty() || e.chars().count() > 32)
    {
        return Err(ApiError::field(
            "engines",
            "at most 16 names of 1-32 characters",
        ));
    }
    db::upsert(
        &state.pool,
        &Registration {
            id: host,
            zone: &req.zone,
            address: IpNet::from(address),
            memory_bytes: req.memory_bytes,
            engines: &req.engines,
        },
    )
    .await?;
    get(state, host).await
}

/// Every host.
pub async fn list(state: &AppState) -> ApiResult<Vec<Host>> {
    Ok(db::list(&state.pool)
        .await?
        .iter()
        .map(|r| to_wire(r, state.config.host_timeout))
        .collect())
}

/// One host.
pub async fn get(state: &AppState, host: &str) -> ApiResult<Host> {
    Ok(to_wire(
        &get_row(&state.pool, host).await?,
        state.config.host_timeout,
    ))
}

/// What a heartbeat leaves for the background work to look at once it is committed.
#[derive(Debug)]
pub struct Heartbeat {
    /// The answer to the agent.
    pub response: HeartbeatResponse,
    /// Unfinished operations on instances with a node on the host (or one just removed
    /// from it): they may move forward now.
    pub operations: Vec<Uuid>,
    /// Instances whose health the report may have changed.
    pub instances: Vec<Uuid>,
}

/// Records a heartbeat: the host's applied generation and each node's observed state.
/// A report older than one already received updates only the heartbeat time. Nodes being
/// removed that the agent no longer reports after applying their removal are gone.
pub async fn heartbeat(
    state: &AppState,
    host: &str,
    req: &HeartbeatRequest,
) -> ApiResult<Heartbeat> {
    if req.applied_generation < 0 {
        return Err(ApiError::field("appliedGeneration", "must not be negative"));
    }
    let mut tx = state.pool.begin().await?;
    let Some(current) =
        beats::record_beat(&mut tx, host, req.applied_generation, req.free_memory_bytes).await?
    else {
        return Err(refused_beat(&mut tx, host, req.applied_generation).await);
    };
    let mut beat = Heartbeat {
        response: HeartbeatResponse {
            config_generation: current.generation,
        },
        operations: Vec::new(),
        instances: Vec::new(),
    };
    let mut releases = false;
    if req.applied_generation >= current.applied_generation {
        let recorded = beats::record_reports(
            &mut tx,
            host,
            req.applied_generation,
            &req.nodes,
            &unwell_nodes(req),
        )
        .await?;
        beat.operations = recorded.operations;
        beat.instances = recorded.instances;
        releases = recorded.releases;
    }
    tx.commit().await?;
    // Freeing ranges locks networks: done apart, never under this host's lock.
    if releases {
        release_quarantine(state, host, Some(req.applied_generation)).await;
    }
    Ok(beat)
}

/// Why [`beats::record_beat`] recorded nothing: the host is not registered, or the agent
/// reports a generation newer than the host's.
async fn refused_beat(tx: &mut PgConnection, host: &str, applied: i64) -> ApiError {
    match db::generation(&mut *tx, host).await {
        Err(e) => e,
        Ok(None) => ApiError::NotFound(format!("host '{host}' is not registered")),
        Ok(Some(generation)) => ApiError::FailedPrecondition(format!(
            "appliedGeneration {applied} is newer than the host's config generation {generation}"
        )),
    }
}

/// Releases every range quarantined against `host`, whatever it applied (an operator's
/// call for a host gone for good).
pub async fn release_ranges(state: &AppState, host: &str) -> ApiResult<ReleaseRangesResponse> {
    get_row(&state.pool, host).await?;
    let mut tx = state.pool.begin().await?;
    let freed = crate::alloc::release_quarantine(&mut tx, host, None).await?;
    tx.commit().await?;
    tracing::warn!(host, ?freed, "quarantined ranges released by an operator");
    Ok(ReleaseRangesResponse {
        released_ranges: freed.iter().map(|r| r.to_string()).collect(),
    })
}

/// Returns to the pool the ranges the host held in quarantine (its agent has applied a
/// config without their nodes, or an operator said so with `applied = None`). A failure
/// is logged: the next heartbeat tries again.
async fn release_quarantine(state: &AppState, host: &str, applied: Option<i64>) {
    let result = async {
        let mut tx = state.pool.begin().await?;
        let freed = crate::alloc::release_quarantine(&mut tx, host, applied).await?;
        tx.commit().await?;
        ApiResult::Ok(freed)
    }
    .await;
    match result {
        Ok(freed) if !freed.is_empty() => {
            tracing::info!(host, ?freed, "ranges released from quarantine");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(host, error = %e, "releasing quarantined ranges failed; will retry")
        }
    }
}

/// The reported nodes that are not well: their engine is down or failed, or a replica's
/// link to its primary is down. Healthy reports, the common case, cost nothing more.
fn unwell_nodes(req: &HeartbeatRequest) -> Vec<Uuid> {
    req.nodes
        .iter()
        .filter(|r| {
            !r.process_up
                || r.error.is_some()
                || r.unresponsive_seconds.is_some()
                || (r.role == Some(NodeRole::Replica) && r.master_link_up != Some(true))
        })
        .map(|r| r.node_id)
        .collect()
}

/// The host's desired config now.
pub async fn config(db: impl PgExecutor<'_> + Copy, host: &str) -> ApiResult<HostConfig> {
    let generation = db::generation(db, host)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("host '{host}' not found")))?;
    let nodes = db::specs(db, host)
        .await?
        .into_iter()
        .map(node_spec)
        .collect();
    Ok(HostConfig {
        host: format!("hosts/{host}"),
        generation,
        nodes,
        connectors: crate::connectors::specs_on_host(db, host).await?,
        memcache_nodes: Vec::new(),
        discovery_endpoints: Vec::new(),
    })
}

/// What an agent runs for one node.
fn node_spec(r: SpecRow) -> NodeSpec {
    let role = r.role;
    let at = |offset| match r.primary_range {
        Some(IpNet::V4(range)) => Some(layout::offset(range, offset).to_string()),
        _ => None,
    };
    let endpoint = at(layout::PRIMARY_ENDPOINT_OFFSET);
    let port = u16::try_from(r.port).unwrap_or(6379);
    let read_endpoint = at(layout::READ_ENDPOINT_OFFSET)
        .filter(|_| r.read_replicas_enabled && role == NodeRole::Primary)
        .map(|address| ReadEndpointSpec {
            address,
            port,
            replicas: r
                .replica_addresses
                .iter()
                .map(|a| a.addr().to_string())
                .collect(),
        });
    NodeSpec {
        node_id: r.id,
        instance: format!(
            "projects/{}/locations/{}/instances/{}",
            r.project_id, r.region_id, r.name
        ),
        engine_version: r.redis_version,
        role,
        address: r.address.addr().to_string(),
        port,
        endpoint_address: endpoint.filter(|_| role == NodeRole::Primary),
        primary_address: r
            .primary_address
            .map(|a| a.addr().to_string())
            .filter(|_| role == NodeRole::Replica),
        maxmemory_bytes: r.memory_bytes,
        read_endpoint,
        redis_configs: r.redis_configs.0,
        // A BASIC instance has no replica to fail over to: its agent restarts the engine
        // where it is.
        restart_in_place: r.tier == Tier::Basic,
        auth_string: r.auth_enabled.then_some(r.auth_string),
        admin_secret: Some(r.engine_admin_secret),
        // Lifted by the health monitor while no replica could acknowledge.
        write_fence: (r.tier == Tier::StandardHa && role == NodeRole::Primary && r.write_fence)
            .then_some(WriteFence {
                min_replicas: 1,
                max_lag_seconds: WRITE_FENCE_MAX_LAG_SECONDS,
            }),
        network: Some(NetworkSpec {
            name: r.network_name,
            ip_range: r.network_ip_range.to_string(),
        }),
        switchover: crate::instances::failover::switchover::spec(
            r.switchover_id,
            r.switchover_target,
        ),
        tls: match (r.tls_ca_cert, r.tls_server_cert, r.tls_server_key) {
            (Some(ca_cert), Some(cert), Some(key)) => Some(TlsSpec { ca_cert, cert, key }),
            _ => None,
        },
    }
}

/// How stale a replica's acknowledgement may be before a STANDARD_HA primary stops
/// taking writes (replicas acknowledge every second). It bounds how long a primary cut
/// off from its replicas, or frozen and thawed, keeps accepting writes that a failover
/// would lose. See docs/architecture.md#failover-guarantees.
pub const WRITE_FENCE_MAX_LAG_SECONDS: u32 = 3;

/// The host config once its generation is newer than `known` (at once if it already is),
/// or the current one when `timeout` passes.
pub async fn wait_config(
    state: &AppState,
    host: &str,
    known: i64,
    timeout: Duration,
) -> ApiResult<HostConfig> {
    let timeout = timeout.min(state.config.max_wait);
    let pool = &state.pool;
    let found = state
        .notifier
        .wait_for(
            |c| matches!(c, Change::Host(h) if h == host),
            timeout,
            || async move {
                match db::generation(pool, host).await? {
                    None => Err(ApiError::NotFound(format!("host '{host}' not found"))),
                    Some(g) if g > known => Ok(Some(())),
                    Some(_) => Ok(None),
                }
            },
        )
        .await?;
    let _ = found;
    config(pool, host).await
}
