//! WebSocket handshakes. Every refusal is an immediate HTTP 403 before any upgrade: missing,
//! invalid, expired or refresh tokens, inactive users, unknown chats and non-members.

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::event::Format;
use super::{session, v2, Realtime};
use crate::accounts::AccountError;
use crate::chats::ChatError;
use crate::error::ApiError;
use crate::ids::ChatId;
use crate::store::users::UserRow;
use crate::wire::v2::SUBPROTOCOL as V2_PROTOCOL;
use crate::wire::HandshakeRefusal;

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

/// Bytes read from a socket at a time; allocated for every socket, so kept small (chat frames
/// are small; a larger frame just takes several reads).
const READ_BUFFER: usize = 2048;
/// Frames written before one flush are gathered up to this many bytes, so a burst to one socket
/// costs one syscall instead of one per frame. Allocated only once a socket writes.
const WRITE_COALESCE: usize = 16 * 1024;

/// Applies the buffer sizes that keep an idle socket to a few KiB.
fn tune(upgrade: WebSocketUpgrade, rt: &Realtime) -> WebSocketUpgrade {
    let limit = rt.settings().max_frame_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_COALESCE)
        .max_write_buffer_size(limit.max(64 * 1024))
        .max_message_size(limit)
        .max_frame_size(limit)
}

/// The user behind `?token=`, or the refusal to answer with (403 and its reason; 503 when the
/// database does not answer).
async fn authenticate_query(rt: &Realtime, query: &HashMap<String, String>) -> Result<UserRow, Response> {
    let Some(token) = query.get("token").filter(|t| !t.is_empty()) else {
        return Err(refuse("missing_token"));
    };
    rt.accounts().authenticate_access(token).await.map_err(|err| match err {
        AccountError::UserInactive => refuse("inactive_user"),
        AccountError::UserNotFound => refuse("unknown_user"),
        AccountError::Unavailable | AccountError::Store(_) => ApiError::from(err).into_response(),
        _ => refuse("invalid_token"),
    })
}

async fn chat_socket(
    State(rt): State<Realtime>,
    Path(chat_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let user = match authenticate_query(&rt, &query).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    let Ok(chat) = chat_id.parse::<ChatId>() else {
        return refuse("unknown_chat");
    };
    match rt.chats().exists(chat).await {
        Ok(true) => {}
        Ok(false) => return refuse("unknown_chat"),
        Err(err) => return unavailable(err),
    }
    match rt.chats().is_member(chat, user.id).await {
        Ok(true) => {}
        Ok(false) => return refuse("not_a_member"),
        Err(err) => return unavailable(err),
    }
    let upgrade = upgrade.protocols([V2_PROTOCOL]);
    if upgrade.selected_protocol().is_some() {
        let after = match query.get("afterSeq").map(|s| s.parse::<i64>()) {
            None => None,
            Some(Ok(seq)) => Some(seq),
            Some(Err(_)) => return ApiError::BadRequest("afterSeq must be an integer.".into()).into_response(),
        };
        metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v2").increment(1);
        let tracked = rt.clone();
        return tune(upgrade, &rt).on_upgrade(move |socket| {
            tracked
                .clone()
                .track(v2::run(socket, tracked, user.id, Some((chat, after))))
        });
    }
    let format = match query.get("format").map(String::as_str) {
        None | Some("text") => Format::V1Text,
        Some("object") => Format::V1Object,
        Some(_) => return ApiError::BadRequest("format must be text or object.".into()).into_response(),
    };
    metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v1").increment(1);
    let joined = session::join_v1(&rt, user.id, chat);
    let tracked = rt.clone();
    tune(upgrade, &rt).on_upgrade(move |socket| {
        tracked
            .clone()
            .track(session::run_v1(socket, tracked, chat, format, joined))
    })
}

/// `/ws/`: one v2 socket for all of a user's chats (subscribe per chat).
async fn user_socket(
    State(rt): State<Realtime>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let user = match authenticate_query(&rt, &query).await {
        Ok(user) => user,
        Err(refusal) => return refusal,
    };
    metrics::counter!("causerie_ws_handshakes_total", "protocol" => "v2").increment(1);
    let upgrade = upgrade.protocols([V2_PROTOCOL]);
    let tracked = rt.clone();
    tune(upgrade, &rt).on_upgrade(move |socket| tracked.clone().track(v2::run(socket, tracked, user.id, None)))
}

/// A storage failure during a handshake (503 when the database is away).
fn unavailable(err: ChatError) -> Response {
    ApiError::from(err).into_response()
}
