//! The credentials: password hashes, JSON Web Tokens and password reset tokens. No rules about
//! who may log in live here (that is `accounts`), only the cryptography.

pub(crate) mod jwt;
pub(crate) mod password;
pub(crate) mod reset;
