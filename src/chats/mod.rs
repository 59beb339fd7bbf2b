//! Chats and messages: the rules (service), group commit (writer), REST routes and views.

pub mod groups;
pub mod routes;
pub mod service;
pub mod view;
pub mod writer;
