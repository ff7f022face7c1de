//! `instances create`: the request the flags make, and the call that starts it.

use cacheplane_types::{CreateInstanceRequest, Operation, ReadReplicasMode};

use super::super::operations::LroArgs;
use super::super::{Ctx, Located};
use super::args::{CreateArgs, ReadReplicasArg, TierArg};
use super::finish::{finish, request_id};
use super::COLLECTION;
use crate::error::Result;

/// The read replicas mode to ask for: the user's, or enabled when they asked STANDARD_HA
/// for more than one replica (the only way the API allows that), with a note saying so.
fn read_replicas_for(
    tier: TierArg,
    replicas: Option<i64>,
    mode: Option<ReadReplicasArg>,
) -> (Option<ReadReplicasMode>, bool) {
    match (tier, replicas, mode) {
        (_, _, Some(m)) => (Some(m.into()), false),
        (TierArg::StandardHa, Some(n), None) if n > 1 => {
            (Some(ReadReplicasMode::ReadReplicasEnabled), true)
        }
        _ => (None, false),
    }
}

/// `instances create`: creates the instance and, unless --async, waits for it.
pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, &a.instance)?;
    let (mode, implied) = read_replicas_for(a.tier, a.replica_count, a.read_replicas_mode);
    if implied {
        eprintln!(
            "note: enabling read replicas: STANDARD_HA allows more than one replica only with \
             them (pass --read-replicas-mode disabled to refuse)"
        );
    }
    let req = CreateInstanceRequest {
        display_name: a.display_name,
        tier: a.tier.into(),
        memory_size_gb: a.size,
        replica_count: a.replica_count,
        read_replicas_mode: mode,
        location_id: a.zone,
        alternative_location_id: a.alternative_zone,
        redis_version: a.redis_version,
        redis_configs: a.redis_config.into_iter().collect(),
        authorized_network: a.network,
        reserved_ip_range: a.reserved_ip_range,
        auth_enabled: a.no_auth.then_some(false),
        transit_encryption_mode: a.transit_encryption_mode.map(Into::into),
        labels: a.labels.into_iter().collect(),
    };
    let op = post_create(ctx, &l, &req, &a.lro).await?;
    finish(ctx, op, &a.lro).await
}

/// Starts creating the instance `l` (the create operation).
pub async fn post_create(
    ctx: &Ctx,
    l: &Located,
    req: &CreateInstanceRequest,
    lro: &LroArgs,
) -> Result<Operation> {
    let mut query = vec![("instanceId", l.id.as_str())];
    query.extend(request_id(lro));
    ctx.client
        .post(&l.collection(COLLECTION), &query, req)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_one_ha_replica_enables_read_replicas() {
        use ReadReplicasArg::*;
        use TierArg::*;
        let on = Some(ReadReplicasMode::ReadReplicasEnabled);
        assert_eq!(read_replicas_for(StandardHa, Some(2), None), (on, true));
        assert_eq!(read_replicas_for(StandardHa, Some(1), None), (None, false));
        assert_eq!(read_replicas_for(StandardHa, None, None), (None, false));
        assert_eq!(
            read_replicas_for(StandardHa, Some(2), Some(Disabled)),
            (Some(ReadReplicasMode::ReadReplicasDisabled), false)
        );
        assert_eq!(read_replicas_for(Basic, Some(2), None), (None, false));
        assert_eq!(read_replicas_for(Basic, None, Some(Enabled)), (on, false));
    }
}
