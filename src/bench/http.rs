//! A lean HTTP/1.1 keep-alive client for the REST scenarios.
//!
//! The load generator shares the machine it measures, so its cost per request is part of the
//! figure: a request here is one prebuilt buffer written to a kept-alive socket and a response
//! head parsed with `httparse`, with no header map, URL parsing or connection pool in between
//! (reqwest costs the bench several times as much CPU per request).

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::net::{self, ConnectError, Target};

/// Longest a request may take before it counts as a timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body accepted (a page of 100 chats is well under it).
const MAX_BODY: usize = 8 << 20;

/// What one request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: BytesMut,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum RequestError {
    Connect(ConnectError),
    Timeout,
    /// The connection broke (reset, closed before a whole answer, an unreadable answer).
    Broken(String),
}

impl RequestError {
    pub fn kind(&self) -> String {
        match self {
            RequestError::Connect(err) => format!("connect_{}", err.kind()),
            RequestError::Timeout => "timeout".into(),
            RequestError::Broken(_) => "broken".into(),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Connect(err) => write!(f, "connecting: {err}"),
            RequestError::Timeout => write!(f, "no answer within {} s", REQUEST_TIMEOUT.as_secs()),
            RequestError::Broken(why) => write!(f, "connection broken: {why}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// One kept-alive connection to the target, from source address number `index`; reconnects
/// when the server closes it.
pub struct Http {
    target: Target,
    index: usize,
    host: String,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Http {
    pub fn new(target: &Target, index: usize) -> Http {
        Http {
            host: target.addr.to_string(),
            target: target.clone(),
            index,
            stream: None,
            buf: BytesMut::new(),
        }
    }

    /// The bytes of a request: `GET`/`POST` `path`, the bearer token, a JSON body if any.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, json: Option<&str>) -> Vec<u8> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.host
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        match json {
            Some(body) => {
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                ));
            }
            None => head.push_str("\r\n"),
        }
        head.into_bytes()
    }

    /// Sends a prebuilt request (see [`Http::request`]) and reads its answer. A request on a
    /// reused connection that the server had closed meanwhile (no byte of an answer read) is
    /// sent once more on a new connection: that is keep-alive's race, not a failure.
    pub async fn send(&mut self, request: &[u8]) -> Result<Reply, RequestError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(reply) => reply,
            Err(_) => {
                self.stream = None;
                Err(RequestError::Timeout)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Reply, RequestError> {
        let reused = self.stream.is_some();
        match self.once(request).await {
            Err(Attempt::Unanswered(_)) if reused => self.once(request).await.map_err(Attempt::into_error),
            other => other.map_err(Attempt::into_error),
        }
    }

    async fn once(&mut self, request: &[u8]) -> Result<Reply, Attempt> {
        if self.stream.is_none() {
            let stream = net::tcp(&self.target, self.index)
                .await
                .map_err(|e| Attempt::Failed(RequestError::Connect(e)))?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        let result = self.round_trip(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn round_trip(&mut self, request: &[u8]) -> Result<Reply, Attempt> {
        let stream = self.stream.as_mut().expect("connected above");
        stream
            .write_all(request)
            .await
            .map_err(|e| Attempt::Unanswered(e.to_string()))?;
        // The head.
        let (status, length, chunked, keep_alive, head_len) = loop {
            {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let mut length = None;
                        let mut chunked = false;
                        let mut keep_alive = true;
                        for h in response.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = h.value.eq_ignore_ascii_case(b"chunked");
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                keep_alive = !h.value.eq_ignore_ascii_case(b"close");
                            }
                        }
                        break (response.code.unwrap_or(0), length, chunked, keep_alive, head_len);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(err) => return Err(Attempt::Failed(RequestError::Broken(format!("bad answer: {err}")))),
                }
            }
            let answered = !self.buf.is_empty();
            room(&mut self.buf);
            let read = stream.read_buf(&mut self.buf).await;
            match read {
                Ok(0) | Err(_) if !answered => {
                    return Err(Attempt::Unanswered("closed before answering".into()));
                }
                Ok(0) => return Err(Attempt::Failed(RequestError::Broken("closed mid-answer".into()))),
                Err(err) => return Err(Attempt::Failed(RequestError::Broken(err.to_string()))),
                Ok(_) => {}
            }
        };
        self.buf.advance(head_len);
        let body = if chunked {
            self.read_chunked().await?
        } else {
            let length = length.unwrap_or(0);
            if length > MAX_BODY {
                return Err(Attempt::Failed(RequestError::Broken(format!("a {length}-byte body"))));
            }
            self.fill(length).await?;
            self.buf.split_to(length)
        };
        if !keep_alive {
            self.stream = None;
        }
        Ok(Reply { status, body })
    }

    /// Reads until the buffer holds at least `n` bytes.
    async fn fill(&mut self, n: usize) -> Result<(), Attempt> {
        let stream = self.stream.as_mut().expect("connected");
        while self.buf.len() < n {
            room(&mut self.buf);
            match stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err(Attempt::Failed(RequestError::Broken("closed mid-body".into()))),
                Ok(_) => {}
                Err(err) => return Err(Attempt::Failed(RequestError::Broken(err.to_string()))),
            }
        }
        Ok(())
    }

    async fn read_chunked(&mut self) -> Result<BytesMut, Attempt> {
        let mut body = BytesMut::new();
        loop {
            // A chunk-size line.
            let line_end = loop {
                if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                let want = self.buf.len() + 1;
                self.fill(want).await?;
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end]).unwrap_or("");
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| Attempt::Failed(RequestError::Broken("bad chunk size".into())))?;
            self.buf.advance(line_end + 2);
            if body.len() + size > MAX_BODY {
                return Err(Attempt::Failed(RequestError::Broken("body too large".into())));
            }
            self.fill(size + 2).await?;
            body.extend_from_slice(&self.buf[..size]);
            self.buf.advance(size + 2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// Room for a good read: an idle connection holds no buffer, a busy one reads in 16 KiB steps.
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
}

enum Attempt {
    /// Nothing came back: on a reused connection, the server may have closed it meanwhile.
    Unanswered(String),
    Failed(RequestError),
}

impl Attempt {
    fn into_error(self) -> RequestError {
        match self {
            Attempt::Unanswered(why) => RequestError::Broken(why),
            Attempt::Failed(err) => err,
        }
    }
}
