//! The finished app's REST API (contract section 4, issue 3): users, search, chats, messages,
//! read state and group chats. Every "Causerie's rule" cell of the contract is a test here, with
//! the exact status and body, on every configured backend.

#[macro_use]
mod common;

use std::collections::BTreeSet;

use causerie::testing::store::users;
use common::ordered::Ordered;
use common::{Backend, TestServer, TestUser, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const REQUIRED: &str = "This field is required.";

fn not_found() -> Value {
    json!({ "detail": "Not found." })
}

fn forbidden() -> Value {
    json!({ "detail": "You do not have permission to perform this action." })
}

/// The contract's message object has exactly these keys, in DRF's `ModelSerializer` order: the
/// primary key, the model's fields, then the forward relations.
const MESSAGE_KEYS: [&str; 9] = [
    "id",
    "message",
    "type",
    "extraData",
    "isRead",
    "createdAt",
    "updatedAt",
    "refChat",
    "author",
];

/// The `/api/user/` record: everything but secrets and privileges, in the model's order.
const PROFILE_KEYS: [&str; 11] = [
    "id",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "date_joined",
    "lastConnexionDate",
    "online",
    "avatar",
    "createdAt",
    "updatedAt",
];

backend_tests!(
    endpoints_require_authentication,
    user_list_only_the_caller,
    user_detail_and_patch,
    user_patch_ignores_protected_fields,
    search_users,
    messages_without_ref_chat,
    search_users_paginates,
    chat_list_detail_and_delete,
    create_chat_rules,
    message_history_pages_and_cursors,
    message_history_filters_and_access,
    post_message_rules,
    message_detail_patch_delete,
    update_messages_status,
    unread_count_drops_after_reads,
    group_chats,
    deleted_user_shows_as_null,
    post_message_retry_with_client_id,
    concurrent_create_chat_makes_one_chat,
    paths_without_trailing_slash,
    bodies_read_as_drf_reads_them,
);

// ---- helpers ---------------------------------------------------------------------------------

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn key_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `2026-11-25T10:00:00.123456Z`: UTC, microseconds.
#[track_caller]
fn assert_iso(value: &Value) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let shape_ok = text.len() == 27
        && text.ends_with('Z')
        && text.as_bytes()[10] == b'T'
        && text.as_bytes()[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(text).is_ok();
    assert!(shape_ok, "not an ISO 8601 UTC timestamp with microseconds: {text}");
}

/// The path and query of an absolute `next`/`previous` link, which DRF builds from the host the
/// request was sent to.
#[track_caller]
fn link_path(srv: &TestServer, link: &Value) -> String {
    let link = link.as_str().unwrap_or_else(|| panic!("not a link: {link}"));
    // Links are built from `public_url` (never from the request's forwarded headers).
    let base = srv.config.public_url.trim_end_matches('/');
    link.strip_prefix(base)
        .unwrap_or_else(|| panic!("link {link} is not under {base}"))
        .to_string()
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// A user as chats and search results show them: exactly the series' four fields.
fn brief(user: &TestUser, first_name: &str, last_name: &str) -> Value {
    json!({ "id": user.id, "first_name": first_name, "last_name": last_name, "online": false })
}

async fn named(srv: &TestServer, email: &str, first_name: &str, last_name: &str) -> TestUser {
    srv.quick_user_named(email, PASSWORD, first_name, last_name).await
}

/// The cast most tests start with: Alice Martin and Bob Durand.
async fn alice_and_bob(srv: &TestServer) -> (TestUser, TestUser) {
    let alice = named(srv, "alice@example.com", "Alice", "Martin").await;
    let bob = named(srv, "bob@example.com", "Bob", "Durand").await;
    (alice, bob)
}

/// Alice and Bob, and the chat between them (its id).
async fn alice_and_bob_in_a_chat(srv: &TestServer) -> (TestUser, TestUser, String) {
    let (alice, bob) = alice_and_bob(srv).await;
    let chat = id_of(&srv.open_chat(&alice, &bob).await);
    (alice, bob, chat)
}

/// Alice and Bob, and Carol Petit for the third party of a group or an outsider.
async fn alice_bob_and_carol(srv: &TestServer) -> (TestUser, TestUser, TestUser) {
    let (alice, bob) = alice_and_bob(srv).await;
    let carol = named(srv, "carol@example.com", "Carol", "Petit").await;
    (alice, bob, carol)
}

/// Posts a text message; returns the stored message.
async fn post_message(srv: &TestServer, author: &TestUser, chat: &str, text: &str) -> Value {
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

/// A history page (200 asserted).
async fn history(srv: &TestServer, user: &TestUser, query: &str) -> Value {
    let reply = srv.get_auth(&format!("/api/message/?{query}"), &user.access).await;
    reply.expect_status(200);
    reply.body.clone()
}

fn texts(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {page}"))
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect()
}

fn result_ids(page: &Value) -> BTreeSet<String> {
    page["results"].as_array().unwrap().iter().map(id_of).collect()
}

/// The caller's chat list entry for `chat`.
async fn chat_entry(srv: &TestServer, user: &TestUser, chat: &str) -> Value {
    let reply = srv.get_auth(&format!("/api/chat/?id={chat}"), &user.access).await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], json!(1), "chat {chat} listed once: {}", reply.text);
    reply.body["results"][0].clone()
}

async fn unread(srv: &TestServer, user: &TestUser, chat: &str) -> i64 {
    chat_entry(srv, user, chat).await["unreadCount"]
        .as_i64()
        .expect("unreadCount is an integer")
}

// ---- key order -------------------------------------------------------------------------------

/// The keys come out in the order the series' serializers write them (see `chats::view`), with
/// Causerie's additions after. Read from the raw text: a parsed `Value` sorts its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_keep_the_serializers_key_order() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let (a, b) = (
        named(&srv, "a@example.com", "Ann", "A").await,
        named(&srv, "b@example.com", "Bob", "B").await,
    );
    let created = srv
        .post_json_auth(
            "/api/createChat/",
            &a.access,
            &json!({ "refUser": a.id, "chatWithUser": b.id }),
        )
        .await;
    created.expect_status(201);
    let chat_keys = [
        "id",
        "fromUser",
        "toUser",
        "lastMessage",
        "createdAt",
        "updatedAt",
        "unreadCount",
        "isGroup",
        "title",
        "muted",
    ];
    assert_eq!(Ordered::parse(&created.text).keys(), chat_keys);
    let chat = id_of(&created.body);

    let sent = srv
        .post_json_auth(
            "/api/message/",
            &a.access,
            &json!({ "refChat": chat, "message": "hi", "type": 0, "extraData": "" }),
        )
        .await;
    sent.expect_status(201);
    assert_eq!(Ordered::parse(&sent.text).keys(), MESSAGE_KEYS);
    let message = id_of(&sent.body);
    let one = srv.get_auth(&format!("/api/message/{message}/"), &b.access).await;
    assert_eq!(Ordered::parse(&one.text).keys(), MESSAGE_KEYS);

    let page = Ordered::parse(
        &srv.get_auth(&format!("/api/message/?refChat={chat}"), &b.access)
            .await
            .text,
    );
    assert_eq!(page.keys(), ["count", "next", "previous", "results"]);
    assert_eq!(page.get("results").at(0).keys(), MESSAGE_KEYS);

    let chats = Ordered::parse(&srv.get_auth("/api/chat/", &b.access).await.text);
    let entry = chats.get("results").at(0);
    assert_eq!(entry.keys(), chat_keys);
    assert_eq!(
        entry.get("fromUser").keys(),
        ["id", "first_name", "last_name", "online"]
    );
    assert_eq!(entry.get("lastMessage").at(0).keys(), MESSAGE_KEYS);
    // The app's user record: the primary key, then the model's fields in order.
    let profile = srv.get_auth(&format!("/api/user/{}/", a.id), &a.access).await;
    assert_eq!(Ordered::parse(&profile.text).keys(), PROFILE_KEYS);
    // Body errors in the serializer's field order.
    let refused = srv.post_json_auth("/api/createChat/", &a.access, &json!({})).await;
    assert_eq!(Ordered::parse(&refused.text).keys(), ["refUser", "chatWithUser"]);
    srv.finish().await;
}

// ---- authentication --------------------------------------------------------------------------

async fn endpoints_require_authentication(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let id = Uuid::new_v4();
    let cases: Vec<(Method, String)> = vec![
        (Method::GET, "/api/user/".into()),
        (Method::GET, format!("/api/user/{id}/")),
        (Method::PATCH, format!("/api/user/{id}/")),
        (Method::GET, "/api/searchUser/?search=a".into()),
        (Method::GET, "/api/chat/".into()),
        (Method::GET, format!("/api/chat/{id}/")),
        (Method::DELETE, format!("/api/chat/{id}/")),
        (Method::POST, "/api/createChat/".into()),
        (Method::GET, format!("/api/message/?refChat={id}")),
        (Method::POST, "/api/message/".into()),
        (Method::GET, format!("/api/message/{id}/")),
        (Method::PATCH, format!("/api/message/{id}/")),
        (Method::DELETE, format!("/api/message/{id}/")),
        (Method::POST, "/api/updateMessagesStatus/".into()),
        (Method::POST, "/api/groups/".into()),
    ];
    for (method, path) in cases {
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        srv.request(method.clone(), &path, None, body.as_ref())
            .await
            .expect(
                401,
                json!({ "detail": "Authentication credentials were not provided." }),
            )
            .expect_bearer_challenge();
        srv.request(method, &path, Some("not-a-token"), body.as_ref())
            .await
            .expect_status(401)
            .expect_bearer_challenge();
    }
    srv.finish().await;
}

// ---- users -----------------------------------------------------------------------------------

async fn user_list_only_the_caller(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob) = alice_and_bob(&srv).await;

    let reply = srv.get_auth("/api/user/", &alice.access).await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], json!(1), "{}", reply.text);
    assert_eq!(reply.body["next"], Value::Null);
    assert_eq!(reply.body["previous"], Value::Null);
    let me = &reply.body["results"][0];
    assert_eq!(keys(me), key_set(&PROFILE_KEYS), "profile fields: {me}");
    assert_eq!(me["id"], json!(alice.id));
    assert_eq!(me["email"], json!("alice@example.com"));
    assert_eq!(me["first_name"], json!("Alice"));
    assert_eq!(me["last_name"], json!("Martin"));
    assert_eq!(me["online"], json!(false));
    assert_eq!(me["is_active"], json!(true));
    assert_eq!(me["avatar"], Value::Null);
    for field in ["date_joined", "createdAt", "updatedAt"] {
        assert_iso(&me[field]);
    }
    // Never the password (nor its hash), never another user.
    let row = srv.user_row(&alice.id).await.unwrap();
    assert!(!reply.text.contains("password"), "{}", reply.text);
    assert!(!reply.text.contains(&row.password));
    assert!(!reply.text.contains(&bob.id));

    // The app's login flow: `?email=<email>` then `results[0]`, whatever the case.
    let reply = srv.get_auth("/api/user/?email=ALICE@example.com", &alice.access).await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], json!(1));
    assert_eq!(&reply.body["results"][0], me);

    // Filtering for someone else finds nobody: only the caller is ever listed.
    let empty = json!({ "count": 0, "next": null, "previous": null, "results": [] });
    for query in [
        "email=bob@example.com".to_string(),
        format!("id={}", bob.id),
        "first_name=Bob".into(),
        "last_name=Durand".into(),
        "valid=false".into(),
    ] {
        srv.get_auth(&format!("/api/user/?{query}"), &alice.access)
            .await
            .expect(200, empty.clone());
    }
    for query in [
        format!("id={}", alice.id),
        "first_name=Alice".into(),
        "last_name=Martin".into(),
        "valid=true".into(),
        "email=alice@example.com&first_name=Alice".into(),
    ] {
        let reply = srv.get_auth(&format!("/api/user/?{query}"), &alice.access).await;
        reply.expect_status(200);
        assert_eq!(reply.body["count"], json!(1), "{query}: {}", reply.text);
        assert_eq!(reply.body["results"][0]["id"], json!(alice.id));
    }
    srv.get_auth("/api/user/?id=not-a-uuid", &alice.access)
        .await
        .expect(400, json!({ "id": ["Enter a valid UUID."] }));

    // Bob sees only Bob.
    let reply = srv.get_auth("/api/user/", &bob.access).await;
    assert_eq!(reply.body["count"], json!(1));
    assert_eq!(reply.body["results"][0]["id"], json!(bob.id));
    srv.finish().await;
}

async fn user_detail_and_patch(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob) = alice_and_bob(&srv).await;
    let mine = format!("/api/user/{}/", alice.id);

    let reply = srv.get_auth(&mine, &alice.access).await;
    reply.expect_status(200);
    assert_eq!(keys(&reply.body), key_set(&PROFILE_KEYS));
    assert_eq!(reply.body["id"], json!(alice.id));
    assert_eq!(reply.body["email"], json!("alice@example.com"));

    // Someone else's record does not exist for the caller, whatever the method.
    let theirs = format!("/api/user/{}/", bob.id);
    srv.get_auth(&theirs, &alice.access).await.expect(404, not_found());
    srv.patch_json_auth(&theirs, &alice.access, &json!({ "first_name": "Hacked" }))
        .await
        .expect(404, not_found());
    srv.put_json_auth(&theirs, &alice.access, &json!({ "first_name": "Hacked" }))
        .await
        .expect(404, not_found());
    srv.get_auth("/api/user/not-a-uuid/", &alice.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/user/{}/", Uuid::new_v4()), &alice.access)
        .await
        .expect(404, not_found());
    assert_eq!(srv.user_row(&bob.id).await.unwrap().first_name, "Bob");

    // The app's PATCHes: names, then going online, then offline.
    let reply = srv
        .patch_json_auth(
            &mine,
            &alice.access,
            &json!({ "first_name": "Alicia", "last_name": "Martinez" }),
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["first_name"], json!("Alicia"));
    assert_eq!(reply.body["last_name"], json!("Martinez"));
    assert_eq!(reply.body["email"], json!("alice@example.com"));

    let reply = srv
        .patch_json_auth(
            &mine,
            &alice.access,
            &json!({ "online": true, "lastConnexionDate": "2026-11-25T10:00:00.123456Z" }),
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["online"], json!(true));
    assert_eq!(reply.body["lastConnexionDate"], json!("2026-11-25T10:00:00.123456Z"));
    assert_eq!(reply.body["first_name"], json!("Alicia"));

    // Another offset is stored as the same instant, rendered in UTC.
    let reply = srv
        .patch_json_auth(
            &mine,
            &alice.access,
            &json!({ "lastConnexionDate": "2026-11-25T12:30:00.5+02:00" }),
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["lastConnexionDate"], json!("2026-11-25T10:30:00.500000Z"));
    assert_eq!(reply.body["online"], json!(true));

    let reply = srv
        .patch_json_auth(&mine, &alice.access, &json!({ "online": false }))
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["online"], json!(false));

    // The changes are stored: a fresh GET shows them, and so does Bob's view of Alice in search.
    let reply = srv.get_auth(&mine, &alice.access).await;
    assert_eq!(reply.body["first_name"], json!("Alicia"));
    assert_eq!(reply.body["last_name"], json!("Martinez"));
    assert_eq!(reply.body["online"], json!(false));
    assert_eq!(reply.body["lastConnexionDate"], json!("2026-11-25T10:30:00.500000Z"));
    let row = srv.user_row(&alice.id).await.unwrap();
    assert_eq!(
        (row.first_name.as_str(), row.last_name.as_str()),
        ("Alicia", "Martinez")
    );
    assert!(!row.online);

    // Bad values are DRF field errors.
    srv.patch_json_auth(&mine, &alice.access, &json!({ "online": "maybe" }))
        .await
        .expect(400, json!({ "online": ["Must be a valid boolean."] }));
    srv.patch_json_auth(&mine, &alice.access, &json!({ "lastConnexionDate": "yesterday" }))
        .await
        .expect(
            400,
            json!({ "lastConnexionDate": ["Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."] }),
        );
    srv.finish().await;
}

async fn user_patch_ignores_protected_fields(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = named(&srv, "alice@example.com", "Alice", "Martin").await;
    let before = srv.user_row(&alice.id).await.unwrap();
    let mine = format!("/api/user/{}/", alice.id);
    let reply = srv
        .patch_json_auth(
            &mine,
            &alice.access,
            &json!({
                "password": "Another-Secret-99",
                "email": "mallory@example.com",
                "is_staff": true,
                "is_superuser": true,
                "is_active": false,
                "id": Uuid::new_v4(),
                "first_name": "Alicia"
            }),
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["id"], json!(alice.id));
    assert_eq!(reply.body["email"], json!("alice@example.com"));
    assert_eq!(reply.body["is_active"], json!(true));
    assert_eq!(reply.body["first_name"], json!("Alicia"));
    assert!(!reply.text.contains("password"));
    let after = srv.user_row(&alice.id).await.unwrap();
    assert_eq!(after.email, "alice@example.com");
    assert_eq!(after.password, before.password, "the password hash is unchanged");
    assert!(!after.is_staff && !after.is_superuser && after.is_active);
    // The old password still logs in; the new one does not; the new email does not exist.
    srv.login("alice@example.com", PASSWORD).await;
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "alice@example.com", "password": "Another-Secret-99" }),
    )
    .await
    .expect_status(401);
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "mallory@example.com", "password": PASSWORD }),
    )
    .await
    .expect_status(401);
    srv.finish().await;
}

async fn search_users(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let jean = named(&srv, "jean@example.com", "Jean", "Dupont").await;
    let jeanne = named(&srv, "jeanne@example.com", "Jeanne", "Durand").await;
    let paul = named(&srv, "paul@example.com", "Paul", "Dupont").await;
    let marie = named(&srv, "marie@example.com", "Marie", "Jeanson").await;
    let gone = named(&srv, "gone@example.com", "Jean-Pierre", "Dupuis").await;
    assert!(users::set_active(srv.db(), gone.user_id(), false).await.unwrap());

    let search = |terms: &'static str| {
        let srv = &srv;
        let token = jean.access.clone();
        async move {
            let reply = srv.get_auth(&format!("/api/searchUser/?search={terms}"), &token).await;
            reply.expect_status(200);
            reply.body
        }
    };

    // First or last name, any case; the caller (Jean Dupont) and inactive users are left out.
    let page = search("jean").await;
    assert_eq!(
        result_ids(&page),
        BTreeSet::from([jeanne.id.clone(), marie.id.clone()]),
        "{page}"
    );
    assert_eq!(page["count"], json!(2));
    assert_eq!(page["next"], Value::Null);
    assert_eq!(page["previous"], Value::Null);
    for item in page["results"].as_array().unwrap() {
        assert_eq!(keys(item), key_set(&["id", "first_name", "last_name", "online"]));
    }
    let found_jeanne = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == json!(jeanne.id))
        .unwrap();
    assert_eq!(found_jeanne, &brief(&jeanne, "Jeanne", "Durand"));

    let page = search("DUPONT").await;
    assert_eq!(
        page,
        json!({ "count": 1, "next": null, "previous": null, "results": [brief(&paul, "Paul", "Dupont")] })
    );
    // Every term must match (first or last name), split on spaces and commas.
    assert_eq!(
        result_ids(&search("jean%20dur").await),
        BTreeSet::from([jeanne.id.clone()])
    );
    assert_eq!(
        result_ids(&search("jean,dur").await),
        BTreeSet::from([jeanne.id.clone()])
    );
    assert_eq!(
        result_ids(&search("JeAn%2C%20son").await),
        BTreeSet::from([marie.id.clone()])
    );
    assert_eq!(search("jean%20paul").await["count"], json!(0));
    assert_eq!(search("pierre").await["count"], json!(0), "inactive users are excluded");
    assert_eq!(search("dupuis").await["count"], json!(0), "inactive users are excluded");
    // Without a term of two characters or more, an empty page: no listing of every user.
    let empty = json!({ "count": 0, "next": null, "previous": null, "results": [] });
    for terms in ["", "j", "j%20d", "%20,%20", "j&page_size=100"] {
        assert_eq!(search(terms).await, empty, "search={terms}");
    }
    srv.get_auth("/api/searchUser/", &jean.access)
        .await
        .expect(200, empty.clone());
    // A long enough term beside short ones still narrows.
    assert_eq!(
        result_ids(&search("j%20durand").await),
        BTreeSet::from([jeanne.id.clone()])
    );
    // LIKE wildcards are plain characters.
    assert_eq!(search("%25%25").await["count"], json!(0));
    assert_eq!(search("_").await["count"], json!(0));

    // A term matches within one name, never across first and last name together.
    assert_eq!(search("annedur").await["count"], json!(0));
    assert_eq!(search("jeannedurand").await["count"], json!(0));
    // A renamed user is found by the new name at once, and no longer by the old one.
    srv.patch_json_auth("/auth/users/me/", &marie.access, &json!({ "last_name": "Lefèvre" }))
        .await
        .expect_status(200);
    assert_eq!(
        result_ids(&search("LEF%C3%88VRE").await),
        BTreeSet::from([marie.id.clone()])
    );
    assert_eq!(search("jeanson").await["count"], json!(0));

    // Another caller sees Jean but not themself.
    let reply = srv.get_auth("/api/searchUser/?search=dupont", &paul.access).await;
    assert_eq!(result_ids(&reply.body), BTreeSet::from([jean.id.clone()]));
    srv.finish().await;
}

async fn search_users_paginates(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let caller = named(&srv, "caller@example.com", "Zed", "Caller").await;
    let mut expected = BTreeSet::new();
    for i in 0..25 {
        let user = named(&srv, &format!("zed{i}@example.com"), &format!("Zed{i:02}"), "Tester").await;
        expected.insert(user.id);
    }
    named(&srv, "other@example.com", "Someone", "Else").await;

    let reply = srv.get_auth("/api/searchUser/?search=zed", &caller.access).await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], json!(25));
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 20);
    assert_eq!(reply.body["previous"], Value::Null);
    let next = link_path(&srv, &reply.body["next"]);
    assert_eq!(next, "/api/searchUser/?search=zed&page=2");
    let mut seen = result_ids(&reply.body);

    let page2 = srv.get_auth(&next, &caller.access).await;
    page2.expect_status(200);
    assert_eq!(page2.body["count"], json!(25));
    assert_eq!(page2.body["results"].as_array().unwrap().len(), 5);
    assert_eq!(page2.body["next"], Value::Null);
    assert_eq!(link_path(&srv, &page2.body["previous"]), "/api/searchUser/?search=zed");
    seen.extend(result_ids(&page2.body));
    assert_eq!(seen, expected, "the two pages hold every match once");

    // page_size is honoured; a page past the end is DRF's 404.
    let reply = srv
        .get_auth("/api/searchUser/?search=zed&page_size=10&page=3", &caller.access)
        .await;
    assert_eq!(reply.body["results"].as_array().unwrap().len(), 5);
    srv.get_auth("/api/searchUser/?search=zed&page=3", &caller.access)
        .await
        .expect(404, json!({ "detail": "Invalid page." }));
    srv.finish().await;
}

// ---- chats -----------------------------------------------------------------------------------

async fn chat_list_detail_and_delete(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;

    let ab = id_of(&srv.open_chat(&alice, &bob).await);
    let ac = id_of(&srv.open_chat(&alice, &carol).await);
    let bc = id_of(&srv.open_chat(&bob, &carol).await);
    // A message makes the first chat the most recently active one.
    let hello = post_message(&srv, &bob, &ab, "hello Alice").await;

    let reply = srv.get_auth("/api/chat/", &alice.access).await;
    reply.expect_status(200);
    let list = &reply.body;
    assert_eq!(list["count"], json!(2), "{list}");
    assert_eq!(list["next"], Value::Null);
    assert_eq!(list["previous"], Value::Null);
    let results = list["results"].as_array().unwrap();
    assert_eq!(
        results.iter().map(id_of).collect::<Vec<_>>(),
        vec![ab.clone(), ac.clone()],
        "-updatedAt first"
    );
    let first = &results[0];
    for field in [
        "id",
        "fromUser",
        "toUser",
        "lastMessage",
        "unreadCount",
        "createdAt",
        "updatedAt",
    ] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    assert_eq!(first["fromUser"], brief(&alice, "Alice", "Martin"));
    assert_eq!(first["toUser"], brief(&bob, "Bob", "Durand"));
    assert_eq!(first["lastMessage"], json!([hello.clone()]));
    assert_eq!(first["unreadCount"], json!(1), "Bob's message is unread for Alice");
    assert_iso(&first["createdAt"]);
    assert_iso(&first["updatedAt"]);
    assert!(
        first["updatedAt"].as_str().unwrap() >= results[1]["updatedAt"].as_str().unwrap(),
        "{list}"
    );
    let second = &results[1];
    assert_eq!(second["fromUser"], brief(&alice, "Alice", "Martin"));
    assert_eq!(second["toUser"], brief(&carol, "Carol", "Petit"));
    assert_eq!(second["lastMessage"], json!([]));
    assert_eq!(second["unreadCount"], json!(0));

    // The author has nothing unread; the chat looks the same from both sides otherwise.
    let bob_view = chat_entry(&srv, &bob, &ab).await;
    assert_eq!(bob_view["unreadCount"], json!(0));
    assert_eq!(bob_view["fromUser"], first["fromUser"]);
    assert_eq!(bob_view["lastMessage"], first["lastMessage"]);

    // The lastMessage follows the newest message.
    let reply_msg = post_message(&srv, &alice, &ab, "hi Bob").await;
    assert_eq!(chat_entry(&srv, &alice, &ab).await["lastMessage"], json!([reply_msg]));

    // ?id= filters; another pair's chat is not listed.
    let only = srv.get_auth(&format!("/api/chat/?id={ac}"), &alice.access).await;
    assert_eq!(only.body["count"], json!(1));
    assert_eq!(only.body["results"][0]["id"], json!(ac));
    srv.get_auth(&format!("/api/chat/?id={bc}"), &alice.access)
        .await
        .expect(
            200,
            json!({ "count": 0, "next": null, "previous": null, "results": [] }),
        );
    srv.get_auth("/api/chat/?id=nope", &alice.access)
        .await
        .expect(400, json!({ "id": ["Enter a valid UUID."] }));

    // Detail: the same shape, participants only.
    let detail = srv.get_auth(&format!("/api/chat/{ab}/"), &alice.access).await;
    detail.expect_status(200);
    assert_eq!(detail.body, chat_entry(&srv, &alice, &ab).await);
    srv.get_auth(&format!("/api/chat/{ab}/"), &bob.access)
        .await
        .expect_status(200);
    srv.get_auth(&format!("/api/chat/{ab}/"), &carol.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/chat/{}/", Uuid::new_v4()), &alice.access)
        .await
        .expect(404, not_found());
    srv.get_auth("/api/chat/not-a-uuid/", &alice.access)
        .await
        .expect(404, not_found());

    // Delete: participants only; then it is gone for both, with its messages.
    srv.delete_auth(&format!("/api/chat/{ab}/"), &carol.access, None)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/chat/{ab}/"), &alice.access)
        .await
        .expect_status(200);
    let deleted = srv.delete_auth(&format!("/api/chat/{ab}/"), &bob.access, None).await;
    deleted.expect_status(204);
    assert_eq!(deleted.text, "");
    for user in [&alice, &bob] {
        srv.get_auth(&format!("/api/chat/{ab}/"), &user.access)
            .await
            .expect(404, not_found());
        srv.get_auth(&format!("/api/message/?refChat={ab}"), &user.access)
            .await
            .expect(404, not_found());
    }
    srv.get_auth(&format!("/api/message/{}/", id_of(&hello)), &alice.access)
        .await
        .expect(404, not_found());
    srv.delete_auth(&format!("/api/chat/{ab}/"), &alice.access, None)
        .await
        .expect(404, not_found());
    let reply = srv.get_auth("/api/chat/", &alice.access).await;
    assert_eq!(reply.body["count"], json!(1));
    assert_eq!(reply.body["results"][0]["id"], json!(ac));
    srv.finish().await;
}

async fn create_chat_rules(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;

    // Created: 201 with the chat.
    let created = srv.open_chat(&alice, &bob).await;
    let chat = id_of(&created);
    assert!(Uuid::parse_str(&chat).is_ok());
    assert_eq!(created["fromUser"], brief(&alice, "Alice", "Martin"));
    assert_eq!(created["toUser"], brief(&bob, "Bob", "Durand"));
    assert_eq!(created["lastMessage"], json!([]));
    assert_eq!(created["unreadCount"], json!(0));
    assert_iso(&created["createdAt"]);

    // Found again: 201 with the same chat, from either side.
    let again = srv.open_chat(&alice, &bob).await;
    assert_eq!(again, created);
    let reverse = srv.open_chat(&bob, &alice).await;
    assert_eq!(id_of(&reverse), chat);
    assert_eq!(reverse["fromUser"], brief(&alice, "Alice", "Martin"));
    assert_eq!(reverse["toUser"], brief(&bob, "Bob", "Durand"));
    for user in [&alice, &bob] {
        let reply = srv.get_auth("/api/chat/", &user.access).await;
        assert_eq!(reply.body["count"], json!(1), "one chat per pair: {}", reply.text);
    }

    // refUser must be the caller.
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": bob.id, "chatWithUser": carol.id }),
    )
    .await
    .expect(403, forbidden());
    srv.post_json_auth(
        "/api/createChat/",
        &carol.access,
        &json!({ "refUser": alice.id, "chatWithUser": bob.id }),
    )
    .await
    .expect(403, forbidden());

    // Unknown, inactive or same user: 400.
    let ghost = Uuid::new_v4();
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": alice.id, "chatWithUser": ghost }),
    )
    .await
    .expect(
        400,
        json!({ "chatWithUser": [format!("Invalid pk \"{ghost}\" - object does not exist.")] }),
    );
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": alice.id, "chatWithUser": alice.id }),
    )
    .await
    .expect(
        400,
        json!({ "chatWithUser": ["You cannot open a chat with yourself."] }),
    );
    assert!(users::set_active(srv.db(), carol.user_id(), false).await.unwrap());
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": alice.id, "chatWithUser": carol.id }),
    )
    .await
    .expect(
        400,
        json!({ "chatWithUser": [format!("Invalid pk \"{}\" - object does not exist.", carol.id)] }),
    );

    // Missing or malformed fields: 400 field errors, never a 500 with an empty body.
    srv.post_json_auth("/api/createChat/", &alice.access, &json!({}))
        .await
        .expect(400, json!({ "refUser": [REQUIRED], "chatWithUser": [REQUIRED] }));
    srv.post_json_auth("/api/createChat/", &alice.access, &json!({ "refUser": alice.id }))
        .await
        .expect(400, json!({ "chatWithUser": [REQUIRED] }));
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": alice.id, "chatWithUser": "bob" }),
    )
    .await
    .expect(400, json!({ "chatWithUser": ["Must be a valid UUID."] }));
    srv.post_json_auth(
        "/api/createChat/",
        &alice.access,
        &json!({ "refUser": null, "chatWithUser": 42 }),
    )
    .await
    .expect(
        400,
        json!({ "refUser": [REQUIRED], "chatWithUser": ["Must be a valid UUID."] }),
    );
    let reply = srv.get_auth("/api/chat/", &alice.access).await;
    assert_eq!(
        reply.body["count"],
        json!(1),
        "no chat was created by the refused requests"
    );
    srv.finish().await;
}

// ---- messages --------------------------------------------------------------------------------

async fn message_history_pages_and_cursors(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = alice_and_bob_in_a_chat(&srv).await;
    let mut stored = Vec::new();
    for i in 0..45 {
        let author = if i % 2 == 0 { &alice } else { &bob };
        stored.push(post_message(&srv, author, &chat, &format!("m{i}")).await);
    }
    let names =
        |range: std::ops::RangeInclusive<usize>| -> Vec<String> { range.rev().map(|i| format!("m{i}")).collect() };

    // Newest first, 20 a page, `next` until the oldest.
    let page1 = history(&srv, &alice, &format!("refChat={chat}")).await;
    assert_eq!(page1["count"], json!(45));
    assert_eq!(texts(&page1), names(25..=44));
    assert_eq!(page1["previous"], Value::Null);
    assert_eq!(
        link_path(&srv, &page1["next"]),
        format!("/api/message/?refChat={chat}&page=2")
    );
    // Each result is the stored message, exactly.
    assert_eq!(page1["results"][0], stored[44]);
    assert_eq!(page1["results"][19], stored[25]);

    let page2 = history(&srv, &alice, &link_path(&srv, &page1["next"])["/api/message/?".len()..]).await;
    assert_eq!(texts(&page2), names(5..=24));
    assert_eq!(
        link_path(&srv, &page2["previous"]),
        format!("/api/message/?refChat={chat}")
    );
    let page3 = history(&srv, &bob, &link_path(&srv, &page2["next"])["/api/message/?".len()..]).await;
    assert_eq!(texts(&page3), names(0..=4));
    assert_eq!(page3["next"], Value::Null);
    assert_eq!(
        link_path(&srv, &page3["previous"]),
        format!("/api/message/?refChat={chat}&page=2")
    );
    srv.get_auth(&format!("/api/message/?refChat={chat}&page=4"), &alice.access)
        .await
        .expect(404, json!({ "detail": "Invalid page." }));

    // Cursors: before a message (older ones, newest first) and after one.
    let before = history(&srv, &alice, &format!("refChat={chat}&before={}", id_of(&stored[25]))).await;
    assert_eq!(before["count"], json!(25));
    assert_eq!(texts(&before), names(5..=24));
    let before_next = link_path(&srv, &before["next"]);
    assert!(before_next.contains("page=2"), "{before_next}");
    let before2 = history(&srv, &alice, &before_next["/api/message/?".len()..]).await;
    assert_eq!(texts(&before2), names(0..=4));

    let after = history(&srv, &alice, &format!("refChat={chat}&after={}", id_of(&stored[39]))).await;
    assert_eq!(after["count"], json!(5));
    assert_eq!(texts(&after), names(40..=44));
    assert_eq!(after["next"], Value::Null);
    // After an older message: the page right after it, still shown newest first.
    let after_old = history(&srv, &alice, &format!("refChat={chat}&after={}", id_of(&stored[10]))).await;
    assert_eq!(after_old["count"], json!(34));
    assert_eq!(texts(&after_old), names(11..=30));
    let between = history(
        &srv,
        &alice,
        &format!(
            "refChat={chat}&after={}&before={}",
            id_of(&stored[10]),
            id_of(&stored[14])
        ),
    )
    .await;
    assert_eq!(texts(&between), names(11..=13));
    // After the newest: nothing (yet).
    let after_newest = history(&srv, &alice, &format!("refChat={chat}&after={}", id_of(&stored[44]))).await;
    assert_eq!(
        after_newest,
        json!({ "count": 0, "next": null, "previous": null, "results": [] })
    );

    // A cursor must be a message of this chat.
    let carol = named(&srv, "carol@example.com", "Carol", "Petit").await;
    let other = id_of(&srv.open_chat(&alice, &carol).await);
    let elsewhere = post_message(&srv, &alice, &other, "elsewhere").await;
    srv.get_auth(
        &format!("/api/message/?refChat={chat}&before={}", id_of(&elsewhere)),
        &alice.access,
    )
    .await
    .expect(400, json!({ "before": ["No message with this id in this chat."] }));
    srv.get_auth(
        &format!("/api/message/?refChat={chat}&after={}", Uuid::new_v4()),
        &alice.access,
    )
    .await
    .expect(400, json!({ "after": ["No message with this id in this chat."] }));
    srv.get_auth(&format!("/api/message/?refChat={chat}&before=x"), &alice.access)
        .await
        .expect(400, json!({ "before": ["Enter a valid UUID."] }));
    srv.finish().await;
}

async fn message_history_filters_and_access(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let chat = id_of(&srv.open_chat(&alice, &bob).await);
    let text1 = post_message(&srv, &alice, &chat, "hello").await;
    let geo = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "", "type": 1, "extraData": "48.8566,2.3522" }),
        )
        .await;
    geo.expect_status(201);
    let text2 = post_message(&srv, &bob, &chat, "hi").await;
    // Bob reads Alice's first message.
    srv.patch_json_auth(
        &format!("/api/message/{}/", id_of(&text1)),
        &bob.access,
        &json!({ "isRead": true }),
    )
    .await
    .expect_status(200);

    let only_geo = history(&srv, &alice, &format!("refChat={chat}&type=1")).await;
    assert_eq!(only_geo["count"], json!(1));
    assert_eq!(only_geo["results"][0], geo.body);
    let only_text = history(&srv, &alice, &format!("refChat={chat}&type=0")).await;
    assert_eq!(texts(&only_text), vec!["hi", "hello"]);
    let read = history(&srv, &alice, &format!("refChat={chat}&isRead=true")).await;
    assert_eq!(result_ids(&read), BTreeSet::from([id_of(&text1)]));
    assert_eq!(read["results"][0]["isRead"], json!(true));
    let unread = history(&srv, &alice, &format!("refChat={chat}&isRead=false")).await;
    assert_eq!(result_ids(&unread), BTreeSet::from([id_of(&geo.body), id_of(&text2)]));
    let by_id = history(&srv, &bob, &format!("refChat={chat}&id={}", id_of(&text2))).await;
    assert_eq!(by_id["count"], json!(1));
    assert_eq!(by_id["results"][0], text2);
    srv.get_auth(&format!("/api/message/?refChat={chat}&type=text"), &alice.access)
        .await
        .expect(400, json!({ "type": ["Enter a whole number."] }));
    srv.get_auth(&format!("/api/message/?refChat={chat}&isRead=perhaps"), &alice.access)
        .await
        .expect(400, json!({ "isRead": ["Enter a valid boolean."] }));

    // Only chats the caller is in; refChat is required.
    srv.get_auth(&format!("/api/message/?refChat={chat}"), &carol.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/message/?refChat={chat}&type=0"), &carol.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/message/?refChat={}", Uuid::new_v4()), &alice.access)
        .await
        .expect(404, not_found());
    // Without refChat, the caller's own chats only: Carol is in none, so she sees nothing.
    assert_eq!(
        history(&srv, &carol, "").await,
        json!({ "count": 0, "next": null, "previous": null, "results": [] })
    );
    srv.get_auth("/api/message/?refChat=abc", &alice.access)
        .await
        .expect(400, json!({ "refChat": ["Enter a valid UUID."] }));
    srv.finish().await;
}

/// Without `refChat` (issue 11.9): the messages of every chat the caller is in, newest first,
/// paginated, with the filters; never another chat's (the series listed everyone's).
async fn messages_without_ref_chat(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = named(&srv, "alice@example.com", "Alice", "Martin").await;
    let bob = named(&srv, "bob@example.com", "Bob", "Durand").await;
    let carol = named(&srv, "carol@example.com", "Carol", "Petit").await;
    let dave = named(&srv, "dave@example.com", "Dave", "Roux").await;
    let with_bob = id_of(&srv.open_chat(&alice, &bob).await);
    let with_carol = id_of(&srv.open_chat(&alice, &carol).await);
    let theirs = id_of(&srv.open_chat(&bob, &dave).await);
    post_message(&srv, &alice, &with_bob, "1 to bob").await;
    post_message(&srv, &carol, &with_carol, "2 from carol").await;
    post_message(&srv, &bob, &theirs, "3 bob to dave").await;
    post_message(&srv, &bob, &with_bob, "4 from bob").await;
    post_message(&srv, &alice, &with_carol, "5 to carol").await;

    let all = history(&srv, &alice, "").await;
    assert_eq!(
        texts(&all),
        ["5 to carol", "4 from bob", "2 from carol", "1 to bob"],
        "{all}"
    );
    assert_eq!(all["count"], json!(4));
    assert_eq!(
        texts(&history(&srv, &bob, "").await),
        ["4 from bob", "3 bob to dave", "1 to bob"]
    );
    assert_eq!(texts(&history(&srv, &dave, "").await), ["3 bob to dave"]);

    // Paginated like every list.
    let first = history(&srv, &alice, "page_size=3").await;
    assert_eq!(texts(&first), ["5 to carol", "4 from bob", "2 from carol"]);
    let next = link_path(&srv, &first["next"]);
    assert_eq!(next, "/api/message/?page_size=3&page=2");
    let second = srv.get_auth(&next, &alice.access).await;
    second.expect_status(200);
    assert_eq!(texts(&second.body), ["1 to bob"]);
    assert_eq!(second.body["next"], Value::Null);
    srv.get_auth("/api/message/?page=3&page_size=3", &alice.access)
        .await
        .expect(404, json!({ "detail": "Invalid page." }));

    // Filters apply; cursors need a chat (their order is the chat's).
    assert_eq!(texts(&history(&srv, &alice, "isRead=false&type=0").await).len(), 4);
    assert_eq!(history(&srv, &alice, "type=1").await["count"], json!(0));
    let some_id = id_of(&all["results"][0]);
    srv.get_auth(&format!("/api/message/?before={some_id}"), &alice.access)
        .await
        .expect(400, json!({ "before": ["Only together with refChat."] }));
    srv.finish().await;
}

async fn post_message_rules(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let chat = id_of(&srv.open_chat(&alice, &bob).await);

    // The body names Bob as author: the author is the caller all the same.
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "  hello Bob  ", "type": 0, "extraData": "", "author": bob.id, "isRead": true }),
        )
        .await;
    reply.expect_status(201);
    let stored = reply.body.clone();
    assert_eq!(keys(&stored), key_set(&MESSAGE_KEYS), "{stored}");
    assert!(Uuid::parse_str(&id_of(&stored)).is_ok());
    assert_eq!(stored["refChat"], json!(chat));
    assert_eq!(stored["author"], json!(alice.id));
    assert_eq!(stored["message"], json!("  hello Bob  "));
    assert_eq!(stored["type"], json!(0));
    assert_eq!(stored["extraData"], json!(""));
    assert_eq!(stored["isRead"], json!(false));
    assert_iso(&stored["createdAt"]);
    assert_iso(&stored["updatedAt"]);
    assert_eq!(stored["createdAt"], stored["updatedAt"]);
    // It is stored as answered.
    srv.get_auth(&format!("/api/message/{}/", id_of(&stored)), &bob.access)
        .await
        .expect(200, stored.clone());

    // type and extraData default to 0 and "".
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &bob.access,
            &json!({ "refChat": chat, "message": "short" }),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(reply.body["type"], json!(0));
    assert_eq!(reply.body["extraData"], json!(""));
    assert_eq!(reply.body["author"], json!(bob.id));
    // A location carries its coordinates; a photo its URL.
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &bob.access,
            &json!({ "refChat": chat, "message": "", "type": 1, "extraData": "45.76,4.83" }),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(
        (&reply.body["type"], &reply.body["extraData"]),
        (&json!(1), &json!("45.76,4.83"))
    );
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &bob.access,
            &json!({ "refChat": chat, "message": "look", "type": 2, "extraData": "https://example.com/p.jpg" }),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(reply.body["type"], json!(2));
    let count_before = history(&srv, &alice, &format!("refChat={chat}")).await["count"].clone();
    assert_eq!(count_before, json!(4));

    // Not a participant: the chat does not exist for them.
    srv.post_json_auth(
        "/api/message/",
        &carol.access,
        &json!({ "refChat": chat, "message": "intrusion" }),
    )
    .await
    .expect(404, not_found());
    srv.post_json_auth(
        "/api/message/",
        &alice.access,
        &json!({ "refChat": Uuid::new_v4(), "message": "nowhere" }),
    )
    .await
    .expect(404, not_found());

    // Validation.
    let cases = vec![
        (
            json!({ "refChat": chat, "message": "   " }),
            json!({ "message": ["This field may not be blank."] }),
        ),
        (
            json!({ "refChat": chat, "message": "" }),
            json!({ "message": ["This field may not be blank."] }),
        ),
        (json!({ "refChat": chat }), json!({ "message": [REQUIRED] })),
        (json!({ "message": "no chat" }), json!({ "refChat": [REQUIRED] })),
        (
            json!({ "refChat": chat, "message": "x", "type": 7 }),
            json!({ "type": ["\"7\" is not a valid choice."] }),
        ),
        (
            json!({ "refChat": chat, "message": "x", "type": -1 }),
            json!({ "type": ["\"-1\" is not a valid choice."] }),
        ),
        (
            json!({ "refChat": chat, "message": "x", "type": "photo" }),
            json!({ "type": ["A valid integer is required."] }),
        ),
        (
            json!({ "refChat": chat, "message": "", "type": 1, "extraData": "" }),
            json!({ "extraData": ["This field may not be blank."] }),
        ),
        (
            json!({ "refChat": chat, "message": "x".repeat(10_001) }),
            json!({ "message": ["Ensure this field has no more than 10000 characters."] }),
        ),
        (
            json!({ "refChat": "chat-1", "message": "x" }),
            json!({ "refChat": ["Must be a valid UUID."] }),
        ),
    ];
    for (body, error) in cases {
        srv.post_json_auth("/api/message/", &alice.access, &body)
            .await
            .expect(400, error);
    }
    assert_eq!(
        history(&srv, &alice, &format!("refChat={chat}")).await["count"],
        count_before,
        "nothing refused was stored"
    );
    srv.finish().await;
}

async fn message_detail_patch_delete(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let chat = id_of(&srv.open_chat(&alice, &bob).await);
    let message = post_message(&srv, &alice, &chat, "original").await;
    let path = format!("/api/message/{}/", id_of(&message));

    srv.get_auth(&path, &alice.access).await.expect(200, message.clone());
    srv.get_auth(&path, &bob.access).await.expect(200, message.clone());
    // A third user: 404 whatever the method.
    srv.get_auth(&path, &carol.access).await.expect(404, not_found());
    srv.patch_json_auth(&path, &carol.access, &json!({ "isRead": true }))
        .await
        .expect(404, not_found());
    srv.patch_json_auth(&path, &carol.access, &json!({ "message": "x" }))
        .await
        .expect(404, not_found());
    srv.delete_auth(&path, &carol.access, None)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/message/{}/", Uuid::new_v4()), &alice.access)
        .await
        .expect(404, not_found());
    srv.get_auth("/api/message/not-a-uuid/", &alice.access)
        .await
        .expect(404, not_found());

    // isRead: the recipient may, the author may not.
    srv.patch_json_auth(&path, &alice.access, &json!({ "isRead": true }))
        .await
        .expect(403, forbidden());
    let reply = srv
        .patch_json_auth(&path, &bob.access, &json!({ "isRead": true }))
        .await;
    reply.expect_status(200);
    assert_eq!(keys(&reply.body), key_set(&MESSAGE_KEYS));
    assert_eq!(reply.body["isRead"], json!(true));
    assert_eq!(reply.body["message"], json!("original"));
    assert_eq!(reply.body["createdAt"], message["createdAt"]);

    // The text: the author may, the recipient may not.
    srv.patch_json_auth(&path, &bob.access, &json!({ "message": "rewritten by Bob" }))
        .await
        .expect(403, forbidden());
    srv.put_json_auth(&path, &bob.access, &json!({ "message": "rewritten by Bob" }))
        .await
        .expect(403, forbidden());
    let reply = srv
        .patch_json_auth(&path, &alice.access, &json!({ "message": "edited" }))
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["message"], json!("edited"));
    assert_eq!(reply.body["author"], json!(alice.id));
    assert_eq!(reply.body["isRead"], json!(true));
    assert_eq!(reply.body["id"], message["id"]);
    srv.patch_json_auth(&path, &alice.access, &json!({ "message": "  " }))
        .await
        .expect(400, json!({ "message": ["This field may not be blank."] }));
    let current = srv.get_auth(&path, &bob.access).await;
    current.expect_status(200);
    assert_eq!(current.body["message"], json!("edited"));
    assert_eq!(current.body["isRead"], json!(true));

    // Delete: others 403, the author 204, then it is gone.
    srv.delete_auth(&path, &bob.access, None).await.expect(403, forbidden());
    srv.get_auth(&path, &alice.access).await.expect_status(200);
    let deleted = srv.delete_auth(&path, &alice.access, None).await;
    deleted.expect_status(204);
    assert_eq!(deleted.text, "");
    srv.get_auth(&path, &alice.access).await.expect(404, not_found());
    srv.get_auth(&path, &bob.access).await.expect(404, not_found());
    srv.delete_auth(&path, &alice.access, None)
        .await
        .expect(404, not_found());
    srv.patch_json_auth(&path, &alice.access, &json!({ "message": "back" }))
        .await
        .expect(404, not_found());
    let page = history(&srv, &bob, &format!("refChat={chat}")).await;
    assert_eq!(
        page,
        json!({ "count": 0, "next": null, "previous": null, "results": [] })
    );
    assert_eq!(chat_entry(&srv, &bob, &chat).await["lastMessage"], json!([]));
    srv.finish().await;
}

async fn update_messages_status(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let ab = id_of(&srv.open_chat(&alice, &bob).await);
    let ac = id_of(&srv.open_chat(&alice, &carol).await);
    let from_alice = post_message(&srv, &alice, &ab, "from Alice").await;
    let from_bob = post_message(&srv, &bob, &ab, "from Bob").await;
    let alice_to_carol = post_message(&srv, &alice, &ac, "to Carol").await;
    let carol_to_alice = post_message(&srv, &carol, &ac, "from Carol").await;

    // Bob names every message: only Alice's message in his own chat changes.
    srv.post_json_auth(
        "/api/updateMessagesStatus/",
        &bob.access,
        &json!({ "messageIds": [
            id_of(&from_alice), id_of(&from_bob), id_of(&alice_to_carol), id_of(&carol_to_alice), Uuid::new_v4()
        ] }),
    )
    .await
    .expect(200, json!({ "status": "OK" }));
    let is_read = |message: &Value| {
        let srv = &srv;
        let token = alice.access.clone();
        let path = format!("/api/message/{}/", id_of(message));
        async move {
            let reply = srv.get_auth(&path, &token).await;
            reply.expect_status(200);
            reply.body["isRead"].clone()
        }
    };
    assert_eq!(is_read(&from_alice).await, json!(true));
    assert_eq!(
        is_read(&from_bob).await,
        json!(false),
        "one's own messages are not marked"
    );
    assert_eq!(is_read(&alice_to_carol).await, json!(false), "not Bob's chat");
    assert_eq!(is_read(&carol_to_alice).await, json!(false), "not Bob's chat");

    // Alice marks Bob's message (and her own, ignored).
    srv.post_json_auth(
        "/api/updateMessagesStatus/",
        &alice.access,
        &json!({ "messageIds": [id_of(&from_bob), id_of(&alice_to_carol)] }),
    )
    .await
    .expect(200, json!({ "status": "OK" }));
    assert_eq!(is_read(&from_bob).await, json!(true));
    assert_eq!(is_read(&alice_to_carol).await, json!(false));
    // Again, and an empty list: still OK.
    for ids in [json!([id_of(&from_bob)]), json!([])] {
        srv.post_json_auth(
            "/api/updateMessagesStatus/",
            &alice.access,
            &json!({ "messageIds": ids }),
        )
        .await
        .expect(200, json!({ "status": "OK" }));
    }

    // Bad input: KO, and nothing changes.
    for body in [
        json!({}),
        json!({ "messageIds": id_of(&carol_to_alice) }),
        json!({ "messageIds": ["not-a-uuid"] }),
        json!({ "messageIds": [id_of(&carol_to_alice), 42] }),
        json!({ "messageIds": null }),
        json!({ "ids": [id_of(&carol_to_alice)] }),
    ] {
        srv.post_json_auth("/api/updateMessagesStatus/", &alice.access, &body)
            .await
            .expect(200, json!({ "status": "KO" }));
    }
    assert_eq!(is_read(&carol_to_alice).await, json!(false));
    srv.finish().await;
}

async fn unread_count_drops_after_reads(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = alice_and_bob_in_a_chat(&srv).await;
    let mut from_bob = Vec::new();
    for i in 0..3 {
        from_bob.push(post_message(&srv, &bob, &chat, &format!("b{i}")).await);
    }
    post_message(&srv, &alice, &chat, "a0").await;
    assert_eq!(unread(&srv, &alice, &chat).await, 3);
    assert_eq!(unread(&srv, &bob, &chat).await, 1);

    srv.patch_json_auth(
        &format!("/api/message/{}/", id_of(&from_bob[0])),
        &alice.access,
        &json!({ "isRead": true }),
    )
    .await
    .expect_status(200);
    assert_eq!(unread(&srv, &alice, &chat).await, 2);
    srv.post_json_auth(
        "/api/updateMessagesStatus/",
        &alice.access,
        &json!({ "messageIds": [id_of(&from_bob[1]), id_of(&from_bob[2])] }),
    )
    .await
    .expect(200, json!({ "status": "OK" }));
    assert_eq!(unread(&srv, &alice, &chat).await, 0);
    assert_eq!(unread(&srv, &bob, &chat).await, 1, "Bob's count is his own");

    post_message(&srv, &bob, &chat, "b3").await;
    assert_eq!(unread(&srv, &alice, &chat).await, 1);
    // The detail view carries the same count.
    let detail = srv.get_auth(&format!("/api/chat/{chat}/"), &alice.access).await;
    assert_eq!(detail.body["unreadCount"], json!(1));
    srv.finish().await;
}

// ---- groups ----------------------------------------------------------------------------------

async fn group_chats(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let dave = named(&srv, "dave@example.com", "Dave", "Leroy").await;
    let eve = named(&srv, "eve@example.com", "Eve", "Moreau").await;

    let reply = srv
        .post_json_auth(
            "/api/groups/",
            &alice.access,
            &json!({ "title": "  Team  ", "members": [bob.id, carol.id, alice.id, bob.id] }),
        )
        .await;
    reply.expect_status(201);
    let group = reply.body.clone();
    let g = id_of(&group);
    assert_eq!(group["isGroup"], json!(true));
    assert_eq!(group["title"], json!("Team"));
    assert_eq!(group["lastMessage"], json!([]));
    assert_eq!(group["unreadCount"], json!(0));
    let member_ids = |chat: &Value| -> BTreeSet<String> {
        chat["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members in {chat}"))
            .iter()
            .map(id_of)
            .collect()
    };
    assert_eq!(
        member_ids(&group),
        BTreeSet::from([alice.id.clone(), bob.id.clone(), carol.id.clone()])
    );
    let admin_flag = |chat: &Value, user: &TestUser| -> Value {
        chat["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == json!(user.id))
            .map(|m| m["isAdmin"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(admin_flag(&group, &alice), json!(true));
    assert_eq!(admin_flag(&group, &bob), json!(false));
    let alice_entry = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == json!(alice.id))
        .unwrap()
        .clone();
    assert_eq!(
        alice_entry,
        json!({ "id": alice.id, "first_name": "Alice", "last_name": "Martin", "online": false, "isAdmin": true })
    );

    // Members see it; others do not.
    for user in [&alice, &bob, &carol] {
        let reply = srv.get_auth(&format!("/api/chat/{g}/"), &user.access).await;
        reply.expect_status(200);
        assert_eq!(member_ids(&reply.body), member_ids(&group));
        assert_eq!(chat_entry(&srv, user, &g).await["id"], json!(g));
    }
    srv.get_auth(&format!("/api/chat/{g}/"), &dave.access)
        .await
        .expect(404, not_found());

    // Members talk; unread counts per member.
    let hello = post_message(&srv, &bob, &g, "hello team").await;
    assert_eq!(unread(&srv, &alice, &g).await, 1);
    assert_eq!(unread(&srv, &carol, &g).await, 1);
    assert_eq!(unread(&srv, &bob, &g).await, 0);

    // A non-admin member cannot add or remove members; a non-member is told it does not exist.
    srv.post_json_auth(
        &format!("/api/groups/{g}/members/"),
        &bob.access,
        &json!({ "user": dave.id }),
    )
    .await
    .expect(403, forbidden());
    srv.delete_auth(&format!("/api/groups/{g}/members/{}/", carol.id), &bob.access, None)
        .await
        .expect(403, forbidden());
    srv.post_json_auth(
        &format!("/api/groups/{g}/members/"),
        &eve.access,
        &json!({ "user": eve.id }),
    )
    .await
    .expect(404, not_found());
    srv.get_auth(&format!("/api/chat/{g}/"), &dave.access)
        .await
        .expect(404, not_found());

    // The admin adds Dave: 201 with the new member list; again: 200, nothing changes.
    let reply = srv
        .post_json_auth(
            &format!("/api/groups/{g}/members/"),
            &alice.access,
            &json!({ "user": dave.id }),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(
        member_ids(&reply.body),
        BTreeSet::from([alice.id.clone(), bob.id.clone(), carol.id.clone(), dave.id.clone()])
    );
    assert_eq!(admin_flag(&reply.body, &dave), json!(false));
    let again = srv
        .post_json_auth(
            &format!("/api/groups/{g}/members/"),
            &alice.access,
            &json!({ "user": dave.id }),
        )
        .await;
    again.expect_status(200);
    assert_eq!(member_ids(&again.body).len(), 4);
    srv.post_json_auth(&format!("/api/groups/{g}/members/"), &alice.access, &json!({}))
        .await
        .expect(400, json!({ "user": [REQUIRED] }));
    let ghost = Uuid::new_v4();
    srv.post_json_auth(
        &format!("/api/groups/{g}/members/"),
        &alice.access,
        &json!({ "user": ghost }),
    )
    .await
    .expect(
        400,
        json!({ "members": [format!("Invalid pk \"{ghost}\" - object does not exist.")] }),
    );
    // The new member reads the chat and its history, and starts with nothing unread.
    srv.get_auth(&format!("/api/chat/{g}/"), &dave.access)
        .await
        .expect_status(200);
    let page = history(&srv, &dave, &format!("refChat={g}")).await;
    assert_eq!(page["results"], json!([hello]));
    assert_eq!(unread(&srv, &dave, &g).await, 0);

    // The admin removes Carol: she gets 404 on the chat, its history and its messages.
    let removed = srv
        .delete_auth(&format!("/api/groups/{g}/members/{}/", carol.id), &alice.access, None)
        .await;
    removed.expect_status(204);
    assert_eq!(removed.text, "");
    srv.get_auth(&format!("/api/chat/{g}/"), &carol.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/message/?refChat={g}"), &carol.access)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/message/{}/", id_of(&hello)), &carol.access)
        .await
        .expect(404, not_found());
    srv.post_json_auth(
        "/api/message/",
        &carol.access,
        &json!({ "refChat": g, "message": "still here?" }),
    )
    .await
    .expect(404, not_found());
    let carol_chats = srv.get_auth("/api/chat/", &carol.access).await;
    assert_eq!(carol_chats.body["count"], json!(0));
    let reply = srv.get_auth(&format!("/api/chat/{g}/"), &alice.access).await;
    assert_eq!(
        member_ids(&reply.body),
        BTreeSet::from([alice.id.clone(), bob.id.clone(), dave.id.clone()])
    );
    // Removing her again: she is not a member.
    srv.delete_auth(&format!("/api/groups/{g}/members/{}/", carol.id), &alice.access, None)
        .await
        .expect(404, not_found());

    // A member may leave by themself.
    srv.delete_auth(&format!("/api/groups/{g}/members/{}/", bob.id), &bob.access, None)
        .await
        .expect_status(204);
    srv.get_auth(&format!("/api/chat/{g}/"), &bob.access)
        .await
        .expect(404, not_found());

    // Only an admin deletes a group; a member is refused, an outsider told it does not exist.
    srv.delete_auth(&format!("/api/chat/{g}/"), &dave.access, None)
        .await
        .expect(403, forbidden());
    srv.delete_auth(&format!("/api/chat/{g}/"), &carol.access, None)
        .await
        .expect(404, not_found());
    srv.get_auth(&format!("/api/chat/{g}/"), &dave.access)
        .await
        .expect_status(200);
    srv.delete_auth(&format!("/api/chat/{g}/"), &alice.access, None)
        .await
        .expect_status(204);
    for user in [&alice, &dave] {
        srv.get_auth(&format!("/api/chat/{g}/"), &user.access)
            .await
            .expect(404, not_found());
    }

    // Creating a group: a title is required; members must be existing users.
    srv.post_json_auth("/api/groups/", &alice.access, &json!({ "members": [bob.id] }))
        .await
        .expect(400, json!({ "title": [REQUIRED] }));
    srv.post_json_auth(
        "/api/groups/",
        &alice.access,
        &json!({ "title": "Ghosts", "members": [ghost] }),
    )
    .await
    .expect(
        400,
        json!({ "members": [format!("Invalid pk \"{ghost}\" - object does not exist.")] }),
    );
    srv.post_json_auth(
        "/api/groups/",
        &alice.access,
        &json!({ "title": "Bad", "members": ["bob"] }),
    )
    .await
    .expect(400, json!({ "members": ["Enter a list of valid UUIDs."] }));
    // Group membership changes do not work on a two-person chat.
    let pair = id_of(&srv.open_chat(&alice, &eve).await);
    srv.post_json_auth(
        &format!("/api/groups/{pair}/members/"),
        &alice.access,
        &json!({ "user": dave.id }),
    )
    .await
    .expect(400, json!({ "detail": "Members of a two-person chat cannot change." }));
    srv.finish().await;
}

// ---- edges -----------------------------------------------------------------------------------

async fn deleted_user_shows_as_null(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = alice_and_bob_in_a_chat(&srv).await;
    let message = post_message(&srv, &bob, &chat, "bye").await;
    srv.delete_auth(
        "/auth/users/me/",
        &bob.access,
        Some(&json!({ "current_password": PASSWORD })),
    )
    .await
    .expect_status(204);

    let entry = chat_entry(&srv, &alice, &chat).await;
    assert_eq!(entry["fromUser"], brief(&alice, "Alice", "Martin"));
    assert_eq!(entry["toUser"], Value::Null);
    let mut orphan = message.clone();
    orphan["author"] = Value::Null;
    assert_eq!(entry["lastMessage"], json!([orphan.clone()]));
    let page = history(&srv, &alice, &format!("refChat={chat}")).await;
    assert_eq!(page["results"], json!([orphan]));
    // The chat still works for the one who is left.
    post_message(&srv, &alice, &chat, "still here").await;
    srv.finish().await;
}

async fn post_message_retry_with_client_id(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = alice_and_bob_in_a_chat(&srv).await;
    let body = json!({ "refChat": chat, "message": "once", "clientId": "c-1" });
    let first = srv.post_json_auth("/api/message/", &alice.access, &body).await;
    first.expect_status(201);
    assert_eq!(keys(&first.body), key_set(&MESSAGE_KEYS));
    // A retry answers exactly as the first time did and stores nothing.
    srv.post_json_auth("/api/message/", &alice.access, &body)
        .await
        .expect(201, first.body.clone());
    // The same clientId from the other participant is another message.
    let other = srv.post_json_auth("/api/message/", &bob.access, &body).await;
    other.expect_status(201);
    assert_ne!(id_of(&other.body), id_of(&first.body));
    let page = history(&srv, &alice, &format!("refChat={chat}")).await;
    assert_eq!(page["count"], json!(2));
    assert_eq!(page["results"], json!([other.body, first.body]));
    srv.finish().await;
}

async fn concurrent_create_chat_makes_one_chat(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob) = alice_and_bob(&srv).await;
    let bodies: Vec<(&TestUser, Value)> = (0..10)
        .map(|i| {
            let (me, other) = if i % 2 == 0 { (&alice, &bob) } else { (&bob, &alice) };
            (me, json!({ "refUser": me.id, "chatWithUser": other.id }))
        })
        .collect();
    let requests = bodies
        .iter()
        .map(|(me, body)| srv.post_json_auth("/api/createChat/", &me.access, body));
    let replies = futures_util::future::join_all(requests).await;
    let ids: BTreeSet<String> = replies
        .iter()
        .map(|reply| {
            reply.expect_status(201);
            id_of(&reply.body)
        })
        .collect();
    assert_eq!(ids.len(), 1, "one chat for the pair: {ids:?}");
    for user in [&alice, &bob] {
        let reply = srv.get_auth("/api/chat/", &user.access).await;
        assert_eq!(reply.body["count"], json!(1));
    }
    srv.finish().await;
}

async fn paths_without_trailing_slash(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob) = alice_and_bob(&srv).await;
    let reply = srv
        .post_json_auth(
            "/api/createChat",
            &alice.access,
            &json!({ "refUser": alice.id, "chatWithUser": bob.id }),
        )
        .await;
    reply.expect_status(201);
    let chat = id_of(&reply.body);
    let reply = srv
        .post_json_auth(
            "/api/message",
            &bob.access,
            &json!({ "refChat": chat, "message": "no slash" }),
        )
        .await;
    reply.expect_status(201);
    let message = reply.body.clone();
    srv.get_auth(&format!("/api/message/{}", id_of(&message)), &alice.access)
        .await
        .expect(200, message.clone());
    let page = srv
        .get_auth(&format!("/api/message?refChat={chat}"), &alice.access)
        .await;
    page.expect_status(200);
    assert_eq!(page.body["results"], json!([message]));
    let reply = srv.get_auth(&format!("/api/chat/{chat}"), &alice.access).await;
    reply.expect_status(200);
    assert_eq!(id_of(&reply.body), chat);
    let reply = srv.get_auth("/api/chat", &alice.access).await;
    assert_eq!(reply.body["count"], json!(1));
    let reply = srv.get_auth("/api/searchUser?search=bob", &alice.access).await;
    assert_eq!(result_ids(&reply.body), BTreeSet::from([bob.id.clone()]));
    srv.finish().await;
}

// ---- command line ----------------------------------------------------------------------------

/// Runs the built `causerie` binary on a SQLite file; returns (success, stdout, stderr).
fn causerie_cli(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_causerie"))
        .args(args)
        .current_dir(dir)
        .env_remove("CAUSERIE_CONFIG")
        .env_remove("CAUSERIE_NEW_PASSWORD")
        .env_remove("CAUSERIE_REDIS_URL")
        .env("CAUSERIE_DATABASE_URL", format!("sqlite://{}/cli.db", dir.display()))
        .env("CAUSERIE_SECRET_KEY", "0123456789abcdef0123456789abcdef-cli")
        .env("CAUSERIE_LOG_LEVEL", "warn")
        .output()
        .expect("running the causerie binary");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[track_caller]
fn cli_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = causerie_cli(dir, args);
    assert!(ok, "causerie {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}");
    stdout
}

#[track_caller]
fn cli_fails(dir: &std::path::Path, args: &[&str], wanted: &str) {
    let (ok, stdout, stderr) = causerie_cli(dir, args);
    assert!(!ok, "causerie {args:?} should fail; stdout: {stdout}");
    assert!(
        stderr.contains(wanted),
        "causerie {args:?}: expected {wanted:?} in stderr: {stderr}"
    );
}

#[track_caller]
fn printed_uuid(stdout: &str) -> Uuid {
    Uuid::parse_str(stdout.trim()).unwrap_or_else(|_| panic!("expected a uuid, got {stdout:?}"))
}

/// The admin commands, on SQLite only: users and chats from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_users_and_chats() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let a = printed_uuid(&cli_ok(
        dir,
        &[
            "users",
            "create",
            "a@x.io",
            "--password",
            PASSWORD,
            "--first-name",
            "Ann",
        ],
    ));
    let b = printed_uuid(&cli_ok(dir, &["users", "create", "b@x.io", "--password", PASSWORD]));
    assert_ne!(a, b);
    cli_fails(
        dir,
        &["users", "create", "A@X.io", "--password", PASSWORD],
        "user with this email address already exists.",
    );
    cli_fails(
        dir,
        &["users", "create", "c@x.io", "--password", "password"],
        "This password is too common.",
    );

    // The pair's chat: created once, found again from either side.
    let chat = printed_uuid(&cli_ok(dir, &["chats", "create", "--from", "a@x.io", "--to", "b@x.io"]));
    assert_eq!(
        printed_uuid(&cli_ok(dir, &["chats", "create", "--from", "a@x.io", "--to", "b@x.io"])),
        chat
    );
    assert_eq!(
        printed_uuid(&cli_ok(dir, &["chats", "create", "--from", "B@x.io", "--to", "a@x.io"])),
        chat
    );
    cli_fails(
        dir,
        &["chats", "create", "--from", "a@x.io", "--to", "a@x.io"],
        "a chat needs two different users",
    );
    cli_fails(
        dir,
        &["chats", "create", "--from", "a@x.io", "--to", "nobody@x.io"],
        "no user with email nobody@x.io",
    );
    let list = cli_ok(dir, &["chats", "list"]);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "one chat listed:\n{list}");
    let fields: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        fields[..4],
        [chat.to_string().as_str(), &a.to_string(), &b.to_string(), "0"]
    );

    // Users: listed with their state; a deactivated user is shown so.
    let users_of = |listing: &str| -> Vec<(String, String, String)> {
        listing
            .lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect()
    };
    let listing = cli_ok(dir, &["users", "list"]);
    assert_eq!(
        users_of(&listing),
        vec![
            (a.to_string(), "a@x.io".into(), "true".into()),
            (b.to_string(), "b@x.io".into(), "true".into()),
        ],
        "{listing}"
    );
    assert!(listing.contains("Ann"), "{listing}");
    assert_eq!(
        cli_ok(dir, &["users", "deactivate", "b@x.io"]).trim(),
        "b@x.io deactivated."
    );
    let listing = cli_ok(dir, &["users", "list"]);
    assert_eq!(
        users_of(&listing),
        vec![
            (a.to_string(), "a@x.io".into(), "true".into()),
            (b.to_string(), "b@x.io".into(), "false".into()),
        ],
        "{listing}"
    );
    cli_fails(dir, &["users", "deactivate", "zed@x.io"], "no user with email zed@x.io");

    // What the commands wrote is what the server reads.
    let db = causerie::testing::store::Db::connect(&format!("sqlite://{}/cli.db", dir.display()), 1)
        .await
        .expect("opening the CLI's database");
    let row = users::by_email(&db, "b@x.io").await.unwrap().expect("b@x.io stored");
    assert_eq!(row.id.0, b);
    assert!(!row.is_active);
    let stored = causerie::testing::store::chats::pair(&db, b.into(), a.into())
        .await
        .unwrap()
        .expect("the pair's chat");
    assert_eq!(stored.id.0, chat);
    assert_eq!((stored.from_user, stored.to_user), (Some(a.into()), Some(b.into())));
    let members = causerie::testing::store::chats::members(&db, chat.into())
        .await
        .unwrap();
    assert_eq!(
        members.iter().map(|m| m.user_id.0).collect::<BTreeSet<_>>(),
        BTreeSet::from([a, b])
    );
}

/// What schemathesis found refused where DRF accepts: integral floats for integers, repeated
/// form keys for lists, an empty form value for a nullable field.
async fn bodies_read_as_drf_reads_them(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, carol) = alice_bob_and_carol(&srv).await;
    let chat = id_of(&srv.open_chat(&alice, &bob).await);

    let sent = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "float type", "type": 0.0, "extraData": "" }),
        )
        .await;
    sent.expect_status(201);
    assert_eq!(sent.body["type"], json!(0));
    let refused = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "half type", "type": 0.5, "extraData": "" }),
        )
        .await;
    refused.expect(400, json!({ "type": ["A valid integer is required."] }));

    let form = |body: String| {
        let auth = format!("Bearer {}", alice.access);
        let srv = &srv;
        async move {
            srv.request_raw(
                Method::POST,
                "/api/groups/",
                Some("application/x-www-form-urlencoded"),
                body,
                &[("Authorization", auth.as_str())],
            )
            .await
        }
    };
    let group = form(format!("title=Form+group&members={}&members={}", bob.id, carol.id)).await;
    group.expect_status(201);
    assert_eq!(group.body["members"].as_array().map(Vec::len), Some(3));
    let pair = form(format!("title=Just+Bob&members={}", bob.id)).await;
    pair.expect_status(201);
    assert_eq!(pair.body["members"].as_array().map(Vec::len), Some(2));

    let patched = srv
        .request_raw(
            Method::PATCH,
            &format!("/api/user/{}/", alice.id),
            Some("application/x-www-form-urlencoded"),
            "lastConnexionDate=",
            &[("Authorization", format!("Bearer {}", alice.access).as_str())],
        )
        .await;
    patched.expect_status(200);
    assert_eq!(patched.body["lastConnexionDate"], json!(null));
    srv.finish().await;
}
