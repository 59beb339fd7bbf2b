//! Error answers many routes document in the same words, for `#[utoipa::path(responses(…))]`
//! beside each route's own (`responses((status = OK, …), NotFound)`).

use std::collections::BTreeMap;

use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};

macro_rules! detail_answer {
    ($(#[$doc:meta])* $name:ident, $status:literal, $description:literal) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let detail = Content::new(Some(Ref::from_schema_name("Detail")));
                let answer = ResponseBuilder::new().description($description).content("application/json", detail);
                BTreeMap::from([($status.to_string(), answer.build().into())])
            }
        }
    };
}

detail_answer!(
    /// `ApiError::NotFound`: no such object, or not the caller's to see.
    NotFound,
    "404",
    "Not found."
);
detail_answer!(
    /// `ApiError::PermissionDenied`.
    Forbidden,
    "403",
    "You do not have permission to perform this action."
);
detail_answer!(
    /// `ApiError::InvalidPage`: a page past the end of a list.
    InvalidPage,
    "404",
    "Invalid page."
);
