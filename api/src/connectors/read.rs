//! Get and list.

use cacheplane_types::{Connector, ListConnectorsResponse};

use crate::auth::Principal;
use crate::connectors::ConnectorRef;
use crate::db::connectors as db;
use crate::error::ApiResult;
use crate::paging;
use crate::state::AppState;

/// One connector.
pub async fn get(
    state: &AppState,
    principal: &Principal,
    target: &ConnectorRef,
) -> ApiResult<Connector> {
    principal.check_project(&target.project)?;
    let row = db::get(&state.pool, &target.project, &target.region, &target.name)
        .await?
        .ok_or_else(|| target.not_found())?;
    Ok(row.to_wire())
}

/// One page of a project's connectors in a region (`-`: every region), by name.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project: &str,
    region: &str,
    page_size: Option<&str>,
    page_token: Option<&str>,
) -> ApiResult<ListConnectorsResponse> {
    principal.check_project(project)?;
    let size = paging::page_size(page_size)?;
    let after = paging::decode_region_key(page_token)?;
    if region != "-" {
        crate::catalog::require_region(&state.pool, region).await?;
    }
    let mut rows = db::list_page(
        &state.pool,
        project,
        region,
        after.as_ref().map(|(r, n)| (r.as_str(), n.as_str())),
        size + 1,
    )
    .await?;
    let next_page_token =
        paging::next_region_page(&mut rows, size, |r| (r.region_id.as_str(), r.name.as_str()));
    Ok(ListConnectorsResponse {
        connectors: rows.iter().map(|r| r.to_wire()).collect(),
        next_page_token,
    })
}
