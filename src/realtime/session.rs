//! One task per socket: a `select!` over the socket, the hub queue, pings and shutdown.
//!
//! The seed's per-chat socket (`/ws/chat/{id}/`): inbound frames become stored messages through
//! the chat service; the stored message reaches every socket of the chat, the sender included.

use std::num::NonZeroU32;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use tokio_util::sync::CancellationToken;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, Utf8Bytes};

use super::event::{AccountClosed, Delivery, Format};
use super::gate::{LargeFrames, Resolved};
use super::hub::{Connection, Deliveries, KickReason, Kicked};
use super::upgrade::{Socket, SocketReader, SocketSink};
use super::Realtime;
use crate::chats::{ChatError, ChatResult, PendingStore};
use crate::ids::{ChatId, UserId};
use crate::store::messages::Stored;
use crate::wire::{self, parse, v1, ErrorBody};

/// Close codes used by the server (RFC 6455 §7.4.1; 4401 is ours, docs/protocol.md).
pub(crate) mod close {
    /// The peer broke the framing rules (unmasked frame, reserved bits, bad fragments…).
    pub(crate) const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame (or close reason) that is not valid UTF-8.
    pub(crate) const INVALID_DATA: u16 = 1007;
    pub(crate) const POLICY: u16 = 1008;
    pub(crate) const TOO_BIG: u16 = 1009;
    pub(crate) const RESTARTING: u16 = 1012;
    pub(crate) const TRY_AGAIN_LATER: u16 = 1013;
    /// The socket's credentials no longer hold: the account was deactivated or deleted, its
    /// token expired without a fresh one, or a v2 socket opened without a token did not
    /// authenticate. Do not reconnect with the same token.
    pub(crate) const UNAUTHORIZED: u16 = 4401;
}

/// Most queued frames written before one flush: several frames, one syscall.
pub(crate) const FLUSH_BATCH: usize = 64;

pub(crate) fn frame_limiter(rt: &Realtime) -> DefaultDirectRateLimiter {
    // Config validation guarantees both are positive.
    let rate = NonZeroU32::new(rt.settings().frames_per_second).expect("validated");
    let burst = NonZeroU32::new(rt.settings().frames_burst).expect("validated");
    DefaultDirectRateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
}

/// Counts an open socket in the `causerie_ws_connections` gauge for as long as it lives.
pub(crate) struct OpenGauge;

impl OpenGauge {
    pub(crate) fn new() -> OpenGauge {
        metrics::gauge!("causerie_ws_connections").increment(1.0);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("causerie_ws_connections").decrement(1.0);
    }
}

pub(crate) fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// The close frame that answers a failed read, by RFC 6455 §7.4.1: a frame over the size
/// limit 1009, a text frame that is not UTF-8 1007, any other breach of the framing rules
/// 1002. None when the peer is simply gone (nothing can be sent).
pub(crate) fn error_close(err: &tungstenite::Error) -> Option<Message> {
    use tungstenite::error::ProtocolError;
    match err {
        tungstenite::Error::Capacity(_) => Some(close_message(close::TOO_BIG, "frame too large")),
        tungstenite::Error::Utf8(_) => Some(invalid_utf8()),
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        tungstenite::Error::Protocol(_) => Some(close_message(close::PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}

fn invalid_utf8() -> Message {
    close_message(close::INVALID_DATA, "invalid UTF-8")
}

/// Answers the peer's close frame (RFC 6455 §5.5.1). The reply is queued by the WebSocket
/// layer when the close is read; flushing writes it before the connection is dropped.
pub(crate) async fn answer_close<S>(sink: &mut S)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.flush()).await;
}

/// What one read from a socket means for its session loop.
pub(crate) enum Inbound {
    /// A text frame to handle; `large`: over `ws_max_frame_bytes`, so it must be a photo.
    Text { text: Utf8Bytes, large: bool },
    /// A frame refused before handling (binary, over the rate): answer with this error. (The
    /// text is static: this value lives in every session's future.)
    Refused { code: &'static str, detail: &'static str },
    /// A control frame: nothing to do.
    Nothing,
    /// The peer sent its close frame: answer it ([`answer_close`]) and end the session.
    PeerClosed,
    /// The peer left or broke a limit: end the session, sending this close frame if any.
    Closed(Option<Message>),
}

/// Counts a close for a broken rule by its code.
fn count_protocol_close(close: &Option<Message>) {
    if let Some(Message::Close(Some(frame))) = close {
        metrics::counter!("causerie_ws_protocol_closes_total", "code" => u16::from(frame.code).to_string())
            .increment(1);
    }
}

/// Classifies a read: the size limits (close 1009, or an error frame for a text frame the gate
/// took out), the per-socket frame rate, control frames.
pub(crate) fn read_inbound(
    read: Option<Result<Message, tungstenite::Error>>,
    frames: &LargeFrames,
    limiter: &DefaultDirectRateLimiter,
    last_heard: &mut Instant,
) -> Inbound {
    let frame = match read {
        None => return Inbound::Closed(None),
        Some(Err(err)) => {
            let close = error_close(&err);
            count_protocol_close(&close);
            return Inbound::Closed(close);
        }
        Some(Ok(frame)) => frame,
    };
    *last_heard = Instant::now();
    match frame {
        Message::Close(_) => Inbound::PeerClosed,
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Nothing,
        Message::Binary(_) => Inbound::Refused {
            code: "invalid_frame",
            detail: "Binary frames are not supported; send JSON text.",
        },
        // Resolved before the rate is checked: a placeholder's frame must be taken either way.
        Message::Text(text) => match frames.resolve(text) {
            _ if limiter.check().is_err() => Inbound::Refused {
                code: "rate_limited",
                detail: "Too many frames; slow down.",
            },
            Resolved::Text { text, large } => Inbound::Text { text, large },
            Resolved::TooLarge => Inbound::Refused {
                code: "frame_too_large",
                detail: "The frame is larger than this server accepts (ws_max_photo_bytes); it was not read.",
            },
            Resolved::InvalidUtf8 => {
                let close = Some(invalid_utf8());
                count_protocol_close(&close);
                Inbound::Closed(close)
            }
        },
    }
}

/// Server pings and the dead-peer rule shared by v1 and v2 sessions: a ping every interval,
/// and a peer silent for three intervals is dropped. The same tick ends a socket whose token
/// has expired (so an expiry is noticed within one ping interval, at no cost per socket).
pub(crate) struct Keepalive {
    every: Duration,
    ticks: tokio::time::Interval,
    /// When the peer was last heard from (any frame).
    pub(crate) last_heard: Instant,
    /// Unix time after which the socket's credentials no longer hold (None: never).
    pub(crate) expires_at: Option<i64>,
}

impl Keepalive {
    pub(crate) fn new(rt: &Realtime) -> Keepalive {
        let every = rt.settings().ping_interval;
        let ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        Keepalive {
            every,
            ticks,
            last_heard: Instant::now(),
            expires_at: None,
        }
    }

    /// Waits for the next ping time: `Ok(ping)` to send, or `Err(close)` for a dead peer or
    /// expired credentials.
    pub(crate) async fn due(&mut self) -> Result<Message, Message> {
        self.ticks.tick().await;
        if self.expires_at.is_some_and(|at| chrono::Utc::now().timestamp() >= at) {
            metrics::counter!("causerie_ws_token_expired_closes_total").increment(1);
            Err(close_message(close::UNAUTHORIZED, "token expired"))
        } else if self.last_heard.elapsed() > self.every * 3 {
            Err(close_message(close::POLICY, "no answer to pings"))
        } else {
            Ok(Message::Ping(Default::default()))
        }
    }
}

/// The close frame for a socket whose queue overflowed.
pub(crate) fn too_slow() -> Message {
    close_message(close::TRY_AGAIN_LATER, "too slow to read")
}

/// The close frame for a socket the hub asked to close.
pub(crate) fn kick_close(reason: KickReason) -> Message {
    match reason {
        KickReason::TooSlow => too_slow(),
        KickReason::Account(AccountClosed::Deactivated) => close_message(close::UNAUTHORIZED, "account deactivated"),
        KickReason::Account(AccountClosed::Deleted) => close_message(close::UNAUTHORIZED, "account deleted"),
        KickReason::Account(AccountClosed::Revoked) => close_message(close::UNAUTHORIZED, "token revoked"),
    }
}

/// The close frame sent to every socket when the server shuts down.
pub(crate) fn restarting() -> Message {
    close_message(close::RESTARTING, "server restarting")
}

/// Writes one frame and whatever else is already queued, then flushes once.
pub(crate) async fn write_batch<S>(sink: &mut S, first: Arc<Delivery>, rx: &mut Deliveries, format: Format) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut pending = Some(first);
    let mut written = 0;
    while let Some(delivery) = pending.take() {
        if let Some(frame) = delivery.frame(format) {
            if sink.feed(Message::Text(frame)).await.is_err() {
                return false;
            }
            written += 1;
        }
        if written < FLUSH_BATCH {
            pending = rx.try_recv();
        }
    }
    sink.flush().await.is_ok()
}

/// Who writes a v1 socket's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sender {
    /// The token's user; the socket ends `ws_v1_expiry_grace_secs` after the token's expiry
    /// (unix seconds).
    User { expires_at: i64 },
    /// No token (`ws_allow_anonymous_v1`): each frame's `author` must be a member of the chat.
    Anonymous,
}

/// The hub's stand-in user of tokenless sockets: no account has the nil uuid, so no user
/// event, presence or kick ever addresses them.
pub(crate) const ANONYMOUS: UserId = UserId(uuid::Uuid::nil());

/// Joins `user`'s socket to `chat`'s room. Done before the handshake is answered, so a client
/// that has its `101` gets every message stored from then on (they wait in the queue until the
/// session runs); dropping the result (a failed upgrade) leaves the room.
pub(crate) fn join_v1(rt: &Realtime, user: UserId, chat: ChatId) -> (Connection, Deliveries) {
    let (connection, rx) = rt.hub().connect(user, rt.settings().send_queue);
    connection.join(chat);
    (connection, rx)
}

/// Runs a seed (v1) socket in `chat`, joined by [`join_v1`], until either side closes.
pub(crate) fn run_v1(
    socket: Socket,
    rt: Realtime,
    chat: ChatId,
    format: Format,
    joined: (Connection, Deliveries),
    sender: Sender,
) -> impl std::future::Future<Output = ()> + Send {
    // Built before the session's future exists, which then keeps only its wait (see
    // `v2::run`).
    let gauge = OpenGauge::new();
    let anonymous = (sender == Sender::Anonymous).then(AnonymousGauge::new);
    let Socket { ws, frames } = socket;
    let (sink, stream) = ws.split();
    let (connection, deliveries) = joined;
    let kicked = connection.kicked();
    let limiter = frame_limiter(&rt);
    let mut keepalive = Keepalive::new(&rt);
    if let Sender::User { expires_at } = sender {
        keepalive.expires_at = Some(expires_at.saturating_add(rt.settings().v1_expiry_grace_secs as i64));
    }
    let closing = rt.closing().clone();
    serve_v1(ServedV1 {
        sink,
        stream,
        frames,
        chat,
        format,
        connection,
        deliveries,
        kicked,
        limiter,
        keepalive,
        closing,
        pending: FuturesOrdered::new(),
        rt,
        _gauge: gauge,
        anonymous,
    })
}

/// What a v1 socket's task keeps while it waits.
struct ServedV1 {
    sink: SocketSink,
    stream: SocketReader,
    frames: Arc<LargeFrames>,
    chat: ChatId,
    format: Format,
    connection: Connection,
    deliveries: Deliveries,
    kicked: Kicked,
    limiter: DefaultDirectRateLimiter,
    keepalive: Keepalive,
    closing: CancellationToken,
    /// Messages queued for storage; the socket goes on reading and delivering meanwhile.
    pending: FuturesOrdered<PendingStore>,
    rt: Realtime,
    _gauge: OpenGauge,
    /// Some for a tokenless socket.
    anonymous: Option<AnonymousGauge>,
}

/// What woke a waiting v1 socket.
enum WokeV1 {
    Stored(ChatResult<Stored>),
    Inbound(Inbound),
    Delivery(Arc<Delivery>),
    Keepalive(Result<Message, Message>),
}

/// A plain fn returning an async block (see `v2::serve`).
#[allow(clippy::manual_async_fn)] // on purpose: see the comment above
fn serve_v1(mut served: ServedV1) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let user = served.connection.user();
        // Work that only happens now and then is boxed, so the future an idle socket's task
        // keeps is only the wait below (an idle connection should cost a few KiB).
        if served.anonymous.is_none() {
            Box::pin(super::presence::connected(&served.rt, user)).await;
        }
        let close = loop {
            let s = &mut served;
            let woke = tokio::select! {
                biased;
                Some(stored) = s.pending.next(), if !s.pending.is_empty() => WokeV1::Stored(stored),
                inbound = s.stream.next() => {
                    WokeV1::Inbound(read_inbound(inbound, &s.frames, &s.limiter, &mut s.keepalive.last_heard))
                }
                delivery = s.deliveries.recv() => WokeV1::Delivery(delivery),
                reason = s.kicked.notified() => break Some(kick_close(reason)),
                due = s.keepalive.due() => WokeV1::Keepalive(due),
                _ = s.closing.cancelled() => break Some(restarting()),
            };
            if let ControlFlow::Break(close) = Box::pin(served.react(woke)).await {
                break close;
            }
        };
        Box::pin(served.finish(close, user)).await;
    }
}

impl ServedV1 {
    /// Answers what woke the socket; `Break` ends it, with the close frame to send if any.
    async fn react(&mut self, woke: WokeV1) -> ControlFlow<Option<Message>> {
        let gone = ControlFlow::Break(None);
        match woke {
            WokeV1::Stored(Ok(_)) => {}
            WokeV1::Stored(Err(err)) => {
                if self.sink.send(refusal_v1(err.into())).await.is_err() {
                    return gone;
                }
            }
            WokeV1::Inbound(Inbound::Closed(close)) => return ControlFlow::Break(close),
            WokeV1::Inbound(Inbound::PeerClosed) => {
                answer_close(&mut self.sink).await;
                return gone;
            }
            WokeV1::Inbound(Inbound::Nothing) => {}
            WokeV1::Inbound(Inbound::Refused { code, detail }) => {
                if self.sink.send(v1_error(ErrorBody::new(code, detail))).await.is_err() {
                    return gone;
                }
            }
            WokeV1::Inbound(Inbound::Text { text, large }) => {
                // The refusal is made into its frame before the write is awaited, so the error
                // is not kept in this future. A large frame's text (and its share of the
                // budget) goes once it is handled.
                let anonymous = self.anonymous.is_some();
                let handled = Box::pin(handle_v1_frame(
                    &self.rt,
                    &self.connection,
                    self.chat,
                    &text,
                    anonymous,
                    large,
                ))
                .await;
                drop(text);
                let refusal = match handled {
                    Ok(committed) => {
                        self.pending.push_back(committed);
                        return ControlFlow::Continue(());
                    }
                    Err(error) => refusal_v1(error),
                };
                if self.sink.send(refusal).await.is_err() {
                    return gone;
                }
            }
            // A peer that does not read blocks the write once the kernel's buffers are full;
            // the kick must still end it (and free its queue), so race the two.
            WokeV1::Delivery(delivery) => tokio::select! {
                written = Box::pin(write_batch(&mut self.sink, delivery, &mut self.deliveries, self.format)) => {
                    if !written {
                        return gone;
                    }
                }
                reason = self.kicked.notified() => return ControlFlow::Break(Some(kick_close(reason))),
            },
            WokeV1::Keepalive(Ok(ping)) => {
                if self.sink.send(ping).await.is_err() {
                    return gone;
                }
            }
            WokeV1::Keepalive(Err(dead)) => return ControlFlow::Break(Some(dead)),
        }
        ControlFlow::Continue(())
    }

    /// Ends the session: the goodbye of a restart or the close handshake, then the socket
    /// leaves the hub and its user's presence.
    async fn finish(self, close: Option<Message>, user: UserId) {
        let ServedV1 {
            mut sink,
            mut stream,
            frames,
            chat,
            connection,
            closing,
            pending,
            rt,
            anonymous,
            ..
        } = self;
        match close {
            Some(close) if closing.is_cancelled() => {
                v1_goodbye(
                    &rt,
                    &connection,
                    chat,
                    &mut sink,
                    &mut stream,
                    &frames,
                    pending,
                    close,
                    anonymous.is_some(),
                )
                .await
            }
            Some(close) => close_handshake(&mut sink, &mut stream, close).await,
            None => {}
        }
        drop(connection);
        if anonymous.is_none() {
            super::presence::disconnected(&rt, user).await;
        }
    }
}

/// Counts an open tokenless v1 socket in `causerie_ws_anonymous_connections`.
struct AnonymousGauge;

impl AnonymousGauge {
    fn new() -> AnonymousGauge {
        metrics::gauge!("causerie_ws_anonymous_connections").increment(1.0);
        AnonymousGauge
    }
}

impl Drop for AnonymousGauge {
    fn drop(&mut self) {
        metrics::gauge!("causerie_ws_anonymous_connections").decrement(1.0);
    }
}

/// How long a server-initiated close waits for the peer's close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(3);

/// Sends our close frame, then waits briefly for the peer's reply before the TCP connection is
/// dropped (RFC 6455 §7.1.1). Dropping at once can reset a connection whose peer still has
/// frames in flight, and a reset may cost the peer the close frame it has not read yet.
pub(crate) async fn close_handshake<S>(
    sink: &mut S,
    stream: &mut (impl futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin),
    close: Message,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    if tokio::time::timeout(Duration::from_secs(2), sink.send(close))
        .await
        .is_err()
    {
        return;
    }
    // Reading on until the peer's close also drains what it sent meanwhile: dropping a socket
    // with unread bytes makes the kernel reset it, and a reset discards what the peer had not
    // read yet, our close frame included. A busy client (say, reading a backlog of acks) can
    // take a while to reach that frame, hence seconds rather than a round trip.
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// A v1 socket's end at shutdown. v1 clients fire and forget, so nothing they sent may be
/// lost: failures of sends still pending are reported first; then, after our close frame,
/// text frames the client sent before it saw that close are still stored (RFC 6455 lets us
/// read until its close arrives; no echo can follow a close frame).
async fn v1_goodbye<S>(
    rt: &Realtime,
    connection: &Connection,
    chat: ChatId,
    sink: &mut S,
    stream: &mut (impl futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin),
    frames: &LargeFrames,
    mut pending: FuturesOrdered<PendingStore>,
    close: Message,
    anonymous: bool,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    while let Some(stored) = pending.next().await {
        if let Err(err) = stored {
            let _ = sink.send(v1_error(err.into())).await;
        }
    }
    if tokio::time::timeout(Duration::from_secs(2), sink.send(close))
        .await
        .is_err()
    {
        return;
    }
    // Reading on until the peer's close also drains what it sent meanwhile: dropping a socket
    // with unread bytes makes the kernel reset it, and a reset discards what the peer had not
    // read yet, our close frame included. A busy client (say, reading a backlog of acks) can
    // take a while to reach that frame, hence seconds rather than a round trip.
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, async {
        while let Some(Ok(frame)) = stream.next().await {
            match frame {
                Message::Text(text) => {
                    if let Resolved::Text { text, large } = frames.resolve(text) {
                        if let Ok(store) = handle_v1_frame(rt, connection, chat, &text, anonymous, large).await {
                            pending.push_back(store);
                        }
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    })
    .await;
    while pending.next().await.is_some() {}
}

/// The v1 error frame for `error`.
fn v1_error(error: ErrorBody) -> Message {
    Message::Text(wire::to_text(&v1::ErrorFrame { error }).into())
}

/// The error frame answering a refused frame or a failed store, counted by code.
fn refusal_v1(error: ErrorBody) -> Message {
    metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code.clone()).increment(1);
    v1_error(error)
}

/// Checks a v1 frame and queues its message for storage (the echo to the room follows the
/// commit). A socket whose user was removed from the chat has left its room and is refused.
/// A tokenless socket's frame is written by its `author`, who must be an active member. A
/// `large` frame (over `ws_max_frame_bytes`) must be a photo frame.
async fn handle_v1_frame(
    rt: &Realtime,
    connection: &Connection,
    chat: ChatId,
    text: &str,
    anonymous: bool,
    large: bool,
) -> Result<PendingStore, ErrorBody> {
    let mut frame = parse::parse_object(text)?;
    let photo = super::photos::take_data_url(&mut frame);
    if large && photo.is_none() {
        return Err(ErrorBody::new(
            "frame_too_large",
            "Only a photo frame (type 2 with a data: URL) may be larger than ws_max_frame_bytes.",
        ));
    }
    let user = if anonymous {
        anonymous_author(rt, chat, &frame).await?
    } else {
        connection.user()
    };
    let max_extra = rt.chats().max_extra_bytes();
    let draft = v1::MessageFrame::from_frame(&frame, chat, user, max_extra)?.into_draft();
    draft.check(max_extra).map_err(ChatError::from)?;
    if !connection.has_joined(chat) {
        return Err(ChatError::NotFound.into());
    }
    let pending = match photo {
        Some(photo) => rt.chats().submit_photo(user, chat, draft, photo).await?,
        None => rt.chats().submit(user, chat, draft).await?,
    };
    if anonymous {
        metrics::counter!("causerie_ws_anonymous_messages_total").increment(1);
    }
    Ok(pending)
}

/// The author a tokenless frame names, if they are an active member of `chat`.
async fn anonymous_author(rt: &Realtime, chat: ChatId, frame: &parse::Object) -> Result<UserId, ErrorBody> {
    let refused = || {
        metrics::counter!("causerie_ws_anonymous_refused_total").increment(1);
        ErrorBody::new(
            "wrong_author",
            "Without a token, \"author\" must name a member of this chat.",
        )
    };
    let author: UserId = frame
        .get("author")
        .and_then(|a| a.as_str())
        .and_then(|a| a.parse().ok())
        .ok_or_else(refused)?;
    if !rt.chats().is_member(chat, author).await? {
        return Err(refused());
    }
    match rt.accounts().active_user(author).await {
        Ok(Some(_)) => Ok(author),
        Ok(None) => Err(refused()),
        Err(_) => Err(ErrorBody::new("unavailable", "Storage is unavailable; retry.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::error::{CapacityError, ProtocolError};

    fn code(err: tungstenite::Error) -> Option<u16> {
        match error_close(&err) {
            Some(Message::Close(Some(frame))) => Some(frame.code.into()),
            _ => None,
        }
    }

    #[test]
    fn read_errors_close_with_the_rfc_codes() {
        let too_long = CapacityError::MessageTooLong { size: 2, max_size: 1 };
        assert_eq!(code(tungstenite::Error::Capacity(too_long)), Some(1009));
        assert_eq!(code(tungstenite::Error::Utf8("bad".into())), Some(1007));
        for protocol in [
            ProtocolError::UnmaskedFrameFromClient,
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnexpectedContinueFrame,
            ProtocolError::FragmentedControlFrame,
            ProtocolError::ControlFrameTooBig,
        ] {
            assert_eq!(code(tungstenite::Error::Protocol(protocol)), Some(1002));
        }
        // A peer that is simply gone gets no frame.
        assert_eq!(
            code(tungstenite::Error::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            None
        );
        assert_eq!(code(tungstenite::Error::ConnectionClosed), None);
    }
}
