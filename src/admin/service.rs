//! The admin service: staff sessions, the admin site's rules (who may change whom), the
//! consequences of a change (a deactivated user's sockets close on every instance, their admin
//! sessions end), and the audit log. Account and chat rules stay in `Accounts` and `Chats`;
//! this service calls them, and only touches its own tables (`store::admin`).

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::error::{AdminError, AdminResult};
use crate::accounts::email::Email;
use crate::accounts::{Accounts, Registration};
use crate::chats::Chats;
use crate::config::Config;
use crate::ids::{AttachmentId, UserId};
use crate::media::Media;
use crate::push::{Outcome, Push};
use crate::realtime::{AccountClosed, Realtime};
use crate::store::admin::{self as store, AuditFilter, AuditRow, NewAudit, SessionRow};
use crate::store::attachments::AttachmentRow;
use crate::store::devices::DeviceRow;
use crate::store::users::{AccountChange, UserRow};
use crate::store::{now, Db};

/// A session's activity is written at most this often (each write is one UPDATE).
const TOUCH_EVERY_SECS: i64 = 60;

struct Settings {
    idle: Duration,
    max: Duration,
    /// `public_url` is https: every cookie is `Secure`.
    public_https: bool,
    /// `X-Forwarded-Proto` may say the request came over HTTPS.
    trust_forwarded: bool,
}

struct Inner {
    db: Db,
    accounts: Accounts,
    chats: Chats,
    realtime: Realtime,
    push: Push,
    settings: Settings,
}

/// The admin service: one per server, cheap to clone.
#[derive(Clone)]
pub(crate) struct Admin(Arc<Inner>);

/// A signed-in staff member making a request, and from where.
#[derive(Clone, Debug)]
pub(crate) struct Staff {
    pub user: UserRow,
    pub session: SessionRow,
    pub address: IpAddr,
}

/// A user to create.
pub(crate) struct NewAccount {
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// A page of audit entries and the total they were cut from.
pub(crate) struct AuditPage {
    pub total: i64,
    pub entries: Vec<AuditRow>,
}

/// What an action did, for the audit log.
struct Entry<'a> {
    action: &'a str,
    object_kind: &'a str,
    object_id: String,
    summary: String,
}

/// 32 random bytes, as URL-safe base64 (cookies) or hex (form tokens).
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    bytes
}

fn hash_cookie(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

impl Admin {
    /// The users whose email or names contain every term of `q` (None: no terms), for the
    /// pages that filter by user; more matches than a filter takes adds an error instead.
    pub(crate) async fn users_matching(&self, q: &str, errors: &mut Vec<String>) -> AdminResult<Option<Vec<UserId>>> {
        use crate::store::chats::MEMBER_FILTER_MAX;
        let terms: Vec<String> = q.split_whitespace().map(str::to_string).collect();
        if terms.is_empty() {
            return Ok(None);
        }
        let ids = self
            .accounts()
            .matching_user_ids(&terms, MEMBER_FILTER_MAX as i64 + 1)
            .await?;
        if ids.len() > MEMBER_FILTER_MAX {
            errors.push(format!(
                "q: more than {MEMBER_FILTER_MAX} users match this search; narrow it down."
            ));
        }
        Ok(Some(ids))
    }

    pub(crate) fn new(
        db: Db,
        accounts: Accounts,
        chats: Chats,
        realtime: Realtime,
        push: Push,
        config: &Config,
    ) -> Admin {
        Admin(Arc::new(Inner {
            db,
            accounts,
            chats,
            realtime,
            push,
            settings: Settings {
                idle: Duration::seconds(config.admin_session_idle_secs as i64),
                max: Duration::seconds(config.admin_session_max_secs as i64),
                public_https: config.public_url.starts_with("https://"),
                trust_forwarded: config.trust_forwarded_for,
            },
        }))
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.0.accounts
    }

    pub(crate) fn chats(&self) -> &Chats {
        &self.0.chats
    }

    pub(crate) fn realtime(&self) -> &Realtime {
        &self.0.realtime
    }

    pub(crate) fn push(&self) -> &Push {
        &self.0.push
    }

    pub(crate) fn media(&self) -> &Media {
        self.0.chats.media()
    }

    fn db(&self) -> &Db {
        &self.0.db
    }

    /// Whether cookies set for this request must be `Secure`.
    pub(crate) fn secure(&self, forwarded_proto: Option<&str>) -> bool {
        self.0.settings.public_https
            || (self.0.settings.trust_forwarded && forwarded_proto.is_some_and(|p| p.eq_ignore_ascii_case("https")))
    }

    /// Seconds a session cookie may live at most.
    pub(crate) fn session_max_secs(&self) -> i64 {
        self.0.settings.max.num_seconds()
    }

    // ---- sessions -----------------------------------------------------------------------

    /// Checks credentials as the API's login does (argon2 / Django hashes, inactive refused),
    /// then requires staff. A staff member gets a new session: the value of its cookie, known
    /// only to the browser from now on.
    pub(crate) async fn sign_in(&self, email: &str, password: String, address: IpAddr) -> AdminResult<String> {
        let user = self.accounts().authenticate(email, password).await?;
        if !user.is_staff {
            self.record_for(
                &user,
                address,
                Entry {
                    action: "login_refused",
                    object_kind: "user",
                    object_id: user.id.to_string(),
                    summary: "not a staff account".into(),
                },
            )
            .await;
            return Err(AdminError::NotStaff);
        }
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes());
        let at = now();
        let session = SessionRow {
            id_hash: hash_cookie(&cookie),
            user_id: user.id,
            csrf_token: hex::encode(random_bytes()),
            address: address.to_string(),
            created_at: at,
            last_seen_at: at,
            expires_at: at + self.0.settings.idle.min(self.0.settings.max),
        };
        store::insert_session(self.db(), &session).await?;
        self.record_for(
            &user,
            address,
            Entry {
                action: "login",
                object_kind: "user",
                object_id: user.id.to_string(),
                summary: String::new(),
            },
        )
        .await;
        Ok(cookie)
    }

    /// The staff member behind a session cookie, if the session is live and its user is still
    /// an active staff member (otherwise every session of that user ends here).
    pub(crate) async fn session(&self, cookie: &str, address: IpAddr) -> AdminResult<Option<Staff>> {
        let Some(mut session) = store::live_session(self.db(), &hash_cookie(cookie)).await? else {
            return Ok(None);
        };
        let user = match self.accounts().user(session.user_id).await? {
            Some(user) if user.is_active && user.is_staff => user,
            _ => {
                store::delete_user_sessions(self.db(), session.user_id).await?;
                return Ok(None);
            }
        };
        let at = now();
        if (at - session.last_seen_at).num_seconds() >= TOUCH_EVERY_SECS {
            let expires_at = (at + self.0.settings.idle).min(session.created_at + self.0.settings.max);
            store::touch_session(self.db(), &session.id_hash, at, expires_at).await?;
            session.last_seen_at = at;
            session.expires_at = expires_at;
        }
        Ok(Some(Staff { user, session, address }))
    }

    pub(crate) async fn sign_out(&self, staff: &Staff) -> AdminResult<()> {
        store::delete_session(self.db(), &staff.session.id_hash).await?;
        self.record(
            staff,
            Entry {
                action: "logout",
                object_kind: "user",
                object_id: staff.user.id.to_string(),
                summary: String::new(),
            },
        )
        .await;
        Ok(())
    }

    /// Forgets expired sessions (run periodically).
    pub(crate) async fn sweep_sessions(&self) {
        match store::delete_expired_sessions(self.db()).await {
            Ok(0) => {}
            Ok(swept) => tracing::debug!(swept, "expired admin sessions removed"),
            Err(err) => tracing::warn!(%err, "could not remove expired admin sessions"),
        }
    }

    // ---- users ---------------------------------------------------------------------------

    /// A user named by id or by email.
    pub(crate) async fn find_user(&self, reference: &str) -> AdminResult<Option<UserRow>> {
        let reference = reference.trim();
        if let Ok(id) = reference.parse::<UserId>() {
            return Ok(self.accounts().user(id).await?);
        }
        match Email::parse(reference) {
            Some(email) => Ok(self.accounts().user_by_email(&email).await?),
            None => Ok(None),
        }
    }

    async fn target(&self, id: UserId) -> AdminResult<UserRow> {
        self.accounts().user(id).await?.ok_or(AdminError::NotFound)
    }

    /// Only a superuser may act on a superuser's account (otherwise staff could take one over
    /// by setting its password).
    fn may_manage(staff: &Staff, target: &UserRow) -> AdminResult<()> {
        if target.is_superuser && !staff.user.is_superuser {
            return Err(AdminError::Forbidden(
                "Only a superuser may change a superuser's account.".into(),
            ));
        }
        Ok(())
    }

    pub(crate) async fn create_user(&self, staff: &Staff, new: NewAccount) -> AdminResult<UserRow> {
        if new.is_superuser && !staff.user.is_superuser {
            return Err(AdminError::Forbidden("Only a superuser may create a superuser.".into()));
        }
        let email =
            Email::parse(&new.email).ok_or_else(|| AdminError::field("email", crate::accounts::email::INVALID))?;
        let user = self
            .accounts()
            .create_user_checked(Registration {
                email,
                password: new.password,
                first_name: new.first_name.trim().to_string(),
                last_name: new.last_name.trim().to_string(),
                is_staff: new.is_staff || new.is_superuser,
                is_superuser: new.is_superuser,
            })
            .await?;
        let mut summary = user.email.clone();
        if user.is_superuser {
            summary.push_str(" (superuser)");
        } else if user.is_staff {
            summary.push_str(" (staff)");
        }
        self.record(
            staff,
            Entry {
                action: "user_create",
                object_kind: "user",
                object_id: user.id.to_string(),
                summary,
            },
        )
        .await;
        Ok(user)
    }

    /// Changes names and flags. The rules: `is_superuser` changes only by a superuser, a
    /// superuser's account only by a superuser, and nobody takes away their own access. A
    /// deactivation closes the user's sockets on every instance; losing active or staff ends
    /// their admin sessions.
    pub(crate) async fn change_user(&self, staff: &Staff, id: UserId, change: AccountChange) -> AdminResult<UserRow> {
        let before = self.target(id).await?;
        Self::may_manage(staff, &before)?;
        if change.is_superuser != before.is_superuser && !staff.user.is_superuser {
            return Err(AdminError::Forbidden(
                "Only a superuser may grant or remove superuser status.".into(),
            ));
        }
        if before.id == staff.user.id
            && (change.is_active != before.is_active
                || change.is_staff != before.is_staff
                || change.is_superuser != before.is_superuser)
        {
            return Err(AdminError::Forbidden(
                "You cannot change your own active, staff or superuser status.".into(),
            ));
        }
        let change = AccountChange {
            first_name: change.first_name.trim().to_string(),
            last_name: change.last_name.trim().to_string(),
            // A superuser is staff, as in Django's createsuperuser.
            is_staff: change.is_staff || change.is_superuser,
            ..change
        };
        let after = self
            .accounts()
            .change_account(id, &change)
            .await?
            .ok_or(AdminError::NotFound)?;
        if before.is_active && !after.is_active {
            // Stored first: a socket that reconnects is refused.
            self.realtime().disconnect_user(id, AccountClosed::Deactivated);
        }
        if (before.is_active && !after.is_active) || (before.is_staff && !after.is_staff) {
            store::delete_user_sessions(self.db(), id).await?;
        }
        let summary = describe_change(&before, &after);
        let action = match (before.is_active, after.is_active) {
            (true, false) => "user_deactivate",
            (false, true) => "user_activate",
            _ => "user_change",
        };
        self.record(
            staff,
            Entry {
                action,
                object_kind: "user",
                object_id: id.to_string(),
                summary: format!("{}: {}", after.email, summary),
            },
        )
        .await;
        Ok(after)
    }

    /// Deactivates (or reactivates) a user, their names and other flags unchanged.
    pub(crate) async fn set_active(&self, staff: &Staff, id: UserId, active: bool) -> AdminResult<UserRow> {
        let user = self.target(id).await?;
        let change = AccountChange {
            first_name: user.first_name,
            last_name: user.last_name,
            is_active: active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
        };
        self.change_user(staff, id, change).await
    }

    /// Sets a password (Django's validators apply; errors on `new_password`). The user's other
    /// admin sessions end, as Django's do after a password change.
    pub(crate) async fn set_password(&self, staff: &Staff, id: UserId, password: String) -> AdminResult<()> {
        let user = self.target(id).await?;
        Self::may_manage(staff, &user)?;
        self.accounts().set_password(&user, password).await?;
        if user.id != staff.user.id {
            store::delete_user_sessions(self.db(), id).await?;
        }
        self.record(
            staff,
            Entry {
                action: "user_password",
                object_kind: "user",
                object_id: id.to_string(),
                summary: user.email,
            },
        )
        .await;
        Ok(())
    }

    /// Deletes a user (not oneself); their sockets close on every instance.
    pub(crate) async fn delete_user(&self, staff: &Staff, id: UserId) -> AdminResult<UserRow> {
        let user = self.target(id).await?;
        if user.id == staff.user.id {
            return Err(AdminError::Forbidden("You cannot delete your own account.".into()));
        }
        Self::may_manage(staff, &user)?;
        self.accounts().delete_user(id).await?;
        self.realtime().disconnect_user(id, AccountClosed::Deleted);
        self.record(
            staff,
            Entry {
                action: "user_delete",
                object_kind: "user",
                object_id: id.to_string(),
                summary: user.email.clone(),
            },
        )
        .await;
        Ok(user)
    }

    // ---- chats and messages --------------------------------------------------------------

    async fn named_user(&self, field: &str, reference: &str) -> AdminResult<UserRow> {
        if reference.trim().is_empty() {
            return Err(AdminError::field(field, crate::validation::REQUIRED));
        }
        self.find_user(reference)
            .await?
            .ok_or_else(|| AdminError::field(field, format!("No user with the email or id “{}”.", reference.trim())))
    }

    /// Finds or creates the two-person chat of two users named by email or id; true when it
    /// was created now.
    pub(crate) async fn open_pair(
        &self,
        staff: &Staff,
        first: &str,
        second: &str,
    ) -> AdminResult<(crate::store::chats::ChatRow, bool)> {
        let a = self.named_user("first", first).await?;
        let b = self.named_user("second", second).await?;
        if a.id == b.id {
            return Err(AdminError::field("second", "A chat needs two different users."));
        }
        let (chat, created) = self.chats().open_pair_between(a.id, b.id).await?;
        self.record(
            staff,
            Entry {
                action: if created { "chat_create" } else { "chat_open_existing" },
                object_kind: "chat",
                object_id: chat.id.to_string(),
                summary: format!("{} and {}", a.email, b.email),
            },
        )
        .await;
        Ok((chat, created))
    }

    /// Creates a group: its owner (its first admin) and members named by email or id.
    pub(crate) async fn create_group(
        &self,
        staff: &Staff,
        title: &str,
        owner: &str,
        members: &[String],
    ) -> AdminResult<crate::store::chats::ChatRow> {
        let owner = self.named_user("owner", owner).await?;
        let mut ids = Vec::with_capacity(members.len());
        for member in members {
            ids.push(self.named_user("members", member).await?.id);
        }
        let chat = self.chats().create_group_for(owner.id, title, &ids).await?;
        self.record(
            staff,
            Entry {
                action: "group_create",
                object_kind: "chat",
                object_id: chat.id.to_string(),
                summary: format!(
                    "“{}”, owner {}, {} other members",
                    chat.title.as_deref().unwrap_or(""),
                    owner.email,
                    ids.iter().filter(|m| **m != owner.id).count()
                ),
            },
        )
        .await;
        Ok(chat)
    }

    /// Deletes a message; the chat's connected members see it removed (`message_deleted`).
    pub(crate) async fn delete_message(&self, staff: &Staff, id: crate::ids::MessageId) -> AdminResult<()> {
        let gone = self.chats().remove_message(id).await?;
        let author = match gone.author {
            Some(author) => self.accounts().user(author).await?.map(|u| u.email),
            None => None,
        }
        .unwrap_or_else(|| "a deleted user".into());
        self.record(
            staff,
            Entry {
                action: "message_delete",
                object_kind: "message",
                object_id: id.to_string(),
                summary: format!("in chat {} (seq {}), by {author}", gone.chat_id, gone.seq),
            },
        )
        .await;
        Ok(())
    }

    // ---- devices and push ----------------------------------------------------------------

    /// "android device “Pixel” (7) of alice@example.com".
    async fn describe_device(&self, device: &DeviceRow) -> AdminResult<String> {
        let owner = self
            .accounts()
            .user(device.user_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_else(|| device.user_id.to_string());
        let name = device.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("unnamed");
        Ok(format!("{} device “{name}” ({}) of {owner}", device.kind, device.id))
    }

    /// Stops (or resumes) pushing to one device; the next push of its owner skips it.
    pub(crate) async fn set_device_active(&self, staff: &Staff, id: i64, active: bool) -> AdminResult<DeviceRow> {
        let device = self.push().set_device_active(id, active).await?;
        self.record(
            staff,
            Entry {
                action: if active { "device_activate" } else { "device_deactivate" },
                object_kind: "device",
                object_id: id.to_string(),
                summary: self.describe_device(&device).await?,
            },
        )
        .await;
        Ok(device)
    }

    /// Sends a test notification to each of `user`'s active devices, as `causerie push test`
    /// does; each device and the provider's answer (`None`: no provider serves its kind).
    pub(crate) async fn test_push(
        &self,
        staff: &Staff,
        user: UserId,
    ) -> AdminResult<(UserRow, Vec<(DeviceRow, Option<Outcome>)>)> {
        let target = self.target(user).await?;
        let results = self.push().send_test(user).await?;
        let reached = results.iter().filter(|(_, o)| *o == Some(Outcome::Sent)).count();
        let mut summary = format!(
            "{}: {reached} of {} active devices reached",
            target.email,
            results.len()
        );
        if !self.push().enabled() {
            summary.push_str(" (push is off)");
        }
        self.record(
            staff,
            Entry {
                action: "push_test",
                object_kind: "user",
                object_id: user.to_string(),
                summary,
            },
        )
        .await;
        Ok((target, results))
    }

    // ---- attachments ---------------------------------------------------------------------

    async fn describe_attachment(&self, row: &AttachmentRow) -> AdminResult<String> {
        let owner = match row.owner {
            Some(owner) => self.accounts().user(owner).await?.map(|u| u.email),
            None => None,
        }
        .unwrap_or_else(|| "a deleted user".into());
        Ok(format!(
            "“{}” ({}, {} bytes) of {owner}",
            row.name, row.content_type, row.size
        ))
    }

    /// Deletes an attachment: the messages carrying it stop showing it (their sockets are
    /// told), then its files and its row go.
    pub(crate) async fn delete_attachment(&self, staff: &Staff, id: AttachmentId) -> AdminResult<()> {
        let (row, unlinked) = self.chats().delete_attachment(id).await?;
        let mut summary = self.describe_attachment(&row).await?;
        if let Some(chat) = row.chat_id {
            let _ = write!(summary, ", in chat {chat}");
        }
        let _ = write!(summary, "; {unlinked} messages changed");
        self.record(
            staff,
            Entry {
                action: "attachment_delete",
                object_kind: "attachment",
                object_id: id.to_string(),
                summary,
            },
        )
        .await;
        Ok(())
    }

    /// An attachment staff open (the original file): reading someone's file is on record.
    pub(crate) async fn open_attachment(&self, staff: &Staff, id: AttachmentId) -> AdminResult<AttachmentRow> {
        let row = self.media().get(id).await?;
        self.record(
            staff,
            Entry {
                action: "attachment_download",
                object_kind: "attachment",
                object_id: id.to_string(),
                summary: self.describe_attachment(&row).await?,
            },
        )
        .await;
        Ok(row)
    }

    // ---- the audit log -------------------------------------------------------------------

    pub(crate) async fn audit(&self, filter: &AuditFilter, limit: i64, offset: i64) -> AdminResult<AuditPage> {
        let (total, entries) = store::audit_page(self.db(), filter, limit, offset).await?;
        Ok(AuditPage { total, entries })
    }

    async fn record(&self, staff: &Staff, entry: Entry<'_>) {
        self.record_for(&staff.user, staff.address, entry).await
    }

    /// Writes an entry after the action it describes succeeded. If storage fails now, the
    /// action stands and the entry goes to the log instead, in full.
    async fn record_for(&self, actor: &UserRow, address: IpAddr, entry: Entry<'_>) {
        let address = address.to_string();
        let row = NewAudit {
            actor_id: Some(actor.id),
            actor_email: &actor.email,
            action: entry.action,
            object_kind: entry.object_kind,
            object_id: &entry.object_id,
            summary: &entry.summary,
            address: &address,
        };
        if let Err(err) = store::insert_audit(self.db(), &row).await {
            tracing::error!(
                %err,
                actor = %actor.email,
                action = entry.action,
                object = %entry.object_id,
                summary = %entry.summary,
                %address,
                "could not store an admin audit entry"
            );
        }
    }

    /// The start of today (UTC), for the dashboard's "messages today".
    pub(crate) fn today_start() -> DateTime<Utc> {
        let today = Utc::now().date_naive();
        today.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or_else(Utc::now)
    }
}

/// "is_active: yes → no, first name: “A” → “B”" (or "no change").
fn describe_change(before: &UserRow, after: &UserRow) -> String {
    let mut out = String::new();
    let mut note = |text: String| {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&text);
    };
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for (name, a, b) in [
        ("active", before.is_active, after.is_active),
        ("staff", before.is_staff, after.is_staff),
        ("superuser", before.is_superuser, after.is_superuser),
    ] {
        if a != b {
            note(format!("{name}: {} → {}", yes_no(a), yes_no(b)));
        }
    }
    for (name, a, b) in [
        ("first name", &before.first_name, &after.first_name),
        ("last name", &before.last_name, &after.last_name),
    ] {
        if a != b {
            let mut text = String::new();
            let _ = write!(text, "{name}: “{a}” → “{b}”");
            note(text);
        }
    }
    if out.is_empty() {
        out.push_str("no change");
    }
    out
}
