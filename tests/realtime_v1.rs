//! The seed's WebSocket protocol (contract section 5, docs/protocol.md "v1", issue 3):
//! `/ws/chat/{chat_id}/?token=ACCESS[&format=text|object]`. Handshake refusals, the exchange in
//! both frame shapes, REST messages reaching sockets, error frames, limits and metrics, on every
//! configured backend.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use causerie::ids::ChatId;
use causerie::testing::store::{chats, users};
use causerie::wire::{v1, MessageView};
use common::ws::{self, with, without, WsClient};
use common::{Backend, TestServer, TestUser, PASSWORD};
use futures_util::SinkExt;
use serde_json::{json, Value};
use uuid::Uuid;

backend_tests!(
    handshake_refusals,
    expired_token_refused,
    exchange_text_format,
    exchange_object_format,
    mixed_formats_and_concurrent_senders,
    rest_messages_reach_sockets,
    third_user_stays_out,
    bad_frames_are_refused_and_not_stored,
    oversized_frame_closes_1009,
    frame_flood_is_rate_limited,
    slow_reader_is_disconnected,
    deleted_chat_and_removed_member,
    metrics_are_exposed,
);

/// The stored fields of a `format=text` frame: the text under "message", the rest beside it.
const FRAME_KEYS: [&str; 9] = [
    "message",
    "id",
    "refChat",
    "author",
    "type",
    "extraData",
    "isRead",
    "createdAt",
    "updatedAt",
];

// ---- helpers ---------------------------------------------------------------------------------

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn frame_keys() -> BTreeSet<String> {
    FRAME_KEYS.iter().map(|s| s.to_string()).collect()
}

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_string()
}

/// The v1 socket URL for `chat` with `token` and an optional `format`.
fn chat_url(srv: &TestServer, chat: &str, token: &str, format: Option<&str>) -> String {
    let mut path = format!("/ws/chat/{chat}/?token={token}");
    if let Some(format) = format {
        path.push_str(&format!("&format={format}"));
    }
    srv.ws_url(&path)
}

async fn open(srv: &TestServer, chat: &str, user: &TestUser, format: Option<&str>) -> WsClient {
    ws::connect(&chat_url(srv, chat, &user.access, format), None).await
}

/// Asserts the handshake is refused with 403 and the documented reason.
#[track_caller]
fn assert_refused(outcome: Result<WsClient, ws::Refused>, reason: &str) {
    match outcome {
        Ok(_) => panic!("handshake accepted; expected a 403 ({reason})"),
        Err(refused) => {
            assert_eq!(refused.status, 403, "refusal status ({reason}): {}", refused.body);
            let body: Value = serde_json::from_str(&refused.body)
                .unwrap_or_else(|_| panic!("refusal body is JSON: {:?}", refused.body));
            assert_eq!(
                body,
                json!({ "detail": "WebSocket connection refused.", "reason": reason })
            );
        }
    }
}

async fn user(srv: &TestServer, name: &str) -> TestUser {
    srv.quick_user_named(&format!("{name}@example.com"), PASSWORD, name, "Tester")
        .await
}

/// Alice, Bob and the chat between them (opened through the API).
async fn pair(srv: &TestServer) -> (TestUser, TestUser, String) {
    let alice = user(srv, "alice").await;
    let bob = user(srv, "bob").await;
    let chat = open_chat(srv, &alice, &bob).await;
    (alice, bob, chat)
}

async fn open_chat(srv: &TestServer, from: &TestUser, to: &TestUser) -> String {
    id_of(&srv.open_chat(from, to).await)
}

/// The chat's whole history through the API, oldest first.
async fn history(srv: &TestServer, user: &TestUser, chat: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = format!("/api/message/?refChat={chat}&page_size=100");
    loop {
        let reply = srv.get_auth(&path, &user.access).await;
        reply.expect_status(200);
        all.extend(reply.body["results"].as_array().unwrap().iter().cloned());
        match reply.body["next"].as_str() {
            Some(next) => path = next.strip_prefix(&srv.base_url()).unwrap().to_string(),
            None => break,
        }
    }
    all.reverse();
    all
}

async fn stored_count(srv: &TestServer, user: &TestUser, chat: &str) -> i64 {
    let reply = srv
        .get_auth(&format!("/api/message/?refChat={chat}"), &user.access)
        .await;
    reply.expect_status(200);
    reply.body["count"].as_i64().unwrap()
}

/// The seed page's frame: every field given.
fn seed_frame(message: &str, chat: &str, author: &TestUser) -> v1::MessageFrame {
    v1::MessageFrame {
        ref_chat: Some(chat_id(chat)),
        author: Some(author.user_id()),
        kind: Some(0),
        extra_data: Some(Some(String::new())),
        ..text(message)
    }
}

/// A frame with only the message's text.
fn text(message: impl Into<String>) -> v1::MessageFrame {
    v1::MessageFrame::text(message)
}

/// A frame naming its chat.
fn in_chat(message: &str, chat: &str) -> v1::MessageFrame {
    v1::MessageFrame {
        ref_chat: Some(chat_id(chat)),
        ..text(message)
    }
}

fn chat_id(chat: &str) -> ChatId {
    chat.parse().expect("a chat id")
}

/// `format=object` frames carry the stored message under "message".
fn unwrap_object(frame: &Value) -> Value {
    assert_eq!(keys(frame), BTreeSet::from(["message".to_string()]), "{frame}");
    let message = frame["message"].clone();
    assert!(message.is_object(), "format=object: {frame}");
    message
}

/// Receives `n` frames, asserting each is a message frame (not an error).
async fn recv_messages(socket: &mut WsClient, n: usize) -> Vec<Value> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let frame = socket.recv_json().await;
        assert!(frame.get("error").is_none(), "unexpected error frame {frame}");
        frames.push(frame);
    }
    frames
}

/// Receives the next frame and asserts it is the error `code` (with a text detail), and
/// nothing else: seed clients ignore it because it has no `message` key.
async fn expect_error(socket: &mut WsClient, code: &str) {
    let frame = socket.recv_json().await;
    assert_eq!(keys(&frame), BTreeSet::from(["error".to_string()]), "{frame}");
    assert_eq!(keys(&frame["error"]).len(), 2, "{frame}");
    let refused: v1::ErrorFrame = serde_json::from_value(frame.clone()).expect("an error frame");
    assert_eq!(refused.error.code, code, "{frame}");
    assert!(!refused.error.detail.is_empty(), "{frame}");
}

/// `/metrics` as text.
async fn metrics(srv: &TestServer) -> String {
    let reply = srv.get("/metrics").await;
    reply.expect_status(200);
    reply.text
}

// ---- handshake -------------------------------------------------------------------------------

async fn handshake_refusals(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let carol = user(&srv, "carol").await;
    let dave = user(&srv, "dave").await;
    open_chat(&srv, &dave, &alice).await;

    // The good case first: a participant with an access token gets in.
    let socket = open(&srv, &chat, &alice, None).await;
    socket.close().await;
    let socket = open(&srv, &chat, &bob, Some("object")).await;
    socket.close().await;

    let url = |path: String| srv.ws_url(&path);
    assert_refused(
        ws::try_connect(&url(format!("/ws/chat/{chat}/")), None).await,
        "missing_token",
    );
    assert_refused(
        ws::try_connect(&url(format!("/ws/chat/{chat}/?token=")), None).await,
        "missing_token",
    );
    assert_refused(
        ws::try_connect(&url(format!("/ws/chat/{chat}/?token=garbage")), None).await,
        "invalid_token",
    );
    assert_refused(
        ws::try_connect(
            &url(format!("/ws/chat/{chat}/?token=eyJhbGciOiJIUzI1NiJ9.e30.c2ln")),
            None,
        )
        .await,
        "invalid_token",
    );
    // A token signed with another key.
    let mut forged = alice.access.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &forged, None), None).await,
        "invalid_token",
    );
    // A refresh token is not an access token.
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &alice.refresh, None), None).await,
        "invalid_token",
    );
    // An unknown chat, a chat id that is not a uuid, a chat the user is not in.
    assert_refused(
        ws::try_connect(&chat_url(&srv, &Uuid::new_v4().to_string(), &alice.access, None), None).await,
        "unknown_chat",
    );
    assert_refused(
        ws::try_connect(&chat_url(&srv, "general", &alice.access, None), None).await,
        "unknown_chat",
    );
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &carol.access, None), None).await,
        "not_a_member",
    );
    // Dave is in a chat, only not this one.
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &dave.access, None), None).await,
        "not_a_member",
    );
    // An unknown format: 400.
    match ws::try_connect(&chat_url(&srv, &chat, &alice.access, Some("xml")), None).await {
        Ok(_) => panic!("format=xml accepted"),
        Err(refused) => {
            assert_eq!(refused.status, 400, "{}", refused.body);
            assert_eq!(
                serde_json::from_str::<Value>(&refused.body).unwrap(),
                json!({ "detail": "format must be text or object." })
            );
        }
    }
    // A deactivated user, even with a valid token.
    assert!(users::set_active(srv.db(), bob.user_id(), false).await.unwrap());
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &bob.access, None), None).await,
        "inactive_user",
    );
    // A deleted user.
    srv.delete_auth(
        "/auth/users/me/",
        &alice.access,
        Some(&json!({ "current_password": PASSWORD })),
    )
    .await
    .expect_status(204);
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &alice.access, None), None).await,
        "unknown_user",
    );
    assert!(metrics(&srv).await.contains("causerie_ws_handshakes_refused_total"));
    srv.finish().await;
}

async fn expired_token_refused(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.access_token_lifetime_secs = 1).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let (chat, _) = chats::find_or_create_pair(srv.db(), alice.user_id(), bob.user_id())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat.id.to_string(), &alice.access, None), None).await,
        "invalid_token",
    );
    // The same user with a fresh token is let in: only the expiry was wrong. (A token lives
    // one whole second at most, less when minted late in a second: a few tries.)
    let mut admitted = None;
    for _ in 0..5 {
        let fresh = srv.state.access_token(alice.user_id());
        match ws::try_connect(&chat_url(&srv, &chat.id.to_string(), &fresh, None), None).await {
            Ok(socket) => {
                admitted = Some(socket);
                break;
            }
            Err(refused) => assert_eq!(refused.status, 403, "{}", refused.body),
        }
    }
    admitted.expect("a fresh token is accepted").close().await;
    srv.finish().await;
}

// ---- exchange --------------------------------------------------------------------------------

async fn exchange_text_format(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, Some("text")).await;
    let mut b = open(&srv, &chat, &bob, None).await; // text is the default

    // One at a time, both ways; each socket gets each message once, the sender's echo included.
    let script: Vec<(&TestUser, v1::MessageFrame)> = vec![
        (&alice, seed_frame("hi Bob", &chat, &alice)),
        (&bob, text("hi Alice")),
        (
            &alice,
            v1::MessageFrame {
                kind: Some(1),
                extra_data: Some(Some("48.85,2.35".into())),
                ..in_chat("", &chat)
            },
        ),
        (
            &bob,
            v1::MessageFrame {
                author: Some(bob.user_id()),
                extra_data: Some(None),
                ..text("nice place")
            },
        ),
    ];
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for (sender, frame) in &script {
        let socket = if sender.id == alice.id { &mut a } else { &mut b };
        socket.send_frame(frame).await;
        seen_a.extend(recv_messages(&mut a, 1).await);
        seen_b.extend(recv_messages(&mut b, 1).await);
    }
    a.expect_silence().await;
    b.expect_silence().await;
    assert_eq!(seen_a, seen_b, "both sockets saw the same frames");

    for (frame, (sender, sent)) in seen_a.iter().zip(&script) {
        assert_eq!(keys(frame), frame_keys(), "{frame}");
        assert_eq!(frame["message"], sent.message);
        assert_eq!(frame["refChat"], chat.as_str());
        assert_eq!(frame["author"], sender.id.as_str());
        assert_eq!(frame["isRead"], false);
        assert!(Uuid::parse_str(&id_of(frame)).is_ok());
    }
    assert_eq!(seen_a[0]["type"], 0);
    assert_eq!(seen_a[0]["extraData"], "");
    assert_eq!(seen_a[1]["type"], 0, "type defaults to 0");
    assert_eq!(seen_a[1]["extraData"], "", "extraData defaults to \"\"");
    assert_eq!(seen_a[2]["type"], 1);
    assert_eq!(seen_a[2]["extraData"], "48.85,2.35");
    assert_eq!(seen_a[3]["extraData"], Value::Null);

    // Every frame is a stored message, in storage order: the history holds exactly them.
    let stored = history(&srv, &alice, &chat).await;
    assert_eq!(stored, seen_a);
    a.close().await;
    b.close().await;
    srv.finish().await;
}

async fn exchange_object_format(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, Some("object")).await;
    let mut b = open(&srv, &chat, &bob, Some("object")).await;
    let mut expected_authors = Vec::new();
    for i in 0..6 {
        let (socket, sender) = if i % 3 == 2 { (&mut b, &bob) } else { (&mut a, &alice) };
        socket
            .send_frame(&seed_frame(&format!("object {i}"), &chat, sender))
            .await;
        expected_authors.push(sender.id.clone());
        let from_a = unwrap_object(&recv_messages(&mut a, 1).await[0]);
        let from_b = unwrap_object(&recv_messages(&mut b, 1).await[0]);
        assert_eq!(from_a, from_b);
    }
    a.expect_silence().await;
    b.expect_silence().await;
    let stored = history(&srv, &bob, &chat).await;
    assert_eq!(stored.len(), 6);
    assert_eq!(
        stored
            .iter()
            .map(|m| m["author"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        expected_authors
    );
    assert_eq!(
        stored
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        (0..6).map(|i| format!("object {i}")).collect::<Vec<_>>()
    );

    // A fresh pair of sockets: a frame is exactly the stored message object.
    a.send_frame(&text("last one")).await;
    let frame = a.recv_json().await;
    let inner = unwrap_object(&frame);
    assert_eq!(keys(&inner), frame_keys());
    let from_b = b.recv_json().await;
    assert_eq!(from_b, frame);
    let stored = history(&srv, &alice, &chat).await;
    assert_eq!(stored.last().unwrap(), &inner);
    a.close().await;
    b.close().await;
    srv.finish().await;
}

async fn mixed_formats_and_concurrent_senders(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, Some("text")).await;
    let mut b = open(&srv, &chat, &bob, Some("object")).await;
    // Both send a burst at once, without waiting for echoes.
    for i in 0..8 {
        a.send_frame(&seed_frame(&format!("a{i}"), &chat, &alice)).await;
        b.send_frame(&seed_frame(&format!("b{i}"), &chat, &bob)).await;
    }
    let seen_a = recv_messages(&mut a, 16).await;
    let seen_b: Vec<Value> = recv_messages(&mut b, 16).await.iter().map(unwrap_object).collect();
    a.expect_silence().await;
    b.expect_silence().await;
    // The same messages in the same order on both sockets, whatever the format...
    assert_eq!(seen_a, seen_b);
    // ...which is the order they were stored in, each once...
    let stored = history(&srv, &alice, &chat).await;
    assert_eq!(stored, seen_a);
    // ...and each sender's messages in the order they were sent.
    for (prefix, author) in [("a", &alice), ("b", &bob)] {
        let theirs: Vec<String> = stored
            .iter()
            .filter(|m| m["author"] == author.id.as_str())
            .map(|m| m["message"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(theirs, (0..8).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>());
    }
    a.close().await;
    b.close().await;
    srv.finish().await;
}

async fn rest_messages_reach_sockets(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, None).await;
    let mut b = open(&srv, &chat, &bob, Some("object")).await;
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &bob.access,
            &json!({ "refChat": chat, "message": "posted over REST", "type": 0, "extraData": "" }),
        )
        .await;
    reply.expect_status(201);
    // The text frame is the REST body itself (same fields); the object frame wraps it.
    assert_eq!(a.recv_json().await, reply.body);
    let wrapped = v1::ObjectFrame {
        message: reply.body.clone(),
    };
    assert_eq!(b.recv_json().await, serde_json::to_value(wrapped).unwrap());
    a.expect_silence().await;
    b.expect_silence().await;

    // A message from the socket and one from REST interleave in storage order.
    a.send_frame(&text("from the socket")).await;
    let echo = a.recv_json().await;
    let reply = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "from REST" }),
        )
        .await;
    reply.expect_status(201);
    assert_eq!(a.recv_json().await, reply.body);
    assert_eq!(unwrap_object(&b.recv_json().await), echo);
    assert_eq!(unwrap_object(&b.recv_json().await), reply.body);
    // REST edits, reads and deletes are not v1 frames: the seed's page would show them as messages.
    srv.patch_json_auth(
        &format!("/api/message/{}/", id_of(&reply.body)),
        &bob.access,
        &json!({ "isRead": true }),
    )
    .await
    .expect_status(200);
    srv.patch_json_auth(
        &format!("/api/message/{}/", id_of(&echo)),
        &alice.access,
        &json!({ "message": "edited" }),
    )
    .await
    .expect_status(200);
    srv.delete_auth(&format!("/api/message/{}/", id_of(&echo)), &alice.access, None)
        .await
        .expect_status(204);
    a.expect_silence().await;
    b.expect_silence().await;
    a.close().await;
    b.close().await;
    srv.finish().await;
}

async fn third_user_stays_out(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let carol = user(&srv, "carol").await;
    let other = open_chat(&srv, &carol, &alice).await;
    let mut a = open(&srv, &chat, &alice, None).await;
    a.send_frame(&text("private")).await;
    a.recv_json().await;

    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &carol.access, None), None).await,
        "not_a_member",
    );
    srv.get_auth(&format!("/api/message/?refChat={chat}"), &carol.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    // Carol's own chat with Alice carries nothing of the other chat, and vice versa.
    let mut c = open(&srv, &other, &carol, None).await;
    c.send_frame(&text("hello Alice")).await;
    let frame = c.recv_json().await;
    assert_eq!(frame["refChat"], other.as_str());
    a.expect_silence().await;
    a.send_frame(&text("still private")).await;
    a.recv_json().await;
    c.expect_silence().await;
    // A socket of one chat cannot post to another chat it names.
    c.send_frame(&in_chat("sneaking in", &chat)).await;
    expect_error(&mut c, "wrong_chat").await;
    assert_eq!(stored_count(&srv, &bob, &chat).await, 2);
    a.close().await;
    c.close().await;
    srv.finish().await;
}

// ---- errors and limits -----------------------------------------------------------------------

async fn bad_frames_are_refused_and_not_stored(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let carol = user(&srv, "carol").await;
    let other = open_chat(&srv, &alice, &carol).await;
    let mut a = open(&srv, &chat, &alice, None).await;
    let mut b = open(&srv, &chat, &bob, None).await;

    a.send_text("this is not JSON").await;
    expect_error(&mut a, "invalid_json").await;
    a.send_text("{\"message\": \"unterminated").await;
    expect_error(&mut a, "invalid_json").await;
    a.send_text("[\"message\", \"hi\"]").await;
    expect_error(&mut a, "invalid_frame").await;
    let no_message = v1::MessageFrame {
        author: Some(alice.user_id()),
        kind: Some(0),
        ..in_chat("", &chat)
    };
    a.send_frame(&without(no_message, "message")).await;
    expect_error(&mut a, "missing_message").await;
    a.send_frame(&seed_frame("wrong room", &other, &alice)).await;
    expect_error(&mut a, "wrong_chat").await;
    a.send_frame(&with(text("bad chat id"), "refChat", "general")).await;
    expect_error(&mut a, "wrong_chat").await;
    a.send_frame(&seed_frame("pretending", &chat, &bob)).await;
    expect_error(&mut a, "wrong_author").await;
    a.send_frame(&in_chat("   \n\t ", &chat)).await;
    expect_error(&mut a, "empty_message").await;
    a.send_frame(&text("")).await;
    expect_error(&mut a, "empty_message").await;
    a.send_frame(&v1::MessageFrame {
        kind: Some(7),
        ..text("x")
    })
    .await;
    expect_error(&mut a, "invalid_type").await;
    a.send_frame(&v1::MessageFrame {
        kind: Some(1),
        extra_data: Some(Some(String::new())),
        ..text("")
    })
    .await;
    expect_error(&mut a, "empty_message").await;
    a.send_frame(&text("x".repeat(10_001))).await;
    expect_error(&mut a, "message_too_long").await;
    a.send_frame(&with(text(""), "message", vec!["not", "text"])).await;
    expect_error(&mut a, "invalid_frame").await;
    a.socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            b"{\"message\":\"binary\"}".to_vec().into(),
        ))
        .await
        .unwrap();
    expect_error(&mut a, "invalid_frame").await;

    // Nothing of that was stored or sent to the other socket, and the socket still works.
    b.expect_silence().await;
    assert_eq!(stored_count(&srv, &alice, &chat).await, 0);
    a.send_frame(&seed_frame("finally", &chat, &alice)).await;
    let echo = a.recv_json().await;
    assert_eq!(echo["message"], "finally");
    assert_eq!(b.recv_json().await, echo);
    assert_eq!(history(&srv, &bob, &chat).await, vec![echo]);
    assert_eq!(stored_count(&srv, &alice, &other).await, 0);
    a.close().await;
    b.close().await;
    srv.finish().await;
}

/// A text frame over `ws_max_frame_bytes` that is not a photo is refused with an error frame
/// and the socket stays open (the gate read it aside, within `ws_max_photo_bytes`); a binary or
/// fragmented one still closes with 1009.
async fn oversized_frame_closes_1009(backend: Backend) {
    use tokio_tungstenite::tungstenite::Message;
    let srv = TestServer::start_with(backend, |c| c.ws_max_frame_bytes = 1024).await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, None).await;
    let mut b = open(&srv, &chat, &bob, None).await;
    // Just under the limit is fine.
    a.send_frame(&text("y".repeat(900))).await;
    assert_eq!(a.recv::<MessageView>().await.message, "y".repeat(900));
    b.recv_json().await;
    a.send_frame(&text("x".repeat(4000))).await;
    let refused = a.recv_json().await;
    assert_eq!(refused["error"]["code"], "frame_too_large", "{refused}");
    a.send_frame(&text("after")).await;
    assert_eq!(a.recv::<MessageView>().await.message, "after");
    assert_eq!(b.recv::<MessageView>().await.message, "after");
    assert_eq!(stored_count(&srv, &bob, &chat).await, 2);
    a.socket.send(Message::Binary(vec![b'x'; 4000].into())).await.unwrap();
    assert_eq!(a.expect_close().await, Some(1009));
    // Nothing more was stored; the other socket is unaffected.
    assert_eq!(stored_count(&srv, &bob, &chat).await, 2);
    b.expect_silence().await;
    b.send_frame(&text("still here")).await;
    assert_eq!(b.recv::<MessageView>().await.message, "still here");
    b.close().await;
    srv.finish().await;
}

async fn frame_flood_is_rate_limited(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.ws_frames_per_second = 1;
        c.ws_frames_burst = 2;
    })
    .await;
    let (alice, bob, chat) = pair(&srv).await;
    let mut a = open(&srv, &chat, &alice, None).await;
    for i in 0..10 {
        a.send_frame(&text(format!("flood {i}"))).await;
    }
    // Each frame gets exactly one answer: its echo, or a rate_limited error.
    let mut echoes = Vec::new();
    let mut limited = 0;
    for _ in 0..10 {
        let frame = a.recv_json().await;
        if let Some(error) = frame.get("error") {
            assert_eq!(error["code"], "rate_limited", "{frame}");
            limited += 1;
        } else {
            echoes.push(frame["message"].as_str().unwrap().to_string());
        }
    }
    a.expect_silence().await;
    assert!(limited >= 1, "no rate_limited frame");
    assert!(echoes.len() < 10);
    assert!(!echoes.is_empty(), "the burst lets the first frames through");
    assert_eq!(echoes[0], "flood 0");
    let stored: Vec<String> = history(&srv, &bob, &chat)
        .await
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, echoes, "exactly the echoed frames were stored");
    srv.finish().await;
}

async fn slow_reader_is_disconnected(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.ws_send_queue = 8).await;
    let (alice, bob, chat) = pair(&srv).await;
    // Alice's socket never reads.
    let mut slow = open(&srv, &chat, &alice, None).await;
    let b = open(&srv, &chat, &bob, None).await;
    // The server registers a socket just after the handshake answer: wait for both.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while srv.state.hub_connections() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "sockets not registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(srv.state.hub_connections(), 2);
    // Bob reads every message as it comes, until the last one.
    let reader = tokio::spawn(async move {
        let mut b = b;
        let mut texts = Vec::new();
        loop {
            let text = b.recv::<MessageView>().await.message;
            if text == "the end" {
                return (b, texts);
            }
            texts.push(text);
        }
    });
    // Large messages, so that the kernel's socket buffers fill up (a few MB on loopback), the
    // server's writes to the socket that does not read block, and its queue of 8 overflows.
    // Bob posts until the server has let go of Alice's socket (at most ~18 MB).
    const MAX: usize = 2_000;
    let filler = "z".repeat(9_000);
    let mut sent = Vec::new();
    while srv.state.hub_connections() == 2 && sent.len() < MAX {
        let text = format!("{:04} {filler}", sent.len());
        let reply = srv
            .post_json_auth(
                "/api/message/",
                &bob.access,
                &json!({ "refChat": chat, "message": text }),
            )
            .await;
        reply.expect_status(201);
        sent.push(text);
    }
    assert!(
        sent.len() < MAX,
        "the socket that does not read was never dropped ({MAX} messages of 9 KB sent)"
    );
    srv.post_json_auth(
        "/api/message/",
        &bob.access,
        &json!({ "refChat": chat, "message": "the end" }),
    )
    .await
    .expect_status(201);
    let (mut b, received) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("Bob's socket keeps up")
        .expect("reader task");
    assert_eq!(received.len(), sent.len());
    assert!(received == sent, "Bob got every message once, in order");

    // The socket that never read was dropped: 1013, or the connection reset. (What the kernel
    // had buffered for it comes first; expect_close reads past it.)
    let code = slow.expect_close().await;
    assert!(code.is_none() || code == Some(1013), "slow reader closed with {code:?}");
    // Bob's socket still works.
    assert_eq!(srv.state.hub_connections(), 1);
    b.send_frame(&text("after the flood")).await;
    assert_eq!(b.recv::<MessageView>().await.message, "after the flood");
    assert_eq!(stored_count(&srv, &alice, &chat).await, sent.len() as i64 + 2);
    b.close().await;
    srv.finish().await;
}

async fn deleted_chat_and_removed_member(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let carol = user(&srv, "carol").await;

    // A chat deleted under an open socket: sending is refused with not_found, nothing is stored.
    let mut a = open(&srv, &chat, &alice, None).await;
    srv.delete_auth(&format!("/api/chat/{chat}/"), &bob.access, None)
        .await
        .expect_status(204);
    a.send_frame(&text("anyone?")).await;
    expect_error(&mut a, "not_found").await;
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &alice.access, None), None).await,
        "unknown_chat",
    );
    a.close().await;

    // A member removed from a group: their socket stops receiving and can no longer post.
    let reply = srv
        .post_json_auth(
            "/api/groups/",
            &alice.access,
            &json!({ "title": "Team", "members": [bob.id, carol.id] }),
        )
        .await;
    reply.expect_status(201);
    let group = id_of(&reply.body);
    let mut a = open(&srv, &group, &alice, None).await;
    let mut c = open(&srv, &group, &carol, Some("object")).await;
    a.send_frame(&text("welcome")).await;
    a.recv_json().await;
    assert_eq!(unwrap_object(&c.recv_json().await)["message"], "welcome");
    srv.delete_auth(
        &format!("/api/groups/{group}/members/{}/", carol.id),
        &alice.access,
        None,
    )
    .await
    .expect_status(204);
    a.send_frame(&text("Carol is gone")).await;
    assert_eq!(a.recv::<MessageView>().await.message, "Carol is gone");
    c.expect_silence().await;
    c.send_frame(&text("let me back")).await;
    expect_error(&mut c, "not_found").await;
    assert_refused(
        ws::try_connect(&chat_url(&srv, &group, &carol.access, None), None).await,
        "not_a_member",
    );
    assert_eq!(stored_count(&srv, &alice, &group).await, 2);
    a.close().await;
    c.close().await;
    srv.finish().await;
}

async fn metrics_are_exposed(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    assert_refused(
        ws::try_connect(&srv.ws_url(&format!("/ws/chat/{chat}/")), None).await,
        "missing_token",
    );
    let mut a = open(&srv, &chat, &alice, None).await;
    let mut b = open(&srv, &chat, &bob, None).await;
    a.send_frame(&text("counted")).await;
    a.recv_json().await;
    b.recv_json().await;
    let text = metrics(&srv).await;
    for name in [
        "causerie_ws_connections",
        "causerie_messages_stored_total",
        "causerie_deliveries_total",
        "causerie_ws_handshakes_refused_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(
        text.contains("reason=\"missing_token\""),
        "refusals are counted by reason:\n{text}"
    );
    a.close().await;
    b.close().await;
    srv.finish().await;
}
