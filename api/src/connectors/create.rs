//! Create: validate, then in one transaction reserve the /28, place the connector (netns
//! mode: on the least loaded UP host of the region, whose config generation goes up)
//! and record the operation. In loopback and host modes the operation is done at once.
//! A create that finds no host or no free /28 still answers with an operation, already
//! done with RESOURCE_EXHAUSTED, and keeps nothing else (as instances do).

use cacheplane_types::{ConnectorState, CreateConnectorRequest, Operation, OperationVerb};
use ipnet::Ipv4Net;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
use crate::config::NetworkMode;
use crate::connectors::{namespace_of, ConnectorRef};
use crate::db::connectors::{self as db, NewConnector};
use crate::error::{ApiError, ApiResult};
use crate::networks::NetworkRow;
use crate::operations::{self, Finished};
use crate::scheduler::Candidate;
use crate::state::AppState;
use crate::{alloc, idempotency, networks, quotas, scheduler};

/// Creates a connector; answers with its operation.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    target: &ConnectorRef,
    request_id: Option<&str>,
    req: CreateConnectorRequest,
) -> ApiResult<Operation> {
    let creation = idempotency::begin_create_call(
        state,
        principal,
        target.scope(),
        "connectorId",
        &target.name,
        &target.full_name(),
        request_id,
        &req,
    )
    .await?;
    if let Some(earlier) = creation.earlier {
        return Ok(earlier.to_wire());
    }
    let idempotency::Creation {
        mut tx,
        op_id,
        request_id,
        fingerprint,
        ..
    } = creation;
    match insert_and_place(state, &mut tx, target, &req, op_id).await {
        Ok(finished) => {
            tx.commit().await?;
            state.metrics.operations_finished(finished);
            Ok(operations::get_by_id(&state.pool, op_id).await?.to_wire())
        }
        Err(ApiError::ResourceExhausted(msg)) => {
            tx.rollback().await?;
            idempotency::record_exhausted_create(
                state,
                target.scope(),
                request_id,
                &fingerprint,
                |id| target.new_operation(id, OperationVerb::Create, "no room"),
                msg,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

/// Checks `ipCidrRange`: an aligned /28 inside the network's pool.
fn requested_range(raw: &str, network: &NetworkRow) -> ApiResult<Ipv4Net> {
    let r = networks::parse_cidr("ipCidrRange", raw)?;
    if r.prefix_len() != 28 {
        return Err(ApiError::field(
            "ipCidrRange",
            format!("{r} is not a /28: a connector's range is exactly a /28"),
        ));
    }
    let pool = network.pool();
    if !pool.contains(&r) {
        return Err(ApiError::conflict(
            "ipCidrRange",
            format!("{r} is not inside network '{}' ({pool})", network.name),
        ));
    }
    Ok(r)
}

/// The least loaded UP host: fewest connectors, then most free memory, then lowest id.
fn pick_host(candidates: &[Candidate], load: &[(String, i64)]) -> Option<String> {
    let count = |h: &str| load.iter().find(|(id, _)| id == h).map_or(0, |(_, n)| *n);
    candidates
        .iter()
        .filter(|c| c.up)
        .min_by(|a, b| {
            count(&a.id)
                .cmp(&count(&b.id))
                .then(b.free_bytes.cmp(&a.free_bytes))
                .then(a.id.cmp(&b.id))
        })
        .map(|c| c.id.clone())
}

async fn insert_and_place(
    state: &AppState,
    tx: &mut PgConnection,
    target: &ConnectorRef,
    req: &CreateConnectorRequest,
    op_id: Uuid,
) -> ApiResult<Option<Finished>> {
    if req.network.is_empty() {
        return Err(ApiError::field("network", "is required"));
    }
    let network =
        networks::resolve_as(&mut *tx, "network", &target.project, Some(&req.network)).await?;
    let exact = match req.ip_cidr_range.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(requested_range(raw, &network)?),
        None => None,
    };
    quotas::check_connector(tx, &state.config, &target.project).await?;
    let id = Uuid::new_v4();
    let namespace = namespace_of(id);
    // Hosts before the network, as every path that takes both.
    let placed = match state.config.network_mode {
        NetworkMode::Netns => {
            let candidates =
                scheduler::load_candidates(&mut *tx, &target.region, state.config.host_timeout)
                    .await?;
            let ids: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
            let load = db::per_host(&mut *tx, &ids).await?;
            let host = pick_host(&candidates, &load).ok_or_else(|| {
                ApiError::ResourceExhausted(format!(
                    "region '{}' has no UP host to realise connector '{}' on",
                    target.region, target.name
                ))
            })?;
            let generation = crate::db::hosts::bump_generation(&mut *tx, &host).await?;
            Some((host, generation))
        }
        NetworkMode::Loopback | NetworkMode::Host => None,
    };
    db::insert(
        tx,
        &NewConnector {
            id,
            project: &target.project,
            region: &target.region,
            name: &target.name,
            network: network.id,
            state: if placed.is_some() {
                ConnectorState::Creating
            } else {
                ConnectorState::Ready
            },
            host: placed
                .as_ref()
                .map(|(h, _)| (h.as_str(), namespace.as_str())),
            desired_generation: placed.as_ref().map(|(_, g)| *g),
        },
    )
    .await?;
    match (
        alloc::reserve_connector(tx, id, network.id, exact).await?,
        exact,
    ) {
        (Some(_), _) => {}
        (None, Some(r)) => {
            return Err(ApiError::conflict(
                "ipCidrRange",
                format!(
                    "{r} is not free in network '{}': an instance or another connector holds (part of) it, or it waits for a silent host to release it",
                    network.name
                ),
            ))
        }
        (None, None) => {
            return Err(ApiError::ResourceExhausted(format!(
                "network '{}' ({}) has no free /28 left",
                network.name,
                network.pool()
            )))
        }
    }
    let detail = match &placed {
        Some((host, generation)) => {
            format!("waiting for host {host} to apply config generation {generation}")
        }
        None => "done".to_string(),
    };
    let new_op = target.new_operation(op_id, OperationVerb::Create, &detail);
    operations::insert_for_connector(tx, new_op, id).await?;
    if placed.is_none() {
        let row = db::get_by_id(&mut *tx, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("connector vanished in its own transaction"))?;
        return operations::finish_connector(tx, op_id, Ok(Some(&row.to_wire()))).await;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, free: i64, up: bool) -> Candidate {
        Candidate {
            id: id.into(),
            zone_id: "z".into(),
            free_bytes: free,
            engines: Vec::new(),
            up,
        }
    }

    #[test]
    fn the_least_loaded_up_host_takes_the_connector() {
        let hosts = [
            host("a", 10, true),
            host("b", 5, true),
            host("c", 99, false),
        ];
        assert_eq!(pick_host(&hosts, &[]), Some("a".into()));
        assert_eq!(pick_host(&hosts, &[("a".into(), 1)]), Some("b".into()));
        assert_eq!(pick_host(&hosts[2..], &[]), None);
    }
}
