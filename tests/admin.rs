//! The admin site at /admin/: staff only, its own session cookie, CSRF on every form, the
//! superuser-only rules, deactivation closing sockets (also across instances over Redis), staff
//! deletes reaching sockets, and the audit log; push devices, the push log and the test push
//! (against the fake FCM and Web Push services of `common/push.rs`), attachments. Real server,
//! HTTP with a cookie jar.

#[macro_use]
mod common;
#[path = "common/push.rs"]
mod fakes;

use causerie::wire::v2::{self, FrameType, ServerFrame};
use common::ws;
use common::{Backend, Reply, TestServer, TestUser, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;

const V2: Option<&str> = Some("causerie.v2");

/// A browser's view of the admin site: a cookie jar, no automatic redirects.
struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(srv: &TestServer) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            base: srv.base_url(),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        Reply::read(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        Reply::read(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .expect("POST"),
        )
        .await
    }

    /// The bytes of `path` (a file), with the reply's status and headers.
    async fn get_bytes(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let reply = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("GET");
        let (status, headers) = (reply.status(), reply.headers().clone());
        (status, headers, reply.bytes().await.expect("body").to_vec())
    }

    /// The CSRF token of the form(s) on the page at `path`.
    async fn token(&self, path: &str) -> String {
        let page = self.get(path).await;
        page.expect_status(200);
        csrf_of(&page.text)
    }

    /// Signs in through the login form; the reply to the form's POST.
    async fn sign_in(&self, email: &str, password: &str) -> Reply {
        let token = self.token("/admin/login/").await;
        self.post(
            "/admin/login/",
            &[
                ("csrf", &token),
                ("email", email),
                ("password", password),
                ("next", "/admin/"),
            ],
        )
        .await
    }

    /// Signs in and checks it worked.
    async fn signed_in(srv: &TestServer, email: &str, password: &str) -> Browser {
        let browser = Browser::new(srv);
        let reply = browser.sign_in(email, password).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "signing in: {}", reply.text);
        assert_eq!(reply.header("location"), Some("/admin/"));
        browser
    }

    /// Submits the form of the page at `page` to that same page (the user edit form).
    async fn submit_own(&self, page: &str, fields: &[(&str, &str)]) -> Reply {
        self.submit(page, page, fields).await
    }

    /// Submits the two-person chat form.
    async fn open_pair(&self, first: &str, second: &str) -> Reply {
        self.submit(
            "/admin/chats/new/",
            "/admin/chats/new/pair/",
            &[("first", first), ("second", second)],
        )
        .await
    }

    /// POSTs a form of the page at `page` with that page's token.
    async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Reply {
        let token = self.token(page).await;
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("a CSRF field on the page") + marker.len();
    let len = html[start..].find('"').expect("end of the CSRF value");
    html[start..start + len].to_string()
}

/// A staff member (superuser when asked) written straight to the database.
async fn staff(srv: &TestServer, email: &str, superuser: bool) -> TestUser {
    let user = srv.quick_user(email, PASSWORD).await;
    causerie::testing::store::users::set_staff(srv.db(), user.user_id(), true, superuser)
        .await
        .expect("making staff");
    user
}

/// Alice and Bob, and the id of their two-person chat.
async fn alice_and_bob(srv: &TestServer) -> (TestUser, TestUser, String) {
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let chat = srv.open_chat(&alice, &bob).await;
    let id = chat["id"].as_str().expect("chat id").to_string();
    (alice, bob, id)
}

/// Posts a message through the API; its id.
async fn post_message(srv: &TestServer, author: &TestUser, chat: &str, text: &str) -> String {
    let posted = srv
        .post_json_auth(
            "/api/message/",
            &author.access,
            &json!({ "refChat": chat, "message": text, "type": 0 }),
        )
        .await;
    posted.expect_status(201);
    posted.body["id"].as_str().expect("message id").to_string()
}

fn set_cookies(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

backend_tests!(
    staff_only_with_its_own_session,
    every_form_needs_the_sessions_csrf_token,
    superuser_only_fields,
    deactivation_closes_sockets_and_refuses_tokens,
    losing_staff_or_being_deactivated_ends_admin_sessions,
    staff_delete_reaches_the_chats_sockets,
    chats_are_created_and_listed,
    users_are_created_searched_and_deleted,
    audit_log_records_each_action,
    device_and_attachment_pages_are_staff_only_and_need_csrf,
    devices_are_found_deactivated_and_test_pushed,
    attachment_delete_removes_the_download,
);

async fn staff_only_with_its_own_session(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let member = srv.quick_user("member@example.com", PASSWORD).await;

    // Signed out: every page sends the browser to the login form, coming back afterwards.
    let anonymous = Browser::new(&srv);
    let reply = anonymous.get("/admin/users/?q=x").await;
    reply.expect_status(303);
    assert_eq!(
        reply.header("location"),
        Some("/admin/login/?next=%2Fadmin%2Fusers%2F%3Fq%3Dx")
    );
    anonymous.get("/admin/").await.expect_status(303);

    // The login page sets its own short-lived double-submit cookie.
    let login = anonymous.get("/admin/login/").await;
    login.expect_status(200);
    let cookies = set_cookies(&login);
    assert!(
        cookies.iter().any(|c| c.starts_with("causerie_admin_login=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Strict")
            && c.contains("Path=/admin/login/")),
        "{cookies:?}"
    );
    assert!(login
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));

    // A member with the right password is refused with a page of its own, and no session.
    let refused = anonymous.sign_in(&member.email, PASSWORD).await;
    refused.expect_status(403);
    assert!(refused.text.contains("not a staff account"), "{}", refused.text);
    assert!(!set_cookies(&refused).iter().any(|c| c.starts_with("causerie_admin=")));
    anonymous.get("/admin/").await.expect_status(303);

    // Wrong password: the form again, with the error.
    let wrong = anonymous.sign_in(&admin.email, "not-the-password").await;
    wrong.expect_status(401);
    assert!(wrong.text.contains("correct email address and password"));
    anonymous.get("/admin/").await.expect_status(303);

    // Staff: a session cookie, HttpOnly and SameSite=Strict, not Secure over plain HTTP.
    let browser = Browser::new(&srv);
    let signed = browser.sign_in(&admin.email, PASSWORD).await;
    signed.expect_status(303);
    let cookies = set_cookies(&signed);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("causerie_admin="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/admin/"));
    assert!(!session.contains("Secure"), "{session}");
    let value = session
        .trim_start_matches("causerie_admin=")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(value.len() >= 43, "an opaque random value: {value}");
    let dashboard = browser.get("/admin/").await;
    dashboard.expect_status(200);
    assert!(dashboard.text.contains("Open sockets"));
    assert!(dashboard.text.contains("admin@example.com"));
    assert_eq!(dashboard.header("cache-control"), Some("no-store"));
    assert!(dashboard
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // The API's tokens are no way in, nor is the API's login for the admin site.
    let reply = srv.get_auth("/admin/", &admin.access).await;
    reply.expect_status(303);

    // Logging out deletes the session server-side: the old cookie value no longer works.
    let out = browser.submit("/admin/", "/admin/logout/", &[]).await;
    out.expect_status(303);
    assert_eq!(out.header("location"), Some("/admin/login/?notice=signed_out"));
    browser.get("/admin/").await.expect_status(303);
    let replayed = srv
        .client
        .get(srv.url("/admin/"))
        .header("cookie", format!("causerie_admin={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);

    // An inactive staff member cannot sign in.
    causerie::testing::store::users::set_active(srv.db(), admin.user_id(), false)
        .await
        .unwrap();
    Browser::new(&srv)
        .sign_in(&admin.email, PASSWORD)
        .await
        .expect_status(401);
    srv.finish().await;
}

async fn every_form_needs_the_sessions_csrf_token(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", true).await;
    let target = srv.quick_user("target@example.com", PASSWORD).await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let deactivate = format!("/admin/users/{}/deactivate/", target.id);

    // No token, a wrong token, another session's token: 403, nothing changed.
    let other = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let others_token = other.token("/admin/").await;
    for fields in [vec![], vec![("csrf", "0".repeat(64))], vec![("csrf", others_token)]] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = browser.post(&deactivate, &fields).await;
        reply.expect_status(403);
        assert!(reply.text.contains("CSRF"), "{}", reply.text);
        assert!(srv.user_row(&target.id).await.unwrap().is_active, "nothing changed");
    }
    let edit = format!("/admin/users/{}/", target.id);
    let reply = browser
        .post(&edit, &[("first_name", "Mallory"), ("set_active", "1")])
        .await;
    reply.expect_status(403);
    let row = srv.user_row(&target.id).await.unwrap();
    assert_eq!(row.first_name, "");
    assert!(row.is_active);
    let reply = browser
        .post(
            "/admin/users/new/",
            &[("email", "new@example.com"), ("password", PASSWORD)],
        )
        .await;
    reply.expect_status(403);
    assert!(srv.user_row_by_email("new@example.com").await.is_none());
    // Logout too: the session survives a forged logout.
    browser.post("/admin/logout/", &[]).await.expect_status(403);
    browser.get("/admin/").await.expect_status(200);
    // The login form checks its double-submit token.
    let anonymous = Browser::new(&srv);
    anonymous.get("/admin/login/").await.expect_status(200);
    let forged = anonymous
        .post(
            "/admin/login/",
            &[("csrf", "forged"), ("email", &admin.email), ("password", PASSWORD)],
        )
        .await;
    forged.expect_status(403);
    anonymous.get("/admin/").await.expect_status(303);

    // With the page's own token the same form works.
    let reply = browser.submit(&edit, &deactivate, &[]).await;
    reply.expect_status(303);
    assert!(!srv.user_row(&target.id).await.unwrap().is_active);
    srv.finish().await;
}

async fn superuser_only_fields(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let root = staff(&srv, "root@example.com", true).await;
    let helper = staff(&srv, "helper@example.com", false).await;
    let member = srv.quick_user("member@example.com", PASSWORD).await;
    let helper_browser = Browser::signed_in(&srv, &helper.email, PASSWORD).await;
    let member_page = format!("/admin/users/{}/", member.id);

    // Staff may edit names and flags, but not grant superuser.
    let reply = helper_browser
        .submit_own(
            &member_page,
            &[
                ("first_name", "Max"),
                ("last_name", "Mustermann"),
                ("set_active", "1"),
                ("is_active", "1"),
                ("set_staff", "1"),
                ("set_superuser", "1"),
                ("is_superuser", "1"),
            ],
        )
        .await;
    reply.expect_status(403);
    let row = srv.user_row(&member.id).await.unwrap();
    assert!(
        !row.is_superuser && !row.is_staff && row.first_name.is_empty(),
        "nothing changed"
    );
    assert!(!helper_browser
        .get(&member_page)
        .await
        .text
        .contains("name=\"is_superuser\""));
    let reply = helper_browser
        .submit_own(
            &member_page,
            &[
                ("first_name", "Max"),
                ("set_active", "1"),
                ("is_active", "1"),
                ("set_staff", "1"),
            ],
        )
        .await;
    reply.expect_status(303);
    let row = srv.user_row(&member.id).await.unwrap();
    assert_eq!(row.first_name, "Max");
    assert!(!row.is_staff, "an unticked box is off");
    // A superuser's account is out of staff's reach: names, password, deactivation, delete.
    let root_page = format!("/admin/users/{}/", root.id);
    let reply = helper_browser
        .submit(&member_page, &root_page, &[("first_name", "Owned")])
        .await;
    reply.expect_status(403);
    let reply = helper_browser
        .submit(
            &member_page,
            &format!("/admin/users/{}/password/", root.id),
            &[
                ("new_password", "Taken-Over-Account-1"),
                ("confirm_password", "Taken-Over-Account-1"),
            ],
        )
        .await;
    reply.expect_status(403);
    for action in ["deactivate", "delete"] {
        helper_browser
            .submit(&member_page, &format!("/admin/users/{}/{action}/", root.id), &[])
            .await
            .expect_status(403);
    }
    let row = srv.user_row(&root.id).await.unwrap();
    assert!(row.is_active && row.first_name.is_empty());
    Browser::signed_in(&srv, &root.email, PASSWORD).await;
    // Nor may staff create a superuser.
    let reply = helper_browser
        .submit(
            "/admin/users/new/",
            "/admin/users/new/",
            &[
                ("email", "boss@example.com"),
                ("password", "Another-Fine-Passphrase-9"),
                ("confirm_password", "Another-Fine-Passphrase-9"),
                ("is_superuser", "1"),
            ],
        )
        .await;
    reply.expect_status(403);
    assert!(srv.user_row_by_email("boss@example.com").await.is_none());
    // Nobody takes away their own access.
    let own = format!("/admin/users/{}/", helper.id);
    helper_browser
        .submit_own(
            &own,
            &[("first_name", "Helper"), ("set_staff", "1"), ("set_active", "1")],
        )
        .await
        .expect_status(403);
    assert!(srv.user_row(&helper.id).await.unwrap().is_staff);

    // A superuser may grant it.
    let root_browser = Browser::signed_in(&srv, &root.email, PASSWORD).await;
    let page = root_browser.get(&member_page).await;
    assert!(page.text.contains("name=\"is_superuser\""));
    root_browser
        .submit_own(
            &member_page,
            &[
                ("first_name", "Max"),
                ("set_active", "1"),
                ("is_active", "1"),
                ("set_staff", "1"),
                ("set_superuser", "1"),
                ("is_superuser", "1"),
            ],
        )
        .await
        .expect_status(303);
    let row = srv.user_row(&member.id).await.unwrap();
    assert!(row.is_superuser && row.is_staff, "a superuser is staff");
    srv.finish().await;
}

async fn deactivation_closes_sockets_and_refuses_tokens(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", true).await;
    let (alice, bob, chat_id) = alice_and_bob(&srv).await;
    let mut v2 = ws::connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;
    let mut v1 = ws::connect(
        &srv.ws_url(&format!("/ws/chat/{chat_id}/?token={}", alice.access)),
        None,
    )
    .await;
    let mut bobs = ws::connect(&srv.ws_url(&format!("/ws/?token={}", bob.access)), V2).await;
    srv.get_auth("/api/chat/", &alice.access).await.expect_status(200);

    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let page = format!("/admin/users/{}/", alice.id);
    let reply = browser
        .submit(&page, &format!("/admin/users/{}/deactivate/", alice.id), &[])
        .await;
    reply.expect_status(303);
    assert_eq!(
        reply.header("location"),
        Some(format!("/admin/users/{}/?notice=user_deactivated", alice.id).as_str())
    );
    // Both of Alice's sockets close with 4401 at once; Bob's stays.
    assert_eq!(v2.expect_close().await, Some(4401));
    assert_eq!(v1.expect_close().await, Some(4401));
    bobs.send_frame(&v2::Command::Ping).await;
    // Bob's socket is still open: it answers (after Alice's presence change, say).
    bobs.recv_until(|f| f.kind() == FrameType::Pong).await;
    // Her tokens no longer work, on REST and WebSocket.
    srv.get_auth("/api/chat/", &alice.access).await.expect_status(401);
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": alice.refresh }))
        .await
        .expect_status(401);
    let refused = ws::try_connect(&srv.ws_url(&format!("/ws/?token={}", alice.access)), V2)
        .await
        .err()
        .expect("handshake refused");
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("inactive_user"));

    // Reactivated, the account works again, but only with a new login: the deactivation
    // revoked every token issued before it.
    browser
        .submit(&page, &format!("/admin/users/{}/activate/", alice.id), &[])
        .await
        .expect_status(303);
    srv.get_auth("/api/chat/", &alice.access).await.expect_status(401);
    let (access, _) = srv.login(&alice.email, PASSWORD).await;
    srv.get_auth("/api/chat/", &access).await.expect_status(200);

    // Deleting closes sockets the same way.
    let mut again = ws::connect(&srv.ws_url(&format!("/ws/?token={access}")), V2).await;
    browser
        .submit(&page, &format!("/admin/users/{}/delete/", alice.id), &[])
        .await
        .expect_status(303);
    assert_eq!(again.expect_close().await, Some(4401));
    assert!(srv.user_row(&alice.id).await.is_none());
    bobs.close().await;
    srv.finish().await;
}

async fn losing_staff_or_being_deactivated_ends_admin_sessions(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let root = staff(&srv, "root@example.com", true).await;
    let helper = staff(&srv, "helper@example.com", false).await;
    let other = staff(&srv, "other@example.com", false).await;
    let helper_browser = Browser::signed_in(&srv, &helper.email, PASSWORD).await;
    let other_browser = Browser::signed_in(&srv, &other.email, PASSWORD).await;
    helper_browser.get("/admin/").await.expect_status(200);
    let root_browser = Browser::signed_in(&srv, &root.email, PASSWORD).await;

    let page = format!("/admin/users/{}/", helper.id);
    root_browser
        .submit_own(&page, &[("set_active", "1"), ("is_active", "1"), ("set_staff", "1")])
        .await
        .expect_status(303);
    helper_browser.get("/admin/").await.expect_status(303);
    // Made staff again, they must sign in anew.
    root_browser
        .submit_own(
            &page,
            &[
                ("set_active", "1"),
                ("is_active", "1"),
                ("set_staff", "1"),
                ("is_staff", "1"),
            ],
        )
        .await
        .expect_status(303);
    helper_browser.get("/admin/").await.expect_status(303);

    // Deactivated behind the admin's back (the CLI): the session ends at the next request.
    causerie::testing::store::users::set_active(srv.db(), other.user_id(), false)
        .await
        .unwrap();
    other_browser.get("/admin/").await.expect_status(303);
    root_browser.get("/admin/").await.expect_status(200);
    srv.finish().await;
}

async fn staff_delete_reaches_the_chats_sockets(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let (alice, bob, chat_id) = alice_and_bob(&srv).await;
    let message_id = post_message(&srv, &alice, &chat_id, "a needle in the haystack").await;
    let mut bobs = ws::connect(&srv.ws_url(&format!("/ws/chat/{chat_id}/?token={}", bob.access)), V2).await;
    bobs.recv_until(|f| f.kind() == FrameType::Subscribed).await;

    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let search = browser.get("/admin/messages/?q=NEEDLE").await;
    search.expect_status(200);
    assert!(search.text.contains("a needle in the haystack"));
    assert!(search.text.contains(&message_id));
    let nothing = browser.get("/admin/messages/?q=needle&author=bob%40example.com").await;
    assert!(!nothing.text.contains(&message_id), "filtered by author");
    let by_alice = browser
        .get(&format!("/admin/messages/?author=alice%40example.com&chat={chat_id}"))
        .await;
    assert!(by_alice.text.contains(&message_id));
    let today = chrono::Utc::now().date_naive();
    let dated = browser
        .get(&format!("/admin/messages/?q=needle&from={today}&to={today}"))
        .await;
    assert!(dated.text.contains(&message_id), "today's messages");
    let earlier = today.pred_opt().unwrap();
    let before = browser.get(&format!("/admin/messages/?q=needle&to={earlier}")).await;
    assert!(!before.text.contains(&message_id), "nothing before today");
    browser.get("/admin/messages/?from=yesterday").await.expect_status(400);

    let reply = browser
        .submit(
            "/admin/messages/?q=needle",
            &format!("/admin/messages/{message_id}/delete/"),
            &[("next", "/admin/messages/?q=needle")],
        )
        .await;
    reply.expect_status(303);
    assert_eq!(
        reply.header("location"),
        Some("/admin/messages/?q=needle&notice=message_deleted")
    );
    let ServerFrame::MessageDeleted(removed) = bobs.recv_until(|f| f.kind() == FrameType::MessageDeleted).await else {
        unreachable!("recv_until returned the kind asked for")
    };
    assert_eq!(removed.id.to_string(), message_id);
    assert_eq!(removed.chat.to_string(), chat_id);
    srv.get_auth(&format!("/api/message/{message_id}/"), &alice.access)
        .await
        .expect_status(404);
    // An open redirect is not on offer.
    let second_id = post_message(&srv, &alice, &chat_id, "second").await;
    let reply = browser
        .submit(
            "/admin/messages/",
            &format!("/admin/messages/{second_id}/delete/"),
            &[("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(reply.header("location"), Some("/admin/?notice=message_deleted"));
    // Deleting it again: not found.
    browser
        .submit("/admin/messages/", &format!("/admin/messages/{second_id}/delete/"), &[])
        .await
        .expect_status(404);
    bobs.close().await;
    srv.finish().await;
}

async fn chats_are_created_and_listed(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let alice = srv
        .quick_user_named("alice@example.com", PASSWORD, "Alice", "Arden")
        .await;
    let bob = srv.quick_user_named("bob@example.com", PASSWORD, "Bob", "Brook").await;
    let carol = srv
        .quick_user_named("carol@example.com", PASSWORD, "Carol", "Cole")
        .await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;

    // The seed's first step: a chat between two users, its id shown to copy.
    let reply = browser.open_pair(&alice.email, &bob.id).await;
    reply.expect_status(303);
    let location = reply.header("location").unwrap().to_string();
    let chat_id = location
        .strip_prefix("/admin/chats/")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    assert!(location.ends_with("?notice=chat_created"));
    let page = browser.get(&location).await;
    page.expect_status(200);
    assert!(page.text.contains(&format!("value=\"{chat_id}\" id=\"chat-id\"")));
    // It is the pair's chat, as the app sees it.
    let listed = srv.get_auth(&format!("/api/chat/{chat_id}/"), &bob.access).await;
    listed.expect_status(200);
    // Again: the same chat.
    let again = browser.open_pair(&bob.email, &alice.email).await;
    assert_eq!(
        again.header("location"),
        Some(format!("/admin/chats/{chat_id}/?notice=chat_existing").as_str())
    );
    // Refusals re-show the form with the reason.
    let same = browser.open_pair(&bob.email, &bob.email).await;
    same.expect_status(400);
    assert!(same.text.contains("two different users"));
    let unknown = browser.open_pair(&bob.email, "nobody@example.com").await;
    unknown.expect_status(400);
    assert!(unknown.text.contains("No user with the email or id"));
    causerie::testing::store::users::set_active(srv.db(), carol.user_id(), false)
        .await
        .unwrap();
    for (first, second) in [(&carol.email, &bob.email), (&bob.email, &carol.email)] {
        let inactive = browser.open_pair(first, second).await;
        inactive.expect_status(400);
        assert!(inactive.text.contains("object does not exist"), "{}", inactive.text);
    }
    causerie::testing::store::users::set_active(srv.db(), carol.user_id(), true)
        .await
        .unwrap();

    // A group with an owner and members.
    let reply = browser
        .submit(
            "/admin/chats/new/",
            "/admin/chats/new/group/",
            &[
                ("title", "Book <club>"),
                ("owner", &carol.email),
                ("members", &format!("{}\n{}", alice.email, bob.id)),
            ],
        )
        .await;
    reply.expect_status(303);
    let group_page = browser.get(reply.header("location").unwrap()).await;
    assert!(group_page.text.contains("Book &#60;club&#62;") || group_page.text.contains("Book &lt;club&gt;"));
    assert!(!group_page.text.contains("Book <club>"), "escaped");

    post_message(&srv, &alice, &chat_id, "hello").await;
    // The list: members, counts; search by a member's name or email.
    let list = browser.get("/admin/chats/?q=brook").await;
    list.expect_status(200);
    assert!(list.text.contains(&chat_id));
    assert_eq!(
        list.text.matches("data-testid=\"chat-row\"").count(),
        2,
        "both of Bob's chats"
    );
    let carols = browser.get("/admin/chats/?q=carol%40example.com").await;
    assert_eq!(carols.text.matches("data-testid=\"chat-row\"").count(), 1);
    assert!(!carols.text.contains(&chat_id));
    let nobody = browser.get("/admin/chats/?q=zebra").await;
    assert_eq!(nobody.text.matches("data-testid=\"chat-row\"").count(), 0);
    // The chat's page lists members and messages.
    let detail = browser.get(&format!("/admin/chats/{chat_id}/")).await;
    assert!(detail.text.contains("alice@example.com") && detail.text.contains("bob@example.com"));
    assert!(detail.text.contains("hello"));
    browser.get("/admin/chats/not-a-uuid/").await.expect_status(404);
    browser
        .get(&format!("/admin/chats/{}/", uuid::Uuid::new_v4()))
        .await
        .expect_status(404);
    srv.finish().await;
}

async fn users_are_created_searched_and_deleted(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    srv.quick_user_named("zoe@example.com", PASSWORD, "Zoé", "<b>Zed</b>")
        .await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;

    // Django's password validators apply, with their messages.
    let weak = browser
        .submit(
            "/admin/users/new/",
            "/admin/users/new/",
            &[
                ("email", "new@example.com"),
                ("password", "12345678"),
                ("confirm_password", "12345678"),
            ],
        )
        .await;
    weak.expect_status(400);
    assert!(weak.text.contains("This password is entirely numeric."));
    assert!(srv.user_row_by_email("new@example.com").await.is_none());
    let created = browser
        .submit(
            "/admin/users/new/",
            "/admin/users/new/",
            &[
                ("email", "New@Example.com"),
                ("first_name", "Nina"),
                ("password", "Another-Fine-Passphrase-9"),
                ("confirm_password", "Another-Fine-Passphrase-9"),
            ],
        )
        .await;
    created.expect_status(303);
    let row = srv.user_row_by_email("new@example.com").await.expect("created");
    assert!(!row.is_staff && row.is_active);
    srv.login("new@example.com", "Another-Fine-Passphrase-9").await;
    let duplicate = browser
        .submit(
            "/admin/users/new/",
            "/admin/users/new/",
            &[
                ("email", "new@example.com"),
                ("password", "Another-Fine-Passphrase-9"),
                ("confirm_password", "Another-Fine-Passphrase-9"),
            ],
        )
        .await;
    duplicate.expect_status(400);
    assert!(duplicate.text.contains("user with this email address already exists."));

    // Search by email or names, escaped output, filters.
    let found = browser.get("/admin/users/?q=zed").await;
    assert!(found.text.contains("zoe@example.com"));
    assert!(found.text.contains("&#60;b&#62;Zed") || found.text.contains("&lt;b&gt;Zed"));
    assert!(!found.text.contains("<b>Zed"));
    assert_eq!(found.text.matches("data-testid=\"user-row\"").count(), 1);
    let by_email = browser.get("/admin/users/?q=NEW%40example").await;
    assert_eq!(by_email.text.matches("data-testid=\"user-row\"").count(), 1);
    let staff_only = browser.get("/admin/users/?staff=yes").await;
    assert_eq!(staff_only.text.matches("data-testid=\"user-row\"").count(), 1);
    assert!(staff_only.text.contains("admin@example.com"));
    let online = browser.get("/admin/users/?online=yes").await;
    assert_eq!(online.text.matches("data-testid=\"user-row\"").count(), 0);
    let inactive = browser.get("/admin/users/?active=no").await;
    assert_eq!(inactive.text.matches("data-testid=\"user-row\"").count(), 0);

    // Setting a password: the validators again, then the new one works.
    let page = format!("/admin/users/{}/", row.id);
    let short = browser
        .submit(
            &page,
            &format!("/admin/users/{}/password/", row.id),
            &[("new_password", "short"), ("confirm_password", "short")],
        )
        .await;
    short.expect_status(400);
    assert!(short.text.contains("This password is too short."));
    browser
        .submit(
            &page,
            &format!("/admin/users/{}/password/", row.id),
            &[
                ("new_password", "Yet-Another-Passphrase-3"),
                ("confirm_password", "Yet-Another-Passphrase-3"),
            ],
        )
        .await
        .expect_status(303);
    srv.login("new@example.com", "Yet-Another-Passphrase-3").await;

    // Delete (not oneself).
    browser
        .submit(&page, &format!("/admin/users/{}/delete/", admin.id), &[])
        .await
        .expect_status(403);
    let confirm = browser.get(&format!("/admin/users/{}/delete/", row.id)).await;
    confirm.expect_status(200);
    browser
        .submit(&page, &format!("/admin/users/{}/delete/", row.id), &[])
        .await
        .expect_status(303);
    assert!(srv.user_row_by_email("new@example.com").await.is_none());
    browser.get(&page).await.expect_status(404);
    srv.finish().await;
}

async fn audit_log_records_each_action(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user("bob@example.com", PASSWORD).await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    Browser::new(&srv)
        .sign_in(&alice.email, PASSWORD)
        .await
        .expect_status(403);

    let page = format!("/admin/users/{}/", alice.id);
    browser
        .submit(&page, &format!("/admin/users/{}/deactivate/", alice.id), &[])
        .await
        .expect_status(303);
    browser
        .submit(&page, &format!("/admin/users/{}/activate/", alice.id), &[])
        .await
        .expect_status(303);
    // The deactivation revoked her tokens: she signs in again.
    let (access, _) = srv.login(&alice.email, PASSWORD).await;
    let alice = TestUser { access, ..alice };
    let reply = browser.open_pair(&alice.email, &bob.email).await;
    let chat_id = reply
        .header("location")
        .unwrap()
        .trim_start_matches("/admin/chats/")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let message_id = post_message(&srv, &alice, &chat_id, "bye").await;
    browser
        .submit(
            "/admin/messages/",
            &format!("/admin/messages/{message_id}/delete/"),
            &[],
        )
        .await
        .expect_status(303);

    let log = browser.get("/admin/audit/").await;
    log.expect_status(200);
    let actions: Vec<&str> = log
        .text
        .split("data-action=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        actions,
        vec![
            "message_delete",
            "chat_create",
            "user_activate",
            "user_deactivate",
            "login_refused",
            "login"
        ],
        "newest first"
    );
    assert!(log.text.contains("127.0.0.1"), "the address is recorded");
    let about_alice = browser.get(&format!("/admin/audit/?object={}", alice.id)).await;
    assert_eq!(about_alice.text.matches("data-testid=\"audit-row\"").count(), 3);
    assert!(about_alice.text.contains("active: yes → no"));
    let by_admin = browser.get("/admin/audit/?actor=ADMIN%40").await;
    assert_eq!(by_admin.text.matches("data-testid=\"audit-row\"").count(), 5);
    let by_nobody = browser.get("/admin/audit/?actor=nobody").await;
    assert_eq!(by_nobody.text.matches("data-testid=\"audit-row\"").count(), 0);
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_per_address() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.rate_login_per_minute = 2).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let browser = Browser::new(&srv);
    for _ in 0..2 {
        browser.sign_in(&admin.email, "wrong").await.expect_status(401);
    }
    let throttled = browser.sign_in(&admin.email, PASSWORD).await;
    throttled.expect_status(429);
    assert!(throttled.header("retry-after").is_some());
    browser.get("/admin/").await.expect_status(303);
    srv.finish().await;
}

/// Behind a proxy that says HTTPS (and is trusted to), the cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_over_https() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.trust_forwarded_for = true).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let login = srv
        .client
        .get(srv.url("/admin/login/"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    let token = csrf_of(&login.text().await.unwrap());
    let value = cookie
        .trim_start_matches("causerie_admin_login=")
        .split(';')
        .next()
        .unwrap();
    let signed = srv
        .client
        .post(srv.url("/admin/login/"))
        .header("x-forwarded-proto", "https")
        .header("cookie", format!("causerie_admin_login={value}"))
        .form(&[
            ("csrf", token.as_str()),
            ("email", &admin.email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("causerie_admin="))
        .unwrap();
    assert!(session.contains("Secure"), "{session}");
    // Without the trusted header: not Secure.
    let plain = srv.client.get(srv.url("/admin/login/")).send().await.unwrap();
    assert!(!plain.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
    srv.finish().await;
}

/// Two instances over Redis (and PostgreSQL): a deactivation on one closes the user's socket on
/// the other, and the dashboard counts both instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_closes_sockets_on_every_instance() {
    let Some(redis) = std::env::var("CAUSERIE_TEST_REDIS_URL").ok().filter(|v| !v.is_empty()) else {
        eprintln!("note: CAUSERIE_TEST_REDIS_URL not set; skipping");
        return;
    };
    if !Backend::Postgres.is_available() {
        eprintln!("note: {} not set; skipping", common::POSTGRES_ENV);
        return;
    }
    let first = TestServer::start_with(Backend::Postgres, |c| c.redis_url = Some(redis.clone())).await;
    let second = first.start_peer(|c| c.redis_url = Some(redis.clone())).await;
    let admin = staff(&first, "admin@example.com", false).await;
    let alice = first.quick_user("alice@example.com", PASSWORD).await;
    wait_until_ready(&first).await;
    wait_until_ready(&second).await;
    let mut on_second = ws::connect(&second.ws_url(&format!("/ws/?token={}", alice.access)), V2).await;

    let browser = Browser::signed_in(&first, &admin.email, PASSWORD).await;
    let dashboard = browser.get("/admin/").await;
    let instances = figure(&dashboard.text, "Instances").expect("an instances figure with Redis");
    assert!(
        instances.parse::<u64>().unwrap() >= 2,
        "both instances beat: {instances}"
    );
    let page = format!("/admin/users/{}/", alice.id);
    browser
        .submit(&page, &format!("/admin/users/{}/deactivate/", alice.id), &[])
        .await
        .expect_status(303);
    assert_eq!(on_second.expect_close().await, Some(4401));
    second.get_auth("/api/chat/", &alice.access).await.expect_status(401);
    second.finish().await;
    first.finish().await;
}

/// Without Redis, the dashboard has no instances figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_figures() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let (alice, bob, chat_id) = alice_and_bob(&srv).await;
    post_message(&srv, &alice, &chat_id, "one").await;
    let socket = ws::connect(&srv.ws_url(&format!("/ws/?token={}", bob.access)), V2).await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let page = browser.get("/admin/").await;
    assert_eq!(figure(&page.text, "Users").as_deref(), Some("3"));
    assert_eq!(figure(&page.text, "Chats").as_deref(), Some("1"));
    assert_eq!(figure(&page.text, "Messages today").as_deref(), Some("1"));
    assert_eq!(figure(&page.text, "Open sockets").as_deref(), Some("1"));
    assert_eq!(figure(&page.text, "Instances"), None);
    socket.close().await;
    srv.finish().await;
}

/// The value shown for the dashboard figure labelled `label`.
fn figure(html: &str, label: &str) -> Option<String> {
    let marker = format!("data-label=\"{label}\"");
    let rest = &html[html.find(&marker)?..];
    let value = "data-testid=\"figure-value\">";
    let start = rest.find(value)? + value.len();
    Some(rest[start..start + rest[start..].find('<')?].to_string())
}

async fn wait_until_ready(srv: &TestServer) {
    for _ in 0..100 {
        if srv.get("/readyz").await.status == StatusCode::OK {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} never became ready", srv.base_url());
}

// ---- devices, push, attachments ------------------------------------------------------------

/// Polls `check` until it holds (at most 30 s); no timing is asserted, this only waits.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Registers a push device for `user` through the API; its JSON.
async fn register_device(srv: &TestServer, user: &TestUser, token: &str, kind: &str) -> serde_json::Value {
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

/// Whether `user`'s device with `token` is active, as the API shows it.
async fn device_active(srv: &TestServer, user: &TestUser, token: &str) -> bool {
    let listed = srv.get_auth("/devices/", &user.access).await;
    listed.body["results"]
        .as_array()
        .expect("device list")
        .iter()
        .find(|d| d["registration_id"] == token)
        .and_then(|d| d["active"].as_bool())
        .expect("the device")
}

/// A small PNG.
fn png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 90]));
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encoding a PNG");
    out.into_inner()
}

/// Uploads `bytes` as `who` (POST /api/attachments/); the attachment JSON.
async fn upload(srv: &TestServer, who: &TestUser, name: &str, bytes: &[u8]) -> serde_json::Value {
    let boundary = "----causerieadmintest";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let auth = format!("Bearer {}", who.access);
    let reply = srv
        .request_raw(
            reqwest::Method::POST,
            "/api/attachments/",
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
            &[("Authorization", &auth)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "upload: {}", reply.text);
    reply.body
}

/// A signed URL as a path on the test server.
fn local(url: &serde_json::Value) -> String {
    let url = url.as_str().expect("a URL");
    let start = url.find("/api/").expect("an API path");
    url[start..].to_string()
}

async fn device_and_attachment_pages_are_staff_only_and_need_csrf(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let (alice, bob, _chat) = alice_and_bob(&srv).await;
    let device = register_device(&srv, &bob, "bob-phone", "android").await;
    let attachment = upload(&srv, &alice, "cat.png", &png()).await;
    let attachment_id = attachment["id"].as_str().unwrap();
    let device_id = device["id"].to_string();
    let pages = [
        "/admin/devices/".to_string(),
        format!("/admin/users/{}/push/", bob.id),
        "/admin/attachments/".to_string(),
        format!("/admin/attachments/{attachment_id}/"),
        format!("/admin/attachments/{attachment_id}/file/"),
        format!("/admin/attachments/{attachment_id}/thumbnail/"),
    ];
    let forms = [
        format!("/admin/devices/{device_id}/deactivate/"),
        format!("/admin/users/{}/push/test/", bob.id),
        format!("/admin/attachments/{attachment_id}/delete/"),
    ];

    // Signed out, or holding only an API token (even a staff member's): the login page.
    let anonymous = Browser::new(&srv);
    for page in &pages {
        let reply = anonymous.get(page).await;
        reply.expect_status(303);
        assert!(
            reply.header("location").unwrap_or("").starts_with("/admin/login/"),
            "{page}"
        );
        let with_token = srv.get_auth(page, &admin.access).await;
        assert_eq!(with_token.status, StatusCode::SEE_OTHER, "{page}");
    }
    for form in &forms {
        let reply = anonymous.post(form, &[]).await;
        reply.expect_status(303);
    }
    // A non-staff account gets no session at all.
    let visitor = Browser::new(&srv);
    visitor.sign_in(&alice.email, PASSWORD).await.expect_status(403);
    visitor.get("/admin/devices/").await.expect_status(303);

    // Signed in: pages open; forms without this session's token change nothing.
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    for page in &pages[..4] {
        browser.get(page).await.expect_status(200);
    }
    for form in &forms {
        for fields in [vec![], vec![("csrf", "0".repeat(64))]] {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = browser.post(form, &fields).await;
            reply.expect_status(403);
            assert!(reply.text.contains("CSRF"), "{form}: {}", reply.text);
        }
    }
    assert!(
        device_active(&srv, &bob, "bob-phone").await,
        "the device is still active"
    );
    let (status, _, _) = browser
        .get_bytes(&format!("/admin/attachments/{attachment_id}/file/"))
        .await;
    assert_eq!(status, StatusCode::OK, "the attachment is still there");
    let audit = browser.get("/admin/audit/").await;
    for action in ["device_deactivate", "push_test", "attachment_delete"] {
        assert!(!audit.text.contains(action), "{action} was not recorded");
    }
    // Bad ids and filters: a clear 4xx.
    browser.get("/admin/users/nope/push/").await.expect_status(404);
    browser.get("/admin/attachments/nope/").await.expect_status(404);
    browser
        .get(&format!("/admin/attachments/{}/", uuid::Uuid::new_v4()))
        .await
        .expect_status(404);
    browser.get("/admin/devices/?type=pager").await.expect_status(400);
    browser.get("/admin/attachments/?chat=nope").await.expect_status(400);
    browser
        .submit("/admin/devices/", "/admin/devices/999999/deactivate/", &[])
        .await
        .expect_status(404);
    srv.finish().await;
}

async fn devices_are_found_deactivated_and_test_pushed(backend: Backend) {
    let fcm = fakes::FakeFcm::start().await;
    let web = fakes::FakeWebPush::start().await;
    let srv = TestServer::start_with(backend, |c| {
        fcm.configure(c);
        web.configure(c);
        c.push_coalesce_ms = 100;
    })
    .await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let alice = srv.quick_user("alice@example.com", PASSWORD).await;
    let bob = srv.quick_user_named("bob@example.com", PASSWORD, "Bob", "Dupont").await;
    let phone = register_device(&srv, &bob, "bob-phone", "android").await;
    let (endpoint, subscription) = web.subscribe();
    register_device(&srv, &bob, &subscription, "web").await;
    register_device(&srv, &alice, "alice-phone", "ios").await;
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;

    // Found by the owner's name, filtered by type and state.
    let found = browser.get("/admin/devices/?q=dupont").await;
    found.expect_status(200);
    assert_eq!(
        found.text.matches("data-testid=\"device-row\"").count(),
        2,
        "{}",
        found.text
    );
    assert!(found.text.contains("bob-phone"));
    assert!(!found.text.contains("alice-phone"));
    let android = browser.get("/admin/devices/?type=android&active=yes").await;
    assert_eq!(android.text.matches("data-testid=\"device-row\"").count(), 1);
    let user_page = browser.get(&format!("/admin/users/{}/", bob.id)).await;
    assert!(
        user_page.text.contains("bob-phone"),
        "the user page lists their devices"
    );

    // The test push reaches both providers; the page shows each answer.
    let test_path = format!("/admin/users/{}/push/test/", bob.id);
    let result = browser
        .submit(&format!("/admin/users/{}/", bob.id), &test_path, &[])
        .await;
    result.expect_status(200);
    assert!(
        result.text.contains("2 of 2 active devices reached."),
        "{}",
        result.text
    );
    let outcomes = result.text.matches("data-testid=\"push-test-outcome\">sent<").count();
    assert_eq!(outcomes, 2, "{}", result.text);
    let sent = fcm.sends_to("bob-phone");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["notification"]["body"], "This is a test notification.");
    assert_eq!(web.received(&endpoint).len(), 1);
    assert!(fcm.sends_to("alice-phone").is_empty());
    let log = browser.get(&format!("/admin/users/{}/push/", bob.id)).await;
    assert_eq!(
        log.text.matches("data-testid=\"push-attempt-source\">test<").count(),
        2,
        "{}",
        log.text
    );

    // Deactivated from the admin: the next message is pushed to the other device only.
    let reply = browser
        .submit(
            "/admin/devices/",
            &format!("/admin/devices/{}/deactivate/", phone["id"]),
            &[("next", "/admin/devices/?q=dupont")],
        )
        .await;
    reply.expect_status(303);
    assert_eq!(
        reply.header("location"),
        Some("/admin/devices/?q=dupont&notice=device_deactivated")
    );
    assert!(!device_active(&srv, &bob, "bob-phone").await);
    let chat = srv.open_chat(&alice, &bob).await["id"].as_str().unwrap().to_string();
    post_message(&srv, &alice, &chat, "are you there?").await;
    eventually("the message's web push", || async {
        web.received(&endpoint).len() == 2
    })
    .await;
    eventually("the outbox job to end", || async {
        let jobs = causerie::testing::push::outbox(srv.db(), bob.user_id()).await;
        !jobs.is_empty() && jobs.iter().all(|(state, _)| state == "sent")
    })
    .await;
    assert_eq!(
        fcm.sends_to("bob-phone").len(),
        1,
        "nothing more to the deactivated device"
    );
    let log = browser.get(&format!("/admin/users/{}/push/", bob.id)).await;
    assert!(
        log.text.contains("data-testid=\"push-job-status\">sent<"),
        "{}",
        log.text
    );
    assert_eq!(
        log.text.matches("data-testid=\"push-attempt-source\">message<").count(),
        1
    );

    // Reactivated, it is pushed to again.
    browser
        .submit(
            "/admin/devices/",
            &format!("/admin/devices/{}/activate/", phone["id"]),
            &[],
        )
        .await
        .expect_status(303);
    assert!(device_active(&srv, &bob, "bob-phone").await);
    let audit = browser.get("/admin/audit/").await;
    for action in ["push_test", "device_deactivate", "device_activate"] {
        assert!(audit.text.contains(action), "{action} in {}", audit.text);
    }
    assert!(audit.text.contains("bob@example.com: 2 of 2 active devices reached"));
    assert!(fcm.refused_assertions().is_empty(), "{:?}", fcm.refused_assertions());
    assert!(web.refused().is_empty(), "{:?}", web.refused());

    // The push log stays bounded: pruning keeps the newest rows (here one of three), and
    // drops by age.
    let db = srv.db();
    let long_ago = chrono::Utc::now() - chrono::Duration::days(7);
    assert_eq!(causerie::testing::push::prune_log(db, long_ago, 100).await, 0);
    assert_eq!(causerie::testing::push::prune_log(db, long_ago, 1).await, 2);
    let log = browser.get(&format!("/admin/users/{}/push/", bob.id)).await;
    assert_eq!(
        log.text.matches("data-testid=\"push-attempt\"").count(),
        1,
        "{}",
        log.text
    );
    assert!(
        log.text.contains("data-testid=\"push-attempt-source\">message<"),
        "the newest is kept"
    );
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    assert_eq!(causerie::testing::push::prune_log(db, tomorrow, 100).await, 1);

    // Figures: the outbox is drained.
    let dashboard = browser.get("/admin/").await;
    assert_eq!(figure(&dashboard.text, "Push outbox").as_deref(), Some("0"));
    srv.finish().await;
}

async fn attachment_delete_removes_the_download(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let admin = staff(&srv, "admin@example.com", false).await;
    let (alice, bob, chat) = alice_and_bob(&srv).await;
    let bytes = png();
    let attachment = upload(&srv, &alice, "holiday.png", &bytes).await;
    let id = attachment["id"].as_str().unwrap().to_string();
    let kept = upload(&srv, &alice, "kept.png", &bytes).await;
    let posted = srv
        .post_json_auth(
            "/api/message/",
            &alice.access,
            &json!({ "refChat": chat, "message": "look", "type": 2, "attachments": [id, kept["id"]] }),
        )
        .await;
    posted.expect_status(201);
    let message_id = posted.body["id"].as_str().unwrap().to_string();
    let signed = local(&posted.body["attachments"][0]["url"]);
    assert_eq!(srv.get(&signed).await.status, StatusCode::OK);
    let mut bobs = ws::connect(&srv.ws_url(&format!("/ws/chat/{chat}/?token={}", bob.access)), V2).await;
    bobs.recv_until(|f| f.kind() == FrameType::Subscribed).await;

    // Listed with its uploader and chat, shown, downloaded through the admin.
    let browser = Browser::signed_in(&srv, &admin.email, PASSWORD).await;
    let listed = browser
        .get("/admin/attachments/?q=alice&attached=yes&type=image/")
        .await;
    listed.expect_status(200);
    assert!(listed.text.contains(&id) && listed.text.contains("holiday.png"));
    assert!(listed.text.contains(&chat));
    let none = browser.get("/admin/attachments/?attached=no").await;
    assert!(!none.text.contains(&id));
    let page = browser.get(&format!("/admin/attachments/{id}/")).await;
    page.expect_status(200);
    assert!(page.text.contains("image/png"));
    let (status, headers, body) = browser.get_bytes(&format!("/admin/attachments/{id}/file/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes, "the stored file");
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"holiday.png\""));
    let (status, headers, _) = browser.get_bytes(&format!("/admin/attachments/{id}/thumbnail/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/jpeg");
    let dashboard = browser.get("/admin/").await;
    assert_eq!(figure(&dashboard.text, "Attachments").as_deref(), Some("2"));

    // Deleted: the download is gone, the message no longer carries it and its members see that.
    let reply = browser
        .submit(
            &format!("/admin/attachments/{id}/"),
            &format!("/admin/attachments/{id}/delete/"),
            &[],
        )
        .await;
    reply.expect_status(303);
    assert_eq!(
        reply.header("location"),
        Some("/admin/attachments/?notice=attachment_deleted")
    );
    assert_eq!(srv.get(&signed).await.status, StatusCode::NOT_FOUND);
    let (status, _, _) = browser.get_bytes(&format!("/admin/attachments/{id}/file/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ServerFrame::MessageEdited(edited) = bobs.recv_until(|f| f.kind() == FrameType::MessageEdited).await else {
        unreachable!("recv_until returned the kind asked for")
    };
    assert_eq!(edited.message.id.to_string(), message_id);
    let left: Vec<String> = edited.message.attachments.iter().map(|a| a.id.to_string()).collect();
    assert_eq!(left, vec![kept["id"].as_str().unwrap().to_string()]);
    let message = srv
        .get_auth(&format!("/api/message/{message_id}/"), &alice.access)
        .await;
    message.expect_status(200);
    assert_eq!(message.body["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(message.body["attachments"][0]["id"], kept["id"]);
    assert_eq!(message.body["message"], "look");
    // The other file is untouched; deleting the same one again: not found.
    assert_eq!(
        srv.get(&local(&message.body["attachments"][0]["url"])).await.status,
        StatusCode::OK
    );
    browser
        .submit("/admin/attachments/", &format!("/admin/attachments/{id}/delete/"), &[])
        .await
        .expect_status(404);
    let audit = browser.get("/admin/audit/").await;
    assert!(audit.text.contains("attachment_download"));
    assert!(audit.text.contains("attachment_delete"));
    assert!(audit.text.contains("1 messages changed"), "{}", audit.text);
    bobs.close().await;
    srv.finish().await;
}
