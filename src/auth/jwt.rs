//! JSON Web Tokens as SimpleJWT issues them: HS256, claims `token_type`, `exp`, `iat`, `jti`
//! (32 hex chars) and `user_id`, no leeway. SimpleJWT 4.6 wrote no `iat`, so a token without one
//! is accepted: a deployment that keeps Django's `SECRET_KEY` keeps its users logged in.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::UserId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub token_type: TokenType,
    pub exp: i64,
    /// Always written by us; absent from tokens SimpleJWT 4.6 issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub jti: String,
    pub user_id: String,
    /// The user's token epoch when this was issued (Causerie's own claim; docs/security.md).
    /// Absent from SimpleJWT's tokens and from those issued before revocation existed: such a
    /// token counts as epoch 0, so it works until its user's first revocation, and never after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

impl Claims {
    /// The epoch this token was issued under (0 when it carries none).
    pub(crate) fn epoch(&self) -> i64 {
        self.epoch.unwrap_or(0)
    }

    pub(crate) fn user_uuid(&self) -> Option<UserId> {
        Uuid::parse_str(&self.user_id).ok().map(UserId)
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.exp, 0).single().unwrap_or_else(Utc::now)
    }
}

#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], access_lifetime: Duration, refresh_lifetime: Duration) -> TokenIssuer {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_lifetime,
            refresh_lifetime,
        }
    }

    fn issue(&self, token_type: TokenType, user_id: UserId, epoch: Option<i64>) -> String {
        let lifetime = match token_type {
            TokenType::Access => self.access_lifetime,
            TokenType::Refresh => self.refresh_lifetime,
        };
        self.issue_for(token_type, user_id, lifetime, epoch)
    }

    fn issue_for(&self, token_type: TokenType, user_id: UserId, lifetime: Duration, epoch: Option<i64>) -> String {
        let now = Utc::now().timestamp();
        let claims = Claims {
            token_type,
            exp: now + lifetime.as_secs() as i64,
            iat: Some(now),
            jti: Uuid::new_v4().simple().to_string(),
            user_id: user_id.to_string(),
            epoch,
        };
        // HS256 with an in-memory key cannot fail to encode plain claims.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 encoding")
    }

    /// An access token without an epoch claim (epoch 0), as tests and the bench mint them.
    pub fn access(&self, user_id: UserId) -> String {
        self.issue(TokenType::Access, user_id, None)
    }

    /// A refresh token without an epoch claim (epoch 0).
    pub fn refresh(&self, user_id: UserId) -> String {
        self.issue(TokenType::Refresh, user_id, None)
    }

    /// An access token issued under the user's current `epoch`.
    pub(crate) fn access_at(&self, user_id: UserId, epoch: i64) -> String {
        self.issue(TokenType::Access, user_id, Some(epoch))
    }

    /// A refresh token issued under the user's current `epoch`.
    pub(crate) fn refresh_at(&self, user_id: UserId, epoch: i64) -> String {
        self.issue(TokenType::Refresh, user_id, Some(epoch))
    }

    /// An access token with a lifetime of its own (tests of expiry and re-authentication).
    pub fn access_lasting(&self, user_id: UserId, lifetime: Duration) -> String {
        self.issue_for(TokenType::Access, user_id, lifetime, None)
    }

    /// Decodes and checks signature, algorithm and expiry; `expected` also pins the type.
    pub fn decode(&self, token: &str, expected: Option<TokenType>) -> Option<Claims> {
        self.decode_within(token, expected, 0)
    }

    /// As [`TokenIssuer::decode`], also accepting a token that expired less than
    /// `grace_secs` ago (a WebSocket handshake's `ws_token_grace_secs`).
    pub fn decode_within(&self, token: &str, expected: Option<TokenType>, grace_secs: u64) -> Option<Claims> {
        let data = if grace_secs == 0 {
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?
        } else {
            let mut validation = self.validation.clone();
            validation.leeway = grace_secs;
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?
        };
        let claims = data.claims;
        if claims.jti.is_empty() || claims.user_uuid().is_none() {
            return None;
        }
        match expected {
            Some(t) if t != claims.token_type => None,
            _ => Some(claims),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(60),
            Duration::from_secs(120),
        )
    }

    #[test]
    fn grace_accepts_only_recently_expired_tokens() {
        let t = issuer();
        let user = UserId::new();
        let now = Utc::now().timestamp();
        let expired = |ago: i64| {
            let claims = Claims {
                token_type: TokenType::Access,
                exp: now - ago,
                iat: Some(now - ago - 60),
                jti: "0".repeat(32),
                user_id: user.to_string(),
                epoch: None,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap()
        };
        let recent = expired(30);
        assert!(t.decode(&recent, Some(TokenType::Access)).is_none());
        assert!(t.decode_within(&recent, Some(TokenType::Access), 60).is_some());
        assert!(t.decode_within(&expired(120), Some(TokenType::Access), 60).is_none());
        assert!(t.decode_within(&t.refresh(user), Some(TokenType::Access), 60).is_none());
    }

    #[test]
    fn access_is_not_refresh() {
        let t = issuer();
        let user = UserId::new();
        let access = t.access(user);
        let refresh = t.refresh(user);
        assert!(t.decode(&access, Some(TokenType::Access)).is_some());
        assert!(t.decode(&access, Some(TokenType::Refresh)).is_none());
        assert!(t.decode(&refresh, Some(TokenType::Access)).is_none());
        let claims = t.decode(&refresh, None).unwrap();
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(claims.user_id, user.to_string());
        assert_eq!(claims.iat.map(|iat| claims.exp - iat), Some(120));
    }

    /// A token as SimpleJWT 4.6 signs it: `token_type`, `exp`, `jti`, `user_id`, no `iat`.
    fn simplejwt_46_token(secret: &[u8], token_type: &str, exp: i64, user: Uuid) -> String {
        let claims = serde_json::json!({
            "token_type": token_type,
            "exp": exp,
            "jti": Uuid::new_v4().simple().to_string(),
            "user_id": user.to_string(),
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn simplejwt_46_tokens_without_iat_are_accepted() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let user = Uuid::new_v4();
        let later = Utc::now().timestamp() + 600;
        let access = simplejwt_46_token(secret, "access", later, user);
        let claims = issuer()
            .decode(&access, Some(TokenType::Access))
            .expect("accepted without iat");
        assert_eq!(claims.iat, None);
        assert_eq!(claims.user_uuid(), Some(UserId(user)));
        let refresh = simplejwt_46_token(secret, "refresh", later, user);
        assert!(issuer().decode(&refresh, Some(TokenType::Access)).is_none());
        assert!(issuer().decode(&refresh, Some(TokenType::Refresh)).is_some());
        // Still checked: expiry and the signing key.
        let expired = simplejwt_46_token(secret, "access", Utc::now().timestamp() - 1, user);
        assert!(issuer().decode(&expired, None).is_none());
        let forged = simplejwt_46_token(b"not-the-key-not-the-key-not-the-k", "access", later, user);
        assert!(issuer().decode(&forged, None).is_none());
        // What we issue still carries iat.
        let ours = issuer().decode(&issuer().access(UserId(user)), None).unwrap();
        assert!(ours.iat.is_some());
    }

    #[test]
    fn other_key_and_garbage_are_refused() {
        let other = TokenIssuer::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let token = other.access(UserId::new());
        assert!(issuer().decode(&token, None).is_none());
        assert!(issuer().decode("not.a.jwt", None).is_none());
    }
}
