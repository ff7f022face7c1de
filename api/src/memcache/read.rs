//! Get and list.

use cacheplane_types::{ListMemcacheInstancesResponse, MemcacheInstance, MemcacheInstanceState};
use chrono::Utc;

use crate::auth::Principal;
use crate::db::memcache as db;
use crate::error::ApiResult;
use crate::instances::filter::{self, Subject};
use crate::memcache::{render, MemcacheRef};
use crate::paging;

/// What the list's `filter` may name: `state` (a Memcached instance state) and
/// `labels.KEY`.
pub const FILTER: Subject = Subject {
    state: |s| MemcacheInstanceState::parse(s).map(MemcacheInstanceState::as_str),
    states: &["CREATING", "READY", "UPDATING", "DELETING", "FAILED"],
    state_example: "a Memcached instance state such as READY",
    tier: false,
};
use crate::state::AppState;

/// One instance.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    target: &MemcacheRef,
) -> ApiResult<MemcacheInstance> {
    principal.check_project(&target.project)?;
    let row = db::get(&state.pool, &target.project, &target.region, &target.name)
        .await?
        .ok_or_else(|| target.not_found())?;
    let nodes = db::nodes_of(&state.pool, &[row.id]).await?;
    Ok(render::to_wire(
        &row,
        &nodes,
        Utc::now(),
        state.config.host_timeout,
    ))
}

/// One page of a project's instances in a region (`-`: every region) that match
/// `filter`, by name.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project: &str,
    region: &str,
    page_size: Option<&str>,
    page_token: Option<&str>,
    filter: Option<&str>,
) -> ApiResult<ListMemcacheInstancesResponse> {
    principal.check_project(project)?;
    let size = paging::page_size(page_size)?;
    let filter = filter::parse_for(filter, FILTER)?;
    let after = paging::decode_region_key(page_token)?;
    if region != "-" {
        crate::catalog::require_region(&state.pool, region).await?;
    }
    let mut rows = db::list_page(
        &state.pool,
        project,
        region,
        &filter,
        after.as_ref().map(|(r, n)| (r.as_str(), n.as_str())),
        size + 1,
    )
    .await?;
    let next_page_token =
        paging::next_region_page(&mut rows, size, |r| (r.region_id.as_str(), r.name.as_str()));
    let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
    let nodes = db::nodes_of(&state.pool, &ids).await?;
    let now = Utc::now();
    Ok(ListMemcacheInstancesResponse {
        instances: rows
            .iter()
            .map(|r| render::to_wire(r, &nodes, now, state.config.host_timeout))
            .collect(),
        next_page_token,
    })
}
