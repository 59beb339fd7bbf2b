//! Push notifications (issue 12), as clients and providers see them: `/devices/` with
//! fcm-django's shapes, muting, and the outbox delivering to a fake FCM and a fake Web Push
//! service — once per coalescing window, never to an online or muted recipient, retried on
//! 429/503, devices deactivated when the provider forgets them, nothing lost to a kill -9,
//! nothing sent twice by two instances. On SQLite and PostgreSQL.

#[macro_use]
mod common;
#[path = "common/push.rs"]
mod fakes;

use std::future::Future;
use std::time::Duration;

use causerie::testing;
use causerie::wire::v2::{Command, FrameType, Mute, ServerFrame};
use common::{Backend, TestServer, TestUser, PASSWORD};
use fakes::{Answer, FakeFcm, FakeWebPush};
use serde_json::{json, Value};

backend_tests!(
    devices_register_list_move_and_delete,
    device_bodies_are_checked_like_drf,
    concurrent_registrations_are_all_stored,
    an_offline_recipient_gets_one_push_per_window_with_the_badge,
    an_online_recipient_is_not_pushed,
    a_muted_chat_is_not_pushed,
    retries_429_and_503_then_sends_once,
    gives_up_after_push_max_attempts,
    an_unregistered_token_is_deactivated,
    web_push_is_encrypted_for_the_subscription,
    push_off_still_stores_devices,
    two_instances_send_each_job_once,
);

/// Polls `check` until it holds (at most 30 s); no timing is asserted, this only waits.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Every outbox job of `user` is finished (none pending) and there is at least one.
async fn settled(srv: &TestServer, user: &TestUser) -> Vec<(String, i32)> {
    let mut states = Vec::new();
    eventually("the user's push jobs to finish", || {
        let db = srv.db().clone();
        let id = user.user_id();
        async move {
            let now = testing::push::outbox(&db, id).await;
            let done = !now.is_empty() && now.iter().all(|(s, _)| s != "pending");
            done
        }
    })
    .await;
    states.extend(testing::push::outbox(srv.db(), user.user_id()).await);
    states
}

async fn start(backend: Backend, fcm: Option<&FakeFcm>, web: Option<&FakeWebPush>, coalesce_ms: u64) -> TestServer {
    TestServer::start_with(backend, |c| {
        if let Some(fcm) = fcm {
            fcm.configure(c);
        }
        if let Some(web) = web {
            web.configure(c);
        }
        c.push_coalesce_ms = coalesce_ms;
    })
    .await
}

async fn register(srv: &TestServer, user: &TestUser, token: &str, kind: &str) -> Value {
    let reply = srv
        .post_json_auth(
            "/devices/",
            &user.access,
            &json!({ "name": "phone", "registration_id": token, "active": true, "type": kind }),
        )
        .await;
    reply.expect_status(201);
    reply.body.clone()
}

async fn say(srv: &TestServer, author: &TestUser, chat: &str, text: &str) {
    srv.post_json_auth(
        "/api/message/",
        &author.access,
        &json!({ "refChat": chat, "message": text, "type": 0, "extraData": "" }),
    )
    .await
    .expect_status(201);
}

fn encoded(registration_id: &str) -> String {
    url::form_urlencoded::byte_serialize(registration_id.as_bytes()).collect()
}

async fn devices_register_list_move_and_delete(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;

    let created = srv
        .post_json_auth(
            "/devices/",
            &alice.access,
            &json!({ "name": "Pixel", "registration_id": "tok-1", "device_id": "d1", "active": true,
                     "type": "android", "user": bob.id }),
        )
        .await;
    created.expect_status(201);
    assert_eq!(
        common::ordered::Ordered::parse(&created.text).keys(),
        [
            "id",
            "name",
            "registration_id",
            "device_id",
            "active",
            "date_created",
            "type"
        ]
    );
    assert_eq!(created.body["name"], "Pixel");
    assert_eq!(created.body["registration_id"], "tok-1");
    assert_eq!(created.body["device_id"], "d1");
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["type"], "android");
    assert!(created.body["id"].is_i64());

    // The owner is the caller, whatever `user` said.
    let listed = srv.get_auth("/devices/", &alice.access).await;
    listed.expect_status(200);
    assert_eq!(listed.body["count"], 1);
    assert_eq!(listed.body["results"][0]["registration_id"], "tok-1");
    assert_eq!(srv.get_auth("/devices/", &bob.access).await.body["count"], 0);

    // The same active token again.
    srv.post_json_auth(
        "/devices/",
        &alice.access,
        &json!({ "registration_id": "tok-1", "type": "android" }),
    )
    .await
    .expect(400, json!({ "registration_id": ["This field must be unique."] }));

    // Detail, owner only.
    srv.get_auth("/devices/tok-1/", &alice.access).await.expect_status(200);
    srv.get_auth("/devices/tok-1/", &bob.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get_auth("/devices/nope/", &alice.access).await.expect_status(404);

    // PATCH and PUT.
    let patched = srv
        .patch_json_auth(
            "/devices/tok-1/",
            &alice.access,
            &json!({ "active": false, "name": "Old" }),
        )
        .await;
    patched.expect_status(200);
    assert_eq!(
        (patched.body["active"].clone(), patched.body["name"].clone()),
        (json!(false), json!("Old"))
    );
    assert_eq!(patched.body["device_id"], "d1");
    // An inactive token of one's own may be registered again.
    let again = register(&srv, &alice, "tok-1", "android").await;
    assert_eq!(again["active"], true);
    assert_eq!(again["id"], created.body["id"]);
    let put = srv
        .put_json_auth(
            "/devices/tok-1/",
            &alice.access,
            &json!({ "registration_id": "tok-1", "type": "ios" }),
        )
        .await;
    put.expect_status(200);
    assert_eq!(
        (put.body["type"].clone(), put.body["name"].clone()),
        (json!("ios"), Value::Null)
    );

    // Bob registers the same token: it moves to him.
    let moved = register(&srv, &bob, "tok-1", "ios").await;
    assert_eq!(moved["registration_id"], "tok-1");
    assert_eq!(srv.get_auth("/devices/", &alice.access).await.body["count"], 0);
    srv.get_auth("/devices/tok-1/", &alice.access).await.expect_status(404);
    srv.get_auth("/devices/tok-1/", &bob.access).await.expect_status(200);

    // Delete, owner only.
    srv.delete_auth("/devices/tok-1/", &alice.access, None)
        .await
        .expect_status(404);
    srv.delete_auth("/devices/tok-1/", &bob.access, None)
        .await
        .expect_status(204);
    srv.get_auth("/devices/tok-1/", &bob.access).await.expect_status(404);

    // A web device is looked up by its (URL-encoded) subscription.
    let subscription = json!({
        "endpoint": "https://push.example.net/send/abc",
        "keys": { "p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
                  "auth": "BTBZMqHH6r4Tts7J_aSIgg" }
    })
    .to_string();
    register(&srv, &alice, &subscription, "web").await;
    let path = format!("/devices/{}/", encoded(&subscription));
    srv.get_auth(&path, &alice.access).await.expect_status(200);

    srv.get("/devices/").await.expect_status(401);
    srv.finish().await;
}

async fn device_bodies_are_checked_like_drf(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    srv.post_json_auth("/devices/", &alice.access, &json!({})).await.expect(
        400,
        json!({ "registration_id": ["This field is required."], "type": ["This field is required."] }),
    );
    srv.post_json_auth(
        "/devices/",
        &alice.access,
        &json!({ "registration_id": "t", "type": "nokia", "active": "maybe" }),
    )
    .await
    .expect(
        400,
        json!({ "active": ["Must be a valid boolean."], "type": ["\"nokia\" is not a valid choice."] }),
    );
    let refused = srv
        .post_json_auth(
            "/devices/",
            &alice.access,
            &json!({ "registration_id": "not-a-subscription", "type": "web" }),
        )
        .await;
    refused.expect_status(400);
    assert!(refused.body["registration_id"][0]
        .as_str()
        .unwrap()
        .contains("Push API subscription"));
    assert_eq!(srv.get_auth("/devices/", &alice.access).await.body["count"], 0);
    srv.finish().await;
}

/// Registrations by many phones at once all land: a registration reads (is the token known?)
/// before it writes, and on SQLite such a transaction once failed with 503 when another
/// connection committed between its read and its write.
async fn concurrent_registrations_are_all_stored(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut users = Vec::new();
    for n in 0..6 {
        users.push(srv.quick_user(&format!("phone{n}@example.com"), PASSWORD).await);
    }
    let registrations = users.iter().enumerate().flat_map(|(n, user)| {
        let srv = &srv;
        (0..8).map(move |k| async move {
            let body = json!({ "registration_id": format!("tok-{n}-{k}"), "type": "android" });
            srv.post_json_auth("/devices/", &user.access, &body).await.status
        })
    });
    let statuses = futures_util::future::join_all(registrations).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    for user in &users {
        assert_eq!(srv.get_auth("/devices/", &user.access).await.body["count"], 8);
    }
}

async fn an_offline_recipient_gets_one_push_per_window_with_the_badge(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 3000).await;
    let alice = srv
        .quick_user_named("alice@example.com", PASSWORD, "Alice", "Martin")
        .await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    register(&srv, &bob, "bob-phone", "android").await;
    register(&srv, &bob, "bob-tablet", "ios").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    // Sent together, so the three land well inside one window even on a loaded CI machine
    // (sent one after another they once took longer than the window there).
    futures_util::future::join_all(["one", "two", "three"].map(|text| say(&srv, &alice, &chat, text))).await;
    let states = settled(&srv, &bob).await;
    assert_eq!(states.len(), 3, "{states:?}");
    assert!(states.iter().all(|(s, _)| s == "sent"), "{states:?}");
    // One push per device for the three messages.
    for token in ["bob-phone", "bob-tablet"] {
        let sends = fcm.sends_to(token);
        assert_eq!(sends.len(), 1, "{token}: {sends:?}");
        let m = &sends[0];
        assert_eq!(m["notification"]["title"], "Alice Martin");
        assert_eq!(m["notification"]["body"], "3 new messages");
        assert_eq!(m["apns"]["payload"]["aps"]["badge"], 3);
        assert_eq!(m["android"]["priority"], "high");
        assert_eq!(m["android"]["collapse_key"], chat.as_str());
        assert_eq!(m["apns"]["headers"]["apns-collapse-id"], chat.as_str());
        assert_eq!(m["data"]["chat"], chat.as_str());
        assert_eq!(m["data"]["count"], "3");
    }
    // Alice, the author, is not notified (she has no device either), and the one access token
    // was reused.
    assert!(testing::push::outbox(srv.db(), alice.user_id()).await.is_empty());
    assert!(fcm.refused_assertions().is_empty(), "{:?}", fcm.refused_assertions());
    assert_eq!(fcm.tokens_issued(), 1);

    // A later message is a push of its own, with its text, and the badge counts it.
    say(&srv, &alice, &chat, "four").await;
    eventually("the second push", || async { fcm.sends_to("bob-phone").len() == 2 }).await;
    let second = &fcm.sends_to("bob-phone")[1];
    assert_eq!(second["notification"]["body"], "four");
    assert_eq!(second["apns"]["payload"]["aps"]["badge"], 4);
    // Reading lowers the badge as the API counts it.
    let listed = srv.get_auth("/api/chat/", &bob.access).await;
    assert_eq!(listed.body["results"][0]["unreadCount"], 4);
    srv.finish().await;
}

async fn an_online_recipient_is_not_pushed(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 200).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    register(&srv, &bob, "bob-phone", "android").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    let socket = common::ws::connect(&srv.ws_url(&format!("/ws/chat/{chat}/?token={}", bob.access)), None).await;
    eventually("Bob online", || async {
        srv.user_row(&bob.id).await.is_some_and(|u| u.online)
    })
    .await;
    say(&srv, &alice, &chat, "you are here").await;
    let states = settled(&srv, &bob).await;
    assert_eq!(states, vec![("dropped".to_string(), 1)]);
    assert_eq!(fcm.attempts_to("bob-phone"), 0);
    socket.close().await;
    // Once Bob is gone, he is pushed again.
    eventually("Bob offline", || async {
        srv.user_row(&bob.id).await.is_some_and(|u| !u.online)
    })
    .await;
    say(&srv, &alice, &chat, "now you are not").await;
    eventually("the push", || async { fcm.sends_to("bob-phone").len() == 1 }).await;
    srv.finish().await;
}

async fn a_muted_chat_is_not_pushed(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 200).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let carol = srv.quick_user("carol@example.com", PASSWORD).await;
    register(&srv, &bob, "bob-phone", "android").await;
    let muted = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    let open = srv.open_chat(&carol, &bob).await["id"].as_str().unwrap().to_string();

    // Bob mutes the chat with Alice (REST), shown in his chat JSON only.
    let path = format!("/api/chat/{muted}/");
    let reply = srv.patch_json_auth(&path, &bob.access, &json!({ "muted": true })).await;
    reply.expect_status(200);
    assert_eq!(reply.body["muted"], true);
    assert_eq!(srv.get_auth(&path, &alice.access).await.body["muted"], false);
    srv.patch_json_auth(&path, &bob.access, &json!({}))
        .await
        .expect(400, json!({ "muted": ["This field is required."] }));
    srv.patch_json_auth(&path, &carol.access, &json!({ "muted": true }))
        .await
        .expect_status(404);

    say(&srv, &alice, &muted, "shh").await;
    say(&srv, &carol, &open, "hello").await;
    eventually("the open chat's push", || async {
        fcm.sends_to("bob-phone").len() == 1
    })
    .await;
    let states = settled(&srv, &bob).await;
    assert_eq!(
        states,
        vec![("sent".to_string(), 1)],
        "only the open chat's message has a job"
    );
    assert_eq!(fcm.sends_to("bob-phone")[0]["data"]["chat"], open.as_str());

    // The v2 command unmutes; the chat is pushed again.
    let mut socket = common::ws::connect(
        &srv.ws_url(&format!("/ws/chat/{muted}/?token={}", bob.access)),
        Some("causerie.v2"),
    )
    .await;
    socket
        .send_frame(
            &Command::Mute(Mute {
                chat: muted.parse().unwrap(),
                muted: false,
            })
            .with_ref("m1"),
        )
        .await;
    let frame = socket.recv_until(|f| f.kind() == FrameType::Muted).await;
    let ServerFrame::Muted(answer) = frame else {
        unreachable!()
    };
    assert!(!answer.muted);
    assert_eq!(answer.reference, Some(json!("m1")));
    // A `mute` without `muted` is refused and changes nothing.
    socket
        .send_text(&json!({ "type": "mute", "chat": muted, "ref": "m2" }).to_string())
        .await;
    let refusal = socket.recv_until(|f| f.kind() == FrameType::Error).await;
    let ServerFrame::Error(refusal) = refusal else {
        unreachable!()
    };
    assert_eq!(refusal.code, "missing_field");
    assert_eq!(refusal.reference, Some(json!("m2")));
    socket
        .send_frame(
            &Command::Mute(Mute {
                chat: muted.parse().unwrap(),
                muted: false,
            })
            .with_ref("m3"),
        )
        .await;
    let frame = socket.recv_until(|f| f.kind() == FrameType::Muted).await;
    let ServerFrame::Muted(answer) = frame else {
        unreachable!()
    };
    assert!(!answer.muted);
    assert_eq!(answer.reference, Some(json!("m3")));
    socket.close().await;
    assert_eq!(srv.get_auth(&path, &bob.access).await.body["muted"], false);
    eventually("Bob offline", || async {
        srv.user_row(&bob.id).await.is_some_and(|u| !u.online)
    })
    .await;
    say(&srv, &alice, &muted, "back").await;
    eventually("the unmuted chat's push", || async {
        fcm.sends_to("bob-phone").len() == 2
    })
    .await;
    srv.finish().await;
}

async fn retries_429_and_503_then_sends_once(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 100).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    register(&srv, &bob, "bob-phone", "android").await;
    fcm.script(
        "bob-phone",
        &[
            Answer::TooManyRequests { retry_after_secs: 1 },
            Answer::Unavailable,
            Answer::Ok,
        ],
    );
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    say(&srv, &alice, &chat, "eventually").await;
    let states = settled(&srv, &bob).await;
    assert_eq!(states, vec![("sent".to_string(), 3)]);
    assert_eq!(fcm.attempts_to("bob-phone"), 3);
    assert_eq!(fcm.sends_to("bob-phone").len(), 1);

    srv.finish().await;
}

async fn gives_up_after_push_max_attempts(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = TestServer::start_with(backend, |c| {
        fcm.configure(c);
        c.push_coalesce_ms = 100;
        c.push_max_attempts = 2;
    })
    .await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let carol = srv.quick_user("carol@example.com", PASSWORD).await;
    register(&srv, &carol, "carol-phone", "android").await;
    fcm.script("carol-phone", &[Answer::Unavailable]);
    let chat = srv.open_chat(&alice, &carol).await["id"].as_str().unwrap().to_string();
    say(&srv, &alice, &chat, "never").await;
    let states = settled(&srv, &carol).await;
    assert_eq!(states, vec![("failed".to_string(), 2)]);
    assert_eq!(fcm.attempts_to("carol-phone"), 2);
    assert!(fcm.sends().is_empty());
    // A temporary failure leaves the device active.
    assert_eq!(
        srv.get_auth("/devices/", &carol.access).await.body["results"][0]["active"],
        true
    );
    srv.finish().await;
}

async fn an_unregistered_token_is_deactivated(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 100).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    register(&srv, &bob, "stale", "android").await;
    register(&srv, &bob, "bad", "ios").await;
    register(&srv, &bob, "fresh", "ios").await;
    fcm.script("stale", &[Answer::Unregistered]);
    fcm.script("bad", &[Answer::InvalidArgument]);
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    say(&srv, &alice, &chat, "hi").await;
    let states = settled(&srv, &bob).await;
    assert_eq!(states, vec![("sent".to_string(), 1)]);
    let devices = srv.get_auth("/devices/", &bob.access).await.body["results"].clone();
    let active: Vec<(String, bool)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["registration_id"].as_str().unwrap().to_string(),
                d["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        active,
        vec![("stale".into(), false), ("bad".into(), false), ("fresh".into(), true)]
    );
    // The next message goes only to the device left.
    say(&srv, &alice, &chat, "again").await;
    eventually("the second push", || async { fcm.sends_to("fresh").len() == 2 }).await;
    assert_eq!(fcm.attempts_to("stale"), 1);
    assert_eq!(fcm.attempts_to("bad"), 1);
    srv.finish().await;
}

async fn web_push_is_encrypted_for_the_subscription(backend: Backend) {
    let web = FakeWebPush::start().await;
    let srv = start(backend, None, Some(&web), 100).await;
    let alice = srv
        .quick_user_named("alice@example.com", PASSWORD, "Alice", "Martin")
        .await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    // What the chat page needs: the VAPID key and its service worker.
    let key = srv.get_auth("/api/push/vapid/", &bob.access).await;
    key.expect_status(200);
    assert_eq!(
        key.body["publicKey"].as_str().unwrap().len(),
        87,
        "65 bytes in base64url"
    );
    let worker = srv.get("/static/web/sw.js").await;
    worker.expect_status(200);
    assert_eq!(worker.header("service-worker-allowed"), Some("/chat/"));
    assert!(worker.text.contains("showNotification"));

    let (browser, subscription) = web.subscribe();
    register(&srv, &bob, &subscription, "web").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    say(&srv, &alice, &chat, "über encrypted").await;
    eventually("the web push", || async { web.received(&browser).len() == 1 }).await;
    assert!(web.refused().is_empty(), "{:?}", web.refused());
    let payload = &web.received(&browser)[0];
    assert_eq!(payload["title"], "Alice Martin");
    assert_eq!(payload["body"], "über encrypted");
    assert_eq!(payload["badge"], 1);
    assert_eq!(payload["data"]["chat"], chat.as_str());

    // The browser dropped the subscription: 410 deactivates the device.
    web.expire(&browser);
    say(&srv, &alice, &chat, "gone?").await;
    eventually("the device deactivated", || async {
        srv.get_auth("/devices/", &bob.access).await.body["results"][0]["active"] == false
    })
    .await;
    srv.finish().await;
}

async fn push_off_still_stores_devices(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    register(&srv, &bob, "bob-phone", "android").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    say(&srv, &alice, &chat, "no push here").await;
    // No provider: no outbox rows pile up.
    assert!(testing::push::outbox(srv.db(), bob.user_id()).await.is_empty());
    assert_eq!(srv.get_auth("/devices/", &bob.access).await.body["count"], 1);
    srv.get_auth("/api/push/vapid/", &bob.access).await.expect_status(404);
    srv.finish().await;
}

async fn two_instances_send_each_job_once(backend: Backend) {
    // On PostgreSQL the claims race through `FOR UPDATE SKIP LOCKED`; on SQLite (two servers
    // on one file) through its single writer. Either way each job is claimed once.
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 50).await;
    let peer = srv
        .start_peer(|c| {
            fcm.configure(c);
            c.push_coalesce_ms = 50;
        })
        .await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let mut people = Vec::new();
    for i in 0..12 {
        let user = srv.quick_user(&format!("user{i}@example.com"), PASSWORD).await;
        register(&srv, &user, &format!("token-{i}"), "android").await;
        let chat = srv.open_chat(&alice, &user).await["id"].as_str().unwrap().to_string();
        people.push((user, chat));
    }
    // Messages arrive through both instances, each a push of its own (a window apart).
    for round in 0..3 {
        for (i, (_, chat)) in people.iter().enumerate() {
            let via = if i % 2 == 0 { &srv } else { &peer };
            say(via, &alice, chat, &format!("round {round}")).await;
        }
        for (user, _) in &people {
            settled(&srv, user).await;
        }
    }
    let mut jobs = 0;
    for (i, (user, _)) in people.iter().enumerate() {
        let states = testing::push::outbox(srv.db(), user.user_id()).await;
        assert!(states.iter().all(|(s, _)| s == "sent"), "{states:?}");
        jobs += states.len();
        let token = format!("token-{i}");
        // One push per round, each job claimed once, whichever instance claimed it.
        assert_eq!(fcm.sends_to(&token).len(), 3, "{token}");
        assert_eq!(fcm.attempts_to(&token), 3, "{token}");
        assert!(states.iter().all(|(_, claims)| *claims == 1), "{states:?}");
    }
    assert_eq!(jobs, 36);
    peer.finish().await;
    srv.finish().await;
}

// ---- kill -9 between commit and send (the real binary) ------------------------------------

backend_tests!(a_push_committed_before_a_kill_is_sent_once_after_restart);

/// `causerie serve` on `database_url`, pushing to `fcm`.
fn spawn_server(
    dir: &std::path::Path,
    database_url: &str,
    secret: &str,
    fcm: &FakeFcm,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_causerie"));
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir)
        .env("CAUSERIE_DATABASE_URL", database_url)
        .env("CAUSERIE_SECRET_KEY", secret)
        .env("CAUSERIE_RATE_REGISTER_PER_HOUR", "10000")
        .env("CAUSERIE_RATE_LOGIN_PER_MINUTE", "10000")
        .env("CAUSERIE_PUSH_COALESCE_MS", "4000")
        .env("CAUSERIE_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in fcm.env() {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawning causerie serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reading the listening line");
    let addr = line
        .trim()
        .strip_prefix("Causerie listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, addr)
}

async fn call(base: &str, path: &str, token: Option<&str>, body: &Value) -> Value {
    let mut request = reqwest::Client::new().post(format!("{base}{path}")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("JSON")
}

async fn account(base: &str, email: &str) -> (String, String) {
    let created = call(
        base,
        "/auth/users/",
        None,
        &json!({ "email": email, "password": PASSWORD }),
    )
    .await;
    let tokens = call(
        base,
        "/auth/jwt/create/",
        None,
        &json!({ "email": email, "password": PASSWORD }),
    )
    .await;
    (
        created["id"].as_str().unwrap().to_string(),
        tokens["access"].as_str().unwrap().to_string(),
    )
}

async fn a_push_committed_before_a_kill_is_sent_once_after_restart(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(common::PgDatabase::create(&std::env::var(common::POSTGRES_ENV).unwrap()).await),
    };
    let database_url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}/push.db", dir.path().display()),
    };
    let secret = "k".repeat(40);
    let (mut first, base) = spawn_server(dir.path(), &database_url, &secret, &fcm);
    let (alice, alice_token) = account(&base, "alice@example.com").await;
    let (bob, bob_token) = account(&base, "bob@example.com").await;
    call(
        &base,
        "/devices/",
        Some(&bob_token),
        &json!({ "registration_id": "bob-phone", "type": "android" }),
    )
    .await;
    let chat = call(
        &base,
        "/api/createChat/",
        Some(&alice_token),
        &json!({ "refUser": alice, "chatWithUser": bob }),
    )
    .await;
    let chat = chat["id"].as_str().unwrap().to_string();
    // 201: the message and its push job are committed; the push is due 4 s later.
    call(
        &base,
        "/api/message/",
        Some(&alice_token),
        &json!({ "refChat": chat, "message": "survive this", "type": 0, "extraData": "" }),
    )
    .await;
    first.kill().expect("kill -9");
    first.wait().expect("reaping the killed server");
    assert!(fcm.sends().is_empty(), "nothing was sent before the kill");

    let (mut second, _) = spawn_server(dir.path(), &database_url, &secret, &fcm);
    eventually("the push after the restart", || async {
        fcm.sends_to("bob-phone").len() == 1
    })
    .await;
    let db = testing::store::Db::connect(&database_url, 1)
        .await
        .expect("opening the database");
    let bob_id: causerie::ids::UserId = bob.parse().unwrap();
    eventually("the job finished", || async {
        let states = testing::push::outbox(&db, bob_id).await;
        states.len() == 1 && states[0].0 == "sent"
    })
    .await;
    db.close().await;
    std::process::Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("kill -TERM");
    second.wait().expect("waiting for the server");
    let sends = fcm.sends_to("bob-phone");
    assert_eq!(sends.len(), 1, "{sends:?}");
    assert_eq!(sends[0]["notification"]["body"], "survive this");
    drop(pg);
}

// ---- causerie push test EMAIL --------------------------------------------------------------

backend_tests!(push_test_command_reports_each_device);

async fn push_test_command_reports_each_device(backend: Backend) {
    let fcm = FakeFcm::start().await;
    let srv = start(backend, Some(&fcm), None, 2000).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    srv.quick_user("carol@example.com", PASSWORD).await;
    let phone = register(&srv, &bob, "bob-phone", "android").await;
    let old = register(&srv, &bob, "bob-old", "ios").await;
    fcm.script("bob-old", &[Answer::Unregistered]);
    let run = |email: &'static str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_causerie"));
        command
            .args(["push", "test", email])
            .env("CAUSERIE_DATABASE_URL", &srv.database_url)
            .env("CAUSERIE_SECRET_KEY", srv.config.secret_key.clone().unwrap())
            .env("CAUSERIE_LOG_LEVEL", "warn");
        for (key, value) in fcm.env() {
            command.env(key, value);
        }
        async move { command.output().await.expect("running causerie push test") }
    };
    let out = run("bob@example.com").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("device {} (android, phone): sent", phone["id"])),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "device {} (ios, phone): device deactivated (FCM 404 UNREGISTERED)",
            old["id"]
        )),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 2 devices reached."), "{stdout}");
    let sent = fcm.sends_to("bob-phone");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["notification"]["body"], "This is a test notification.");
    let devices = srv.get_auth("/devices/", &bob.access).await.body["results"].clone();
    assert_eq!(devices[1]["active"], false, "the unregistered token is deactivated");

    let none = run("carol@example.com").await;
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no active device"));
    srv.finish().await;
}
