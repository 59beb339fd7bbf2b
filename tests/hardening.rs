//! Issue 15 (tokens, accounts, HTTP edge, faults) as an attacker sees it: stolen tokens after a
//! password change, a replayed refresh token, guessing one account's password from several
//! addresses, spoofed proxy headers, one user flooding messages, the database refusing.
//! docs/security.md describes each defence.

#[macro_use]
mod common;

use std::net::IpAddr;
use std::time::Duration;

use causerie::ids::ChatId;
use causerie::wire::v2::{Command, SendMessage, ServerFrame, SUBPROTOCOL};
use common::ws::{self, WsClient};
use common::{bad_access_token, blacklisted, token_not_valid, Backend, Reply, TestServer, TestUser, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const V2: Option<&str> = Some(SUBPROTOCOL);
const NEW_PASSWORD: &str = "Another-Quiet-Harbour-7";

backend_tests!(
    password_change_revokes_every_token_and_socket,
    password_reset_revokes_every_token,
    deactivation_revokes_at_once,
    simplejwt_tokens_without_iat_are_revoked_too,
    refresh_token_reuse_ends_every_session,
    login_guesses_on_one_account_back_off,
    message_rate_is_per_user_over_sockets_and_rest,
    search_needs_a_real_term,
);

fn chat_id(chat: &Value) -> String {
    chat["id"].as_str().expect("chat id").to_string()
}

/// The handshake is refused with 403 and this reason.
async fn assert_handshake_refused(url: &str, reason: &str) {
    match ws::try_connect(url, V2).await {
        Ok(_) => panic!("handshake accepted: {url}"),
        Err(refused) => {
            assert_eq!(refused.status, 403, "{}", refused.body);
            assert!(refused.body.contains(reason), "{reason} in {}", refused.body);
        }
    }
}

/// Every way an old token could still be used is refused.
async fn assert_tokens_dead(srv: &TestServer, access: &str, refresh: &str) {
    srv.get_auth("/auth/users/me/", access)
        .await
        .expect(401, bad_access_token())
        .expect_bearer_challenge();
    srv.get_auth("/api/chat/", access).await.expect(401, bad_access_token());
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": refresh }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/verify/", &json!({ "token": access }))
        .await
        .expect(401, token_not_valid());
    assert_handshake_refused(&srv.ws_url(&format!("/ws/?token={access}")), "invalid_token").await;
}

async fn sockets_of(srv: &TestServer, user: &TestUser, chat: &str) -> (WsClient, WsClient) {
    let v2 = ws::connect(&srv.ws_url(&format!("/ws/?token={}", user.access)), V2).await;
    let v1 = ws::connect(&srv.ws_url(&format!("/ws/chat/{chat}/?token={}", user.access)), None).await;
    (v2, v1)
}

async fn password_change_revokes_every_token_and_socket(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.create_user_and_login("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let chat = chat_id(&srv.open_chat(&alice, &bob).await);
    // A thief copied the tokens of another of Alice's sessions, and has sockets open.
    let (stolen_access, stolen_refresh) = srv.login(&alice.email, PASSWORD).await;
    srv.get_auth("/auth/users/me/", &stolen_access).await.expect_status(200);
    let (mut v2, mut v1) = sockets_of(
        &srv,
        &TestUser {
            access: stolen_access.clone(),
            ..alice.clone()
        },
        &chat,
    )
    .await;
    let mut bobs = ws::connect(&srv.ws_url(&format!("/ws/?token={}", bob.access)), V2).await;

    srv.post_json_auth(
        "/auth/users/set_password/",
        &alice.access,
        &json!({ "new_password": NEW_PASSWORD, "current_password": PASSWORD }),
    )
    .await
    .expect(204, Value::Null);

    // Every socket of Alice closes with 4401; Bob's stays.
    assert_eq!(v2.expect_close().await, Some(4401));
    assert_eq!(v1.expect_close().await, Some(4401));
    bobs.send_frame(&Command::Ping).await;
    bobs.recv_until(|f| matches!(f, ServerFrame::Pong(_))).await;
    // The thief's tokens and Alice's own are refused everywhere.
    assert_tokens_dead(&srv, &stolen_access, &stolen_refresh).await;
    assert_tokens_dead(&srv, &alice.access, &alice.refresh).await;
    assert_handshake_refused(
        &srv.ws_url(&format!("/ws/chat/{chat}/?token={stolen_access}")),
        "invalid_token",
    )
    .await;
    // A new login works on REST and WebSocket.
    let (access, refresh) = srv.login(&alice.email, NEW_PASSWORD).await;
    srv.get_auth("/auth/users/me/", &access).await.expect_status(200);
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": refresh }))
        .await
        .expect_status(200);
    ws::connect(&srv.ws_url(&format!("/ws/?token={access}")), V2)
        .await
        .close()
        .await;
    bobs.close().await;
    srv.finish().await;
}

/// The `uid` and `token` of the reset link in a password reset email.
fn reset_link_parts(body: &str) -> (String, String) {
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/password/reset/confirm/"))
        .unwrap_or_else(|| panic!("no reset link in the email:\n{body}"));
    let rest = link.split("/password/reset/confirm/").nth(1).unwrap();
    let mut parts = rest.trim_end_matches('/').split('/');
    (parts.next().unwrap().to_string(), parts.next().unwrap().to_string())
}

async fn password_reset_revokes_every_token(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.create_user_and_login("alice@example.com", PASSWORD).await;
    let mut socket = ws::connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;
    srv.post_json("/auth/users/reset_password/", &json!({ "email": alice.email }))
        .await
        .expect_status(204);
    let (uid, token) = reset_link_parts(&srv.outbox()[0].body);
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": uid, "token": token, "new_password": NEW_PASSWORD }),
    )
    .await
    .expect(204, Value::Null);
    assert_eq!(socket.expect_close().await, Some(4401));
    assert_tokens_dead(&srv, &alice.access, &alice.refresh).await;
    srv.login(&alice.email, NEW_PASSWORD).await;
    srv.finish().await;
}

async fn deactivation_revokes_at_once(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.create_user_and_login("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let chat = chat_id(&srv.open_chat(&alice, &bob).await);
    // Used once, so the server holds her in its cache.
    srv.get_auth("/auth/users/me/", &alice.access).await.expect_status(200);
    let (mut v2, mut v1) = sockets_of(&srv, &alice, &chat).await;

    // What `causerie users deactivate` and the admin site do.
    assert!(srv.state.set_active(alice.user_id(), false).await);
    assert_eq!(v2.expect_close().await, Some(4401));
    assert_eq!(v1.expect_close().await, Some(4401));
    srv.get_auth("/auth/users/me/", &alice.access)
        .await
        .expect(401, json!({ "detail": "User is inactive", "code": "user_inactive" }));
    assert_handshake_refused(&srv.ws_url(&format!("/ws/?token={}", alice.access)), "inactive_user").await;
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": alice.refresh }))
        .await
        .expect_status(401);
    // Reactivated: the old tokens stay revoked; a new login works.
    assert!(srv.state.set_active(alice.user_id(), true).await);
    assert_tokens_dead(&srv, &alice.access, &alice.refresh).await;
    let (access, _) = srv.login(&alice.email, PASSWORD).await;
    srv.get_auth("/auth/users/me/", &access).await.expect_status(200);
    srv.finish().await;
}

/// A token as SimpleJWT 4.6 signed it: no `iat`, no epoch.
fn simplejwt_token(secret: &str, token_type: &str, user: &str) -> String {
    let claims = json!({
        "token_type": token_type,
        "exp": chrono::Utc::now().timestamp() + 600,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encodes")
}

async fn simplejwt_tokens_without_iat_are_revoked_too(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let secret = srv.config.secret_key.clone().expect("tests set a key");
    let access = simplejwt_token(&secret, "access", &alice.id);
    let refresh = simplejwt_token(&secret, "refresh", &alice.id);
    // Accepted until the first revocation (they count as epoch 0)...
    srv.get_auth("/auth/users/me/", &access).await.expect_status(200);
    ws::connect(&srv.ws_url(&format!("/ws/?token={access}")), V2)
        .await
        .close()
        .await;
    srv.post_json_auth(
        "/auth/users/set_password/",
        &access,
        &json!({ "new_password": NEW_PASSWORD, "current_password": PASSWORD }),
    )
    .await
    .expect(204, Value::Null);
    // ...and refused after it, like every other token.
    assert_tokens_dead(&srv, &access, &refresh).await;
    srv.finish().await;
}

async fn refresh_token_reuse_ends_every_session(backend: Backend) {
    // The defaults: rotation and blacklist after rotation (the series' settings).
    let srv = TestServer::start(backend).await;
    let alice = srv.create_user_and_login("alice@example.com", PASSWORD).await;
    let (other_access, other_refresh) = srv.login(&alice.email, PASSWORD).await;
    // The owner refreshes: a new pair, the old refresh token spent.
    let rotated = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": alice.refresh }))
        .await;
    rotated.expect_status(200);
    let (access, refresh) = (
        rotated.body["access"].as_str().unwrap().to_string(),
        rotated.body["refresh"].as_str().unwrap().to_string(),
    );
    let mut socket = ws::connect(&srv.ws_url(&format!("/ws/?token={access}")), V2).await;

    // A thief replays the copy of the spent token: refused, and the whole family ends.
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": alice.refresh }))
        .await
        .expect(401, blacklisted());
    assert_eq!(socket.expect_close().await, Some(4401));
    // The legitimate holder's next refresh fails too (so would the thief's), and so do every
    // access token and the other session.
    assert_tokens_dead(&srv, &access, &refresh).await;
    assert_tokens_dead(&srv, &other_access, &other_refresh).await;

    // After logging in again, replaying the old copy once more is refused and ends nothing.
    let (fresh_access, fresh_refresh) = srv.login(&alice.email, PASSWORD).await;
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": alice.refresh }))
        .await
        .expect(401, blacklisted());
    srv.get_auth("/auth/users/me/", &fresh_access).await.expect_status(200);
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": fresh_refresh }))
        .await
        .expect_status(200);
    srv.finish().await;
}

/// A client whose requests come from `from` (any 127.0.0.0/8 address on loopback).
fn client_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

async fn login_from(srv: &TestServer, from: IpAddr, email: &str, password: &str) -> Reply {
    let response = client_from(from)
        .post(srv.url("/auth/jwt/create/"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("request sent");
    Reply::read(response).await
}

async fn login_guesses_on_one_account_back_off(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.login_free_failures = 3;
        c.login_backoff_max_secs = 2;
    })
    .await;
    let victim = srv.quick_user("victim@example.com", PASSWORD).await;
    let bystander = srv.quick_user("bystander@example.com", PASSWORD).await;
    let addresses: Vec<IpAddr> = (2..7).map(|i| IpAddr::from([127, 0, 0, i])).collect();
    // Three free failures, from different addresses.
    for from in &addresses[..3] {
        login_from(&srv, *from, &victim.email, "guess-1").await.expect(
            401,
            json!({ "detail": "No active account found with the given credentials" }),
        );
    }
    // The fourth failure is still checked, and from then on the account must wait.
    login_from(&srv, addresses[3], &victim.email, "guess-2")
        .await
        .expect_status(401);
    let mut throttled = 0;
    for from in &addresses {
        let reply = login_from(&srv, *from, &victim.email, "guess-3").await;
        if reply.status == 429 {
            throttled += 1;
            assert!(reply.header("retry-after").is_some(), "429 says when");
            assert!(
                reply.body["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("Request was throttled."),
                "{}",
                reply.text
            );
        } else {
            // Only after the wait is over (a slow machine); still wrong.
            reply.expect_status(401);
        }
    }
    assert!(throttled > 0, "guesses on one account from five addresses are slowed");
    // The victim's correct password is refused during the wait too (else the wait would tell
    // a right guess from a wrong one), but the account is never locked for longer than the cap.
    // Another account is not affected at all.
    login_from(&srv, addresses[0], &bystander.email, PASSWORD)
        .await
        .expect_status(200);
    let mut logged_in = false;
    for _ in 0..50 {
        let reply = login_from(&srv, addresses[4], &victim.email, PASSWORD).await;
        if reply.status == 200 {
            logged_in = true;
            break;
        }
        reply.expect_status(429);
        let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!(wait <= 2, "never more than login_backoff_max_secs: {wait}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(logged_in, "the owner gets in once the wait is over");
    // A success clears the count: the next failure is free again.
    login_from(&srv, addresses[0], &victim.email, "guess-4")
        .await
        .expect_status(401);
    login_from(&srv, addresses[0], &victim.email, PASSWORD)
        .await
        .expect_status(200);
    srv.finish().await;
}

fn send(chat: ChatId, client_id: &str, text: &str) -> Command {
    Command::Send(SendMessage {
        chat,
        client_id: client_id.into(),
        message: text.into(),
        message_type: None,
        extra_data: None,
        attachments: Vec::new(),
    })
}

async fn message_rate_is_per_user_over_sockets_and_rest(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.user_messages_per_second = 3).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let chat = chat_id(&srv.open_chat(&alice, &bob).await);
    let chat_uuid: ChatId = chat.parse().unwrap();

    // REST: sent as fast as possible, most of 30 posts fall in a second that is already full.
    let mut created = 0;
    let mut refused = 0;
    for i in 0..30 {
        let reply = srv
            .post_json_auth(
                "/api/message/",
                &alice.access,
                &json!({ "refChat": chat, "message": format!("rest {i}") }),
            )
            .await;
        match reply.status.as_u16() {
            201 => created += 1,
            429 => {
                refused += 1;
                assert_eq!(reply.header("retry-after"), Some("1"));
                assert_eq!(
                    reply.body,
                    json!({ "detail": "Request was throttled. Expected available in 1 second." })
                );
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(refused > 0, "30 posts at once are not all accepted ({created} were)");

    // Sockets: two of Alice's sockets share her allowance; a refusal is an error frame and the
    // socket stays open.
    let mut first = ws::connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;
    let mut second = ws::connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;
    for i in 0..10 {
        first.send_frame(&send(chat_uuid, &format!("a{i}"), "first")).await;
        second.send_frame(&send(chat_uuid, &format!("b{i}"), "second")).await;
    }
    let mut acked = 0;
    let mut limited = 0;
    for socket in [&mut first, &mut second] {
        let mut answered = 0;
        while answered < 10 {
            match socket.recv_frame().await {
                ServerFrame::Ack(_) => {
                    acked += 1;
                    answered += 1;
                }
                ServerFrame::Error(error) => {
                    assert_eq!(error.code, "rate_limited", "{error:?}");
                    limited += 1;
                    answered += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        limited > 0,
        "20 sends at once over two sockets are not all stored ({acked} were)"
    );
    // Still open: a ping is answered.
    first.send_frame(&Command::Ping).await;
    first.recv_until(|f| matches!(f, ServerFrame::Pong(_))).await;
    // What was refused was not stored: the chat holds exactly what was accepted.
    let page = srv
        .get_auth(&format!("/api/message/?refChat={chat}&page_size=100"), &bob.access)
        .await;
    page.expect_status(200);
    assert_eq!(page.body["count"], json!(created + acked));
    // Bob has his own allowance.
    srv.post_json_auth(
        "/api/message/",
        &bob.access,
        &json!({ "refChat": chat, "message": "bob" }),
    )
    .await
    .expect_status(201);
    srv.finish().await;
}

async fn search_needs_a_real_term(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let caller = srv.quick_user("caller@example.com", PASSWORD).await;
    for i in 0..5 {
        srv.quick_user_named(&format!("u{i}@example.com"), PASSWORD, "Anne", &format!("Martin{i}"))
            .await;
    }
    let empty = json!({ "count": 0, "next": null, "previous": null, "results": [] });
    // Listing everyone by asking for nothing, or for one letter, finds nobody.
    for query in ["", "?search=", "?search=a", "?search=a%20n", "?search=%25", "?search=_"] {
        srv.get_auth(&format!("/api/searchUser/{query}"), &caller.access)
            .await
            .expect(200, empty.clone());
    }
    // A real term finds; a huge page size is capped at 100.
    let found = srv
        .get_auth("/api/searchUser/?search=anne&page_size=100000", &caller.access)
        .await;
    found.expect_status(200);
    assert_eq!(found.body["count"], json!(5));
    srv.finish().await;
}

// ---- HTTP edge -------------------------------------------------------------------------------

/// A client's `X-Forwarded-Host` never makes it into pagination links unless proxy headers are
/// trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_links_ignore_a_forwarded_host_unless_trusted() {
    for trusted in [false, true] {
        let srv = TestServer::start_with(Backend::Sqlite, |c| {
            c.public_url = "https://chat.example.org".into();
            c.trust_forwarded_for = trusted;
        })
        .await;
        let alice = srv.quick_user("alice@example.com", PASSWORD).await;
        let bob = srv.quick_user("bob@example.com", PASSWORD).await;
        let chat = chat_id(&srv.open_chat(&alice, &bob).await);
        for i in 0..3 {
            srv.post_json_auth(
                "/api/message/",
                &alice.access,
                &json!({ "refChat": chat, "message": i.to_string() }),
            )
            .await
            .expect_status(201);
        }
        let auth = format!("Bearer {}", alice.access);
        let page = srv
            .request_raw(
                Method::GET,
                &format!("/api/message/?refChat={chat}&page_size=1"),
                None,
                "",
                &[
                    ("authorization", auth.as_str()),
                    ("x-forwarded-host", "evil.example"),
                    ("x-forwarded-proto", "https"),
                ],
            )
            .await;
        page.expect_status(200);
        let next = page.body["next"].as_str().unwrap();
        if trusted {
            assert!(next.starts_with("https://evil.example/api/message/?"), "{next}");
        } else {
            assert!(next.starts_with("https://chat.example.org/api/message/?"), "{next}");
        }
        srv.finish().await;
    }
}

/// Behind one trusted proxy, the limiter counts the address the proxy saw (the right-most
/// hop), whatever the client writes to the left of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_keys_on_the_right_most_untrusted_hop() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| {
        c.trust_forwarded_for = true;
        c.trusted_proxies = 1;
        c.rate_login_per_minute = 2;
    })
    .await;
    let login = |forwarded: &'static str| {
        let srv = &srv;
        async move {
            srv.request_raw(
                Method::POST,
                "/auth/jwt/create/",
                Some("application/json"),
                json!({ "email": "nobody@example.com", "password": "x" }).to_string(),
                &[("x-forwarded-for", forwarded)],
            )
            .await
        }
    };
    // The client changes the left-most hop every time; the proxy appended 198.51.100.9.
    login("1.1.1.1, 198.51.100.9").await.expect_status(401);
    login("2.2.2.2, 198.51.100.9").await.expect_status(401);
    login("3.3.3.3, 198.51.100.9").await.expect_status(429);
    // Another client behind the same proxy has its own allowance.
    login("1.1.1.1, 198.51.100.10").await.expect_status(401);
    srv.finish().await;
}

// ---- two instances over Redis -------------------------------------------------------------------

fn redis_url() -> Option<String> {
    std::env::var("CAUSERIE_TEST_REDIS_URL").ok().filter(|v| !v.is_empty())
}

async fn wait_until_ready(srv: &TestServer) {
    for _ in 0..100 {
        if srv.get("/readyz").await.status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready", srv.base_url());
}

/// A password change on one instance revokes at once on the other, whose cache held the user,
/// and closes the user's socket there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_instance() {
    let Some(redis) = redis_url() else {
        eprintln!("note: CAUSERIE_TEST_REDIS_URL not set; skipping");
        return;
    };
    if !Backend::Postgres.is_available() {
        eprintln!("note: {} not set; skipping", common::POSTGRES_ENV);
        return;
    }
    let first = TestServer::start_with(Backend::Postgres, |c| c.redis_url = Some(redis.clone())).await;
    let second = first.start_peer(|c| c.redis_url = Some(redis.clone())).await;
    wait_until_ready(&first).await;
    wait_until_ready(&second).await;
    let alice = first.create_user_and_login("alice@example.com", PASSWORD).await;
    // The second instance has Alice in its cache, and a socket of hers.
    second
        .get_auth("/auth/users/me/", &alice.access)
        .await
        .expect_status(200);
    second
        .get_auth("/auth/users/me/", &alice.access)
        .await
        .expect_status(200);
    let mut on_second = ws::connect(&second.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;

    first
        .post_json_auth(
            "/auth/users/set_password/",
            &alice.access,
            &json!({ "new_password": NEW_PASSWORD, "current_password": PASSWORD }),
        )
        .await
        .expect(204, Value::Null);
    assert_eq!(on_second.expect_close().await, Some(4401));
    // The socket closed after the second instance heard of the change: its cache is exact.
    assert_tokens_dead(&second, &alice.access, &alice.refresh).await;

    // A profile change on one instance is seen by the other at once as well.
    let (access, _) = second.login(&alice.email, NEW_PASSWORD).await;
    first.get_auth("/auth/users/me/", &access).await.expect_status(200);
    second
        .patch_json_auth("/auth/users/me/", &access, &json!({ "first_name": "Alicia" }))
        .await
        .expect_status(200);
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = first.get_auth("/auth/users/me/", &access).await.body;
        if seen["first_name"] == "Alicia" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen["first_name"], "Alicia", "the change reached the other instance");

    second.finish().await;
    first.finish().await;
}

/// Guesses spread over two instances count against one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_add_up_across_instances() {
    let Some(redis) = redis_url() else {
        eprintln!("note: CAUSERIE_TEST_REDIS_URL not set; skipping");
        return;
    };
    let tweak = |c: &mut causerie::Config| {
        c.redis_url = Some(redis.clone());
        c.login_free_failures = 2;
        c.login_backoff_max_secs = 30;
    };
    let first = TestServer::start_with(Backend::Sqlite, tweak).await;
    let second = first.start_peer(tweak).await;
    // An address nobody else uses: Redis is shared with other test runs.
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    first.quick_user(&email, PASSWORD).await;
    first
        .post_json("/auth/jwt/create/", &json!({ "email": email, "password": "guess" }))
        .await
        .expect_status(401);
    second
        .post_json("/auth/jwt/create/", &json!({ "email": email, "password": "guess" }))
        .await
        .expect_status(401);
    first
        .post_json("/auth/jwt/create/", &json!({ "email": email, "password": "guess" }))
        .await
        .expect_status(401);
    // Third failure overall: the account now waits, on both instances.
    second
        .post_json("/auth/jwt/create/", &json!({ "email": email, "password": PASSWORD }))
        .await
        .expect_status(429);
    second.finish().await;
    first.finish().await;
}

// ---- faults --------------------------------------------------------------------------------

/// PostgreSQL refusing connections (the database closed to connections, its backends
/// terminated) is 503 with the documented body on REST and `unavailable` on sockets, never 500;
/// everything works again once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_connections_is_503_not_500() {
    use sqlx::{Connection, Executor};
    let Some(admin_url) = std::env::var(common::POSTGRES_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("note: {} not set; skipping", common::POSTGRES_ENV);
        return;
    };
    let srv = TestServer::start(Backend::Postgres).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let chat = chat_id(&srv.open_chat(&alice, &bob).await);
    let chat_uuid: ChatId = chat.parse().unwrap();
    let mut socket = ws::connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;
    let name = url::Url::parse(&srv.database_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();

    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("admin connection");
    admin
        .execute(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false").as_str())
        .await
        .unwrap();
    admin
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            .as_str(),
        )
        .await
        .unwrap();

    let unavailable = json!({ "detail": "Service temporarily unavailable, try again later." });
    for path in ["/api/chat/".to_string(), format!("/api/message/?refChat={chat}")] {
        srv.get_auth(&path, &alice.access)
            .await
            .expect(503, unavailable.clone());
    }
    srv.post_json_auth(
        "/api/message/",
        &alice.access,
        &json!({ "refChat": chat, "message": "x" }),
    )
    .await
    .expect(503, unavailable.clone());
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": alice.email, "password": PASSWORD }),
    )
    .await
    .expect(503, unavailable.clone());
    socket.send_frame(&send(chat_uuid, "down-1", "while down")).await;
    match socket
        .recv_until(|f| matches!(f, ServerFrame::Error(_) | ServerFrame::Ack(_)))
        .await
    {
        ServerFrame::Error(error) => assert_eq!(error.code, "unavailable", "{error:?}"),
        other => panic!("stored while the database refused connections: {other:?}"),
    }

    admin
        .execute(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true").as_str())
        .await
        .unwrap();
    let _ = admin.close().await;
    let mut back = false;
    for _ in 0..100 {
        if srv.get_auth("/api/chat/", &alice.access).await.status == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the pool reconnects by itself");
    socket.send_frame(&send(chat_uuid, "up-1", "back")).await;
    assert!(matches!(
        socket
            .recv_until(|f| matches!(f, ServerFrame::Error(_) | ServerFrame::Ack(_)))
            .await,
        ServerFrame::Ack(_)
    ));
    srv.finish().await;
}
