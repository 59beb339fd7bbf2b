//! Fan-out: hands an event to every socket that should see it. In-process by default; the
//! Redis backend (for several instances) plugs in here.

use std::sync::Arc;

use uuid::Uuid;

use super::event::{Delivery, Event};
use super::hub::Hub;

#[derive(Clone)]
pub struct Fanout {
    hub: Arc<Hub>,
}

impl Fanout {
    pub fn in_process(hub: Arc<Hub>) -> Fanout {
        Fanout { hub }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Publishes a chat event to the chat's sockets.
    pub fn to_chat(&self, event: Event) {
        let Some(chat) = event.chat() else { return };
        self.hub
            .deliver_to_chat(chat, &Arc::new(Delivery::new(event)));
    }

    /// Publishes an event to all sockets of these users (presence).
    pub fn to_users(&self, users: &[Uuid], event: Event) {
        self.hub
            .deliver_to_users(users, &Arc::new(Delivery::new(event)));
    }
}
