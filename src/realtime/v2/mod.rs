//! The `causerie.v2` session: acknowledged, idempotent sends; per-chat ordered, gap-free and
//! duplicate-free message streams with `resume`; receipts, typing, presence, edits, deletes and
//! group membership. Every frame and error code is described in docs/protocol.md; the frames
//! themselves are `wire::v2`'s.
//!
//! This file is the socket loop and the dispatch of commands. Each command group is handled in
//! a file of its own: `sends` (send, and the acks in the order of the sends), `follow`
//! (subscribe, resume, unsubscribe, and delivering what the socket follows: live messages and
//! catch-ups from storage), `actions` (read, typing, edit, delete, membership). `streams` is
//! the ordering rule itself.

mod actions;
mod follow;
mod sends;
mod streams;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tungstenite::Message;

use self::sends::{SendEvent, Sends};
use self::streams::ChatStreams;
use super::event::Delivery;
use super::gate::LargeFrames;
use super::hub::{Connection, Deliveries, Kicked};
use super::presence;
use super::session::{self, Inbound, OpenGauge};
use super::upgrade::{Socket, SocketReader, SocketStream};
use super::Realtime;
use crate::accounts::AccountError;
use crate::chats::Chats;
use crate::ids::{ChatId, UserId};
use crate::wire::v2::{
    Authenticate, Authenticated, ClientFrame, Command, ErrorReply, Muted, Pong, Refused, ServerFrame,
};
use crate::wire::{self, ErrorBody, MessageView};
use governor::DefaultDirectRateLimiter;
use tokio_util::sync::CancellationToken;

type Sink = super::upgrade::SocketSink;
/// The frames a session writes: message objects by reference.
type Frame<'a> = ServerFrame<&'a MessageView>;

struct Session {
    rt: Realtime,
    user: UserId,
    connection: Connection,
    streams: ChatStreams,
    last_typing: HashMap<ChatId, Instant>,
    sends: Sends,
    /// The expiry (unix seconds) of a fresh token an `auth` frame brought, for the keepalive.
    renewed: Option<i64>,
}

/// How long a `/ws/` socket opened without a token has to send its `auth` frame.
const AUTH_WAIT: Duration = Duration::from_secs(10);

/// Runs a v2 socket of `user`, whose token expires at `expires_at` (unix seconds) unless an
/// `auth` frame brings a fresh one. `initial` is the chat of a `/ws/chat/{id}/` URL, followed
/// from `after` (or from now).
pub(crate) fn run(
    socket: Socket,
    rt: Realtime,
    user: UserId,
    expires_at: i64,
    initial: Option<(ChatId, Option<i64>)>,
) -> impl std::future::Future<Output = ()> + Send {
    // Everything the socket keeps is built here, before the session's future exists: an async
    // fn keeps its arguments beside the locals it moves them into, and every local that lives
    // across more than one await gets a slot of its own, so the future every idle socket's
    // task holds would be twice the size of its state.
    let gauge = OpenGauge::new();
    let Socket { ws, frames } = socket;
    let (sink, stream) = ws.split();
    let (connection, deliveries) = rt.hub().connect(user, rt.settings().send_queue);
    let kicked = connection.kicked();
    let limiter = session::frame_limiter(&rt);
    let mut keepalive = session::Keepalive::new(&rt);
    keepalive.expires_at = Some(expires_at);
    let closing = rt.closing().clone();
    let session = Session {
        rt,
        user,
        connection,
        streams: ChatStreams::default(),
        last_typing: HashMap::new(),
        sends: Sends::default(),
        renewed: None,
    };
    serve(
        Served {
            sink,
            stream,
            frames,
            deliveries,
            kicked,
            limiter,
            keepalive,
            closing,
            session,
            _gauge: gauge,
        },
        initial,
    )
}

/// What a v2 socket's task keeps while it waits.
struct Served {
    sink: Sink,
    stream: SocketReader,
    frames: Arc<LargeFrames>,
    deliveries: Deliveries,
    kicked: Kicked,
    limiter: DefaultDirectRateLimiter,
    keepalive: session::Keepalive,
    closing: CancellationToken,
    session: Session,
    _gauge: OpenGauge,
}

/// What woke a waiting socket.
enum Woke {
    Send(SendEvent),
    Inbound(Inbound),
    Delivery(Arc<Delivery>),
    Keepalive(Result<Message, Message>),
}

/// A plain fn returning an async block, not an async fn: an async fn moves its arguments
/// into locals of its own and keeps both, the block uses what it captured in place.
#[allow(clippy::manual_async_fn)] // on purpose: see the comment above
fn serve(mut served: Served, initial: Option<(ChatId, Option<i64>)>) -> impl std::future::Future<Output = ()> + Send {
    async move {
        // Work that only happens now and then is boxed, so the future an idle socket's task keeps
        // is only the wait below (an idle connection should cost a few KiB).
        Box::pin(presence::connected(&served.session.rt, served.session.user)).await;
        if let Some((chat, after)) = initial {
            Box::pin(served.follow_initial(chat, after)).await;
        }
        let close = loop {
            let s = &mut served;
            let woke = tokio::select! {
                // Acks before deliveries: a sender hears "stored" before its message's echo.
                biased;
                event = s.session.sends.next_event() => Woke::Send(event),
                // A socket with too many sends waiting for their commit, or one waiting for room
                // to queue its last send, reads nothing more until that clears: back-pressure
                // through TCP, while deliveries and acks keep flowing.
                inbound = s.stream.next(), if s.session.sends.can_take_more() => {
                    Woke::Inbound(session::read_inbound(inbound, &s.frames, &s.limiter, &mut s.keepalive.last_heard))
                }
                delivery = s.deliveries.recv() => Woke::Delivery(delivery),
                reason = s.kicked.notified() => break Some(session::kick_close(reason)),
                due = s.keepalive.due() => Woke::Keepalive(due),
                _ = s.closing.cancelled() => break Some(session::restarting()),
            };
            if let ControlFlow::Break(close) = Box::pin(served.react(woke)).await {
                break close;
            }
        };
        Box::pin(served.finish(close)).await;
    }
}

impl Served {
    async fn follow_initial(&mut self, chat: ChatId, after: Option<i64>) {
        let mut budget = follow::REPLAY_LIMIT;
        if let Err(error) = Box::pin(self.session.subscribe(&mut self.sink, chat, after, None, &mut budget)).await {
            // As for `resume`, the error names the chat it is about.
            let refusal = text(&Frame::Error(ErrorReply::new(error, None).about(chat)));
            let _ = self.sink.send(refusal).await;
        }
    }

    /// Answers what woke the socket; `Break` ends it, with the close frame to send if any.
    async fn react(&mut self, woke: Woke) -> ControlFlow<Option<Message>> {
        let gone = ControlFlow::Break(None);
        match woke {
            Woke::Send(SendEvent::Answered(done)) => {
                if Box::pin(self.session.finish_send(&mut self.sink, *done)).await.is_err() {
                    return gone;
                }
            }
            Woke::Send(SendEvent::Room(permit)) => self.session.sends.queue_blocked(permit),
            Woke::Inbound(Inbound::Closed(close)) => return ControlFlow::Break(close),
            Woke::Inbound(Inbound::PeerClosed) => {
                session::answer_close(&mut self.sink).await;
                return gone;
            }
            Woke::Inbound(Inbound::Nothing) => {}
            Woke::Inbound(Inbound::Refused { code, detail }) => {
                let refusal = text(&Frame::Error(ErrorReply::new(ErrorBody::new(code, detail), None)));
                if self.sink.send(refusal).await.is_err() {
                    return gone;
                }
            }
            // v2 sockets have no gate limits: nothing is large.
            Woke::Inbound(Inbound::Text { text, .. }) => {
                if Box::pin(self.session.handle(&mut self.sink, &text)).await.is_err() {
                    return gone;
                }
                if let Some(at) = self.session.renewed.take() {
                    self.keepalive.expires_at = Some(at);
                }
            }
            // A peer that does not read blocks the write once the kernel's buffers are full;
            // the kick must still end it, so race the two.
            Woke::Delivery(delivery) => tokio::select! {
                forwarded = Box::pin(self.session.forward(&mut self.sink, delivery, &mut self.deliveries)) => {
                    if forwarded.is_err() {
                        return gone;
                    }
                }
                reason = self.kicked.notified() => return ControlFlow::Break(Some(session::kick_close(reason))),
            },
            Woke::Keepalive(Ok(ping)) => {
                if self.sink.send(ping).await.is_err() {
                    return gone;
                }
            }
            Woke::Keepalive(Err(dead)) => return ControlFlow::Break(Some(dead)),
        }
        ControlFlow::Continue(())
    }

    /// Ends the session: pending sends answered if the server is restarting, the close
    /// handshake, then the socket leaves the hub and its user's presence.
    async fn finish(self, close: Option<Message>) {
        let Served {
            mut sink,
            mut stream,
            mut session,
            closing,
            ..
        } = self;
        if closing.is_cancelled() {
            // Every send already read is answered (ack or error) before the close frame.
            while let Some(done) = session.sends.next_answer().await {
                if session.finish_send(&mut sink, done).await.is_err() {
                    break;
                }
            }
        }
        if let Some(close) = close {
            session::close_handshake(&mut sink, &mut stream, close).await;
        }
        let Session {
            connection, rt, user, ..
        } = session;
        drop(connection);
        presence::disconnected(&rt, user).await;
    }
}

/// Runs a `/ws/` socket opened without a token (so that none travels in a URL): its first
/// frame must be `auth` with an access token, within [`AUTH_WAIT`]; otherwise an error frame
/// and close 4401.
pub(crate) async fn run_authenticating(socket: Socket, rt: Realtime) {
    // The first frame is awaited in a box of its own, so that the session after it keeps only
    // its own (small) future in the task.
    if let Some((socket, user, expires_at)) = Box::pin(authenticate_first(socket, rt.clone())).await {
        // Boxed too: this task would otherwise keep room for the auth phase's upvars and
        // the session's future side by side.
        Box::pin(run(socket, rt, user, expires_at, None)).await;
    }
}

/// The `auth` phase of a tokenless `/ws/` socket: the socket and its user when it passed.
async fn authenticate_first(mut socket: Socket, rt: Realtime) -> Option<(Socket, UserId, i64)> {
    let outcome = match tokio::time::timeout(AUTH_WAIT, Box::pin(first_auth(&mut socket.ws, &rt))).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Some((
            ErrorBody::new("auth_required", "Send an auth frame first."),
            None,
        ))),
    };
    let over_cap = match &outcome {
        Ok((user, _, _)) => rt.socket_cap_reached(*user).await,
        Err(_) => false,
    };
    match outcome {
        Ok((_, _, reference)) if over_cap => {
            let refusal = text(&Frame::Error(ErrorReply::new(
                ErrorBody::new("too_many_sockets", "You have too many sockets open."),
                reference,
            )));
            let (mut sink, mut stream) = socket.ws.split();
            if sink.send(refusal).await.is_ok() {
                let close = session::close_message(session::close::POLICY, "too many sockets");
                session::close_handshake(&mut sink, &mut stream, close).await;
            }
        }
        Ok((user, expires_at, reference)) => {
            metrics::counter!("causerie_ws_auth_frames_total", "outcome" => "accepted").increment(1);
            if socket
                .ws
                .send(text(&Frame::Authenticated(authenticated(user, expires_at, reference))))
                .await
                .is_ok()
            {
                return Some((socket, user, expires_at));
            }
        }
        Err(Some((error, reference))) => {
            metrics::counter!("causerie_ws_auth_frames_total", "outcome" => "refused").increment(1);
            let refusal = text(&Frame::Error(ErrorReply::new(error, reference)));
            let (mut sink, mut stream) = socket.ws.split();
            if sink.send(refusal).await.is_ok() {
                let close = session::close_message(session::close::UNAUTHORIZED, "authentication failed");
                session::close_handshake(&mut sink, &mut stream, close).await;
            }
        }
        Err(None) => {}
    }
    None
}

/// Reads the first frame of a tokenless `/ws/` socket as `auth` and checks its token as a
/// handshake would (`ws_token_grace_secs` applies). `Err(None)`: the peer left.
async fn first_auth(
    socket: &mut SocketStream,
    rt: &Realtime,
) -> Result<(UserId, i64, Option<Value>), Option<(ErrorBody, Option<Value>)>> {
    loop {
        let frame = match socket.next().await {
            None | Some(Err(_)) => return Err(None),
            Some(Ok(frame)) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => {
                session::answer_close(socket).await;
                return Err(None);
            }
            Message::Binary(_) => {
                return Err(Some((
                    ErrorBody::new("invalid_frame", "Binary frames are not supported; send JSON text."),
                    None,
                )))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        let ClientFrame { command, reference } = ClientFrame::parse(&text, rt.chats().max_extra_bytes())
            .map_err(|Refused { error, reference }| Some((error, reference)))?;
        let Command::Auth(Authenticate { token }) = command else {
            return Err(Some((
                ErrorBody::new(
                    "auth_required",
                    "The first frame of a socket opened without a token must be auth.",
                ),
                reference,
            )));
        };
        return match rt
            .accounts()
            .authenticate_access_within(&token, rt.settings().token_grace_secs)
            .await
        {
            Ok((user, expires_at)) => Ok((user.id, expires_at, reference)),
            Err(err) => Err(Some((auth_refusal(err), reference))),
        };
    }
}

/// The error frame for a token refused in an `auth` frame.
fn auth_refusal(err: AccountError) -> ErrorBody {
    match err {
        AccountError::UserInactive => ErrorBody::new("inactive_user", "The user is deactivated."),
        AccountError::UserNotFound => ErrorBody::new("unknown_user", "The token's user no longer exists."),
        AccountError::Unavailable | AccountError::Store(_) => {
            ErrorBody::new("unavailable", "Storage is unavailable; retry.")
        }
        _ => ErrorBody::new("invalid_token", "The token is invalid or expired."),
    }
}

fn authenticated(user: UserId, expires_at: i64, reference: Option<Value>) -> Authenticated {
    use chrono::TimeZone;
    Authenticated {
        user,
        expires_at: chrono::Utc
            .timestamp_opt(expires_at, 0)
            .single()
            .unwrap_or_else(chrono::Utc::now),
        reference,
    }
}

/// A frame's WebSocket message. Sessions turn a frame into its text before they await the
/// write, so that the frame (and the message object it may borrow) is not kept in the
/// session's future: every socket's task is as large as its largest state, idle or not.
fn text<M: Serialize>(frame: &ServerFrame<M>) -> Message {
    Message::Text(wire::to_text(frame).into())
}

/// Writes one frame; `Err` carries nothing useful but means the socket is gone.
async fn write<M: Serialize>(sink: &mut Sink, frame: &ServerFrame<M>) -> Result<(), tungstenite::Error> {
    let message = text(frame);
    sink.send(message).await
}

/// Answers a refused text frame with its error, counted by code.
async fn refuse(sink: &mut Sink, error: ErrorBody, reference: Option<Value>) -> Result<(), tungstenite::Error> {
    metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code.clone()).increment(1);
    write(sink, &Frame::Error(ErrorReply::new(error, reference))).await
}

impl Session {
    fn chats(&self) -> &Chats {
        self.rt.chats()
    }

    /// Handles one inbound frame; `Err` only when the socket is gone.
    async fn handle(&mut self, sink: &mut Sink, text: &str) -> Result<(), ()> {
        let ClientFrame { command, reference } = match ClientFrame::parse(text, self.chats().max_extra_bytes()) {
            Ok(frame) => frame,
            Err(Refused { error, reference }) => return refuse(sink, error, reference).await.map_err(|_| ()),
        };
        match self.apply(sink, command, reference.as_ref()).await {
            Ok(()) => Ok(()),
            Err(error) => refuse(sink, error, reference).await.map_err(|_| ()),
        }
    }

    /// Carries out one command; `Err` is the refusal to answer it with.
    async fn apply(&mut self, sink: &mut Sink, command: Command, reference: Option<&Value>) -> Result<(), ErrorBody> {
        match command {
            Command::Send(send) => self.send(send, reference).await,
            Command::Subscribe(subscribe) => {
                let mut budget = follow::REPLAY_LIMIT;
                self.subscribe(sink, subscribe.chat, subscribe.after_seq, reference, &mut budget)
                    .await
            }
            Command::Resume(resume) => {
                self.resume(sink, resume, reference).await;
                Ok(())
            }
            Command::Unsubscribe(unsubscribe) => {
                self.unsubscribe(sink, unsubscribe.chat, reference).await;
                Ok(())
            }
            Command::Read(read) => self.read(read).await,
            Command::Typing(typing) => self.typing(typing.chat).await,
            Command::Edit(edit) => self.edit(edit).await,
            Command::Delete(delete) => self.delete(delete.id).await,
            Command::AddMember(change) => self.add_member(change).await,
            Command::RemoveMember(change) => self.remove_member(change).await,
            Command::Auth(Authenticate { token }) => {
                // A fresh access token of the same user: the socket lives on until it expires.
                // No grace here: that is for handshakes only.
                let (row, expires_at) = self
                    .rt
                    .accounts()
                    .authenticate_access_within(&token, 0)
                    .await
                    .map_err(auth_refusal)?;
                if row.id != self.user {
                    return Err(ErrorBody::new(
                        "wrong_user",
                        "The token is another user's; open a socket of its own.",
                    ));
                }
                metrics::counter!("causerie_ws_auth_frames_total", "outcome" => "renewed").increment(1);
                self.renewed = Some(expires_at);
                let frame = Frame::Authenticated(authenticated(self.user, expires_at, reference.cloned()));
                reply(sink, &frame).await;
                Ok(())
            }
            Command::Mute(mute) => {
                let muted = self.mute(mute.chat, mute.muted).await?;
                let muted = Muted {
                    reference: reference.cloned(),
                    ..muted
                };
                reply(sink, &Frame::Muted(muted)).await;
                Ok(())
            }
            Command::Ping => {
                let pong = Frame::Pong(Pong {
                    reference: reference.cloned(),
                });
                reply(sink, &pong).await;
                Ok(())
            }
        }
    }
}

/// Writes a reply. A failed write means the peer left; the loop notices on its next read.
async fn reply<M: Serialize>(sink: &mut Sink, frame: &ServerFrame<M>) {
    let _ = write(sink, frame).await;
}
