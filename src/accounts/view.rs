//! How users look on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::store::users::UserRow;

pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn iso_opt(at: Option<DateTime<Utc>>) -> Value {
    at.map(|t| Value::String(iso(t))).unwrap_or(Value::Null)
}

/// djoser's `UserSerializer` / `UserCreateSerializer` output.
pub fn djoser(user: &UserRow) -> Value {
    json!({
        "email": user.email,
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
    })
}

/// The finished app's `/api/user/` record: everything but secrets and privileges.
pub fn profile(user: &UserRow) -> Value {
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
pub fn brief(user: &UserRow) -> Value {
    json!({
        "id": user.id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "online": user.online,
    })
}
