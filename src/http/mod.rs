//! Pieces every REST handler shares: typed bodies, query filters and path ids, pagination.

pub(crate) mod answers;
pub(crate) mod asset;
pub(crate) mod body;
pub(crate) mod fields;
pub(crate) mod micros;
pub(crate) mod page;
pub(crate) mod path;
pub(crate) mod query;

pub(crate) use body::{BodyLimit, Form, FromBody};
pub(crate) use fields::Fields;
pub(crate) use page::{LinkBase, Page, PageLink, PageRequest};
pub(crate) use path::Ids;
pub(crate) use query::{FromQuery, Query, QueryParams};

#[cfg(test)]
pub(crate) mod schema_check;
