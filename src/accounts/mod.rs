//! Accounts: djoser-compatible users and SimpleJWT-compatible tokens.

pub mod email;
pub mod policy;
pub mod routes;
pub mod service;
pub mod view;
