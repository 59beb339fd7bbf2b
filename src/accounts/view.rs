//! How users and tokens look on the wire.
//!
//! Each view's fields are declared in the order the Django serializer it stands for emits its
//! keys, since serde writes a struct's fields in declaration order:
//! - a DRF `ModelSerializer` without an explicit `fields` list emits the primary key, then its
//!   declared fields, then the model's other fields in declaration order, then forward relations
//!   (`ModelSerializer.get_default_field_names`); one with a `fields` tuple emits that tuple;
//! - the user model's fields are taken in the order contract section 1 lists them, and its
//!   `REQUIRED_FIELDS` are `first_name, last_name`: registration accepts and echoes the names,
//!   which djoser does only for `REQUIRED_FIELDS`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::email::Email;
use crate::http::micros;
use crate::ids::UserId;
use crate::store::users::UserRow;

/// djoser's `UserSerializer` (`/auth/users/me/`, `/auth/users/{id}/`, the list):
/// `tuple(User.REQUIRED_FIELDS) + (USER_ID_FIELD, LOGIN_FIELD)`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DjoserUser {
    pub first_name: String,
    pub last_name: String,
    pub id: UserId,
    #[schema(value_type = Email)]
    pub email: String,
}

impl DjoserUser {
    pub(crate) fn of(user: &UserRow) -> DjoserUser {
        DjoserUser {
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            id: user.id,
            email: user.email.clone(),
        }
    }
}

/// djoser's `UserCreateSerializer` (the 201 of `POST /auth/users/`):
/// `tuple(User.REQUIRED_FIELDS) + (LOGIN_FIELD, USER_ID_FIELD)` (its `password` is write-only).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedUser {
    pub first_name: String,
    pub last_name: String,
    #[schema(value_type = Email)]
    pub email: String,
    pub id: UserId,
}

impl CreatedUser {
    pub(crate) fn of(user: &UserRow) -> CreatedUser {
        CreatedUser {
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            email: user.email.clone(),
            id: user.id,
        }
    }
}

/// The finished app's `/api/user/` record: a model serializer of the user without its secrets
/// and privileges (`password`, `is_staff`, `is_superuser`, `last_login`), so the primary key and
/// then the model's fields in order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Profile {
    pub id: UserId,
    #[schema(value_type = Email)]
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    #[serde(with = "micros")]
    pub date_joined: DateTime<Utc>,
    #[serde(rename = "lastConnexionDate", with = "micros::option")]
    #[schema(required = true)]
    pub last_connexion_date: Option<DateTime<Utc>>,
    pub online: bool,
    /// The user's picture: a signed URL of an image they uploaded (usable as `<img src>` until
    /// it expires), or a URL kept from an import; null when there is none.
    #[schema(required = true)]
    pub avatar: Option<String>,
    #[serde(rename = "createdAt", with = "micros")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "updatedAt", with = "micros")]
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    /// `avatar` as it is shown (the chat service signs uploads' URLs).
    pub(crate) fn of(user: &UserRow, avatar: Option<String>) -> Profile {
        Profile {
            id: user.id,
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            is_active: user.is_active,
            date_joined: user.date_joined,
            last_connexion_date: user.last_connexion_date,
            online: user.online,
            avatar,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// The short form of a user inside chats and search results: exactly the series' four fields,
/// in its order (the contract's shape; apps written for Django compare it).
#[derive(Clone, Debug, Serialize, ToSchema)]
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

/// SimpleJWT's `TokenObtainPairSerializer`: it sets `refresh`, then `access`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenPair {
    pub refresh: String,
    pub access: String,
}

/// SimpleJWT's `TokenRefreshSerializer`: `access`, then (with rotation) the new `refresh`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Refreshed {
    pub access: String,
    /// A new refresh token, when rotation is on (the one sent is then spent).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub refresh: Option<String>,
}

/// SimpleJWT's empty answer (`{}`) to a valid token or a blacklisted one.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Empty {}
