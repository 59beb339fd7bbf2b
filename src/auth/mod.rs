//! Who is calling: passwords, tokens and the extractor that turns a Bearer header into a user.

pub(crate) mod extract;
pub(crate) mod jwt;
pub(crate) mod password;
pub(crate) mod reset;

pub(crate) use extract::CurrentUser;
