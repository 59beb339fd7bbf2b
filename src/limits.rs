//! Per-client rate limits for the endpoints attackers hammer (login, registration, password
//! reset), answering with DRF's throttled body and `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::Config;
use crate::error::ApiError;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope {
    Login,
    Register,
    PasswordReset,
}

/// The limiters, shared by every request handler (cheap to clone).
#[derive(Clone)]
pub(crate) struct RateLimits(Arc<Limiters>);

struct Limiters {
    /// Whether the client address comes from `X-Forwarded-For`.
    trust_forwarded_for: bool,
    /// How many of the right-most `X-Forwarded-For` hops our own proxies wrote.
    trusted_proxies: usize,
    login: DefaultKeyedRateLimiter<IpAddr>,
    register: DefaultKeyedRateLimiter<IpAddr>,
    password_reset: DefaultKeyedRateLimiter<IpAddr>,
}

fn per(period: Duration, count: u32) -> Quota {
    // Config validation guarantees a positive count.
    let count = NonZeroU32::new(count).expect("validated positive rate");
    Quota::with_period(period / count.get())
        .expect("non-zero period")
        .allow_burst(count)
}

impl RateLimits {
    pub(crate) fn new(config: &Config) -> RateLimits {
        RateLimits(Arc::new(Limiters {
            trust_forwarded_for: config.trust_forwarded_for,
            trusted_proxies: config.trusted_proxies.max(1),
            login: DefaultKeyedRateLimiter::keyed(per(Duration::from_secs(60), config.rate_login_per_minute)),
            register: DefaultKeyedRateLimiter::keyed(per(Duration::from_secs(3600), config.rate_register_per_hour)),
            password_reset: DefaultKeyedRateLimiter::keyed(per(
                Duration::from_secs(3600),
                config.rate_password_reset_per_hour,
            )),
        }))
    }

    pub(crate) fn check(&self, scope: Scope, client: IpAddr) -> Result<(), ApiError> {
        let limiter = match scope {
            Scope::Login => &self.0.login,
            Scope::Register => &self.0.register,
            Scope::PasswordReset => &self.0.password_reset,
        };
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::Throttled(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        })
    }

    /// Forgets idle keys so the maps do not grow with every address ever seen.
    pub(crate) fn sweep(&self) {
        self.0.login.retain_recent();
        self.0.register.retain_recent();
        self.0.password_reset.retain_recent();
    }
}

/// The client's address: the socket peer, or, with `trust_forwarded_for`, the address our
/// outermost proxy saw. Each proxy appends the address it received from, so with
/// `trusted_proxies` = N the client is the N-th hop from the right; everything left of it was
/// written by the client and is ignored (a client could put any address there).
pub(crate) struct ClientIp(pub IpAddr);

/// The client hop of an `X-Forwarded-For` value that `proxies` proxies of ours appended to.
fn forwarded_client(header: &str, proxies: usize) -> Option<IpAddr> {
    let hops: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = hops.len().checked_sub(proxies.max(1))?;
    hops[index].parse().ok()
}

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    RateLimits: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if RateLimits::from_ref(state).0.trust_forwarded_for {
            let proxies = RateLimits::from_ref(state).0.trusted_proxies;
            // Several headers count as one list, in order.
            let joined = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let forwarded = (!joined.is_empty())
                .then(|| forwarded_client(&joined, proxies))
                .flatten();
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(ClientIp(peer))
    }
}

/// Which limit a [`Throttle`] applies.
pub(crate) trait Limited {
    const SCOPE: Scope;
}

/// Registrations per client address.
pub(crate) enum Registrations {}

impl Limited for Registrations {
    const SCOPE: Scope = Scope::Register;
}

/// Password reset requests and confirmations per client address.
pub(crate) enum PasswordResets {}

impl Limited for PasswordResets {
    const SCOPE: Scope = Scope::PasswordReset;
}

/// Passes while the client is within `L`'s rate, else answers 429. As a handler argument before
/// the body, it refuses a throttled client before its body is read.
pub(crate) struct Throttle<L>(std::marker::PhantomData<L>);

impl<S, L> FromRequestParts<S> for Throttle<L>
where
    S: Send + Sync,
    RateLimits: FromRef<S>,
    L: Limited,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        RateLimits::from_ref(state).check(L::SCOPE, ip)?;
        Ok(Throttle(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;

    #[test]
    fn the_client_is_the_hop_our_proxies_saw() {
        // The client wrote "6.6.6.6"; our one proxy appended the address it saw.
        assert_eq!(forwarded_client("6.6.6.6, 203.0.113.7", 1), "203.0.113.7".parse().ok());
        // Two proxies of ours: the edge appended the client, the next one the edge.
        assert_eq!(
            forwarded_client("6.6.6.6, 203.0.113.7, 10.0.0.2", 2),
            "203.0.113.7".parse().ok()
        );
        // Fewer hops than proxies, or garbage: no forwarded address.
        assert_eq!(forwarded_client("203.0.113.7", 2), None);
        assert_eq!(forwarded_client("6.6.6.6, not-an-ip", 1), None);
    }
}
