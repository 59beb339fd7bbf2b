//! Pieces every REST handler shares: bodies, field reading, pagination.

pub(crate) mod body;
pub(crate) mod fields;
pub(crate) mod page;

pub(crate) use body::{Body, BodyLimit};
pub(crate) use fields::Fields;
pub(crate) use page::{PageLink, PageRequest};
