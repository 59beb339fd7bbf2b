//! Presence: a user is online while they have at least one socket open. Changes are stored
//! (`online`, `lastConnexionDate`) and sent to everyone who shares a chat with them.

use uuid::Uuid;

use super::event::Event;
use crate::app::AppState;
use crate::store::{chats, users};

/// Call after the user's socket joined the hub.
pub async fn connected(state: &AppState, user: Uuid) {
    if state.presence.connected(user).await {
        announce(state, user, true).await;
    }
}

/// Call after the user's socket left the hub.
pub async fn disconnected(state: &AppState, user: Uuid) {
    if state.presence.disconnected(user).await {
        announce(state, user, false).await;
    }
}

async fn announce(state: &AppState, user: Uuid, online: bool) {
    let at = match users::set_presence(&state.db, user, online).await {
        Ok(at) => at,
        Err(err) => return tracing::warn!(%err, %user, "could not store presence"),
    };
    let audience = match chats::contacts(&state.db, user).await {
        Ok(contacts) => contacts,
        Err(err) => return tracing::warn!(%err, %user, "could not load presence audience"),
    };
    state.fanout.to_users(&audience, Event::Presence { user, online, at });
}

/// Counts each user's open sockets; reports the transitions between none and some.
#[derive(Default)]
pub struct PresenceCounter {
    local: parking_lot::Mutex<std::collections::HashMap<Uuid, usize>>,
}

impl PresenceCounter {
    /// True when this socket made the user go from offline to online.
    pub async fn connected(&self, user: Uuid) -> bool {
        let mut local = self.local.lock();
        let count = local.entry(user).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// True when this was the user's last socket.
    pub async fn disconnected(&self, user: Uuid) -> bool {
        let mut local = self.local.lock();
        match local.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                local.remove(&user);
                true
            }
            None => false,
        }
    }
}
