//! WebSocket behaviour a client (or an attacker) sees at the socket's edges (issues 11 and 15):
//! the close handshake and the close code of every protocol error (raw TCP, reading the bytes),
//! the server's default v1 frame shape, tokenless v1 sockets for old apps, the handshake's
//! token grace, tokens that expire on open sockets and in-band `auth`, tokens carried in
//! `Sec-WebSocket-Protocol`, and the browser origin policy.

#[macro_use]
mod common;

use std::time::Duration;

use causerie::wire::v2::{self, Command, FrameType, ServerFrame};
use causerie::wire::{v1, MessageView};
use common::ws::{self, WsClient};
use common::{Backend, TestServer, TestUser, PASSWORD};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

backend_tests!(
    client_close_is_answered_v1,
    client_close_is_answered_v2,
    protocol_errors_close_with_rfc_codes,
    large_frames_on_raw_sockets,
    server_default_v1_format,
    anonymous_v1_sockets,
    handshake_token_grace,
    expired_tokens_end_sockets,
    first_frame_auth,
    token_in_subprotocol,
    browser_origin_policy,
    sockets_per_user_cap,
    replay_is_paged,
    unheard_removal_is_enforced_when_storing,
);

// ---- helpers ---------------------------------------------------------------------------------

async fn user(srv: &TestServer, name: &str) -> TestUser {
    srv.quick_user_named(&format!("{name}@example.com"), PASSWORD, name, "Tester")
        .await
}

/// Alice, Bob and the chat between them.
async fn pair(srv: &TestServer) -> (TestUser, TestUser, String) {
    let alice = user(srv, "alice").await;
    let bob = user(srv, "bob").await;
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    (alice, bob, chat)
}

fn chat_url(srv: &TestServer, chat: &str, token: &str) -> String {
    srv.ws_url(&format!("/ws/chat/{chat}/?token={token}"))
}

async fn stored_count(srv: &TestServer, user: &TestUser, chat: &str) -> i64 {
    let reply = srv
        .get_auth(&format!("/api/message/?refChat={chat}"), &user.access)
        .await;
    reply.expect_status(200);
    reply.body["count"].as_i64().unwrap()
}

async fn metrics(srv: &TestServer) -> String {
    let reply = srv.get("/metrics").await;
    reply.expect_status(200);
    reply.text
}

/// The value of an unlabelled counter or gauge on `/metrics` (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[track_caller]
fn assert_refused(outcome: Result<WsClient, ws::Refused>, status: u16, reason: Option<&str>) {
    match outcome {
        Ok(_) => panic!("handshake accepted; expected {status}"),
        Err(refused) => {
            assert_eq!(refused.status, status, "{}", refused.body);
            if let Some(reason) = reason {
                let body: Value = serde_json::from_str(&refused.body).unwrap();
                assert_eq!(
                    body,
                    json!({ "detail": "WebSocket connection refused.", "reason": reason })
                );
            }
        }
    }
}

/// Opens a WebSocket by hand over TCP: the request, the `101` head read to its end.
async fn raw_socket(srv: &TestServer, path: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        srv.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

/// A client frame (masked, as RFC 6455 requires of clients) with a short payload.
fn masked(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8];
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Everything the server writes until it closes the connection.
async fn read_until_eof(tcp: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(ws::FRAME_WAIT, tcp.read(&mut chunk)).await {
            Err(_) => panic!("connection still open after {:?}; read {received:02x?}", ws::FRAME_WAIT),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The close code of the first frame in `bytes`, which must be a close frame.
fn close_code(bytes: &[u8]) -> u16 {
    assert!(bytes.len() >= 4, "no close frame: {bytes:02x?}");
    assert_eq!(bytes[0], 0x88, "not a final close frame: {bytes:02x?}");
    u16::from_be_bytes([bytes[2], bytes[3]])
}

// ---- close handshake and protocol errors -----------------------------------------------------

async fn client_close_is_answered_v1(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, _bob, chat) = pair(&srv).await;
    let mut tcp = raw_socket(&srv, &format!("/ws/chat/{chat}/?token={}", alice.access)).await;
    // What a browser sends on "Back": close 1000, no reason.
    tcp.write_all(&masked(0x88, &1000u16.to_be_bytes())).await.unwrap();
    // Daphne's answer, byte for byte: a close frame echoing 1000, then the end.
    assert_eq!(read_until_eof(&mut tcp).await, vec![0x88, 0x02, 0x03, 0xe8]);
    srv.finish().await;
}

async fn client_close_is_answered_v2(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let alice = user(&srv, "alice").await;
    let mut tcp = raw_socket(&srv, &format!("/ws/?token={}", alice.access)).await;
    let mut payload = 1001u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"leaving");
    tcp.write_all(&masked(0x88, &payload)).await.unwrap();
    let reply = read_until_eof(&mut tcp).await;
    assert_eq!(close_code(&reply), 1001, "{reply:02x?}");
    srv.finish().await;
}

async fn protocol_errors_close_with_rfc_codes(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let path = format!("/ws/chat/{chat}/?token={}", alice.access);

    // A text frame that is not UTF-8: 1007.
    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&masked(0x81, &[b'{', 0xff, 0xfe, b'}'])).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1007);

    // An unmasked client frame: 1002.
    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1002);

    // Reserved bits set without an extension: 1002.
    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&masked(0xc1, b"{}")).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1002);

    // A continuation frame with nothing to continue: 1002.
    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&masked(0x80, b"{}")).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1002);

    // Nothing was stored, and the chat still works for everyone.
    assert_eq!(stored_count(&srv, &bob, &chat).await, 0);
    let mut b = ws::connect(&chat_url(&srv, &chat, &bob.access), None).await;
    b.send_frame(&v1::MessageFrame::text("still fine")).await;
    assert_eq!(b.recv::<MessageView>().await.message, "still fine");
    assert!(metrics(&srv).await.contains("causerie_ws_protocol_closes_total"));
    b.close().await;
    srv.finish().await;
}

/// A client frame with a 16-bit length (126 to 65535 payload bytes), masked.
fn masked_long(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x01, 0xc3, 0x7e];
    let mut frame = vec![first_byte, 0x80 | 126];
    frame.extend((payload.len() as u16).to_be_bytes());
    frame.extend(mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Frames over `ws_max_frame_bytes` byte by byte: a v1 text frame is read aside (even when its
/// header comes a byte at a time) and refused with an error frame unless it is a photo; one
/// that is not UTF-8 still closes 1007; a fragmented one, or any on a v2 socket, closes 1009.
async fn large_frames_on_raw_sockets(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.ws_max_frame_bytes = 1024).await;
    let (alice, bob, chat) = pair(&srv).await;
    let path = format!("/ws/chat/{chat}/?token={}", alice.access);
    let long_text = serde_json::to_vec(&json!({ "message": "x".repeat(3000) })).unwrap();

    let mut tcp = raw_socket(&srv, &path).await;
    let frame = masked_long(0x81, &long_text);
    for byte in &frame[..8] {
        tcp.write_all(std::slice::from_ref(byte)).await.unwrap();
        tcp.flush().await.unwrap();
    }
    tcp.write_all(&frame[8..]).await.unwrap();
    tcp.write_all(&masked(0x88, &1000u16.to_be_bytes())).await.unwrap();
    let reply = read_until_eof(&mut tcp).await;
    let reply_text = String::from_utf8_lossy(&reply);
    assert!(reply_text.contains("frame_too_large"), "{reply:02x?}");
    assert!(
        reply.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
        "then the close is answered: {reply:02x?}"
    );

    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&masked_long(0x81, &[0xff; 2000])).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1007);

    let mut tcp = raw_socket(&srv, &path).await;
    tcp.write_all(&masked_long(0x01, &long_text)).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1009);

    let mut tcp = raw_socket(&srv, &format!("/ws/?token={}", alice.access)).await;
    tcp.write_all(&masked_long(0x81, &long_text)).await.unwrap();
    assert_eq!(close_code(&read_until_eof(&mut tcp).await), 1009);

    assert_eq!(stored_count(&srv, &bob, &chat).await, 0);
    srv.finish().await;
}

// ---- the server's v1 frame shape ------------------------------------------------------------

async fn server_default_v1_format(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.ws_v1_format = causerie::config::V1Format::Object).await;
    let (alice, bob, chat) = pair(&srv).await;
    // The finished app's URL, unchanged: no format, and it reads msg["message"] as the object.
    let mut app = ws::connect(&chat_url(&srv, &chat, &alice.access), None).await;
    // `?format=text` still picks Day 2's shape for one socket.
    let mut day2 = ws::connect(&format!("{}&format=text", chat_url(&srv, &chat, &bob.access)), None).await;
    app.send_frame(&v1::MessageFrame::text("hello")).await;
    let object: v1::ObjectFrame = app.recv().await;
    assert_eq!(object.message.message, "hello");
    let text: Value = day2.recv_json().await;
    assert_eq!(text["message"], "hello");
    assert_eq!(text["id"], json!(object.message.id));
    app.close().await;
    day2.close().await;
    srv.finish().await;
}

// ---- tokenless v1 sockets (ws_allow_anonymous_v1) --------------------------------------------

async fn anonymous_v1_sockets(backend: Backend) {
    // Off by default: a tokenless socket is refused.
    let srv = TestServer::start(backend).await;
    let (_alice, _bob, chat) = pair(&srv).await;
    assert_refused(
        ws::try_connect(&srv.ws_url(&format!("/ws/chat/{chat}/")), None).await,
        403,
        Some("missing_token"),
    );
    srv.finish().await;

    let srv = TestServer::start_with(backend, |c| c.ws_allow_anonymous_v1 = true).await;
    let (alice, bob, chat) = pair(&srv).await;
    let carol = user(&srv, "carol").await;
    // Only an existing chat; a v2 socket still needs a token.
    assert_refused(
        ws::try_connect(&srv.ws_url(&format!("/ws/chat/{}/", uuid::Uuid::new_v4())), None).await,
        403,
        Some("unknown_chat"),
    );
    assert_refused(
        ws::try_connect(&srv.ws_url(&format!("/ws/chat/{chat}/")), Some(v2::SUBPROTOCOL)).await,
        403,
        Some("missing_token"),
    );
    let mut old_app = ws::connect(&srv.ws_url(&format!("/ws/chat/{chat}/")), None).await;
    let mut b = ws::connect(&chat_url(&srv, &chat, &bob.access), None).await;

    // The app's own frame, author a member: stored as that member's, delivered to everyone.
    let frame = v1::MessageFrame {
        ref_chat: Some(chat.parse().unwrap()),
        author: Some(alice.user_id()),
        kind: Some(0),
        extra_data: Some(Some(String::new())),
        ..v1::MessageFrame::text("from an old phone")
    };
    old_app.send_frame(&frame).await;
    let echo: MessageView = old_app.recv().await;
    assert_eq!(
        (echo.message.as_str(), echo.author),
        ("from an old phone", Some(alice.user_id()))
    );
    assert_eq!(b.recv::<MessageView>().await.id, echo.id);

    // No author, a stranger, a malformed id: an error frame each, nothing stored.
    for author in [
        None,
        Some(json!(carol.id)),
        Some(json!("nobody")),
        Some(json!(uuid::Uuid::new_v4())),
    ] {
        let mut bad = serde_json::to_value(v1::MessageFrame::text("forged")).unwrap();
        if let Some(author) = author {
            bad["author"] = author;
        }
        old_app.send_frame(&bad).await;
        let refused: v1::ErrorFrame = old_app.recv().await;
        assert_eq!(refused.error.code, "wrong_author");
    }
    b.expect_silence().await;
    assert_eq!(stored_count(&srv, &bob, &chat).await, 1);

    // (Metrics are the process's: the other backend's run of this test may add to them.)
    let text = metrics(&srv).await;
    assert!(metric(&text, "causerie_ws_anonymous_sockets_total") >= 1.0, "{text}");
    assert!(metric(&text, "causerie_ws_anonymous_messages_total") >= 1.0, "{text}");
    assert!(metric(&text, "causerie_ws_anonymous_connections") >= 1.0, "{text}");
    assert!(metric(&text, "causerie_ws_anonymous_refused_total") >= 4.0, "{text}");
    old_app.close().await;
    b.close().await;
    srv.finish().await;
}

// ---- tokens ---------------------------------------------------------------------------------

async fn handshake_token_grace(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.ws_token_grace_secs = 300).await;
    let (alice, _bob, chat) = pair(&srv).await;
    let stale = srv.state.access_token_lasting(alice.user_id(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The handshake takes the recently expired token…
    let socket = ws::connect(&chat_url(&srv, &chat, &stale), None).await;
    socket.close().await;
    // …REST does not (the grace is the handshake's only).
    srv.get_auth("/auth/users/me/", &stale).await.expect_status(401);
    // A token of a deactivated user is refused even within the grace.
    let carol = user(&srv, "carol").await;
    let carols = srv.state.access_token_lasting(carol.user_id(), 1);
    causerie::testing::store::users::set_active(srv.db(), carol.user_id(), false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_refused(
        ws::try_connect(&srv.ws_url(&format!("/ws/?token={carols}")), None).await,
        403,
        Some("inactive_user"),
    );
    srv.finish().await;

    // Without a grace (the default), the same stale token is refused.
    let srv = TestServer::start(backend).await;
    let (alice, _bob, chat) = pair(&srv).await;
    let stale = srv.state.access_token_lasting(alice.user_id(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_refused(
        ws::try_connect(&chat_url(&srv, &chat, &stale), None).await,
        403,
        Some("invalid_token"),
    );
    srv.finish().await;
}

async fn expired_tokens_end_sockets(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.ws_ping_interval_secs = 1;
        c.ws_v1_expiry_grace_secs = 1;
    })
    .await;
    let (alice, bob, chat) = pair(&srv).await;
    let short = |user: &TestUser| srv.state.access_token_lasting(user.user_id(), 2);

    // A v2 socket that never re-authenticates is closed with 4401 once its token expired.
    let mut lapsed = ws::connect(&srv.ws_url(&format!("/ws/?token={}", short(&alice))), None).await;
    // One that sends a fresh token in time lives on.
    let mut renewed = ws::connect(&srv.ws_url(&format!("/ws/?token={}", short(&alice))), None).await;
    renewed
        .send_frame(
            &Command::Auth(v2::Authenticate {
                token: alice.access.clone(),
            })
            .with_ref("renew"),
        )
        .await;
    let answer = renewed.recv_until(|f| f.kind() == FrameType::Authenticated).await;
    let answer = frame_of!(answer, ServerFrame::Authenticated);
    assert_eq!(answer.user, alice.user_id());
    assert_eq!(answer.reference, Some(json!("renew")));
    // Someone else's token, a refresh token: refused, the socket unchanged.
    for token in [bob.access.clone(), alice.refresh.clone()] {
        renewed.send_frame(&Command::Auth(v2::Authenticate { token })).await;
        let refused = renewed.recv_until(|f| f.kind() == FrameType::Error).await;
        let code = frame_of!(refused, ServerFrame::Error).code.clone();
        assert!(code == "wrong_user" || code == "invalid_token", "{code}");
    }
    // The v1 socket has no in-band auth: closed after its grace.
    let mut v1_socket = ws::connect(&chat_url(&srv, &chat, &short(&bob)), None).await;

    // Meanwhile the renewed socket keeps talking (so it also answers the server's pings).
    let closes = async { tokio::join!(lapsed.expect_close(), v1_socket.expect_close()) };
    let codes = tokio::select! {
        codes = closes => codes,
        _ = keep_talking(&mut renewed) => unreachable!(),
    };
    assert_eq!(codes, (Some(4401), Some(4401)));
    renewed.send_frame(&Command::Ping.with_ref("still")).await;
    let pong = renewed.recv_until(|f| f.kind() == FrameType::Pong).await;
    assert_eq!(pong.reference(), Some(&json!("still")));
    renewed.close().await;
    assert!(metrics(&srv).await.contains("causerie_ws_token_expired_closes_total"));
    srv.finish().await;
}

/// Pings and reads the pongs, forever.
async fn keep_talking(socket: &mut WsClient) {
    loop {
        socket.send_frame(&Command::Ping).await;
        socket.recv_until(|f| f.kind() == FrameType::Pong).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn first_frame_auth(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, _bob, chat) = pair(&srv).await;
    // No token in the URL: the first frame carries it.
    let mut socket = ws::connect(&srv.ws_url("/ws/"), Some(v2::SUBPROTOCOL)).await;
    socket
        .send_frame(&Command::Auth(v2::Authenticate {
            token: alice.access.clone(),
        }))
        .await;
    let first = socket.recv_frame().await;
    assert_eq!(frame_of!(&first, ServerFrame::Authenticated).user, alice.user_id());
    socket
        .send_frame(&Command::Subscribe(v2::Subscribe {
            chat: chat.parse().unwrap(),
            after_seq: None,
        }))
        .await;
    let subscribed = socket.recv_until(|f| f.kind() == FrameType::Subscribed).await;
    assert_eq!(subscribed.chat(), Some(chat.parse().unwrap()));
    socket.close().await;

    // A bad token, or any other first frame: an error frame, then close 4401.
    for (frame, code) in [
        (json!({ "type": "auth", "token": "not.a.jwt" }), "invalid_token"),
        (json!({ "type": "auth", "token": alice.refresh }), "invalid_token"),
        (json!({ "type": "ping" }), "auth_required"),
        (json!({ "type": "auth" }), "missing_field"),
    ] {
        let mut socket = ws::connect(&srv.ws_url("/ws/"), Some(v2::SUBPROTOCOL)).await;
        socket.send_frame(&frame).await;
        let refused = socket.recv_frame().await;
        assert_eq!(frame_of!(&refused, ServerFrame::Error).code, code, "{frame}");
        assert_eq!(socket.expect_close().await, Some(4401), "{frame}");
    }
    srv.finish().await;
}

async fn token_in_subprotocol(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let url = srv.ws_url(&format!("/ws/chat/{chat}/"));
    // v2: the token beside causerie.v2; only causerie.v2 is echoed.
    let offer = format!("{}, causerie.token.{}", v2::SUBPROTOCOL, alice.access);
    let mut a = ws::connect(&url, Some(&offer)).await;
    assert_eq!(a.protocol.as_deref(), Some(v2::SUBPROTOCOL));
    a.recv_until(|f| f.kind() == FrameType::Subscribed).await;
    // v1: the token beside causerie.v1.
    let offer = format!("causerie.v1, causerie.token.{}", bob.access);
    let mut b = ws::connect(&url, Some(&offer)).await;
    assert_eq!(b.protocol.as_deref(), Some("causerie.v1"));
    b.send_frame(&v1::MessageFrame::text("no token in my URL")).await;
    assert_eq!(b.recv::<MessageView>().await.author, Some(bob.user_id()));
    // A token with no protocol to echo: 400; a bad token: 403 as ever.
    assert_refused(
        ws::try_connect(&url, Some(&format!("causerie.token.{}", bob.access))).await,
        400,
        None,
    );
    assert_refused(
        ws::try_connect(&url, Some("causerie.v1, causerie.token.forged")).await,
        403,
        Some("invalid_token"),
    );
    a.close().await;
    b.close().await;
    srv.finish().await;
}

// ---- origins ---------------------------------------------------------------------------------

async fn browser_origin_policy(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.cors_origins = vec!["https://app.example".into()]).await;
    let (alice, _bob, chat) = pair(&srv).await;
    let url = chat_url(&srv, &chat, &alice.access);
    // A page on another site, with the victim's token or not: refused before the upgrade.
    assert_refused(
        ws::try_connect_with(&url, &[("Origin", "https://evil.example")]).await,
        403,
        Some("origin_not_allowed"),
    );
    assert_refused(
        ws::try_connect_with(&srv.ws_url("/ws/"), &[("Origin", "https://evil.example")]).await,
        403,
        Some("origin_not_allowed"),
    );
    // The allowed origin, and clients that send none (apps, scripts), are let in.
    ws::try_connect_with(&url, &[("Origin", "https://app.example")])
        .await
        .map_err(|r| r.body)
        .unwrap()
        .close()
        .await;
    ws::connect(&url, None).await.close().await;
    srv.finish().await;

    // ws_allowed_origins overrides the CORS list.
    let srv = TestServer::start_with(backend, |c| {
        c.ws_allowed_origins = Some(vec!["capacitor://localhost".into()]);
    })
    .await;
    let (alice, _bob, chat) = pair(&srv).await;
    let url = chat_url(&srv, &chat, &alice.access);
    ws::try_connect_with(&url, &[("Origin", "capacitor://localhost")])
        .await
        .map_err(|r| r.body)
        .unwrap()
        .close()
        .await;
    assert_refused(
        ws::try_connect_with(&url, &[("Origin", "http://127.0.0.1:8000")]).await,
        403,
        Some("origin_not_allowed"),
    );
    srv.finish().await;
}

// ---- per-user socket cap ---------------------------------------------------------------------

/// Opens a v1 socket and waits until its session runs (its first echo), so it is counted.
async fn open_counted(srv: &TestServer, chat: &str, user: &TestUser) -> WsClient {
    let mut socket = ws::connect(&chat_url(srv, chat, &user.access), None).await;
    socket.send_frame(&v1::MessageFrame::text("here")).await;
    socket.recv::<MessageView>().await;
    socket
}

async fn sockets_per_user_cap(backend: Backend) {
    // Across two instances (on PostgreSQL, when Redis is configured); on one otherwise.
    let redis = std::env::var("CAUSERIE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty() && backend == Backend::Postgres);
    let srv = TestServer::start_with(backend, |c| {
        c.ws_max_sockets_per_user = 2;
        c.redis_url = redis.clone();
    })
    .await;
    let (alice, bob, chat) = pair(&srv).await;
    let first = open_counted(&srv, &chat, &alice).await;
    // With Redis, the second socket is on another instance and still counts.
    let peer = match &redis {
        Some(url) => Some(
            srv.start_peer(|c| {
                c.ws_max_sockets_per_user = 2;
                c.redis_url = Some(url.clone());
            })
            .await,
        ),
        None => None,
    };
    let second = open_counted(peer.as_ref().unwrap_or(&srv), &chat, &alice).await;
    for url in [
        chat_url(&srv, &chat, &alice.access),
        srv.ws_url(&format!("/ws/?token={}", alice.access)),
    ] {
        assert_refused(ws::try_connect(&url, None).await, 429, Some("too_many_sockets"));
    }
    // Another user is not affected.
    let b = open_counted(&srv, &chat, &bob).await;
    // Once a socket closes, there is room again.
    first.close().await;
    let deadline = tokio::time::Instant::now() + ws::FRAME_WAIT;
    let third = loop {
        match ws::try_connect(&chat_url(&srv, &chat, &alice.access), None).await {
            Ok(socket) => break socket,
            Err(refused) => {
                assert_eq!(refused.status, 429, "{}", refused.body);
                assert!(tokio::time::Instant::now() < deadline, "the closed socket still counts");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    for socket in [second, third, b] {
        socket.close().await;
    }
    if let Some(peer) = peer {
        peer.finish().await;
    }
    srv.finish().await;
}

// ---- bounded replay --------------------------------------------------------------------------

async fn replay_is_paged(backend: Backend) {
    use causerie::testing::store::messages::{insert_batch, NewMessage};
    let srv = TestServer::start(backend).await;
    let (alice, bob, chat) = pair(&srv).await;
    let chat_id: causerie::ids::ChatId = chat.parse().unwrap();
    let total = 450i64;
    let batch: Vec<NewMessage> = (0..total)
        .map(|i| NewMessage {
            chat_id,
            author: bob.user_id(),
            client_id: None,
            body: format!("m{i}"),
            kind: 0,
            extra_data: Some(String::new()),
        })
        .collect();
    insert_batch(srv.db(), &batch).await.unwrap();

    let mut socket = ws::connect(
        &srv.ws_url(&format!("/ws/?token={}", alice.access)),
        Some(v2::SUBPROTOCOL),
    )
    .await;
    // A subscribe from the start replays one page, says there is more, and does not follow yet.
    let mut held = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        socket
            .send_frame(&Command::Subscribe(v2::Subscribe {
                chat: chat_id,
                after_seq: Some(after),
            }))
            .await;
        let frames = socket.frames_until(|f| f.kind() == FrameType::Subscribed).await;
        let (subscribed, messages) = frames.split_last().unwrap();
        let subscribed = frame_of!(subscribed, ServerFrame::Subscribed);
        assert!(messages.len() as i64 <= 200, "a page holds {} messages", messages.len());
        held.extend(messages.iter().map(|f| f.message().unwrap().seq.unwrap()));
        pages += 1;
        after = subscribed.last_seq;
        if !subscribed.more {
            break;
        }
        // Paged: nothing live arrives for a chat not followed yet.
        assert_eq!(Some(&after), held.last());
    }
    assert_eq!(held, (1..=total).collect::<Vec<_>>(), "every message once, in order");
    assert_eq!(pages, 3);
    // Caught up: followed live from there.
    let mut b = ws::connect(&chat_url(&srv, &chat, &bob.access), None).await;
    b.send_frame(&v1::MessageFrame::text("live")).await;
    let live = socket.recv_until(|f| f.kind() == FrameType::Message).await;
    assert_eq!(live.message().unwrap().seq, Some(total + 1));
    b.close().await;

    // resume shares one page over all its chats.
    let mut again = ws::connect(
        &srv.ws_url(&format!("/ws/?token={}", alice.access)),
        Some(v2::SUBPROTOCOL),
    )
    .await;
    again
        .send_frame(&Command::Resume(v2::Resume {
            chats: vec![(chat_id, 0)],
        }))
        .await;
    let frames = again.frames_until(|f| f.kind() == FrameType::Subscribed).await;
    // Only messages count: Bob's socket closing just before may put his presence in between.
    let replayed = frames.iter().filter(|f| f.kind() == FrameType::Message).count();
    assert_eq!(replayed, 200);
    assert!(frame_of!(frames.last().unwrap(), ServerFrame::Subscribed).more);
    again.close().await;
    socket.close().await;
    srv.finish().await;
}

// ---- membership in the storing transaction (issue 15 item 15) -------------------------------

/// A member removed where this instance's sockets never heard of it (another instance removed
/// them while the relay was down: here the row is deleted in the database, past every hub):
/// their open v1 and v2 sockets still sit in the room, yet what they post is refused by the
/// storing transaction itself, with the not-a-member error, and nothing is stored or acked.
async fn unheard_removal_is_enforced_when_storing(backend: Backend) {
    use causerie::testing::store::chats;
    let srv = TestServer::start(backend).await;
    let alice = user(&srv, "alice").await;
    let bob = user(&srv, "bob").await;
    let carol = user(&srv, "carol").await;
    let reply = srv
        .post_json_auth(
            "/api/groups/",
            &alice.access,
            &json!({ "title": "Team", "members": [bob.id, carol.id] }),
        )
        .await;
    reply.expect_status(201);
    let group = reply.body["id"].as_str().unwrap().to_string();
    let group_id: causerie::ids::ChatId = group.parse().unwrap();
    let mut v1_socket = ws::connect(&chat_url(&srv, &group, &carol.access), None).await;
    let mut v2_socket = ws::connect(
        &srv.ws_url(&format!("/ws/?token={}", carol.access)),
        Some(v2::SUBPROTOCOL),
    )
    .await;
    v2_socket
        .send_frame(&Command::Subscribe(v2::Subscribe {
            chat: group_id,
            after_seq: None,
        }))
        .await;
    v2_socket.recv_until(|f| f.kind() == FrameType::Subscribed).await;
    v1_socket.send_frame(&v1::MessageFrame::text("still in")).await;
    assert_eq!(v1_socket.recv::<MessageView>().await.message, "still in");

    assert!(chats::remove_member(srv.db(), group_id, carol.user_id()).await.unwrap());

    v1_socket.send_frame(&v1::MessageFrame::text("v1 after removal")).await;
    let refused = v1_socket.recv_json().await;
    assert_eq!(refused["error"]["code"], "not_found", "{refused}");
    v2_socket
        .send_frame(&Command::Send(v2::SendMessage {
            chat: group_id,
            client_id: "late".into(),
            message: "v2 after removal".into(),
            message_type: None,
            extra_data: None,
            attachments: Vec::new(),
        }))
        .await;
    let frames = v2_socket.frames_until(|f| f.kind() == FrameType::Error).await;
    assert!(
        !frames.iter().any(|f| f.kind() == FrameType::Ack),
        "no ack for a refused send: {frames:?}"
    );
    let error = frame_of!(frames.last().unwrap(), ServerFrame::Error);
    assert_eq!(error.code, "not_found", "{error:?}");
    assert_eq!(error.client_id.as_deref(), Some("late"));
    assert_eq!(error.chat, Some(group_id));
    assert_eq!(
        stored_count(&srv, &alice, &group).await,
        1,
        "only the message from before"
    );
    let text = metrics(&srv).await;
    // At least: the other backend's run of this test counts in the same process.
    assert!(
        metric(&text, "causerie_messages_refused_not_member_total") >= 2.0,
        "{text}"
    );
    // The others go on as before.
    let mut a = ws::connect(&chat_url(&srv, &group, &alice.access), None).await;
    a.send_frame(&v1::MessageFrame::text("carry on")).await;
    assert_eq!(a.recv::<MessageView>().await.message, "carry on");
    assert_eq!(stored_count(&srv, &alice, &group).await, 2);
    a.close().await;
    v1_socket.close().await;
    v2_socket.close().await;
    srv.finish().await;
}
