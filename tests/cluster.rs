//! Several Causerie processes sharing one PostgreSQL database and one Redis: delivery, order and
//! presence across instances; Redis dying mid-conversation (and a removal from a group made
//! meanwhile); an instance dying; SIGTERM.
//!
//! Runs when both CAUSERIE_TEST_POSTGRES_URL and CAUSERIE_TEST_REDIS_URL are set (CI sets them).
//! The Redis fault test starts and kills a `redis-server` of its own on a free port, never the
//! shared one.

#[macro_use]
mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use causerie::ids::{ChatId, UserId};
use causerie::wire::v2::{self, ClientFrame, FrameType, Resume, SendMessage, ServerFrame, Subscribe, SUBPROTOCOL};
use causerie::wire::{v1, MessageView};
use common::ws::{self, WsClient};
use common::{PgDatabase, POSTGRES_ENV};
use serde_json::{json, Value};

const REDIS_ENV: &str = "CAUSERIE_TEST_REDIS_URL";
const PASSWORD: &str = "Vintage-Lantern-42";
const V2: Option<&str> = Some(SUBPROTOCOL);

fn cluster_env() -> Option<(String, String)> {
    let pg = std::env::var(POSTGRES_ENV).ok().filter(|v| !v.is_empty())?;
    let redis = std::env::var(REDIS_ENV).ok().filter(|v| !v.is_empty())?;
    Some((pg, redis))
}

macro_rules! require_cluster {
    () => {
        match cluster_env() {
            Some(env) => env,
            None => {
                eprintln!("note: {POSTGRES_ENV} and {REDIS_ENV} not both set; skipping");
                return;
            }
        }
    };
}

/// One `causerie serve` process.
struct Instance {
    child: Child,
    addr: String,
    client: reqwest::Client,
}

impl Instance {
    fn start(database_url: &str, redis_url: &str, secret: &str) -> Instance {
        let (child, addr) = common::spawn_serve(|command| {
            command
                .env("CAUSERIE_DATABASE_URL", database_url)
                .env("CAUSERIE_REDIS_URL", redis_url)
                .env("CAUSERIE_SECRET_KEY", secret)
                .env("CAUSERIE_RATE_LOGIN_PER_MINUTE", "10000")
                .env("CAUSERIE_RATE_REGISTER_PER_HOUR", "10000")
                .env("CAUSERIE_SHUTDOWN_GRACE_SECS", "5")
                .env(
                    "CAUSERIE_LOG_LEVEL",
                    std::env::var("CLUSTER_LOG").unwrap_or("warn".into()),
                );
        });
        Instance {
            child,
            addr,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let res = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str, token: &str) -> u16 {
        let res = self
            .client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        res.status().as_u16()
    }

    async fn ready(&self) -> bool {
        match self.client.get(self.url("/readyz")).send().await {
            Ok(res) => res.status() == 200,
            Err(_) => false,
        }
    }

    /// Waits until `/readyz` says `want`.
    async fn wait_ready(&self, want: bool) {
        for _ in 0..200 {
            if self.ready().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("instance {} never became ready={want}", self.addr);
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct User {
    id: UserId,
    access: String,
}

async fn user(on: &Instance, email: &str, name: &str) -> User {
    let (status, body) = on
        .post(
            "/auth/users/",
            None,
            &json!({ "email": email, "password": PASSWORD, "first_name": name }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, tokens) = on
        .post(
            "/auth/jwt/create/",
            None,
            &json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    User {
        id: body["id"].as_str().unwrap().parse().unwrap(),
        access: tokens["access"].as_str().unwrap().to_string(),
    }
}

async fn pair_chat(on: &Instance, a: &User, b: &User) -> ChatId {
    let (status, chat) = on
        .post(
            "/api/createChat/",
            Some(&a.access),
            &json!({ "refUser": a.id, "chatWithUser": b.id }),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    chat["id"].as_str().unwrap().parse().unwrap()
}

/// A v2 socket that keeps the frames a wait skipped, so no message frame is lost to the test.
struct Peer {
    ws: WsClient,
    inbox: std::collections::VecDeque<ServerFrame>,
}

impl Peer {
    async fn connect(url: &str) -> Peer {
        Peer {
            ws: ws::connect(url, V2).await,
            inbox: Default::default(),
        }
    }

    /// The first frame (kept or new) that satisfies `want`; the others stay kept.
    async fn take(&mut self, want: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        if let Some(pos) = self.inbox.iter().position(&want) {
            return self.inbox.remove(pos).unwrap();
        }
        loop {
            let frame = self.ws.recv_frame().await;
            if want(&frame) {
                return frame;
            }
            self.inbox.push_back(frame);
        }
    }

    async fn subscribe(&mut self, chat: ChatId, after_seq: Option<i64>) -> i64 {
        self.ws
            .send_frame(&v2::Command::Subscribe(Subscribe { chat, after_seq }))
            .await;
        let done = self
            .take(|f| f.kind() == FrameType::Subscribed && f.chat() == Some(chat))
            .await;
        frame_of!(done, ServerFrame::Subscribed).last_seq
    }

    async fn send(&mut self, chat: ChatId, client_id: &str, text: &str) -> MessageView {
        let send = v2::Command::Send(SendMessage {
            chat,
            client_id: client_id.into(),
            message: text.into(),
            message_type: None,
            extra_data: None,
            attachments: Vec::new(),
        });
        self.ws.send_frame(&send).await;
        let ack = self
            .take(|f| matches!(f, ServerFrame::Ack(ack) if ack.client_id == client_id))
            .await;
        frame_of!(ack, ServerFrame::Ack).message
    }

    /// The next `count` message frames of `chat`: their seqs and texts.
    async fn messages(&mut self, chat: ChatId, count: usize) -> Vec<(i64, String)> {
        let mut got = Vec::new();
        while got.len() < count {
            let frame = self.take(is_message_in(chat)).await;
            let message = frame_of!(frame, ServerFrame::Message).message;
            got.push((message.seq.unwrap(), message.message));
        }
        got
    }

    /// Asserts that no message frame for `chat` is kept or arrives for a while.
    async fn no_more_messages(&mut self, chat: ChatId) {
        assert!(!self.inbox.iter().any(is_message_in(chat)), "{:?}", self.inbox);
        let frames = self.ws.frames_for_a_while().await;
        assert!(!frames.iter().any(is_message_in(chat)), "unexpected {frames:?}");
    }
}

/// A `message` frame of `chat`.
fn is_message_in(chat: ChatId) -> impl Fn(&ServerFrame) -> bool {
    move |frame| frame.kind() == FrameType::Message && frame.chat() == Some(chat)
}

fn random_secret() -> String {
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key);
    hex::encode(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_order_and_presence_cross_instances() {
    let (pg, redis) = require_cluster!();
    let db = PgDatabase::create(&pg).await;
    let secret = random_secret();
    let a = Instance::start(&db.url, &redis, &secret);
    let b = Instance::start(&db.url, &redis, &secret);
    let c = Instance::start(&db.url, &redis, &secret);
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    c.wait_ready(true).await;

    let alice = user(&a, "alice@example.com", "Alice").await;
    let bob = user(&b, "bob@example.com", "Bob").await;
    let carol = user(&c, "carol@example.com", "Carol").await;
    let chat = pair_chat(&a, &alice, &bob).await;

    // Alice on A, Bob on B (v2), and a seed (v1) client of Bob's on C.
    let mut alice_ws = Peer::connect(&a.ws(&format!("/ws/?token={}", alice.access))).await;
    let mut bob_ws = Peer::connect(&b.ws(&format!("/ws/?token={}", bob.access))).await;
    let presence = frame_of!(
        alice_ws.take(|f| f.kind() == FrameType::Presence).await,
        ServerFrame::Presence
    );
    assert_eq!(presence.user, bob.id);
    assert!(presence.online, "Bob online on B is online for Alice on A");
    alice_ws.subscribe(chat, None).await;
    bob_ws.subscribe(chat, None).await;
    let mut bob_v1 = ws::connect(&c.ws(&format!("/ws/chat/{chat}/?token={}", bob.access)), None).await;

    for i in 0..5 {
        alice_ws.send(chat, &format!("a{i}"), &format!("from alice {i}")).await;
        bob_ws.send(chat, &format!("b{i}"), &format!("from bob {i}")).await;
    }
    let seen_by_alice = alice_ws.messages(chat, 10).await;
    let seen_by_bob = bob_ws.messages(chat, 10).await;
    assert_eq!(seen_by_alice, seen_by_bob, "both instances deliver the same stream");
    let seqs: Vec<i64> = seen_by_alice.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<i64>>(), "in order, no gap, no duplicate");
    let mut v1_texts = Vec::new();
    for _ in 0..10 {
        v1_texts.push(bob_v1.recv::<MessageView>().await.message);
    }
    let mut expected: Vec<String> = seen_by_alice.iter().map(|(_, t)| t.clone()).collect();
    expected.sort();
    v1_texts.sort();
    assert_eq!(
        v1_texts, expected,
        "the v1 client on a third instance got every message"
    );

    // A group spread over three instances sees one order.
    let (status, group) = a
        .post(
            "/api/groups/",
            Some(&alice.access),
            &json!({ "title": "trio", "members": [bob.id, carol.id] }),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group: ChatId = group["id"].as_str().unwrap().parse().unwrap();
    let mut carol_ws = Peer::connect(&c.ws(&format!("/ws/?token={}", carol.access))).await;
    alice_ws.subscribe(group, None).await;
    bob_ws.subscribe(group, None).await;
    carol_ws.subscribe(group, None).await;
    for i in 0..4 {
        alice_ws.send(group, &format!("ga{i}"), &format!("alice {i}")).await;
        carol_ws.send(group, &format!("gc{i}"), &format!("carol {i}")).await;
        bob_ws.send(group, &format!("gb{i}"), &format!("bob {i}")).await;
    }
    let ga = alice_ws.messages(group, 12).await;
    let gb = bob_ws.messages(group, 12).await;
    let gc = carol_ws.messages(group, 12).await;
    assert_eq!(ga, gb);
    assert_eq!(gb, gc);
    assert_eq!(
        ga.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<i64>>()
    );

    // Bob leaves B entirely: Alice hears he is offline.
    drop(bob_ws);
    drop(bob_v1);
    let offline = alice_ws
        .take(|f| matches!(f, ServerFrame::Presence(p) if p.user == bob.id && !p.online))
        .await;
    assert!(!frame_of!(offline, ServerFrame::Presence).online);
    drop((a, b, c));
    let mut db = db;
    db.drop_now().await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throwaway `redis-server` of this test's own.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis {
            port,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_loses_nothing_and_repeats_nothing() {
    let (pg, _) = require_cluster!();
    let db = PgDatabase::create(&pg).await;
    let secret = random_secret();
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let a = Instance::start(&db.url, &redis.url(), &secret);
    let b = Instance::start(&db.url, &redis.url(), &secret);
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let alice = user(&a, "alice@example.com", "Alice").await;
    let bob = user(&b, "bob@example.com", "Bob").await;
    let chat = pair_chat(&a, &alice, &bob).await;
    let mut alice_ws = Peer::connect(&a.ws(&format!("/ws/?token={}", alice.access))).await;
    let mut bob_ws = Peer::connect(&b.ws(&format!("/ws/?token={}", bob.access))).await;
    alice_ws.subscribe(chat, None).await;
    bob_ws.subscribe(chat, None).await;
    alice_ws.send(chat, "before-1", "before the outage").await;
    assert_eq!(bob_ws.messages(chat, 1).await[0].0, 1);

    // Redis goes away mid-conversation: A keeps storing and acknowledging, and says not ready.
    redis.kill();
    a.wait_ready(false).await;
    for i in 0..5 {
        let stored = alice_ws
            .send(chat, &format!("during-{i}"), &format!("during {i}"))
            .await;
        assert_eq!(stored.seq, Some(i + 2), "stored and acknowledged while Redis is down");
    }

    // Redis comes back on the same port: both instances reconnect by themselves, and Bob's
    // socket catches up from storage with every missed message once, in order.
    let _redis_again = OwnRedis::start(port);
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let caught_up = bob_ws.messages(chat, 5).await;
    assert_eq!(
        caught_up.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    alice_ws.send(chat, "after-1", "after the outage").await;
    let next = bob_ws.messages(chat, 1).await;
    assert_eq!(next[0].0, 7, "live delivery resumes with no duplicate");
    bob_ws.no_more_messages(chat).await;

    // A client whose instance dies reconnects to the other and resumes without a gap.
    drop(a);
    let mut alice_on_b = Peer::connect(&b.ws(&format!("/ws/?token={}", alice.access))).await;
    let resume = ClientFrame::from(v2::Command::Resume(Resume { chats: vec![(chat, 3)] }));
    alice_on_b.ws.send_frame(&resume).await;
    let replay = alice_on_b.messages(chat, 4).await;
    assert_eq!(replay.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    let done = alice_on_b.take(|f| f.kind() == FrameType::Subscribed).await;
    assert_eq!(frame_of!(done, ServerFrame::Subscribed).last_seq, 7);
    let mut db = db;
    drop(b);
    db.drop_now().await;
}

/// Carol is removed from a group on A while Redis is down, so B never hears the event. Once
/// Redis is back, B re-reads the memberships of its sockets before they catch up: Carol's v2
/// socket on B gets the `member_removed` it missed and none of the messages stored meanwhile or
/// later, her v1 socket on B hears nothing more, and what either posts is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_made_during_a_redis_outage_reaches_the_other_instance() {
    let (pg, _) = require_cluster!();
    let db = PgDatabase::create(&pg).await;
    let secret = random_secret();
    let port = free_port();
    let mut redis = OwnRedis::start(port);
    let a = Instance::start(&db.url, &redis.url(), &secret);
    let b = Instance::start(&db.url, &redis.url(), &secret);
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let alice = user(&a, "alice@example.com", "Alice").await;
    let bob = user(&a, "bob@example.com", "Bob").await;
    let carol = user(&b, "carol@example.com", "Carol").await;
    let (status, group) = a
        .post(
            "/api/groups/",
            Some(&alice.access),
            &json!({ "title": "outage", "members": [bob.id, carol.id] }),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group: ChatId = group["id"].as_str().unwrap().parse().unwrap();
    let mut alice_ws = Peer::connect(&a.ws(&format!("/ws/?token={}", alice.access))).await;
    let mut carol_ws = Peer::connect(&b.ws(&format!("/ws/?token={}", carol.access))).await;
    alice_ws.subscribe(group, None).await;
    carol_ws.subscribe(group, None).await;
    let mut carol_v1 = ws::connect(&b.ws(&format!("/ws/chat/{group}/?token={}", carol.access)), None).await;
    alice_ws.send(group, "before", "before the outage").await;
    assert_eq!(carol_ws.messages(group, 1).await[0].0, 1);
    assert_eq!(carol_v1.recv::<MessageView>().await.message, "before the outage");

    redis.kill();
    a.wait_ready(false).await;
    b.wait_ready(false).await;
    let status = a
        .delete(&format!("/api/groups/{group}/members/{}/", carol.id), &alice.access)
        .await;
    assert_eq!(status, 204);
    alice_ws.send(group, "during", "said after Carol left").await;

    let _redis_again = OwnRedis::start(port);
    a.wait_ready(true).await;
    b.wait_ready(true).await;
    let removed = carol_ws
        .take(|f| matches!(f, ServerFrame::MemberRemoved(m) if m.chat == group && m.user == carol.id))
        .await;
    assert_eq!(frame_of!(removed, ServerFrame::MemberRemoved).user, carol.id);
    alice_ws.send(group, "after", "after the outage").await;
    carol_ws.no_more_messages(group).await;
    carol_v1.expect_silence().await;

    // Posting is refused by the storing transaction, whatever the socket believes.
    carol_ws
        .ws
        .send_frame(&v2::Command::Send(SendMessage {
            chat: group,
            client_id: "late".into(),
            message: "let me back".into(),
            message_type: None,
            extra_data: None,
            attachments: Vec::new(),
        }))
        .await;
    let refused = carol_ws.take(|f| f.kind() == FrameType::Error).await;
    assert_eq!(frame_of!(refused, ServerFrame::Error).code, "not_found");
    carol_v1.send_frame(&v1::MessageFrame::text("v1 let me back")).await;
    let refused: Value = carol_v1.recv_json().await;
    assert_eq!(refused["error"]["code"], "not_found", "{refused}");
    let (code, history) = a.get(&format!("/api/message/?refChat={group}"), &alice.access).await;
    assert_eq!(code, 200);
    assert_eq!(history["count"], json!(3), "{history}");
    drop(carol_v1);
    let mut db = db;
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_1012_and_exits() {
    let (pg, redis) = require_cluster!();
    let db = PgDatabase::create(&pg).await;
    let secret = random_secret();
    let mut a = Instance::start(&db.url, &redis, &secret);
    a.wait_ready(true).await;
    let alice = user(&a, "alice@example.com", "Alice").await;
    let bob = user(&a, "bob@example.com", "Bob").await;
    let chat = pair_chat(&a, &alice, &bob).await;
    let mut socket = ws::connect(&a.ws(&format!("/ws/chat/{chat}/?token={}", alice.access)), None).await;
    // The session is running once it echoes a message.
    socket.send_frame(&v1::MessageFrame::text("last words")).await;
    assert_eq!(socket.recv::<MessageView>().await.message, "last words");
    a.signal("-TERM");
    assert_eq!(socket.expect_close().await, Some(1012), "told to reconnect elsewhere");
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = a.child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("exited within the grace period");
    assert!(status.success(), "clean exit: {status:?}");
    // What was stored before the signal is there for the next instance.
    let b = Instance::start(&db.url, &redis, &secret);
    b.wait_ready(true).await;
    let (code, history) = b.get(&format!("/api/message/?refChat={chat}"), &alice.access).await;
    assert_eq!(code, 200);
    assert_eq!(history["count"], json!(1), "{history}");
    drop(b);
    let mut db = db;
    db.drop_now().await;
}

/// A PostgreSQL server of this test's own (initdb in a temp dir, run as the `postgres` user),
/// so stopping it disturbs no other test.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        dirs.sort();
        dirs.pop().filter(|d| d.join("initdb").exists())
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> bool {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn create() -> Option<OwnPostgres> {
        let bin = Self::bin_dir()?;
        let dir = tempfile::tempdir().ok()?;
        let chown = Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str()?])
            .status()
            .ok()?;
        if !chown.success() {
            return None;
        }
        let own = OwnPostgres {
            dir,
            bin,
            port: free_port(),
        };
        let data = own.data();
        own.as_postgres("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"])
            .then_some(())?;
        own.start().then_some(own)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"],
        )
    }

    fn stop(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_gives_503_then_recovers_without_restart() {
    let (_, redis) = require_cluster!();
    let Some(pg) = OwnPostgres::create() else {
        eprintln!("note: cannot run a private PostgreSQL here (initdb/runuser); skipping");
        return;
    };
    let a = Instance::start(&pg.url(), &redis, &random_secret());
    a.wait_ready(true).await;
    let alice = user(&a, "alice@example.com", "Alice").await;
    let (status, _) = a.get("/api/chat/", &alice.access).await;
    assert_eq!(status, 200);

    pg.stop();
    let (status, body) = a.get("/api/chat/", &alice.access).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({ "detail": "Service temporarily unavailable, try again later." })
    );
    a.wait_ready(false).await;

    assert!(pg.start(), "PostgreSQL restarts");
    a.wait_ready(true).await;
    let (status, body) = a.get("/api/chat/", &alice.access).await;
    assert_eq!(status, 200, "{body}");
    let (status, tokens) = a
        .post(
            "/auth/jwt/create/",
            None,
            &json!({ "email": "alice@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
}
