//! What the black-box tests may reach inside a server besides its HTTP and WebSocket API:
//! fixtures written straight to storage (thousands of users without thousands of argon2
//! hashes), tokens minted with the server's key, captured mail, and a few counters. Nothing in
//! the server uses this module.

use crate::app::AppState;
use crate::ids::UserId;

pub use crate::ids::{ChatId, MessageId};
pub use crate::mail::Email;

/// Storage functions the tests build fixtures with and check results against.
pub mod store {
    pub use crate::store::Db;

    pub mod users {
        pub use crate::store::users::{
            by_email, by_id, count, delete, insert, set_active, set_password, set_staff, NewUser, UserRow,
        };
    }

    pub mod chats {
        pub use crate::store::chats::{
            all, by_id, delete, find_or_create_pair, live_counts, member, members, pair, ChatRow, MemberRow,
        };
    }

    pub mod messages {
        pub use crate::store::message_batch::insert_batch;
        pub use crate::store::messages::{count, since, MessageRow, NewMessage, Stored};
    }
}

/// The Django importer, driven as `causerie import-django` drives it, and its bookkeeping.
pub mod import {
    pub use crate::import::report::{DevicesOutcome, Refusal, TableCounts};
    pub use crate::import::{run, ImportOptions, ProgressMode, Report};
    pub use crate::store::import::{has_table, watermarks};
}

/// An argon2id hash, computed on the calling thread.
pub fn hash_password(password: &str) -> String {
    crate::auth::password::hash_now(password).expect("argon2 hashes any password")
}

/// A password hash in Django's `pbkdf2_sha256` format.
pub fn django_password_hash(password: &str, salt: &str, iterations: u32) -> String {
    crate::auth::password::django_pbkdf2_hash(password, salt, iterations)
}

/// The `uid` of a password reset link, and back.
pub fn encode_reset_uid(id: UserId) -> String {
    crate::auth::reset::encode_uid(id)
}

pub fn decode_reset_uid(uid: &str) -> Option<UserId> {
    crate::auth::reset::decode_uid(uid)
}

/// An `(access, refresh)` pair signed with another key (forged or foreign tokens).
pub fn foreign_tokens(secret: &[u8], user: UserId) -> (String, String) {
    let issuer = crate::auth::jwt::TokenIssuer::new(
        secret,
        std::time::Duration::from_secs(300),
        std::time::Duration::from_secs(300),
    );
    (issuer.access(user), issuer.refresh(user))
}

/// A running server's insides, as far as tests need them.
pub struct Handle(AppState);

impl crate::Server {
    /// What tests may reach inside a running server.
    #[doc(hidden)]
    pub fn testing(&self) -> Handle {
        Handle(self.state.clone())
    }
}

impl Handle {
    pub fn db(&self) -> store::Db {
        self.0.ops.db.clone()
    }

    pub fn access_token(&self, user: UserId) -> String {
        self.0.accounts.tokens().access(user)
    }

    pub fn refresh_token(&self, user: UserId) -> String {
        self.0.accounts.tokens().refresh(user)
    }

    /// Mail kept by the memory backend.
    pub fn outbox(&self) -> Vec<Email> {
        self.0.accounts.mailer().outbox()
    }

    /// Sockets registered in this instance's hub.
    pub fn hub_connections(&self) -> usize {
        self.0.realtime.hub().connection_count()
    }
}
