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
use std::sync::{Arc, OnceLock};
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

/// What a page of the chat list is built from, and (once asked for) its rendered JSON.
pub(super) struct Loaded {
    pub total: i64,
    /// Shared with the pages brought up to date from this one while its chats did not move.
    pub listed: Arc<[ListedChat]>,
    pub members: Arc<HashMap<ChatId, Vec<ChatMemberRow>>>,
    pub users: HashMap<UserId, UserBrief>,
    /// The page's `results` as JSON, rendered by the first answer that needed it; None when
    /// the page shows signed attachment URLs, which are signed afresh for every answer.
    pub rendered: OnceLock<Option<Arc<str>>>,
}

/// The stamps a page depends on, in the three parts that change for different reasons: the
/// viewer (their list of chats) and the epoch, each of the viewer's chats (its rows), each user
/// shown (their names and presence). Read before the reads they guard.
#[derive(Clone)]
pub(super) struct PageDeps {
    pub epoch: Stamp,
    pub viewer: Stamp,
    pub chats: Vec<(ChatId, Stamp)>,
    pub users: Vec<(UserId, Stamp)>,
}

impl PageDeps {
    fn current(&self, freshness: &Freshness, viewer: UserId) -> bool {
        freshness.epoch() == self.epoch
            && freshness.stamp(viewer.as_uuid()) == self.viewer
            && self
                .chats
                .iter()
                .all(|(id, stamp)| freshness.stamp(id.as_uuid()) == *stamp)
            && self
                .users
                .iter()
                .all(|(id, stamp)| freshness.stamp(id.as_uuid()) == *stamp)
    }
}

/// A kept page whose stamps moved: what it was built from, to be brought up to date.
pub(super) struct Stale {
    pub loaded: Arc<Loaded>,
    pub deps: PageDeps,
    /// When the oldest of its reads was made.
    pub since: Instant,
}

/// What the cache holds for a page.
pub(super) enum Lookup {
    Current(Arc<Loaded>),
    Stale(Stale),
    Missing,
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
    pages: Vec<(PageKey, KeptPage)>,
}

struct KeptPage {
    deps: PageDeps,
    at: Instant,
    value: Arc<Loaded>,
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

    /// The kept page: current, stale (some stamp moved, within its time to live), or none.
    pub(super) fn page(&self, viewer: UserId, key: PageKey, freshness: &Freshness) -> Lookup {
        let Some(inner) = self.0.as_ref() else {
            return Lookup::Missing;
        };
        let users = inner.users.read();
        let Some((_, kept)) = users.get(&viewer).and_then(|u| u.pages.iter().find(|(k, _)| *k == key)) else {
            return Lookup::Missing;
        };
        if kept.at.elapsed() >= inner.ttl {
            Lookup::Missing
        } else if kept.deps.current(freshness, viewer) {
            Lookup::Current(kept.value.clone())
        } else {
            Lookup::Stale(Stale {
                loaded: kept.value.clone(),
                deps: kept.deps.clone(),
                since: kept.at,
            })
        }
    }

    /// Keeps a page; `fresh_since` is when the oldest read it was built from was made (a
    /// page brought up to date keeps its first load's time, so the time to live bounds how
    /// long any part of it may go unread).
    pub(super) fn keep_page(
        &self,
        viewer: UserId,
        key: PageKey,
        deps: PageDeps,
        loaded: Arc<Loaded>,
        fresh_since: Instant,
    ) {
        self.with_user(viewer, |user| {
            user.pages.retain(|(k, _)| *k != key);
            if user.pages.len() >= MAX_PAGES {
                user.pages.remove(0);
            }
            user.pages.push((
                key,
                KeptPage {
                    deps,
                    at: fresh_since,
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
            listed: Arc::new([]),
            members: Arc::default(),
            users: HashMap::new(),
            rendered: OnceLock::new(),
        })
    }

    const KEY: PageKey = PageKey {
        only: None,
        limit: 20,
        offset: 0,
    };

    fn deps(freshness: &Freshness, viewer: UserId, chat: ChatId, shown: UserId) -> PageDeps {
        PageDeps {
            epoch: freshness.epoch(),
            viewer: freshness.stamp(viewer.as_uuid()),
            chats: vec![(chat, freshness.stamp(chat.as_uuid()))],
            users: vec![(shown, freshness.stamp(shown.as_uuid()))],
        }
    }

    fn current(lookup: Lookup) -> bool {
        matches!(lookup, Lookup::Current(_))
    }

    fn stale(lookup: Lookup) -> bool {
        matches!(lookup, Lookup::Stale(_))
    }

    #[test]
    fn a_change_read_after_the_stamps_makes_the_page_stale() {
        let freshness = Freshness::new();
        let cache = ListCache::new(Duration::from_secs(60));
        let (viewer, chat, shown) = (UserId::new(), ChatId::new(), UserId::new());
        let taken = deps(&freshness, viewer, chat, shown);
        // The chat changes while the page is being read: the page keeps the older stamp.
        freshness.touch(chat.as_uuid());
        cache.keep_page(viewer, KEY, taken, loaded(), Instant::now());
        assert!(stale(cache.page(viewer, KEY, &freshness)));

        let moves: [&dyn Fn(); 3] = [
            &|| freshness.touch(shown.as_uuid()),
            &|| freshness.touch(viewer.as_uuid()),
            &|| freshness.touch_all(),
        ];
        for then_move in moves {
            let taken = deps(&freshness, viewer, chat, shown);
            cache.keep_page(viewer, KEY, taken, loaded(), Instant::now());
            assert!(current(cache.page(viewer, KEY, &freshness)));
            then_move();
            assert!(stale(cache.page(viewer, KEY, &freshness)));
        }
    }

    #[test]
    fn a_page_past_its_time_to_live_is_missing() {
        let freshness = Freshness::new();
        let cache = ListCache::new(Duration::from_secs(60));
        let (viewer, chat, shown) = (UserId::new(), ChatId::new(), UserId::new());
        let long_ago = Instant::now() - Duration::from_secs(61);
        cache.keep_page(viewer, KEY, deps(&freshness, viewer, chat, shown), loaded(), long_ago);
        assert!(matches!(cache.page(viewer, KEY, &freshness), Lookup::Missing));
    }

    #[test]
    fn off_keeps_nothing() {
        let freshness = Freshness::new();
        let cache = ListCache::new(Duration::ZERO);
        let (viewer, chat, shown) = (UserId::new(), ChatId::new(), UserId::new());
        cache.keep_page(
            viewer,
            KEY,
            deps(&freshness, viewer, chat, shown),
            loaded(),
            Instant::now(),
        );
        assert!(matches!(cache.page(viewer, KEY, &freshness), Lookup::Missing));
    }
}
