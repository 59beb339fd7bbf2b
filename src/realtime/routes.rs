//! WebSocket handshakes. Every refusal is an immediate HTTP answer before any upgrade: 403 for
//! a browser origin that is not allowed, missing, invalid, expired or refresh tokens, inactive
//! users, unknown chats and non-members.
//!
//! The access token travels in `?token=`, or (kept out of URLs, and so out of proxy logs) in
//! `Sec-WebSocket-Protocol` as `causerie.token.<JWT>` beside the protocol the client speaks
//! (`causerie.v1` or `causerie.v2`, which is the one echoed), or, on `/ws/`, in a first `auth`
//! frame.

use std::collections::HashMap;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::event::Format;
use super::session::{self, Sender};
use super::upgrade::Upgrade;
use super::{v2, Realtime};
use crate::accounts::AccountError;
use crate::chats::ChatError;
use crate::error::ApiError;
use crate::ids::{ChatId, UserId};
use crate::wire::v2::SUBPROTOCOL as V2_PROTOCOL;
use crate::wire::HandshakeRefusal;
use tungstenite::protocol::WebSocketConfig;

/// The subprotocol a v1 client names beside a token carried in `Sec-WebSocket-Protocol` (a
/// browser requires the server to echo one of the protocols it offered; the token is never
/// echoed).
pub(crate) const V1_PROTOCOL: &str = "causerie.v1";
/// The prefix of the `Sec-WebSocket-Protocol` entry that carries the access token.
pub(crate) const TOKEN_PROTOCOL_PREFIX: &str = "causerie.token.";

pub(crate) fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Realtime: FromRef<S>,
{
    Router::new()
        .route("/ws/chat/{chat_id}/", get(chat_socket))
        .route("/ws/", get(user_socket))
}

fn refuse(reason: &'static str) -> Response {
    metrics::counter!("causerie_ws_handshakes_refused_total", "reason" => reason).increment(1);
    (StatusCode::FORBIDDEN, Json(HandshakeRefusal::new(reason))).into_response()
}

/// Bytes read from a socket at a time; allocated for every socket, idle or not, so kept small:
/// a chat frame is a few hundred bytes, so one read still takes one or more whole, and a larger
/// frame (a photo) reserves its own length once its header is read. 512 instead of 1,024 saved
/// ~0.5 KiB per idle socket and did not lower the stored msgs/s (docs/benchmarks.md).
const READ_BUFFER: usize = 512;
/// Frames written before one flush are gathered up to this many bytes, so a burst to one socket
/// costs one syscall instead of one per frame. Allocated only once a socket writes.
const WRITE_COALESCE: usize = 16 * 1024;

/// The buffer sizes that keep an idle socket to a few KiB.
fn config(rt: &Realtime) -> WebSocketConfig {
    let limit = rt.settings().max_frame_bytes;
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_COALESCE)
        .max_write_buffer_size(limit.max(64 * 1024))
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
}

/// A browser's handshake from an origin that may not open sockets (cross-site WebSocket
/// hijacking) is refused; clients that send no `Origin` (apps, scripts) are not browsers.
fn check_origin(rt: &Realtime, headers: &HeaderMap) -> Result<(), Response> {
    let (Some(allowed), Some(origin)) = (&rt.settings().allowed_origins, headers.get(header::ORIGIN)) else {
        return Ok(());
    };
    let origin = origin.as_bytes();
    if allowed
        .iter()
        .any(|o| o.trim_end_matches('/').as_bytes().eq_ignore_ascii_case(origin))
    {
        Ok(())
    } else {
        Err(refuse("origin_not_allowed"))
    }
}

/// The token of a handshake: `?token=`, else the `causerie.token.` subprotocol entry.
fn offered_token(query: &HashMap<String, String>, upgrade: &Upgrade) -> Option<String> {
    if let Some(token) = query.get("token").filter(|t| !t.is_empty()) {
        return Some(token.clone());
    }
    upgrade.requested_protocols().find_map(|p| {
        p.to_str()
            .ok()?
            .strip_prefix(TOKEN_PROTOCOL_PREFIX)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    })
}

/// True when the client carries its token in `Sec-WebSocket-Protocol`.
fn token_in_protocols(upgrade: &Upgrade) -> bool {
    upgrade
        .requested_protocols()
        .any(|p| p.as_bytes().starts_with(TOKEN_PROTOCOL_PREFIX.as_bytes()))
}

/// The user behind `token` and when the token expires (unix seconds), or the refusal to answer
/// with (403 and its reason; 503 when the database does not answer). The same verification as
/// every REST request, plus `ws_token_grace_secs`.
async fn authenticate(rt: &Realtime, token: &str) -> Result<(UserId, i64), Response> {
    match rt
        .accounts()
        .authenticate_access_within(token, rt.settings().token_grace_secs)
        .await
    {
        Ok((user, expires_at)) => Ok((user.id, expires_at)),
        Err(AccountError::UserInactive) => Err(refuse("inactive_user")),
        Err(AccountError::UserNotFound) => Err(refuse("unknown_user")),
        Err(err @ (AccountError::Unavailable | AccountError::Store(_))) => Err(ApiError::from(err).into_response()),
        Err(_) => Err(refuse("invalid_token")),
    }
}

/// 429 when `user` already holds `ws_max_sockets_per_user` sockets.
async fn check_socket_cap(rt: &Realtime, user: UserId) -> Result<(), Response> {
    if rt.socket_cap_reached(user).await {
        metrics::counter!("causerie_ws_handshakes_refused_total", "reason" => "too_many_sockets").increment(1);
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            Json(HandshakeRefusal::new("too_many_sockets")),
        )
            .into_response());
    }
    Ok(())
}

/// The chat of a per-chat URL, if it exists.
async fn existing_chat(rt: &Realtime, chat_id: &str) -> Result<ChatId, Response> {
    let Ok(chat) = chat_id.parse::<ChatId>() else {
        return Err(refuse("unknown_chat"));
    };
    match rt.chats().exists(chat).await {
        Ok(true) => Ok(chat),
        Ok(false) => Err(refuse("unknown_chat")),
        Err(err) => Err(unavailable(err)),
    }
}

fn no_protocol_beside_token() -> Response {
    ApiError::BadRequest(format!(
        "A token in Sec-WebSocket-Protocol needs {V1_PROTOCOL} or {V2_PROTOCOL} beside it."
    ))
    .into_response()
}

async fn chat_socket(
    State(rt): State<Realtime>,
    Path(chat_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Response {
    if let Err(refusal) = check_origin(&rt, &headers) {
        return refusal;
    }
    let upgrade = upgrade.protocols(&[V2_PROTOCOL, V1_PROTOCOL]);
    let v2 = upgrade.selected_protocol().is_some_and(|p| p == V2_PROTOCOL);
    if upgrade.selected_protocol().is_none() && token_in_protocols(&upgrade) {
        return no_protocol_beside_token();
    }
    let Some(token) = offered_token(&query, &upgrade) else {
        if !v2 && rt.settings().allow_anonymous_v1 {
            return anonymous_v1(rt, &chat_id, &query, upgrade).await;
        }
        return refuse("missing_token");
    };
    let (user, expires_at) = match authenticate(&rt, &token).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let chat = match existing_chat(&rt, &chat_id).await {
        Ok(chat) => chat,
        Err(refusal) => return refusal,
    };
    match rt.chats().is_member(chat, user).await {
        Ok(true) => {}
        Ok(false) => return refuse("not_a_member"),
        Err(err) => return unavailable(err),
    }
    if let Err(refusal) = check_socket_cap(&rt, user).await {
        return refusal;
    }
    if v2 {
        let after = match query.get("afterSeq").map(|s| s.parse::<i64>()) {
            None => None,
            Some(Ok(seq)) => Some(seq),
            Some(Err(_)) => return ApiError::BadRequest("afterSeq must be an integer.".into()).into_response(),
        };
        metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v2").increment(1);
        let tracked = rt.clone();
        return upgrade.accept(config(&rt), None, move |socket| {
            tracked
                .clone()
                .track(v2::run(socket, tracked, user, expires_at, Some((chat, after))))
        });
    }
    let format = match v1_format(&rt, &query) {
        Ok(format) => format,
        Err(refusal) => return refusal,
    };
    metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v1").increment(1);
    let joined = session::join_v1(&rt, user, chat);
    let tracked = rt.clone();
    upgrade.accept(config(&rt), Some(rt.gate_limits()), move |socket| {
        tracked.clone().track(session::run_v1(
            socket,
            tracked,
            chat,
            format,
            joined,
            Sender::User { expires_at },
        ))
    })
}

/// `?format=`, else the server's `ws_v1_format`.
fn v1_format(rt: &Realtime, query: &HashMap<String, String>) -> Result<Format, Response> {
    match query.get("format").map(String::as_str) {
        None => Ok(rt.settings().v1_format),
        Some("text") => Ok(Format::V1Text),
        Some("object") => Ok(Format::V1Object),
        Some(_) => Err(ApiError::BadRequest("format must be text or object.".into()).into_response()),
    }
}

/// A tokenless v1 socket (`ws_allow_anonymous_v1`): accepted on an existing chat; its frames
/// are checked one by one (each `author` must be a member).
async fn anonymous_v1(rt: Realtime, chat_id: &str, query: &HashMap<String, String>, upgrade: Upgrade) -> Response {
    let chat = match existing_chat(&rt, chat_id).await {
        Ok(chat) => chat,
        Err(refusal) => return refusal,
    };
    let format = match v1_format(&rt, query) {
        Ok(format) => format,
        Err(refusal) => return refusal,
    };
    metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v1").increment(1);
    metrics::counter!("causerie_ws_anonymous_sockets_total").increment(1);
    let joined = session::join_v1(&rt, session::ANONYMOUS, chat);
    let tracked = rt.clone();
    upgrade.accept(config(&rt), Some(rt.gate_limits()), move |socket| {
        tracked.clone().track(session::run_v1(
            socket,
            tracked,
            chat,
            format,
            joined,
            Sender::Anonymous,
        ))
    })
}

/// `/ws/`: one v2 socket for all of a user's chats (subscribe per chat). Without a token in
/// the handshake, the first frame must be `auth`.
async fn user_socket(
    State(rt): State<Realtime>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Response {
    if let Err(refusal) = check_origin(&rt, &headers) {
        return refusal;
    }
    let upgrade = upgrade.protocols(&[V2_PROTOCOL]);
    if upgrade.selected_protocol().is_none() && token_in_protocols(&upgrade) {
        return no_protocol_beside_token();
    }
    let token = offered_token(&query, &upgrade);
    metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v2").increment(1);
    let tracked = rt.clone();
    let Some(token) = token else {
        return upgrade.accept(config(&rt), None, move |socket| {
            tracked.clone().track(v2::run_authenticating(socket, tracked))
        });
    };
    let (user, expires_at) = match authenticate(&rt, &token).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = check_socket_cap(&rt, user).await {
        return refusal;
    }
    upgrade.accept(config(&rt), None, move |socket| {
        tracked.clone().track(v2::run(socket, tracked, user, expires_at, None))
    })
}

/// A storage failure during a handshake (503 when the database is away).
fn unavailable(err: ChatError) -> Response {
    ApiError::from(err).into_response()
}
