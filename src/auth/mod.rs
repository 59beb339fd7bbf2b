//! Who is calling: passwords, tokens and the extractor that turns a Bearer header into a user.

pub mod extract;
pub mod jwt;
pub mod password;
pub mod reset;

pub use extract::CurrentUser;
