//! Ids that cross module boundaries, as types of their own: a function that takes a chat and
//! an author cannot be handed the two in the wrong order.
//!
//! Each is a uuid on the wire (a plain JSON string) and in storage (uuid on PostgreSQL, a
//! 16-byte blob on SQLite), exactly as the bare `Uuid` was.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id, ordered by creation time (uuid v7).
            pub fn new() -> $name {
                $name(Uuid::now_v7())
            }

            pub fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> $name {
                $name(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<$name, uuid::Error> {
                Uuid::parse_str(s).map($name)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

uuid_id!(
    /// A user (`users.id`, SimpleJWT's `user_id` claim).
    UserId
);
uuid_id!(
    /// A chat, two-person or group (`chats.id`, the app's `refChat`).
    ChatId
);
uuid_id!(
    /// A stored message (`messages.id`).
    MessageId
);
uuid_id!(
    /// An uploaded file (`attachments.id`).
    AttachmentId
);
