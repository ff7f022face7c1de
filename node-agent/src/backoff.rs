//! Capped exponential backoff, and the one retry helper the agent uses for API calls.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Delays that double from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, never waiting longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// The delay to wait now; the following one is twice as long, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Starts again from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}

/// Whether a failed attempt is worth repeating.
pub trait Retryable {
    /// False for errors that repeating cannot fix (a refused request).
    fn is_retryable(&self) -> bool;
}

/// Runs `op` until it succeeds, fails with an error that is not retryable, or `cancel`
/// fires (then `None`). Waits between attempts with capped exponential backoff and logs
/// each failure as a warning naming `what`.
pub async fn retry<T, E, F, Fut>(
    cancel: &CancellationToken,
    what: &str,
    mut backoff: Backoff,
    mut op: F,
) -> Option<Result<T, E>>
where
    E: Retryable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            r = op() => r,
        };
        match result {
            Ok(v) => return Some(Ok(v)),
            Err(e) if !e.is_retryable() => return Some(Err(e)),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "{what} failed");
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[derive(Debug)]
    struct E(bool);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e")
        }
    }
    impl Retryable for E {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_only() {
        let cancel = CancellationToken::new();
        let tries = Cell::new(0);
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        let r = retry(&cancel, "op", b.clone(), || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                if n < 4 {
                    Err(E(true))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(r, Some(Ok(4))));

        let r: Option<Result<(), E>> =
            retry(&cancel, "op", b.clone(), || async { Err(E(false)) }).await;
        assert!(matches!(r, Some(Err(E(false)))));

        cancel.cancel();
        let r: Option<Result<(), E>> = retry(&cancel, "op", b, || async { Err(E(true)) }).await;
        assert!(r.is_none());
    }
}
