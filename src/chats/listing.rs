//! The chat list, as the app polls it (every second per open home screen): served from the
//! list cache while nothing it shows has changed, otherwise read with a fixed number of
//! statements whatever the number of chats — one for the page (total, unread counts and last
//! messages included), one for the users shown, one for group members when the page holds a
//! group, and (cache on, membership not known) one for the viewer's chat ids.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{ChatError, ChatResult};
use super::list_cache::{Deps, Loaded, PageKey};
use super::service::Chats;
use super::view::{ChatView, MemberView};
use crate::accounts::view::UserBrief;
use crate::ids::{ChatId, UserId};
use crate::store::chats::{self, ChatMemberRow, ChatRow, ListedChat};

/// A page of chats and the total it was cut from.
pub(crate) struct ChatPage {
    pub total: i64,
    pub chats: Vec<ChatView>,
}

impl Chats {
    /// How many chats `viewer` belongs to (`only`: just that one, if a member).
    pub(crate) async fn count_chats(&self, viewer: UserId, only: Option<ChatId>) -> ChatResult<i64> {
        Ok(chats::count_for_user(self.db(), viewer, only).await?)
    }

    /// One page of `viewer`'s chats, most recently active first: from the list cache while
    /// nothing it was built from has changed (`list_cache.rs`), otherwise from storage.
    pub(crate) async fn list_chats(
        &self,
        viewer: UserId,
        only: Option<ChatId>,
        limit: i64,
        offset: i64,
    ) -> ChatResult<ChatPage> {
        let key = PageKey { only, limit, offset };
        let freshness = self.accounts().freshness();
        let loaded = match self.list_cache().page(viewer, key, freshness) {
            Some(kept) => {
                metrics::counter!("causerie_chat_list_cache_total", "result" => "hit").increment(1);
                kept
            }
            None => {
                metrics::counter!("causerie_chat_list_cache_total", "result" => "miss").increment(1);
                self.load_page(viewer, key).await?
            }
        };
        Ok(ChatPage {
            total: loaded.total,
            chats: self.render(&loaded),
        })
    }

    /// One chat as `viewer` sees it in their list.
    pub(crate) async fn chat_view(&self, chat: ChatId, viewer: UserId) -> ChatResult<ChatView> {
        self.list_chats(viewer, Some(chat), 1, 0)
            .await?
            .chats
            .pop()
            .ok_or(ChatError::NotFound)
    }

    /// Reads a page from storage and, the cache being on, keeps it with the stamps of what it
    /// was read from: each stamp is taken before the read it guards.
    async fn load_page(&self, viewer: UserId, key: PageKey) -> ChatResult<Arc<Loaded>> {
        let cache = self.list_cache();
        let freshness = self.accounts().freshness();
        let mut deps = Deps::begin(freshness, viewer);
        if cache.enabled() {
            match key.only {
                Some(chat) => deps.add(freshness, [chat.as_uuid()]),
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
                    deps.add(freshness, mine.iter().map(|c| c.as_uuid()));
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
        let groups: Vec<ChatId> = listed.iter().filter(|c| c.chat.is_group).map(|c| c.chat.id).collect();
        let mut members: HashMap<ChatId, Vec<ChatMemberRow>> = HashMap::new();
        if !groups.is_empty() {
            for row in chats::members_of(self.db(), &groups).await? {
                members.entry(row.chat_id).or_default().push(row);
            }
        }
        let mut shown: Vec<UserId> = listed
            .iter()
            .flat_map(|c| [c.chat.from_user, c.chat.to_user])
            .flatten()
            .chain(members.values().flatten().map(|m| m.user_id))
            .collect();
        shown.sort_unstable();
        shown.dedup();
        if cache.enabled() {
            deps.add(freshness, shown.iter().map(|u| u.as_uuid()));
        }
        let users: HashMap<UserId, UserBrief> = self
            .accounts()
            .users(&shown)
            .await?
            .iter()
            .map(|u| (u.id, self.brief(u)))
            .collect();
        let loaded = Arc::new(Loaded {
            total,
            listed,
            members,
            users,
        });
        cache.keep_page(viewer, key, deps, loaded.clone());
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
