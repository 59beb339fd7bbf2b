//! Chats and messages: the rules (the `Chats` service and its `impl` blocks), group commit
//! (writer), domain events, REST routes and views.

pub(crate) mod attachment_routes;
mod attachments;
mod avatars;
mod draft;
mod error;
pub(crate) mod events;
mod groups;
mod list_cache;
mod listing;
mod messages;
mod moderation;
mod rate;
pub(crate) mod requests;
pub(crate) mod routes;
mod service;
pub(crate) mod view;
pub(crate) mod writer;

pub(crate) use attachments::{PhotoConversion, ShownEvents};
pub(crate) use draft::{is_data_url, Draft, CLIENT_ID_MAX, DATA_URL_STAND_IN};
pub(crate) use error::{ChatError, ChatResult};
pub(crate) use messages::{MessageChange, PendingStore, Submitted};
pub(crate) use moderation::StaffMember;
pub(crate) use rate::MessageRate;
pub(crate) use service::Chats;
