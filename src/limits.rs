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

/// The client's address: the socket peer, or the first `X-Forwarded-For` hop when configured.
pub(crate) struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    RateLimits: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if RateLimits::from_ref(state).0.trust_forwarded_for {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
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
