//! The router's state: the services, each reached by handlers through `FromRef`, so that a
//! handler names only what it uses and no module sees the whole.

use std::sync::Arc;

use axum::extract::FromRef;

use super::ops::Ops;
use crate::accounts::Accounts;
use crate::admin::Admin;
use crate::chats::Chats;
use crate::limits::RateLimits;
use crate::media::Media;
use crate::push::Push;
use crate::realtime::Realtime;

#[derive(Clone)]
pub(crate) struct AppState {
    pub accounts: Accounts,
    pub chats: Chats,
    pub media: Media,
    pub realtime: Realtime,
    pub limits: RateLimits,
    pub admin: Admin,
    pub push: Push,
    pub ops: Arc<Ops>,
}

impl FromRef<AppState> for Accounts {
    fn from_ref(state: &AppState) -> Accounts {
        state.accounts.clone()
    }
}

impl FromRef<AppState> for Chats {
    fn from_ref(state: &AppState) -> Chats {
        state.chats.clone()
    }
}

impl FromRef<AppState> for Realtime {
    fn from_ref(state: &AppState) -> Realtime {
        state.realtime.clone()
    }
}

impl FromRef<AppState> for RateLimits {
    fn from_ref(state: &AppState) -> RateLimits {
        state.limits.clone()
    }
}

impl FromRef<AppState> for Arc<Ops> {
    fn from_ref(state: &AppState) -> Arc<Ops> {
        state.ops.clone()
    }
}

impl FromRef<AppState> for Push {
    fn from_ref(state: &AppState) -> Push {
        state.push.clone()
    }
}

impl FromRef<AppState> for Admin {
    fn from_ref(state: &AppState) -> Admin {
        state.admin.clone()
    }
}

impl FromRef<AppState> for Media {
    fn from_ref(state: &AppState) -> Media {
        state.media.clone()
    }
}
