//! Protection of the control plane in front of every handler (see
//! `docs/architecture.md#protection-of-the-control-plane`): concurrency caps that answer
//! at once instead of queueing, and per-token rate limits. Agents' protocol has a cap and
//! buckets of its own, so user traffic, good or bad, never takes what heartbeats need.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::auth::{self, Authenticated, Cached, TokenHash};
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

/// What kind of request this is, for its concurrency cap and its rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Health checks: never limited.
    Exempt,
    /// The agent protocol: `/v1/hosts/{host}` and below.
    Agent,
    /// A user's operation wait.
    LongPoll,
    /// Any other request.
    User,
}

/// The class of a request from its matched route (`None`: no route matched).
pub fn classify(route: Option<&str>) -> Class {
    match route {
        Some("/healthz" | "/readyz") => Class::Exempt,
        Some(r) if r.starts_with("/v1/hosts/{host}") => Class::Agent,
        Some(r) if r.ends_with("/operations/{operation}/wait") => Class::LongPoll,
        _ => Class::User,
    }
}

/// Whom a rate-limit bucket belongs to: a valid token, or the client's address when the
/// request has none. Agents' requests have buckets apart from users'.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Bucket {
    Token { agent: bool, hash: TokenHash },
    Address { agent: bool, ip: IpAddr },
}

type Keyed = RateLimiter<Bucket, HashMapStateStore<Bucket>, DefaultClock>;

/// The caps and buckets of one API replica.
pub struct Limits {
    requests: Arc<Semaphore>,
    long_polls: Arc<Semaphore>,
    agents: Arc<Semaphore>,
    max: [usize; 3],
    rate: Keyed,
    per_second: u32,
    clock: DefaultClock,
}

impl Limits {
    /// The caps and the rate of `config`.
    pub fn new(config: &Config) -> Limits {
        let rate = NonZeroU32::new(config.rate_limit).unwrap_or(NonZeroU32::MIN);
        // Two seconds' worth: a client that paused may catch up.
        let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 > 0"));
        Limits {
            requests: Arc::new(Semaphore::new(config.max_requests)),
            long_polls: Arc::new(Semaphore::new(config.max_long_polls)),
            agents: Arc::new(Semaphore::new(config.max_agent_requests)),
            max: [
                config.max_requests,
                config.max_long_polls,
                config.max_agent_requests,
            ],
            rate: RateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst)),
            per_second: rate.get(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `bucket`; when it is empty, the answer to send instead.
    fn refuse(&self, bucket: Bucket) -> Option<Response> {
        self.rate.check_key(&bucket).err().map(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let who = match bucket {
                Bucket::Token { .. } => "this token",
                Bucket::Address { .. } => "this client address",
            };
            let msg = format!("rate limit exceeded: {who} may send {} requests per second (--rate-limit); retry later", self.per_second);
            with_retry_after(ApiError::ResourceExhausted(msg), wait)
        })
    }

    /// Forgets buckets that are full again (called from the background sweep), so the
    /// map holds only recently active tokens and addresses.
    pub fn shrink(&self) {
        self.rate.retain_recent();
        self.rate.shrink_to_fit();
    }
}

/// Answers `error` with `Retry-After` (whole seconds, at least 1).
fn with_retry_after(error: ApiError, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    response
}

/// The middleware: cap, authenticate (cached), rate-limit, then hand the request on with
/// its principal attached.
pub async fn protect(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let class = classify(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let limits = &state.limits;
    let (semaphore, max, flag) = match class {
        Class::Exempt => return next.run(req).await,
        Class::User => (&limits.requests, limits.max[0], "--max-requests"),
        Class::LongPoll => (&limits.long_polls, limits.max[1], "--max-long-polls"),
        Class::Agent => (&limits.agents, limits.max[2], "--max-agent-requests"),
    };
    // Held until the answer is sent: a long-poll keeps its slot while it waits.
    let Ok(_permit) = semaphore.clone().try_acquire_owned() else {
        let what = if class == Class::LongPoll {
            "long-polls"
        } else {
            "requests"
        };
        let msg = format!(
            "the server is at its limit of {max} concurrent {what} ({flag}); retry shortly"
        );
        return with_retry_after(ApiError::Unavailable(msg), Duration::from_secs(1));
    };

    let agent = class == Class::Agent;
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let address = Bucket::Address { agent, ip };
    let hash = auth::bearer(req.headers()).ok().map(auth::token_hash);
    let mut charged_address = false;
    let principal = match hash {
        None => None,
        Some(hash) => match state.tokens.get(&hash) {
            Cached::Fresh(known) => known,
            cached => {
                // A token not known to be valid costs a query: charge its address
                // first, so a flood of made-up tokens is held to the address's rate.
                // A token that was valid is looked up again free of charge, so such a
                // flood does not lock out good tokens sent from the same address.
                if cached == Cached::Unknown {
                    if let Some(r) = limits.refuse(address.clone()) {
                        return r;
                    }
                    charged_address = true;
                }
                let pool = if agent {
                    &state.agent_pool
                } else {
                    &state.pool
                };
                match auth::authenticate(&state.tokens, pool, hash).await {
                    Ok(p) => p,
                    Err(e) => return e.into_response(),
                }
            }
        },
    };
    let bucket = match (&principal, hash) {
        (Some(_), Some(hash)) => Some(Bucket::Token { agent, hash }),
        _ if charged_address => None,
        _ => Some(address),
    };
    if let Some(bucket) = bucket {
        if let Some(r) = limits.refuse(bucket) {
            return r;
        }
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(Authenticated(p));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(Some("/readyz")), Class::Exempt);
        assert_eq!(classify(Some("/v1/hosts/{host}/heartbeat")), Class::Agent);
        assert_eq!(classify(Some("/v1/hosts/{host}/config")), Class::Agent);
        assert_eq!(classify(Some("/v1/hosts/{host}")), Class::Agent);
        assert_eq!(classify(Some("/v1/hosts")), Class::User);
        assert_eq!(
            classify(Some(
                "/v1/projects/{project}/locations/{region}/operations/{operation}/wait"
            )),
            Class::LongPoll
        );
        assert_eq!(classify(None), Class::User);
    }
}
