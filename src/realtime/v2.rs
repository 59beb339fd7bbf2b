//! The `causerie.v2` session: acknowledged, idempotent sends; per-chat ordered, gap-free and
//! duplicate-free message streams with `resume`; receipts, typing, presence, edits, deletes and
//! group membership. Every frame and error code is described in docs/protocol.md.
//!
//! Gap-free delivery rests on one rule: for each chat a socket follows, it remembers the last
//! sequence it sent. A live message at or below it is a duplicate and is skipped; one beyond
//! the next expected sequence means an earlier message is still in flight (another instance,
//! another commit), so the missing ones are read from storage first. Storage commits sequences
//! in order, so whatever is missing is already there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesOrdered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::event::{Delivery, Event, Format};
use super::hub::Connection;
use super::presence;
use super::protocol::{self, ErrorFrame};
use super::session::{self, Inbound, OpenGauge};
use super::Realtime;
use crate::chats::events::ChatEvent;
use crate::chats::view::MessageView;
use crate::chats::writer::WriterPermit;
use crate::chats::{ChatError, ChatResult, Chats, Draft, MessageChange, Submitted, CLIENT_ID_MAX};
use crate::http::Fields;
use crate::ids::{ChatId, MessageId, UserId};
use crate::store::messages::{NewMessage, Stored};

type Sink = SplitSink<WebSocket, Message>;

/// Messages replayed per storage read while catching a socket up.
const REPLAY_PAGE: i64 = 500;
/// Shortest interval between two typing events from one socket for one chat.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

struct Session {
    rt: Realtime,
    user: UserId,
    connection: Connection,
    /// Last sequence sent, per followed chat.
    sent_seq: HashMap<ChatId, i64>,
    last_typing: HashMap<ChatId, Instant>,
    /// Sends queued for storage, answered in the order they were made.
    pending: FuturesOrdered<Pin<Box<dyn Future<Output = (PendingAck, ChatResult<Stored>)> + Send + Sync>>>,
    /// (chat, clientId) of those sends, oldest first.
    in_flight: std::collections::VecDeque<(ChatId, String)>,
    /// A send that found the storage queue full. Meanwhile the socket reads nothing new (so
    /// its sends keep their order) but keeps delivering.
    blocked: Option<BlockedSend>,
}

/// A send waiting for room in the storage queue.
struct BlockedSend {
    message: NewMessage,
    ack: PendingAck,
    room: Pin<Box<dyn Future<Output = Result<WriterPermit, ChatError>> + Send + Sync>>,
}

/// What an `ack` (or its error) must say about the send it answers.
struct PendingAck {
    client_id: String,
    chat: ChatId,
    reference: Option<Value>,
}

/// Sends one socket may have waiting for their commit before it stops reading new ones.
const MAX_SENDS_IN_FLIGHT: usize = 256;

/// Runs a v2 socket. `initial` is the chat of a `/ws/chat/{id}/` URL, followed from `after`
/// (or from now).
pub(crate) async fn run(socket: WebSocket, rt: Realtime, user: UserId, initial: Option<(ChatId, Option<i64>)>) {
    let _gauge = OpenGauge::new();
    let (connection, mut rx) = rt.hub().connect(user, rt.settings().send_queue);
    // Work that only happens now and then is boxed, so the future an idle socket's task keeps
    // stays small (an idle connection should cost a few KiB).
    Box::pin(presence::connected(&rt, user)).await;
    let kicked = connection.kicked();
    let limiter = session::frame_limiter(&rt);
    let mut keepalive = session::Keepalive::new(&rt);
    let closing = rt.closing().clone();
    let (mut sink, mut stream) = socket.split();
    let mut session = Session {
        rt: rt.clone(),
        user,
        connection,
        sent_seq: HashMap::new(),
        last_typing: HashMap::new(),
        pending: FuturesOrdered::new(),
        in_flight: Default::default(),
        blocked: None,
    };

    if let Some((chat, after)) = initial {
        if let Err(error) = Box::pin(session.subscribe(&mut sink, chat, after, None)).await {
            // As for `resume`, the error names the chat it is about.
            let frame = json!({ "type": "error", "code": error.code, "detail": error.detail, "chat": chat });
            let _ = send_json(&mut sink, frame).await;
        }
    }
    let close = loop {
        tokio::select! {
            // Acks before deliveries: a sender hears "stored" before its message's echo.
            biased;
            Some(done) = session.pending.next(), if !session.pending.is_empty() => {
                if session.finish_send(&mut sink, done).await.is_err() { break None }
            }
            permit = wait_for_room(&mut session.blocked), if session.blocked.is_some() => {
                session.queue_blocked_send(permit);
            }
            // A socket with too many sends waiting for their commit, or one waiting for room
            // to queue its last send, reads nothing more until that clears: back-pressure
            // through TCP, while deliveries and acks keep flowing.
            inbound = stream.next(), if session.blocked.is_none() && session.pending.len() < MAX_SENDS_IN_FLIGHT => match session::read_inbound(inbound, &limiter, &mut keepalive.last_heard) {
                Inbound::Closed(close) => break close,
                Inbound::Nothing => continue,
                Inbound::Refused(error) => if send_error(&mut sink, &error, None).await.is_err() { break None },
                Inbound::Text(text) => if Box::pin(session.handle(&mut sink, &text)).await.is_err() { break None },
            },
            queued = rx.recv() => match queued {
                // A peer that does not read blocks the write once the kernel's buffers are full;
                // the kick must still end it, so race the two.
                Some(delivery) => tokio::select! {
                    forwarded = Box::pin(session.forward(&mut sink, delivery, &mut rx)) => if forwarded.is_err() { break None },
                    reason = kicked.notified() => break Some(session::kick_close(reason)),
                },
                None => break None,
            },
            reason = kicked.notified() => break Some(session::kick_close(reason)),
            due = keepalive.due() => match due {
                Ok(ping) => if sink.send(ping).await.is_err() { break None },
                Err(dead) => break Some(dead),
            },
            _ = closing.cancelled() => break Some(session::restarting()),
        }
    };
    if closing.is_cancelled() {
        // Every send already read is answered (ack or error) before the close frame.
        while let Some(done) = session.pending.next().await {
            if session.finish_send(&mut sink, done).await.is_err() {
                break;
            }
        }
    }
    if let Some(close) = close {
        session::close_handshake(&mut sink, &mut stream, close).await;
    }
    let Session { connection, .. } = session;
    drop(connection);
    Box::pin(presence::disconnected(&rt, user)).await;
}

async fn wait_for_room(blocked: &mut Option<BlockedSend>) -> Result<WriterPermit, ChatError> {
    match blocked {
        Some(blocked) => blocked.room.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Sends an error frame; `Err` carries nothing useful but means the socket is gone.
async fn send_error(sink: &mut Sink, error: &ErrorFrame, reference: Option<&Value>) -> Result<(), axum::Error> {
    let mut frame = json!({ "type": "error", "code": error.code, "detail": error.detail });
    if let Some(reference) = reference {
        frame["ref"] = reference.clone();
    }
    send_json(sink, frame).await
}

async fn send_json(sink: &mut Sink, frame: Value) -> Result<(), axum::Error> {
    sink.send(Message::Text(frame.to_string().into())).await
}

fn required_id<T: std::str::FromStr>(map: &Map<String, Value>, field: &'static str) -> Result<T, ErrorFrame> {
    match map.get(field) {
        None | Some(Value::Null) => Err(ErrorFrame::new("missing_field", format!("\"{field}\" is required."))),
        Some(v) => v
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ErrorFrame::new("invalid_field", format!("\"{field}\" must be a uuid."))),
    }
}

fn optional_seq(map: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, ErrorFrame> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ErrorFrame::new("invalid_field", format!("\"{field}\" must be an integer."))),
    }
}

impl Session {
    fn chats(&self) -> &Chats {
        self.rt.chats()
    }

    /// Handles one inbound frame; `Err` only when the socket is gone.
    async fn handle(&mut self, sink: &mut Sink, text: &str) -> Result<(), ()> {
        let map = match protocol::parse_object(text) {
            Ok(map) => map,
            Err(error) => return send_error(sink, &error, None).await.map_err(|_| ()),
        };
        let reference = map.get("ref").cloned();
        let outcome = self.dispatch(sink, &map, reference.as_ref()).await;
        match outcome {
            Ok(()) => Ok(()),
            Err(error) => {
                metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code).increment(1);
                send_error(sink, &error, reference.as_ref()).await.map_err(|_| ())
            }
        }
    }

    async fn dispatch(
        &mut self,
        sink: &mut Sink,
        map: &Map<String, Value>,
        reference: Option<&Value>,
    ) -> Result<(), ErrorFrame> {
        let kind = match map.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return Err(ErrorFrame::new("invalid_frame", "\"type\" must be a string.")),
        };
        match kind {
            "send" => self.send_message(map, reference).await,
            "subscribe" => {
                let chat = required_id(map, "chat")?;
                let after = optional_seq(map, "afterSeq")?;
                self.subscribe(sink, chat, after, reference).await
            }
            "resume" => self.resume(sink, map, reference).await,
            "unsubscribe" => {
                let chat = required_id(map, "chat")?;
                self.connection.leave(chat);
                self.sent_seq.remove(&chat);
                self.reply(sink, json!({ "type": "unsubscribed", "chat": chat }), reference)
                    .await
            }
            "read" => self.read(map).await,
            "typing" => self.typing(map).await,
            "edit" => {
                let id = required_id(map, "id")?;
                if map.get("message").is_none_or(Value::is_null) {
                    return Err(ErrorFrame::new("missing_field", "\"message\" is required."));
                }
                let mut f = Fields::new(map);
                let text = f.optional_raw_str("message", usize::MAX).unwrap_or_default();
                f.finish()
                    .map_err(|e| ErrorFrame::new("invalid_frame", protocol::field_errors_text(e)))?;
                // The same rules, and codes, as a new text message.
                let draft = Draft {
                    text,
                    ..Draft::default()
                };
                draft
                    .check(self.chats().max_extra_bytes())
                    .map_err(|r| ErrorFrame::new(r.code, r.detail))?;
                let change = MessageChange {
                    text: Some(draft.text),
                    is_read: None,
                };
                self.chats().change_message(self.user, id, change).await?;
                Ok(())
            }
            "delete" => {
                let id = required_id(map, "id")?;
                Ok(self.chats().delete_message(self.user, id).await?)
            }
            "add_member" | "remove_member" => {
                let chat = required_id(map, "chat")?;
                let member = required_id(map, "user")?;
                let result = if kind == "add_member" {
                    self.chats()
                        .add_member(self.user, chat, member, false)
                        .await
                        .map(|_| ())
                } else {
                    self.chats().remove_member(self.user, chat, member).await
                };
                Ok(result?)
            }
            "ping" => self.reply(sink, json!({ "type": "pong" }), reference).await,
            "" => Err(ErrorFrame::new("missing_field", "\"type\" is required.")),
            _ => Err(ErrorFrame::new(
                "unknown_type",
                format!("Unknown frame type \"{kind}\"."),
            )),
        }
    }

    async fn reply(&self, sink: &mut Sink, mut frame: Value, reference: Option<&Value>) -> Result<(), ErrorFrame> {
        if let Some(reference) = reference {
            frame["ref"] = reference.clone();
        }
        // A failed write means the peer left; the loop notices on its next read.
        let _ = send_json(sink, frame).await;
        Ok(())
    }

    async fn send_message(&mut self, map: &Map<String, Value>, reference: Option<&Value>) -> Result<(), ErrorFrame> {
        let chat = required_id(map, "chat")?;
        let client_id = match map.get("clientId") {
            None | Some(Value::Null) => return Err(ErrorFrame::new("missing_field", "\"clientId\" is required.")),
            Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= CLIENT_ID_MAX => id.clone(),
            Some(_) => {
                return Err(ErrorFrame::new(
                    "invalid_client_id",
                    format!("\"clientId\" must be a string of 1 to {CLIENT_ID_MAX} characters."),
                ))
            }
        };
        if !map.contains_key("message") {
            return Err(ErrorFrame::new("missing_message", "\"message\" is required."));
        }
        // The message's own type travels as "messageType" (the frame's "type" is "send").
        let mut fields = map.clone();
        fields.remove("type");
        if let Some(kind) = map.get("messageType") {
            fields.insert("type".into(), kind.clone());
        }
        let mut f = Fields::new(&fields);
        let mut draft = Draft::read(&mut f, self.chats().max_extra_bytes());
        f.finish()
            .map_err(|e| ErrorFrame::new("invalid_frame", protocol::field_errors_text(e)))?;
        draft.client_id = Some(client_id.clone());
        draft
            .check(self.chats().max_extra_bytes())
            .map_err(|r| ErrorFrame::new(r.code, r.detail))?;
        if !self.connection.has_joined(chat) {
            self.chats().chat_for_member(chat, self.user).await?;
        }
        let submitted = self.chats().try_submit(self.user, chat, draft)?;
        self.in_flight.push_back((chat, client_id.clone()));
        let ack = PendingAck {
            client_id,
            chat,
            reference: reference.cloned(),
        };
        match submitted {
            Submitted::Queued(committed) => self.pending.push_back(Box::pin(async move { (ack, committed.await) })),
            Submitted::QueueFull(message) => {
                let room = Box::pin(self.chats().storage_room());
                self.blocked = Some(BlockedSend { message, ack, room });
            }
        }
        Ok(())
    }

    /// Queues the send that found the storage queue full, now that there is room (or answers
    /// it with an error, in its turn, if storage stopped).
    fn queue_blocked_send(&mut self, permit: Result<WriterPermit, ChatError>) {
        let Some(BlockedSend { message, ack, .. }) = self.blocked.take() else {
            return;
        };
        match permit {
            Ok(permit) => {
                let committed = Chats::submit_with(permit, message);
                self.pending.push_back(Box::pin(async move { (ack, committed.await) }));
            }
            Err(_) => self
                .pending
                .push_back(Box::pin(async move { (ack, Err(ChatError::Unavailable)) })),
        }
    }

    /// Answers a send once its commit is known: `ack`, or an error frame naming its clientId.
    async fn finish_send(
        &mut self,
        sink: &mut Sink,
        (ack, result): (PendingAck, ChatResult<Stored>),
    ) -> Result<(), ()> {
        self.in_flight.pop_front();
        let mut frame = match result {
            Ok(stored) => json!({
                "type": "ack",
                "clientId": ack.client_id,
                "chat": ack.chat,
                "duplicate": !stored.created,
                "message": MessageView::full(&stored.row),
            }),
            Err(err) => {
                let error = ErrorFrame::from(err);
                metrics::counter!("causerie_ws_frames_refused_total", "code" => error.code).increment(1);
                json!({ "type": "error", "code": error.code, "detail": error.detail, "clientId": ack.client_id, "chat": ack.chat })
            }
        };
        if let Some(reference) = ack.reference {
            frame["ref"] = reference;
        }
        send_json(sink, frame).await.map_err(|_| ())
    }

    /// Follows `chat` from `after` (replaying what is stored beyond it) or from now.
    async fn subscribe(
        &mut self,
        sink: &mut Sink,
        chat: ChatId,
        after: Option<i64>,
        reference: Option<&Value>,
    ) -> Result<(), ErrorFrame> {
        let row = self.chats().chat_for_member(chat, self.user).await?;
        if let Some(after) = after {
            if after < 0 || after > row.last_seq {
                return Err(ErrorFrame::new(
                    "invalid_seq",
                    format!(
                        "afterSeq {after} does not exist in this chat (last is {}).",
                        row.last_seq
                    ),
                ));
            }
        }
        // Join first: whatever commits from here on is queued for this socket, and the replay
        // below covers what committed before, so the two overlap rather than leave a gap.
        self.connection.join(chat);
        let start = match after {
            Some(after) => after,
            None => self.chats().last_seq(chat).await?,
        };
        self.sent_seq.insert(chat, start);
        self.catch_up(sink, chat, i64::MAX).await?;
        let last = self.sent_seq.get(&chat).copied().unwrap_or(start);
        self.reply(
            sink,
            json!({ "type": "subscribed", "chat": chat, "lastSeq": last }),
            reference,
        )
        .await
    }

    /// `{"type":"resume","chats":{"<chat id>": lastSeq, …}}` or `{"type":"resume","chat","lastSeq"}`.
    async fn resume(
        &mut self,
        sink: &mut Sink,
        map: &Map<String, Value>,
        reference: Option<&Value>,
    ) -> Result<(), ErrorFrame> {
        let mut wanted: Vec<(ChatId, i64)> = Vec::new();
        if let Some(Value::Object(chats)) = map.get("chats") {
            for (chat, seq) in chats {
                let chat: ChatId = chat
                    .parse()
                    .map_err(|_| ErrorFrame::new("invalid_field", "chat ids must be uuids."))?;
                let seq = seq
                    .as_i64()
                    .ok_or_else(|| ErrorFrame::new("invalid_field", "sequences must be integers."))?;
                wanted.push((chat, seq));
            }
        } else {
            let chat = required_id(map, "chat")?;
            let seq = optional_seq(map, "lastSeq")?
                .ok_or_else(|| ErrorFrame::new("missing_field", "\"lastSeq\" is required."))?;
            wanted.push((chat, seq));
        }
        if wanted.is_empty() || wanted.len() > 1000 {
            return Err(ErrorFrame::new("invalid_field", "resume needs 1 to 1000 chats."));
        }
        for (chat, seq) in wanted {
            if let Err(error) = self.subscribe(sink, chat, Some(seq), reference).await {
                // One bad entry does not stop the others; it is reported with its chat.
                let mut frame = json!({ "type": "error", "code": error.code, "detail": error.detail, "chat": chat });
                if let Some(reference) = reference {
                    frame["ref"] = reference.clone();
                }
                let _ = send_json(sink, frame).await;
            }
        }
        Ok(())
    }

    /// Sends stored messages of `chat` after the last one sent, up to (not including) `before`.
    async fn catch_up(&mut self, sink: &mut Sink, chat: ChatId, before: i64) -> Result<(), ErrorFrame> {
        loop {
            let from = self.sent_seq.get(&chat).copied().unwrap_or(0);
            if from + 1 >= before {
                return Ok(());
            }
            let limit = REPLAY_PAGE.min(before.saturating_sub(from + 1));
            let rows = self.chats().since(chat, from, limit).await?;
            let count = rows.len() as i64;
            for row in rows {
                let event = Event::Chat {
                    event: ChatEvent::Message {
                        message: MessageView::full(&row),
                    },
                };
                let Some(frame) = protocol::v2_frame(&event) else {
                    continue;
                };
                self.sent_seq.insert(chat, row.seq);
                if send_json(sink, frame).await.is_err() {
                    return Ok(());
                }
            }
            if count < limit {
                return Ok(());
            }
        }
    }

    /// Forwards queued deliveries (several per flush), keeping each chat's stream gap-free.
    async fn forward(
        &mut self,
        sink: &mut Sink,
        first: Arc<Delivery>,
        rx: &mut mpsc::Receiver<Arc<Delivery>>,
    ) -> Result<(), ()> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(delivery) = next.take() {
            if let Event::Resync { chat } = delivery.event {
                if self.sent_seq.contains_key(&chat) {
                    sink.flush().await.map_err(|_| ())?;
                    self.catch_up(sink, chat, i64::MAX).await.map_err(|_| ())?;
                }
                next = rx.try_recv().ok();
                continue;
            }
            if let Some(message) = delivery.event.new_message() {
                // Our own message's echo: its ack goes first (the commit is known by now, since
                // storage answers senders before it publishes).
                if message.author == Some(self.user) {
                    if let Some(client_id) = &message.client_id {
                        let key = (message.ref_chat, client_id.clone());
                        if self.in_flight.contains(&key) {
                            while let Some(done) = self.pending.next().await {
                                let answered = (done.0.chat, done.0.client_id.clone()) == key;
                                self.finish_send(sink, done).await?;
                                if answered {
                                    break;
                                }
                            }
                        }
                    }
                }
                let chat = message.ref_chat;
                let seq = message.seq.unwrap_or(0);
                let Some(&sent) = self.sent_seq.get(&chat) else {
                    next = rx.try_recv().ok();
                    continue;
                };
                if seq <= sent {
                    next = rx.try_recv().ok();
                    continue;
                }
                if seq > sent + 1 {
                    sink.flush().await.map_err(|_| ())?;
                    if self.catch_up(sink, chat, seq).await.is_err() {
                        return Err(());
                    }
                }
                self.sent_seq.insert(chat, seq);
            }
            if let Some(frame) = delivery.frame(Format::V2) {
                sink.feed(Message::Text(frame)).await.map_err(|_| ())?;
                written += 1;
            }
            if written < 64 {
                next = rx.try_recv().ok();
            }
        }
        sink.flush().await.map_err(|_| ())
    }

    async fn read(&mut self, map: &Map<String, Value>) -> Result<(), ErrorFrame> {
        let chat = required_id(map, "chat")?;
        let seq = match (optional_seq(map, "seq")?, map.get("messageId")) {
            (Some(seq), _) => seq,
            (None, Some(_)) => {
                let id: MessageId = required_id(map, "messageId")?;
                let message = self.chats().message_for_member(id, self.user).await?;
                if message.chat_id != chat {
                    return Err(ErrorFrame::new("wrong_chat", "That message belongs to another chat."));
                }
                message.seq
            }
            (None, None) => {
                return Err(ErrorFrame::new(
                    "missing_field",
                    "\"seq\" or \"messageId\" is required.",
                ))
            }
        };
        self.chats().read_upto(self.user, chat, seq).await?;
        Ok(())
    }

    async fn typing(&mut self, map: &Map<String, Value>) -> Result<(), ErrorFrame> {
        let chat = required_id(map, "chat")?;
        if !self.connection.has_joined(chat) {
            self.chats().chat_for_member(chat, self.user).await?;
        }
        let now = Instant::now();
        if self
            .last_typing
            .get(&chat)
            .is_some_and(|at| now.duration_since(*at) < TYPING_INTERVAL)
        {
            return Err(ErrorFrame::new(
                "typing_rate_limited",
                "At most one typing event every 2 seconds per chat.",
            ));
        }
        self.last_typing.insert(chat, now);
        self.rt.fanout().to_chat(Event::Typing { chat, user: self.user });
        Ok(())
    }
}
