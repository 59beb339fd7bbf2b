//! Accounts: djoser-compatible users and SimpleJWT-compatible tokens.

mod activity;
mod cache;
pub(crate) mod email;
mod error;
mod events;
mod extract;
mod guard;
mod opened;
mod policy;
pub(crate) mod requests;
pub(crate) mod routes;
mod service;
pub(crate) mod view;

pub(crate) use activity::Declared;
pub(crate) use cache::AuthCache;
pub(crate) use error::AccountError;
pub(crate) use events::{AccountClosed, AccountEvents, NoListeners};
pub(crate) use extract::CurrentUser;
pub(crate) use service::{password_problems, Accounts, Registration, NAME_MAX};
