//! The read paths the app polls, kept exact under concurrent writes (issue 16): a history
//! page's `count` comes from the chat's numbering (`last_seq - deleted_count`) and its page
//! from a range of sequence numbers, and the chat list reads each chat's unread count and last
//! message in the one statement of its page. Nothing is cached, so nothing can be stale: these
//! tests check the numbers against the messages themselves while writers, deleters and readers
//! run at once, and on a second instance.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use causerie::ids::ChatId;
use causerie::testing::store::chats;
use common::{Backend, TestServer, TestUser};
use futures_util::future::join_all;
use serde_json::{json, Value};

backend_tests!(
    history_count_matches_the_messages_while_writers_and_deleters_run,
    history_pages_are_the_full_listing_cut_in_pieces,
    chat_list_follows_concurrent_messages_reads_deletes_and_membership
);

async fn post(srv: &TestServer, author: &TestUser, chat: &str, text: &str) -> Value {
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &author.access,
            &json!({ "refChat": chat, "message": text, "type": 0, "extraData": "" }),
        )
        .await;
    reply.expect_status(201);
    reply.body.clone()
}

async fn delete(srv: &TestServer, author: &TestUser, id: &str) {
    srv.delete_auth(&format!("/api/message/{id}/"), &author.access, None)
        .await
        .expect_status(204);
}

async fn page(srv: &TestServer, user: &TestUser, chat: &str, query: &str) -> Value {
    let reply = srv
        .get_auth(&format!("/api/message/?refChat={chat}&{query}"), &user.access)
        .await;
    reply.expect_status(200);
    reply.body.clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {page}"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every live message of the chat, newest first, read 100 at a time.
async fn everything(srv: &TestServer, user: &TestUser, chat: &str) -> Vec<String> {
    let mut all = Vec::new();
    for n in 1.. {
        let body = page(srv, user, chat, &format!("page_size=100&page={n}")).await;
        all.extend(ids(&body));
        if body["next"].is_null() {
            break;
        }
    }
    all
}

fn chat_id(chat: &Value) -> String {
    chat["id"].as_str().unwrap().to_string()
}

async fn check_counts(srv: &TestServer, chat: &str) {
    let chat: ChatId = chat.parse().unwrap();
    let (counted, kept) = chats::live_counts(srv.db(), chat).await.unwrap();
    assert_eq!(counted, kept, "live messages counted vs last_seq - deleted_count");
}

async fn history_count_matches_the_messages_while_writers_and_deleters_run(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = chat_id(&srv.open_chat(a, b).await);
    let deleted = parking_lot::Mutex::new(BTreeSet::new());
    let posted = parking_lot::Mutex::new(BTreeSet::new());
    // Four writers; each deletes every third message it wrote; meanwhile a reader checks
    // that the kept count and a row-by-row count agree, and that pages hold no tombstone.
    let writers = (0..4).map(|w| {
        let (chat, deleted, posted) = (&chat, &deleted, &posted);
        let srv = &srv;
        async move {
            let author = if w % 2 == 0 { a } else { b };
            for i in 0..24 {
                let message = post(srv, author, chat, &format!("writer {w} message {i}")).await;
                let id = message["id"].as_str().unwrap().to_string();
                posted.lock().insert(id.clone());
                if i % 3 == 2 {
                    delete(srv, author, &id).await;
                    deleted.lock().insert(id);
                }
            }
        }
    });
    let reader = async {
        for _ in 0..40 {
            check_counts(&srv, &chat).await;
            let body = page(&srv, a, &chat, "page=1").await;
            let count = body["count"].as_i64().unwrap();
            assert!(count >= ids(&body).len() as i64, "count {count} below the page: {body}");
            for m in body["results"].as_array().unwrap() {
                assert_ne!(m["message"], json!(""), "a tombstone in a page: {m}");
            }
            tokio::task::yield_now().await;
        }
    };
    let ((), _) = tokio::join!(reader, join_all(writers));
    check_counts(&srv, &chat).await;
    let live: BTreeSet<String> = posted.lock().difference(&deleted.lock()).cloned().collect();
    let listed = everything(&srv, a, &chat).await;
    assert_eq!(listed.len(), live.len(), "no message listed twice or left out");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), live);
    let first = page(&srv, b, &chat, "page=1").await;
    assert_eq!(first["count"], json!(live.len()));
    assert_eq!(ids(&first), listed[..20].to_vec());
    srv.finish().await;
}

async fn history_pages_are_the_full_listing_cut_in_pieces(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = chat_id(&srv.open_chat(a, b).await);
    let mut posted = Vec::new();
    for i in 0..75 {
        let author = if i % 2 == 0 { a } else { b };
        posted.push(
            post(&srv, author, &chat, &format!("message {i}")).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    posted.reverse();
    // No message ever deleted: pages are ranges of sequence numbers.
    check_pages(&srv, a, &chat, &posted).await;
    // Deletes anywhere (newest, oldest, middle), then again.
    for index in [0, 74, 30, 31, 50] {
        // `posted` is newest first: index k is message 74 - k, written by `a` when even.
        delete(&srv, if index % 2 == 0 { a } else { b }, &posted[index].clone()).await;
    }
    let mut live = posted.clone();
    for index in [74, 50, 31, 30, 0] {
        live.remove(index);
    }
    check_counts(&srv, &chat).await;
    check_pages(&srv, b, &chat, &live).await;
    // Deleting twice changes nothing more.
    srv.delete_auth(&format!("/api/message/{}/", posted[30]), &a.access, None)
        .await
        .expect_status(404);
    check_counts(&srv, &chat).await;
    check_pages(&srv, a, &chat, &live).await;
    srv.finish().await;
}

/// Pages of 20 and 7, the last page, and a page past the end, against the full listing.
async fn check_pages(srv: &TestServer, user: &TestUser, chat: &str, live: &[String]) {
    assert_eq!(everything(srv, user, chat).await, live);
    for size in [20usize, 7] {
        let pages = live.len().div_ceil(size);
        for n in 1..=pages {
            let body = page(srv, user, chat, &format!("page_size={size}&page={n}")).await;
            assert_eq!(body["count"], json!(live.len()));
            let want = &live[(n - 1) * size..(n * size).min(live.len())];
            assert_eq!(ids(&body), want, "page {n} of size {size}");
            assert_eq!(body["next"].is_null(), n == pages);
        }
        let last = page(srv, user, chat, &format!("page_size={size}&page=last")).await;
        assert_eq!(ids(&last), live[(pages - 1) * size..].to_vec());
        srv.get_auth(
            &format!("/api/message/?refChat={chat}&page_size={size}&page={}", pages + 1),
            &user.access,
        )
        .await
        .expect(404, json!({ "detail": "Invalid page." }));
    }
}

/// What the chat list should say about one chat, read from its history.
async fn expected_entry(srv: &TestServer, viewer: &TestUser, chat: &str) -> (Option<String>, i64) {
    let mut last = None;
    let mut unread = 0;
    for n in 1.. {
        let body = page(srv, viewer, chat, &format!("page_size=100&page={n}")).await;
        for m in body["results"].as_array().unwrap() {
            if last.is_none() {
                last = Some(m["id"].as_str().unwrap().to_string());
            }
            if m["author"].as_str() != Some(viewer.id.as_str()) && m["isRead"] == json!(false) {
                unread += 1;
            }
        }
        if body["next"].is_null() {
            break;
        }
    }
    (last, unread)
}

async fn chat_list(srv: &TestServer, viewer: &TestUser) -> BTreeMap<String, Value> {
    let reply = srv.get_auth("/api/chat/?page_size=100", &viewer.access).await;
    reply.expect_status(200);
    let results = reply.body["results"].as_array().unwrap().clone();
    assert_eq!(reply.body["count"], json!(results.len()), "count is the list's length");
    let times: Vec<&str> = results.iter().map(|c| c["updatedAt"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(times, sorted, "most recently updated first");
    results.into_iter().map(|c| (chat_id(&c), c)).collect()
}

/// Each listed chat's last message and unread count, against its history (`unread`: what the
/// count must be where the history cannot tell, a group joined anew).
async fn check_entries(srv: &TestServer, viewer: &TestUser, chats: &[String], unread: &BTreeMap<String, i64>) {
    let list = chat_list(srv, viewer).await;
    for chat in chats {
        let (last, from_history) = expected_entry(srv, viewer, chat).await;
        let entry = list.get(chat).unwrap_or_else(|| panic!("chat {chat} not listed"));
        let shown: Vec<&str> = entry["lastMessage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            shown,
            last.iter().map(String::as_str).collect::<Vec<_>>(),
            "last message of {chat}"
        );
        let want = unread.get(chat).copied().unwrap_or(from_history);
        assert_eq!(entry["unreadCount"], json!(want), "unread count of {chat}");
    }
}

async fn chat_list_follows_concurrent_messages_reads_deletes_and_membership(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let users = srv.quick_users(4).await;
    let (me, others) = (&users[0], &users[1..]);
    let mut pairs = Vec::new();
    for other in others {
        pairs.push(chat_id(&srv.open_chat(me, other).await));
    }
    let group = srv
        .post_json_auth(
            "/api/groups/",
            &others[0].access,
            &json!({ "title": "team", "members": [me.id, others[1].id] }),
        )
        .await;
    group.expect_status(201);
    let group = chat_id(&group.body);

    // Each other user writes to me, deletes some of what they wrote, and reads some of mine;
    // I write back and read some of theirs; the group talks and I leave it and come back.
    let talkers = others.iter().zip(&pairs).enumerate().map(|(n, (other, chat))| {
        let srv = &srv;
        async move {
            let mut mine = Vec::new();
            for i in 0..12 {
                let theirs = post(srv, other, chat, &format!("from {n}: {i}")).await;
                let id = theirs["id"].as_str().unwrap().to_string();
                if i % 4 == 3 {
                    delete(srv, other, &id).await;
                }
                if i % 5 == 0 {
                    mine.push(
                        post(srv, me, chat, &format!("to {n}: {i}")).await["id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    );
                }
                if i % 3 == 1 {
                    srv.post_json_auth("/api/updateMessagesStatus/", &me.access, &json!({ "messageIds": [id] }))
                        .await
                        .expect(200, json!({ "status": "OK" }));
                }
                if i == 8 {
                    srv.post_json_auth(
                        "/api/updateMessagesStatus/",
                        &other.access,
                        &json!({ "messageIds": mine }),
                    )
                    .await
                    .expect(200, json!({ "status": "OK" }));
                }
            }
            // The very last message deleted: the one before it shows instead.
            let last = post(srv, other, chat, &format!("from {n}: gone")).await;
            delete(srv, other, last["id"].as_str().unwrap()).await;
        }
    });
    let group_talk = async {
        for i in 0..10 {
            post(&srv, &others[i % 2], &group, &format!("group {i}")).await;
            if i == 4 {
                srv.delete_auth(&format!("/api/groups/{group}/members/{}/", me.id), &me.access, None)
                    .await
                    .expect_status(204);
                let list = chat_list(&srv, me).await;
                assert!(!list.contains_key(&group), "a left group is not listed");
                srv.post_json_auth(
                    &format!("/api/groups/{group}/members/"),
                    &others[0].access,
                    &json!({ "user": me.id }),
                )
                .await
                .expect_status(201);
            }
        }
    };
    let polling = async {
        for _ in 0..30 {
            // Consistent on its own at any moment: count, order, one entry per chat.
            chat_list(&srv, me).await;
            tokio::task::yield_now().await;
        }
    };
    tokio::join!(join_all(talkers), group_talk, polling);
    let mut all = pairs.clone();
    all.push(group.clone());
    let listed = chat_list(&srv, me).await;
    assert_eq!(
        listed.keys().cloned().collect::<BTreeSet<_>>(),
        all.iter().cloned().collect()
    );
    // Back in the group after message 4: only the five messages since count as unread.
    let rejoined = BTreeMap::from([(group.clone(), 5)]);
    check_entries(&srv, me, &all, &rejoined).await;
    for (other, chat) in others.iter().zip(&pairs) {
        check_entries(&srv, other, &[chat.clone()], &BTreeMap::new()).await;
    }
    // A second instance on the same database says the same.
    let peer = srv.start_peer(|_| {}).await;
    let here = chat_list(&srv, me).await;
    let there = chat_list(&peer, me).await;
    assert_eq!(here.keys().collect::<Vec<_>>(), there.keys().collect::<Vec<_>>());
    for (chat, entry) in &here {
        assert_eq!(entry["lastMessage"], there[chat]["lastMessage"]);
        assert_eq!(entry["unreadCount"], there[chat]["unreadCount"]);
    }
    peer.finish().await;
    srv.finish().await;
}
