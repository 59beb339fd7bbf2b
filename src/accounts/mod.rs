//! Accounts: djoser-compatible users and SimpleJWT-compatible tokens.

pub(crate) mod email;
mod error;
mod extract;
mod policy;
pub(crate) mod requests;
pub(crate) mod routes;
mod service;
pub(crate) mod view;

pub(crate) use error::AccountError;
pub(crate) use extract::CurrentUser;
pub(crate) use service::{password_problems, Accounts, Registration, NAME_MAX};
