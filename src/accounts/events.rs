//! What the account service announces when a user changes, so that every instance forgets its
//! cached copy and, when the account's tokens stop working, closes the user's sockets.
//! `realtime::Fanout` implements it (through Redis when configured); the account service knows
//! nothing of sockets or Redis.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Why every session of an account ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AccountClosed {
    Deactivated,
    Deleted,
    /// Its tokens were revoked: a password change or reset, or a refresh token used twice.
    Revoked,
}

pub(crate) trait AccountEvents: Send + Sync {
    /// The user's stored record changed (names, presence, flags): forget cached copies.
    fn changed(&self, user: UserId);
    /// The user's tokens no longer work: forget cached copies and close their sockets, on
    /// every instance. Called after the change is stored.
    fn closed(&self, user: UserId, why: AccountClosed);
    /// Resolves once every other instance has applied what this one announced so far (or a
    /// bounded wait has passed): a change answered after it is not served stale anywhere.
    fn heard_everywhere(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// For services built without sockets (CLI commands): nobody to tell.
pub(crate) struct NoListeners;

impl AccountEvents for NoListeners {
    fn changed(&self, _: UserId) {}
    fn closed(&self, _: UserId, _: AccountClosed) {}
}
