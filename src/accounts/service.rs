//! Account rules: registration, login, tokens, password changes and resets, profiles. Handlers
//! parse; this service decides, and it is the only code that touches the `users` and
//! `token_blacklist` tables.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::activity::{Activity, Declared};
use super::cache::AuthCache;
use super::email::Email;
use super::error::{AccountError, AccountResult};
use super::events::{AccountClosed, AccountEvents};
use super::guard::LoginGuard;
use super::opened::OpenedSockets;
use super::policy::{self, Attributes};
use super::view::TokenPair;
use crate::auth::jwt::{Claims, TokenIssuer, TokenType};
use crate::auth::password::{self, Verdict};
use crate::auth::reset;
use crate::config::Config;
use crate::ids::UserId;
use crate::mail::{self, Mailer};
use crate::store::tokens::Listed;
use crate::store::users::{self, AccountChange, NewUser, ProfileChange, UserFilter, UserRow};
use crate::store::{is_unique_violation, presence, tokens, Db};

pub(crate) const NAME_MAX: usize = 150;
/// The shortest search term that finds anyone (`/api/searchUser/`).
pub(crate) const SEARCH_TERM_MIN: usize = 2;

pub(crate) struct Registration {
    pub email: Email,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_superuser: bool,
}

/// The settings the account rules depend on.
struct Settings {
    rotate_refresh_tokens: bool,
    blacklist_after_rotation: bool,
    public_url: String,
    password_reset_confirm_url: String,
}

struct Inner {
    db: Db,
    tokens: TokenIssuer,
    /// The signing key, also used for password reset tokens.
    secret: Vec<u8>,
    mailer: Mailer,
    settings: Settings,
    /// Users as authentication needs them, kept until they change (`cache.rs`).
    cache: AuthCache,
    /// Told of every change to a user, so other instances forget it and sockets close.
    events: Arc<dyn AccountEvents>,
    /// Failed logins per account (`guard.rs`).
    logins: LoginGuard,
    /// Who was seen, and presence declarations, for `realtime::presence` (`activity.rs`).
    activity: Activity,
    /// Sockets opened, stored in batches (`opened.rs`).
    opened: OpenedSockets,
}

/// The account service: one per server, cheap to clone.
#[derive(Clone)]
pub(crate) struct Accounts(Arc<Inner>);

/// A page of users and the total they were cut from.
pub(crate) struct UserPage {
    pub total: i64,
    pub users: Vec<UserRow>,
}

impl Accounts {
    /// `cache` is shared with the fan-out, which keeps it in step with other instances;
    /// `events` hears of every change to a user.
    pub(crate) fn new(
        db: Db,
        secret: Vec<u8>,
        mailer: Mailer,
        config: &Config,
        cache: AuthCache,
        events: Arc<dyn AccountEvents>,
    ) -> Accounts {
        let tokens = TokenIssuer::new(
            &secret,
            std::time::Duration::from_secs(config.access_token_lifetime_secs),
            std::time::Duration::from_secs(config.refresh_token_lifetime_secs),
        );
        Accounts(Arc::new(Inner {
            db,
            tokens,
            secret,
            mailer,
            settings: Settings {
                rotate_refresh_tokens: config.rotate_refresh_tokens,
                blacklist_after_rotation: config.blacklist_after_rotation,
                public_url: config.public_url.clone(),
                password_reset_confirm_url: config.password_reset_confirm_url.clone(),
            },
            cache,
            events,
            logins: LoginGuard::new(
                config.login_free_failures,
                std::time::Duration::from_secs(config.login_backoff_max_secs),
                crate::counters::RedisCounters::open(config.redis_url.as_deref()),
            ),
            activity: Activity::default(),
            opened: OpenedSockets::default(),
        }))
    }

    /// A cache sized by the settings, for [`Accounts::new`].
    pub(crate) fn cache_for(config: &Config) -> AuthCache {
        AuthCache::new(std::time::Duration::from_secs(config.auth_cache_secs))
    }

    /// Change stamps moved on by every change to a user (and, through the chat service, to a
    /// chat): what cached read paths check.
    pub(crate) fn freshness(&self) -> &crate::freshness::Freshness {
        self.0.cache.freshness()
    }

    pub(crate) fn tokens(&self) -> &TokenIssuer {
        &self.0.tokens
    }

    pub(crate) fn mailer(&self) -> &Mailer {
        &self.0.mailer
    }

    fn db(&self) -> &Db {
        &self.0.db
    }

    // ---- registration and login ---------------------------------------------------------

    /// Creates a user without the password policy (admin commands may choose to bypass it;
    /// registration applies it while reading the body, with every other field's errors).
    pub(crate) async fn create_user(&self, reg: Registration) -> AccountResult<UserRow> {
        let taken = users::by_email(self.db(), reg.email.as_str()).await?.is_some();
        // Hashed in both cases, so that the answer takes as long for an address already
        // registered as for a new one (the time would otherwise tell which is which).
        let hash = password::hash(reg.password).await.map_err(AccountError::Hashing)?;
        if taken {
            return Err(duplicate_email());
        }
        let new = NewUser {
            email: reg.email.as_str(),
            password_hash: &hash,
            first_name: &reg.first_name,
            last_name: &reg.last_name,
            is_staff: reg.is_staff,
            is_superuser: reg.is_superuser,
        };
        match users::insert(self.db(), &new).await {
            Ok(user) => {
                metrics::counter!("causerie_users_registered_total").increment(1);
                Ok(user)
            }
            // Two registrations raced past the check above: the email's unique index said no.
            Err(err) if is_unique_violation(&err) => Err(duplicate_email()),
            Err(err) => Err(err.into()),
        }
    }

    /// Checks credentials; an unknown email, a wrong password and an inactive account all look
    /// the same to the client. A Django hash is upgraded to argon2id on success.
    ///
    /// Failures are counted per account: past `login_free_failures`, the account's next attempt
    /// must wait (refused as `Throttled` without checking the password; `guard.rs`).
    pub(crate) async fn authenticate(&self, email: &str, password: String) -> AccountResult<UserRow> {
        let parsed = Email::parse(email);
        let account = parsed
            .as_ref()
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|| email.trim().to_lowercase());
        if let Some(wait) = self.0.logins.must_wait(&account).await {
            return Err(AccountError::Throttled(wait));
        }
        let user = match parsed {
            Some(email) => users::by_email(self.db(), email.as_str()).await?,
            None => None,
        };
        let verdict = password::verify(password.clone(), user.as_ref().map(|u| u.password.clone()))
            .await
            .map_err(AccountError::Hashing)?;
        let user = match (user, verdict) {
            (Some(user), Verdict::Valid { needs_rehash }) if user.is_active => {
                if needs_rehash {
                    let hash = password::hash(password).await.map_err(AccountError::Hashing)?;
                    users::set_password(self.db(), user.id, &hash).await?;
                }
                user
            }
            _ => {
                self.0.logins.failed(&account).await;
                return Err(AccountError::BadCredentials);
            }
        };
        self.0.logins.succeeded(&account).await;
        users::record_login(self.db(), user.id).await?;
        self.changed(user.id);
        Ok(user)
    }

    /// A token pair for `user`, issued under their current token epoch.
    pub(crate) fn issue_pair(&self, user: &UserRow) -> TokenPair {
        TokenPair {
            refresh: self.0.tokens.refresh_at(user.id, user.token_epoch),
            access: self.0.tokens.access_at(user.id, user.token_epoch),
        }
    }

    /// The user as authentication sees it: from the cache when it holds them, else from
    /// storage (and then kept). None when there is no such user.
    async fn current(&self, id: UserId) -> AccountResult<Option<Arc<UserRow>>> {
        Ok(self.cached_users(&[id]).await?.pop())
    }

    /// The active user behind an access token (every authenticated request and handshake).
    /// A token issued before its user's last revocation (an older token epoch) is refused.
    pub(crate) async fn authenticate_access(&self, token: &str) -> AccountResult<Arc<UserRow>> {
        Ok(self.verify_access(token, 0).await?.0)
    }

    /// As [`Accounts::authenticate_access`], with the token's expiry (unix seconds), also
    /// accepting a token that expired less than `grace_secs` ago (WebSocket handshakes only,
    /// `ws_token_grace_secs`). Every other check is the same: one verification for REST and
    /// sockets.
    pub(crate) async fn authenticate_access_within(
        &self,
        token: &str,
        grace_secs: u64,
    ) -> AccountResult<(UserRow, i64)> {
        let (user, exp) = self.verify_access(token, grace_secs).await?;
        Ok((UserRow::clone(&user), exp))
    }

    /// The checks of [`Accounts::authenticate_access_within`], answering with the cached row
    /// itself (an authenticated request need not copy it).
    async fn verify_access(&self, token: &str, grace_secs: u64) -> AccountResult<(Arc<UserRow>, i64)> {
        let claims = self
            .0
            .tokens
            .decode_within(token, Some(TokenType::Access), grace_secs)
            .ok_or(AccountError::InvalidAccessToken)?;
        let user_id = claims.user_uuid().ok_or(AccountError::InvalidAccessToken)?;
        let user = self.current(user_id).await?.ok_or(AccountError::UserNotFound)?;
        if !user.is_active {
            return Err(AccountError::UserInactive);
        }
        if claims.epoch() != user.token_epoch {
            return Err(AccountError::InvalidAccessToken);
        }
        self.0.activity.seen(user_id);
        Ok((user, claims.exp))
    }

    /// A refresh token that is valid, unexpired, not blacklisted, of the user's current token
    /// epoch, and whose user is still active. A rotated-out token used again ends every session
    /// of its user (`revoke_all`).
    async fn live_refresh(&self, token: &str) -> AccountResult<(Claims, Arc<UserRow>)> {
        let claims = self
            .0
            .tokens
            .decode(token, Some(TokenType::Refresh))
            .ok_or(AccountError::TokenNotValid)?;
        let user_id = claims.user_uuid().ok_or(AccountError::TokenNotValid)?;
        match tokens::is_blacklisted(self.db(), &claims.jti).await? {
            Listed::No => {}
            Listed::LoggedOut => return Err(AccountError::TokenBlacklisted),
            Listed::Rotated => {
                self.reused(&claims, user_id).await?;
                return Err(AccountError::TokenBlacklisted);
            }
        }
        let user = match self.current(user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(AccountError::BadCredentials),
        };
        if claims.epoch() != user.token_epoch {
            return Err(AccountError::TokenNotValid);
        }
        Ok((claims, user))
    }

    /// A rotated-out refresh token came back: someone holds a copy. We cannot tell the thief's
    /// session from the owner's, so every session of the user ends (their family of tokens is
    /// everything issued under the current epoch). A token of an older epoch is dead already
    /// and changes nothing, so an old stolen token cannot be used to log the owner out again.
    async fn reused(&self, claims: &Claims, user_id: UserId) -> AccountResult<()> {
        let current = self.current(user_id).await?;
        if current.is_some_and(|user| user.token_epoch == claims.epoch()) {
            tracing::warn!(user = %user_id, "a rotated-out refresh token was used again: every session of its user ends");
            metrics::counter!("causerie_refresh_token_reuse_total").increment(1);
            self.revoke_all(user_id, AccountClosed::Revoked).await?;
        }
        Ok(())
    }

    /// Ends every session of `user`: tokens issued so far are refused everywhere and their
    /// sockets close on every instance.
    pub(crate) async fn revoke_all(&self, user: UserId, why: AccountClosed) -> AccountResult<()> {
        users::bump_epoch(self.db(), user).await?;
        self.closed(user, why);
        self.0.events.heard_everywhere().await;
        Ok(())
    }

    /// SimpleJWT's refresh: a new access token, and with rotation a new refresh token too (the
    /// old one blacklisted when configured, so it works once).
    pub(crate) async fn refresh(&self, token: &str) -> AccountResult<(String, Option<String>)> {
        let (claims, user) = self.live_refresh(token).await?;
        let access = self.0.tokens.access_at(user.id, user.token_epoch);
        let settings = &self.0.settings;
        if !settings.rotate_refresh_tokens {
            return Ok((access, None));
        }
        if settings.blacklist_after_rotation
            && !tokens::blacklist(self.db(), &claims.jti, user.id, claims.expires_at(), true).await?
        {
            // Another request rotated this token at the same moment: a second use, as above.
            self.reused(&claims, user.id).await?;
            return Err(AccountError::TokenBlacklisted);
        }
        Ok((access, Some(self.0.tokens.refresh_at(user.id, user.token_epoch))))
    }

    /// `/auth/jwt/verify/`: any valid token of either type; a blacklisted refresh token is not
    /// valid, nor a token issued before its user's last revocation (or whose user is gone).
    pub(crate) async fn verify(&self, token: &str) -> AccountResult<()> {
        let claims = self.0.tokens.decode(token, None).ok_or(AccountError::TokenNotValid)?;
        if claims.token_type == TokenType::Refresh
            && tokens::is_blacklisted(self.db(), &claims.jti).await? != Listed::No
        {
            return Err(AccountError::TokenBlacklisted);
        }
        let user_id = claims.user_uuid().ok_or(AccountError::TokenNotValid)?;
        match self.current(user_id).await? {
            Some(user) if user.token_epoch == claims.epoch() => Ok(()),
            _ => Err(AccountError::TokenNotValid),
        }
    }

    /// Logout: the refresh token can no longer be used.
    pub(crate) async fn blacklist(&self, token: &str) -> AccountResult<()> {
        let claims = self
            .0
            .tokens
            .decode(token, Some(TokenType::Refresh))
            .ok_or(AccountError::TokenNotValid)?;
        let user_id = claims.user_uuid().ok_or(AccountError::TokenNotValid)?;
        tokens::blacklist(self.db(), &claims.jti, user_id, claims.expires_at(), false).await?;
        Ok(())
    }

    /// The user's record changed: forget it here and tell the other instances.
    fn changed(&self, user: UserId) {
        self.0.cache.forget(user);
        self.0.events.changed(user);
    }

    /// The user's tokens stopped working: forget it here, tell the other instances, close
    /// the user's sockets everywhere. After the change is stored.
    fn closed(&self, user: UserId, why: AccountClosed) {
        self.0.cache.forget(user);
        self.0.events.closed(user, why);
    }

    /// Forgets every cached user (for the tests' fixtures written straight to storage).
    pub(crate) fn forget_cached_users(&self) {
        self.0.cache.clear();
    }

    /// Housekeeping run now and then: old cache entries and old login failures go.
    pub(crate) fn sweep(&self) {
        self.0.cache.sweep();
        self.0.logins.sweep();
    }

    /// Forgets blacklisted tokens that have expired anyway (SimpleJWT's `flushexpiredtokens`),
    /// so the table does not grow with every logout and rotation.
    pub(crate) async fn flush_expired_blacklist(&self) {
        match tokens::flush_expired(self.db()).await {
            Ok(0) => {}
            Ok(flushed) => tracing::debug!(flushed, "expired blacklisted tokens removed"),
            Err(err) => tracing::warn!(%err, "could not flush expired blacklisted tokens"),
        }
    }

    // ---- passwords -----------------------------------------------------------------------

    /// Checks the caller's current password for sensitive changes.
    pub(crate) async fn check_current_password(
        &self,
        user: &UserRow,
        field: &str,
        password: String,
    ) -> AccountResult<()> {
        match password::verify(password, Some(user.password.clone()))
            .await
            .map_err(AccountError::Hashing)?
        {
            Verdict::Valid { .. } => Ok(()),
            Verdict::Invalid => Err(AccountError::field(field, "Invalid password.")),
        }
    }

    pub(crate) async fn set_password(&self, user: &UserRow, new_password: String) -> AccountResult<()> {
        let problems = password_problems(&new_password, &user.email, &user.first_name, &user.last_name);
        if !problems.is_empty() {
            return Err(AccountError::Invalid([("new_password".to_string(), problems)].into()));
        }
        let hash = password::hash(new_password).await.map_err(AccountError::Hashing)?;
        // A new password ends every session: whoever knew the old one may hold its tokens.
        users::change_password(self.db(), user.id, &hash).await?;
        self.closed(user.id, AccountClosed::Revoked);
        self.0.events.heard_everywhere().await;
        Ok(())
    }

    /// Sends a reset link to an active account with this email; says nothing about whether it
    /// exists.
    pub(crate) async fn request_reset(&self, email: &Email) -> AccountResult<()> {
        let Some(user) = users::by_email(self.db(), email.as_str()).await? else {
            return Ok(());
        };
        if !user.is_active {
            return Ok(());
        }
        let settings = &self.0.settings;
        let path = settings
            .password_reset_confirm_url
            .replace("{uid}", &reset::encode_uid(user.id))
            .replace("{token}", &reset::make_token(&self.0.secret, &user));
        let link = format!(
            "{}/{}",
            settings.public_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        self.0.mailer.send(mail::Email {
            to: user.email.clone(),
            subject: "Password reset on Causerie".into(),
            body: format!(
                "You're receiving this email because you requested a password reset for your account.\n\n\
                 Please go to the following page and choose a new password:\n\n{link}\n\n\
                 The link works once and expires in {} days.\n",
                reset::TIMEOUT_SECS / 86400
            ),
        });
        Ok(())
    }

    pub(crate) async fn confirm_reset(&self, uid: &str, token: &str, new_password: String) -> AccountResult<()> {
        let user = match reset::decode_uid(uid) {
            Some(id) => users::by_id(self.db(), id).await?,
            None => None,
        };
        let Some(user) = user.filter(|u| u.is_active) else {
            return Err(AccountError::field("uid", "Invalid user id or user doesn't exist."));
        };
        if !reset::check_token(&self.0.secret, &user, token) {
            return Err(AccountError::field("token", "Invalid token for given user."));
        }
        self.set_password(&user, new_password).await
    }

    // ---- users ---------------------------------------------------------------------------

    pub(crate) async fn user(&self, id: UserId) -> AccountResult<Option<UserRow>> {
        Ok(users::by_id(self.db(), id).await?)
    }

    pub(crate) async fn user_by_email(&self, email: &Email) -> AccountResult<Option<UserRow>> {
        Ok(users::by_email(self.db(), email.as_str()).await?)
    }

    /// These users (unknown ids are left out), in no particular order.
    pub(crate) async fn users(&self, ids: &[UserId]) -> AccountResult<Vec<UserRow>> {
        Ok(users::many_by_id(self.db(), ids).await?)
    }

    /// These users by id (unknown ids are left out), from the cache for those it holds and
    /// from storage (then kept) for the others: the chat list shows the same users to every
    /// one of their contacts, so a change of one costs one read, not one per viewer.
    pub(crate) async fn cached_users(&self, ids: &[UserId]) -> AccountResult<Vec<Arc<UserRow>>> {
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.0.cache.get(*id) {
                Some(user) => found.push(user),
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let ticket = self.0.cache.ticket();
            for user in users::many_by_id(self.db(), &missing).await? {
                let user = Arc::new(user);
                self.0.cache.store(ticket, user.clone());
                found.push(user);
            }
        }
        Ok(found)
    }

    /// These users by id, each id looked up once (unknown ids are left out).
    pub(crate) async fn users_by_id(&self, ids: &[UserId]) -> AccountResult<HashMap<UserId, UserRow>> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Ok(self.users(&ids).await?.into_iter().map(|u| (u.id, u)).collect())
    }

    /// The user, if it exists and is active (someone a chat can be opened with).
    pub(crate) async fn active_user(&self, id: UserId) -> AccountResult<Option<UserRow>> {
        Ok(users::by_id(self.db(), id).await?.filter(|u| u.is_active))
    }

    /// `change.online` is the app's presence declaration (docs/protocol.md, "Presence"):
    /// stored first, so that the updated row answered shows it.
    pub(crate) async fn update_profile(&self, id: UserId, change: &ProfileChange) -> AccountResult<Option<UserRow>> {
        let declared = match change.online {
            Some(online) => Some(Declared {
                user: id,
                online,
                changed: presence::declare(self.db(), id, online).await?,
            }),
            None => None,
        };
        let updated = users::update_profile(self.db(), id, change).await?;
        self.changed(id);
        self.0.events.heard_everywhere().await;
        if let Some(declared) = declared {
            self.0.activity.declare(declared);
        }
        Ok(updated)
    }

    /// Deletes the user; their tokens stop working and their sockets close everywhere.
    pub(crate) async fn delete_user(&self, id: UserId) -> AccountResult<()> {
        users::delete(self.db(), id).await?;
        self.closed(id, AccountClosed::Deleted);
        self.0.events.heard_everywhere().await;
        // The deletion reaches rows that do not name the user's stamp (their messages'
        // authors in chats they had left): every cached view is void.
        self.freshness().touch_all();
        Ok(())
    }

    /// A page of all users by email, with the total.
    pub(crate) async fn list_users(&self, limit: i64, offset: i64) -> AccountResult<UserPage> {
        let (total, users) = users::list(self.db(), limit, offset).await?;
        Ok(UserPage { total, users })
    }

    pub(crate) async fn count_users(&self) -> AccountResult<i64> {
        Ok(users::count(self.db()).await?)
    }

    /// Active users other than `caller` whose first or last name contains every term. Without
    /// a term of at least [`SEARCH_TERM_MIN`] characters the answer is empty: a search is for
    /// finding someone, not for listing everyone.
    pub(crate) async fn search(
        &self,
        caller: UserId,
        terms: &[String],
        limit: i64,
        offset: i64,
    ) -> AccountResult<UserPage> {
        if !terms.iter().any(|t| t.chars().count() >= SEARCH_TERM_MIN) {
            return Ok(UserPage {
                total: 0,
                users: Vec::new(),
            });
        }
        let (total, users) = users::search(self.db(), caller, terms, limit, offset).await?;
        Ok(UserPage { total, users })
    }

    /// Activates or deactivates; false when there is no such user.
    /// A deactivation ends every session (the token epoch moves on, so a later reactivation
    /// does not bring the old tokens back) and closes the user's sockets everywhere.
    pub(crate) async fn set_active(&self, id: UserId, active: bool) -> AccountResult<bool> {
        let found = users::set_active(self.db(), id, active).await?;
        if active {
            self.changed(id);
        } else {
            self.closed(id, AccountClosed::Deactivated);
        }
        self.0.events.heard_everywhere().await;
        Ok(found)
    }

    // ---- staff administration (the admin site) ------------------------------------------

    /// Creates a user whose password must pass Django's validators (errors on `password`).
    pub(crate) async fn create_user_checked(&self, reg: Registration) -> AccountResult<UserRow> {
        let mut errors = names_problems(&reg.first_name, &reg.last_name);
        let problems = password_problems(&reg.password, reg.email.as_str(), &reg.first_name, &reg.last_name);
        if !problems.is_empty() {
            errors.insert("password".to_string(), problems);
        }
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        self.create_user(reg).await
    }

    /// A page of the users `filter` selects, by email, with the total.
    pub(crate) async fn find_users(&self, filter: &UserFilter, limit: i64, offset: i64) -> AccountResult<UserPage> {
        let (total, users) = users::filtered(self.db(), filter, limit, offset).await?;
        Ok(UserPage { total, users })
    }

    /// The ids of at most `limit` users whose email or names contain every term.
    pub(crate) async fn matching_user_ids(&self, terms: &[String], limit: i64) -> AccountResult<Vec<UserId>> {
        let filter = UserFilter {
            terms: terms.to_vec(),
            ..UserFilter::default()
        };
        Ok(users::filtered_ids(self.db(), &filter, limit).await?)
    }

    /// Staff's change of an account: names and flags (who may change which flag is the admin
    /// site's rule; the names obey the same limits as everywhere). None: no such user.
    pub(crate) async fn change_account(&self, id: UserId, change: &AccountChange) -> AccountResult<Option<UserRow>> {
        let errors = names_problems(&change.first_name, &change.last_name);
        if !errors.is_empty() {
            return Err(AccountError::Invalid(errors));
        }
        let changed = users::change_account(self.db(), id, change).await?;
        if change.is_active {
            self.changed(id);
        } else {
            self.closed(id, AccountClosed::Deactivated);
        }
        self.0.events.heard_everywhere().await;
        Ok(changed)
    }

    // ---- presence records (the rules are `realtime::presence`'s) --------------------------

    /// Who was seen and what was declared, for presence.
    pub(crate) fn activity(&self) -> &Activity {
        &self.0.activity
    }

    /// A socket of the user opened: the time they came online, None if they already were.
    pub(crate) async fn socket_opened(&self, id: UserId) -> AccountResult<Option<DateTime<Utc>>> {
        // Most sockets open while their user is online already: a read costs SQLite's single
        // writer (and the message writer waiting on it) nothing, an update would.
        if presence::shown(self.db(), id).await?.is_some_and(|(online, _)| online) {
            return Ok(None);
        }
        let at = self
            .0
            .opened
            .store(self.db(), id)
            .await
            .map_err(|err| AccountError::Store(sqlx::Error::Protocol(format!("storing presence: {err}"))))?;
        self.changed_if(id, at)
    }

    /// The user's last socket (on every instance) closed: the time they went offline, None if
    /// they stay online by declaration or were offline already.
    pub(crate) async fn sockets_gone(&self, id: UserId) -> AccountResult<Option<DateTime<Utc>>> {
        let at = presence::sockets_gone(self.db(), id).await?;
        self.changed_if(id, at)
    }

    /// The user was not seen since `cutoff`: the time they went offline, None if nothing
    /// changed (offline already, or declared online since `cutoff`).
    pub(crate) async fn expire_presence(
        &self,
        id: UserId,
        cutoff: DateTime<Utc>,
    ) -> AccountResult<Option<DateTime<Utc>>> {
        let at = presence::expire(self.db(), id, cutoff).await?;
        self.changed_if(id, at)
    }

    /// `online` and `lastConnexionDate` as shown to others (None: no such user).
    pub(crate) async fn shown_presence(&self, id: UserId) -> AccountResult<Option<(bool, Option<DateTime<Utc>>)>> {
        Ok(presence::shown(self.db(), id).await?)
    }

    /// Every user shown online.
    pub(crate) async fn online_users(&self) -> AccountResult<Vec<UserId>> {
        Ok(presence::online_ids(self.db()).await?)
    }

    fn changed_if(&self, id: UserId, at: Option<DateTime<Utc>>) -> AccountResult<Option<DateTime<Utc>>> {
        if at.is_some() {
            self.changed(id);
        }
        Ok(at)
    }
}

/// Password rule messages for a would-be password of this user (empty when acceptable).
pub(crate) fn password_problems(password: &str, email: &str, first_name: &str, last_name: &str) -> Vec<String> {
    policy::check(
        password,
        &Attributes {
            email,
            first_name,
            last_name,
        },
    )
}

/// Names longer than the column allows, as field errors.
fn names_problems(first_name: &str, last_name: &str) -> crate::validation::FieldErrors {
    let mut errors = crate::validation::FieldErrors::new();
    for (field, value) in [("first_name", first_name), ("last_name", last_name)] {
        if value.chars().count() > NAME_MAX {
            errors.insert(
                field.to_string(),
                vec![format!("Ensure this field has no more than {NAME_MAX} characters.")],
            );
        }
    }
    errors
}

fn duplicate_email() -> AccountError {
    AccountError::field("email", "user with this email address already exists.")
}
