//! Presence as the finished app sets it (issue 11, item 7; docs/protocol.md, "Presence"): the app
//! PATCHes `online` on its own record and holds a socket only inside a chat. Black-box: a real
//! server, the declaring user over HTTP, another member watching over REST and a v2 socket; and
//! two instances over Redis when CAUSERIE_TEST_POSTGRES_URL and CAUSERIE_TEST_REDIS_URL are set.

#[macro_use]
mod common;

use std::time::Duration;

use causerie::ids::UserId;
use causerie::wire::v2::{Command, FrameType, Presence, ServerFrame, SUBPROTOCOL as V2};
use causerie::Config;
use common::ws::{self, WsClient};
use common::{Backend, TestServer, TestUser};
use serde_json::{json, Value};

backend_tests!(
    declared_online_shows_without_a_socket,
    declared_offline_wins_over_an_open_socket,
    a_vanished_client_goes_offline,
    requests_keep_a_declared_user_online,
    closing_a_socket_keeps_a_declared_user_online,
    a_refused_declaration_changes_nothing,
    users_stored_online_expire_after_a_restart,
    sockets_opened_at_once_show_each_user_online_once,
);

/// Long enough that nothing expires during a test that does not wait for it.
const NEVER_SECS: u64 = 3600;

async fn server(backend: Backend, timeout_secs: u64) -> TestServer {
    TestServer::start_with(backend, |c: &mut Config| c.presence_timeout_secs = timeout_secs).await
}

/// An observer and the user they share a chat with.
async fn pair(srv: &TestServer) -> (TestUser, TestUser) {
    let users = srv.quick_users(2).await;
    srv.open_chat(&users[0], &users[1]).await;
    (users[0].clone(), users[1].clone())
}

async fn declare(srv: &TestServer, user: &TestUser, body: Value) -> Value {
    let reply = srv
        .patch_json_auth(&format!("/api/user/{}/", user.id), &user.access, &body)
        .await;
    reply.expect_status(200);
    reply.body.clone()
}

/// `other`'s `online` as `viewer`'s chat list shows it.
async fn listed_online(srv: &TestServer, viewer: &TestUser, other: &TestUser) -> bool {
    let reply = srv.get_auth("/api/chat/", &viewer.access).await;
    reply.expect_status(200);
    let results = reply.body["results"].as_array().expect("results");
    let shown = results
        .iter()
        .flat_map(|chat| [&chat["fromUser"], &chat["toUser"]])
        .find(|u| u["id"] == other.id.as_str())
        .unwrap_or_else(|| panic!("{} listed: {}", other.id, reply.text));
    shown["online"].as_bool().expect("online is a boolean")
}

/// A v2 socket on `/ws/`, past its first frames.
async fn observer(srv: &TestServer, user: &TestUser) -> WsClient {
    let mut ws = ws::connect(&srv.ws_url(&format!("/ws/?token={}", user.access)), Some(V2)).await;
    sync(&mut ws).await;
    ws
}

/// Everything the server queued for this socket before answering a ping.
async fn sync(ws: &mut WsClient) -> Vec<ServerFrame> {
    let tag = Value::from(UserId::new().to_string());
    ws.send_frame(&Command::Ping.with_ref(tag.clone())).await;
    let mut frames = ws
        .frames_until(|f| f.kind() == FrameType::Pong && f.reference() == Some(&tag))
        .await;
    frames.pop();
    frames
}

/// The next presence frame about `user` (others are skipped); panics after `ws::FRAME_WAIT`.
async fn presence_of(ws: &mut WsClient, user: &TestUser) -> Presence {
    let user = user.user_id();
    let frame = ws
        .recv_until(|f| matches!(f, ServerFrame::Presence(p) if p.user == user))
        .await;
    frame_of!(frame, ServerFrame::Presence)
}

fn presences_of<'a>(frames: &'a [ServerFrame], user: &TestUser) -> Vec<&'a Presence> {
    let user = user.user_id();
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Presence(p) if p.user == user => Some(p),
            _ => None,
        })
        .collect()
}

async fn declared_online_shows_without_a_socket(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    assert!(!listed_online(&srv, &alice, &bob).await, "offline before anything");

    // What the app sends at login: online, with its own clock's lastConnexionDate.
    let at = "2026-01-02T03:04:05.678901Z";
    let body = declare(&srv, &bob, json!({ "online": true, "lastConnexionDate": at })).await;
    assert_eq!(body["online"], true, "{body}");
    assert_eq!(body["lastConnexionDate"], at, "the app's date is kept: {body}");
    let online = presence_of(&mut watching, &bob).await;
    assert!(online.online);
    assert_eq!(
        online.last_connexion_date.to_rfc3339(),
        "2026-01-02T03:04:05.678901+00:00"
    );
    assert!(listed_online(&srv, &alice, &bob).await, "REST agrees with the event");

    // Said again (the app at every foreground): no second event.
    declare(&srv, &bob, json!({ "online": true })).await;
    let frames = sync(&mut watching).await;
    let frames = [frames, watching.frames_for_a_while().await].concat();
    assert!(presences_of(&frames, &bob).is_empty(), "nothing changed: {frames:?}");

    // Background: offline at once.
    let body = declare(&srv, &bob, json!({ "online": false })).await;
    assert_eq!(body["online"], false, "{body}");
    assert!(
        !listed_online(&srv, &alice, &bob).await,
        "offline as soon as the PATCH answers"
    );
    let offline = presence_of(&mut watching, &bob).await;
    assert!(!offline.online);
    srv.finish().await;
}

async fn declared_offline_wins_over_an_open_socket(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    let bob_first = observer(&srv, &bob).await;
    assert!(presence_of(&mut watching, &bob).await.online, "a socket shows online");

    // The app goes to the background inside a chat: its socket may stay open a while.
    declare(&srv, &bob, json!({ "online": false })).await;
    assert!(!presence_of(&mut watching, &bob).await.online);
    assert!(!listed_online(&srv, &alice, &bob).await);

    // Closing that socket changes nothing more; a new socket shows online again.
    bob_first.close().await;
    let frames = watching.frames_for_a_while().await;
    assert!(presences_of(&frames, &bob).is_empty(), "already offline: {frames:?}");
    let bob_second = observer(&srv, &bob).await;
    assert!(
        presence_of(&mut watching, &bob).await.online,
        "a new socket shows online"
    );
    assert!(listed_online(&srv, &alice, &bob).await);
    bob_second.close().await;
    assert!(
        !presence_of(&mut watching, &bob).await.online,
        "undeclared: the last socket decides"
    );
    srv.finish().await;
}

async fn a_vanished_client_goes_offline(backend: Backend) {
    let srv = server(backend, 1).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    declare(&srv, &bob, json!({ "online": true })).await;
    assert!(presence_of(&mut watching, &bob).await.online);

    // Bob says nothing more (no socket, no request): offline once the timeout has passed.
    let offline = presence_of(&mut watching, &bob).await;
    assert!(!offline.online, "{offline:?}");
    assert!(!listed_online(&srv, &alice, &bob).await, "REST agrees with the event");
    let row = srv.user_row(&bob.id).await.expect("bob");
    assert!(!row.online);
    assert_eq!(
        row.last_connexion_date,
        Some(offline.last_connexion_date),
        "the date of the change"
    );
    let frames = watching.frames_for_a_while().await;
    assert!(presences_of(&frames, &bob).is_empty(), "announced once: {frames:?}");

    // A new declaration starts again.
    declare(&srv, &bob, json!({ "online": true })).await;
    assert!(presence_of(&mut watching, &bob).await.online);
    assert!(!presence_of(&mut watching, &bob).await.online, "and expires again");
    srv.finish().await;
}

async fn requests_keep_a_declared_user_online(backend: Backend) {
    let srv = server(backend, 4).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    declare(&srv, &bob, json!({ "online": true })).await;
    assert!(presence_of(&mut watching, &bob).await.online);

    // The home screen polls the chat list: for well over the timeout, Bob stays online.
    for _ in 0..40 {
        srv.get_auth("/api/chat/", &bob.access).await.expect_status(200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let frames = sync(&mut watching).await;
    assert!(
        presences_of(&frames, &bob).is_empty(),
        "no change while polling: {frames:?}"
    );
    assert!(listed_online(&srv, &alice, &bob).await);

    // The polling stops: offline after the timeout.
    assert!(!presence_of(&mut watching, &bob).await.online);
    assert!(!listed_online(&srv, &alice, &bob).await);
    srv.finish().await;
}

async fn closing_a_socket_keeps_a_declared_user_online(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    declare(&srv, &bob, json!({ "online": true })).await;
    assert!(presence_of(&mut watching, &bob).await.online);

    // Into a chat and back to the home screen.
    let inside = observer(&srv, &bob).await;
    inside.close().await;
    let frames = watching.frames_for_a_while().await;
    let frames = [frames, sync(&mut watching).await].concat();
    assert!(presences_of(&frames, &bob).is_empty(), "still online: {frames:?}");
    assert!(listed_online(&srv, &alice, &bob).await);
    assert!(srv.user_row(&bob.id).await.expect("bob").online, "stored online");
    srv.finish().await;
}

async fn a_refused_declaration_changes_nothing(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    let (alice, bob) = pair(&srv).await;
    let mut watching = observer(&srv, &alice).await;
    let path = format!("/api/user/{}/", bob.id);
    srv.patch_json_auth(&path, &bob.access, &json!({ "online": "maybe" }))
        .await
        .expect(400, json!({ "online": ["Must be a valid boolean."] }));
    // Someone else's record: not found, and Alice stays as she was.
    srv.patch_json_auth(
        &format!("/api/user/{}/", alice.id),
        &bob.access,
        &json!({ "online": true }),
    )
    .await
    .expect_status(404);
    let frames = [watching.frames_for_a_while().await, sync(&mut watching).await].concat();
    assert!(presences_of(&frames, &bob).is_empty(), "{frames:?}");
    assert!(!listed_online(&srv, &alice, &bob).await);
    assert!(!srv.user_row(&bob.id).await.expect("bob").online, "stored offline");
    srv.finish().await;
}

/// The seed's stuck flag: a user stored online whom no running instance has heard of (here:
/// declared on a server that then stops answering for them) is shown offline by the next
/// server to start, one timeout later.
async fn users_stored_online_expire_after_a_restart(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    let (alice, bob) = pair(&srv).await;
    declare(&srv, &bob, json!({ "online": true })).await;
    let restarted = srv.start_peer(|c| c.presence_timeout_secs = 2).await;
    let mut watching = observer(&restarted, &alice).await;
    assert!(!presence_of(&mut watching, &bob).await.online);
    assert!(!listed_online(&restarted, &alice, &bob).await);
    assert!(
        !listed_online(&srv, &alice, &bob).await,
        "stored, so every instance shows it"
    );
    restarted.finish().await;
    srv.finish().await;
}

// ---- two instances over Redis ------------------------------------------------------------------

fn redis_url() -> Option<String> {
    std::env::var("CAUSERIE_TEST_REDIS_URL").ok().filter(|v| !v.is_empty())
}

/// Bob declares himself on one instance, Alice watches on the other: one event per change,
/// the expiry announced once although both instances sweep, and a socket closing on the
/// watching instance does not undo the declaration made on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_agree_on_presence() {
    let Some(redis) = redis_url() else {
        eprintln!("note: CAUSERIE_TEST_REDIS_URL not set; skipping");
        return;
    };
    if !Backend::Postgres.is_available() {
        eprintln!("note: {} not set; skipping", common::POSTGRES_ENV);
        return;
    }
    let tweak = |c: &mut Config| {
        c.redis_url = Some(redis.clone());
        c.presence_timeout_secs = 2;
    };
    let first = TestServer::start_with(Backend::Postgres, tweak).await;
    let second = first.start_peer(tweak).await;
    let (alice, bob) = pair(&first).await;
    let mut watching = observer(&first, &alice).await;

    declare(&second, &bob, json!({ "online": true })).await;
    assert!(
        presence_of(&mut watching, &bob).await.online,
        "declared on the other instance"
    );
    assert!(listed_online(&first, &alice, &bob).await);

    // A socket on the watching instance opens and closes: Bob stays online.
    let inside = observer(&first, &bob).await;
    inside.close().await;
    let frames = [watching.frames_for_a_while().await, sync(&mut watching).await].concat();
    assert!(presences_of(&frames, &bob).is_empty(), "still declared: {frames:?}");

    // Requests to either instance keep him online past the timeout.
    for i in 0..24 {
        let on = if i % 2 == 0 { &first } else { &second };
        on.get_auth("/api/chat/", &bob.access).await.expect_status(200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let frames = sync(&mut watching).await;
    assert!(
        presences_of(&frames, &bob).is_empty(),
        "no change while polling: {frames:?}"
    );

    // Then he vanishes: offline, announced once by one of the two sweeps.
    assert!(!presence_of(&mut watching, &bob).await.online);
    let frames = watching.frames_for_a_while().await;
    let frames = [frames, watching.frames_for_a_while().await, sync(&mut watching).await].concat();
    assert!(presences_of(&frames, &bob).is_empty(), "announced once: {frames:?}");
    assert!(!listed_online(&first, &alice, &bob).await);
    assert!(!listed_online(&second, &alice, &bob).await);

    // Background on the other instance: offline at once, seen here.
    declare(&second, &bob, json!({ "online": true })).await;
    assert!(presence_of(&mut watching, &bob).await.online);
    declare(&second, &bob, json!({ "online": false })).await;
    assert!(!presence_of(&mut watching, &bob).await.online);
    second.finish().await;
    first.finish().await;
}

/// Sockets opened at once are stored in batches (`accounts/opened.rs`): every user comes online
/// in storage and in one presence event each, also a user whose two sockets opened in the
/// same batch.
async fn sockets_opened_at_once_show_each_user_online_once(backend: Backend) {
    let srv = server(backend, NEVER_SECS).await;
    // Twenty chats: the list's first page shows them all.
    let users = srv.quick_users(21).await;
    let (alice, others) = (&users[0], &users[1..]);
    for other in others {
        srv.open_chat(alice, other).await;
    }
    let mut watching = observer(&srv, alice).await;
    // Every third user opens two sockets at once.
    let urls: Vec<String> = others
        .iter()
        .enumerate()
        .flat_map(|(n, user)| {
            let url = srv.ws_url(&format!("/ws/?token={}", user.access));
            vec![url; if n % 3 == 0 { 2 } else { 1 }]
        })
        .collect();
    let opening = urls.iter().map(|url| ws::connect(url, Some(V2)));
    let sockets = futures_util::future::join_all(opening).await;
    let mut frames = Vec::new();
    while others.iter().any(|u| presences_of(&frames, u).is_empty()) {
        frames.push(watching.recv_until(|f| matches!(f, ServerFrame::Presence(_))).await);
    }
    frames.extend(watching.frames_for_a_while().await);
    for user in others {
        let seen = presences_of(&frames, user);
        assert_eq!(seen.len(), 1, "one event for {}: {seen:?}", user.id);
        assert!(seen[0].online);
        assert!(listed_online(&srv, alice, user).await, "REST agrees for {}", user.id);
    }
    drop(sockets);
    srv.finish().await;
}
