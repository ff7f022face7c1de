//! The driver of connector operations (netns mode): a create is done once the
//! connector's host has applied the config generation that added it; a delete once the
//! host applied the generation that removed it, or at once when the host is silent (the
//! range is then quarantined against the host). A create whose host stays silent past
//! `--operation-deadline` fails and the connector is removed. [`decide`] makes the
//! decision; [`advance`] reads and writes.

use std::time::Duration;

use cacheplane_types::{ConnectorState, OperationVerb, Status};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::connectors::delete::remove;
use crate::connectors::ConnectorRow;
use crate::db::connectors::{self as db, TryLock};
use crate::db::hosts::{self, HostRow};
use crate::error::ApiResult;
use crate::instances::node_state::heartbeat_fresh;
use crate::operations::{self, Finished, OperationRow};

#[cfg(test)]
mod tests;

/// What to do next with a connector's operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The connector is gone: a delete has succeeded, a create cannot.
    Gone,
    /// Its host applied the change (or there is no host): the create is READY.
    Ready,
    /// Its host applied the removal: delete the row, free the range.
    Remove,
    /// Its host is silent: delete the row, quarantine the range against the host.
    RemoveHeld,
    /// A create whose host stayed silent past the deadline: it fails with `message`.
    Fail {
        /// Why, naming the host.
        message: String,
    },
    /// Waiting for the host.
    Wait,
}

/// The next step of `op` on connector `c` (`None` once deleted) realised by `host`, at
/// `now`; host silence counts from `grace_from` at the earliest.
pub fn decide(
    op: &OperationRow,
    c: Option<&ConnectorRow>,
    host: Option<&HostRow>,
    now: DateTime<Utc>,
    grace_from: DateTime<Utc>,
    host_timeout: Duration,
    deadline: Duration,
) -> Step {
    let Some(c) = c else {
        return Step::Gone;
    };
    let applied = match (host, c.desired_generation) {
        (Some(h), Some(g)) => h.applied_generation >= g,
        _ => true,
    };
    let silent = host.is_some_and(|h| {
        let last = h.last_heartbeat_at.map(|t| t.max(grace_from));
        !heartbeat_fresh(last, now, host_timeout)
    });
    match op.verb {
        OperationVerb::Delete if applied => Step::Remove,
        OperationVerb::Delete if silent => Step::RemoveHeld,
        OperationVerb::Delete => Step::Wait,
        _ if applied => Step::Ready,
        _ => {
            let age = now.signed_duration_since(op.created_at).to_std();
            match (silent, age) {
                (true, Ok(age)) if age > deadline => Step::Fail {
                    message: format!(
                        "connector {} could not be realised: its host {} has been silent",
                        c.name,
                        c.host_id.as_deref().unwrap_or("?")
                    ),
                },
                _ => Step::Wait,
            }
        }
    }
}

/// Moves one connector operation forward if it can (the caller holds the operation's
/// row lock); a no-op when another transaction holds the connector.
pub async fn advance(
    tx: &mut PgConnection,
    op: &OperationRow,
    now: DateTime<Utc>,
    grace_from: DateTime<Utc>,
    host_timeout: Duration,
    deadline: Duration,
) -> ApiResult<Option<Finished>> {
    let c = match op.connector_id {
        Some(id) => match db::try_lock(&mut *tx, id).await? {
            TryLock::Busy => return Ok(None),
            TryLock::Gone => None,
            TryLock::Locked(c) => Some(*c),
        },
        None => None,
    };
    let host = match c.as_ref().and_then(|c| c.host_id.as_deref()) {
        Some(h) => hosts::get(&mut *tx, h).await?,
        None => None,
    };
    let step = decide(
        op,
        c.as_ref(),
        host.as_ref(),
        now,
        grace_from,
        host_timeout,
        deadline,
    );
    let Some(c) = c else {
        return finish_gone(tx, op).await;
    };
    match step {
        Step::Gone => finish_gone(tx, op).await,
        Step::Wait => Ok(None),
        Step::Ready => {
            db::set_state(&mut *tx, c.id, ConnectorState::Ready, None).await?;
            let row = db::get_by_id(&mut *tx, c.id).await?.unwrap_or(c);
            operations::finish_connector(tx, op.id, Ok(Some(&row.to_wire()))).await
        }
        Step::Remove => {
            remove(&mut *tx, &c, None).await?;
            operations::finish_connector(tx, op.id, Ok(None)).await
        }
        Step::RemoveHeld => {
            let (host, generation) = held_by(&c);
            remove(&mut *tx, &c, Some((host, generation))).await?;
            operations::finish_connector(tx, op.id, Ok(None)).await
        }
        Step::Fail { message } => {
            let status = Status {
                code: 503,
                status: "UNAVAILABLE".into(),
                message,
                details: Vec::new(),
            };
            // Out of the silent host's config, and its range held until it returns.
            let host = c.host_id.clone().unwrap_or_default();
            hosts::lock_generations(&mut *tx, &host).await?;
            let generation = hosts::bump_generation(&mut *tx, &host).await?;
            remove(&mut *tx, &c, Some((&host, generation))).await?;
            operations::finish_connector(tx, op.id, Err(&status)).await
        }
    }
}

fn held_by(c: &ConnectorRow) -> (&str, i64) {
    (
        c.host_id.as_deref().unwrap_or_default(),
        c.desired_generation.unwrap_or_default(),
    )
}

async fn finish_gone(tx: &mut PgConnection, op: &OperationRow) -> ApiResult<Option<Finished>> {
    let gone = Status {
        code: 404,
        status: "NOT_FOUND".into(),
        message: "the connector no longer exists".into(),
        details: Vec::new(),
    };
    let result = match op.verb {
        OperationVerb::Delete => Ok(None),
        _ => Err(&gone),
    };
    operations::finish_connector(tx, op.id, result).await
}
