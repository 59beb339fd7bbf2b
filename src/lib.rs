//! Causerie: a chat backend that serves the API of the Django Channels + DRF + djoser +
//! SimpleJWT stack from one Rust binary.
//!
//! The library is the binary's insides: `cli::main` is what `causerie` runs. Modules are
//! private to the crate; the public surface is the CLI, the configuration, the server as
//! tests start it, the id types, the realtime frames (`wire`), and the test support in
//! `testing`.

mod accounts;
mod admin;
mod app;
mod auth;
mod batches;
mod bench;
mod chats;
pub mod cli;
pub mod config;
mod counters;
mod error;
mod freshness;
mod http;
pub mod ids;
mod import;
mod limits;
mod mail;
mod media;
mod push;
mod realtime;
mod store;
#[doc(hidden)]
pub mod testing;
mod validation;
mod web;
pub mod wire;

pub use app::Server;
pub use config::Config;
