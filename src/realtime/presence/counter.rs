//! Where presence is kept: each user's open sockets (counted here and, with Redis, across
//! instances) and the leases of users shown online, with when each was last seen.

use std::collections::HashMap;

use uuid::Uuid;

use crate::ids::UserId;

/// Counts each user's open sockets and reports the transitions between none and some. With
/// Redis, "some" spans every instance: each instance keeps, per user, an entry in the sorted set
/// `causerie:presence:{user}` whose score is an expiry time it refreshes while the user has a
/// socket there, so an instance that dies stops counting within [`ENTRY_TTL`].
///
/// It also keeps the leases: every user shown online has one, scored with when they were last
/// seen (unix milliseconds), in `causerie:presence:leases:{deployment}` with Redis, in this
/// process without.
/// The presence sweep claims the stale ones (`super::sweep`).
pub(crate) struct PresenceCounter {
    local: parking_lot::Mutex<std::collections::HashMap<UserId, usize>>,
    redis: Option<RedisPresence>,
    /// The leases, when there is no Redis.
    leases: parking_lot::Mutex<HashMap<UserId, i64>>,
    /// One lock per user with an announcement in flight.
    announcing: parking_lot::Mutex<std::collections::HashMap<UserId, std::sync::Weak<tokio::sync::Mutex<()>>>>,
    /// How many entries `announcing` kept at its last sweep.
    announcing_swept: std::sync::atomic::AtomicUsize,
}

struct RedisPresence {
    client: redis::Client,
    instance: String,
    leases_key: String,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

/// How long an instance's presence entry lives without a refresh.
pub(crate) const ENTRY_TTL: std::time::Duration = std::time::Duration::from_secs(90);
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn presence_key(user: UserId) -> String {
    format!("causerie:presence:{user}")
}

/// The sorted set of `user`'s open sockets on every instance: members `{instance}:{n}` for
/// n below that instance's count, scores their expiry (refreshed with the presence entries).
fn sockets_key(user: UserId) -> String {
    format!("causerie:sockets:{user}")
}

/// The leases of users shown online (members user ids, scores when each was last seen) of the
/// deployment whose instances share `secret`: servers with other databases may share a Redis,
/// and one's sweep must not take another's leases. Named after a digest, never the secret.
fn leases_key(secret: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"causerie presence leases\0")
        .chain_update(secret)
        .finalize();
    format!("causerie:presence:leases:{}", hex::encode(&digest[..8]))
}
/// Members per Redis command when many leases change at once.
const LEASE_CHUNK: usize = 500;

/// Takes the leases seen at or before `ARGV[1]`, at most `ARGV[2]` of them, in one step, so that
/// each stale lease goes to exactly one instance's sweep.
const CLAIM_STALE: &str = r"
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #stale > 0 then redis.call('ZREM', KEYS[1], unpack(stale)) end
return stale";

/// How a lease is written.
#[derive(Clone, Copy)]
enum LeaseWrite {
    /// Created, or moved on to a later time.
    Renew,
    /// Moved on only if it exists (a request does not make anyone online).
    Extend,
    /// Created only if missing (leases for users found online at start).
    Adopt,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl PresenceCounter {
    pub(crate) fn in_process() -> PresenceCounter {
        PresenceCounter {
            local: Default::default(),
            redis: None,
            leases: Default::default(),
            announcing: Default::default(),
            announcing_swept: Default::default(),
        }
    }

    /// Presence across instances through Redis, and the task that keeps this instance's
    /// entries fresh (to be run by the server's task owner).
    pub(crate) fn redis(
        url: &str,
        secret: &[u8],
    ) -> anyhow::Result<(
        std::sync::Arc<PresenceCounter>,
        impl std::future::Future<Output = ()> + Send + 'static,
    )> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid setting `redis_url`: {e}"))?;
        let counter = std::sync::Arc::new(PresenceCounter {
            local: Default::default(),
            announcing: Default::default(),
            announcing_swept: Default::default(),
            leases: Default::default(),
            redis: Some(RedisPresence {
                client,
                instance: Uuid::new_v4().to_string(),
                leases_key: leases_key(secret),
                connection: tokio::sync::Mutex::new(None),
            }),
        });
        let weak = std::sync::Arc::downgrade(&counter);
        let refresh = async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            loop {
                tick.tick().await;
                let Some(counter) = weak.upgrade() else { return };
                counter.refresh().await;
            }
        };
        Ok((counter, refresh))
    }

    /// `user`'s open sockets: on every instance with Redis (this instance's own count when
    /// Redis does not answer), else here. What `ws_max_sockets_per_user` is checked against.
    pub(crate) async fn open_sockets(&self, user: UserId) -> usize {
        let here = self.local.lock().get(&user).copied().unwrap_or(0);
        match &self.redis {
            None => here,
            Some(redis) => redis.socket_count(user).await.map_or(here, |n| n.max(here)),
        }
    }

    /// True when this socket made the user go from offline to online.
    pub(crate) async fn connected(&self, user: UserId) -> bool {
        let count = {
            let mut local = self.local.lock();
            let count = local.entry(user).or_insert(0);
            *count += 1;
            *count
        };
        if let Some(redis) = &self.redis {
            let _ = redis.add_sockets(user, count - 1..count).await;
        }
        if count != 1 {
            return false;
        }
        match &self.redis {
            None => true,
            // Online for everyone only if no other live instance had the user.
            Some(redis) => redis.join(user).await.map(|others| others == 0).unwrap_or(true),
        }
    }

    /// True when this was the user's last socket (on every instance).
    pub(crate) async fn disconnected(&self, user: UserId) -> bool {
        let (last_here, left) = {
            let mut local = self.local.lock();
            match local.get_mut(&user) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    (false, Some(*count))
                }
                Some(_) => {
                    local.remove(&user);
                    (true, Some(0))
                }
                None => (false, None),
            }
        };
        if let (Some(redis), Some(left)) = (&self.redis, left) {
            let _ = redis.remove_socket(user, left).await;
        }
        if !last_here {
            return false;
        }
        match &self.redis {
            None => true,
            Some(redis) => redis.leave(user).await.map(|left| left == 0).unwrap_or(true),
        }
    }

    /// True while this instance has a socket of `user`.
    pub(crate) fn has_local(&self, user: UserId) -> bool {
        self.local.lock().contains_key(&user)
    }

    /// True while `user` has a socket on this instance or (with Redis) on any live one. When
    /// Redis does not answer, only this instance's sockets count.
    pub(crate) async fn is_online(&self, user: UserId) -> bool {
        if self.has_local(user) {
            return true;
        }
        match &self.redis {
            None => false,
            Some(redis) => redis.live_entries(user).await.map(|n| n > 0).unwrap_or(false),
        }
    }

    /// The lock that orders `user`'s announcements (dropped once nobody holds it).
    pub(super) fn announce_lock(&self, user: UserId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut map = self.announcing.lock();
        if let Some(lock) = map.get(&user).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        // Swept only when the map has doubled since the last sweep: a sweep per miss made a
        // connect storm of N new users cost N² (the entries of finished turns are dead weight).
        if map.len() >= 2 * self.announcing_swept.load(std::sync::atomic::Ordering::Relaxed).max(64) {
            map.retain(|_, weak| weak.strong_count() > 0);
            self.announcing_swept
                .store(map.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        map.insert(user, std::sync::Arc::downgrade(&lock));
        lock
    }

    /// Gives these users a lease, or moves theirs on to the time given.
    pub(crate) async fn renew(&self, seen: &[(UserId, i64)]) {
        self.write_leases(seen, LeaseWrite::Renew).await;
    }

    /// Moves the leases of those of these users that have one on to the time given.
    pub(crate) async fn extend(&self, seen: &[(UserId, i64)]) {
        self.write_leases(seen, LeaseWrite::Extend).await;
    }

    /// Gives these users a lease seen `at` unless they have one.
    pub(crate) async fn adopt(&self, users: &[UserId], at: i64) {
        let seen: Vec<(UserId, i64)> = users.iter().map(|u| (*u, at)).collect();
        self.write_leases(&seen, LeaseWrite::Adopt).await;
    }

    pub(crate) async fn release(&self, user: UserId) {
        match &self.redis {
            None => {
                self.leases.lock().remove(&user);
            }
            Some(redis) => {
                let mut pipe = redis::pipe();
                pipe.cmd("ZREM").arg(&redis.leases_key).arg(user.to_string()).ignore();
                if let Err(err) = redis.run::<()>(&pipe).await {
                    tracing::warn!(%err, %user, "could not release a presence lease");
                }
            }
        }
    }

    /// Takes (removes) at most `limit` leases last seen at or before `cutoff`; each is taken by
    /// one caller only, on every instance.
    pub(crate) async fn claim_stale(&self, cutoff: i64, limit: usize) -> Vec<UserId> {
        match &self.redis {
            None => {
                let mut leases = self.leases.lock();
                let stale: Vec<UserId> = leases
                    .iter()
                    .filter(|(_, seen)| **seen <= cutoff)
                    .map(|(user, _)| *user)
                    .take(limit)
                    .collect();
                for user in &stale {
                    leases.remove(user);
                }
                stale
            }
            Some(redis) => {
                let mut pipe = redis::pipe();
                pipe.cmd("EVAL")
                    .arg(CLAIM_STALE)
                    .arg(1)
                    .arg(&redis.leases_key)
                    .arg(cutoff)
                    .arg(limit);
                match redis.run::<(Vec<String>,)>(&pipe).await {
                    Ok((stale,)) => stale.iter().filter_map(|id| id.parse().ok()).collect(),
                    Err(err) => {
                        tracing::warn!(%err, "could not claim stale presence leases");
                        Vec::new()
                    }
                }
            }
        }
    }

    async fn write_leases(&self, seen: &[(UserId, i64)], how: LeaseWrite) {
        let Some(redis) = &self.redis else {
            let mut leases = self.leases.lock();
            for &(user, at) in seen {
                match how {
                    LeaseWrite::Renew => {
                        let lease = leases.entry(user).or_insert(at);
                        *lease = (*lease).max(at);
                    }
                    LeaseWrite::Extend => {
                        if let Some(lease) = leases.get_mut(&user) {
                            *lease = (*lease).max(at);
                        }
                    }
                    LeaseWrite::Adopt => {
                        leases.entry(user).or_insert(at);
                    }
                }
            }
            return;
        };
        for chunk in seen.chunks(LEASE_CHUNK) {
            let mut pipe = redis::pipe();
            let cmd = pipe.cmd("ZADD").arg(&redis.leases_key);
            match how {
                LeaseWrite::Renew => cmd.arg("GT"),
                LeaseWrite::Extend => cmd.arg("XX").arg("GT"),
                LeaseWrite::Adopt => cmd.arg("NX"),
            };
            for &(user, at) in chunk {
                cmd.arg(at).arg(user.to_string());
            }
            cmd.ignore();
            if let Err(err) = redis.run::<()>(&pipe).await {
                tracing::warn!(%err, "could not write presence leases");
                return;
            }
        }
    }

    async fn refresh(&self) {
        let users: Vec<(UserId, usize)> = self.local.lock().iter().map(|(u, n)| (*u, *n)).collect();
        if let Some(redis) = &self.redis {
            for (user, count) in users {
                let _ = redis.join(user).await;
                let _ = redis.add_sockets(user, 0..count).await;
            }
        }
    }
}

impl RedisPresence {
    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> redis::RedisResult<T> {
        let mut guard = self.connection.lock().await;
        if guard.is_none() {
            *guard = Some(self.client.get_multiplexed_async_connection().await?);
        }
        let conn = guard.as_mut().expect("connected above");
        let result = tokio::time::timeout(std::time::Duration::from_secs(2), pipe.query_async(conn)).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                *guard = None;
                Err(err)
            }
            Err(_) => {
                *guard = None;
                Err(redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::TimedOut,
                )))
            }
        }
    }

    /// Adds or refreshes this instance's entry; returns how many other live instances have the user.
    async fn join(&self, user: UserId) -> redis::RedisResult<i64> {
        let key = presence_key(user);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        pipe.cmd("ZCOUNT").arg(&key).arg("-inf").arg("+inf");
        pipe.cmd("ZSCORE").arg(&key).arg(&self.instance);
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(now + ENTRY_TTL.as_millis() as i64)
            .arg(&self.instance)
            .ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ENTRY_TTL.as_millis() as i64).ignore();
        let (count, mine): (i64, Option<f64>) = self.run(&pipe).await?;
        Ok(count - i64::from(mine.is_some()))
    }

    /// Adds (or refreshes) this instance's socket entries `range` of `user`.
    async fn add_sockets(&self, user: UserId, range: std::ops::Range<usize>) -> redis::RedisResult<()> {
        if range.is_empty() {
            return Ok(());
        }
        let key = sockets_key(user);
        let expiry = now_ms() + ENTRY_TTL.as_millis() as i64;
        let mut pipe = redis::pipe();
        for n in range {
            pipe.cmd("ZADD")
                .arg(&key)
                .arg(expiry)
                .arg(format!("{}:{n}", self.instance))
                .ignore();
        }
        pipe.cmd("PEXPIRE").arg(&key).arg(ENTRY_TTL.as_millis() as i64).ignore();
        self.run(&pipe).await
    }

    /// Removes this instance's socket entry `n` of `user` (its count went down to `n`).
    async fn remove_socket(&self, user: UserId, n: usize) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM")
            .arg(sockets_key(user))
            .arg(format!("{}:{n}", self.instance))
            .ignore();
        self.run(&pipe).await
    }

    /// `user`'s live socket entries on every instance.
    async fn socket_count(&self, user: UserId) -> redis::RedisResult<usize> {
        let key = sockets_key(user);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms())
            .ignore();
        pipe.cmd("ZCARD").arg(&key);
        let (count,): (usize,) = self.run(&pipe).await?;
        Ok(count)
    }

    /// How many live instances have the user.
    async fn live_entries(&self, user: UserId) -> redis::RedisResult<i64> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZCOUNT")
            .arg(presence_key(user))
            .arg(format!("({}", now_ms()))
            .arg("+inf");
        let (count,): (i64,) = self.run(&pipe).await?;
        Ok(count)
    }

    /// Removes this instance's entry; returns how many live instances still have the user.
    async fn leave(&self, user: UserId) -> redis::RedisResult<i64> {
        let key = presence_key(user);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREM").arg(&key).arg(&self.instance).ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms())
            .ignore();
        pipe.cmd("ZCOUNT").arg(&key).arg("-inf").arg("+inf");
        let (count,): (i64,) = self.run(&pipe).await?;
        Ok(count)
    }
}
