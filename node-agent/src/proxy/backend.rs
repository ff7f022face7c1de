//! The replicas behind a read endpoint: their health and connection counts, and the
//! choice of one for a new client connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::net::dial::Dialer;

/// One replica behind a read endpoint.
#[derive(Debug)]
pub struct Backend {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// How it is dialled (from the primary's namespace).
    pub dialer: Dialer,
    healthy: AtomicBool,
    active: AtomicUsize,
    /// Cancelled when the replica leaves the endpoint (or the endpoint stops): closes its
    /// connections and stops its health check.
    pub closed: CancellationToken,
    /// Asks its health check to look now rather than at its next tick.
    pub check_now: Notify,
}

impl Backend {
    /// A backend, unhealthy until its first check passes; `closed` is a child of the
    /// endpoint's token.
    pub fn new(address: String, port: u16, closed: CancellationToken) -> Self {
        Backend {
            address,
            port,
            dialer: Dialer::here(),
            healthy: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            closed,
            check_now: Notify::new(),
        }
    }

    /// Whether it may take new connections.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a health check; answers whether that changed its health.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed) != healthy
    }

    /// Client connections it serves now.
    pub fn connections(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts one more connection until the returned guard is dropped.
    pub fn lend(self: &Arc<Self>) -> Lent {
        self.active.fetch_add(1, Ordering::Relaxed);
        Lent(self.clone())
    }

    /// What [`choose`] looks at.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            healthy: self.is_healthy(),
            connections: self.connections(),
        }
    }
}

/// One connection counted against a backend.
#[derive(Debug)]
pub struct Lent(Arc<Backend>);

impl Lent {
    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.0
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A backend as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Linked to its primary and not in a full sync.
    pub healthy: bool,
    /// Connections it serves now.
    pub connections: usize,
}

/// The backend for a new connection: the healthy one with the fewest connections, ties
/// going round-robin (the first at or after `cursor`, wrapping). `None` when none is
/// healthy: the connection is refused.
pub fn choose(candidates: &[Candidate], cursor: usize) -> Option<usize> {
    let n = candidates.len();
    (0..n)
        .map(|k| (cursor.wrapping_add(k)) % n)
        .filter(|&i| candidates[i].healthy)
        .min_by_key(|&i| candidates[i].connections)
}

/// The backends for `want` (in that order): those of `current` that stay, new ones
/// (children of `parent`) for the rest. Backends that leave are cancelled, which closes
/// their connections. Answers the new set and the backends created.
pub fn resize(
    current: &[Arc<Backend>],
    want: &[(String, u16)],
    dialer: &Dialer,
    parent: &CancellationToken,
) -> (Vec<Arc<Backend>>, Vec<Arc<Backend>>) {
    let mut next = Vec::with_capacity(want.len());
    let mut added = Vec::new();
    for (address, port) in want {
        match current
            .iter()
            .find(|b| b.address == *address && b.port == *port)
        {
            Some(b) => next.push(b.clone()),
            None => {
                let mut b = Backend::new(address.clone(), *port, parent.child_token());
                b.dialer = dialer.clone();
                let b = Arc::new(b);
                added.push(b.clone());
                next.push(b);
            }
        }
    }
    for gone in current
        .iter()
        .filter(|b| !next.iter().any(|n| Arc::ptr_eq(n, b)))
    {
        gone.closed.cancel();
    }
    (next, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(healthy: bool, connections: usize) -> Candidate {
        Candidate {
            healthy,
            connections,
        }
    }

    #[test]
    fn nothing_healthy_refuses() {
        assert_eq!(choose(&[], 0), None);
        assert_eq!(choose(&[c(false, 0), c(false, 3)], 7), None);
    }

    #[test]
    fn unhealthy_backends_get_nothing() {
        for cursor in 0..5 {
            assert_eq!(
                choose(&[c(false, 0), c(true, 9), c(false, 0)], cursor),
                Some(1)
            );
        }
    }

    #[test]
    fn fewest_connections_first() {
        assert_eq!(choose(&[c(true, 5), c(true, 2), c(true, 3)], 0), Some(1));
        assert_eq!(choose(&[c(true, 5), c(true, 2), c(true, 3)], 2), Some(1));
    }

    #[test]
    fn ties_go_round_robin() {
        let all = [c(true, 1), c(true, 1), c(true, 1)];
        assert_eq!(choose(&all, 0), Some(0));
        assert_eq!(choose(&all, 1), Some(1));
        assert_eq!(choose(&all, 2), Some(2));
        assert_eq!(choose(&all, 3), Some(0), "the cursor wraps");
        assert_eq!(choose(&all, usize::MAX), Some(0));
    }

    #[test]
    fn a_burst_spreads_evenly() {
        let mut counts = [0usize; 3];
        let mut cursor = 0;
        for _ in 0..30 {
            let view: Vec<Candidate> = counts.iter().map(|&n| c(true, n)).collect();
            let i = choose(&view, cursor).expect("healthy");
            counts[i] += 1;
            cursor = i + 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn connections_are_counted_while_lent() {
        let b = Arc::new(Backend::new("a".into(), 1, CancellationToken::new()));
        let one = b.lend();
        let two = b.lend();
        assert_eq!(b.connections(), 2);
        drop(one);
        assert_eq!(two.backend().connections(), 1);
        drop(two);
        assert_eq!(b.connections(), 0);
        assert!(b.set_healthy(true));
        assert!(!b.set_healthy(true), "no change");
        assert_eq!(b.candidate(), c(true, 0));
    }

    #[test]
    fn resize_keeps_stayers_and_cancels_leavers() {
        let parent = CancellationToken::new();
        let want = |v: &[&str]| -> Vec<(String, u16)> {
            v.iter().map(|a| (a.to_string(), 6379)).collect()
        };
        let here = Dialer::here();
        let (first, added) = resize(&[], &want(&["a", "b"]), &here, &parent);
        assert_eq!(added.len(), 2);
        let (second, added) = resize(&first, &want(&["b", "c"]), &here, &parent);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].address, "c");
        assert!(Arc::ptr_eq(&second[0], &first[1]), "b stays as it is");
        assert!(first[0].closed.is_cancelled(), "a left");
        assert!(!first[1].closed.is_cancelled());
        parent.cancel();
        assert!(second.iter().all(|b| b.closed.is_cancelled()));
    }
}
