//! The bodies djoser's and SimpleJWT's routes accept, each read with DRF's messages. The
//! schema attributes describe what each reader reads; `http::tests` holds the two together.

use utoipa::ToSchema;

use super::email::{self, Email};
use super::service::{password_problems, NAME_MAX};
use crate::http::{Fields, FromBody};
use crate::store::users::ProfileChange;

/// Longest password read (Django's validators cap it the same).
pub(crate) const PASSWORD_MAX: usize = 4096;
/// Longest token, uid or reset token read.
const TOKEN_MAX: usize = 4096;
const RESET_PART_MAX: usize = 200;

/// `POST /auth/users/`: djoser's `UserCreateSerializer`.
#[derive(Debug, ToSchema)]
pub(crate) struct NewAccount {
    pub email: Email,
    /// Django's default rules: at least 8 characters, not entirely numeric, not common, not
    /// too similar to the email or the names.
    #[schema(format = Password, min_length = 1, max_length = 4096)]
    pub password: String,
    #[schema(max_length = 150, required = false)]
    pub first_name: String,
    #[schema(max_length = 150, required = false)]
    pub last_name: String,
}

impl FromBody for NewAccount {
    fn from_fields(f: &mut Fields<'_>) -> Option<NewAccount> {
        let email = f.required_str("email", email::MAX_LEN);
        let email = f.refine("email", email, |e| Email::parse(&e), email::INVALID);
        let password = f.required_raw_str("password", PASSWORD_MAX);
        let first_name = f.optional_str("first_name", NAME_MAX).unwrap_or_default();
        let last_name = f.optional_str("last_name", NAME_MAX).unwrap_or_default();
        // The serializer's `validate`: the password policy, which needs the other fields.
        if let (Some(email), Some(password)) = (&email, &password) {
            for problem in password_problems(password, email.as_str(), &first_name, &last_name) {
                f.error("password", problem);
            }
        }
        Some(NewAccount {
            email: email?,
            password: password?,
            first_name,
            last_name,
        })
    }
}

/// `PUT`/`PATCH` of a djoser user: the names are its writable fields (the email is its
/// read-only login); a field left out is left as it is.
#[derive(Debug, ToSchema)]
pub(crate) struct NamesChange {
    #[schema(max_length = 150, nullable = false)]
    pub first_name: Option<String>,
    #[schema(max_length = 150, nullable = false)]
    pub last_name: Option<String>,
}

impl FromBody for NamesChange {
    fn from_fields(f: &mut Fields<'_>) -> Option<NamesChange> {
        Some(NamesChange {
            first_name: f.optional_str("first_name", NAME_MAX),
            last_name: f.optional_str("last_name", NAME_MAX),
        })
    }
}

impl From<NamesChange> for ProfileChange {
    fn from(names: NamesChange) -> ProfileChange {
        ProfileChange {
            first_name: names.first_name,
            last_name: names.last_name,
            ..ProfileChange::default()
        }
    }
}

/// Deleting an account: djoser's `UserDeleteSerializer`.
#[derive(Debug, ToSchema)]
pub(crate) struct CurrentPassword {
    /// The caller's own password.
    #[schema(format = Password, min_length = 1)]
    pub current_password: String,
}

impl FromBody for CurrentPassword {
    fn from_fields(f: &mut Fields<'_>) -> Option<CurrentPassword> {
        Some(CurrentPassword {
            current_password: f.required_raw_str("current_password", PASSWORD_MAX)?,
        })
    }
}

/// `POST /auth/users/set_password/`: djoser's `SetPasswordSerializer` (its fields in that
/// order: `new_password` from `PasswordSerializer`, then `current_password`).
#[derive(Debug, ToSchema)]
pub(crate) struct PasswordChange {
    #[schema(format = Password, min_length = 1)]
    pub new_password: String,
    #[schema(format = Password, min_length = 1)]
    pub current_password: String,
}

impl FromBody for PasswordChange {
    fn from_fields(f: &mut Fields<'_>) -> Option<PasswordChange> {
        let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
        let current_password = f.required_raw_str("current_password", PASSWORD_MAX);
        Some(PasswordChange {
            new_password: new_password?,
            current_password: current_password?,
        })
    }
}

/// `POST /auth/users/reset_password/`.
#[derive(Debug, ToSchema)]
pub(crate) struct ResetRequest {
    pub email: Email,
}

impl FromBody for ResetRequest {
    fn from_fields(f: &mut Fields<'_>) -> Option<ResetRequest> {
        let email = f.required_str("email", email::MAX_LEN);
        Some(ResetRequest {
            email: f.refine("email", email, |e| Email::parse(&e), email::INVALID)?,
        })
    }
}

/// `POST /auth/users/reset_password_confirm/`: the reset link's two parts and the new password.
#[derive(Debug, ToSchema)]
pub(crate) struct ResetConfirm {
    #[schema(max_length = 200, pattern = r"\S")]
    pub uid: String,
    #[schema(max_length = 200, pattern = r"\S")]
    pub token: String,
    #[schema(format = Password, min_length = 1)]
    pub new_password: String,
}

impl FromBody for ResetConfirm {
    fn from_fields(f: &mut Fields<'_>) -> Option<ResetConfirm> {
        let uid = f.required_str("uid", RESET_PART_MAX);
        let token = f.required_str("token", RESET_PART_MAX);
        let new_password = f.required_raw_str("new_password", PASSWORD_MAX);
        Some(ResetConfirm {
            uid: uid?,
            token: token?,
            new_password: new_password?,
        })
    }
}

/// `POST /auth/jwt/create/`. The email is not checked for shape: an address that cannot exist
/// is refused like any wrong credentials.
#[derive(Debug, ToSchema)]
pub(crate) struct Credentials {
    #[schema(format = Email, min_length = 1, max_length = 254)]
    pub email: String,
    #[schema(format = Password, min_length = 1)]
    pub password: String,
}

impl FromBody for Credentials {
    fn from_fields(f: &mut Fields<'_>) -> Option<Credentials> {
        let email = f.required_str("email", email::MAX_LEN);
        let password = f.required_raw_str("password", PASSWORD_MAX);
        Some(Credentials {
            email: email?,
            password: password?,
        })
    }
}

/// A refresh token (`/auth/jwt/refresh/`, `/auth/jwt/blacklist/`).
#[derive(Debug, ToSchema)]
pub(crate) struct RefreshToken {
    #[schema(pattern = r"\S")]
    pub refresh: String,
}

impl FromBody for RefreshToken {
    fn from_fields(f: &mut Fields<'_>) -> Option<RefreshToken> {
        Some(RefreshToken {
            refresh: f.required_str("refresh", TOKEN_MAX)?,
        })
    }
}

/// A token of either type (`/auth/jwt/verify/`).
#[derive(Debug, ToSchema)]
pub(crate) struct AnyToken {
    #[schema(pattern = r"\S")]
    pub token: String,
}

impl FromBody for AnyToken {
    fn from_fields(f: &mut Fields<'_>) -> Option<AnyToken> {
        Some(AnyToken {
            token: f.required_str("token", TOKEN_MAX)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::schema_check::body_matches_its_schema;

    #[test]
    fn every_body_documents_what_it_reads() {
        body_matches_its_schema::<NewAccount>();
        body_matches_its_schema::<NamesChange>();
        body_matches_its_schema::<CurrentPassword>();
        body_matches_its_schema::<PasswordChange>();
        body_matches_its_schema::<ResetRequest>();
        body_matches_its_schema::<ResetConfirm>();
        body_matches_its_schema::<Credentials>();
        body_matches_its_schema::<RefreshToken>();
        body_matches_its_schema::<AnyToken>();
    }
}
