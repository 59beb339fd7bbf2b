//! Causerie: a chat backend that serves the API of the Django Channels + DRF + djoser +
//! SimpleJWT stack from one Rust binary.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod bench;
pub mod chats;
pub mod config;
pub mod error;
pub mod http;
pub mod import;
pub mod limits;
pub mod mail;
pub mod realtime;
pub mod store;
pub mod web;

pub use app::{AppState, Server};
pub use config::Config;
