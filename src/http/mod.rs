//! Pieces every REST handler shares: bodies, field reading, pagination.

pub mod body;
pub mod fields;
pub mod page;

pub use body::Body;
pub use fields::Fields;
pub use page::{PageLink, PageRequest};
