//! `chat_user` → `users`.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::batches::Batches;
use super::progress::Progress;
use super::source::{self, DjangoUser, Source, SourceError, SourceRow};
use super::{Context, ImportError};
use crate::accounts::email::Email;
use crate::store::import::{self as store, ImportedUser, UserWrite};
use crate::store::users::UserRow;

const TABLE: &str = "chat_user";

pub(super) async fn run(ctx: &mut Context<'_>, source: &mut Source) -> Result<(), ImportError> {
    let since = ctx.since(TABLE);
    let total = source
        .count(&source::count_changed_since(TABLE, since), since)
        .await
        .map_err(SourceError::Sql)?;
    let progress = Progress::start(ctx.progress, "users", total.max(0) as u64);
    let sql = source::changed_since(source::USERS, source::USERS_ORDER, since);
    let mut batches = Batches::new(source.rows(&sql, since), progress);
    while let Some(batch) = batches.next().await? {
        import_batch(ctx, batch).await?;
    }
    Ok(())
}

async fn import_batch(ctx: &mut Context<'_>, rows: Vec<SourceRow>) -> Result<(), ImportError> {
    let mut accepted = Vec::with_capacity(rows.len());
    for row in rows {
        ctx.report.users.read += 1;
        let user = match DjangoUser::decode(&row) {
            Ok(user) => user,
            Err(reason) => {
                ctx.report.refuse(TABLE, row.key("id"), reason);
                continue;
            }
        };
        ctx.saw(TABLE, user.updated_at);
        match check(ctx, &user) {
            Ok(email) => {
                let known = &mut ctx.known;
                if let Some(old) = known.users.insert(user.id, email.clone()) {
                    if old != email {
                        known.emails.remove(&old);
                    }
                }
                known.emails.insert(email.clone(), user.id);
                accepted.push(imported(user, email));
            }
            Err(reason) => {
                ctx.known.refused_users.insert(user.id);
                ctx.report.refuse(TABLE, user.id.to_string(), reason);
            }
        }
    }
    let existing = match ctx.target {
        Some(db) => {
            let ids: Vec<Uuid> = accepted.iter().map(|u| u.id).collect();
            store::existing_users(db, &ids, ctx.import_tables)
                .await
                .map_err(ImportError::Target)?
        }
        None => Default::default(),
    };
    let mut writes = Vec::new();
    for user in accepted {
        match existing.get(&user.id) {
            None => {
                ctx.report.users.new += 1;
                writes.push(UserWrite {
                    user,
                    keep_password: false,
                });
            }
            Some(found) => {
                // Django's hash unchanged since it was imported: keep Causerie's, which the
                // user's first login may have upgraded to argon2id.
                let keep_password = found.imported_digest.as_deref() == Some(user.password_digest.as_str());
                // A login on Causerie since (a trial before cutover) is the later one, and so
                // is the `updated_at` its hash upgrade wrote.
                let mut user = user;
                user.last_login = user.last_login.max(found.row.last_login);
                user.updated_at = user.updated_at.max(found.row.updated_at);
                if same(&found.row, &user, keep_password) {
                    ctx.report.users.unchanged += 1;
                } else {
                    ctx.report.users.updated += 1;
                    writes.push(UserWrite { user, keep_password });
                }
            }
        }
    }
    if let Some(db) = ctx.writer() {
        store::apply_users(db, &writes)
            .await
            .map_err(|source| ImportError::Write {
                what: format!("a batch of {} users", writes.len()),
                source,
            })?;
    }
    Ok(())
}

/// The user's normalised email, or why the row is refused.
fn check(ctx: &Context<'_>, user: &DjangoUser) -> Result<String, String> {
    let Some(email) = Email::parse(&user.email) else {
        return Err(format!("email {:?} is not a valid email address", user.email));
    };
    let email = email.as_str().to_string();
    match ctx.known.emails.get(&email) {
        Some(other) if *other != user.id => Err(format!(
            "email {:?} is already the email of user {other} (Causerie compares emails ignoring case)",
            user.email
        )),
        _ => Ok(email),
    }
}

fn imported(user: DjangoUser, email: String) -> ImportedUser {
    let password_digest = hex::encode(Sha256::digest(user.password.as_bytes()));
    ImportedUser {
        id: user.id,
        email,
        password: user.password,
        password_digest,
        first_name: user.first_name,
        last_name: user.last_name,
        is_active: user.is_active,
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
        date_joined: user.date_joined,
        last_login: user.last_login,
        last_connexion_date: user.last_connexion_date,
        online: user.online,
        avatar: user.avatar,
        created_at: user.created_at,
        updated_at: user.updated_at,
    }
}

fn same(row: &UserRow, user: &ImportedUser, keep_password: bool) -> bool {
    row.email == user.email
        && (keep_password || row.password == user.password)
        && row.first_name == user.first_name
        && row.last_name == user.last_name
        && row.is_active == user.is_active
        && row.is_staff == user.is_staff
        && row.is_superuser == user.is_superuser
        && row.date_joined == user.date_joined
        && row.last_login == user.last_login
        && row.last_connexion_date == user.last_connexion_date
        && row.online == user.online
        && row.avatar == user.avatar
        && row.created_at == user.created_at
        && row.updated_at == user.updated_at
}
