//! Failed logins per account, wherever they come from (docs/security.md).
//!
//! The first `login_free_failures` failures cost nothing. After that, each failure makes the
//! next attempt on that account wait: 1 s, then 2, 4, … up to `login_backoff_max_secs`.
//! Attempts during the wait are refused (429 with `Retry-After`) without checking the password,
//! so guesses cannot be tested faster than the backoff allows. Nobody can lock an account for
//! good: the wait never exceeds the cap, a successful login clears the count, and the count
//! itself is forgotten after twice the cap without failures. The per-address limit
//! (`rate_login_per_minute`) still applies on top.
//!
//! Counted in Redis (`causerie:limit:login:*`) when it is configured, so guesses spread over
//! instances add up; in this process otherwise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::counters::{digest, RedisCounters};

pub(crate) struct LoginGuard {
    free: u32,
    max_wait: Duration,
    local: Mutex<HashMap<String, Failures>>,
    redis: Option<RedisCounters>,
}

struct Failures {
    count: u32,
    blocked_until: Instant,
    last: Instant,
}

impl LoginGuard {
    pub(crate) fn new(free: u32, max_wait: Duration, redis: Option<RedisCounters>) -> LoginGuard {
        LoginGuard {
            free,
            max_wait,
            local: Mutex::new(HashMap::new()),
            redis,
        }
    }

    /// How long the count of failures lives after the last one.
    fn memory(&self) -> Duration {
        self.max_wait * 2
    }

    /// The wait after the `count`-th failure in a row.
    fn wait_after(&self, count: u32) -> Option<Duration> {
        let over = count.checked_sub(self.free)?.checked_sub(1)?;
        let wait = Duration::from_secs(1u64 << over.min(30));
        Some(wait.min(self.max_wait))
    }

    fn keys(account: &str) -> (String, String) {
        let id = digest(account);
        (
            format!("causerie:limit:login:{id}:failures"),
            format!("causerie:limit:login:{id}:wait"),
        )
    }

    /// Whole seconds to wait before this account may try again; None when it may now.
    pub(crate) async fn must_wait(&self, account: &str) -> Option<u64> {
        if let Some(redis) = &self.redis {
            let (_, wait) = Self::keys(account);
            let mut pipe = redis::pipe();
            pipe.cmd("PTTL").arg(&wait);
            if let Some((millis,)) = redis.query::<(i64,)>(&pipe).await {
                return (millis > 0).then(|| (millis as u64).div_ceil(1000));
            }
        }
        let local = self.local.lock();
        let failures = local.get(account)?;
        let left = failures.blocked_until.checked_duration_since(Instant::now())?;
        (!left.is_zero()).then(|| left.as_millis().div_ceil(1000) as u64)
    }

    /// A wrong password (or unknown account, or inactive one) for `account`.
    pub(crate) async fn failed(&self, account: &str) {
        if let Some(redis) = &self.redis {
            let (failures, wait) = Self::keys(account);
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg(&failures);
            pipe.cmd("PEXPIRE")
                .arg(&failures)
                .arg(self.memory().as_millis() as u64)
                .ignore();
            if let Some((count,)) = redis.query::<(u32,)>(&pipe).await {
                if let Some(delay) = self.wait_after(count) {
                    let mut block = redis::pipe();
                    block
                        .cmd("SET")
                        .arg(&wait)
                        .arg(1)
                        .arg("PX")
                        .arg(delay.as_millis() as u64)
                        .ignore();
                    redis.query::<()>(&block).await;
                }
                return;
            }
        }
        let now = Instant::now();
        let mut local = self.local.lock();
        let memory = self.memory();
        let failures = local.entry(account.to_string()).or_insert(Failures {
            count: 0,
            blocked_until: now,
            last: now,
        });
        if now.duration_since(failures.last) > memory {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
        if let Some(delay) = self.wait_after(failures.count) {
            failures.blocked_until = now + delay;
        }
    }

    /// A successful login: the count starts over.
    pub(crate) async fn succeeded(&self, account: &str) {
        if let Some(redis) = &self.redis {
            let (failures, wait) = Self::keys(account);
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(&failures).arg(&wait).ignore();
            if redis.query::<()>(&pipe).await.is_some() {
                return;
            }
        }
        self.local.lock().remove(account);
    }

    /// Forgets accounts whose failures are old (run now and then).
    pub(crate) fn sweep(&self) {
        let memory = self.memory();
        self.local.lock().retain(|_, f| f.last.elapsed() <= memory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_double_up_to_the_cap_and_success_clears() {
        let guard = LoginGuard::new(2, Duration::from_secs(5), None);
        assert_eq!(guard.wait_after(1), None);
        assert_eq!(guard.wait_after(2), None);
        assert_eq!(guard.wait_after(3), Some(Duration::from_secs(1)));
        assert_eq!(guard.wait_after(4), Some(Duration::from_secs(2)));
        assert_eq!(guard.wait_after(6), Some(Duration::from_secs(5)));
        assert_eq!(guard.wait_after(90), Some(Duration::from_secs(5)));
        for _ in 0..2 {
            guard.failed("a@example.com").await;
        }
        assert_eq!(guard.must_wait("a@example.com").await, None);
        guard.failed("a@example.com").await;
        assert_eq!(guard.must_wait("a@example.com").await, Some(1));
        assert_eq!(guard.must_wait("b@example.com").await, None);
        guard.succeeded("a@example.com").await;
        assert_eq!(guard.must_wait("a@example.com").await, None);
    }
}
