//! The per-user auth record cache: every authenticated request and handshake needs the user's
//! row (is it active, which token epoch is current), and reading it from storage each time was
//! the one query of `GET /auth/users/me/`. A row is kept here until it changes.
//!
//! Exactness: every change to a user goes through `Accounts`, which forgets the row here and
//! announces the change (`AccountEvents`); with Redis, the other instances hear it on
//! `causerie:users` and forget theirs. While that channel is down, events may be lost, so the
//! cache is not used at all (every lookup reads storage) and it starts empty again once the
//! channel is back. A load that raced with a change does not put the stale row back: rows are
//! stored only if no change was announced since the load began. `auth_cache_secs` bounds the
//! life of an entry whatever happens (a change written by another program, e.g. a CLI command
//! with Redis down).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::freshness::Freshness;
use crate::ids::UserId;
use crate::store::users::UserRow;

/// More entries than this and the cache starts over (it refills from the active users).
const MAX_ENTRIES: usize = 200_000;

#[derive(Clone)]
pub(crate) struct AuthCache(Arc<Inner>);

struct Inner {
    entries: RwLock<HashMap<UserId, Entry>>,
    /// Moves on at every change: a load that began before it may not be stored.
    changes: AtomicU64,
    /// False while changes on other instances may go unheard (their channel is down).
    synced: AtomicBool,
    ttl: Duration,
    /// Told of every change forgotten here, for the caches built from users (the chat list).
    freshness: Freshness,
}

struct Entry {
    user: Arc<UserRow>,
    loaded: Instant,
}

/// Taken before reading a row from storage; [`AuthCache::store`] keeps the row only if no
/// change happened in between.
#[derive(Clone, Copy)]
pub(crate) struct LoadTicket(u64);

impl AuthCache {
    /// `ttl` zero: nothing is ever cached.
    pub(crate) fn new(ttl: Duration) -> AuthCache {
        AuthCache(Arc::new(Inner {
            entries: RwLock::new(HashMap::new()),
            changes: AtomicU64::new(0),
            synced: AtomicBool::new(true),
            ttl,
            freshness: Freshness::new(),
        }))
    }

    /// The change stamps this cache moves on whenever it forgets a user.
    pub(crate) fn freshness(&self) -> &Freshness {
        &self.0.freshness
    }

    /// The cached row, if it may be trusted.
    pub(crate) fn get(&self, id: UserId) -> Option<Arc<UserRow>> {
        if !self.0.synced.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.0.entries.read();
        let entry = entries.get(&id)?;
        (entry.loaded.elapsed() < self.0.ttl).then(|| entry.user.clone())
    }

    pub(crate) fn ticket(&self) -> LoadTicket {
        LoadTicket(self.0.changes.load(Ordering::Acquire))
    }

    /// Keeps a row read from storage after `ticket` was taken, unless something changed since.
    pub(crate) fn store(&self, ticket: LoadTicket, user: Arc<UserRow>) {
        if self.0.ttl.is_zero() || !self.0.synced.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.0.entries.write();
        // Checked under the lock that `forget` takes too, so a change cannot slip between.
        if self.0.changes.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            user.id,
            Entry {
                user,
                loaded: Instant::now(),
            },
        );
    }

    /// The user changed: the next lookup reads storage.
    pub(crate) fn forget(&self, id: UserId) {
        let mut entries = self.0.entries.write();
        self.0.changes.fetch_add(1, Ordering::AcqRel);
        entries.remove(&id);
        self.0.freshness.touch(id.as_uuid());
    }

    /// Forgets everything (changes may have been missed).
    pub(crate) fn clear(&self) {
        let mut entries = self.0.entries.write();
        self.0.changes.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.0.freshness.touch_all();
    }

    /// Whether changes made on other instances reach this one. Going out of sync empties the
    /// cache and stops using it; coming back starts from empty.
    pub(crate) fn set_synced(&self, synced: bool) {
        if self.0.synced.swap(synced, Ordering::AcqRel) != synced {
            self.clear();
        }
    }

    /// Drops entries older than the time to live (run now and then).
    pub(crate) fn sweep(&self) {
        let ttl = self.0.ttl;
        self.0.entries.write().retain(|_, e| e.loaded.elapsed() < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn row(id: UserId, epoch: i64) -> Arc<UserRow> {
        let at = Utc::now();
        Arc::new(UserRow {
            id,
            email: "a@example.com".into(),
            password: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: at,
            last_login: None,
            last_connexion_date: None,
            online: false,
            avatar: None,
            created_at: at,
            updated_at: at,
            token_epoch: epoch,
        })
    }

    #[test]
    fn a_change_during_a_load_keeps_the_stale_row_out() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let id = UserId::new();
        let ticket = cache.ticket();
        // Another request changes the user while this one reads the old row.
        cache.forget(id);
        cache.store(ticket, row(id, 0));
        assert!(cache.get(id).is_none());
        let ticket = cache.ticket();
        cache.store(ticket, row(id, 1));
        assert_eq!(cache.get(id).map(|u| u.token_epoch), Some(1));
        cache.forget(id);
        assert!(cache.get(id).is_none());
    }

    #[test]
    fn out_of_sync_means_no_cache() {
        let cache = AuthCache::new(Duration::from_secs(60));
        let id = UserId::new();
        cache.store(cache.ticket(), row(id, 0));
        cache.set_synced(false);
        assert!(cache.get(id).is_none());
        cache.store(cache.ticket(), row(id, 0));
        cache.set_synced(true);
        assert!(cache.get(id).is_none(), "starts empty after an outage");
        cache.store(cache.ticket(), row(id, 0));
        assert!(cache.get(id).is_some());
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        let id = UserId::new();
        cache.store(cache.ticket(), row(id, 0));
        assert!(cache.get(id).is_none());
    }
}
