//! `instances update` (and `scale`, its short form): the patch and its update mask.

use std::collections::BTreeMap;

use cacheplane_types::{Operation, PatchInstanceRequest};

use super::super::Ctx;
use super::args::{ReadReplicasArg, UpdateArgs};
use super::finish::{finish, request_id};
use super::{get, COLLECTION};
use crate::error::{Error, Result};

/// Builds the patch and its update mask from the flags. Engine settings and labels are
/// whole maps on the wire, so changing some keys means reading the instance and sending
/// the merged map with the etag read (the API refuses it if the instance changed since).
pub async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    let l = ctx.located(COLLECTION, &a.instance)?;
    let lro = &a.lro;
    let mut mask: Vec<&str> = Vec::new();
    let mut req = PatchInstanceRequest::default();
    let changes_configs = !a.update_redis_config.is_empty() || !a.remove_redis_config.is_empty();
    let changes_labels = !a.update_labels.is_empty() || !a.remove_labels.is_empty();
    let others = a.resize.size.is_some()
        || a.resize.replica_count.is_some()
        || a.display_name.is_some()
        || changes_configs
        || changes_labels;
    if let Some(mode) = a.read_replicas_mode {
        if others {
            return Err(Error::Usage(
                "--read-replicas-mode is changed on its own: run the other changes in a \
                 second `cachectl instances update`"
                    .into(),
            ));
        }
        req.read_replicas_mode = Some(mode.into());
        mask.push("readReplicasMode");
        if mode == ReadReplicasArg::Enabled {
            req.secondary_ip_range = Some(a.secondary_ip_range.unwrap_or_else(|| "auto".into()));
            mask.push("secondaryIpRange");
        }
    } else if !others {
        return Err(Error::Usage(
            "nothing to change: pass --size, --replica-count, --read-replicas-mode, \
             --update-redis-config, --remove-redis-config, --update-labels, --remove-labels \
             or --display-name"
                .into(),
        ));
    }
    if let Some(gb) = a.resize.size {
        req.memory_size_gb = Some(gb);
        mask.push("memorySizeGb");
    }
    if let Some(n) = a.resize.replica_count {
        req.replica_count = Some(n);
        mask.push("replicaCount");
    }
    if let Some(d) = a.display_name {
        req.display_name = Some(d);
        mask.push("displayName");
    }
    if changes_configs || changes_labels {
        let current = get(ctx, &l).await?;
        req.etag = Some(current.etag.clone());
        if changes_configs {
            let merged = merge(
                current.redis_configs,
                a.update_redis_config,
                &a.remove_redis_config,
            );
            req.redis_configs = Some(merged);
            mask.push("redisConfigs");
        }
        if changes_labels {
            req.labels = Some(merge(current.labels, a.update_labels, &a.remove_labels));
            mask.push("labels");
        }
    }
    let mask = mask.join(",");
    let mut query = vec![("updateMask", mask.as_str())];
    query.extend(request_id(lro));
    let op: Operation = ctx.client.patch(&l.path(COLLECTION), &query, &req).await?;
    finish(ctx, op, lro).await
}

fn merge(
    mut map: BTreeMap<String, String>,
    set: Vec<(String, String)>,
    remove: &[String],
) -> BTreeMap<String, String> {
    for k in remove {
        map.remove(k.trim());
    }
    map.extend(set);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output;

    #[test]
    fn merges_maps() {
        let m = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        let m = merge(
            m,
            vec![("c".into(), "3".into()), ("a".into(), "9".into())],
            &["b".into()],
        );
        assert_eq!(output::map(&m), "a=9,c=3");
    }
}
