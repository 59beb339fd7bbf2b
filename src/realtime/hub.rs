//! The room hub: which local sockets listen to which chat (and which user), and delivery to
//! them. Delivery never waits: each socket has a bounded queue, and a socket whose queue is
//! full is a slow reader that gets disconnected instead of growing memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

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

/// A socket's "please close" signal and its reason. The session waits on [`Kick::notified`].
pub(crate) struct Kick {
    notify: Notify,
    reason: Mutex<Option<KickReason>>,
}

impl Kick {
    fn new() -> Kick {
        Kick {
            notify: Notify::new(),
            reason: Mutex::new(None),
        }
    }

    fn kick(&self, reason: KickReason) {
        let mut current = self.reason.lock();
        // The account's reason wins over slowness: it tells the client not to come back.
        if current.is_none() || matches!(reason, KickReason::Account(_)) {
            *current = Some(reason);
        }
        drop(current);
        self.notify.notify_one();
    }

    /// Resolves once the socket is to be closed, with the reason.
    pub(crate) async fn notified(&self) -> KickReason {
        self.notify.notified().await;
        self.reason.lock().unwrap_or(KickReason::TooSlow)
    }
}

#[derive(Clone)]
struct Listener {
    conn: u64,
    user: UserId,
    tx: mpsc::Sender<Arc<Delivery>>,
    kick: Arc<Kick>,
    /// The chats this socket has joined (shared with its `Connection`).
    chats: Arc<Mutex<Vec<ChatId>>>,
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
    pub(crate) fn connect(self: &Arc<Hub>, user: UserId, queue: usize) -> (Connection, mpsc::Receiver<Arc<Delivery>>) {
        let (tx, rx) = mpsc::channel(queue);
        let listener = Listener {
            conn: self.next_conn.fetch_add(1, Ordering::Relaxed),
            user,
            tx,
            kick: Arc::new(Kick::new()),
            chats: Arc::default(),
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
            let mut chats = listener.chats.lock();
            if let Some(pos) = chats.iter().position(|c| *c == chat) {
                chats.swap_remove(pos);
                self.leave(chat, listener.conn);
            }
        }
    }

    /// Asks every local socket of `user` to close.
    pub(crate) fn kick_user(&self, user: UserId, reason: KickReason) {
        let kicks: Vec<Arc<Kick>> = self
            .rooms
            .read()
            .users
            .get(&user)
            .map(|listeners| listeners.iter().map(|l| l.kick.clone()).collect())
            .unwrap_or_default();
        for kick in kicks {
            kick.kick(reason);
        }
    }

    fn kick_all(&self, slow: Vec<Arc<Kick>>) {
        for kick in slow {
            kick.kick(KickReason::TooSlow);
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

/// Offers the delivery to each listener; returns the kick handles of those whose queue is full.
fn offer(listeners: &[Listener], delivery: &Arc<Delivery>) -> Vec<Arc<Kick>> {
    let mut slow = Vec::new();
    let mut delivered = 0u64;
    for listener in listeners {
        match listener.tx.try_send(delivery.clone()) {
            Ok(()) => delivered += 1,
            Err(mpsc::error::TrySendError::Full(_)) => slow.push(listener.kick.clone()),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
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
    pub(crate) fn kicked(&self) -> Arc<Kick> {
        self.listener.kick.clone()
    }

    /// Starts receiving `chat`'s events (idempotent).
    pub(crate) fn join(&self, chat: ChatId) {
        let mut chats = self.listener.chats.lock();
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
        let mut chats = self.listener.chats.lock();
        if let Some(pos) = chats.iter().position(|c| *c == chat) {
            chats.swap_remove(pos);
            drop(chats);
            self.hub.leave(chat, self.listener.conn);
        }
    }

    pub(crate) fn has_joined(&self, chat: ChatId) -> bool {
        self.listener.chats.lock().contains(&chat)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for chat in std::mem::take(&mut *self.listener.chats.lock()) {
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
