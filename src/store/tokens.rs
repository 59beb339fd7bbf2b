//! Blacklisted refresh tokens (SimpleJWT's `token_blacklist` app), by `jti`.

use chrono::{DateTime, Utc};

use super::shared_commit::{self, SmallWrite, WriteConn};
use super::{now, Db};
use crate::ids::UserId;
use crate::{with_conn, with_db, with_db_write};

/// Blacklists a token (`rotated`: because rotation replaced it, not by a logout); returns false
/// when it already was (so a rotated token is used once).
pub async fn blacklist(
    db: &Db,
    jti: &str,
    user_id: UserId,
    expires_at: DateTime<Utc>,
    rotated: bool,
) -> Result<bool, sqlx::Error> {
    let jti = jti.to_owned();
    shared_commit::store(
        db,
        Blacklist {
            jti,
            user_id,
            expires_at,
            rotated,
        },
    )
    .await
}

struct Blacklist {
    jti: String,
    user_id: UserId,
    expires_at: DateTime<Utc>,
    rotated: bool,
}

impl SmallWrite for Blacklist {
    type Output = bool;
    const NEEDS_TRANSACTION: bool = false;

    async fn run(self, conn: WriteConn<'_>) -> Result<bool, sqlx::Error> {
        let Blacklist {
            jti,
            user_id,
            expires_at,
            rotated,
        } = self;
        let done = with_conn!(conn, c => sqlx::query(
        "INSERT INTO token_blacklist (jti, user_id, expires_at, rotated) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (jti) DO NOTHING")
        .bind(jti)
        .bind(user_id)
        .bind(expires_at)
        .bind(rotated)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }
}

/// Whether a token is blacklisted, and if so whether rotation put it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    No,
    LoggedOut,
    Rotated,
}

pub async fn is_blacklisted(db: &Db, jti: &str) -> Result<Listed, sqlx::Error> {
    let found: Option<bool> = with_db!(db, pool => sqlx::query_scalar("SELECT rotated FROM token_blacklist WHERE jti = $1")
        .bind(jti)
        .fetch_optional(pool)
        .await)?;
    Ok(match found {
        None => Listed::No,
        Some(false) => Listed::LoggedOut,
        Some(true) => Listed::Rotated,
    })
}

/// Drops entries for tokens that have expired anyway (SimpleJWT's `flushexpiredtokens`).
pub(crate) async fn flush_expired(db: &Db) -> Result<u64, sqlx::Error> {
    with_db_write!(db, pool => sqlx::query("DELETE FROM token_blacklist WHERE expires_at < $1")
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}
