//! The HTTP edge as an attacker meets it, over raw TCP: slow request heads are cut off, a body
//! declared too large is refused before it is sent, a body that stops arriving times out, and
//! one address cannot hold more than its share of connections.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection (or `within` passes); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

/// Reads one response head and body (the server answers `Connection: close` ones here, or we
/// stop at the first complete JSON body).
async fn read_response(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(within, read).await.expect("a response in time");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_byte_by_byte_is_cut_off() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.http_header_timeout_secs = 2).await;
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let mut closed = false;
    for byte in head.iter().chain(b"aaaaaaaaaaaaaaaaaaaa".iter()) {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        // The server may already have given up: a read that ends says so.
        let mut probe = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), slow.read(&mut probe)).await {
            assert!(n == 0 || String::from_utf8_lossy(&probe[..n]).starts_with("HTTP/1.1 408"));
            closed = true;
            break;
        }
        // Meanwhile other clients are served.
        srv.get("/healthz").await.expect_status(200);
    }
    assert!(closed, "a slow head must not keep its connection");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cut off after about the header timeout"
    );
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.http_header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Then nothing: the server closes the idle connection itself.
    assert!(
        read_until_closed(&mut stream, Duration::from_secs(5)).await.is_some(),
        "idle keep-alive connection still open"
    );
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_too_large_is_refused_before_it_is_sent() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/users/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 99999999999\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_response(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.ends_with(r#"{"detail":"Request body is too large."}"#),
        "{answer}"
    );
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_times_out() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.http_body_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(srv.addr).await.unwrap();
    stream
        .write_all(
            b"POST /auth/users/ HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let answer = read_response(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.ends_with(r#"{"detail":"The request body was not received in time."}"#),
        "{answer}"
    );
    let users = causerie::testing::store::users::count(srv.db()).await.unwrap();
    assert_eq!(users, 0, "nothing was created");
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_gets_only_its_share_of_connections() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(srv.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut stream, Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    // A fourth connection from the same address is closed at once, unanswered.
    let mut extra = TcpStream::connect(srv.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert_eq!(answer.as_deref(), Some(""), "refused without an answer");
    // A connection closed gives its share back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(srv.addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut again, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    srv.finish().await;
}
