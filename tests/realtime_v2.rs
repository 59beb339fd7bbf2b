//! The `causerie.v2` realtime protocol (docs/protocol.md, issue 4), black-box against a real
//! server on every configured backend: subprotocol selection, acknowledged and idempotent sends
//! (also across a reconnect and a server restart), ordered gap-free streams, resume, receipts,
//! typing, presence, edits and deletes, group membership, error codes, and v1/v2 interplay.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use causerie::{Config, Server};
use common::ws::{self, WsClient, QUIET_WAIT};
use common::{Backend, Reply, TestServer, TestUser};
use futures_util::SinkExt;
use reqwest::Method;
use serde_json::{json, Value};
use tempfile::TempDir;
use uuid::Uuid;

const V2: &str = "causerie.v2";

backend_tests!(
    subprotocol_selects_v2,
    send_is_acknowledged_and_idempotent,
    retry_after_server_restart_is_a_duplicate,
    group_members_see_one_order,
    resume_replays_exactly_the_missed_messages,
    resume_while_messages_keep_coming,
    one_socket_follows_many_chats,
    read_receipts,
    typing_is_delivered_and_rate_limited,
    presence_follows_first_and_last_socket,
    edit_and_delete_frames,
    group_membership_over_v2,
    bad_input_gets_error_codes_and_socket_survives,
    unread_counts_under_concurrent_reads_and_writes,
    v1_and_v2_clients_share_a_chat,
    a_sender_waiting_for_storage_keeps_receiving,
);

// ---- HTTP helpers --------------------------------------------------------------------------

/// What a test needs to talk HTTP to a server: its client and base URL (cloneable into tasks).
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn of(srv: &TestServer) -> Api {
        Api {
            client: srv.client.clone(),
            base: srv.base_url(),
        }
    }

    fn of_server(server: &Server) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
            base: server.url(),
        }
    }

    fn ws(&self, path: &str) -> String {
        format!("{}{}", self.base.replacen("http://", "ws://", 1), path)
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> Reply {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        Reply::read(req.send().await.expect("request sent")).await
    }

    /// The two-person chat between `me` and `other` (created on first use).
    async fn create_chat(&self, me: &TestUser, other: &TestUser) -> String {
        let reply = self
            .call(
                Method::POST,
                "/api/createChat/",
                &me.access,
                Some(&json!({ "refUser": me.id, "chatWithUser": other.id })),
            )
            .await;
        reply.expect_status(201);
        reply.body["id"].as_str().expect("chat id").to_string()
    }

    async fn create_group(&self, admin: &TestUser, title: &str, members: &[&TestUser]) -> String {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let reply = self
            .call(
                Method::POST,
                "/api/groups/",
                &admin.access,
                Some(&json!({ "title": title, "members": ids })),
            )
            .await;
        reply.expect_status(201);
        reply.body["id"].as_str().expect("group id").to_string()
    }

    /// Posts a message through REST; returns the stored message.
    async fn post_message(&self, token: &str, chat: &str, text: &str) -> Value {
        let reply = self
            .call(
                Method::POST,
                "/api/message/",
                token,
                Some(&json!({ "refChat": chat, "message": text })),
            )
            .await;
        reply.expect_status(201);
        reply.body
    }

    /// The chat's message history as `token` sees it (the newest first, one big page).
    async fn messages(&self, token: &str, chat: &str) -> Value {
        let reply = self
            .call(
                Method::GET,
                &format!("/api/message/?refChat={chat}&page_size=100"),
                token,
                None,
            )
            .await;
        reply.expect_status(200);
        reply.body
    }

    async fn message_count(&self, token: &str, chat: &str) -> i64 {
        self.messages(token, chat).await["count"].as_i64().expect("count")
    }

    async fn unread_count(&self, token: &str, chat: &str) -> i64 {
        let reply = self
            .call(Method::GET, &format!("/api/chat/?id={chat}"), token, None)
            .await;
        reply.expect_status(200);
        assert_eq!(reply.body["count"], 1, "one chat listed: {}", reply.text);
        reply.body["results"][0]["unreadCount"].as_i64().expect("unreadCount")
    }
}

// ---- WebSocket helpers ---------------------------------------------------------------------

fn kind(frame: &Value) -> &str {
    frame["type"].as_str().unwrap_or("")
}

/// Frames up to and including the first one `want` accepts.
async fn frames_until(ws: &mut WsClient, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = ws.recv_json().await;
        let done = want(&frame);
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

/// Round trip through the socket: everything the server queued before the `pong` is returned.
async fn sync(ws: &mut WsClient) -> Vec<Value> {
    let tag = Uuid::new_v4().to_string();
    ws.send_json(&json!({ "type": "ping", "ref": tag })).await;
    let mut frames = frames_until(ws, |f| kind(f) == "pong" && f["ref"] == tag.as_str()).await;
    frames.pop();
    frames
}

/// The `message` frames of `chat` among `frames`.
fn messages_in<'a>(frames: &'a [Value], chat: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| kind(f) == "message" && f["chat"] == chat)
        .collect()
}

fn seqs(frames: &[&Value]) -> Vec<i64> {
    frames
        .iter()
        .map(|f| f["message"]["seq"].as_i64().expect("seq"))
        .collect()
}

/// Listens for a while and asserts that no `message` frame of `chat` arrives (other frames,
/// such as presence, may).
async fn no_message_in(ws: &mut WsClient, chat: &str) {
    let deadline = tokio::time::Instant::now() + QUIET_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match ws.next_json(left).await {
            None => return,
            Some(frame) => assert!(
                !(kind(&frame) == "message" && frame["chat"] == chat),
                "unexpected message frame: {frame}"
            ),
        }
    }
}

/// A `/ws/` socket (v2 for all chats), ready once the server answered a ping.
async fn user_socket(api: &Api, user: &TestUser) -> WsClient {
    let mut ws = ws::connect(&api.ws(&format!("/ws/?token={}", user.access)), Some(V2)).await;
    assert_eq!(ws.protocol.as_deref(), Some(V2), "/ws/ selects causerie.v2");
    sync(&mut ws).await;
    ws
}

/// A v2 socket on `/ws/chat/{chat}/`, returned with the frames up to its `subscribed`.
async fn chat_socket(api: &Api, user: &TestUser, chat: &str) -> (WsClient, Vec<Value>) {
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}", user.access));
    let mut ws = ws::connect(&url, Some(V2)).await;
    assert_eq!(
        ws.protocol.as_deref(),
        Some(V2),
        "/ws/chat/ selects causerie.v2 when offered"
    );
    let frames = frames_until(&mut ws, |f| kind(f) == "subscribed" && f["chat"] == chat).await;
    (ws, frames)
}

/// Subscribes and returns the frames up to `subscribed` (the replay, if any, and that frame).
async fn subscribe(ws: &mut WsClient, chat: &str, after: Option<i64>) -> Vec<Value> {
    let mut frame = json!({ "type": "subscribe", "chat": chat });
    if let Some(after) = after {
        frame["afterSeq"] = json!(after);
    }
    ws.send_json(&frame).await;
    frames_until(ws, |f| {
        (kind(f) == "subscribed" && f["chat"] == chat) || kind(f) == "error"
    })
    .await
}

/// Sends a v2 `send` frame and returns the frames up to and including its `ack`.
async fn send_v2(ws: &mut WsClient, chat: &str, client_id: &str, text: &str) -> Vec<Value> {
    ws.send_json(&json!({ "type": "send", "chat": chat, "clientId": client_id, "message": text }))
        .await;
    frames_until(ws, |f| {
        (kind(f) == "ack" && f["clientId"] == client_id) || kind(f) == "error"
    })
    .await
}

/// The `ack` at the end of `send_v2`'s frames.
fn ack_of(frames: &[Value]) -> &Value {
    let ack = frames.last().expect("frames");
    assert_eq!(kind(ack), "ack", "expected an ack, got {ack}");
    ack
}

/// Sends a frame that must be refused with `code`; returns the error frame.
async fn expect_error(ws: &mut WsClient, frame: &Value, code: &str) -> Value {
    ws.send_json(frame).await;
    let error = ws.recv_until(|f| kind(f) == "error").await;
    assert_eq!(error["code"], code, "refusing {frame}: {error}");
    assert!(error["detail"].is_string(), "error detail: {error}");
    error
}

// ---- tests ---------------------------------------------------------------------------------

async fn subprotocol_selects_v2(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;

    // /ws/chat/{id}/ offered causerie.v2: selected, and that chat is followed at once.
    let (mut b_v2, frames) = chat_socket(&api, b, &chat).await;
    let subscribed = frames.last().unwrap();
    assert_eq!(subscribed["lastSeq"], 0, "{subscribed}");

    // /ws/ offered causerie.v2: selected; it speaks v2.
    let mut a_all = user_socket(&api, a).await;
    assert_eq!(
        kind(&subscribe(&mut a_all, &chat, None).await.pop().unwrap()),
        "subscribed"
    );

    // Without the subprotocol, /ws/chat/{id}/ stays the seed's v1.
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}", a.access));
    let mut a_v1 = ws::connect(&url, None).await;
    assert_eq!(a_v1.protocol, None, "no subprotocol selected for a v1 client");
    a_v1.send_json(&json!({ "message": "hello from v1" })).await;
    let echo = a_v1.recv_json().await;
    assert_eq!(echo["message"], "hello from v1", "v1 text format: {echo}");
    assert_eq!(echo["refChat"], chat.as_str());
    assert_eq!(
        echo["type"], 0,
        "v1 frames carry the message type, not a frame type: {echo}"
    );
    assert!(echo.get("seq").is_none(), "v1 frames have no seq: {echo}");

    // v2 sockets got it as a v2 `message` frame.
    for ws in [&mut b_v2, &mut a_all] {
        let frame = ws.recv_until(|f| kind(f) == "message").await;
        assert_eq!(frame["chat"], chat.as_str());
        assert_eq!(frame["message"]["message"], "hello from v1");
        assert_eq!(frame["message"]["seq"], 1);
        assert_eq!(frame["message"]["id"], echo["id"]);
    }
    srv.finish().await;
}

async fn send_is_acknowledged_and_idempotent(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, &chat).await;

    a_ws.send_json(&json!({
        "type": "send", "chat": chat, "clientId": "c-1", "message": "hello", "ref": "r1"
    }))
    .await;
    let frames = frames_until(&mut a_ws, |f| kind(f) == "ack").await;
    let first = ack_of(&frames).clone();
    assert_eq!(first["clientId"], "c-1", "{first}");
    assert_eq!(first["chat"], chat.as_str());
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["ref"], "r1", "the ack carries the frame's ref");
    let message = &first["message"];
    assert!(
        Uuid::parse_str(message["id"].as_str().expect("id")).is_ok(),
        "{message}"
    );
    assert!(message["createdAt"].is_string(), "{message}");
    assert_eq!(message["seq"], 1);
    assert_eq!(message["clientId"], "c-1");
    assert_eq!(message["message"], "hello");
    assert_eq!(message["refChat"], chat.as_str());
    assert_eq!(message["author"], a.id.as_str());

    // The other side gets one `message` frame for it.
    let delivered = b_ws.recv_until(|f| kind(f) == "message").await;
    assert_eq!(delivered["chat"], chat.as_str());
    assert_eq!(
        delivered["message"], *message,
        "the delivered message is the stored one"
    );

    // The sender's socket follows the chat: its own copy comes as a `message` frame too, once.
    // The ack is written as soon as the message is stored, before that copy.
    assert!(!frames.iter().any(|f| kind(f) == "message"), "ack first: {frames:?}");
    let own = a_ws.recv_until(|f| kind(f) == "message").await;
    assert_eq!(own["message"], *message);

    // Retry on the same socket: same ack, marked duplicate, and no new message frame.
    let retry = send_v2(&mut a_ws, &chat, "c-1", "hello").await;
    assert!(
        !retry.iter().any(|f| kind(f) == "message"),
        "a retry is not delivered again: {retry:?}"
    );
    let second = ack_of(&retry);
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(
        second["message"], *message,
        "the retry is answered with the stored message"
    );

    // Retry after closing and reopening the socket.
    a_ws.close().await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let retry = send_v2(&mut a_ws, &chat, "c-1", "hello").await;
    let third = ack_of(&retry);
    assert_eq!(third["duplicate"], true, "{third}");
    assert_eq!(third["message"]["id"], message["id"]);
    assert_eq!(third["message"]["seq"], message["seq"]);
    assert_eq!(third["message"], *message);

    assert_eq!(api.message_count(&a.access, &chat).await, 1, "one stored message");

    // The retries were not delivered again: B's next message is the next one.
    let next = ack_of(&send_v2(&mut a_ws, &chat, "c-2", "next").await).clone();
    assert_eq!(next["duplicate"], false);
    assert_eq!(next["message"]["seq"], 2);
    let frames = frames_until(&mut b_ws, |f| kind(f) == "message").await;
    let delivered = frames.last().unwrap();
    assert_eq!(
        delivered["message"]["seq"], 2,
        "B got no second copy of seq 1: {frames:?}"
    );
    assert_eq!(delivered["message"]["clientId"], "c-2");
    no_message_in(&mut b_ws, &chat).await;
    assert_eq!(api.message_count(&a.access, &chat).await, 2);

    // The same clientId in another chat is another message.
    let c = srv.quick_user("carol@example.com", common::PASSWORD).await;
    let other = api.create_chat(a, &c).await;
    assert_eq!(
        kind(subscribe(&mut a_ws, &other, None).await.last().unwrap()),
        "subscribed"
    );
    let elsewhere = ack_of(&send_v2(&mut a_ws, &other, "c-1", "hello").await).clone();
    assert_eq!(elsewhere["duplicate"], false);
    assert_eq!(elsewhere["message"]["seq"], 1, "sequences are per chat");
    assert_ne!(elsewhere["message"]["id"], message["id"]);
    srv.finish().await;
}

/// A server on a database the test owns, so that it can be stopped and started again.
struct Restartable {
    config: Config,
    server: Option<Server>,
    pg: Option<common::PgDatabase>,
    _dir: TempDir,
}

impl Restartable {
    async fn start(backend: Backend) -> Restartable {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = common::base_config();
        let pg = match backend {
            Backend::Sqlite => {
                config.database_url = format!("sqlite://{}/restart.db", dir.path().display());
                None
            }
            Backend::Postgres => {
                let admin = std::env::var(common::POSTGRES_ENV).expect("PostgreSQL configured");
                let db = common::PgDatabase::create(&admin).await;
                config.database_url = db.url.clone();
                Some(db)
            }
        };
        let server = Server::start(config.clone()).await.expect("server starts");
        Restartable {
            config,
            server: Some(server),
            pg,
            _dir: dir,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Stops the server and starts a new one on the same database and secret.
    async fn restart(&mut self) {
        let old = self.server.take().expect("running");
        old.shutdown().await.expect("clean shutdown");
        self.server = Some(Server::start(self.config.clone()).await.expect("server restarts"));
    }

    async fn user(&self, email: &str) -> TestUser {
        let state = self.server().testing();
        let hash = causerie::testing::hash_password(common::PASSWORD);
        let row = causerie::testing::store::users::insert(
            &state.db(),
            &causerie::testing::store::users::NewUser {
                email,
                password_hash: &hash,
                first_name: "",
                last_name: "",
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("inserting a user");
        TestUser {
            id: row.id.to_string(),
            email: email.to_string(),
            password: common::PASSWORD.to_string(),
            access: state.access_token(row.id),
            refresh: state.refresh_token(row.id),
        }
    }

    async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        if let Some(pg) = self.pg.as_mut() {
            pg.drop_now().await;
        }
    }
}

async fn retry_after_server_restart_is_a_duplicate(backend: Backend) {
    let mut node = Restartable::start(backend).await;
    let a = node.user("alice@example.com").await;
    let b = node.user("bob@example.com").await;
    let api = Api::of_server(node.server());
    let chat = api.create_chat(&a, &b).await;

    let (mut a_ws, _) = chat_socket(&api, &a, &chat).await;
    let first = ack_of(&send_v2(&mut a_ws, &chat, "restart-1", "before the restart").await).clone();
    assert_eq!(first["duplicate"], false);
    let retry = ack_of(&send_v2(&mut a_ws, &chat, "restart-1", "before the restart").await).clone();
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["message"], first["message"]);
    a_ws.close().await;
    let a_ws_again = chat_socket(&api, &a, &chat).await;
    let (mut a_ws, _) = a_ws_again;
    let third = ack_of(&send_v2(&mut a_ws, &chat, "restart-1", "before the restart").await).clone();
    assert_eq!(third["duplicate"], true);
    assert_eq!(third["message"], first["message"]);
    a_ws.close().await;

    node.restart().await;
    let api = Api::of_server(node.server());
    let (mut a_ws, frames) = chat_socket(&api, &a, &chat).await;
    assert_eq!(frames.last().unwrap()["lastSeq"], 1, "the stored message survived");
    let after = ack_of(&send_v2(&mut a_ws, &chat, "restart-1", "before the restart").await).clone();
    assert_eq!(
        after["duplicate"], true,
        "a retry after a restart is still a duplicate: {after}"
    );
    assert_eq!(after["message"]["id"], first["message"]["id"]);
    assert_eq!(after["message"]["seq"], first["message"]["seq"]);
    assert_eq!(after["message"], first["message"]);
    assert_eq!(api.message_count(&a.access, &chat).await, 1, "one stored message");
    a_ws.close().await;
    node.finish().await;
}

async fn group_members_see_one_order(backend: Backend) {
    const MEMBERS: usize = 5;
    const EACH: usize = 12;
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(MEMBERS).await;
    let others: Vec<&TestUser> = users[1..].iter().collect();
    let group = api.create_group(&users[0], "ordering", &others).await;

    let mut sockets = Vec::new();
    for user in &users {
        let mut ws = user_socket(&api, user).await;
        let frames = subscribe(&mut ws, &group, None).await;
        assert_eq!(frames.last().unwrap()["lastSeq"], 0, "{frames:?}");
        sockets.push(ws);
    }

    // Every member fires its sends at once, then reads until it holds everything.
    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                ws.send_json(&json!({
                    "type": "send", "chat": group, "clientId": format!("m{i}-{n}"), "message": format!("{i}:{n}")
                }))
                .await;
            }
            let mut messages: Vec<(i64, String)> = Vec::new();
            let mut acks: Vec<i64> = Vec::new();
            while messages.len() < MEMBERS * EACH || acks.len() < EACH {
                let frame = ws.recv_json().await;
                match kind(&frame) {
                    "message" => {
                        assert_eq!(frame["chat"], group.as_str());
                        messages.push((
                            frame["message"]["seq"].as_i64().expect("seq"),
                            frame["message"]["id"].as_str().expect("id").to_string(),
                        ));
                    }
                    "ack" => {
                        assert_eq!(frame["duplicate"], false, "{frame}");
                        acks.push(frame["message"]["seq"].as_i64().expect("seq"));
                    }
                    "error" => panic!("member {i}: unexpected error {frame}"),
                    _ => {}
                }
            }
            assert!(
                acks.windows(2).all(|w| w[0] < w[1]),
                "member {i}: one socket's sends get increasing seqs: {acks:?}"
            );
            (messages, ws)
        }));
    }
    let mut streams = Vec::new();
    for task in tasks {
        let (messages, mut ws) = task.await.expect("member task");
        no_message_in(&mut ws, &group).await;
        streams.push(messages);
    }

    let total = (MEMBERS * EACH) as i64;
    let expected: Vec<i64> = (1..=total).collect();
    for (i, stream) in streams.iter().enumerate() {
        let got: Vec<i64> = stream.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(got, expected, "member {i}: every seq once, in order, no gaps");
        let ids: HashSet<&String> = stream.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), stream.len(), "member {i}: no duplicate ids");
        assert_eq!(
            stream, &streams[0],
            "member {i} sees the same sequence of ids as member 0"
        );
    }
    assert_eq!(api.message_count(&users[0].access, &group).await, total);
    srv.finish().await;
}

async fn resume_replays_exactly_the_missed_messages(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let mut b_ws = user_socket(&api, b).await;
    subscribe(&mut b_ws, &chat, None).await;

    for n in 1..=3 {
        send_v2(&mut a_ws, &chat, &format!("early-{n}"), &format!("early {n}")).await;
    }
    let frames = frames_until(&mut b_ws, |f| kind(f) == "message" && f["message"]["seq"] == 3).await;
    assert_eq!(seqs(&messages_in(&frames, &chat)), vec![1, 2, 3]);
    let last_seen = 3;

    // B's connection dies without a goodbye; A carries on over v2 and REST.
    drop(b_ws);
    let mut missed = Vec::new();
    for n in 1..=2 {
        let ack = ack_of(&send_v2(&mut a_ws, &chat, &format!("missed-{n}"), &format!("missed {n}")).await).clone();
        missed.push(ack["message"]["id"].clone());
    }
    for n in 3..=4 {
        let stored = api.post_message(&a.access, &chat, &format!("missed {n}")).await;
        missed.push(stored["id"].clone());
    }

    let mut b_ws = user_socket(&api, b).await;
    b_ws.send_json(&json!({ "type": "resume", "chats": { chat.clone(): last_seen }, "ref": "res" }))
        .await;
    let frames = frames_until(&mut b_ws, |f| kind(f) == "subscribed" || kind(f) == "error").await;
    let subscribed = frames.last().unwrap();
    assert_eq!(kind(subscribed), "subscribed", "{subscribed}");
    assert_eq!(subscribed["ref"], "res", "the reply to resume carries its ref");
    assert_eq!(subscribed["chat"], chat.as_str());
    assert_eq!(subscribed["lastSeq"], 7);
    let replay = messages_in(&frames, &chat);
    assert_eq!(seqs(&replay), vec![4, 5, 6, 7], "exactly the missed messages, in order");
    let ids: Vec<Value> = replay.iter().map(|f| f["message"]["id"].clone()).collect();
    assert_eq!(ids, missed);
    assert_eq!(replay[0]["message"]["message"], "missed 1");
    assert_eq!(replay[3]["message"]["message"], "missed 4");

    // Live messages follow, without repeats.
    send_v2(&mut a_ws, &chat, "live-1", "live 1").await;
    api.post_message(&a.access, &chat, "live 2").await;
    let frames = frames_until(&mut b_ws, |f| kind(f) == "message" && f["message"]["seq"] == 9).await;
    assert_eq!(seqs(&messages_in(&frames, &chat)), vec![8, 9]);
    no_message_in(&mut b_ws, &chat).await;
    srv.finish().await;
}

async fn resume_while_messages_keep_coming(backend: Backend) {
    const BEFORE: i64 = 10;
    const DURING: i64 = 50;
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (users[0].clone(), users[1].clone());
    let chat = api.create_chat(&a, &b).await;
    for n in 1..=BEFORE {
        api.post_message(&a.access, &chat, &format!("before {n}")).await;
    }
    let last_seen = 4;

    let mut b_ws = user_socket(&api, &b).await;
    let sender = {
        let (api, chat, token) = (api.clone(), chat.clone(), a.access.clone());
        tokio::spawn(async move {
            for n in 1..=DURING {
                api.post_message(&token, &chat, &format!("during {n}")).await;
            }
        })
    };
    // Let the sender get going, so that the replay overlaps with live messages.
    while api.message_count(&a.access, &chat).await < BEFORE + 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b_ws.send_json(&json!({ "type": "resume", "chats": { chat.clone(): last_seen } }))
        .await;

    let last = BEFORE + DURING;
    let mut got = Vec::new();
    let mut subscribed_at = None;
    while got.last() != Some(&last) {
        let frame = b_ws.recv_json().await;
        match kind(&frame) {
            "message" => {
                assert_eq!(frame["chat"], chat.as_str());
                got.push(frame["message"]["seq"].as_i64().expect("seq"));
            }
            "subscribed" => {
                assert!(subscribed_at.is_none(), "one subscribed frame");
                let last_seq = frame["lastSeq"].as_i64().expect("lastSeq");
                assert_eq!(
                    got.last().copied().unwrap_or(last_seen),
                    last_seq,
                    "lastSeq is the last one replayed"
                );
                subscribed_at = Some(last_seq);
            }
            "error" => panic!("unexpected error {frame}"),
            _ => {}
        }
    }
    sender.await.expect("sender task");
    assert!(subscribed_at.is_some(), "a subscribed frame came");
    let expected: Vec<i64> = (last_seen + 1..=last).collect();
    assert_eq!(got, expected, "every seq exactly once, in order");
    no_message_in(&mut b_ws, &chat).await;
    srv.finish().await;
}

async fn one_socket_follows_many_chats(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let with_b = api.create_chat(a, b).await;
    let with_c = api.create_chat(a, c).await;

    let mut a_ws = user_socket(&api, a).await;
    for chat in [&with_b, &with_c] {
        let subscribed = subscribe(&mut a_ws, chat, None).await.pop().unwrap();
        assert_eq!(kind(&subscribed), "subscribed", "{subscribed}");
        assert_eq!(subscribed["lastSeq"], 0);
    }
    api.post_message(&b.access, &with_b, "from b").await;
    api.post_message(&c.access, &with_c, "from c").await;
    let mut texts = HashSet::new();
    while texts.len() < 2 {
        let frame = a_ws.recv_until(|f| kind(f) == "message").await;
        let chat = frame["chat"].as_str().unwrap().to_string();
        let text = frame["message"]["message"].as_str().unwrap().to_string();
        assert!(
            (chat == with_b && text == "from b") || (chat == with_c && text == "from c"),
            "{frame}"
        );
        texts.insert(text);
    }

    a_ws.send_json(&json!({ "type": "unsubscribe", "chat": with_c, "ref": "u" }))
        .await;
    let unsubscribed = a_ws.recv_until(|f| kind(f) == "unsubscribed").await;
    assert_eq!(unsubscribed["chat"], with_c.as_str());
    assert_eq!(unsubscribed["ref"], "u");
    api.post_message(&c.access, &with_c, "c again").await;
    api.post_message(&b.access, &with_b, "b again").await;
    let frames = frames_until(&mut a_ws, |f| kind(f) == "message" && f["chat"] == with_b).await;
    assert_eq!(frames.last().unwrap()["message"]["message"], "b again");
    assert!(
        messages_in(&frames, &with_c).is_empty(),
        "unsubscribed chat is silent: {frames:?}"
    );
    no_message_in(&mut a_ws, &with_c).await;
    srv.finish().await;
}

async fn read_receipts(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let chat = api.create_chat(a, b).await;
    let elsewhere = api.create_chat(b, c).await;
    let foreign = api.post_message(&c.access, &elsewhere, "in another chat").await;

    let mut a_ws = user_socket(&api, a).await;
    subscribe(&mut a_ws, &chat, None).await;
    let mut b_ws = user_socket(&api, b).await;
    subscribe(&mut b_ws, &chat, None).await;
    for n in 1..=3 {
        send_v2(&mut a_ws, &chat, &format!("r{n}"), &format!("read me {n}")).await;
    }
    assert_eq!(api.unread_count(&b.access, &chat).await, 3);
    assert_eq!(
        api.unread_count(&a.access, &chat).await,
        0,
        "one's own messages are not unread"
    );

    b_ws.send_json(&json!({ "type": "read", "chat": chat, "seq": 3 })).await;
    let read = a_ws.recv_until(|f| kind(f) == "read").await;
    assert_eq!(read["chat"], chat.as_str());
    assert_eq!(read["user"], b.id.as_str());
    assert_eq!(read["uptoSeq"], 3);
    assert_eq!(api.unread_count(&b.access, &chat).await, 0);
    let history = api.messages(&a.access, &chat).await;
    let results = history["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results.iter().all(|m| m["isRead"] == true),
        "A's messages are read in a two-person chat: {history}"
    );

    // By message id.
    let ack = ack_of(&send_v2(&mut a_ws, &chat, "r4", "read me 4").await).clone();
    assert_eq!(api.unread_count(&b.access, &chat).await, 1);
    b_ws.send_json(&json!({ "type": "read", "chat": chat, "messageId": ack["message"]["id"] }))
        .await;
    let read = a_ws.recv_until(|f| kind(f) == "read").await;
    assert_eq!(read["uptoSeq"], 4, "{read}");
    assert_eq!(api.unread_count(&b.access, &chat).await, 0);

    // A message of another chat, and a seq beyond the last: refused, nothing changes.
    let error = expect_error(
        &mut b_ws,
        &json!({ "type": "read", "chat": chat, "messageId": foreign["id"], "ref": 7 }),
        "wrong_chat",
    )
    .await;
    assert_eq!(error["ref"], 7);
    expect_error(
        &mut b_ws,
        &json!({ "type": "read", "chat": chat, "seq": 99 }),
        "invalid_seq",
    )
    .await;
    expect_error(
        &mut b_ws,
        &json!({ "type": "read", "chat": chat, "seq": -1 }),
        "invalid_seq",
    )
    .await;
    assert_eq!(api.unread_count(&c.access, &elsewhere).await, 0, "C's own message");
    assert_eq!(
        api.unread_count(&b.access, &elsewhere).await,
        1,
        "the refused receipt changed nothing"
    );
    sync(&mut b_ws).await;
    srv.finish().await;
}

async fn typing_is_delivered_and_rate_limited(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, &chat).await;

    a_ws.send_json(&json!({ "type": "typing", "chat": chat })).await;
    let typing = b_ws.recv_until(|f| kind(f) == "typing").await;
    assert_eq!(typing["chat"], chat.as_str());
    assert_eq!(typing["user"], a.id.as_str());
    assert_eq!(typing["expiresInMs"], 5000);

    let error = expect_error(
        &mut a_ws,
        &json!({ "type": "typing", "chat": chat, "ref": "t2" }),
        "typing_rate_limited",
    )
    .await;
    assert_eq!(error["ref"], "t2");
    // The refused typing reached nobody; B may still type.
    b_ws.send_json(&json!({ "type": "typing", "chat": chat })).await;
    let typing = b_ws
        .recv_until(|f| kind(f) == "typing" && f["user"] == b.id.as_str())
        .await;
    assert_eq!(typing["chat"], chat.as_str());
    let frames = sync(&mut a_ws).await;
    let from_a: Vec<&Value> = frames
        .iter()
        .filter(|f| kind(f) == "typing" && f["user"] == a.id.as_str())
        .collect();
    assert!(from_a.len() <= 1, "the refused typing was not delivered: {frames:?}");
    srv.finish().await;
}

async fn presence_follows_first_and_last_socket(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    api.create_chat(a, b).await;
    let mut a_ws = user_socket(&api, a).await;

    let b_first = user_socket(&api, b).await;
    let online = a_ws.recv_until(|f| kind(f) == "presence").await;
    assert_eq!(online["user"], b.id.as_str());
    assert_eq!(online["online"], true);
    assert!(online["lastConnexionDate"].is_string(), "{online}");

    // A second socket of B changes nothing; closing one of two changes nothing either.
    let mut b_second = user_socket(&api, b).await;
    sync(&mut b_second).await;
    b_first.close().await;
    // Until the server has noticed the close, wait on something it does after it.
    let frames = {
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + QUIET_WAIT;
        while let Some(frame) = a_ws
            .next_json(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(frame);
        }
        frames
    };
    assert!(
        !frames.iter().any(|f| kind(f) == "presence"),
        "B is still online: {frames:?}"
    );
    let user = srv.user_row(&b.id).await.unwrap();
    assert!(user.online, "stored online while a socket is open");

    b_second.close().await;
    let offline = a_ws.recv_until(|f| kind(f) == "presence").await;
    assert_eq!(offline["user"], b.id.as_str());
    assert_eq!(offline["online"], false);
    assert!(offline["lastConnexionDate"].is_string(), "{offline}");
    let user = srv.user_row(&b.id).await.unwrap();
    assert!(!user.online, "stored offline");
    srv.finish().await;
}

async fn edit_and_delete_frames(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, &chat).await;
    let first = ack_of(&send_v2(&mut a_ws, &chat, "e1", "typo").await)["message"].clone();
    let second = ack_of(&send_v2(&mut a_ws, &chat, "e2", "keep").await)["message"].clone();

    a_ws.send_json(&json!({ "type": "edit", "id": first["id"], "message": "fixed" }))
        .await;
    let edited = b_ws.recv_until(|f| kind(f) == "message_edited").await;
    assert_eq!(edited["chat"], chat.as_str());
    assert_eq!(edited["message"]["id"], first["id"]);
    assert_eq!(edited["message"]["message"], "fixed");
    assert_eq!(edited["message"]["seq"], first["seq"]);

    a_ws.send_json(&json!({ "type": "delete", "id": first["id"] })).await;
    let deleted = b_ws.recv_until(|f| kind(f) == "message_deleted").await;
    assert_eq!(deleted["chat"], chat.as_str());
    assert_eq!(deleted["id"], first["id"]);
    assert_eq!(deleted["seq"], first["seq"]);
    assert_eq!(api.message_count(&a.access, &chat).await, 1);

    // Someone else's message: refused, unchanged.
    let error = expect_error(
        &mut b_ws,
        &json!({ "type": "edit", "id": second["id"], "message": "mine now", "ref": "e" }),
        "forbidden",
    )
    .await;
    assert_eq!(error["ref"], "e");
    expect_error(&mut b_ws, &json!({ "type": "delete", "id": second["id"] }), "forbidden").await;
    let history = api.messages(&a.access, &chat).await;
    assert_eq!(history["count"], 1);
    assert_eq!(history["results"][0]["message"], "keep");
    // A deleted message is gone for edits.
    expect_error(
        &mut a_ws,
        &json!({ "type": "edit", "id": first["id"], "message": "x" }),
        "not_found",
    )
    .await;

    // A replay shows the tombstone.
    let (_, frames) = {
        let url = api.ws(&format!("/ws/chat/{chat}/?token={}&afterSeq=0", b.access));
        let mut ws = ws::connect(&url, Some(V2)).await;
        let frames = frames_until(&mut ws, |f| kind(f) == "subscribed").await;
        (ws, frames)
    };
    let replay = messages_in(&frames, &chat);
    assert_eq!(seqs(&replay), vec![1, 2]);
    assert_eq!(replay[0]["message"]["deleted"], true, "{}", replay[0]);
    assert!(replay[1]["message"].get("deleted").is_none(), "{}", replay[1]);
    srv.finish().await;
}

async fn group_membership_over_v2(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(4).await;
    let (admin, b, c, d) = (&users[0], &users[1], &users[2], &users[3]);
    let group = api.create_group(admin, "team", &[b, c]).await;

    let mut admin_ws = user_socket(&api, admin).await;
    subscribe(&mut admin_ws, &group, None).await;
    let mut b_ws = user_socket(&api, b).await;
    let mut c_ws = user_socket(&api, c).await;
    subscribe(&mut c_ws, &group, None).await;
    let mut d_ws = user_socket(&api, d).await;

    // A non-admin may not change the group.
    let error = expect_error(
        &mut b_ws,
        &json!({ "type": "add_member", "chat": group, "user": d.id, "ref": "nope" }),
        "forbidden",
    )
    .await;
    assert_eq!(error["ref"], "nope");
    expect_error(
        &mut b_ws,
        &json!({ "type": "remove_member", "chat": group, "user": c.id }),
        "forbidden",
    )
    .await;

    // The admin adds D: D hears of it on /ws/, and can follow the group.
    admin_ws
        .send_json(&json!({ "type": "add_member", "chat": group, "user": d.id }))
        .await;
    let added = d_ws.recv_until(|f| kind(f) == "member_added").await;
    assert_eq!(added["chat"], group.as_str());
    assert_eq!(added["user"], d.id.as_str());
    let added = admin_ws.recv_until(|f| kind(f) == "member_added").await;
    assert_eq!(added["user"], d.id.as_str());
    assert_eq!(
        kind(subscribe(&mut d_ws, &group, None).await.last().unwrap()),
        "subscribed"
    );

    // The admin removes C: C is told (once) and hears nothing more of the group.
    admin_ws
        .send_json(&json!({ "type": "remove_member", "chat": group, "user": c.id }))
        .await;
    let removed = c_ws.recv_until(|f| kind(f) == "member_removed").await;
    assert_eq!(removed["chat"], group.as_str());
    assert_eq!(removed["user"], c.id.as_str());
    admin_ws.recv_until(|f| kind(f) == "member_removed").await;

    send_v2(&mut admin_ws, &group, "after-removal", "C is gone").await;
    let got = d_ws.recv_until(|f| kind(f) == "message").await;
    assert_eq!(got["message"]["message"], "C is gone");
    let frames = {
        let mut frames = sync(&mut c_ws).await;
        let deadline = tokio::time::Instant::now() + QUIET_WAIT;
        while let Some(frame) = c_ws
            .next_json(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            frames.push(frame);
        }
        frames
    };
    assert!(
        messages_in(&frames, &group).is_empty(),
        "the removed member hears nothing: {frames:?}"
    );
    assert!(
        !frames.iter().any(|f| kind(f) == "member_removed"),
        "member_removed came once: {frames:?}"
    );
    expect_error(&mut c_ws, &json!({ "type": "subscribe", "chat": group }), "not_found").await;
    expect_error(
        &mut c_ws,
        &json!({ "type": "send", "chat": group, "clientId": "c-late", "message": "hello?" }),
        "not_found",
    )
    .await;
    assert_eq!(api.message_count(&admin.access, &group).await, 1);
    srv.finish().await;
}

async fn bad_input_gets_error_codes_and_socket_survives(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let chat = api.create_chat(a, b).await;
    let strangers = api.create_chat(b, c).await;
    let mut ws = user_socket(&api, a).await;

    ws.send_text("this is not json").await;
    let error = ws.recv_until(|f| kind(f) == "error").await;
    assert_eq!(error["code"], "invalid_json");
    sync(&mut ws).await;

    let cases = [
        (json!({ "type": "launch_rockets", "ref": 1 }), "unknown_type"),
        (json!({ "chat": chat, "ref": 2 }), "missing_field"),
        (
            json!({ "type": "send", "chat": chat, "message": "no id", "ref": 3 }),
            "missing_field",
        ),
        (
            json!({ "type": "send", "chat": chat, "clientId": "x".repeat(65), "message": "long id", "ref": 4 }),
            "invalid_client_id",
        ),
        (json!({ "type": "subscribe", "chat": strangers, "ref": 5 }), "not_found"),
        (
            json!({ "type": "subscribe", "chat": chat, "afterSeq": 1, "ref": 6 }),
            "invalid_seq",
        ),
        (json!({ "type": 5, "ref": 7 }), "invalid_frame"),
        (
            json!({ "type": "subscribe", "chat": "not-a-uuid", "ref": 8 }),
            "invalid_field",
        ),
        (
            json!({ "type": "send", "chat": chat, "clientId": "m", "ref": 9 }),
            "missing_message",
        ),
        (
            json!({ "type": "send", "chat": chat, "clientId": "m", "message": " ", "ref": 10 }),
            "empty_message",
        ),
        (
            json!({ "type": "send", "chat": chat, "clientId": "m", "message": "x", "messageType": 7, "ref": 11 }),
            "invalid_type",
        ),
        (
            json!({ "type": "edit", "id": Uuid::new_v4(), "ref": 12 }),
            "missing_field",
        ),
        (json!({ "type": "read", "chat": chat, "ref": 13 }), "missing_field"),
    ];
    for (frame, code) in cases {
        let error = expect_error(&mut ws, &frame, code).await;
        assert_eq!(error["ref"], frame["ref"], "{error}");
        sync(&mut ws).await;
    }

    // A resume from beyond the last seq: the error names the chat.
    ws.send_json(&json!({ "type": "resume", "chats": { chat.clone(): 5 } }))
        .await;
    let error = ws.recv_until(|f| kind(f) == "error").await;
    assert_eq!(error["code"], "invalid_seq", "{error}");
    assert_eq!(error["chat"], chat.as_str());
    sync(&mut ws).await;

    // A binary frame.
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .expect("send binary");
    let error = ws.recv_until(|f| kind(f) == "error").await;
    assert_eq!(error["code"], "invalid_frame", "{error}");
    sync(&mut ws).await;

    // /ws/chat/{id}/?afterSeq= beyond the last: an error naming the chat; the socket stays.
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}&afterSeq=3", a.access));
    let mut resumed = ws::connect(&url, Some(V2)).await;
    let error = resumed.recv_until(|f| kind(f) == "error").await;
    assert_eq!(error["code"], "invalid_seq", "{error}");
    assert_eq!(error["chat"], chat.as_str());
    sync(&mut resumed).await;

    // Nothing was stored; a valid frame still works.
    assert_eq!(api.message_count(&a.access, &chat).await, 0);
    let ack = ack_of(&send_v2(&mut ws, &chat, &"y".repeat(64), "fine").await).clone();
    assert_eq!(ack["duplicate"], false);
    assert_eq!(ack["message"]["seq"], 1);
    assert_eq!(api.message_count(&a.access, &chat).await, 1);
    srv.finish().await;
}

async fn unread_counts_under_concurrent_reads_and_writes(backend: Backend) {
    const TASKS: i64 = 4;
    const EACH: i64 = 25;
    const TOTAL: i64 = TASKS * EACH;
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (users[0].clone(), users[1].clone());
    let chat = api.create_chat(&a, &b).await;
    let mut b_ws = user_socket(&api, &b).await;
    subscribe(&mut b_ws, &chat, None).await;

    let mut writers = Vec::new();
    for t in 0..TASKS {
        let (api, chat, token) = (api.clone(), chat.clone(), a.access.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                api.post_message(&token, &chat, &format!("{t}-{n}")).await;
            }
        }));
    }
    // B reads as messages come in, sending a receipt every 7th message (never the last).
    let mut seen = 0;
    let mut last_receipt = 0;
    let mut acknowledged = 0;
    while seen < TOTAL {
        let frame = b_ws.recv_json().await;
        match kind(&frame) {
            "message" => {
                let seq = frame["message"]["seq"].as_i64().expect("seq");
                assert_eq!(seq, seen + 1, "in order");
                seen = seq;
                if seq % 7 == 0 {
                    b_ws.send_json(&json!({ "type": "read", "chat": chat, "seq": seq }))
                        .await;
                    last_receipt = seq;
                }
            }
            "read" => acknowledged = frame["uptoSeq"].as_i64().expect("uptoSeq"),
            "error" => panic!("unexpected error {frame}"),
            _ => {}
        }
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    while acknowledged < last_receipt {
        let frame = b_ws.recv_until(|f| kind(f) == "read").await;
        acknowledged = frame["uptoSeq"].as_i64().expect("uptoSeq");
    }
    assert_eq!(acknowledged, last_receipt);
    assert_eq!(last_receipt, 98);
    assert_eq!(api.unread_count(&b.access, &chat).await, TOTAL - last_receipt);
    assert_eq!(api.message_count(&a.access, &chat).await, TOTAL);

    b_ws.send_json(&json!({ "type": "read", "chat": chat, "seq": TOTAL }))
        .await;
    let read = b_ws.recv_until(|f| kind(f) == "read").await;
    assert_eq!(read["uptoSeq"], TOTAL);
    assert_eq!(api.unread_count(&b.access, &chat).await, 0);
    let unread = api
        .call(
            Method::GET,
            &format!("/api/message/?refChat={chat}&isRead=false"),
            &a.access,
            None,
        )
        .await;
    assert_eq!(unread.body["count"], 0, "every message of A is read: {}", unread.text);
    srv.finish().await;
}

async fn v1_and_v2_clients_share_a_chat(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;

    let url = api.ws(&format!("/ws/chat/{chat}/?token={}", a.access));
    let mut a_v1 = ws::connect(&url, None).await;
    assert_eq!(a_v1.protocol, None);
    // An error answer proves the v1 socket has joined its room.
    a_v1.send_text("{").await;
    let error = a_v1.recv_json().await;
    assert_eq!(error["error"]["code"], "invalid_json", "{error}");
    let (mut b_v2, _) = chat_socket(&api, b, &chat).await;

    a_v1.send_json(&json!({ "message": "from v1", "refChat": chat, "author": a.id }))
        .await;
    let echo = a_v1.recv_json().await;
    assert_eq!(echo["message"], "from v1");
    let frames = frames_until(&mut b_v2, |f| kind(f) == "message").await;
    let got = frames.last().unwrap();
    assert_eq!(got["message"]["message"], "from v1");
    assert_eq!(got["message"]["id"], echo["id"]);
    assert_eq!(got["message"]["seq"], 1);

    let ack = ack_of(&send_v2(&mut b_v2, &chat, "v2-1", "from v2").await).clone();
    let got = a_v1.recv_json().await;
    assert_eq!(
        got["message"], "from v2",
        "v1 sees only messages (no ack, no presence): {got}"
    );
    assert_eq!(got["id"], ack["message"]["id"]);
    assert_eq!(got["author"], b.id.as_str());
    assert_eq!(got["refChat"], chat.as_str());
    assert!(got.get("seq").is_none() && got.get("clientId").is_none(), "{got}");
    a_v1.expect_silence().await;
    srv.finish().await;
}

/// Holds the database's write lock (SQLite) or a lock on `messages` (PostgreSQL) until the
/// returned sender fires, so that storage stalls and the writer's queue fills up.
async fn stall_storage(db: &causerie::testing::store::Db) -> tokio::sync::oneshot::Sender<()> {
    use causerie::testing::store::Db;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (locked, is_locked) = tokio::sync::oneshot::channel::<()>();
    match db.clone() {
        Db::Sqlite(pool) => {
            tokio::spawn(async move {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("taking the write lock");
                let _ = locked.send(());
                let _ = released.await;
                tx.rollback().await.expect("releasing the write lock");
            });
        }
        Db::Postgres(pool) => {
            tokio::spawn(async move {
                let mut tx = pool.begin().await.expect("a transaction");
                sqlx::query("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await
                    .expect("locking messages");
                let _ = locked.send(());
                let _ = released.await;
                tx.rollback().await.expect("releasing the lock");
            });
        }
    }
    is_locked.await.expect("the lock was taken");
    release
}

async fn a_sender_waiting_for_storage_keeps_receiving(backend: Backend) {
    // A storage queue of 8 messages and socket queues of 8 frames: while storage stalls, A's
    // sends fill the storage queue, and B's typing events would overflow A's queue unless A
    // keeps delivering while it waits for room (a socket whose queue overflows is closed).
    let srv = TestServer::start_with(backend, |c| {
        c.group_commit_max = 1;
        c.ws_send_queue = 8;
        c.ws_frames_per_second = 10_000;
        c.ws_frames_burst = 10_000;
    })
    .await;
    let api = Api::of(&srv);
    let users = srv.quick_users(2).await;
    let (a, b) = (&users[0], &users[1]);
    let chat = api.create_chat(a, b).await;
    let (mut a_ws, _) = chat_socket(&api, a, &chat).await;
    let mut b_sockets = Vec::new();
    for _ in 0..12 {
        b_sockets.push(chat_socket(&api, b, &chat).await.0);
    }
    sync(&mut a_ws).await;

    let release = stall_storage(srv.db()).await;
    for i in 0..20 {
        a_ws.send_json(
            &json!({ "type": "send", "chat": chat, "clientId": format!("m{i}"), "message": format!("text {i}") }),
        )
        .await;
    }
    // Give A's socket time to fill the storage queue and start waiting for room.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Spaced out: more than A's queue holds in all, never more than it holds at once.
    for b_ws in &mut b_sockets {
        b_ws.send_json(&json!({ "type": "typing", "chat": chat })).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut typing = 0;
    while typing < 12 {
        let frame = a_ws.recv_json().await;
        match kind(&frame) {
            "typing" => typing += 1,
            "presence" => {}
            other => panic!("A got {other} while storage was stalled: {frame}"),
        }
    }
    release.send(()).expect("the lock holder is waiting");

    // Every send is stored, in the order it was sent, and acknowledged in that order.
    let mut acks = Vec::new();
    while acks.len() < 20 {
        let frame = a_ws.recv_json().await;
        if kind(&frame) == "ack" {
            acks.push(frame);
        } else {
            assert!(
                ["message", "typing", "presence"].contains(&kind(&frame)),
                "unexpected {frame}"
            );
        }
    }
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack["clientId"], format!("m{i}").as_str(), "{ack}");
        assert_eq!(ack["message"]["seq"], i as i64 + 1, "{ack}");
        assert_eq!(ack["duplicate"], false);
    }
    srv.finish().await;
}
