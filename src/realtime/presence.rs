//! Presence: a user is online while they have at least one socket open. Changes are stored
//! (`online`, `lastConnexionDate`) and sent to everyone who shares a chat with them.

use uuid::Uuid;

use super::event::Event;
use super::Realtime;
use crate::ids::UserId;

/// Call after the user's socket joined the hub.
pub(crate) async fn connected(rt: &Realtime, user: UserId) {
    if rt.presence().connected(user).await {
        announce(rt, user, true).await;
    }
}

/// Call after the user's socket left the hub.
pub(crate) async fn disconnected(rt: &Realtime, user: UserId) {
    if rt.presence().disconnected(user).await {
        announce(rt, user, false).await;
    }
}

async fn announce(rt: &Realtime, user: UserId, online: bool) {
    // Announcements for one user run one at a time, and each re-checks the local state first:
    // a fast close-and-reopen cannot leave "offline" stored after "online".
    let lock = rt.presence().announce_lock(user);
    let _turn = lock.lock().await;
    if rt.presence().has_local(user) != online {
        return;
    }
    let at = match rt.accounts().set_presence(user, online).await {
        Ok(at) => at,
        Err(err) => return tracing::warn!(%err, %user, "could not store presence"),
    };
    let audience = match rt.chats().contacts(user).await {
        Ok(contacts) => contacts,
        Err(err) => return tracing::warn!(%err, %user, "could not load presence audience"),
    };
    rt.fanout().to_users(&audience, Event::Presence { user, online, at });
}

/// Counts each user's open sockets and reports the transitions between none and some. With
/// Redis, "some" spans every instance: each instance keeps, per user, an entry in the sorted set
/// `causerie:presence:{user}` whose score is an expiry time it refreshes while the user has a
/// socket there, so an instance that dies stops counting within [`ENTRY_TTL`].
pub(crate) struct PresenceCounter {
    local: parking_lot::Mutex<std::collections::HashMap<UserId, usize>>,
    redis: Option<RedisPresence>,
    /// One lock per user with an announcement in flight.
    announcing: parking_lot::Mutex<std::collections::HashMap<UserId, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

struct RedisPresence {
    client: redis::Client,
    instance: String,
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl PresenceCounter {
    pub(crate) fn in_process() -> PresenceCounter {
        PresenceCounter {
            local: Default::default(),
            redis: None,
            announcing: Default::default(),
        }
    }

    /// Presence across instances through Redis, and the task that keeps this instance's
    /// entries fresh (to be run by the server's task owner).
    pub(crate) fn redis(
        url: &str,
    ) -> anyhow::Result<(
        std::sync::Arc<PresenceCounter>,
        impl std::future::Future<Output = ()> + Send + 'static,
    )> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid setting `redis_url`: {e}"))?;
        let counter = std::sync::Arc::new(PresenceCounter {
            local: Default::default(),
            announcing: Default::default(),
            redis: Some(RedisPresence {
                client,
                instance: Uuid::new_v4().to_string(),
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
    fn announce_lock(&self, user: UserId) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut map = self.announcing.lock();
        if let Some(lock) = map.get(&user).and_then(std::sync::Weak::upgrade) {
            return lock;
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        map.insert(user, std::sync::Arc::downgrade(&lock));
        lock
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
