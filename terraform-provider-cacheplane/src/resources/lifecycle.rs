//! What the resources share in their lifecycle: sending a call that answers with an
//! operation and waiting for it, deleting (a resource already gone counts as deleted),
//! what `read` makes of a fetch, and `terraform import`.

use std::time::Duration;

use cacheplane_types::Operation;
use reqwest::Method;
use tf_provider::value::ValueEmpty;
use tf_provider::Diagnostics;

use crate::client::{absent_as_none, ApiError, Client};
use crate::diags;
use crate::names::{parse_regional, Regional};
use crate::operations;
use crate::provider::Settings;

/// How long one attempt of a mutating call may take (the wait for its operation is
/// separate).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A mutating call of the API: method, path under `/v1`, query and JSON body.
pub struct Call<'a> {
    /// POST, PATCH or DELETE.
    pub method: Method,
    /// The path segments.
    pub path: Vec<&'a str>,
    /// The query parameters.
    pub query: Vec<(&'a str, &'a str)>,
    /// The body, if any.
    pub body: Option<serde_json::Value>,
}

/// A new `requestId`: one per operation, sent with every attempt of its call.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sends `call`, which answers with an operation; `None`, with the error in `diags`, when
/// it failed. `what` says what is being done (`creating connector projects/p/…`).
pub async fn send(
    diags: &mut Diagnostics,
    client: &Client,
    call: Call<'_>,
    what: &str,
    attributes: &[&str],
) -> Option<Operation> {
    let sent = client
        .call(
            call.method,
            &call.path,
            &call.query,
            call.body.as_ref(),
            CALL_TIMEOUT,
        )
        .await;
    diags::ok(diags, sent, what, attributes)
}

/// Waits up to `timeout` for `op`; the finished operation, or `None` with why not in
/// `diags` (it failed, or it goes on in the API).
pub async fn wait(
    diags: &mut Diagnostics,
    client: &Client,
    op: Operation,
    timeout: Duration,
    what: &str,
    attributes: &[&str],
) -> Option<Operation> {
    match operations::wait(client, op, timeout).await {
        Ok(op) => Some(op),
        Err(e) => {
            diags::wait(diags, what, &e, attributes);
            None
        }
    }
}

/// [`send`]s `call`, then [`wait`]s for its operation.
pub async fn run(
    diags: &mut Diagnostics,
    client: &Client,
    call: Call<'_>,
    timeout: Duration,
    what: &str,
    attributes: &[&str],
) -> Option<Operation> {
    let op = send(diags, client, call, what, attributes).await?;
    wait(diags, client, op, timeout, what, attributes).await
}

/// Deletes the resource at `path` (with a `requestId`) and waits up to `timeout` for the
/// operation. A resource the API no longer has is already deleted: `Some(())`.
pub async fn delete_and_wait(
    diags: &mut Diagnostics,
    client: &Client,
    path: &[&str],
    timeout: Duration,
    what: &str,
    attributes: &[&str],
) -> Option<()> {
    let rid = request_id();
    let sent = client
        .call(
            Method::DELETE,
            path,
            &[("requestId", rid.as_str())],
            None::<&()>,
            CALL_TIMEOUT,
        )
        .await;
    let Some(op) = diags::ok(diags, absent_as_none(sent), what, attributes)? else {
        // Already gone.
        return Some(());
    };
    wait(diags, client, op, timeout, what, attributes)
        .await
        .map(drop)
}

/// What `read` makes of a fetch: the state the API has; `None` when the resource is gone
/// (it leaves the Terraform state, and the next plan creates it again); `prior`, with the
/// error in `diags`, when the API could not be read.
pub fn refreshed<S>(
    diags: &mut Diagnostics,
    fetched: Result<Option<S>, ApiError>,
    prior: S,
    what: &str,
    attributes: &[&str],
) -> Option<S> {
    match fetched {
        Ok(fresh) => fresh,
        Err(e) => {
            diags::api(diags, what, &e, attributes);
            Some(prior)
        }
    }
}

/// What `terraform import ID` names; `None`, with the error, when `parsed` (ID parsed)
/// failed. `noun` names the kind of resource (`connector`).
pub fn import_target<T>(
    diags: &mut Diagnostics,
    noun: &str,
    parsed: Result<T, String>,
) -> Option<T> {
    match parsed {
        Ok(t) => Some(t),
        Err(e) => {
            diags.root_error_short(format!("cannot import {noun}: {e}"));
            None
        }
    }
}

/// [`import_target`] for a regional resource of `collection`: a full name, or an id in
/// the provider's project and region.
pub fn import_regional(
    diags: &mut Diagnostics,
    s: &Settings,
    id: &str,
    collection: &str,
    noun: &str,
) -> Option<Regional> {
    import_target(
        diags,
        noun,
        parse_regional(id, collection, &s.project, &s.region),
    )
}

/// The imported state: an error when `name` does not exist or could not be read (`what`
/// says what was being done).
pub fn imported<S>(
    diags: &mut Diagnostics,
    fetched: Result<Option<S>, ApiError>,
    noun: &str,
    name: &str,
    what: &str,
    attributes: &[&str],
) -> Option<(S, ValueEmpty)> {
    let missing = format!("cannot import {noun}: {name} does not exist");
    diags::found(diags, fetched, what, &missing, attributes).map(|s| (s, ValueEmpty::default()))
}
