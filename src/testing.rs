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
    pub use crate::store::{Db, SqliteDb};

    pub mod users {
        pub use crate::store::users::{
            by_email, by_id, count, delete, insert, set_active, set_password, set_staff, NewUser, UserRow,
        };
    }

    pub mod chats {
        pub use crate::store::chats::{
            all, by_id, delete, find_or_create_pair, live_counts, member, members, pair, remove_member, ChatRow,
            MemberRow,
        };
    }

    pub mod messages {
        pub use crate::store::message_batch::{insert_batch, NotAMember, Outcomes};
        pub use crate::store::messages::{count, mark_read_upto, since, MessageRow, NewMessage, Stored};
    }

    pub mod tokens {
        pub use crate::store::tokens::{blacklist, is_blacklisted, Listed};
    }

    pub mod presence {
        pub use crate::store::presence::{declare, shown, sockets_gone, sockets_opened};
    }
}

/// Push (issue 12): what became of each outbox job of a user, oldest first: its status
/// (`pending`, `sent`, `failed`, `dropped`) and how many times it was claimed.
pub mod push {
    use crate::ids::UserId;
    use crate::store::Db;

    pub async fn outbox(db: &Db, user: UserId) -> Vec<(String, i32)> {
        crate::store::outbox::states_for_user(db, user)
            .await
            .expect("reading the push outbox")
    }

    /// The push log's pruning, as the workers run it hourly: rows older than `before` go,
    /// and all but the newest `keep`. How many went.
    pub async fn prune_log(db: &Db, before: chrono::DateTime<chrono::Utc>, keep: i64) -> u64 {
        crate::store::push_log::prune(db, before, keep)
            .await
            .expect("pruning the push log")
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

    /// An access token signed with the server's key that lives `secs` seconds.
    pub fn access_token_lasting(&self, user: UserId, secs: u64) -> String {
        self.0
            .accounts
            .tokens()
            .access_lasting(user, std::time::Duration::from_secs(secs))
    }

    pub fn refresh_token(&self, user: UserId) -> String {
        self.0.accounts.tokens().refresh(user)
    }

    /// Forgets this instance's cached users, for tests that write users straight to storage
    /// (the server itself changes users only through its account service, which keeps the
    /// cache exact).
    pub fn forget_cached_users(&self) {
        self.0.accounts.forget_cached_users();
    }

    /// Deactivates or reactivates through the account service, as `causerie users deactivate`
    /// does (tokens revoked, sockets closed on every instance); false when there is no such user.
    pub async fn set_active(&self, user: UserId, active: bool) -> bool {
        self.0
            .accounts
            .set_active(user, active)
            .await
            .expect("account storage answers")
    }

    /// Mail kept by the memory backend.
    pub fn outbox(&self) -> Vec<Email> {
        self.0.accounts.mailer().outbox()
    }

    /// Runs the attachment sweeper as if it were `at`; how many attachments it removed.
    pub async fn sweep_media_at(&self, at: chrono::DateTime<chrono::Utc>) -> usize {
        self.0.media.sweep(at).await.expect("attachment sweep")
    }

    /// What `import-django --convert-photos` does after an import: `(converted, kept)`.
    pub async fn convert_stored_photos(&self) -> (usize, usize) {
        let done = self.0.chats.convert_stored_photos().await.expect("converting photos");
        (done.converted, done.kept)
    }

    /// How many attachments are stored.
    pub async fn attachment_count(&self) -> i64 {
        crate::store::attachments::count(&self.0.ops.db)
            .await
            .expect("counting attachments")
    }

    /// A download URL for attachment `id` signed at unix time `now` (an expired one, when
    /// `now` is long past).
    pub fn attachment_url_signed_at(&self, id: uuid::Uuid, thumbnail: bool, now: i64) -> String {
        let variant = if thumbnail {
            crate::media::Variant::Thumbnail
        } else {
            crate::media::Variant::Original
        };
        self.0.media.signer().url_at(id.into(), variant, now)
    }

    /// How many files the media store holds (the local directory or the S3 bucket).
    pub async fn stored_objects(&self) -> usize {
        self.0.media.object_count().await.expect("listing the media store")
    }

    /// Replaces a stored message's `extraData` as an import from Django leaves it (a photo
    /// kept as a `data:` URL, which the server itself no longer stores).
    pub async fn set_message_extra_data(&self, message: uuid::Uuid, extra: &str) {
        crate::store::messages::set_extra_data(&self.0.ops.db, message.into(), extra)
            .await
            .expect("writing a message")
    }

    /// Sockets registered in this instance's hub.
    pub fn hub_connections(&self) -> usize {
        self.0.realtime.hub().connection_count()
    }
}

/// Entry points for the fuzz targets under `fuzz/`: each runs a parser the server runs on
/// untrusted input, as the server runs it, and drops the result (a panic is the finding).
pub mod fuzz {
    use uuid::Uuid;

    use crate::accounts::requests as accounts;
    use crate::chats::requests as chats;
    use crate::http::body::Body;
    use crate::ids::{ChatId, UserId};
    use crate::wire::{parse, v1, v2};

    /// `extraData` capped as a server with the default settings caps it (`max_body_bytes`).
    fn max_extra() -> usize {
        crate::config::Config::default().max_body_bytes
    }

    /// A v1 text frame as a chat socket reads it (`realtime::session`).
    pub fn v1_frame(text: &str) {
        let Ok(frame) = parse::parse_object(text) else { return };
        let (chat, user) = (ChatId::from(Uuid::nil()), UserId::from(Uuid::nil()));
        if let Ok(message) = v1::MessageFrame::from_frame(&frame, chat, user, max_extra()) {
            let _ = message.into_draft().check(max_extra());
        }
    }

    /// A v2 text frame as the user socket reads it (`realtime::v2`).
    pub fn v2_frame(text: &str) {
        if let Ok(frame) = v2::ClientFrame::parse(text, max_extra()) {
            if let v2::Command::Send(send) = frame.command {
                let _ = send.into_draft().check(max_extra());
            }
        }
    }

    /// The largest file the multipart target accepts: small, so that the fuzzer reaches the
    /// refusals for too large a file or stream, which the default 25 MB would put out of reach.
    const MULTIPART_MAX_FILE: u64 = 4 * 1024;
    /// The largest image the multipart target decodes, for the same reason (and fast runs).
    const MULTIPART_MAX_PIXELS: u64 = 64 * 64;

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }

    /// An upload to `POST /api/attachments/` as the server reads it: the multipart form
    /// (`attachment_routes::read_form`), then the file's bytes as the media service prepares
    /// them (sniffed type, name cleaned, images decoded, thumbnailed and re-encoded).
    ///
    /// `input` is: one byte for the size of the chunks the body arrives in (so that boundaries
    /// fall across chunks), the Content-Type header up to the first `\n`, then the body.
    pub fn multipart(input: &[u8]) {
        let Some((&chunk, rest)) = input.split_first() else {
            return;
        };
        let chunk = usize::from(chunk).max(1);
        let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let content_type = String::from_utf8_lossy(content_type);
        let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
            body.chunks(chunk).map(|c| Ok(c.to_vec())).collect();
        let stream = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
        let declared = Some(body.len() as u64);
        let read = RUNTIME.with(|rt| {
            rt.block_on(crate::chats::attachment_routes::read_form(
                &content_type,
                declared,
                stream,
                MULTIPART_MAX_FILE,
            ))
        });
        let Ok(parts) = read else { return };
        if let Some(chat) = parts.chat {
            let _ = chat.trim().parse::<ChatId>();
        }
        let Some((name, bytes)) = parts.file else { return };
        let Some(content_type) = crate::media::process::sniff(&bytes) else {
            return;
        };
        let _ = crate::media::clean_name(&name, content_type);
        let _ = crate::media::process::process(bytes, content_type, MULTIPART_MAX_PIXELS);
    }

    /// A REST body of the media type `content_type`, read as every body type the API takes.
    pub fn rest_body(content_type: &str, bytes: &[u8]) {
        let Ok(body) = Body::parse(Some(content_type), bytes) else {
            return;
        };
        let _ = body.read::<accounts::NewAccount>();
        let _ = body.read::<accounts::NamesChange>();
        let _ = body.read::<accounts::CurrentPassword>();
        let _ = body.read::<accounts::PasswordChange>();
        let _ = body.read::<accounts::ResetRequest>();
        let _ = body.read::<accounts::ResetConfirm>();
        let _ = body.read::<accounts::Credentials>();
        let _ = body.read::<accounts::RefreshToken>();
        let _ = body.read::<accounts::AnyToken>();
        let _ = body.read::<chats::ProfilePatch>();
        let _ = body.read::<chats::NewChat>();
        let _ = body.read::<chats::NewMessage>();
        let _ = body.read::<chats::MessagePatch>();
        let _ = body.read::<chats::MarkRead>();
        let _ = body.read::<chats::NewGroup>();
        let _ = body.read::<chats::GroupTitle>();
        let _ = body.read::<chats::NewMember>();
    }
}
