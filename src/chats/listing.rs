//! The chat list, as the app polls it (every second per open home screen): served from the
//! list cache while nothing it shows has changed, otherwise read with a fixed number of
//! statements whatever the number of chats — one for the page (total, unread counts and last
//! messages included), one for the users shown, one for group members when the page holds a
//! group, and (cache on, membership not known) one for the viewer's chat ids.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::error::{ChatError, ChatResult};
use super::list_cache::{Deps, Loaded, Lookup, PageDeps, PageKey, Stale};
use super::service::Chats;
use super::view::{ChatView, MemberView};
use crate::accounts::view::UserBrief;
use crate::freshness::Stamp;
use crate::ids::{ChatId, UserId};
use crate::store::chats::{self, ChatMemberRow, ChatRow, ListedChat};

/// A page of chats as the JSON array of its views, and the total it was cut from.
pub(crate) struct ChatPageJson {
    pub total: i64,
    pub results: Arc<str>,
}

/// Where a chat sorts in the list: most recently updated first, then by id (the statement's
/// `ORDER BY c.updated_at DESC, c.id DESC`).
fn list_order(chat: &ListedChat) -> Reverse<(chrono::DateTime<chrono::Utc>, ChatId)> {
    Reverse((chat.chat.updated_at, chat.chat.id))
}

/// The first page of a list (`limit` chats of `total`) after the chats in `moved` were read
/// again (`reread`: those the viewer still belongs to). Every chat not in `moved` is as it was,
/// so the chats beyond the old page still sort after its last one; None when that is not
/// enough to know the new page: a chat of the page now sorts past its end (which chat follows
/// is not known) or disappeared.
fn merge_moved(
    page: &[ListedChat],
    total: i64,
    limit: i64,
    moved: &[ChatId],
    reread: Vec<ListedChat>,
) -> Option<Vec<ListedChat>> {
    let whole_list = page.len() as i64 >= total;
    let boundary = page.last().map(list_order);
    let in_page = |id: ChatId| page.iter().any(|c| c.chat.id == id);
    if moved
        .iter()
        .any(|id| in_page(*id) && !reread.iter().any(|c| c.chat.id == *id))
    {
        return None;
    }
    let mut merged: Vec<ListedChat> = page.iter().filter(|c| !moved.contains(&c.chat.id)).cloned().collect();
    for mut chat in reread {
        let inside = whole_list || boundary.is_none_or(|last| list_order(&chat) <= last);
        if inside {
            chat.total = total;
            merged.push(chat);
        } else if in_page(chat.chat.id) {
            return None;
        }
    }
    merged.sort_by_key(list_order);
    merged.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Some(merged)
}

impl Chats {
    /// How many chats `viewer` belongs to (`only`: just that one, if a member).
    pub(crate) async fn count_chats(&self, viewer: UserId, only: Option<ChatId>) -> ChatResult<i64> {
        Ok(chats::count_for_user(self.db(), viewer, only).await?)
    }

    /// One chat as `viewer` sees it in their list.
    pub(crate) async fn chat_view(&self, chat: ChatId, viewer: UserId) -> ChatResult<ChatView> {
        let key = PageKey {
            only: Some(chat),
            limit: 1,
            offset: 0,
        };
        let loaded = self.current_page(viewer, key).await?;
        self.render(&loaded).pop().ok_or(ChatError::NotFound)
    }

    /// One page of `viewer`'s chats, most recently active first, as the JSON of a page's
    /// `results`: from the list cache while nothing it was built from has changed
    /// (`list_cache.rs`), otherwise brought up to date or read from storage; a page polled
    /// again unchanged is rendered once, not once per poll.
    pub(crate) async fn list_chats_json(
        &self,
        viewer: UserId,
        only: Option<ChatId>,
        limit: i64,
        offset: i64,
    ) -> ChatResult<ChatPageJson> {
        let loaded = self.current_page(viewer, PageKey { only, limit, offset }).await?;
        let results = match loaded.rendered.get() {
            Some(Some(json)) => json.clone(),
            _ => {
                let views = self.render(&loaded);
                let json: Arc<str> = serde_json::to_string(&views).expect("chat views serialise").into();
                // Attachment URLs are signed for each answer: such a page is not kept rendered.
                let signed = views
                    .iter()
                    .any(|v| v.last_message.iter().any(|m| !m.attachments.is_empty()));
                let _ = loaded.rendered.set((!signed).then(|| json.clone()));
                json
            }
        };
        Ok(ChatPageJson {
            total: loaded.total,
            results,
        })
    }

    /// The page as it stands now: kept, kept and brought up to date, or read afresh.
    async fn current_page(&self, viewer: UserId, key: PageKey) -> ChatResult<Arc<Loaded>> {
        let freshness = self.accounts().freshness();
        match self.list_cache().page(viewer, key, freshness) {
            Lookup::Current(kept) => {
                metrics::counter!("causerie_chat_list_cache_total", "result" => "hit").increment(1);
                Ok(kept)
            }
            Lookup::Stale(stale) => match self.refresh_page(viewer, key, stale).await? {
                Some(loaded) => {
                    metrics::counter!("causerie_chat_list_cache_total", "result" => "refreshed").increment(1);
                    Ok(loaded)
                }
                None => {
                    metrics::counter!("causerie_chat_list_cache_total", "result" => "miss").increment(1);
                    self.load_page(viewer, key).await
                }
            },
            Lookup::Missing => {
                metrics::counter!("causerie_chat_list_cache_total", "result" => "miss").increment(1);
                self.load_page(viewer, key).await
            }
        }
    }

    /// Reads a page from storage and, the cache being on, keeps it with the stamps of what it
    /// was read from: each stamp is taken before the read it guards.
    async fn load_page(&self, viewer: UserId, key: PageKey) -> ChatResult<Arc<Loaded>> {
        let cache = self.list_cache();
        let freshness = self.accounts().freshness();
        let since = Instant::now();
        let epoch = freshness.epoch();
        let viewer_stamp = freshness.stamp(viewer.as_uuid());
        let mut chat_deps = Vec::new();
        if cache.enabled() {
            match key.only {
                Some(chat) => chat_deps.push((chat, freshness.stamp(chat.as_uuid()))),
                None => {
                    let mine = match cache.chats_of(viewer, freshness) {
                        Some(mine) => mine,
                        None => {
                            let read_from = Deps::begin(freshness, viewer);
                            let mine: Arc<[ChatId]> = chats::ids_for_user(self.db(), viewer).await?.into();
                            cache.keep_chats_of(viewer, read_from, mine.clone());
                            mine
                        }
                    };
                    chat_deps.extend(mine.iter().map(|c| (*c, freshness.stamp(c.as_uuid()))));
                }
            }
        }
        let listed = chats::page_for_user(self.db(), viewer, key.only, key.limit, key.offset).await?;
        let total = match listed.first() {
            Some(first) => first.total,
            // Past the end (or no chats at all): the page cannot tell how many there are.
            None if key.offset > 0 => self.count_chats(viewer, key.only).await?,
            None => 0,
        };
        let members = self.members_by_chat(&listed).await?;
        let deps = PageDeps {
            epoch,
            viewer: viewer_stamp,
            chats: chat_deps,
            users: Vec::new(),
        };
        self.finish_page(viewer, key, deps, total, listed.into(), Arc::new(members), since)
            .await
    }

    /// Brings a kept page whose stamps moved up to date with as little reading as it can: the
    /// users shown again from the account cache, and only the chats whose stamps moved read
    /// again, merged into the page. None when the page has to be read afresh: the viewer's
    /// chats or the epoch changed, the page is not the list's first, or a chat left the page
    /// and which chat takes its place is unknown.
    async fn refresh_page(&self, viewer: UserId, key: PageKey, stale: Stale) -> ChatResult<Option<Arc<Loaded>>> {
        let freshness = self.accounts().freshness();
        let Stale { loaded, deps, since } = stale;
        if freshness.epoch() != deps.epoch || freshness.stamp(viewer.as_uuid()) != deps.viewer {
            return Ok(None);
        }
        let chat_deps: Vec<(ChatId, Stamp)> = deps
            .chats
            .iter()
            .map(|(chat, _)| (*chat, freshness.stamp(chat.as_uuid())))
            .collect();
        let moved: Vec<ChatId> = deps
            .chats
            .iter()
            .zip(&chat_deps)
            .filter(|((_, was), (_, now))| was != now)
            .map(|((chat, _), _)| *chat)
            .collect();
        let (listed, members) = if moved.is_empty() {
            (loaded.listed.clone(), loaded.members.clone())
        } else {
            if key.offset != 0 || key.only.is_some() {
                return Ok(None);
            }
            let reread = chats::rows_for_user(self.db(), viewer, &moved).await?;
            let Some(listed) = merge_moved(&loaded.listed, loaded.total, key.limit, &moved, reread) else {
                return Ok(None);
            };
            let mut members = HashMap::clone(&loaded.members);
            for chat in &moved {
                members.remove(chat);
            }
            let groups: Vec<ChatId> = listed
                .iter()
                .filter(|c| c.chat.is_group && moved.contains(&c.chat.id))
                .map(|c| c.chat.id)
                .collect();
            if !groups.is_empty() {
                for row in chats::members_of(self.db(), &groups).await? {
                    members.entry(row.chat_id).or_default().push(row);
                }
            }
            (listed.into(), Arc::new(members))
        };
        let deps = PageDeps {
            epoch: deps.epoch,
            viewer: deps.viewer,
            chats: chat_deps,
            users: Vec::new(),
        };
        let total = loaded.total;
        Ok(Some(
            self.finish_page(viewer, key, deps, total, listed, members, since)
                .await?,
        ))
    }

    /// The members of the page's groups, by chat.
    async fn members_by_chat(&self, listed: &[ListedChat]) -> ChatResult<HashMap<ChatId, Vec<ChatMemberRow>>> {
        let groups: Vec<ChatId> = listed.iter().filter(|c| c.chat.is_group).map(|c| c.chat.id).collect();
        let mut members: HashMap<ChatId, Vec<ChatMemberRow>> = HashMap::new();
        if !groups.is_empty() {
            for row in chats::members_of(self.db(), &groups).await? {
                members.entry(row.chat_id).or_default().push(row);
            }
        }
        Ok(members)
    }

    /// Adds the users shown (their stamps first, then the rows, from the account cache) and
    /// keeps the page.
    #[allow(clippy::too_many_arguments)]
    async fn finish_page(
        &self,
        viewer: UserId,
        key: PageKey,
        mut deps: PageDeps,
        total: i64,
        listed: Arc<[ListedChat]>,
        members: Arc<HashMap<ChatId, Vec<ChatMemberRow>>>,
        since: Instant,
    ) -> ChatResult<Arc<Loaded>> {
        let cache = self.list_cache();
        let freshness = self.accounts().freshness();
        let mut shown: Vec<UserId> = listed
            .iter()
            .flat_map(|c| [c.chat.from_user, c.chat.to_user])
            .flatten()
            .chain(members.values().flatten().map(|m| m.user_id))
            .collect();
        shown.sort_unstable();
        shown.dedup();
        if cache.enabled() {
            deps.users = shown.iter().map(|u| (*u, freshness.stamp(u.as_uuid()))).collect();
        }
        let users: HashMap<UserId, UserBrief> = self
            .accounts()
            .cached_users(&shown)
            .await?
            .iter()
            .map(|u| (u.id, self.brief(u)))
            .collect();
        let loaded = Arc::new(Loaded {
            total,
            listed,
            members,
            users,
            rendered: OnceLock::new(),
        });
        cache.keep_page(viewer, key, deps, loaded.clone(), since);
        Ok(loaded)
    }

    /// The page's views. Done per answer, not kept: attachment URLs are signed when shown.
    fn render(&self, loaded: &Loaded) -> Vec<ChatView> {
        let Loaded {
            listed, members, users, ..
        } = loaded;
        let brief = |id: Option<UserId>| id.and_then(|id| users.get(&id).cloned());
        listed
            .iter()
            .map(|listed| {
                let last_message = listed.last_message();
                let ListedChat {
                    chat, unread, muted, ..
                } = listed;
                let ChatRow {
                    id,
                    from_user,
                    to_user,
                    is_group,
                    title,
                    created_at,
                    updated_at,
                    ..
                } = chat;
                let member_views = is_group.then(|| {
                    members
                        .get(id)
                        .map(|rows| {
                            rows.iter()
                                .filter_map(|m| {
                                    users.get(&m.user_id).map(|user| MemberView {
                                        user: user.clone(),
                                        is_admin: m.is_admin,
                                    })
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                });
                ChatView {
                    id: *id,
                    from_user: brief(*from_user),
                    to_user: brief(*to_user),
                    last_message: last_message.as_ref().map(|m| self.show_rest(m)).into_iter().collect(),
                    created_at: *created_at,
                    updated_at: *updated_at,
                    unread_count: *unread,
                    is_group: *is_group,
                    title: title.clone(),
                    muted: *muted,
                    members: member_views,
                }
            })
            .collect()
    }
}

impl Chats {
    /// Mutes or unmutes `chat` for `user` (a member): muted chats are never pushed.
    pub(crate) async fn set_muted(&self, user: UserId, chat: ChatId, muted: bool) -> ChatResult<ChatView> {
        if !chats::set_muted(self.db(), chat, user, muted).await? {
            return Err(ChatError::NotFound);
        }
        self.touch_chat(chat);
        self.chat_view(chat, user).await
    }

    /// `user`'s unread messages over all their chats (a push notification's badge).
    pub(crate) async fn unread_total(&self, user: UserId) -> ChatResult<i64> {
        Ok(chats::unread_total(self.db(), user).await?)
    }
}
