//! The chat list kept per user (every open home screen polls it once a second): what a page
//! was built from — the page's rows, group members and the users shown — is kept with the
//! change stamps ([`Freshness`]) of everything it depends on, and served again only while
//! none of them moved.
//!
//! A page depends on the viewer (their membership list, whose stamp every membership change of
//! theirs moves), on every chat of the viewer (a message elsewhere can reorder the list, a read
//! mark moves an unread count) and on every user shown (name, `online`). Stamps are read
//! before the reads they guard, and every write moves its stamps after it is stored and before
//! it is acknowledged or published: an answer read before a write carries the older stamp and
//! is void once the write is acknowledged. What this process cannot hear (another instance's
//! writes) is why the cache is off when several instances share a database (Redis configured);
//! `chat_list_cache_secs` bounds an entry's life against writes made around the server (a CLI
//! command while it runs).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use uuid::Uuid;

use crate::accounts::view::UserBrief;
use crate::freshness::{Freshness, Stamp};
use crate::ids::{ChatId, UserId};
use crate::store::chats::{ChatMemberRow, ListedChat};
use crate::store::messages::MessageRow;

/// More users than this and the cache starts over.
const MAX_USERS: usize = 100_000;
/// Pages kept per user (the app asks for the same one every time).
const MAX_PAGES: usize = 4;

/// Which page of which list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct PageKey {
    pub only: Option<ChatId>,
    pub limit: i64,
    pub offset: i64,
}

/// What a page of the chat list is built from.
pub(super) struct Loaded {
    pub total: i64,
    pub listed: Vec<ListedChat>,
    pub members: HashMap<ChatId, Vec<ChatMemberRow>>,
    pub users: HashMap<UserId, UserBrief>,
}

/// The stamps an answer depends on, read before the reads they guard.
pub(super) struct Deps {
    epoch: Stamp,
    stamps: Vec<(Uuid, Stamp)>,
}

impl Deps {
    pub(super) fn begin(freshness: &Freshness, viewer: UserId) -> Deps {
        let epoch = freshness.epoch();
        Deps {
            epoch,
            stamps: vec![(viewer.as_uuid(), freshness.stamp(viewer.as_uuid()))],
        }
    }

    pub(super) fn add(&mut self, freshness: &Freshness, ids: impl IntoIterator<Item = Uuid>) {
        self.stamps.extend(ids.into_iter().map(|id| (id, freshness.stamp(id))));
    }

    fn current(&self, freshness: &Freshness) -> bool {
        freshness.epoch() == self.epoch && self.stamps.iter().all(|(id, stamp)| freshness.stamp(*id) == *stamp)
    }
}

struct Kept<T> {
    deps: Deps,
    at: Instant,
    value: T,
}

#[derive(Default)]
struct PerUser {
    /// The viewer's chat ids (depends on the viewer's stamp only).
    chats: Option<Kept<Arc<[ChatId]>>>,
    pages: Vec<(PageKey, Kept<Arc<Loaded>>)>,
}

/// Cheap to clone; made with a zero time to live, it keeps nothing.
#[derive(Clone)]
pub(crate) struct ListCache(Option<Arc<Inner>>);

struct Inner {
    ttl: Duration,
    users: RwLock<HashMap<UserId, PerUser>>,
}

impl ListCache {
    /// `ttl` zero: off.
    pub(crate) fn new(ttl: Duration) -> ListCache {
        if ttl.is_zero() {
            return ListCache(None);
        }
        ListCache(Some(Arc::new(Inner {
            ttl,
            users: RwLock::new(HashMap::new()),
        })))
    }

    pub(super) fn enabled(&self) -> bool {
        self.0.is_some()
    }

    fn fresh<T: Clone>(inner: &Inner, kept: &Kept<T>, freshness: &Freshness) -> Option<T> {
        (kept.at.elapsed() < inner.ttl && kept.deps.current(freshness)).then(|| kept.value.clone())
    }

    pub(super) fn page(&self, viewer: UserId, key: PageKey, freshness: &Freshness) -> Option<Arc<Loaded>> {
        let inner = self.0.as_ref()?;
        let users = inner.users.read();
        let (_, kept) = users.get(&viewer)?.pages.iter().find(|(k, _)| *k == key)?;
        Self::fresh(inner, kept, freshness)
    }

    pub(super) fn keep_page(&self, viewer: UserId, key: PageKey, deps: Deps, loaded: Arc<Loaded>) {
        self.with_user(viewer, |user| {
            user.pages.retain(|(k, _)| *k != key);
            if user.pages.len() >= MAX_PAGES {
                user.pages.remove(0);
            }
            user.pages.push((
                key,
                Kept {
                    deps,
                    at: Instant::now(),
                    value: loaded,
                },
            ));
        });
    }

    pub(super) fn chats_of(&self, viewer: UserId, freshness: &Freshness) -> Option<Arc<[ChatId]>> {
        let inner = self.0.as_ref()?;
        let users = inner.users.read();
        Self::fresh(inner, users.get(&viewer)?.chats.as_ref()?, freshness)
    }

    pub(super) fn keep_chats_of(&self, viewer: UserId, deps: Deps, chats: Arc<[ChatId]>) {
        self.with_user(viewer, |user| {
            user.chats = Some(Kept {
                deps,
                at: Instant::now(),
                value: chats,
            })
        });
    }

    fn with_user(&self, viewer: UserId, change: impl FnOnce(&mut PerUser)) {
        let Some(inner) = &self.0 else { return };
        let mut users = inner.users.write();
        if users.len() >= MAX_USERS && !users.contains_key(&viewer) {
            users.clear();
        }
        change(users.entry(viewer).or_default());
    }

    /// Drops what has outlived its time (run now and then).
    pub(crate) fn sweep(&self) {
        let Some(inner) = &self.0 else { return };
        let ttl = inner.ttl;
        inner.users.write().retain(|_, user| {
            user.pages.retain(|(_, kept)| kept.at.elapsed() < ttl);
            if user.chats.as_ref().is_some_and(|kept| kept.at.elapsed() >= ttl) {
                user.chats = None;
            }
            user.chats.is_some() || !user.pages.is_empty()
        });
    }
}

/// Most history pages kept (each some twenty messages).
const MAX_HISTORY_PAGES: usize = 4_096;

/// Which history page: unfiltered pages only (the app's "page N of a chat").
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct HistoryKey {
    pub viewer: UserId,
    pub chat: ChatId,
    pub limit: i64,
    pub offset: i64,
}

/// A history page and the chat's live message count.
pub(crate) struct HistoryRows {
    pub total: i64,
    pub messages: Vec<MessageRow>,
}

/// History pages kept under the same rule as the chat list: a page depends on the viewer (the
/// membership it was read with) and on its chat (any message stored, edited, deleted or read
/// there moves the chat's stamp). Off exactly when the list cache is.
#[derive(Clone)]
pub(crate) struct HistoryCache(Option<Arc<HistoryInner>>);

struct HistoryInner {
    ttl: Duration,
    pages: RwLock<HashMap<HistoryKey, Kept<Arc<HistoryRows>>>>,
}

impl HistoryCache {
    pub(crate) fn new(ttl: Duration) -> HistoryCache {
        if ttl.is_zero() {
            return HistoryCache(None);
        }
        HistoryCache(Some(Arc::new(HistoryInner {
            ttl,
            pages: RwLock::new(HashMap::new()),
        })))
    }

    /// The stamps a page read now would be kept with (None: the cache is off).
    pub(super) fn begin(&self, key: HistoryKey, freshness: &Freshness) -> Option<Deps> {
        self.0.as_ref()?;
        let mut deps = Deps::begin(freshness, key.viewer);
        deps.add(freshness, [key.chat.as_uuid()]);
        Some(deps)
    }

    pub(super) fn page(&self, key: HistoryKey, freshness: &Freshness) -> Option<Arc<HistoryRows>> {
        let inner = self.0.as_ref()?;
        let pages = inner.pages.read();
        let kept = pages.get(&key)?;
        (kept.at.elapsed() < inner.ttl && kept.deps.current(freshness)).then(|| kept.value.clone())
    }

    pub(super) fn keep(&self, key: HistoryKey, deps: Deps, rows: Arc<HistoryRows>) {
        let Some(inner) = &self.0 else { return };
        let mut pages = inner.pages.write();
        if pages.len() >= MAX_HISTORY_PAGES && !pages.contains_key(&key) {
            pages.clear();
        }
        pages.insert(
            key,
            Kept {
                deps,
                at: Instant::now(),
                value: rows,
            },
        );
    }

    pub(crate) fn sweep(&self) {
        let Some(inner) = &self.0 else { return };
        let ttl = inner.ttl;
        inner.pages.write().retain(|_, kept| kept.at.elapsed() < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded() -> Arc<Loaded> {
        Arc::new(Loaded {
            total: 0,
            listed: Vec::new(),
            members: HashMap::new(),
            users: HashMap::new(),
        })
    }

    const KEY: PageKey = PageKey {
        only: None,
        limit: 20,
        offset: 0,
    };

    #[test]
    fn a_change_read_after_the_stamps_voids_the_page() {
        let freshness = Freshness::new();
        let cache = ListCache::new(Duration::from_secs(60));
        let (viewer, chat, shown) = (UserId::new(), ChatId::new(), UserId::new());
        let mut deps = Deps::begin(&freshness, viewer);
        deps.add(&freshness, [chat.as_uuid(), shown.as_uuid()]);
        // The chat changes while the page is being read: the page keeps the older stamp.
        freshness.touch(chat.as_uuid());
        cache.keep_page(viewer, KEY, deps, loaded());
        assert!(cache.page(viewer, KEY, &freshness).is_none());

        let mut deps = Deps::begin(&freshness, viewer);
        deps.add(&freshness, [chat.as_uuid(), shown.as_uuid()]);
        cache.keep_page(viewer, KEY, deps, loaded());
        assert!(cache.page(viewer, KEY, &freshness).is_some());
        freshness.touch(shown.as_uuid());
        assert!(cache.page(viewer, KEY, &freshness).is_none());

        let deps = Deps::begin(&freshness, viewer);
        cache.keep_page(viewer, KEY, deps, loaded());
        freshness.touch_all();
        assert!(cache.page(viewer, KEY, &freshness).is_none());
    }

    #[test]
    fn off_keeps_nothing() {
        let freshness = Freshness::new();
        let cache = ListCache::new(Duration::ZERO);
        let viewer = UserId::new();
        cache.keep_page(viewer, KEY, Deps::begin(&freshness, viewer), loaded());
        assert!(cache.page(viewer, KEY, &freshness).is_none());
    }
}
