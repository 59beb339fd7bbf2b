//! Password reset tokens in the manner of Django's `PasswordResetTokenGenerator`: an HMAC over the
//! user's id, password hash and last login plus a timestamp. Nothing is stored; the token dies
//! when the password changes (so it is single-use), when the user logs in, or after the timeout.

use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::ids::UserId;
use crate::store::users::UserRow;

/// Django's PASSWORD_RESET_TIMEOUT default: three days.
pub const TIMEOUT_SECS: i64 = 3 * 24 * 3600;

pub fn encode_uid(id: UserId) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.to_string())
}

pub fn decode_uid(uid: &str) -> Option<UserId> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(uid.trim_end_matches('='))
        .ok()?;
    Uuid::parse_str(std::str::from_utf8(&bytes).ok()?).ok().map(UserId)
}

pub fn make_token(secret: &[u8], user: &UserRow) -> String {
    make_token_at(secret, user, Utc::now().timestamp())
}

fn make_token_at(secret: &[u8], user: &UserRow, ts: i64) -> String {
    let ts36 = to_base36(ts.max(0) as u64);
    format!("{ts36}-{}", signature(secret, user, &ts36))
}

pub fn check_token(secret: &[u8], user: &UserRow, token: &str) -> bool {
    let Some((ts36, sig)) = token.split_once('-') else {
        return false;
    };
    let Some(ts) = from_base36(ts36) else {
        return false;
    };
    let age = Utc::now().timestamp() - ts as i64;
    if !(0..=TIMEOUT_SECS).contains(&age) {
        return false;
    }
    signature(secret, user, ts36).as_bytes().ct_eq(sig.as_bytes()).into()
}

fn signature(secret: &[u8], user: &UserRow, ts36: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"causerie.password_reset\0");
    mac.update(user.id.0.as_bytes());
    mac.update(user.password.as_bytes());
    mac.update(
        user.last_login
            .map(|t| t.timestamp_micros())
            .unwrap_or(0)
            .to_string()
            .as_bytes(),
    );
    mac.update(user.email.as_bytes());
    mac.update(ts36.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

fn from_base36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    u64::from_str_radix(s, 36).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn user(password: &str) -> UserRow {
        let now = Utc::now();
        UserRow {
            id: UserId::new(),
            email: "a@example.com".into(),
            password: password.into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined: now,
            last_login: None,
            last_connexion_date: None,
            online: false,
            avatar: None,
            created_at: now,
            updated_at: now,
            token_epoch: 0,
        }
    }

    #[test]
    fn token_dies_with_password_change_and_time() {
        let secret = b"secret-secret-secret-secret-secret";
        let u = user("hash-1");
        let token = make_token(secret, &u);
        assert!(check_token(secret, &u, &token));
        let changed = UserRow {
            password: "hash-2".into(),
            ..u.clone()
        };
        assert!(!check_token(secret, &changed, &token));
        let old = make_token_at(secret, &u, Utc::now().timestamp() - TIMEOUT_SECS - 10);
        assert!(!check_token(secret, &u, &old));
        assert!(!check_token(secret, &u, "garbage"));
        assert!(!check_token(b"other-secret-other-secret-other", &u, &token));
    }

    #[test]
    fn uid_round_trip() {
        let id = UserId::new();
        assert_eq!(decode_uid(&encode_uid(id)), Some(id));
        assert_eq!(decode_uid("!!"), None);
    }
}
