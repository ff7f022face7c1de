//! Lists the API answers page by page: reading one up to a limit.

use cacheplane_types::{Instance, ListInstancesResponse, ListOperationsResponse, Operation};
use serde::de::DeserializeOwned;

use super::Ctx;
use crate::error::Result;

/// The largest page the API serves.
const MAX_PAGE: usize = 1000;

/// One page of a list answer.
pub trait Page: DeserializeOwned {
    /// What the list holds.
    type Item;
    /// The page's items, and the token of the next page (missing or empty on the last).
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for ListInstancesResponse {
    type Item = Instance;
    fn into_parts(self) -> (Vec<Instance>, Option<String>) {
        (self.instances, self.next_page_token)
    }
}

impl Page for ListOperationsResponse {
    type Item = Operation;
    fn into_parts(self) -> (Vec<Operation>, Option<String>) {
        (self.operations, self.next_page_token)
    }
}

/// Up to `limit` items of the list at `path`, page by page, with `query` (a filter, say)
/// added to every call.
pub async fn list<P: Page>(
    ctx: &Ctx,
    path: &[&str],
    query: &[(&str, &str)],
    limit: usize,
) -> Result<Vec<P::Item>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    while all.len() < limit {
        let size = (limit - all.len()).min(MAX_PAGE).to_string();
        let mut page_query = vec![("pageSize", size.as_str())];
        page_query.extend_from_slice(query);
        if let Some(t) = &token {
            page_query.push(("pageToken", t));
        }
        let (items, next) = ctx.client.get::<P>(path, &page_query).await?.into_parts();
        all.extend(items);
        match next {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    all.truncate(limit);
    Ok(all)
}
