//! How users look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::ids::UserId;
use crate::store::users::UserRow;

/// The short form of a user inside chats and search results.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserBrief {
    pub id: UserId,
    pub first_name: String,
    pub last_name: String,
    pub online: bool,
}

impl UserBrief {
    pub(crate) fn of(user: &UserRow) -> UserBrief {
        UserBrief {
            id: user.id,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            online: user.online,
        }
    }
}

pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn iso_opt(at: Option<DateTime<Utc>>) -> Value {
    at.map(|t| Value::String(iso(t))).unwrap_or(Value::Null)
}

/// djoser's `UserSerializer` / `UserCreateSerializer` output.
pub(crate) fn djoser(user: &UserRow) -> Value {
    json!({
        "email": user.email,
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
    })
}

/// The finished app's `/api/user/` record: everything but secrets and privileges.
pub(crate) fn profile(user: &UserRow) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "online": user.online,
        "lastConnexionDate": iso_opt(user.last_connexion_date),
        "avatar": user.avatar,
        "is_active": user.is_active,
        "date_joined": iso(user.date_joined),
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    })
}

/// The short form used inside chats and search results.
pub(crate) fn brief(user: &UserRow) -> Value {
    json!(UserBrief::of(user))
}
