//! Address ranges: a buddy allocator over each network's pool.
//!
//! A network's free space is kept as aligned power-of-two blocks in
//! `network_free_block`. Allocating takes the smallest free block that fits and splits
//! it down to the wanted size; freeing merges a block with its buddy while the buddy is
//! free. Each step is a few indexed queries, so the 4 096th /28 in a /16 costs what the
//! first does. The exclusion constraint on `address_range` stays the final word on
//! overlap. Callers hold the network's row lock ([`lock_network`]) for the transaction,
//! which serialises allocations within one network (not across networks).

use ipnet::{IpNet, Ipv4Net};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::networks as db_networks;
use crate::db::{quarantine, ranges};
use crate::error::ApiResult;

/// Locks a network for allocation until the transaction ends.
pub async fn lock_network(conn: &mut PgConnection, network: Uuid) -> ApiResult<()> {
    ranges::lock_network(conn, network).await
}

/// Records a new network's whole pool as free.
pub async fn init_pool(conn: &mut PgConnection, network: Uuid, pool: Ipv4Net) -> ApiResult<()> {
    ranges::insert_free_block(conn, network, pool.trunc()).await
}

/// Takes the first free aligned block of `prefix` bits, or `None` if the pool has none.
pub async fn allocate_auto(
    conn: &mut PgConnection,
    network: Uuid,
    prefix: u8,
) -> ApiResult<Option<Ipv4Net>> {
    let Some(IpNet::V4(block)) = ranges::smallest_free_block(conn, network, prefix).await? else {
        return Ok(None);
    };
    // The lowest sub-block of the wanted size.
    let Some(want) = block.subnets(prefix).ok().and_then(|mut s| s.next()) else {
        return Ok(None);
    };
    split_down(conn, network, block, want).await?;
    Ok(Some(want))
}

/// Takes exactly `want` if it is wholly free; `false` if any of it is taken (or it lies
/// outside the pool).
pub async fn allocate_exact(
    conn: &mut PgConnection,
    network: Uuid,
    want: Ipv4Net,
) -> ApiResult<bool> {
    let Some(IpNet::V4(block)) = ranges::free_block_containing(conn, network, want).await? else {
        return Ok(false);
    };
    split_down(conn, network, block, want).await?;
    Ok(true)
}

/// Reserves a /28 for an instance in the caller's transaction: locks the network, takes
/// `exact` if it is wholly free (or the first free /28 when `exact` is `None`) and
/// records it as the instance's range for `purpose`. `None` when the wanted range is not
/// free; the caller says why in the words of its request.
pub async fn reserve(
    conn: &mut PgConnection,
    instance: Uuid,
    network: Uuid,
    purpose: ranges::Purpose,
    exact: Option<Ipv4Net>,
) -> ApiResult<Option<Ipv4Net>> {
    let range = take(conn, network, exact).await?;
    if let Some(r) = range {
        ranges::insert(conn, instance, network, purpose, r).await?;
    }
    Ok(range)
}

/// Reserves a /28 for a connector, as [`reserve`] does for an instance: the same
/// allocator and the same exclusion constraint, so the two never overlap.
pub async fn reserve_connector(
    conn: &mut PgConnection,
    connector: Uuid,
    network: Uuid,
    exact: Option<Ipv4Net>,
) -> ApiResult<Option<Ipv4Net>> {
    let range = take(conn, network, exact).await?;
    if let Some(r) = range {
        ranges::insert_connector(conn, connector, network, r).await?;
    }
    Ok(range)
}

/// Locks the network and takes its first free /28 for a caller that records the owner
/// itself (a Memcached instance); `None` when the pool is full.
pub async fn take_range(conn: &mut PgConnection, network: Uuid) -> ApiResult<Option<Ipv4Net>> {
    take(conn, network, None).await
}

/// Locks the network and takes `exact` if it is wholly free, or the first free /28.
async fn take(
    conn: &mut PgConnection,
    network: Uuid,
    exact: Option<Ipv4Net>,
) -> ApiResult<Option<Ipv4Net>> {
    lock_network(conn, network).await?;
    Ok(match exact {
        Some(r) => allocate_exact(conn, network, r).await?.then_some(r),
        None => allocate_auto(conn, network, 28).await?,
    })
}

/// Returns `range` to the pool, merging buddies back together.
pub async fn free(
    conn: &mut PgConnection,
    network: Uuid,
    pool: Ipv4Net,
    range: Ipv4Net,
) -> ApiResult<()> {
    let mut block = range.trunc();
    while block.prefix_len() > pool.prefix_len() {
        let Some(parent) = block.supernet() else {
            break;
        };
        let Some(buddy) = parent
            .subnets(block.prefix_len())
            .ok()
            .and_then(|s| s.into_iter().find(|b| *b != block))
        else {
            break;
        };
        if !ranges::delete_free_block(conn, network, buddy).await? {
            break;
        }
        block = parent;
    }
    ranges::insert_free_block(conn, network, block).await
}

/// Removes free `block` and frees the halves that do not lead to `want`, level by level.
async fn split_down(
    conn: &mut PgConnection,
    network: Uuid,
    block: Ipv4Net,
    want: Ipv4Net,
) -> ApiResult<()> {
    ranges::delete_free_block(conn, network, block).await?;
    for sibling in split_siblings(block, want) {
        ranges::insert_free_block(conn, network, sibling).await?;
    }
    Ok(())
}

/// The blocks left free when `want` is cut out of `block` (one per level between them).
pub fn split_siblings(block: Ipv4Net, want: Ipv4Net) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    let mut current = block;
    while current.prefix_len() < want.prefix_len() {
        let Ok(halves) = current.subnets(current.prefix_len() + 1) else {
            break;
        };
        for half in halves {
            if half.contains(&want) {
                current = half;
            } else {
                out.push(half);
            }
        }
    }
    out
}

/// Ends the quarantine holds of `host` that its applied generation `applied` satisfies
/// (every hold when `None`: an operator's release), and returns to the pool each range
/// no longer held and no longer an instance's. Locks the networks concerned, in id order,
/// and nothing else (call it outside a transaction holding host locks). Returns the
/// ranges freed.
pub async fn release_quarantine(
    conn: &mut PgConnection,
    host: &str,
    applied: Option<i64>,
) -> ApiResult<Vec<IpNet>> {
    let networks = quarantine::networks_released_by(&mut *conn, host, applied).await?;
    if networks.is_empty() {
        return Ok(Vec::new());
    }
    for &network in &networks {
        lock_network(&mut *conn, network).await?;
    }
    let mut freed = Vec::new();
    for (network, range) in quarantine::release(&mut *conn, host, applied).await? {
        let IpNet::V4(r) = range else { continue };
        if quarantine::freeable(&mut *conn, network, range).await? {
            let pool = db_networks::get_by_id(&mut *conn, network).await?.pool();
            free(&mut *conn, network, pool, r).await?;
            freed.push(range);
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_a_28_out_of_a_16_leaves_one_block_per_level() {
        let pool: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let want: Ipv4Net = "10.0.0.16/28".parse().unwrap();
        let free = split_siblings(pool, want);
        assert_eq!(free.len(), 12);
        assert!(free.contains(&"10.0.128.0/17".parse().unwrap()));
        assert!(free.contains(&"10.0.0.0/28".parse().unwrap()));
        assert!(free.iter().all(|b| !b.contains(&want) && !want.contains(b)));
        let total: u64 = free.iter().map(|b| 1u64 << (32 - b.prefix_len())).sum();
        assert_eq!(total + 16, 1 << 16);
    }
}
