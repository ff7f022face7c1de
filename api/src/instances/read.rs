//! Get, list, get-auth-string and the nodes' current figures.

use cacheplane_types::{Instance, InstanceAuthString, InstanceNodeMetrics, ListInstancesResponse};
use chrono::Utc;

use crate::auth::Principal;
use crate::db::{instances as db, nodes};
use crate::error::{ApiError, ApiResult};
use crate::instances::{filter, render, InstanceRef, InstanceRow};
use crate::paging;
use crate::state::AppState;

async fn find(state: &AppState, target: &InstanceRef) -> ApiResult<InstanceRow> {
    db::get(&state.pool, &target.project, &target.region, &target.name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("instance '{}' not found", target.name)))
}

/// One instance.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
) -> ApiResult<Instance> {
    principal.check_project(&target.project)?;
    let inst = find(state, target).await?;
    let nodes = nodes::of_instances(&state.pool, &[inst.id]).await?;
    Ok(render::to_wire(
        &inst,
        &nodes,
        Utc::now(),
        state.config.host_timeout,
    ))
}

/// One page of instances.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project: &str,
    region: &str,
    page_size: Option<&str>,
    page_token: Option<&str>,
    filter: Option<&str>,
) -> ApiResult<ListInstancesResponse> {
    principal.check_project(project)?;
    let size = paging::page_size(page_size)?;
    let filter = filter::parse(filter)?;
    let after = paging::decode_region_key(page_token)?;
    if region != "-" {
        crate::catalog::require_region(&state.pool, region).await?;
    }
    let mut rows = db::list(&state.pool, project, region, &filter, after, size + 1).await?;
    let next_page_token =
        paging::next_region_page(&mut rows, size, |r| (r.region_id.as_str(), r.name.as_str()));
    let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    let nodes = nodes::of_instances(&state.pool, &ids).await?;
    let now = Utc::now();
    Ok(ListInstancesResponse {
        instances: rows
            .iter()
            .map(|r| render::to_wire(r, &nodes, now, state.config.host_timeout))
            .collect(),
        next_page_token,
    })
}

/// The AUTH password of an instance (empty when AUTH is off).
pub async fn auth_string(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
) -> ApiResult<InstanceAuthString> {
    principal.check_project(&target.project)?;
    let inst = find(state, target).await?;
    Ok(InstanceAuthString {
        auth_string: if inst.auth_enabled {
            inst.auth_string
        } else {
            String::new()
        },
    })
}

/// The current figures of an instance's nodes, as their agents last reported them.
pub async fn node_metrics(
    state: &AppState,
    principal: &Principal,
    target: &InstanceRef,
) -> ApiResult<InstanceNodeMetrics> {
    principal.check_project(&target.project)?;
    let inst = find(state, target).await?;
    let nodes = nodes::of_instances(&state.pool, &[inst.id]).await?;
    Ok(render::node_metrics(
        &inst,
        &nodes,
        Utc::now(),
        state.config.host_timeout,
    ))
}
