//! Fan-out: hands an event to every socket that should see it, on this instance and, when
//! Redis is configured, on every other instance.
//!
//! Local sockets are always served directly. With Redis, each event is also published:
//! chat events on `causerie:chat:{id}` (an instance subscribes while it has a socket in that
//! chat), user events (presence, membership) on `causerie:users`, which every instance hears.
//! Redis is only a relay: messages are stored before they are published, so when Redis is
//! away nothing stored is lost; instances reconnect by themselves and then tell their v2
//! sockets to catch up from storage (`Resync`).
//!
//! A lost event can also be a membership change (`member_removed`). So before any socket
//! catches up after an outage (this instance's subscriber reconnected, or another instance
//! announces a `Resync` for events it could not publish), and every
//! [`MEMBERSHIP_RECHECK_EVERY`] in case Redis lost one without either, the instance re-reads
//! the memberships of its sockets' users in the chats they follow, and hands a socket whose
//! user is no longer a member the `member_removed` it missed (which takes it out of the room).
//! Posting never depended on this: the storing transaction checks membership itself.
//!
//! Each instance also keeps a heartbeat entry in the sorted set `causerie:instances` (score:
//! when it expires), so that the admin dashboard can count the live instances.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::event::{AccountClosed, Delivery, Event};
use super::hub::{Hub, KickReason};
use crate::accounts::{AccountEvents, AuthCache};
use crate::chats::events::{ChatEvent, EventSink};
use crate::chats::Chats;
use crate::ids::{ChatId, UserId};

const USERS_CHANNEL: &str = "causerie:users";
const INSTANCES_KEY: &str = "causerie:instances";
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// An instance that has not beaten for this long no longer counts as live.
const HEARTBEAT_TTL: Duration = Duration::from_secs(30);
const PUBLISH_QUEUE: usize = 65_536;
const PUBLISH_BATCH: usize = 512;
/// The longest a change to a user waits for the other instances to have heard it. An instance
/// that does not answer in time is one whose subscription is failing (it stops using its
/// cache when it notices) or one that died within the last [`HEARTBEAT_TTL`].
const HEARD_WAIT: Duration = Duration::from_millis(500);
/// How often the memberships of local sockets are re-read while nothing else prompted it.
pub(crate) const MEMBERSHIP_RECHECK_EVERY: Duration = Duration::from_secs(60);

fn chat_channel(chat: ChatId) -> String {
    format!("causerie:chat:{chat}")
}

/// What travels through Redis.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The publishing instance, which has already served its own sockets.
    origin: Uuid,
    event: Event,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    users: Vec<UserId>,
}

#[derive(Clone)]
pub(crate) struct Fanout {
    hub: Arc<Hub>,
    redis: Option<Arc<RedisRelay>>,
}

struct RedisRelay {
    instance: Uuid,
    client: redis::Client,
    /// The connection the dashboard's queries use, opened on first use.
    queries: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    outbox: mpsc::Sender<Envelope>,
    subscriber_up: AtomicBool,
    publisher_up: AtomicBool,
    /// Chats whose events could not be published; their followers are told to resync once
    /// Redis answers again.
    dropped: Mutex<HashSet<ChatId>>,
    /// The account service's cache of users: told of changes heard from other instances, and
    /// out of use while this instance may not hear them.
    auth: AuthCache,
    /// Barriers this instance published, by token: answers still expected, and the waiter.
    barriers: Mutex<HashMap<Uuid, (u64, Option<oneshot::Sender<()>>)>>,
}

/// The two Redis connection loops of a relay, to be run by the server's task owner.
pub(crate) struct RelayTasks {
    client: redis::Client,
    relay: Arc<RedisRelay>,
    hub: Arc<Hub>,
    queue: mpsc::Receiver<Envelope>,
    commands: mpsc::UnboundedReceiver<(ChatId, bool)>,
}

impl RelayTasks {
    /// Publishes and subscribes until `stop`; what is queued for publishing then is sent once
    /// more before returning, so the last stored messages still reach other instances.
    /// `chats` is asked for memberships after an outage (see the module's documentation).
    pub(crate) async fn run(self, stop: CancellationToken, chats: Chats) {
        let RelayTasks {
            client,
            relay,
            hub,
            queue,
            commands,
        } = self;
        tokio::join!(
            publish_loop(client.clone(), relay.clone(), queue, stop.clone()),
            heartbeat_loop(client.clone(), relay.instance, stop.clone()),
            recheck_loop(chats.clone(), hub.clone(), stop.clone()),
            async {
                tokio::select! {
                    _ = subscribe_loop(client, relay.clone(), hub, commands, chats) => {}
                    _ = stop.cancelled() => {}
                }
            }
        );
    }
}

impl Fanout {
    pub(crate) fn in_process(hub: Arc<Hub>) -> Fanout {
        Fanout { hub, redis: None }
    }

    /// Fan-out through Redis at `url`. Starts at once even if Redis is down (it reconnects by
    /// itself; `/readyz` reports it meanwhile).
    /// `auth` is the account service's cache of users, kept in step with other instances.
    pub(crate) fn redis(hub: Arc<Hub>, url: &str, auth: AuthCache) -> anyhow::Result<(Fanout, RelayTasks)> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid setting `redis_url`: {e}"))?;
        // Not in step until the subscriber is up.
        auth.set_synced(false);
        let (outbox, queue) = mpsc::channel(PUBLISH_QUEUE);
        let relay = Arc::new(RedisRelay {
            instance: Uuid::new_v4(),
            client: client.clone(),
            queries: tokio::sync::Mutex::new(None),
            outbox,
            subscriber_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(false),
            dropped: Mutex::new(HashSet::new()),
            auth,
            barriers: Mutex::new(HashMap::new()),
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        hub.set_room_watcher(Arc::new(move |chat, active| {
            let _ = commands.send((chat, active));
        }));
        let tasks = RelayTasks {
            client,
            relay: relay.clone(),
            hub: hub.clone(),
            queue,
            commands: command_rx,
        };
        Ok((
            Fanout {
                hub,
                redis: Some(relay),
            },
            tasks,
        ))
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// True without Redis; with it, true while both Redis connections work.
    pub(crate) fn ready(&self) -> bool {
        self.redis
            .as_ref()
            .is_none_or(|r| r.subscriber_up.load(Ordering::Relaxed) && r.publisher_up.load(Ordering::Relaxed))
    }

    pub(crate) fn uses_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Publishes an event to the sockets following its chat.
    pub(crate) fn to_chat(&self, event: Event) {
        self.publish(event, Vec::new());
    }

    /// Publishes an event to all sockets of these users (presence).
    pub(crate) fn to_users(&self, users: &[UserId], event: Event) {
        if users.is_empty() {
            return;
        }
        self.publish(event, users.to_vec());
    }

    /// Closes every socket of `user` here and, through Redis, on every other instance.
    pub(crate) fn disconnect(&self, user: UserId, why: AccountClosed) {
        self.publish(Event::Disconnect { user, why }, vec![user]);
    }

    /// How many instances beat within [`HEARTBEAT_TTL`] (this one included); None without
    /// Redis, or when Redis does not answer.
    pub(crate) async fn live_instances(&self) -> Option<u64> {
        let relay = self.redis.as_ref()?;
        let mut guard = relay.queries.lock().await;
        if guard.is_none() {
            let connecting = relay.client.get_multiplexed_async_connection();
            *guard = Some(
                tokio::time::timeout(Duration::from_secs(2), connecting)
                    .await
                    .ok()?
                    .ok()?,
            );
        }
        let conn = guard.as_mut()?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut count = redis::cmd("ZCOUNT");
        count.arg(INSTANCES_KEY).arg(now).arg("+inf");
        match tokio::time::timeout(Duration::from_secs(2), count.query_async::<u64>(conn)).await {
            Ok(Ok(count)) => Some(count),
            _ => {
                // Reconnect next time.
                *guard = None;
                None
            }
        }
    }

    /// Publishes a barrier after everything queued so far and waits, at most [`HEARD_WAIT`],
    /// until every other live instance has answered it. Without Redis, or alone, at once.
    async fn heard_everywhere(&self) {
        let Some(relay) = &self.redis else { return };
        let Some(live) = self.live_instances().await else {
            return;
        };
        let others = live.saturating_sub(1);
        if others == 0 {
            return;
        }
        let token = Uuid::new_v4();
        let (done, heard) = oneshot::channel();
        relay.barriers.lock().insert(token, (others, Some(done)));
        let barrier = Envelope {
            origin: relay.instance,
            event: Event::Barrier { token },
            users: Vec::new(),
        };
        let answered = relay.outbox.try_send(barrier).is_ok()
            && tokio::time::timeout(HEARD_WAIT, heard).await.is_ok_and(|r| r.is_ok());
        relay.barriers.lock().remove(&token);
        if !answered {
            metrics::counter!("causerie_fanout_barrier_timeouts_total").increment(1);
            tracing::warn!(
                instances = others,
                "not every instance confirmed a change to a user in time"
            );
        }
    }

    fn publish(&self, event: Event, users: Vec<UserId>) {
        let delivery = Arc::new(Delivery::new(event));
        deliver_locally(&self.hub, delivery.clone(), &users);
        if let Some(relay) = &self.redis {
            let envelope = Envelope {
                origin: relay.instance,
                event: delivery.event.clone(),
                users,
            };
            if relay.outbox.try_send(envelope).is_err() {
                metrics::counter!("causerie_fanout_dropped_total").increment(1);
                if let Some(chat) = delivery.event.chat() {
                    relay.dropped.lock().insert(chat);
                }
            }
        }
    }
}

impl AccountEvents for Fanout {
    fn changed(&self, user: UserId) {
        if self.redis.is_some() {
            self.publish(Event::AccountChanged { user }, vec![user]);
        }
    }

    fn closed(&self, user: UserId, why: crate::accounts::AccountClosed) {
        self.disconnect(user, why);
    }

    fn heard_everywhere(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(Fanout::heard_everywhere(self))
    }
}

impl EventSink for Fanout {
    fn publish(&self, event: ChatEvent, also_to: &[UserId]) {
        Fanout::publish(self, Event::Chat { event }, also_to.to_vec());
    }
}

/// Hands an event to this instance's sockets (also the entry point for events from Redis).
fn deliver_locally(hub: &Hub, delivery: Arc<Delivery>, users: &[UserId]) {
    match delivery.event {
        Event::Disconnect { user, why } => return hub.kick_user(user, KickReason::Account(why)),
        // Only the account cache and the relay care (see `subscribe_loop`).
        Event::AccountChanged { .. } | Event::Barrier { .. } | Event::Heard { .. } => return,
        _ => {}
    }
    if let Some(chat) = delivery.event.chat() {
        hub.deliver_to_chat(chat, &delivery);
    }
    if !users.is_empty() {
        hub.deliver_to_users(users, &delivery);
    }
    if let Event::Chat {
        event: ChatEvent::MemberRemoved { chat, user },
    } = delivery.event
    {
        hub.evict(chat, user);
    }
}

/// Keeps this instance's entry in `causerie:instances` fresh until `stop`, then removes it
/// (an instance that dies without stopping drops out after [`HEARTBEAT_TTL`]).
async fn heartbeat_loop(client: redis::Client, instance: Uuid, stop: CancellationToken) {
    let member = instance.to_string();
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => break,
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(INSTANCES_KEY)
            .arg(now + HEARTBEAT_TTL.as_millis() as i64)
            .arg(&member)
            .ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(INSTANCES_KEY)
            .arg("-inf")
            .arg(now)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(INSTANCES_KEY)
            .arg(HEARTBEAT_TTL.as_millis() as i64)
            .ignore();
        if !run_quick(&client, &mut connection, &pipe).await {
            tracing::debug!("Redis heartbeat failed; retrying at the next beat");
        }
    }
    let mut pipe = redis::pipe();
    pipe.cmd("ZREM").arg(INSTANCES_KEY).arg(&member).ignore();
    run_quick(&client, &mut connection, &pipe).await;
}

/// Runs a short pipeline on `connection` (opened when needed), within 2 s; false on failure,
/// which drops the connection so the next run opens a new one.
async fn run_quick(
    client: &redis::Client,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    pipe: &redis::Pipeline,
) -> bool {
    let done = tokio::time::timeout(Duration::from_secs(2), async {
        if connection.is_none() {
            *connection = Some(client.get_multiplexed_async_connection().await?);
        }
        match connection.as_mut() {
            Some(conn) => pipe.query_async::<()>(conn).await,
            None => Ok(()),
        }
    })
    .await;
    let ok = matches!(done, Ok(Ok(())));
    if !ok {
        *connection = None;
    }
    ok
}

/// Doubles the wait after each failure, up to 5 s.
fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(Duration::from_secs(5))
}

async fn publish_loop(
    client: redis::Client,
    relay: Arc<RedisRelay>,
    mut queue: mpsc::Receiver<Envelope>,
    stop: CancellationToken,
) {
    let mut stopping = false;
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = Duration::from_millis(100);
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    loop {
        if connection.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(conn) => {
                    connection = Some(conn);
                    backoff = Duration::from_millis(100);
                    relay.publisher_up.store(true, Ordering::Relaxed);
                    announce_dropped(&relay);
                }
                Err(err) => {
                    relay.publisher_up.store(false, Ordering::Relaxed);
                    if stopping || stop.is_cancelled() {
                        return;
                    }
                    tracing::warn!(%err, "Redis publisher cannot connect; retrying");
                    // Keep draining so senders never block; those events are marked for resync.
                    while let Ok(envelope) = queue.try_recv() {
                        mark_dropped(&relay, &envelope);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = next_backoff(backoff);
                    continue;
                }
            }
        }
        if stopping {
            // Whatever was queued before the stop, once; then done.
            while batch.len() < PUBLISH_BATCH {
                let Ok(envelope) = queue.try_recv() else { break };
                batch.push(envelope);
            }
            if batch.is_empty() {
                return;
            }
        } else {
            tokio::select! {
                received = queue.recv_many(&mut batch, PUBLISH_BATCH) => if received == 0 { return },
                _ = stop.cancelled() => {
                    stopping = true;
                    continue;
                }
            }
        }
        let mut pipe = redis::pipe();
        for envelope in &batch {
            let channel = match envelope.event.chat() {
                Some(chat) if envelope.users.is_empty() => chat_channel(chat),
                _ => USERS_CHANNEL.to_string(),
            };
            match serde_json::to_vec(envelope) {
                Ok(payload) => {
                    pipe.publish(channel, payload).ignore();
                }
                Err(err) => tracing::error!(%err, "cannot encode event for Redis"),
            }
        }
        let conn = connection.as_mut().expect("connected above");
        let sent = tokio::time::timeout(Duration::from_secs(5), pipe.query_async::<()>(conn)).await;
        match sent {
            Ok(Ok(())) => {
                batch.clear();
                // Events dropped while connected (the queue was full): announce them now
                // rather than at the next reconnect, which may never come.
                if !relay.dropped.lock().is_empty() {
                    announce_dropped(&relay);
                }
            }
            Ok(Err(_)) | Err(_) if stopping => return,
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("Redis publish failed; reconnecting");
                relay.publisher_up.store(false, Ordering::Relaxed);
                for envelope in batch.drain(..) {
                    mark_dropped(&relay, &envelope);
                }
                connection = None;
            }
        }
    }
}

fn mark_dropped(relay: &RedisRelay, envelope: &Envelope) {
    metrics::counter!("causerie_fanout_dropped_total").increment(1);
    if let Some(chat) = envelope.event.chat() {
        relay.dropped.lock().insert(chat);
    }
}

/// After an outage, tells every instance's followers of the affected chats to catch up.
fn announce_dropped(relay: &RedisRelay) {
    let chats: Vec<ChatId> = relay.dropped.lock().drain().collect();
    for chat in chats {
        let _ = relay.outbox.try_send(Envelope {
            origin: Uuid::nil(),
            event: Event::Resync { chat },
            users: Vec::new(),
        });
    }
}

/// Re-reads whether the users of the local sockets following `rooms` are still members, and
/// gives each socket whose user no longer is the `member_removed` it missed, which also takes
/// it out of the room (so nothing more is delivered to it, and no catch-up reaches it).
/// Bounded in time: a database that does not answer leaves the rooms as they are (posting is
/// still refused by the storing transaction), and the next recheck tries again.
async fn recheck_members(chats: &Chats, hub: &Hub, rooms: &[ChatId]) {
    let followers = hub.followers(rooms);
    if followers.is_empty() {
        return;
    }
    let still = match tokio::time::timeout(Duration::from_secs(5), chats.memberships_among(&followers)).await {
        Ok(Ok(still)) => still,
        Ok(Err(err)) => return tracing::warn!(error = %err, "cannot re-read memberships; keeping the rooms"),
        Err(_) => return tracing::warn!("re-reading memberships timed out; keeping the rooms"),
    };
    for (chat, user) in followers.into_iter().filter(|pair| !still.contains(pair)) {
        metrics::counter!("causerie_membership_evictions_total").increment(1);
        tracing::info!(%chat, %user, "a removal this instance did not hear of: the socket leaves the room");
        let removed = Event::Chat {
            event: ChatEvent::MemberRemoved { chat, user },
        };
        deliver_locally(hub, Arc::new(Delivery::new(removed)), &[user]);
    }
}

/// Every [`MEMBERSHIP_RECHECK_EVERY`], [`recheck_members`] over every local room: Redis may
/// lose a publish without either side reconnecting (one it refuses under memory pressure).
async fn recheck_loop(chats: Chats, hub: Arc<Hub>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + MEMBERSHIP_RECHECK_EVERY,
        MEMBERSHIP_RECHECK_EVERY,
    );
    loop {
        tokio::select! {
            _ = ticks.tick() => recheck_members(&chats, &hub, &hub.active_chats()).await,
            _ = stop.cancelled() => return,
        }
    }
}

/// One more instance answered the barrier `token`; the last answer wakes its waiter.
fn heard(relay: &RedisRelay, token: Uuid) {
    let mut barriers = relay.barriers.lock();
    if let Some((missing, waiter)) = barriers.get_mut(&token) {
        *missing = missing.saturating_sub(1);
        if *missing == 0 {
            if let Some(waiter) = waiter.take() {
                let _ = waiter.send(());
            }
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    relay: Arc<RedisRelay>,
    hub: Arc<Hub>,
    mut commands: mpsc::UnboundedReceiver<(ChatId, bool)>,
    chats: Chats,
) {
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    loop {
        let pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                relay.subscriber_up.store(false, Ordering::Relaxed);
                tracing::warn!(%err, "Redis subscriber cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        // Rooms opened or closed while disconnected are covered by subscribing to what is
        // active now.
        while commands.try_recv().is_ok() {}
        let mut subscribed = sink.subscribe(USERS_CHANNEL).await.is_ok();
        for chat in hub.active_chats() {
            subscribed &= sink.subscribe(chat_channel(chat)).await.is_ok();
        }
        if !subscribed {
            tokio::time::sleep(backoff).await;
            backoff = next_backoff(backoff);
            continue;
        }
        relay.subscriber_up.store(true, Ordering::Relaxed);
        // From here on every change to a user is heard: the cache may serve again.
        relay.auth.set_synced(true);
        backoff = Duration::from_millis(100);
        if connected_before {
            // Events published while we were away never reached us: removals first (a socket
            // whose user was removed meanwhile must not catch up), then catch up from storage.
            recheck_members(&chats, &hub, &hub.active_chats()).await;
            for chat in hub.active_chats() {
                deliver_locally(&hub, Arc::new(Delivery::new(Event::Resync { chat })), &[]);
            }
        }
        connected_before = true;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    match serde_json::from_slice::<Envelope>(message.get_payload_bytes()) {
                        Ok(envelope) if envelope.origin != relay.instance => {
                            if let Event::Disconnect { user, .. } | Event::AccountChanged { user } = envelope.event {
                                relay.auth.forget(user);
                            }
                            match envelope.event {
                                // Everything published before the barrier has been applied:
                                // events are handled in the order they arrive.
                                Event::Barrier { token } => {
                                    let _ = relay.outbox.try_send(Envelope {
                                        origin: relay.instance,
                                        event: Event::Heard { token },
                                        users: Vec::new(),
                                    });
                                }
                                Event::Heard { token } => heard(&relay, token),
                                _ => {}
                            }
                            if let Event::Resync { chat } = envelope.event {
                                // The announcing instance lost events of this chat, perhaps a removal.
                                recheck_members(&chats, &hub, &[chat]).await;
                            }
                            deliver_locally(&hub, Arc::new(Delivery::new(envelope.event)), &envelope.users);
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(%err, "undecodable event from Redis"),
                    }
                }
                command = commands.recv() => {
                    let Some((chat, active)) = command else { return };
                    let done = if active {
                        sink.subscribe(chat_channel(chat)).await
                    } else {
                        sink.unsubscribe(chat_channel(chat)).await
                    };
                    if done.is_err() {
                        break;
                    }
                }
            }
        }
        relay.subscriber_up.store(false, Ordering::Relaxed);
        relay.auth.set_synced(false);
        tracing::warn!("Redis subscriber connection lost; reconnecting");
        tokio::time::sleep(backoff).await;
    }
}
