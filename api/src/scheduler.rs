//! Placement: which zone and host each node goes to (see `docs/architecture.md`). The
//! primary goes to `locationId`, the first replica to `alternativeLocationId`, the rest
//! are spread over the region's other zones; within a zone, the UP host with the most
//! free memory that runs the engine, preferring hosts that hold no other node of the
//! instance.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgConnection;

use crate::db::hosts;
use crate::error::{ApiError, ApiResult};

pub use crate::db::hosts::Candidate;

/// Takes the region's placement lock (see [`hosts::lock_region`]) and loads the region's
/// hosts. Their free memory stays true for the rest of the transaction: only
/// transactions holding that lock add nodes or grow them.
pub async fn load_candidates(
    conn: &mut PgConnection,
    region: &str,
    host_timeout: Duration,
) -> ApiResult<Vec<Candidate>> {
    hosts::lock_region(&mut *conn, region).await?;
    let ids = hosts::ids_in_region(&mut *conn, region).await?;
    hosts::candidates(conn, &ids, host_timeout).await
}

/// The zones for `count` new nodes, given the zones the instance's nodes already use.
/// The first goes to `first`, the second to `second`, the rest to the least used of the
/// region's zones (zones outside `first`/`second` first).
pub fn plan_zones(
    count: usize,
    existing: &[String],
    first: &str,
    second: Option<&str>,
    region_zones: &[String],
) -> Vec<String> {
    let mut used: HashMap<String, usize> = HashMap::new();
    for z in existing {
        *used.entry(z.clone()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let slot = existing.len() + out.len();
        let zone = match slot {
            0 => first.to_string(),
            1 => second.unwrap_or(first).to_string(),
            _ => region_zones
                .iter()
                .min_by_key(|z| {
                    let preferred = Some(z.as_str()) != Some(first) && Some(z.as_str()) != second;
                    (used.get(*z).copied().unwrap_or(0), !preferred, (*z).clone())
                })
                .cloned()
                .unwrap_or_else(|| first.to_string()),
        };
        *used.entry(zone.clone()).or_default() += 1;
        out.push(zone);
    }
    out
}

/// The zones to re-create a node lost in `lost_zone` in, in order of preference: the
/// same zone, the instance's alternative zone, then the region's other zones by id.
pub fn repair_zones(
    lost_zone: &str,
    alternative: Option<&str>,
    region_zones: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = vec![lost_zone.to_string()];
    for z in alternative
        .into_iter()
        .chain(region_zones.iter().map(String::as_str))
    {
        if !out.iter().any(|o| o == z) {
            out.push(z.to_string());
        }
    }
    out
}

/// Picks a host in `zone` for a node of `bytes`, preferring hosts not in `avoid`, and
/// charges it. RESOURCE_EXHAUSTED names the zone when none fits.
pub fn pick_host(
    candidates: &mut [Candidate],
    zone: &str,
    bytes: i64,
    engine: &str,
    avoid: &[String],
) -> ApiResult<String> {
    let best = candidates
        .iter_mut()
        .filter(|c| {
            c.zone_id == zone
                && c.up
                && c.free_bytes >= bytes
                && c.engines.iter().any(|e| e == engine)
        })
        .max_by_key(|c| {
            (
                !avoid.contains(&c.id),
                c.free_bytes,
                std::cmp::Reverse(c.id.clone()),
            )
        });
    match best {
        Some(c) => {
            c.free_bytes -= bytes;
            Ok(c.id.clone())
        }
        None => Err(ApiError::ResourceExhausted(format!(
            "zone '{zone}' has no host with {} GiB free that runs {engine}",
            bytes >> 30
        ))),
    }
}

/// The zone with the most free memory on UP hosts that run `engine`, other than `not`;
/// used when a create names no zone.
pub fn roomiest_zone(
    candidates: &[Candidate],
    region_zones: &[String],
    engine: &str,
    not: Option<&str>,
) -> Option<String> {
    region_zones
        .iter()
        .filter(|z| Some(z.as_str()) != not)
        .max_by_key(|z| {
            let free: i64 = candidates
                .iter()
                .filter(|c| &c.zone_id == *z && c.up && c.engines.iter().any(|e| e == engine))
                .map(|c| c.free_bytes.max(0))
                .sum();
            (free, std::cmp::Reverse((*z).clone()))
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn primary_and_first_replica_follow_the_request_rest_spread() {
        let plan = plan_zones(4, &[], "b", Some("c"), &zones());
        assert_eq!(plan, vec!["b", "c", "a", "a"]);
        let plan = plan_zones(6, &[], "a", Some("b"), &zones());
        // Beyond the first two, the other zones come first among the least used.
        assert_eq!(plan, vec!["a", "b", "c", "c", "a", "b"]);
    }

    #[test]
    fn scale_up_goes_to_the_least_used_zone() {
        let plan = plan_zones(
            1,
            &["a".into(), "b".into(), "c".into()],
            "a",
            Some("b"),
            &zones(),
        );
        assert_eq!(plan, vec!["c"]);
        let plan = plan_zones(1, &["a".into(), "b".into()], "a", Some("b"), &zones());
        assert_eq!(plan, vec!["c"]);
    }

    fn host(id: &str, zone: &str, free: i64) -> Candidate {
        Candidate {
            id: id.into(),
            zone_id: zone.into(),
            free_bytes: free,
            engines: vec!["REDIS_7_0".into()],
            up: true,
        }
    }

    #[test]
    fn most_free_memory_wins_and_is_charged() {
        let mut c = vec![
            host("h1", "a", 4 << 30),
            host("h2", "a", 8 << 30),
            host("h3", "b", 16 << 30),
        ];
        assert_eq!(
            pick_host(&mut c, "a", 1 << 30, "REDIS_7_0", &[]).unwrap(),
            "h2"
        );
        assert_eq!(c[1].free_bytes, 7 << 30);
        assert_eq!(
            pick_host(&mut c, "a", 6 << 30, "REDIS_7_0", &[]).unwrap(),
            "h2"
        );
        assert_eq!(
            pick_host(&mut c, "a", 4 << 30, "REDIS_7_0", &[]).unwrap(),
            "h1"
        );
        let err = pick_host(&mut c, "a", 4 << 30, "REDIS_7_0", &[]).unwrap_err();
        assert!(err.to_string().contains("zone 'a'"));
        assert!(pick_host(&mut c, "b", 1 << 30, "REDIS_6_X", &[]).is_err());
    }

    #[test]
    fn anti_affinity_prefers_other_hosts() {
        let mut c = vec![host("h1", "a", 8 << 30), host("h2", "a", 4 << 30)];
        assert_eq!(
            pick_host(&mut c, "a", 1 << 30, "REDIS_7_0", &["h1".into()]).unwrap(),
            "h2"
        );
    }

    #[test]
    fn a_lost_node_is_recreated_in_its_zone_then_the_alternative_then_any() {
        // (case, lost zone, alternative zone, the order expected)
        let cases: Vec<(&str, &str, Option<&str>, Vec<&str>)> = vec![
            (
                "same zone first, then the alternative",
                "b",
                Some("c"),
                vec!["b", "c", "a"],
            ),
            ("no alternative", "c", None, vec!["c", "a", "b"]),
            (
                "the alternative is the lost zone",
                "a",
                Some("a"),
                vec!["a", "b", "c"],
            ),
            (
                "a zone outside the region still comes first",
                "z",
                Some("b"),
                vec!["z", "b", "a", "c"],
            ),
        ];
        for (name, lost, alt, want) in cases {
            assert_eq!(repair_zones(lost, alt, &zones()), want, "{name}");
        }
    }
}
