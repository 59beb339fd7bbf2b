//! The `causerie.v2` realtime protocol (docs/protocol.md, issue 4), black-box against a real
//! server on every configured backend: subprotocol selection, acknowledged and idempotent sends
//! (also across a reconnect and a server restart), ordered gap-free streams, resume, receipts,
//! typing, presence, edits and deletes, group membership, error codes, and v1/v2 interplay.
//! Frames are built and read with `causerie::wire`; JSON stays where its exact shape is checked.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::Duration;

use causerie::ids::{ChatId, MessageId};
use causerie::wire::v2::{
    Ack, ClientFrame, Command, DeleteMessage, EditMessage, ErrorReply, FrameType, MarkRead, MemberChange, ReadUpto,
    Resume, SendMessage, ServerFrame, Subscribe, Typing, Unsubscribe, SUBPROTOCOL as V2,
};
use causerie::wire::{v1, MessageView};
use causerie::{Config, Server};
use common::ws::{self, with, without, WsClient};
use common::{Backend, Reply, TestServer, TestUser};
use futures_util::SinkExt;
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tempfile::TempDir;

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

    /// The id of a created chat or group.
    fn created(reply: Reply) -> ChatId {
        reply.expect_status(201);
        reply.body["id"].as_str().expect("chat id").parse().expect("a uuid")
    }

    /// The two-person chat between `me` and `other` (created on first use).
    async fn create_chat(&self, me: &TestUser, other: &TestUser) -> ChatId {
        let body = json!({ "refUser": me.id, "chatWithUser": other.id });
        Api::created(
            self.call(Method::POST, "/api/createChat/", &me.access, Some(&body))
                .await,
        )
    }

    async fn create_group(&self, admin: &TestUser, title: &str, members: &[&TestUser]) -> ChatId {
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let body = json!({ "title": title, "members": ids });
        Api::created(
            self.call(Method::POST, "/api/groups/", &admin.access, Some(&body))
                .await,
        )
    }

    /// Posts a message through REST; returns the stored message.
    async fn post_message(&self, token: &str, chat: ChatId, text: &str) -> MessageView {
        let body = json!({ "refChat": chat, "message": text });
        let reply = self.call(Method::POST, "/api/message/", token, Some(&body)).await;
        reply.expect_status(201);
        serde_json::from_value(reply.body).expect("a message object")
    }

    /// The chat's message history as `token` sees it (the newest first, one big page).
    async fn messages(&self, token: &str, chat: ChatId) -> Value {
        let path = format!("/api/message/?refChat={chat}&page_size=100");
        let reply = self.call(Method::GET, &path, token, None).await;
        reply.expect_status(200);
        reply.body
    }

    async fn message_count(&self, token: &str, chat: ChatId) -> i64 {
        self.messages(token, chat).await["count"].as_i64().expect("count")
    }

    async fn unread_count(&self, token: &str, chat: ChatId) -> i64 {
        let reply = self
            .call(Method::GET, &format!("/api/chat/?id={chat}"), token, None)
            .await;
        reply.expect_status(200);
        assert_eq!(reply.body["count"], 1, "one chat listed: {}", reply.text);
        reply.body["results"][0]["unreadCount"].as_i64().expect("unreadCount")
    }
}

/// What most tests start from: a server, its API, some users, and the two-person chat of the
/// first two.
struct Setup {
    srv: TestServer,
    api: Api,
    users: Vec<TestUser>,
    chat: ChatId,
}

impl Setup {
    async fn new(backend: Backend, users: usize) -> Setup {
        Setup::on(TestServer::start(backend).await, users).await
    }

    async fn on(srv: TestServer, users: usize) -> Setup {
        let api = Api::of(&srv);
        let users = srv.quick_users(users).await;
        let chat = api.create_chat(&users[0], &users[1]).await;
        Setup { srv, api, users, chat }
    }
}

// ---- frames --------------------------------------------------------------------------------

fn is(kind: FrameType) -> impl Fn(&ServerFrame) -> bool {
    move |frame| frame.kind() == kind
}

/// A `message` frame of `chat`.
fn is_message_in(chat: ChatId) -> impl Fn(&ServerFrame) -> bool {
    move |frame| frame.kind() == FrameType::Message && frame.chat() == Some(chat)
}

/// A `message` frame carrying message `seq`.
fn is_message_seq(seq: i64) -> impl Fn(&ServerFrame) -> bool {
    move |frame| matches!(frame, ServerFrame::Message(m) if m.message.seq == Some(seq))
}

/// A text message to send.
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

fn subscribe_to(chat: ChatId, after_seq: Option<i64>) -> Command {
    Command::Subscribe(Subscribe { chat, after_seq })
}

fn read_upto(chat: ChatId, upto: ReadUpto) -> Command {
    Command::Read(MarkRead { chat, upto })
}

fn typing(chat: ChatId) -> Command {
    Command::Typing(Typing { chat })
}

fn resume(chat: ChatId, last_seq: i64) -> Command {
    Command::Resume(Resume {
        chats: vec![(chat, last_seq)],
    })
}

// ---- WebSocket helpers ---------------------------------------------------------------------

/// Round trip through the socket: everything the server queued before the `pong` is returned.
async fn sync(ws: &mut WsClient) -> Vec<ServerFrame> {
    let tag = Value::from(MessageId::new().to_string());
    ws.send_frame(&Command::Ping.with_ref(tag.clone())).await;
    let mut frames = ws
        .frames_until(|f| f.kind() == FrameType::Pong && f.reference() == Some(&tag))
        .await;
    frames.pop();
    frames
}

/// The messages of the `message` frames of `chat` among `frames`.
fn messages_in(frames: &[ServerFrame], chat: ChatId) -> Vec<&MessageView> {
    frames
        .iter()
        .filter(|f| is_message_in(chat)(f))
        .filter_map(ServerFrame::message)
        .collect()
}

fn seqs(messages: &[&MessageView]) -> Vec<i64> {
    messages.iter().map(|m| m.seq.expect("seq")).collect()
}

/// Listens for a while and asserts that no `message` frame of `chat` arrives (other frames,
/// such as presence, may).
async fn no_message_in(ws: &mut WsClient, chat: ChatId) {
    let frames = ws.frames_for_a_while().await;
    assert!(
        messages_in(&frames, chat).is_empty(),
        "unexpected message frame: {frames:?}"
    );
}

/// A `/ws/` socket (v2 for all chats), ready once the server answered a ping.
async fn user_socket(api: &Api, user: &TestUser) -> WsClient {
    let mut ws = ws::connect(&api.ws(&format!("/ws/?token={}", user.access)), Some(V2)).await;
    assert_eq!(ws.protocol.as_deref(), Some(V2), "/ws/ selects causerie.v2");
    sync(&mut ws).await;
    ws
}

/// A v2 socket on `/ws/chat/{chat}/` (`query` appended to its URL), returned with the frames up
/// to its `subscribed`.
async fn chat_socket_with(api: &Api, user: &TestUser, chat: ChatId, query: &str) -> (WsClient, Vec<ServerFrame>) {
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}{query}", user.access));
    let mut ws = ws::connect(&url, Some(V2)).await;
    assert_eq!(
        ws.protocol.as_deref(),
        Some(V2),
        "/ws/chat/ selects causerie.v2 when offered"
    );
    let frames = ws
        .frames_until(|f| f.kind() == FrameType::Subscribed && f.chat() == Some(chat))
        .await;
    (ws, frames)
}

async fn chat_socket(api: &Api, user: &TestUser, chat: ChatId) -> (WsClient, Vec<ServerFrame>) {
    chat_socket_with(api, user, chat, "").await
}

/// The `lastSeq` of the `subscribed` frame that ends `frames`.
fn last_seq(frames: &[ServerFrame]) -> i64 {
    frame_of!(frames.last().expect("frames"), ServerFrame::Subscribed).last_seq
}

/// Subscribes and returns the frames up to `subscribed` (the replay, if any, and that frame).
async fn subscribe(ws: &mut WsClient, chat: ChatId, after: Option<i64>) -> Vec<ServerFrame> {
    ws.send_frame(&subscribe_to(chat, after)).await;
    ws.frames_until(|f| (f.kind() == FrameType::Subscribed && f.chat() == Some(chat)) || f.kind() == FrameType::Error)
        .await
}

/// Sends a v2 `send` frame and returns the frames up to and including its `ack`.
async fn send_v2(ws: &mut WsClient, chat: ChatId, client_id: &str, text: &str) -> Vec<ServerFrame> {
    ws.send_frame(&send(chat, client_id, text)).await;
    ws.frames_until(|f| {
        matches!(f, ServerFrame::Ack(ack) if ack.client_id == client_id) || f.kind() == FrameType::Error
    })
    .await
}

/// The `ack` at the end of `send_v2`'s frames.
fn ack_of(frames: &[ServerFrame]) -> &Ack {
    frame_of!(frames.last().expect("frames"), ServerFrame::Ack)
}

/// Sends a frame that must be refused with `code`; returns the error frame.
async fn expect_error(ws: &mut WsClient, frame: &impl Serialize, code: &str) -> ErrorReply {
    ws.send_frame(frame).await;
    let error = frame_of!(ws.recv_until(is(FrameType::Error)).await, ServerFrame::Error);
    let sent = serde_json::to_string(frame).unwrap();
    assert_eq!(error.code, code, "refusing {sent}: {error:?}");
    assert!(!error.detail.is_empty(), "error detail: {error:?}");
    error
}

// ---- tests ---------------------------------------------------------------------------------

async fn subprotocol_selects_v2(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);

    // /ws/chat/{id}/ offered causerie.v2: selected, and that chat is followed at once.
    let (mut b_v2, frames) = chat_socket(&api, b, chat).await;
    assert_eq!(last_seq(&frames), 0, "{frames:?}");

    // /ws/ offered causerie.v2: selected; it speaks v2.
    let mut a_all = user_socket(&api, a).await;
    assert_eq!(
        subscribe(&mut a_all, chat, None).await.pop().unwrap().kind(),
        FrameType::Subscribed
    );

    // Without the subprotocol, /ws/chat/{id}/ stays the seed's v1.
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}", a.access));
    let mut a_v1 = ws::connect(&url, None).await;
    assert_eq!(a_v1.protocol, None, "no subprotocol selected for a v1 client");
    a_v1.send_frame(&v1::MessageFrame::text("hello from v1")).await;
    let echo = a_v1.recv_json().await;
    assert_eq!(echo["message"], "hello from v1", "v1 text format: {echo}");
    assert_eq!(echo["refChat"], chat.to_string());
    assert_eq!(
        echo["type"], 0,
        "v1 frames carry the message type, not a frame type: {echo}"
    );
    assert!(echo.get("seq").is_none(), "v1 frames have no seq: {echo}");
    let echo: MessageView = serde_json::from_value(echo).expect("a message object");

    // v2 sockets got it as a v2 `message` frame.
    for ws in [&mut b_v2, &mut a_all] {
        let frame = frame_of!(ws.recv_until(is(FrameType::Message)).await, ServerFrame::Message);
        assert_eq!(frame.chat, chat);
        assert_eq!(frame.message.message, "hello from v1");
        assert_eq!(frame.message.seq, Some(1));
        assert_eq!(frame.message.id, echo.id);
    }
    srv.finish().await;
}

async fn send_is_acknowledged_and_idempotent(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, chat).await;

    a_ws.send_frame(&send(chat, "c-1", "hello").with_ref("r1")).await;
    let frames = a_ws.frames_until(is(FrameType::Ack)).await;
    let first = ack_of(&frames).clone();
    assert_eq!(first.client_id, "c-1", "{first:?}");
    assert_eq!(first.chat, chat);
    assert!(!first.duplicate);
    assert_eq!(first.reference, Some("r1".into()), "the ack carries the frame's ref");
    let message = &first.message;
    assert_eq!(message.seq, Some(1));
    assert_eq!(message.client_id.as_deref(), Some("c-1"));
    assert_eq!(message.message, "hello");
    assert_eq!(message.ref_chat, chat);
    assert_eq!(message.author, Some(a.user_id()));

    // The other side gets one `message` frame for it.
    let delivered = frame_of!(b_ws.recv_until(is(FrameType::Message)).await, ServerFrame::Message);
    assert_eq!(delivered.chat, chat);
    assert_eq!(delivered.message, *message, "the delivered message is the stored one");

    // The sender's socket follows the chat: its own copy comes as a `message` frame too, once.
    // The ack is written as soon as the message is stored, before that copy.
    assert!(!frames.iter().any(is(FrameType::Message)), "ack first: {frames:?}");
    let own = a_ws.recv_until(is(FrameType::Message)).await;
    assert_eq!(own.message(), Some(message));

    // Retry on the same socket: same ack, marked duplicate, and no new message frame.
    let retry = send_v2(&mut a_ws, chat, "c-1", "hello").await;
    assert!(
        !retry.iter().any(is(FrameType::Message)),
        "a retry is not delivered again: {retry:?}"
    );
    let second = ack_of(&retry);
    assert!(second.duplicate, "{second:?}");
    assert_eq!(
        second.message, *message,
        "the retry is answered with the stored message"
    );

    // Retry after closing and reopening the socket.
    a_ws.close().await;
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let retry = send_v2(&mut a_ws, chat, "c-1", "hello").await;
    let third = ack_of(&retry);
    assert!(third.duplicate, "{third:?}");
    assert_eq!(third.message.id, message.id);
    assert_eq!(third.message.seq, message.seq);
    assert_eq!(third.message, *message);

    assert_eq!(api.message_count(&a.access, chat).await, 1, "one stored message");

    // The retries were not delivered again: B's next message is the next one.
    let next = ack_of(&send_v2(&mut a_ws, chat, "c-2", "next").await).clone();
    assert!(!next.duplicate);
    assert_eq!(next.message.seq, Some(2));
    let frames = b_ws.frames_until(is(FrameType::Message)).await;
    let delivered = frames.last().unwrap().message().unwrap();
    assert_eq!(delivered.seq, Some(2), "B got no second copy of seq 1: {frames:?}");
    assert_eq!(delivered.client_id.as_deref(), Some("c-2"));
    no_message_in(&mut b_ws, chat).await;
    assert_eq!(api.message_count(&a.access, chat).await, 2);

    // The same clientId in another chat is another message.
    let c = srv.quick_user("carol@example.com", common::PASSWORD).await;
    let other = api.create_chat(a, &c).await;
    assert_eq!(
        subscribe(&mut a_ws, other, None).await.last().unwrap().kind(),
        FrameType::Subscribed
    );
    let elsewhere = ack_of(&send_v2(&mut a_ws, other, "c-1", "hello").await).clone();
    assert!(!elsewhere.duplicate);
    assert_eq!(elsewhere.message.seq, Some(1), "sequences are per chat");
    assert_ne!(elsewhere.message.id, message.id);
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

    let (mut a_ws, _) = chat_socket(&api, &a, chat).await;
    let first = ack_of(&send_v2(&mut a_ws, chat, "restart-1", "before the restart").await).clone();
    assert!(!first.duplicate);
    let retry = ack_of(&send_v2(&mut a_ws, chat, "restart-1", "before the restart").await).clone();
    assert!(retry.duplicate);
    assert_eq!(retry.message, first.message);
    a_ws.close().await;
    let (mut a_ws, _) = chat_socket(&api, &a, chat).await;
    let third = ack_of(&send_v2(&mut a_ws, chat, "restart-1", "before the restart").await).clone();
    assert!(third.duplicate);
    assert_eq!(third.message, first.message);
    a_ws.close().await;

    node.restart().await;
    let api = Api::of_server(node.server());
    let (mut a_ws, frames) = chat_socket(&api, &a, chat).await;
    assert_eq!(last_seq(&frames), 1, "the stored message survived");
    let after = ack_of(&send_v2(&mut a_ws, chat, "restart-1", "before the restart").await).clone();
    assert!(
        after.duplicate,
        "a retry after a restart is still a duplicate: {after:?}"
    );
    assert_eq!(after.message.id, first.message.id);
    assert_eq!(after.message.seq, first.message.seq);
    assert_eq!(after.message, first.message);
    assert_eq!(api.message_count(&a.access, chat).await, 1, "one stored message");
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
        let frames = subscribe(&mut ws, group, None).await;
        assert_eq!(last_seq(&frames), 0, "{frames:?}");
        sockets.push(ws);
    }

    // Every member fires its sends at once, then reads until it holds everything.
    let mut tasks = Vec::new();
    for (i, mut ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                ws.send_frame(&send(group, &format!("m{i}-{n}"), &format!("{i}:{n}")))
                    .await;
            }
            let mut messages: Vec<(i64, MessageId)> = Vec::new();
            let mut acks: Vec<i64> = Vec::new();
            while messages.len() < MEMBERS * EACH || acks.len() < EACH {
                match ws.recv_frame().await {
                    ServerFrame::Message(frame) => {
                        assert_eq!(frame.chat, group);
                        messages.push((frame.message.seq.expect("seq"), frame.message.id));
                    }
                    ServerFrame::Ack(ack) => {
                        assert!(!ack.duplicate, "{ack:?}");
                        acks.push(ack.message.seq.expect("seq"));
                    }
                    ServerFrame::Error(error) => panic!("member {i}: unexpected error {error:?}"),
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
        no_message_in(&mut ws, group).await;
        streams.push(messages);
    }

    let total = (MEMBERS * EACH) as i64;
    let expected: Vec<i64> = (1..=total).collect();
    for (i, stream) in streams.iter().enumerate() {
        let got: Vec<i64> = stream.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(got, expected, "member {i}: every seq once, in order, no gaps");
        let ids: HashSet<&MessageId> = stream.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), stream.len(), "member {i}: no duplicate ids");
        assert_eq!(
            stream, &streams[0],
            "member {i} sees the same sequence of ids as member 0"
        );
    }
    assert_eq!(api.message_count(&users[0].access, group).await, total);
    srv.finish().await;
}

async fn resume_replays_exactly_the_missed_messages(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let mut b_ws = user_socket(&api, b).await;
    subscribe(&mut b_ws, chat, None).await;

    for n in 1..=3 {
        send_v2(&mut a_ws, chat, &format!("early-{n}"), &format!("early {n}")).await;
    }
    let frames = b_ws.frames_until(is_message_seq(3)).await;
    assert_eq!(seqs(&messages_in(&frames, chat)), vec![1, 2, 3]);
    let last_seen = 3;

    // B's connection dies without a goodbye; A carries on over v2 and REST.
    drop(b_ws);
    let mut missed = Vec::new();
    for n in 1..=2 {
        let ack = ack_of(&send_v2(&mut a_ws, chat, &format!("missed-{n}"), &format!("missed {n}")).await).clone();
        missed.push(ack.message.id);
    }
    for n in 3..=4 {
        let stored = api.post_message(&a.access, chat, &format!("missed {n}")).await;
        missed.push(stored.id);
    }

    let mut b_ws = user_socket(&api, b).await;
    b_ws.send_frame(&resume(chat, last_seen).with_ref("res")).await;
    let frames = b_ws
        .frames_until(|f| [FrameType::Subscribed, FrameType::Error].contains(&f.kind()))
        .await;
    let subscribed = frame_of!(frames.last().unwrap(), ServerFrame::Subscribed);
    assert_eq!(
        subscribed.reference,
        Some("res".into()),
        "the reply to resume carries its ref"
    );
    assert_eq!(subscribed.chat, chat);
    assert_eq!(subscribed.last_seq, 7);
    let replay = messages_in(&frames, chat);
    assert_eq!(seqs(&replay), vec![4, 5, 6, 7], "exactly the missed messages, in order");
    let ids: Vec<MessageId> = replay.iter().map(|m| m.id).collect();
    assert_eq!(ids, missed);
    assert_eq!(replay[0].message, "missed 1");
    assert_eq!(replay[3].message, "missed 4");

    // Live messages follow, without repeats.
    send_v2(&mut a_ws, chat, "live-1", "live 1").await;
    api.post_message(&a.access, chat, "live 2").await;
    let frames = b_ws.frames_until(is_message_seq(9)).await;
    assert_eq!(seqs(&messages_in(&frames, chat)), vec![8, 9]);
    no_message_in(&mut b_ws, chat).await;
    srv.finish().await;
}

async fn resume_while_messages_keep_coming(backend: Backend) {
    const BEFORE: i64 = 10;
    const DURING: i64 = 50;
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (users[0].clone(), users[1].clone());
    for n in 1..=BEFORE {
        api.post_message(&a.access, chat, &format!("before {n}")).await;
    }
    let last_seen = 4;

    let mut b_ws = user_socket(&api, &b).await;
    let sender = {
        let (api, token) = (api.clone(), a.access.clone());
        tokio::spawn(async move {
            for n in 1..=DURING {
                api.post_message(&token, chat, &format!("during {n}")).await;
            }
        })
    };
    // Let the sender get going, so that the replay overlaps with live messages.
    while api.message_count(&a.access, chat).await < BEFORE + 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b_ws.send_frame(&resume(chat, last_seen)).await;

    let last = BEFORE + DURING;
    let mut got = Vec::new();
    let mut subscribed_at = None;
    while got.last() != Some(&last) {
        match b_ws.recv_frame().await {
            ServerFrame::Message(frame) => {
                assert_eq!(frame.chat, chat);
                got.push(frame.message.seq.expect("seq"));
            }
            ServerFrame::Subscribed(subscribed) => {
                assert!(subscribed_at.is_none(), "one subscribed frame");
                assert_eq!(
                    got.last().copied().unwrap_or(last_seen),
                    subscribed.last_seq,
                    "lastSeq is the last one replayed"
                );
                subscribed_at = Some(subscribed.last_seq);
            }
            ServerFrame::Error(error) => panic!("unexpected error {error:?}"),
            _ => {}
        }
    }
    sender.await.expect("sender task");
    assert!(subscribed_at.is_some(), "a subscribed frame came");
    let expected: Vec<i64> = (last_seen + 1..=last).collect();
    assert_eq!(got, expected, "every seq exactly once, in order");
    no_message_in(&mut b_ws, chat).await;
    srv.finish().await;
}

async fn one_socket_follows_many_chats(backend: Backend) {
    let Setup {
        srv,
        api,
        users,
        chat: with_b,
    } = Setup::new(backend, 3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let with_c = api.create_chat(a, c).await;

    let mut a_ws = user_socket(&api, a).await;
    for chat in [with_b, with_c] {
        let frames = subscribe(&mut a_ws, chat, None).await;
        assert_eq!(last_seq(&frames), 0, "{frames:?}");
    }
    api.post_message(&b.access, with_b, "from b").await;
    api.post_message(&c.access, with_c, "from c").await;
    let mut texts = HashSet::new();
    while texts.len() < 2 {
        let frame = frame_of!(a_ws.recv_until(is(FrameType::Message)).await, ServerFrame::Message);
        let text = frame.message.message.clone();
        assert!(
            (frame.chat == with_b && text == "from b") || (frame.chat == with_c && text == "from c"),
            "{frame:?}"
        );
        texts.insert(text);
    }

    a_ws.send_frame(&Command::Unsubscribe(Unsubscribe { chat: with_c }).with_ref("u"))
        .await;
    let unsubscribed = frame_of!(
        a_ws.recv_until(is(FrameType::Unsubscribed)).await,
        ServerFrame::Unsubscribed
    );
    assert_eq!(unsubscribed.chat, with_c);
    assert_eq!(unsubscribed.reference, Some("u".into()));
    api.post_message(&c.access, with_c, "c again").await;
    api.post_message(&b.access, with_b, "b again").await;
    let frames = a_ws.frames_until(is_message_in(with_b)).await;
    assert_eq!(frames.last().unwrap().message().unwrap().message, "b again");
    assert!(
        messages_in(&frames, with_c).is_empty(),
        "unsubscribed chat is silent: {frames:?}"
    );
    no_message_in(&mut a_ws, with_c).await;
    srv.finish().await;
}

async fn read_receipts(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let elsewhere = api.create_chat(b, c).await;
    let foreign = api.post_message(&c.access, elsewhere, "in another chat").await;

    let mut a_ws = user_socket(&api, a).await;
    subscribe(&mut a_ws, chat, None).await;
    let mut b_ws = user_socket(&api, b).await;
    subscribe(&mut b_ws, chat, None).await;
    for n in 1..=3 {
        send_v2(&mut a_ws, chat, &format!("r{n}"), &format!("read me {n}")).await;
    }
    assert_eq!(api.unread_count(&b.access, chat).await, 3);
    assert_eq!(
        api.unread_count(&a.access, chat).await,
        0,
        "one's own messages are not unread"
    );

    b_ws.send_frame(&read_upto(chat, ReadUpto::Seq(3))).await;
    let read = frame_of!(a_ws.recv_until(is(FrameType::Read)).await, ServerFrame::Read);
    assert_eq!(read.chat, chat);
    assert_eq!(read.user, b.user_id());
    assert_eq!(read.upto_seq, Some(3));
    assert_eq!(api.unread_count(&b.access, chat).await, 0);
    let history = api.messages(&a.access, chat).await;
    let results = history["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results.iter().all(|m| m["isRead"] == true),
        "A's messages are read in a two-person chat: {history}"
    );

    // By message id.
    let ack = ack_of(&send_v2(&mut a_ws, chat, "r4", "read me 4").await).clone();
    assert_eq!(api.unread_count(&b.access, chat).await, 1);
    b_ws.send_frame(&read_upto(chat, ReadUpto::MessageId(ack.message.id)))
        .await;
    let read = frame_of!(a_ws.recv_until(is(FrameType::Read)).await, ServerFrame::Read);
    assert_eq!(read.upto_seq, Some(4), "{read:?}");
    assert_eq!(api.unread_count(&b.access, chat).await, 0);

    // A message of another chat, and a seq beyond the last: refused, nothing changes.
    let error = expect_error(
        &mut b_ws,
        &read_upto(chat, ReadUpto::MessageId(foreign.id)).with_ref(7),
        "wrong_chat",
    )
    .await;
    assert_eq!(error.reference, Some(7.into()));
    expect_error(&mut b_ws, &read_upto(chat, ReadUpto::Seq(99)), "invalid_seq").await;
    expect_error(&mut b_ws, &read_upto(chat, ReadUpto::Seq(-1)), "invalid_seq").await;
    assert_eq!(api.unread_count(&c.access, elsewhere).await, 0, "C's own message");
    assert_eq!(
        api.unread_count(&b.access, elsewhere).await,
        1,
        "the refused receipt changed nothing"
    );
    sync(&mut b_ws).await;
    srv.finish().await;
}

async fn typing_is_delivered_and_rate_limited(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, chat).await;

    a_ws.send_frame(&typing(chat)).await;
    let notice = frame_of!(b_ws.recv_until(is(FrameType::Typing)).await, ServerFrame::Typing);
    assert_eq!(notice.chat, chat);
    assert_eq!(notice.user, a.user_id());
    assert_eq!(notice.expires_in_ms, 5000);

    let error = expect_error(&mut a_ws, &typing(chat).with_ref("t2"), "typing_rate_limited").await;
    assert_eq!(error.reference, Some("t2".into()));
    // The refused typing reached nobody; B may still type.
    b_ws.send_frame(&typing(chat)).await;
    let by_b = |f: &ServerFrame| matches!(f, ServerFrame::Typing(t) if t.user == b.user_id());
    let notice = frame_of!(b_ws.recv_until(by_b).await, ServerFrame::Typing);
    assert_eq!(notice.chat, chat);
    let frames = sync(&mut a_ws).await;
    let from_a = frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Typing(t) if t.user == a.user_id()))
        .count();
    assert!(from_a <= 1, "the refused typing was not delivered: {frames:?}");
    srv.finish().await;
}

async fn presence_follows_first_and_last_socket(backend: Backend) {
    // A and B share a chat.
    let Setup { srv, api, users, .. } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let mut a_ws = user_socket(&api, a).await;

    // (The frame's lastConnexionDate is read as a timestamp.)
    let b_first = user_socket(&api, b).await;
    let online = frame_of!(a_ws.recv_until(is(FrameType::Presence)).await, ServerFrame::Presence);
    assert_eq!(online.user, b.user_id());
    assert!(online.online);

    // A second socket of B changes nothing; closing one of two changes nothing either.
    let mut b_second = user_socket(&api, b).await;
    sync(&mut b_second).await;
    b_first.close().await;
    // Until the server has noticed the close, wait on something it does after it.
    let frames = a_ws.frames_for_a_while().await;
    assert!(
        !frames.iter().any(is(FrameType::Presence)),
        "B is still online: {frames:?}"
    );
    let user = srv.user_row(&b.id).await.unwrap();
    assert!(user.online, "stored online while a socket is open");

    b_second.close().await;
    let offline = frame_of!(a_ws.recv_until(is(FrameType::Presence)).await, ServerFrame::Presence);
    assert_eq!(offline.user, b.user_id());
    assert!(!offline.online);
    let user = srv.user_row(&b.id).await.unwrap();
    assert!(!user.online, "stored offline");
    srv.finish().await;
}

async fn edit_and_delete_frames(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let (mut b_ws, _) = chat_socket(&api, b, chat).await;
    let first = ack_of(&send_v2(&mut a_ws, chat, "e1", "typo").await).message.clone();
    let second = ack_of(&send_v2(&mut a_ws, chat, "e2", "keep").await).message.clone();
    let edit = |id: MessageId, text: &str| {
        Command::Edit(EditMessage {
            id,
            message: text.into(),
        })
    };
    let delete = |id: MessageId| Command::Delete(DeleteMessage { id });

    a_ws.send_frame(&edit(first.id, "fixed")).await;
    let edited = frame_of!(
        b_ws.recv_until(is(FrameType::MessageEdited)).await,
        ServerFrame::MessageEdited
    );
    assert_eq!(edited.chat, chat);
    assert_eq!(edited.message.id, first.id);
    assert_eq!(edited.message.message, "fixed");
    assert_eq!(edited.message.seq, first.seq);

    a_ws.send_frame(&delete(first.id)).await;
    let deleted = frame_of!(
        b_ws.recv_until(is(FrameType::MessageDeleted)).await,
        ServerFrame::MessageDeleted
    );
    assert_eq!(deleted.chat, chat);
    assert_eq!(deleted.id, first.id);
    assert_eq!(Some(deleted.seq), first.seq);
    assert_eq!(api.message_count(&a.access, chat).await, 1);

    // Someone else's message: refused, unchanged.
    let error = expect_error(&mut b_ws, &edit(second.id, "mine now").with_ref("e"), "forbidden").await;
    assert_eq!(error.reference, Some("e".into()));
    expect_error(&mut b_ws, &delete(second.id), "forbidden").await;
    let history = api.messages(&a.access, chat).await;
    assert_eq!(history["count"], 1);
    assert_eq!(history["results"][0]["message"], "keep");
    // A deleted message is gone for edits.
    expect_error(&mut a_ws, &edit(first.id, "x"), "not_found").await;

    // A replay shows the tombstone, and only there is the `deleted` key.
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}&afterSeq=0", b.access));
    let mut replaying = ws::connect(&url, Some(V2)).await;
    let mut replay = Vec::new();
    loop {
        let frame = replaying.recv_json().await;
        if frame["type"] == "subscribed" {
            break;
        }
        if frame["type"] == "message" {
            assert_eq!(frame["chat"], chat.to_string(), "{frame}");
            replay.push(frame["message"].clone());
        }
    }
    let messages: Vec<MessageView> = replay
        .iter()
        .map(|m| serde_json::from_value(m.clone()).expect("a message object"))
        .collect();
    assert_eq!(seqs(&messages.iter().collect::<Vec<_>>()), vec![1, 2]);
    assert!(messages[0].deleted, "{:?}", messages[0]);
    assert_eq!(replay[0]["deleted"], true, "{}", replay[0]);
    assert!(replay[1].get("deleted").is_none(), "{}", replay[1]);
    srv.finish().await;
}

async fn group_membership_over_v2(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let api = Api::of(&srv);
    let users = srv.quick_users(4).await;
    let (admin, b, c, d) = (&users[0], &users[1], &users[2], &users[3]);
    let group = api.create_group(admin, "team", &[b, c]).await;
    let member = |user: &TestUser| MemberChange {
        chat: group,
        user: user.user_id(),
    };

    let mut admin_ws = user_socket(&api, admin).await;
    subscribe(&mut admin_ws, group, None).await;
    let mut b_ws = user_socket(&api, b).await;
    let mut c_ws = user_socket(&api, c).await;
    subscribe(&mut c_ws, group, None).await;
    let mut d_ws = user_socket(&api, d).await;

    // A non-admin may not change the group.
    let error = expect_error(&mut b_ws, &Command::AddMember(member(d)).with_ref("nope"), "forbidden").await;
    assert_eq!(error.reference, Some("nope".into()));
    expect_error(&mut b_ws, &Command::RemoveMember(member(c)), "forbidden").await;

    // The admin adds D: D hears of it on /ws/, and can follow the group.
    admin_ws.send_frame(&Command::AddMember(member(d))).await;
    let added = frame_of!(
        d_ws.recv_until(is(FrameType::MemberAdded)).await,
        ServerFrame::MemberAdded
    );
    assert_eq!(added, member(d));
    let added = frame_of!(
        admin_ws.recv_until(is(FrameType::MemberAdded)).await,
        ServerFrame::MemberAdded
    );
    assert_eq!(added.user, d.user_id());
    assert_eq!(
        subscribe(&mut d_ws, group, None).await.last().unwrap().kind(),
        FrameType::Subscribed
    );

    // The admin removes C: C is told (once) and hears nothing more of the group.
    admin_ws.send_frame(&Command::RemoveMember(member(c))).await;
    let removed = frame_of!(
        c_ws.recv_until(is(FrameType::MemberRemoved)).await,
        ServerFrame::MemberRemoved
    );
    assert_eq!(removed, member(c));
    admin_ws.recv_until(is(FrameType::MemberRemoved)).await;

    send_v2(&mut admin_ws, group, "after-removal", "C is gone").await;
    let got = d_ws.recv_until(is(FrameType::Message)).await;
    assert_eq!(got.message().unwrap().message, "C is gone");
    let mut frames = sync(&mut c_ws).await;
    frames.extend(c_ws.frames_for_a_while().await);
    assert!(
        messages_in(&frames, group).is_empty(),
        "the removed member hears nothing: {frames:?}"
    );
    assert!(
        !frames.iter().any(is(FrameType::MemberRemoved)),
        "member_removed came once: {frames:?}"
    );
    expect_error(&mut c_ws, &subscribe_to(group, None), "not_found").await;
    expect_error(&mut c_ws, &send(group, "c-late", "hello?"), "not_found").await;
    assert_eq!(api.message_count(&admin.access, group).await, 1);
    srv.finish().await;
}

async fn bad_input_gets_error_codes_and_socket_survives(backend: Backend) {
    let Setup { srv, api, users, chat } = Setup::new(backend, 3).await;
    let (a, b, c) = (&users[0], &users[1], &users[2]);
    let strangers = api.create_chat(b, c).await;
    let mut ws = user_socket(&api, a).await;

    ws.send_text("this is not json").await;
    let error = frame_of!(ws.recv_until(is(FrameType::Error)).await, ServerFrame::Error);
    assert_eq!(error.code, "invalid_json");
    sync(&mut ws).await;

    let send_typed = |kind: i32| {
        Command::Send(SendMessage {
            message_type: Some(kind),
            ..frame_of!(send(chat, "m", "x"), Command::Send)
        })
    };
    // Frames the server cannot read, made from good ones, and good frames it must refuse.
    let cases: Vec<(Value, &str)> = vec![
        (
            with(Command::Ping.with_ref(1), "type", "launch_rockets"),
            "unknown_type",
        ),
        (without(subscribe_to(chat, None).with_ref(2), "type"), "missing_field"),
        (
            without(send(chat, "x", "no id").with_ref(3), "clientId"),
            "missing_field",
        ),
        (
            json_of(send(chat, &"x".repeat(65), "long id").with_ref(4)),
            "invalid_client_id",
        ),
        (json_of(subscribe_to(strangers, None).with_ref(5)), "not_found"),
        (json_of(subscribe_to(chat, Some(1)).with_ref(6)), "invalid_seq"),
        (with(Command::Ping.with_ref(7), "type", 5), "invalid_frame"),
        (
            with(subscribe_to(chat, None).with_ref(8), "chat", "not-a-uuid"),
            "invalid_field",
        ),
        (without(send(chat, "m", "").with_ref(9), "message"), "missing_message"),
        (json_of(send(chat, "m", " ").with_ref(10)), "empty_message"),
        (json_of(send_typed(7).with_ref(11)), "invalid_type"),
        (
            without(
                Command::Edit(EditMessage {
                    id: MessageId::new(),
                    message: String::new(),
                })
                .with_ref(12),
                "message",
            ),
            "missing_field",
        ),
        (
            without(read_upto(chat, ReadUpto::Seq(1)).with_ref(13), "seq"),
            "missing_field",
        ),
    ];
    for (frame, code) in cases {
        let error = expect_error(&mut ws, &frame, code).await;
        assert_eq!(error.reference.as_ref(), frame.get("ref"), "{error:?}");
        sync(&mut ws).await;
    }

    // A resume from beyond the last seq: the error names the chat.
    ws.send_frame(&resume(chat, 5)).await;
    let error = frame_of!(ws.recv_until(is(FrameType::Error)).await, ServerFrame::Error);
    assert_eq!(error.code, "invalid_seq", "{error:?}");
    assert_eq!(error.chat, Some(chat));
    sync(&mut ws).await;

    // A binary frame.
    ws.socket
        .send(tokio_tungstenite::tungstenite::Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .expect("send binary");
    let error = frame_of!(ws.recv_until(is(FrameType::Error)).await, ServerFrame::Error);
    assert_eq!(error.code, "invalid_frame", "{error:?}");
    sync(&mut ws).await;

    // /ws/chat/{id}/?afterSeq= beyond the last: an error naming the chat; the socket stays.
    let url = api.ws(&format!("/ws/chat/{chat}/?token={}&afterSeq=3", a.access));
    let mut resumed = ws::connect(&url, Some(V2)).await;
    let error = frame_of!(resumed.recv_until(is(FrameType::Error)).await, ServerFrame::Error);
    assert_eq!(error.code, "invalid_seq", "{error:?}");
    assert_eq!(error.chat, Some(chat));
    sync(&mut resumed).await;

    // Nothing was stored; a valid frame still works.
    assert_eq!(api.message_count(&a.access, chat).await, 0);
    let ack = ack_of(&send_v2(&mut ws, chat, &"y".repeat(64), "fine").await).clone();
    assert!(!ack.duplicate);
    assert_eq!(ack.message.seq, Some(1));
    assert_eq!(api.message_count(&a.access, chat).await, 1);
    srv.finish().await;
}

/// A frame's JSON as sent.
fn json_of(frame: ClientFrame) -> Value {
    serde_json::to_value(frame).expect("frames serialize")
}

async fn unread_counts_under_concurrent_reads_and_writes(backend: Backend) {
    const TASKS: i64 = 4;
    const EACH: i64 = 25;
    const TOTAL: i64 = TASKS * EACH;
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (users[0].clone(), users[1].clone());
    let mut b_ws = user_socket(&api, &b).await;
    subscribe(&mut b_ws, chat, None).await;

    let mut writers = Vec::new();
    for t in 0..TASKS {
        let (api, token) = (api.clone(), a.access.clone());
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                api.post_message(&token, chat, &format!("{t}-{n}")).await;
            }
        }));
    }
    // B reads as messages come in, sending a receipt every 7th message (never the last).
    let mut seen = 0;
    let mut last_receipt = 0;
    let mut acknowledged = 0;
    while seen < TOTAL {
        match b_ws.recv_frame().await {
            ServerFrame::Message(frame) => {
                let seq = frame.message.seq.expect("seq");
                assert_eq!(seq, seen + 1, "in order");
                seen = seq;
                if seq % 7 == 0 {
                    b_ws.send_frame(&read_upto(chat, ReadUpto::Seq(seq))).await;
                    last_receipt = seq;
                }
            }
            ServerFrame::Read(read) => acknowledged = read.upto_seq.expect("uptoSeq"),
            ServerFrame::Error(error) => panic!("unexpected error {error:?}"),
            _ => {}
        }
    }
    for writer in writers {
        writer.await.expect("writer task");
    }
    while acknowledged < last_receipt {
        let read = frame_of!(b_ws.recv_until(is(FrameType::Read)).await, ServerFrame::Read);
        acknowledged = read.upto_seq.expect("uptoSeq");
    }
    assert_eq!(acknowledged, last_receipt);
    assert_eq!(last_receipt, 98);
    assert_eq!(api.unread_count(&b.access, chat).await, TOTAL - last_receipt);
    assert_eq!(api.message_count(&a.access, chat).await, TOTAL);

    b_ws.send_frame(&read_upto(chat, ReadUpto::Seq(TOTAL))).await;
    let read = frame_of!(b_ws.recv_until(is(FrameType::Read)).await, ServerFrame::Read);
    assert_eq!(read.upto_seq, Some(TOTAL));
    assert_eq!(api.unread_count(&b.access, chat).await, 0);
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
    let Setup { srv, api, users, chat } = Setup::new(backend, 2).await;
    let (a, b) = (&users[0], &users[1]);

    let url = api.ws(&format!("/ws/chat/{chat}/?token={}", a.access));
    let mut a_v1 = ws::connect(&url, None).await;
    assert_eq!(a_v1.protocol, None);
    // An error answer proves the v1 socket has joined its room.
    a_v1.send_text("{").await;
    let refused: v1::ErrorFrame = a_v1.recv().await;
    assert_eq!(refused.error.code, "invalid_json", "{refused:?}");
    let (mut b_v2, _) = chat_socket(&api, b, chat).await;

    a_v1.send_frame(&v1::MessageFrame {
        ref_chat: Some(chat),
        author: Some(a.user_id()),
        ..v1::MessageFrame::text("from v1")
    })
    .await;
    let echo: MessageView = a_v1.recv().await;
    assert_eq!(echo.message, "from v1");
    let frames = b_v2.frames_until(is(FrameType::Message)).await;
    let got = frames.last().unwrap().message().unwrap();
    assert_eq!(got.message, "from v1");
    assert_eq!(got.id, echo.id);
    assert_eq!(got.seq, Some(1));

    let ack = ack_of(&send_v2(&mut b_v2, chat, "v2-1", "from v2").await).clone();
    let got = a_v1.recv_json().await;
    assert_eq!(
        got["message"], "from v2",
        "v1 sees only messages (no ack, no presence): {got}"
    );
    assert!(got.get("seq").is_none() && got.get("clientId").is_none(), "{got}");
    let got: MessageView = serde_json::from_value(got).expect("a message object");
    assert_eq!(got.id, ack.message.id);
    assert_eq!(got.author, Some(b.user_id()));
    assert_eq!(got.ref_chat, chat);
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
        Db::Sqlite(sqlite) => {
            // A reader's connection, not the server's writer: it takes the file's write lock
            // from outside, as another process would.
            let pool = sqlite.reads().clone();
            tokio::spawn(async move {
                let tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("taking the write lock");
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
    let Setup { srv, api, users, chat } = Setup::on(srv, 2).await;
    let (a, b) = (&users[0], &users[1]);
    let (mut a_ws, _) = chat_socket(&api, a, chat).await;
    let mut b_sockets = Vec::new();
    for _ in 0..12 {
        b_sockets.push(chat_socket(&api, b, chat).await.0);
    }
    sync(&mut a_ws).await;

    let release = stall_storage(srv.db()).await;
    for i in 0..20 {
        a_ws.send_frame(&send(chat, &format!("m{i}"), &format!("text {i}")))
            .await;
    }
    // Give A's socket time to fill the storage queue and start waiting for room.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Spaced out: more than A's queue holds in all, never more than it holds at once.
    for b_ws in &mut b_sockets {
        b_ws.send_frame(&typing(chat)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut typings = 0;
    while typings < 12 {
        let frame = a_ws.recv_frame().await;
        match frame.kind() {
            FrameType::Typing => typings += 1,
            FrameType::Presence => {}
            other => panic!("A got {other:?} while storage was stalled: {frame:?}"),
        }
    }
    release.send(()).expect("the lock holder is waiting");

    // Every send is stored, in the order it was sent, and acknowledged in that order.
    let mut acks = Vec::new();
    while acks.len() < 20 {
        match a_ws.recv_frame().await {
            ServerFrame::Ack(ack) => acks.push(ack),
            frame => assert!(
                [FrameType::Message, FrameType::Typing, FrameType::Presence].contains(&frame.kind()),
                "unexpected {frame:?}"
            ),
        }
    }
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack.client_id, format!("m{i}"), "{ack:?}");
        assert_eq!(ack.message.seq, Some(i as i64 + 1), "{ack:?}");
        assert!(!ack.duplicate);
    }
    srv.finish().await;
}
