//! `causerie import-django` against databases built by Django itself (tests/django: the
//! series' models, migrated and filled by Django's ORM, passwords hashed by Django, tokens minted
//! by SimpleJWT 4.6), checked the way clients see the result: through the REST API of a running
//! server whose `secret_key` is Django's SECRET_KEY.
//!
//! Needs `CAUSERIE_TEST_DJANGO_PYTHON`: a Python with tests/django/requirements.txt installed
//! (`.ci/run` makes one). Without it the tests pass with a note, except under `CI=true`, where a
//! missing Django is a failure. On PostgreSQL (`CAUSERIE_TEST_POSTGRES_URL`) both sides run on
//! PostgreSQL, each in a fresh database.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::path::Path;

use causerie::testing::import::{self, DevicesOutcome, ImportOptions, ProgressMode, Report};
use causerie::testing::store::{chats, messages, Db};
use causerie::Config;
use common::{Backend, PgDatabase, TestServer, POSTGRES_ENV};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const PYTHON_ENV: &str = "CAUSERIE_TEST_DJANGO_PYTHON";

backend_tests!(
    import_then_delta_as_clients_see_it,
    dry_run_writes_nothing_and_lists_every_refusal
);

/// The Python that has Django, or `None` (with a note) on a machine without one.
fn django_python() -> Option<String> {
    match std::env::var(PYTHON_ENV) {
        Ok(python) if !python.trim().is_empty() => Some(python),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{PYTHON_ENV} is not set under CI: .ci/run installs Django and sets it");
            }
            eprintln!("note: {PYTHON_ENV} not set; skipping the Django import test (run .ci/run to get one)");
            None
        }
    }
}

/// A Django database of its own, built and changed by tests/django/fixture.py.
struct DjangoDb {
    python: String,
    /// What the fixture is given: a SQLite path or a PostgreSQL URL.
    target: String,
    /// What `--from` is given.
    from: String,
    _pg: Option<PgDatabase>,
    _dir: tempfile::TempDir,
}

impl DjangoDb {
    async fn create(backend: Backend) -> Option<DjangoDb> {
        let python = django_python()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let (target, from, pg) = match backend {
            Backend::Sqlite => {
                let path = dir.path().join("chattuto.sqlite3");
                let path = path.display().to_string();
                (path.clone(), format!("sqlite://{path}"), None)
            }
            Backend::Postgres => {
                let admin = std::env::var(POSTGRES_ENV).expect("PostgreSQL is configured");
                let db = PgDatabase::create(&admin).await;
                (db.url.clone(), db.url.clone(), Some(db))
            }
        };
        Some(DjangoDb {
            python,
            target,
            from,
            _pg: pg,
            _dir: dir,
        })
    }

    /// Runs `fixture.py <command>` and returns what it printed.
    async fn fixture(&self, command: &str) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django/fixture.py");
        let output = tokio::process::Command::new(&self.python)
            .arg(&script)
            .arg(command)
            .arg("--database")
            .arg(&self.target)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .await
            .unwrap_or_else(|e| panic!("running {} {}: {e}", self.python, script.display()));
        assert!(
            output.status.success(),
            "fixture.py {command} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("fixture.py prints JSON")
    }
}

fn options(from: &str, dry_run: bool) -> ImportOptions {
    ImportOptions {
        from: from.to_string(),
        dry_run,
        full: false,
        progress: ProgressMode::Off,
    }
}

async fn import_into(config: &Config, from: &str) -> Report {
    import::run(config, &options(from, false)).await.expect("import runs")
}

fn id(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for key in path {
        at = &at[*key];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("no string at {path:?} in {v}"))
        .to_string()
}

fn uuid(v: &Value, path: &[&str]) -> Uuid {
    Uuid::parse_str(&id(v, path)).expect("uuid")
}

/// The reason the report gives for refusing `row` of `table`.
fn reason<'a>(report: &'a Report, table: &str, row: &str) -> &'a str {
    report
        .refused_in(table)
        .into_iter()
        .find(|r| r.row == row)
        .map(|r| r.reason.as_str())
        .unwrap_or_else(|| panic!("{table} {row} was not refused; refusals: {:#?}", report.refusals))
}

fn assert_refused(report: &Report, table: &str, row: &str, because: &str) {
    let why = reason(report, table, row);
    assert!(
        why.contains(because),
        "{table} {row} refused for {why:?}, expected {because:?}"
    );
}

/// A chat's messages as the app reads them: newest first, one page.
async fn history(srv: &TestServer, token: &str, chat: &str, page: u32) -> Value {
    let reply = srv
        .get_auth(&format!("/api/message/?refChat={chat}&page={page}"), token)
        .await;
    reply.expect_status(200);
    reply.body.clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect()
}

fn names_to_ids(messages: &Value, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| id(messages, &[n])).collect()
}

/// `unreadCount` of chat `chat` in the caller's `GET /api/chat/`.
async fn unread(srv: &TestServer, token: &str, chat: &str) -> i64 {
    let reply = srv.get_auth("/api/chat/", token).await;
    reply.expect_status(200);
    let list = reply.body["results"].as_array().expect("results");
    let found = list
        .iter()
        .find(|c| c["id"] == chat)
        .unwrap_or_else(|| panic!("chat {chat} not in {}", reply.text));
    found["unreadCount"].as_i64().expect("unreadCount")
}

async fn chat_ids(srv: &TestServer, token: &str) -> HashSet<String> {
    let reply = srv.get_auth("/api/chat/", token).await;
    reply.expect_status(200);
    reply.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

/// `(message id, seq)` of a chat in `seq` order, straight from storage.
async fn seqs(db: &Db, chat: Uuid) -> Vec<(String, i64)> {
    messages::since(db, chat.into(), 0, 1000)
        .await
        .expect("reading messages")
        .into_iter()
        .map(|m| (m.id.to_string(), m.seq))
        .collect()
}

async fn read_mark(db: &Db, chat: Uuid, user: Uuid) -> i64 {
    chats::member(db, chat.into(), user.into())
        .await
        .expect("reading a member")
        .expect("a member row")
        .last_read_seq
}

async fn login_status(srv: &TestServer, email: &str, password: &str) -> u16 {
    srv.post_json("/auth/jwt/create/", &json!({ "email": email, "password": password }))
        .await
        .status
        .as_u16()
}

async fn import_then_delta_as_clients_see_it(backend: Backend) {
    let Some(django) = DjangoDb::create(backend).await else {
        return;
    };
    let built = django.fixture("build").await;
    let secret = id(&built, &["secret_key"]);
    let srv = TestServer::start_with(backend, |c| c.secret_key = Some(secret.clone())).await;
    let config = srv.config.clone();
    let (users, msgs, chat) = (&built["users"], &built["messages"], &built["chats"]);
    let user = |name: &str| uuid(users, &[name, "id"]);
    let (ab, ac, bd) = (id(chat, &["ab1"]), id(chat, &["ac"]), id(chat, &["bd"]));

    // ---- the first import ---------------------------------------------------------------
    let report = import_into(&config, &django.from).await;
    assert!(report.full_read);
    assert_eq!(
        (report.users.read, report.users.new, report.users.refused),
        (8, 6, 2),
        "{report}"
    );
    assert_eq!(
        (
            report.chats.read,
            report.chats.new,
            report.chats.merged,
            report.chats.refused
        ),
        (6, 3, 1, 2),
        "{report}"
    );
    assert_eq!(
        (report.messages.read, report.messages.new, report.messages.refused),
        (39, 34, 5),
        "{report}"
    );
    assert_eq!(
        (report.devices.read, report.devices.new, report.devices.refused),
        (7, 4, 3),
        "{report}"
    );
    let devices_table = causerie::testing::import::has_table(srv.db(), "devices").await.unwrap();
    let expected_devices = if devices_table {
        DevicesOutcome::Written(4)
    } else {
        DevicesOutcome::NoTargetTable
    };
    assert_eq!(report.devices_outcome, expected_devices);
    let refused = &built["refused_messages"];
    assert_refused(
        &report,
        "chat_user",
        &id(&built, &["refused_users", "bad_email"]),
        "is not a valid email",
    );
    assert_refused(
        &report,
        "chat_user",
        &id(&built, &["refused_users", "alice_upper"]),
        &format!("already the email of user {}", user("alice")),
    );
    assert_refused(
        &report,
        "chat_chat",
        &id(chat, &["cc"]),
        "fromUser and toUser are the same user",
    );
    assert_refused(&report, "chat_chat", &id(chat, &["dx"]), "was refused");
    assert_refused(
        &report,
        "chat_message",
        &id(refused, &["outsider"]),
        "is not one of the two users",
    );
    assert_refused(&report, "chat_message", &id(refused, &["bad_type"]), "type 9 is not");
    assert_refused(
        &report,
        "chat_message",
        &id(refused, &["self_chat"]),
        &format!("refChat {} was refused", id(chat, &["cc"])),
    );
    assert_refused(&report, "chat_message", &id(refused, &["refused_chat"]), "was refused");
    assert_refused(
        &report,
        "chat_message",
        &id(refused, &["dangling"]),
        &format!("author {} is not in chat_user", id(&built, &["ghost_author"])),
    );
    let device = |name: &str| built["devices"][name].as_i64().expect("device id").to_string();
    assert_refused(&report, "fcm_django_fcmdevice", &device("orphan"), "has no user");
    assert_refused(
        &report,
        "fcm_django_fcmdevice",
        &device("bob-desktop"),
        "\"windows\" is not",
    );
    assert_refused(
        &report,
        "fcm_django_fcmdevice",
        &device("dave-old-phone"),
        &format!("held by the newer device {}", device("alice-tablet")),
    );

    // An old password logs in, and the Django hash is upgraded.
    let alice_password = id(users, &["alice", "password"]);
    assert!(id(users, &["alice", "hash"]).starts_with("pbkdf2_sha256$"));
    let (alice_token, _) = srv.login("alice@example.com", &alice_password).await;
    let row = srv.user_row(&user("alice").to_string()).await.expect("alice imported");
    assert!(
        row.password.starts_with("$argon2id$"),
        "hash upgraded at login: {}",
        row.password
    );
    assert_eq!((row.first_name.as_str(), row.is_active), ("Alice", true));
    assert_eq!(row.avatar.as_deref(), Some("avatars/alice.png"));
    let erin = srv.user_row(&user("erin").to_string()).await.expect("erin imported");
    assert!(!erin.is_active);
    let bob_row = srv.user_row(&user("bob").to_string()).await.expect("bob imported");
    assert!(bob_row.online);
    assert_eq!(
        bob_row.last_connexion_date.map(|d| d.to_rfc3339()),
        Some("2021-03-09T17:00:00.654321+00:00".to_string())
    );
    assert!(
        srv.user_row(&user("admin").to_string())
            .await
            .expect("admin")
            .is_superuser
    );

    // Tokens SimpleJWT 4.6 issued (no iat) work, signed with Django's SECRET_KEY.
    let old_access = id(&built, &["tokens", "alice", "access"]);
    assert!(common::jwt_claims(&old_access).get("iat").is_none());
    let me = srv.get_auth("/auth/users/me/", &old_access).await;
    me.expect_status(200);
    assert_eq!(me.body["email"], "alice@example.com");
    let dave_old = id(&built, &["tokens", "dave", "access"]);
    assert_eq!(chat_ids(&srv, &dave_old).await, HashSet::from([bd.clone()]));
    let refreshed = srv
        .post_json(
            "/auth/jwt/refresh/",
            &json!({ "refresh": id(&built, &["tokens", "alice", "refresh"]) }),
        )
        .await;
    refreshed.expect_status(200);
    srv.get_auth("/auth/users/me/", refreshed.body["access"].as_str().expect("access"))
        .await
        .expect_status(200);

    // The two chats of alice and bob are one, the older id kept, all messages in (createdAt, id) order.
    let bob = srv.state.access_token(user("bob").into());
    let dave = srv.state.access_token(user("dave").into());
    let carol = srv.state.access_token(user("carol").into());
    assert_eq!(
        chat_ids(&srv, &alice_token).await,
        HashSet::from([ab.clone(), ac.clone()])
    );
    let page = history(&srv, &alice_token, &ab, 1).await;
    assert_eq!(
        ids(&page),
        names_to_ids(msgs, &["m7", "m6", "m5", "m4", "m3", "m2", "m1"])
    );
    let read: Vec<bool> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["isRead"].as_bool().unwrap())
        .collect();
    assert_eq!(read, [false, false, false, true, true, true, true]);
    let results = page["results"].as_array().unwrap();
    assert_eq!(
        (&results[3]["type"], &results[3]["extraData"]),
        (&json!(1), &json!("48.8566,2.3522"))
    );
    assert_eq!(results[1]["extraData"], "data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(results[0]["extraData"], Value::Null);
    assert_eq!(results[6]["createdAt"], "2021-03-03T01:00:00.000000Z");
    assert_eq!(results[5]["createdAt"], "2021-03-03T02:00:00.000005Z");
    assert_eq!(
        results[5]["refChat"],
        ab.as_str(),
        "messages of the duplicate chat moved"
    );
    let ab_id = Uuid::parse_str(&ab).unwrap();
    assert_eq!(seqs(srv.db(), ab_id).await, expected_first_seven(msgs));
    assert_eq!(chats::by_id(srv.db(), ab_id.into()).await.unwrap().unwrap().last_seq, 7);
    // Read marks: everything from the other person read up to there.
    assert_eq!(read_mark(srv.db(), ab_id, user("alice")).await, 5);
    assert_eq!(read_mark(srv.db(), ab_id, user("bob")).await, 4);
    assert_eq!(unread(&srv, &alice_token, &ab).await, 2);
    assert_eq!(unread(&srv, &bob, &ab).await, 1);
    assert_eq!(unread(&srv, &alice_token, &ac).await, 0);
    assert_eq!(unread(&srv, &carol, &ac).await, 1);
    assert_eq!(unread(&srv, &bob, &bd).await, 2);
    assert_eq!(unread(&srv, &dave, &bd).await, 3);
    // Two messages at one instant: the id decides.
    let mut same_instant = names_to_ids(msgs, &["c1", "c2"]);
    same_instant.sort();
    same_instant.reverse();
    assert_eq!(ids(&history(&srv, &carol, &ac, 1).await), same_instant);
    // Paging as the app does it: 20 newest, then the rest.
    let order: Vec<String> = built["bd_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| id(msgs, &[v.as_str().unwrap()]))
        .collect();
    let newest_first: Vec<String> = order.iter().rev().cloned().collect();
    let first = history(&srv, &dave, &bd, 1).await;
    assert_eq!(first["count"], 25);
    assert!(first["next"].is_string());
    assert_eq!(ids(&first), newest_first[..20]);
    assert_eq!(ids(&history(&srv, &dave, &bd, 2).await), newest_first[20..]);
    // The app's "open a chat with bob" finds the imported chat (pair keys agree).
    let opened = srv
        .post_json_auth(
            "/api/createChat/",
            &alice_token,
            &json!({ "refUser": user("alice"), "chatWithUser": user("bob") }),
        )
        .await;
    opened.expect_status(201);
    assert_eq!(opened.body["id"], ab.as_str());

    // ---- Django keeps running; then the delta -------------------------------------------
    let changed = django.fixture("change").await;
    let new_msgs = &changed["messages"];
    let report = import_into(&config, &django.from).await;
    assert!(!report.full_read);
    assert_eq!(
        (
            report.users.read,
            report.users.new,
            report.users.updated,
            report.users.unchanged,
            report.users.refused
        ),
        (4, 1, 2, 1, 0),
        "only the changed users and the watermark's overlap are read: {report}"
    );
    assert_eq!(
        (
            report.chats.new,
            report.chats.merged,
            report.chats.updated,
            report.chats.unchanged,
            report.chats.refused
        ),
        (1, 2, 0, 3, 2),
        "{report}"
    );
    assert_eq!(
        (
            report.messages.read,
            report.messages.new,
            report.messages.updated,
            report.messages.refused
        ),
        (7, 4, 2, 1),
        "{report}"
    );
    assert_eq!(
        report.marked_read, 1,
        "the queryset-updated read flag is found: {report}"
    );

    // Alice's upgraded hash stays (her Django hash did not change); Carol's new password wins.
    srv.login("alice@example.com", &alice_password).await;
    let row = srv.user_row(&user("alice").to_string()).await.unwrap();
    assert!(row.password.starts_with("$argon2id$"), "{}", row.password);
    assert_eq!(row.first_name, "Alicia");
    let carol_new = id(&changed, &["carol_new_password"]);
    assert_eq!(login_status(&srv, "carol@example.com", &carol_new).await, 200);
    assert_eq!(
        login_status(&srv, "carol@example.com", &id(users, &["carol", "password"])).await,
        401
    );
    let (frank_token, _) = srv
        .login("frank@example.com", &id(&changed, &["users", "frank", "password"]))
        .await;

    // New messages come after the ones imported before, the late one (older createdAt) too.
    let page = history(&srv, &alice_token, &ab, 1).await;
    let mut expected = vec![id(new_msgs, &["m8"]), id(new_msgs, &["m9"])];
    expected.extend(names_to_ids(msgs, &["m7", "m6", "m5", "m4", "m3", "m2", "m1"]));
    assert_eq!(ids(&page), expected);
    let results = page["results"].as_array().unwrap();
    assert_eq!(results[1]["createdAt"], "2021-03-03T00:00:00.000000Z");
    assert_eq!(results[6]["message"], "How are you doing?");
    assert_eq!(
        (&results[2]["isRead"], &results[3]["isRead"]),
        (&json!(true), &json!(true))
    );
    let numbered = seqs(srv.db(), ab_id).await;
    assert_eq!(numbered[7], (id(new_msgs, &["m9"]), 8));
    assert_eq!(numbered[8], (id(new_msgs, &["m8"]), 9));
    assert_eq!(numbered[..7], expected_first_seven(msgs));
    assert_eq!(read_mark(srv.db(), ab_id, user("alice")).await, 7);
    assert_eq!(read_mark(srv.db(), ab_id, user("bob")).await, 4);
    assert_eq!(unread(&srv, &alice_token, &ab).await, 1);
    assert_eq!(unread(&srv, &bob, &ab).await, 2);
    // The newer duplicate of alice and carol merged into their chat; frank's chat is new.
    let fa = id(&changed, &["chats", "fa"]);
    assert_eq!(
        chat_ids(&srv, &alice_token).await,
        HashSet::from([ab.clone(), ac.clone(), fa.clone()])
    );
    let ac_page = history(&srv, &alice_token, &ac, 1).await;
    assert_eq!(ids(&ac_page)[0], id(new_msgs, &["c4"]));
    assert_eq!(seqs(srv.db(), Uuid::parse_str(&ac).unwrap()).await.len(), 3);
    assert_eq!(unread(&srv, &alice_token, &ac).await, 1);
    assert_eq!(unread(&srv, &alice_token, &fa).await, 1);
    assert_eq!(ids(&history(&srv, &frank_token, &fa, 1).await), [id(new_msgs, &["f1"])]);

    // Nothing changed since: a third run writes nothing new.
    let report = import_into(&config, &django.from).await;
    assert_eq!((report.users.new, report.users.updated), (0, 0), "{report}");
    assert_eq!(
        (report.messages.new, report.messages.updated, report.marked_read),
        (0, 0, 0),
        "{report}"
    );
    assert_eq!((report.chats.new, report.chats.updated), (0, 0), "{report}");
    srv.finish().await;
}

fn expected_first_seven(msgs: &Value) -> Vec<(String, i64)> {
    names_to_ids(msgs, &["m1", "m2", "m3", "m4", "m5", "m6", "m7"])
        .into_iter()
        .zip(1..)
        .collect()
}

/// Runs the `causerie` binary with `CAUSERIE_DATABASE_URL`; returns its stdout.
async fn causerie_cli(database_url: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_causerie"))
        .args(args)
        .env("CAUSERIE_DATABASE_URL", database_url)
        .env_remove("CAUSERIE_CONFIG")
        .current_dir(dir.path())
        .output()
        .await
        .expect("running causerie");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "causerie {args:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn counts(db: &Db) -> (i64, i64, i64) {
    let users = causerie::testing::store::users::count(db).await.unwrap();
    let chats = chats::all(db, i64::MAX).await.unwrap().len() as i64;
    let messages = messages::count(db).await.unwrap();
    (users, chats, messages)
}

async fn dry_run_writes_nothing_and_lists_every_refusal(backend: Backend) {
    let Some(django) = DjangoDb::create(backend).await else {
        return;
    };
    let built = django.fixture("build").await;
    let srv = TestServer::start(backend).await;
    let url = srv.database_url.clone();

    let out = causerie_cli(&url, &["import-django", "--from", &django.from, "--dry-run"]).await;
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert_eq!(row_of(&out, "users"), "8 6 0 0 0 2", "{out}");
    assert_eq!(row_of(&out, "chats"), "6 3 0 0 1 2", "{out}");
    assert_eq!(row_of(&out, "messages"), "39 34 0 0 0 5", "{out}");
    assert_eq!(row_of(&out, "devices"), "7 4 0 0 0 3", "{out}");
    assert!(out.contains("Refused rows (12):"), "{out}");
    for (table, key) in [
        ("chat_user", id(&built, &["refused_users", "bad_email"])),
        ("chat_user", id(&built, &["refused_users", "alice_upper"])),
        ("chat_chat", id(&built, &["chats", "cc"])),
        ("chat_chat", id(&built, &["chats", "dx"])),
        ("chat_message", id(&built, &["refused_messages", "outsider"])),
        ("chat_message", id(&built, &["refused_messages", "bad_type"])),
        ("chat_message", id(&built, &["refused_messages", "self_chat"])),
        ("chat_message", id(&built, &["refused_messages", "refused_chat"])),
        ("chat_message", id(&built, &["refused_messages", "dangling"])),
        ("fcm_django_fcmdevice", built["devices"]["orphan"].to_string()),
        ("fcm_django_fcmdevice", built["devices"]["bob-desktop"].to_string()),
        ("fcm_django_fcmdevice", built["devices"]["dave-old-phone"].to_string()),
    ] {
        assert!(
            out.contains(&format!("  {table} {key}: ")),
            "{table} {key} not listed:\n{out}"
        );
    }
    assert_eq!(counts(srv.db()).await, (0, 0, 0), "a dry run writes nothing");
    assert!(causerie::testing::import::watermarks(srv.db())
        .await
        .unwrap()
        .is_empty());

    if backend == Backend::Sqlite {
        // A dry run against a Causerie database that does not exist yet does not create it.
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        let out = causerie_cli(
            &format!("sqlite://{}", fresh.display()),
            &["import-django", "--from", &django.from, "--dry-run"],
        )
        .await;
        assert!(out.contains("Refused rows (12):"), "{out}");
        assert!(!fresh.exists(), "the dry run created {}", fresh.display());
    }

    // The real thing, then Django changes, then a dry delta: counted, not written.
    let out = causerie_cli(&url, &["import-django", "--from", &django.from]).await;
    assert!(!out.contains("dry run"), "{out}");
    let before = counts(srv.db()).await;
    assert_eq!(before, (6, 3, 34));
    django.fixture("change").await;
    let out = causerie_cli(&url, &["import-django", "--from", &django.from, "--dry-run"]).await;
    assert!(out.contains("rows changed since the last import"), "{out}");
    assert_eq!(row_of(&out, "messages"), "7 4 2 0 0 1", "{out}");
    assert!(out.contains(": 1 would be marked read"), "{out}");
    assert_eq!(counts(srv.db()).await, before, "a dry delta writes nothing");
    let alice = srv
        .state
        .access_token(Uuid::parse_str(&id(&built, &["users", "alice", "id"])).unwrap().into());
    let reply = srv
        .request(
            Method::GET,
            &format!("/api/message/?refChat={}", id(&built, &["chats", "ab1"])),
            Some(&alice),
            None,
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], 7);
    srv.finish().await;
}

fn row_of(out: &str, name: &str) -> String {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sources the import cannot read fail at once with a message naming the problem, and write
/// nothing (no Django needed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_source_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", dir.path().join("causerie.db").display());
    let missing = dir.path().join("nowhere.sqlite3");
    let not_django = dir.path().join("other.sqlite3");
    std::fs::File::create(&not_django).unwrap();
    for (from, expected) in [
        (
            "mysql://root@localhost/chattuto".to_string(),
            "--from must be sqlite://PATH or postgres://",
        ),
        (format!("sqlite://{}", missing.display()), "does not exist"),
        (format!("sqlite://{}", not_django.display()), "has no table chat_user"),
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_causerie"))
            .args(["import-django", "--from", &from])
            .env("CAUSERIE_DATABASE_URL", &target)
            .current_dir(dir.path())
            .output()
            .await
            .expect("running causerie");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{from}: {stderr}");
        assert!(stderr.contains(expected), "{from}: expected {expected:?} in {stderr}");
        assert!(!missing.exists(), "the import created its missing source");
    }
    assert!(
        !dir.path().join("causerie.db").exists(),
        "Causerie's database was touched"
    );
}
