//! The one polling helper: [`wait_until`] calls a check until it yields a value, tells
//! "not yet" (poll again) from a permanent failure (stop now), and on timeout fails
//! naming what it waited for and the last "not yet" reason. In the manner of omicron's
//! `wait_for_condition`.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Why a check did not yield its value.
#[derive(Debug)]
pub enum Poll<E = String> {
    /// Not yet: poll again. The reason is shown if the wait times out.
    NotYet(String),
    /// It will never happen: stop waiting.
    Permanent(E),
}

/// `Err(Poll::NotYet(reason))`, the usual answer of a check that is not there yet.
pub fn not_yet<T, E>(reason: impl Display) -> Result<T, Poll<E>> {
    Err(Poll::NotYet(reason.to_string()))
}

/// `Ok(())` when `done`, otherwise "not yet" with `reason` (evaluated only then).
pub fn ready_if<E, R: Display>(done: bool, reason: impl FnOnce() -> R) -> Result<(), Poll<E>> {
    if done {
        Ok(())
    } else {
        not_yet(reason())
    }
}

/// How a wait failed.
#[derive(Debug)]
pub enum WaitError<E> {
    /// Still "not yet" when time ran out.
    TimedOut {
        /// What was waited for.
        what: String,
        /// How long.
        limit: Duration,
        /// The last "not yet" reason.
        last: String,
    },
    /// The check reported a permanent failure.
    Permanent {
        /// What was waited for.
        what: String,
        /// The failure.
        error: E,
    },
}

impl<E: Display> Display for WaitError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::TimedOut { what, limit, last } => {
                write!(
                    f,
                    "timed out after {limit:?} waiting until {what}; last: {last}"
                )
            }
            WaitError::Permanent { what, error } => {
                write!(f, "gave up waiting until {what}: {error}")
            }
        }
    }
}

impl<E: Display + std::fmt::Debug> std::error::Error for WaitError<E> {}

/// Calls `check` every `interval` until it answers `Ok(value)` (returned), answers
/// `Err(Poll::Permanent(_))`, or `limit` has passed; the check runs at least once.
pub async fn try_wait_until<T, E, F, Fut>(
    what: &str,
    limit: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Poll<E>>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match check().await {
            Ok(value) => return Ok(value),
            Err(Poll::Permanent(error)) => {
                return Err(WaitError::Permanent {
                    what: what.to_string(),
                    error,
                })
            }
            Err(Poll::NotYet(reason)) => reason,
        };
        if Instant::now() >= deadline {
            return Err(WaitError::TimedOut {
                what: what.to_string(),
                limit,
                last,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// [`try_wait_until`] for tests: panics with the [`WaitError`]'s message.
#[track_caller]
pub fn wait_until<'a, T, E, F, Fut>(
    what: &'a str,
    limit: Duration,
    interval: Duration,
    check: F,
) -> impl Future<Output = T> + 'a
where
    E: Display + 'a,
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<T, Poll<E>>> + 'a,
    T: 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        try_wait_until(what, limit, interval, check)
            .await
            .unwrap_or_else(|e| panic!("{e} (wait at {caller})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_once_ready() {
        let mut n = 0;
        let got = try_wait_until::<_, String, _, _>(
            "n reaches 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                let n = n;
                async move {
                    if n >= 3 {
                        Ok(n)
                    } else {
                        not_yet(format!("n is {n}"))
                    }
                }
            },
        )
        .await;
        assert_eq!(got.expect("ready"), 3);
    }

    #[tokio::test]
    async fn a_timeout_names_the_last_reason_and_a_permanent_error_stops() {
        let e = try_wait_until::<(), String, _, _>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { not_yet("still 7") },
        )
        .await
        .expect_err("times out");
        let msg = e.to_string();
        assert!(msg.contains("never") && msg.contains("still 7"), "{msg}");
        let e = try_wait_until::<(), _, _, _>(
            "boom",
            Duration::from_secs(60),
            Duration::from_millis(5),
            || async { Err(Poll::Permanent("exited")) },
        )
        .await
        .expect_err("stops");
        assert!(
            matches!(
                e,
                WaitError::Permanent {
                    error: "exited",
                    ..
                }
            ),
            "{e}"
        );
    }
}
