//! Bad input gets a clear 4xx and changes nothing; nothing makes the server answer 500 or leak
//! internals. Also: password reset mail really goes out over SMTP when configured.

#[macro_use]
mod common;

use common::{Backend, TestServer, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Bodies of every wrong shape a client might send.
fn nasty_bodies() -> Vec<Value> {
    vec![
        json!({}),
        json!(null),
        json!([]),
        json!("text"),
        json!(12),
        json!({ "email": null, "password": null, "refresh": null, "token": null }),
        json!({ "email": 12, "password": [1], "first_name": {"a": 1}, "refChat": 5, "message": {"x": 1} }),
        json!({ "email": "a@b.io", "password": "x".repeat(5000) }),
        json!({ "refChat": "not-a-uuid", "message": "hi", "type": "zero", "extraData": 5 }),
        json!({ "refChat": "00000000-0000-0000-0000-000000000000", "message": "hi", "type": 99999999999i64 }),
        json!({ "refUser": [], "chatWithUser": {}, "messageIds": "all" }),
        json!({ "messageIds": [null, 1, "x", {"a": 1}] }),
        json!({ "isRead": "perhaps", "online": 3, "lastConnexionDate": "yesterday", "avatar": 1 }),
        json!({ "first_name": "\u{0000}\u{202e}é漢字😀", "last_name": "'; DROP TABLE users; --" }),
        json!({ "title": "", "members": ["x"], "user": "y", "uid": "%%%", "new_password": "" }),
    ]
}

const ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/auth/users/"),
    ("PATCH", "/auth/users/me/"),
    ("PUT", "/auth/users/me/"),
    ("POST", "/auth/users/set_password/"),
    ("POST", "/auth/users/reset_password/"),
    ("POST", "/auth/users/reset_password_confirm/"),
    ("POST", "/auth/jwt/create/"),
    ("POST", "/auth/jwt/refresh/"),
    ("POST", "/auth/jwt/verify/"),
    ("POST", "/auth/jwt/blacklist/"),
    ("PATCH", "/api/user/{me}/"),
    ("POST", "/api/createChat/"),
    ("POST", "/api/message/"),
    ("POST", "/api/updateMessagesStatus/"),
    ("POST", "/api/groups/"),
    ("PATCH", "/api/message/{message}/"),
    ("DELETE", "/api/message/00000000-0000-0000-0000-000000000000/"),
];

async fn garbage_never_breaks_anything(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let me = srv.quick_user_named("me@example.com", PASSWORD, "Me", "Myself").await;
    let other = srv.quick_user("other@example.com", PASSWORD).await;
    let chat = srv
        .post_json_auth(
            "/api/createChat/",
            &me.access,
            &json!({ "refUser": me.id, "chatWithUser": other.id }),
        )
        .await;
    let chat_id = chat.body["id"].as_str().unwrap().to_string();
    let message = srv
        .post_json_auth(
            "/api/message/",
            &me.access,
            &json!({ "refChat": chat_id, "message": "keep me" }),
        )
        .await;
    let message_id = message.body["id"].as_str().unwrap().to_string();

    for (method, path) in ENDPOINTS {
        let path = path.replace("{me}", &me.id).replace("{message}", &message_id);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for body in nasty_bodies() {
            let reply = srv.request(method.clone(), &path, Some(&me.access), Some(&body)).await;
            let status = reply.status.as_u16();
            assert!(
                (200..500).contains(&status),
                "{method} {path} with {body} answered {status}: {}",
                reply.text
            );
            for leak in [
                "sqlx",
                "SELECT",
                "INSERT",
                "panicked",
                "sqlite",
                "postgres",
                "RUST_BACKTRACE",
            ] {
                assert!(
                    !reply.text.contains(leak),
                    "{method} {path} leaked {leak:?}: {}",
                    reply.text
                );
            }
        }
        // Raw bytes that are not JSON at all, and JSON with a wrong content type.
        for (content_type, raw) in [
            (Some("application/json"), &b"{\"email\": "[..]),
            (Some("application/json"), &b"\xff\xfe\x00garbage"[..]),
            (Some("text/plain"), &b"{}"[..]),
            (None, &b"{}"[..]),
        ] {
            let reply = srv
                .request_raw(
                    method.clone(),
                    &path,
                    content_type,
                    raw.to_vec(),
                    &[("authorization", &format!("Bearer {}", me.access))],
                )
                .await;
            assert!(
                (400..500).contains(&reply.status.as_u16()),
                "{method} {path} raw → {}",
                reply.status
            );
        }
    }

    // Garbage created no message and moved none (valid PATCHes may have edited its text).
    let history = srv
        .get_auth(&format!("/api/message/?refChat={chat_id}"), &me.access)
        .await;
    history.expect_status(200);
    assert_eq!(history.body["count"], json!(1), "{}", history.text);
    assert_eq!(history.body["results"][0]["id"], json!(message_id));
    assert_eq!(history.body["results"][0]["author"], json!(me.id));
    let me_now = srv.get_auth("/auth/users/me/", &me.access).await;
    assert_eq!(
        me_now.body["first_name"],
        json!("Me"),
        "names unchanged by refused updates"
    );
    srv.finish().await;
}

async fn hostile_query_strings_are_4xx(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let me = srv.quick_user("me@example.com", PASSWORD).await;
    for path in [
        "/api/message/?refChat=nope",
        "/api/message/?refChat=00000000-0000-0000-0000-000000000000&page=-1",
        "/api/message/?refChat=00000000-0000-0000-0000-000000000000&page=99999999999999999999",
        "/api/chat/?page=0",
        "/api/chat/?id=%00",
        "/api/searchUser/?search=%25%5F%5C&page_size=100000",
        "/api/searchUser/?search=a%00b",
        "/api/user/?valid=maybe",
        "/auth/users/?page=abc",
        "/api/chat/not-a-uuid/",
        "/api/message/not-a-uuid/",
        "/auth/users/not-a-uuid/",
    ] {
        let reply = srv.get_auth(path, &me.access).await;
        let status = reply.status.as_u16();
        assert!(
            (200..500).contains(&status),
            "GET {path} answered {status}: {}",
            reply.text
        );
    }
    // `%` and `_` in a search are literal characters, not wildcards.
    srv.quick_user_named("x@example.com", PASSWORD, "Zed", "Zorro").await;
    let reply = srv.get_auth("/api/searchUser/?search=%25", &me.access).await;
    reply.expect_status(200);
    assert_eq!(reply.body["count"], json!(0));
    srv.finish().await;
}

backend_tests!(garbage_never_breaks_anything, hostile_query_strings_are_4xx);

/// A minimal SMTP server: accepts one message and returns its DATA.
async fn fake_smtp(listener: TcpListener) -> String {
    let (stream, _) = listener.accept().await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 fake.smtp ESMTP\r\n").await.unwrap();
    let mut data = String::new();
    let mut in_data = false;
    while let Some(line) = lines.next_line().await.unwrap() {
        if in_data {
            if line == "." {
                // The client may keep the connection for its pool: one message is all we need.
                write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                return data;
            }
            data.push_str(&line);
            data.push('\n');
            continue;
        }
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 fake.smtp\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.1.0 ok\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        write.write_all(answer).await.unwrap();
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_mail_goes_out_over_smtp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = tokio::spawn(fake_smtp(listener));
    let srv = TestServer::start_with(Backend::Sqlite, |c| {
        c.email_backend = causerie::config::EmailBackend::Smtp;
        c.smtp_host = Some("127.0.0.1".into());
        c.smtp_port = port;
        c.smtp_security = "none".into();
        c.email_from = "Causerie <noreply@example.com>".into();
    })
    .await;
    srv.quick_user("reset.me@example.com", PASSWORD).await;
    srv.post_json(
        "/auth/users/reset_password/",
        &json!({ "email": "Reset.Me@example.com" }),
    )
    .await
    .expect_status(204);
    let data = tokio::time::timeout(std::time::Duration::from_secs(20), received)
        .await
        .unwrap()
        .unwrap();
    assert!(data.contains("To: reset.me@example.com"), "{data}");
    assert!(data.contains("password/reset/confirm/"), "{data}");
    srv.finish().await;
}
