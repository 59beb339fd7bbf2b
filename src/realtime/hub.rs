//! The room hub: which local sockets listen to which chat (and which user), and delivery to
//! them. Delivery never waits: each socket has a bounded queue, and a socket whose queue is
//! full is a slow reader that gets disconnected instead of growing memory.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::{Mutex, RwLock};

use super::event::{AccountClosed, Delivery};
use crate::ids::{ChatId, UserId};

/// Why the hub wants a socket closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KickReason {
    /// Its queue is full: the client does not read (close 1013).
    TooSlow,
    /// Its user may no longer be connected (close 4401).
    Account(AccountClosed),
}

/// Everything the hub keeps of one socket, in one allocation: every idle socket has one, so
/// it is kept small (a tokio channel alone cost ~0.8 KiB per socket, mostly cache-line padding
/// and a first block of 32 slots, and the futures waiting on a `Notify` are large).
struct Inbox {
    state: Mutex<InboxState>,
    /// Deliveries that may wait; one more makes the socket a slow reader.
    capacity: usize,
    /// The chats this socket has joined.
    chats: Mutex<Vec<ChatId>>,
}

#[derive(Default)]
struct InboxState {
    deliveries: VecDeque<Arc<Delivery>>,
    /// The session waiting for the next delivery.
    waiting: Option<Waker>,
    /// Set once the hub wants the socket closed.
    kick: Option<KickReason>,
    /// The session waiting for the kick.
    waiting_kick: Option<Waker>,
}

/// A queue emptied after a burst gives back room beyond this, so that a socket that once
/// fell behind does not keep its peak while idle.
const KEPT_QUEUE_ROOM: usize = 16;

/// Remembers `waker` to be woken, unless it is the one already remembered.
fn remember(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

impl Inbox {
    /// Queues `delivery` unless the queue is full (`false`: the socket is too slow).
    fn offer(&self, delivery: &Arc<Delivery>) -> bool {
        let mut state = self.state.lock();
        if state.deliveries.len() >= self.capacity {
            return false;
        }
        state.deliveries.push_back(delivery.clone());
        let waiting = state.waiting.take();
        drop(state);
        if let Some(waker) = waiting {
            waker.wake();
        }
        true
    }

    fn kick(&self, reason: KickReason) {
        let mut state = self.state.lock();
        // The account's reason wins over slowness: it tells the client not to come back.
        if state.kick.is_none() || matches!(reason, KickReason::Account(_)) {
            state.kick = Some(reason);
        }
        let waiting = state.waiting_kick.take();
        drop(state);
        if let Some(waker) = waiting {
            waker.wake();
        }
    }

    fn take(state: &mut InboxState) -> Option<Arc<Delivery>> {
        let delivery = state.deliveries.pop_front()?;
        if state.deliveries.is_empty() && state.deliveries.capacity() > KEPT_QUEUE_ROOM {
            state.deliveries.shrink_to(KEPT_QUEUE_ROOM);
        }
        Some(delivery)
    }
}

/// The receiving end of a socket's queue, read by its session only.
pub(crate) struct Deliveries(Arc<Inbox>);

impl Deliveries {
    /// The next delivery, waiting for one.
    pub(crate) fn recv(&mut self) -> impl Future<Output = Arc<Delivery>> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.0.state.lock();
            match Inbox::take(&mut state) {
                Some(delivery) => Poll::Ready(delivery),
                None => {
                    remember(&mut state.waiting, cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// The next delivery if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Arc<Delivery>> {
        Inbox::take(&mut self.0.state.lock())
    }
}

/// What a session waits on to learn that the hub wants its socket closed.
pub(crate) struct Kicked(Arc<Inbox>);

impl Kicked {
    /// Resolves once the socket is to be closed, with the reason.
    pub(crate) fn notified(&self) -> impl Future<Output = KickReason> + '_ {
        std::future::poll_fn(|cx| {
            let mut state = self.0.state.lock();
            match state.kick {
                Some(reason) => Poll::Ready(reason),
                None => {
                    remember(&mut state.waiting_kick, cx.waker());
                    Poll::Pending
                }
            }
        })
    }
}

#[derive(Clone)]
struct Listener {
    conn: u64,
    user: UserId,
    inbox: Arc<Inbox>,
}

#[derive(Default)]
struct Rooms {
    chats: HashMap<ChatId, Vec<Listener>>,
    users: HashMap<UserId, Vec<Listener>>,
}

/// Called with a chat id when the first local socket joins its room (`true`) or the last one
/// leaves (`false`); the Redis fan-out uses it to (un)subscribe the chat's channel.
pub(crate) type RoomWatcher = Arc<dyn Fn(ChatId, bool) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hub {
    rooms: RwLock<Rooms>,
    next_conn: AtomicU64,
    watcher: RwLock<Option<RoomWatcher>>,
}

impl Hub {
    pub(crate) fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub(crate) fn set_room_watcher(&self, watcher: RoomWatcher) {
        *self.watcher.write() = Some(watcher);
    }

    /// The distinct (chat, user) pairs of the local sockets following these chats; tokenless
    /// v1 sockets (the nil user, who is no member) are left out.
    pub(crate) fn followers(&self, chats: &[ChatId]) -> Vec<(ChatId, UserId)> {
        let rooms = self.rooms.read();
        let mut users = Vec::new();
        for chat in chats {
            let Some(listeners) = rooms.chats.get(chat) else {
                continue;
            };
            users.extend(listeners.iter().filter(|l| !l.user.0.is_nil()).map(|l| (*chat, l.user)));
        }
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Chats with at least one local socket.
    pub(crate) fn active_chats(&self) -> Vec<ChatId> {
        self.rooms.read().chats.keys().copied().collect()
    }

    /// Registers a socket of `user`; it receives that user's events at once and chat events
    /// after [`Connection::join`].
    pub(crate) fn connect(self: &Arc<Hub>, user: UserId, queue: usize) -> (Connection, Deliveries) {
        let inbox = Arc::new(Inbox {
            state: Mutex::default(),
            capacity: queue,
            chats: Mutex::default(),
        });
        let rx = Deliveries(inbox.clone());
        let listener = Listener {
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed),
            user,
            inbox,
        };
        self.rooms.write().users.entry(user).or_default().push(listener.clone());
        let connection = Connection {
            hub: self.clone(),
            user,
            listener,
        };
        (connection, rx)
    }

    /// Delivers to every local socket in the event's chat room.
    pub(crate) fn deliver_to_chat(&self, chat: ChatId, delivery: &Arc<Delivery>) {
        let slow = {
            let rooms = self.rooms.read();
            match rooms.chats.get(&chat) {
                Some(listeners) => offer(listeners, delivery),
                None => return,
            }
        };
        self.kick_all(slow);
    }

    /// Delivers to every local socket of these users. For a chat event, sockets in that chat's
    /// room are skipped: [`Hub::deliver_to_chat`] has served them (a member removed from a
    /// group would otherwise get `member_removed` twice on a socket following the group).
    pub(crate) fn deliver_to_users(&self, users: &[UserId], delivery: &Arc<Delivery>) {
        let slow = {
            let rooms = self.rooms.read();
            let room = delivery.event.chat().and_then(|chat| rooms.chats.get(&chat));
            let in_room = |listener: &Listener| room.is_some_and(|r| r.iter().any(|l| l.conn == listener.conn));
            users
                .iter()
                .filter_map(|u| rooms.users.get(u))
                .flat_map(|listeners| {
                    let outside: Vec<Listener> = listeners.iter().filter(|l| !in_room(l)).cloned().collect();
                    offer(&outside, delivery)
                })
                .collect()
        };
        self.kick_all(slow);
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.rooms.read().users.values().map(Vec::len).sum()
    }

    /// Takes `user`'s sockets out of `chat`'s room (they were removed from the chat).
    pub(crate) fn evict(&self, chat: ChatId, user: UserId) {
        let listeners: Vec<Listener> = self.rooms.read().users.get(&user).cloned().unwrap_or_default();
        for listener in listeners {
            let mut chats = listener.inbox.chats.lock();
            if let Some(pos) = chats.iter().position(|c| *c == chat) {
                chats.swap_remove(pos);
                self.leave(chat, listener.conn);
            }
        }
    }

    /// Asks every local socket of `user` to close.
    pub(crate) fn kick_user(&self, user: UserId, reason: KickReason) {
        let inboxes: Vec<Arc<Inbox>> = self
            .rooms
            .read()
            .users
            .get(&user)
            .map(|listeners| listeners.iter().map(|l| l.inbox.clone()).collect())
            .unwrap_or_default();
        for inbox in inboxes {
            inbox.kick(reason);
        }
    }

    fn kick_all(&self, slow: Vec<Arc<Inbox>>) {
        for inbox in slow {
            inbox.kick(KickReason::TooSlow);
        }
    }

    fn leave(&self, chat: ChatId, conn: u64) {
        let emptied = {
            let mut rooms = self.rooms.write();
            let Some(listeners) = rooms.chats.get_mut(&chat) else {
                return;
            };
            listeners.retain(|l| l.conn != conn);
            let empty = listeners.is_empty();
            if empty {
                rooms.chats.remove(&chat);
            }
            empty
        };
        if emptied {
            self.notify_watcher(chat, false);
        }
    }

    fn notify_watcher(&self, chat: ChatId, active: bool) {
        let watcher = self.watcher.read().clone();
        if let Some(watcher) = watcher {
            watcher(chat, active);
        }
    }
}

/// Offers the delivery to each listener; returns the inboxes of those whose queue is full.
fn offer(listeners: &[Listener], delivery: &Arc<Delivery>) -> Vec<Arc<Inbox>> {
    let mut slow = Vec::new();
    let mut delivered = 0u64;
    for listener in listeners {
        if listener.inbox.offer(delivery) {
            delivered += 1;
        } else {
            slow.push(listener.inbox.clone());
        }
    }
    metrics::counter!("causerie_deliveries_total").increment(delivered);
    slow
}

/// One socket's membership in the hub; leaving every room happens on drop.
pub(crate) struct Connection {
    hub: Arc<Hub>,
    user: UserId,
    listener: Listener,
}

impl Connection {
    pub(crate) fn user(&self) -> UserId {
        self.user
    }

    /// Resolves when the hub wants this socket closed (too slow, or its account closed).
    pub(crate) fn kicked(&self) -> Kicked {
        Kicked(self.listener.inbox.clone())
    }

    /// Starts receiving `chat`'s events (idempotent).
    pub(crate) fn join(&self, chat: ChatId) {
        let mut chats = self.listener.inbox.chats.lock();
        if chats.contains(&chat) {
            return;
        }
        chats.push(chat);
        drop(chats);
        let created = {
            let mut rooms = self.hub.rooms.write();
            let listeners = rooms.chats.entry(chat).or_default();
            listeners.push(self.listener.clone());
            listeners.len() == 1
        };
        if created {
            self.hub.notify_watcher(chat, true);
        }
    }

    pub(crate) fn leave(&self, chat: ChatId) {
        let mut chats = self.listener.inbox.chats.lock();
        if let Some(pos) = chats.iter().position(|c| *c == chat) {
            chats.swap_remove(pos);
            drop(chats);
            self.hub.leave(chat, self.listener.conn);
        }
    }

    pub(crate) fn has_joined(&self, chat: ChatId) -> bool {
        self.listener.inbox.chats.lock().contains(&chat)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for chat in std::mem::take(&mut *self.listener.inbox.chats.lock()) {
            self.hub.leave(chat, self.listener.conn);
        }
        let mut rooms = self.hub.rooms.write();
        if let Some(listeners) = rooms.users.get_mut(&self.user) {
            listeners.retain(|l| l.conn != self.listener.conn);
            if listeners.is_empty() {
                rooms.users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use super::*;
    use crate::realtime::event::{Delivery, Event};

    /// Counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn typing(chat: ChatId, user: UserId) -> Arc<Delivery> {
        Arc::new(Delivery::new(Event::Typing { chat, user }))
    }

    #[test]
    fn a_full_queue_kicks_its_socket_and_wakes_whoever_waits() {
        let hub = Hub::new();
        let (chat, user) = (ChatId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
        let (connection, mut deliveries) = hub.connect(user, 3);
        connection.join(chat);
        let kicked = connection.kicked();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);

        {
            let mut recv = pin!(deliveries.recv());
            assert!(recv.as_mut().poll(&mut cx).is_pending());
            hub.deliver_to_chat(chat, &typing(chat, user));
            assert_eq!(
                counter.0.load(Ordering::SeqCst),
                1,
                "a delivery wakes the waiting session"
            );
            assert!(matches!(recv.as_mut().poll(&mut cx), Poll::Ready(_)));
        }

        let mut kick = pin!(kicked.notified());
        assert!(kick.as_mut().poll(&mut cx).is_pending());
        for _ in 0..3 {
            hub.deliver_to_chat(chat, &typing(chat, user));
        }
        assert!(
            kick.as_mut().poll(&mut cx).is_pending(),
            "three fit in a queue of three"
        );
        hub.deliver_to_chat(chat, &typing(chat, user));
        assert!(counter.0.load(Ordering::SeqCst) >= 2, "the kick wakes the session");
        assert_eq!(kick.as_mut().poll(&mut cx), Poll::Ready(KickReason::TooSlow));
        // The account's reason replaces slowness; slowness does not replace it.
        hub.kick_user(user, KickReason::Account(AccountClosed::Deactivated));
        hub.deliver_to_chat(chat, &typing(chat, user));
        assert_eq!(
            pin!(kicked.notified()).poll(&mut cx),
            Poll::Ready(KickReason::Account(AccountClosed::Deactivated))
        );
        let queued = std::iter::from_fn(|| deliveries.try_recv()).count();
        assert_eq!(queued, 3, "the delivery over the bound was not queued");
    }

    #[test]
    fn an_emptied_queue_gives_back_its_room_and_a_dropped_connection_leaves_the_hub() {
        let hub = Hub::new();
        let (chat, user) = (ChatId(uuid::Uuid::new_v4()), UserId(uuid::Uuid::new_v4()));
        let (connection, mut deliveries) = hub.connect(user, 1024);
        connection.join(chat);
        for _ in 0..500 {
            hub.deliver_to_chat(chat, &typing(chat, user));
        }
        assert_eq!(std::iter::from_fn(|| deliveries.try_recv()).count(), 500);
        assert!(deliveries.0.state.lock().deliveries.capacity() <= KEPT_QUEUE_ROOM);
        assert_eq!(hub.connection_count(), 1);
        drop(connection);
        assert_eq!(hub.connection_count(), 0);
        assert!(hub.active_chats().is_empty());
    }
}
