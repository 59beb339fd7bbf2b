//! Counters that limits share across instances: in Redis when it is configured, in this
//! process otherwise (and, when Redis does not answer, in this process until it does: a limit
//! then counts one instance's share instead of refusing everyone).
//!
//! Two uses: failed logins per account (`accounts::guard`) and messages per user per second
//! (`chats::rate`). Keys live under `causerie:limit:*` and expire by themselves.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;

/// How long a counter query may take before the local count is used instead.
const QUERY_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, Redis is left alone this long (counting locally), so that an outage does
/// not make every login or message wait for a timeout.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// One Redis connection for counters, opened on first use and reopened after a failure.
pub(crate) struct RedisCounters {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// The connection in use, cloned out so queries do not wait on each other.
    ready: Mutex<Option<MultiplexedConnection>>,
    /// Set after a failure: until then, do not try.
    resting_until: Mutex<Option<Instant>>,
}

impl RedisCounters {
    /// None without a (valid) Redis URL.
    pub(crate) fn open(url: Option<&str>) -> Option<RedisCounters> {
        let client = redis::Client::open(url?).ok()?;
        Some(RedisCounters {
            client,
            connection: tokio::sync::Mutex::new(None),
            ready: Mutex::new(None),
            resting_until: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.ready.lock().clone() {
            return Some(conn);
        }
        // One connection attempt at a time; the others wait for it.
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            let connecting = self.client.get_multiplexed_async_connection();
            *slot = tokio::time::timeout(QUERY_TIMEOUT * 2, connecting)
                .await
                .ok()
                .and_then(Result::ok);
            if slot.is_none() {
                self.rest();
                return None;
            }
        }
        let conn = slot.clone()?;
        *self.ready.lock() = Some(conn.clone());
        Some(conn)
    }

    fn rest(&self) {
        *self.resting_until.lock() = Some(Instant::now() + RETRY_AFTER);
    }

    fn broken(&self) {
        self.rest();
        *self.ready.lock() = None;
        if let Ok(mut slot) = self.connection.try_lock() {
            *slot = None;
        }
    }

    /// Runs `pipe`; None when Redis did not answer in time (the caller counts locally).
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        {
            let mut resting = self.resting_until.lock();
            match *resting {
                Some(until) if Instant::now() < until => return None,
                Some(_) => *resting = None,
                None => {}
            }
        }
        let mut conn = self.connection().await?;
        match tokio::time::timeout(QUERY_TIMEOUT, pipe.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::debug!(%err, "Redis counter query failed; counting locally");
                self.broken();
                None
            }
            Err(_) => {
                self.broken();
                None
            }
        }
    }
}

/// A short digest for a key part that should not be stored as such (an email address).
pub(crate) fn digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}
