//! The OpenAPI 3.1 document of the routes that exist, built with utoipa's builder API.
//!
//! The handlers read their bodies through `Fields` (DRF-exact errors) rather than typed
//! extractors, so there is nothing to derive from; this file describes them by hand and must
//! follow `accounts/routes.rs`, `chats/routes.rs`, `realtime/routes.rs` and `app.rs`.
//! `tests/web.rs` checks that every route of those routers appears here.

use std::sync::OnceLock;

use serde_json::json;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
    Required, ResponseBuilder, Schema,
};

/// The name of the bearer scheme in `components.securitySchemes`.
const BEARER: &str = "jwtAuth";

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

// ---- schema helpers ---------------------------------------------------------------------

type S = RefOr<Schema>;

fn typed(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(ty)
}

fn string() -> S {
    typed(Type::String).into()
}

fn string_max(max: usize) -> S {
    typed(Type::String).max_length(Some(max)).into()
}

fn described(text: &str) -> S {
    typed(Type::String).description(Some(text)).into()
}

fn formatted(ty: Type, format: KnownFormat) -> ObjectBuilder {
    typed(ty).format(Some(SchemaFormat::KnownFormat(format)))
}

fn uuid() -> S {
    formatted(Type::String, KnownFormat::Uuid).into()
}

fn datetime() -> S {
    formatted(Type::String, KnownFormat::DateTime).into()
}

fn email() -> S {
    formatted(Type::String, KnownFormat::Email).into()
}

fn integer() -> S {
    formatted(Type::Integer, KnownFormat::Int64).into()
}

fn boolean() -> S {
    typed(Type::Boolean).into()
}

/// A scalar that may also be `null` (JSON Schema 2020-12: a type list).
fn nullable(ty: Type, format: Option<KnownFormat>) -> S {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([ty, Type::Null]))
        .format(format.map(SchemaFormat::KnownFormat))
        .into()
}

fn nullable_uri() -> S {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .format(Some(SchemaFormat::Custom("uri".into())))
        .into()
}

fn reference(name: &str) -> S {
    Ref::from_schema_name(name).into()
}

fn nullable_ref(name: &str) -> S {
    OneOfBuilder::new().item(reference(name)).item(typed(Type::Null)).into()
}

fn array(items: S) -> S {
    ArrayBuilder::new().items(items).into()
}

/// An object with the given properties; `required` names those always present.
fn object(props: Vec<(&str, S)>, required: &[&str]) -> ObjectBuilder {
    let mut builder = typed(Type::Object);
    for (name, schema) in props {
        builder = builder.property(name, schema);
    }
    for name in required {
        builder = builder.required(*name);
    }
    builder
}

fn obj(props: Vec<(&str, S)>, required: &[&str]) -> S {
    object(props, required).into()
}

/// DRF's `PageNumberPagination` envelope around `item`.
fn page_of(item: &str) -> S {
    obj(
        vec![
            ("count", integer()),
            ("next", nullable_uri()),
            ("previous", nullable_uri()),
            ("results", array(reference(item))),
        ],
        &["count", "next", "previous", "results"],
    )
}

fn schemas() -> Vec<(&'static str, S)> {
    let message_props = || {
        vec![
            ("id", uuid()),
            ("refChat", uuid()),
            ("author", nullable(Type::String, Some(KnownFormat::Uuid))),
            ("message", string()),
            (
                "type",
                formatted(Type::Integer, KnownFormat::Int32)
                    .description(Some("0 text, 1 geolocation, 2 photo"))
                    .into(),
            ),
            ("extraData", nullable(Type::String, None)),
            ("isRead", boolean()),
            ("createdAt", datetime()),
            ("updatedAt", datetime()),
        ]
    };
    let message_required = &[
        "id",
        "refChat",
        "author",
        "message",
        "type",
        "extraData",
        "isRead",
        "createdAt",
        "updatedAt",
    ];
    vec![
        (
            "DjoserUser",
            obj(
                vec![
                    ("email", email()),
                    ("id", uuid()),
                    ("first_name", string()),
                    ("last_name", string()),
                ],
                &["email", "id", "first_name", "last_name"],
            ),
        ),
        (
            "Profile",
            object(
                vec![
                    ("id", uuid()),
                    ("email", email()),
                    ("first_name", string()),
                    ("last_name", string()),
                    ("online", boolean()),
                    ("lastConnexionDate", nullable(Type::String, Some(KnownFormat::DateTime))),
                    ("avatar", nullable(Type::String, None)),
                    ("is_active", boolean()),
                    ("date_joined", datetime()),
                    ("createdAt", datetime()),
                    ("updatedAt", datetime()),
                ],
                &[
                    "id",
                    "email",
                    "first_name",
                    "last_name",
                    "online",
                    "lastConnexionDate",
                    "avatar",
                    "is_active",
                    "date_joined",
                    "createdAt",
                    "updatedAt",
                ],
            )
            .description(Some("The caller's own record under /api/user/."))
            .into(),
        ),
        (
            "UserBrief",
            obj(
                vec![
                    ("id", uuid()),
                    ("first_name", string()),
                    ("last_name", string()),
                    ("online", boolean()),
                ],
                &["id", "first_name", "last_name", "online"],
            ),
        ),
        ("Message", obj(message_props(), message_required)),
        (
            "Chat",
            object(
                vec![
                    ("id", uuid()),
                    ("fromUser", nullable_ref("UserBrief")),
                    ("toUser", nullable_ref("UserBrief")),
                    (
                        "lastMessage",
                        ArrayBuilder::new()
                            .items(reference("Message"))
                            .max_items(Some(1))
                            .into(),
                    ),
                    ("unreadCount", integer()),
                    ("isGroup", boolean()),
                    ("title", nullable(Type::String, None)),
                    (
                        "members",
                        ArrayBuilder::new()
                            .items(reference("UserBrief"))
                            .description(Some("Group chats only; each member also carries `isAdmin`."))
                            .into(),
                    ),
                    ("createdAt", datetime()),
                    ("updatedAt", datetime()),
                ],
                &[
                    "id",
                    "fromUser",
                    "toUser",
                    "lastMessage",
                    "unreadCount",
                    "isGroup",
                    "title",
                    "createdAt",
                    "updatedAt",
                ],
            )
            .description(Some(
                "A chat from the caller's side; a deleted participant shows as null.",
            ))
            .into(),
        ),
        ("DjoserUserPage", page_of("DjoserUser")),
        ("ProfilePage", page_of("Profile")),
        ("UserBriefPage", page_of("UserBrief")),
        ("ChatPage", page_of("Chat")),
        ("MessagePage", page_of("Message")),
        (
            "TokenPair",
            obj(
                vec![("refresh", string()), ("access", string())],
                &["refresh", "access"],
            ),
        ),
        (
            "AccessToken",
            obj(
                vec![
                    ("access", string()),
                    ("refresh", described("A new refresh token, when rotation is on.")),
                ],
                &["access"],
            ),
        ),
        (
            "Detail",
            obj(
                vec![
                    ("detail", string()),
                    ("code", string()),
                    (
                        "messages",
                        array(obj(
                            vec![
                                ("token_class", string()),
                                ("token_type", string()),
                                ("message", string()),
                            ],
                            &[],
                        )),
                    ),
                ],
                &["detail"],
            ),
        ),
        (
            "FieldErrors",
            typed(Type::Object)
                .description(Some(
                    "Validation errors: each field name maps to its messages \
                     (`non_field_errors` for the body as a whole).",
                ))
                .additional_properties(Some(AdditionalProperties::RefOr(array(string()))))
                .examples([json!({ "email": ["This field is required."] })])
                .into(),
        ),
        (
            "WsRefusal",
            obj(
                vec![
                    ("detail", string()),
                    (
                        "reason",
                        typed(Type::String)
                            .enum_values(Some([
                                "missing_token",
                                "invalid_token",
                                "inactive_user",
                                "unknown_user",
                                "unknown_chat",
                                "not_a_member",
                            ]))
                            .into(),
                    ),
                ],
                &["detail", "reason"],
            ),
        ),
        (
            "WsErrorFrame",
            obj(
                vec![(
                    "error",
                    obj(vec![("code", string()), ("detail", string())], &["code", "detail"]),
                )],
                &["error"],
            ),
        ),
    ]
}

// ---- operation helpers ------------------------------------------------------------------

fn json_content(schema: S) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn json_response(description: &str, schema: S) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json_content(schema))
}

fn no_content(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description)
}

/// One operation, with the errors every route of its kind can answer.
struct Op {
    builder: OperationBuilder,
}

impl Op {
    fn new(tag: &str, id: &str, summary: &str) -> Op {
        Op {
            builder: OperationBuilder::new()
                .tag(tag)
                .operation_id(Some(id))
                .summary(Some(summary)),
        }
    }

    fn describe(mut self, text: &str) -> Op {
        self.builder = self.builder.description(Some(text));
        self
    }

    /// Needs `Authorization: Bearer <access>`: adds the security requirement and the 401.
    fn authed(mut self) -> Op {
        self.builder = self
            .builder
            .security(SecurityRequirement::new(BEARER, Vec::<String>::new()))
            .response(
                "401",
                json_response(
                    "Credentials missing, or the token is invalid, expired or not an access token",
                    reference("Detail"),
                ),
            );
        self
    }

    fn param(mut self, name: &str, place: ParameterIn, schema: S, required: bool, doc: &str) -> Op {
        self.builder = self.builder.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(place)
                .required(if required { Required::True } else { Required::False })
                .schema(Some(schema))
                .description(Some(doc)),
        );
        self
    }

    fn path_id(self, name: &str, doc: &str) -> Op {
        self.param(name, ParameterIn::Path, uuid(), true, doc)
    }

    fn query(self, name: &str, schema: S, doc: &str) -> Op {
        self.param(name, ParameterIn::Query, schema, false, doc)
    }

    fn paged(self) -> Op {
        self.query("page", integer(), "Page number (from 1), or `last`")
            .query("page_size", integer(), "Items per page (default 20, at most 100)")
            .respond("404", "Invalid page.", reference("Detail"))
    }

    /// A JSON (or form-encoded) body; malformed bodies answer 400, other types 415, big ones 413.
    fn body(mut self, schema: S) -> Op {
        let body = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content("application/json", json_content(schema.clone()))
            .content("application/x-www-form-urlencoded", json_content(schema))
            .build();
        self.builder = self.builder.request_body(Some(body)).response(
            "400",
            json_response(
                "Validation errors, or a body that is not a JSON object",
                OneOfBuilder::new()
                    .item(reference("FieldErrors"))
                    .item(reference("Detail"))
                    .into(),
            ),
        );
        self.builder = self
            .builder
            .response("413", json_response("Request body is too large", reference("Detail")))
            .response("415", json_response("Unsupported media type", reference("Detail")));
        self
    }

    fn respond(mut self, status: &str, description: &str, schema: S) -> Op {
        self.builder = self.builder.response(status, json_response(description, schema));
        self
    }

    fn empty(mut self, status: &str, description: &str) -> Op {
        self.builder = self.builder.response(status, no_content(description));
        self
    }

    fn not_found(self) -> Op {
        self.respond("404", "Not found.", reference("Detail"))
    }

    fn forbidden(self) -> Op {
        self.respond(
            "403",
            "You do not have permission to perform this action.",
            reference("Detail"),
        )
    }

    fn throttled(self) -> Op {
        self.respond(
            "429",
            "Too many attempts from this address (see `Retry-After`)",
            reference("Detail"),
        )
    }

    fn build(self) -> Operation {
        self.builder.build()
    }
}

fn item(ops: Vec<(HttpMethod, Operation)>) -> PathItem {
    let mut ops = ops.into_iter();
    let (method, first) = ops.next().expect("a path has at least one operation");
    let mut item = PathItem::new(method, first);
    for (method, op) in ops {
        item.merge_operations(PathItem::new(method, op));
    }
    item
}

// ---- request bodies ---------------------------------------------------------------------

fn credentials() -> S {
    obj(vec![("email", email()), ("password", string())], &["email", "password"])
}

fn names_body() -> S {
    obj(
        vec![("first_name", string_max(150)), ("last_name", string_max(150))],
        &[],
    )
}

fn current_password_body() -> S {
    obj(vec![("current_password", string())], &["current_password"])
}

fn token_body(name: &str) -> S {
    obj(vec![(name, string())], &[name])
}

fn message_draft(required: &[&str]) -> S {
    obj(
        vec![
            ("refChat", uuid()),
            ("message", string()),
            (
                "type",
                formatted(Type::Integer, KnownFormat::Int32)
                    .description(Some("0 text (default), 1 geolocation, 2 photo"))
                    .into(),
            ),
            (
                "extraData",
                typed(Type::String)
                    .description(Some("Coordinates `lat,lon` or an attachment URL; default \"\""))
                    .into(),
            ),
            (
                "clientId",
                described("The client's own id for the message; a retry with the same id is not stored twice."),
            ),
        ],
        required,
    )
}

// ---- paths ------------------------------------------------------------------------------

fn account_paths(paths: PathsBuilder) -> PathsBuilder {
    use HttpMethod::*;
    let user_id = "The user's id";
    let update_user = |id: &str, summary: &str| {
        Op::new("accounts", id, summary).authed().body(names_body()).respond(
            "200",
            "The updated user",
            reference("DjoserUser"),
        )
    };
    let delete_account = |id: &str, summary: &str| {
        Op::new("accounts", id, summary)
            .describe("Needs the caller's own current password.")
            .authed()
            .body(current_password_body())
            .empty("204", "Deleted")
    };
    paths
        .path(
            "/auth/users/",
            item(vec![
                (
                    Get,
                    Op::new("accounts", "users_list", "List users")
                        .describe("Staff see everyone; anyone else sees only themself.")
                        .authed()
                        .paged()
                        .respond("200", "A page of users", reference("DjoserUserPage"))
                        .build(),
                ),
                (
                    Post,
                    Op::new("accounts", "users_create", "Register")
                        .describe(
                            "Passwords follow Django's default rules: at least 8 characters, \
                             not entirely numeric, not common, not too similar to the email.",
                        )
                        .body(obj(
                            vec![
                                ("email", email()),
                                ("password", string()),
                                ("first_name", string_max(150)),
                                ("last_name", string_max(150)),
                            ],
                            &["email", "password"],
                        ))
                        .respond("201", "The new user", reference("DjoserUser"))
                        .throttled()
                        .build(),
                ),
            ]),
        )
        .path(
            "/auth/users/me/",
            item(vec![
                (
                    Get,
                    Op::new("accounts", "users_me_read", "The caller")
                        .authed()
                        .respond("200", "The caller", reference("DjoserUser"))
                        .build(),
                ),
                (Put, update_user("users_me_update", "Change the caller's names").build()),
                (
                    Patch,
                    update_user("users_me_partial_update", "Change the caller's names").build(),
                ),
                (
                    Delete,
                    delete_account("users_me_delete", "Delete the caller's account").build(),
                ),
            ]),
        )
        .path(
            "/auth/users/{id}/",
            item(vec![
                (
                    Get,
                    Op::new("accounts", "users_read", "One user")
                        .describe("The caller, or anyone for staff; others are 404.")
                        .path_id("id", user_id)
                        .authed()
                        .respond("200", "The user", reference("DjoserUser"))
                        .not_found()
                        .build(),
                ),
                (
                    Put,
                    update_user("users_update", "Change a user's names")
                        .path_id("id", user_id)
                        .not_found()
                        .build(),
                ),
                (
                    Patch,
                    update_user("users_partial_update", "Change a user's names")
                        .path_id("id", user_id)
                        .not_found()
                        .build(),
                ),
                (
                    Delete,
                    delete_account("users_delete", "Delete a user's account")
                        .path_id("id", user_id)
                        .not_found()
                        .build(),
                ),
            ]),
        )
        .path(
            "/auth/users/set_password/",
            item(vec![(
                Post,
                Op::new("accounts", "users_set_password", "Change the caller's password")
                    .authed()
                    .body(obj(
                        vec![("new_password", string()), ("current_password", string())],
                        &["new_password", "current_password"],
                    ))
                    .empty("204", "Changed")
                    .build(),
            )]),
        )
        .path(
            "/auth/users/reset_password/",
            item(vec![(
                Post,
                Op::new("accounts", "users_reset_password", "Email a password reset link")
                    .describe("Answers 204 for unknown addresses too, so accounts cannot be probed.")
                    .body(obj(vec![("email", email())], &["email"]))
                    .empty("204", "Sent, if the account exists")
                    .throttled()
                    .build(),
            )]),
        )
        .path(
            "/auth/users/reset_password_confirm/",
            item(vec![(
                Post,
                Op::new(
                    "accounts",
                    "users_reset_password_confirm",
                    "Set a new password with a reset link's uid and token",
                )
                .body(obj(
                    vec![("uid", string()), ("token", string()), ("new_password", string())],
                    &["uid", "token", "new_password"],
                ))
                .empty("204", "Changed")
                .throttled()
                .build(),
            )]),
        )
        .path(
            "/auth/jwt/create/",
            item(vec![(
                Post,
                Op::new("tokens", "jwt_create", "Log in: a refresh and an access token")
                    .body(credentials())
                    .respond("200", "The token pair", reference("TokenPair"))
                    .respond(
                        "401",
                        "No active account found with the given credentials",
                        reference("Detail"),
                    )
                    .throttled()
                    .build(),
            )]),
        )
        .path(
            "/auth/jwt/refresh/",
            item(vec![(
                Post,
                Op::new("tokens", "jwt_refresh", "A new access token from a refresh token")
                    .body(token_body("refresh"))
                    .respond("200", "The new access token", reference("AccessToken"))
                    .respond("401", "Token is invalid, expired or blacklisted", reference("Detail"))
                    .build(),
            )]),
        )
        .path(
            "/auth/jwt/verify/",
            item(vec![(
                Post,
                Op::new("tokens", "jwt_verify", "Check a token")
                    .body(token_body("token"))
                    .respond("200", "Valid", obj(vec![], &[]))
                    .respond("401", "Token is invalid, expired or blacklisted", reference("Detail"))
                    .build(),
            )]),
        )
        .path(
            "/auth/jwt/blacklist/",
            item(vec![(
                Post,
                Op::new("tokens", "jwt_blacklist", "Revoke a refresh token (log out)")
                    .body(token_body("refresh"))
                    .respond("200", "Revoked", obj(vec![], &[]))
                    .respond("401", "Token is invalid, expired or blacklisted", reference("Detail"))
                    .build(),
            )]),
        )
}

fn api_paths(paths: PathsBuilder) -> PathsBuilder {
    use HttpMethod::*;
    let profile_update = |id: &str| {
        Op::new("users", id, "Change the caller's profile")
            .describe(
                "Only the caller's own record (others: 404). `password`, `email`, `is_staff` and \
                 `is_superuser` are read-only here and ignored.",
            )
            .path_id("id", "The caller's id")
            .authed()
            .body(obj(
                vec![
                    ("first_name", string_max(150)),
                    ("last_name", string_max(150)),
                    ("online", boolean()),
                    ("lastConnexionDate", datetime()),
                    (
                        "avatar",
                        ObjectBuilder::new()
                            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                            .max_length(Some(2048))
                            .into(),
                    ),
                ],
                &[],
            ))
            .respond("200", "The updated profile", reference("Profile"))
            .not_found()
            .build()
    };
    let message_change = |id: &str| {
        Op::new("messages", id, "Edit or mark a message")
            .describe(
                "`{\"isRead\":true}` by the recipient, `{\"message\":…}` by the author; \
                 an empty body changes nothing.",
            )
            .path_id("id", "The message's id")
            .authed()
            .body(obj(vec![("message", string()), ("isRead", boolean())], &[]))
            .respond("200", "The message", reference("Message"))
            .forbidden()
            .not_found()
            .build()
    };
    let group_rename = |id: &str| {
        Op::new("groups", id, "Rename a group (admins only)")
            .path_id("id", "The group's id")
            .authed()
            .body(obj(vec![("title", string_max(128))], &["title"]))
            .respond("200", "The group", reference("Chat"))
            .forbidden()
            .not_found()
            .build()
    };
    paths
        .path(
            "/api/user/",
            item(vec![(
                Get,
                Op::new("users", "user_list", "The caller's own record")
                    .describe("Filters must all match the caller, else the page is empty.")
                    .authed()
                    .query("id", uuid(), "Filter by id")
                    .query("email", email(), "Filter by email (case-insensitive)")
                    .query("first_name", string(), "Filter by first name")
                    .query("last_name", string(), "Filter by last name")
                    .query("valid", boolean(), "Filter by active state")
                    .paged()
                    .respond("200", "A page holding the caller or nothing", reference("ProfilePage"))
                    .respond("400", "A malformed `id` or `valid` filter", reference("FieldErrors"))
                    .build(),
            )]),
        )
        .path(
            "/api/user/{id}/",
            item(vec![
                (
                    Get,
                    Op::new("users", "user_read", "The caller's profile")
                        .path_id("id", "The caller's id")
                        .authed()
                        .respond("200", "The profile", reference("Profile"))
                        .not_found()
                        .build(),
                ),
                (Put, profile_update("user_update")),
                (Patch, profile_update("user_partial_update")),
            ]),
        )
        .path(
            "/api/searchUser/",
            item(vec![(
                Get,
                Op::new("users", "search_user", "Find other users by name")
                    .describe(
                        "Active users other than the caller whose first or last name contains \
                         every term (split on spaces and commas, case-insensitive).",
                    )
                    .authed()
                    .query("search", string(), "Search terms")
                    .paged()
                    .respond("200", "A page of users", reference("UserBriefPage"))
                    .build(),
            )]),
        )
        .path(
            "/api/chat/",
            item(vec![(
                Get,
                Op::new("chats", "chat_list", "The caller's chats, most recently updated first")
                    .authed()
                    .query("id", uuid(), "Only this chat")
                    .paged()
                    .respond("200", "A page of chats", reference("ChatPage"))
                    .respond("400", "A malformed `id` filter", reference("FieldErrors"))
                    .build(),
            )]),
        )
        .path(
            "/api/chat/{id}/",
            item(vec![
                (
                    Get,
                    Op::new("chats", "chat_read", "One chat")
                        .path_id("id", "The chat's id")
                        .authed()
                        .respond("200", "The chat", reference("Chat"))
                        .not_found()
                        .build(),
                ),
                (
                    Delete,
                    Op::new("chats", "chat_delete", "Delete a chat and its messages")
                        .path_id("id", "The chat's id")
                        .authed()
                        .empty("204", "Deleted")
                        .forbidden()
                        .not_found()
                        .build(),
                ),
            ]),
        )
        .path(
            "/api/createChat/",
            item(vec![(
                Post,
                Op::new("chats", "create_chat", "Find or create the chat with another user")
                    .describe("Answers 201 whether the chat was created or already existed.")
                    .authed()
                    .body(obj(
                        vec![("refUser", uuid()), ("chatWithUser", uuid())],
                        &["refUser", "chatWithUser"],
                    ))
                    .respond("201", "The chat", reference("Chat"))
                    .respond("403", "`refUser` is not the caller", reference("Detail"))
                    .build(),
            )]),
        )
        .path(
            "/api/message/",
            item(vec![
                (
                    Get,
                    Op::new("messages", "message_list", "A chat's messages, newest first")
                        .authed()
                        .param(
                            "refChat",
                            ParameterIn::Query,
                            uuid(),
                            true,
                            "The chat (the caller must be in it)",
                        )
                        .query("id", uuid(), "Filter by id")
                        .query("type", integer(), "Filter by type")
                        .query("isRead", boolean(), "Filter by read state")
                        .query("before", uuid(), "Only messages older than this one (cursor)")
                        .query("after", uuid(), "Only messages newer than this one (cursor)")
                        .paged()
                        .respond("200", "A page of messages", reference("MessagePage"))
                        .respond("400", "A missing or malformed filter", reference("FieldErrors"))
                        .build(),
                ),
                (
                    Post,
                    Op::new("messages", "message_create", "Send a message")
                        .describe(
                            "Stored, then delivered to the chat's sockets exactly like a \
                             WebSocket message. The author is always the caller.",
                        )
                        .authed()
                        .body(message_draft(&["refChat", "message"]))
                        .respond("201", "The stored message", reference("Message"))
                        .not_found()
                        .build(),
                ),
            ]),
        )
        .path(
            "/api/message/{id}/",
            item(vec![
                (
                    Get,
                    Op::new("messages", "message_read", "One message")
                        .path_id("id", "The message's id")
                        .authed()
                        .respond("200", "The message", reference("Message"))
                        .not_found()
                        .build(),
                ),
                (Put, message_change("message_update")),
                (Patch, message_change("message_partial_update")),
                (
                    Delete,
                    Op::new("messages", "message_delete", "Delete a message (author only)")
                        .path_id("id", "The message's id")
                        .authed()
                        .empty("204", "Deleted")
                        .forbidden()
                        .not_found()
                        .build(),
                ),
            ]),
        )
        .path(
            "/api/updateMessagesStatus/",
            item(vec![(
                Post,
                Op::new("messages", "update_messages_status", "Mark messages read")
                    .describe(
                        "Only messages in the caller's chats written by someone else are changed; \
                         the rest are ignored. Input it cannot use answers `{\"status\":\"KO\"}`.",
                    )
                    .authed()
                    .body(obj(vec![("messageIds", array(uuid()))], &["messageIds"]))
                    .respond(
                        "200",
                        "OK, or KO for unusable input",
                        obj(
                            vec![("status", typed(Type::String).enum_values(Some(["OK", "KO"])).into())],
                            &["status"],
                        ),
                    )
                    .build(),
            )]),
        )
        .path(
            "/api/groups/",
            item(vec![(
                Post,
                Op::new("groups", "group_create", "Create a group chat")
                    .describe("The caller becomes its admin; `members` must be active users.")
                    .authed()
                    .body(obj(
                        vec![("title", string_max(128)), ("members", array(uuid()))],
                        &["title"],
                    ))
                    .respond("201", "The group", reference("Chat"))
                    .build(),
            )]),
        )
        .path(
            "/api/groups/{id}/",
            item(vec![
                (Put, group_rename("group_update")),
                (Patch, group_rename("group_partial_update")),
            ]),
        )
        .path(
            "/api/groups/{id}/members/",
            item(vec![(
                Post,
                Op::new("groups", "group_add_member", "Add a member (admins only)")
                    .path_id("id", "The group's id")
                    .authed()
                    .body(obj(vec![("user", uuid()), ("isAdmin", boolean())], &["user"]))
                    .respond("201", "Added; the group", reference("Chat"))
                    .respond("200", "Already a member; the group", reference("Chat"))
                    .forbidden()
                    .not_found()
                    .build(),
            )]),
        )
        .path(
            "/api/groups/{id}/members/{user}/",
            item(vec![(
                Delete,
                Op::new("groups", "group_remove_member", "Remove a member, or leave")
                    .describe("Admins may remove anyone; any member may remove themself.")
                    .path_id("id", "The group's id")
                    .path_id("user", "The member's user id")
                    .authed()
                    .empty("204", "Removed")
                    .respond("400", "Members of a two-person chat cannot change", reference("Detail"))
                    .forbidden()
                    .not_found()
                    .build(),
            )]),
        )
        .path(
            "/api/schema/",
            item(vec![(
                Get,
                Op::new("operations", "schema", "This OpenAPI document")
                    .respond("200", "OpenAPI 3.1", obj(vec![], &[]))
                    .build(),
            )]),
        )
}

fn socket_and_ops_paths(paths: PathsBuilder) -> PathsBuilder {
    use HttpMethod::*;
    let text_response = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("text/plain", json_content(string()))
    };
    paths
        .path(
            "/ws/chat/{chat_id}/",
            item(vec![(
                Get,
                Op::new("realtime", "chat_socket", "Open a chat's WebSocket")
                    .describe(
                        "A WebSocket upgrade (`Connection: Upgrade`, `Upgrade: websocket`). The \
                         access token travels in `?token=`. Inbound frames: \
                         `{\"message\":\"hi\",\"refChat\":\"<chat id>\",\"author\":\"<user id>\",\
                         \"type\":0,\"extraData\":\"\"}` (`type` and `extraData` optional). \
                         Every stored message goes to every socket of the chat, the sender's \
                         included: with `format=text` as `{\"message\":\"hi\",\"id\":…, …}`, \
                         with `format=object` as `{\"message\":{…Message…}}`. Errors are \
                         `{\"error\":{\"code\",\"detail\"}}` frames; a frame over the size \
                         limit closes the socket with 1009 (see the `WsErrorFrame` schema). \
                         Offering the subprotocol `causerie.v2` (`Sec-WebSocket-Protocol`) \
                         selects the v2 event protocol instead, resuming after `afterSeq`.",
                    )
                    .path_id("chat_id", "The chat's id")
                    .param(
                        "token",
                        ParameterIn::Query,
                        string(),
                        true,
                        "An access JWT of one of the chat's participants",
                    )
                    .query(
                        "format",
                        typed(Type::String)
                            .enum_values(Some(["text", "object"]))
                            .default(Some(json!("text")))
                            .into(),
                        "The shape of outbound message frames (v1)",
                    )
                    .query(
                        "afterSeq",
                        integer(),
                        "With `causerie.v2`: first replay the chat's messages after this sequence number",
                    )
                    .empty("101", "Switching Protocols: the socket is open")
                    .respond(
                        "400",
                        "`format` is neither text nor object, or `afterSeq` is not an integer",
                        reference("Detail"),
                    )
                    .respond(
                        "403",
                        "Refused before any upgrade: a missing, invalid, expired or refresh \
                         token, an inactive user, an unknown chat, or a caller who is not a \
                         participant",
                        reference("WsRefusal"),
                    )
                    .respond("503", "The database is unavailable", reference("Detail"))
                    .build(),
            )]),
        )
        .path(
            "/ws/",
            item(vec![(
                Get,
                Op::new(
                    "realtime",
                    "user_socket",
                    "Open a v2 WebSocket for all the caller's chats",
                )
                .describe(
                    "A WebSocket upgrade speaking the `causerie.v2` subprotocol \
                         (`Sec-WebSocket-Protocol: causerie.v2`); the client subscribes to its \
                         chats over the socket. The access token travels in `?token=`.",
                )
                .param("token", ParameterIn::Query, string(), true, "An access JWT")
                .empty("101", "Switching Protocols: the socket is open")
                .respond(
                    "403",
                    "Refused before any upgrade: a missing, invalid, expired or refresh \
                         token, or an inactive user",
                    reference("WsRefusal"),
                )
                .respond("503", "The database is unavailable", reference("Detail"))
                .build(),
            )]),
        )
        .path(
            "/healthz",
            item(vec![(
                Get,
                Op::new("operations", "healthz", "Liveness: 200 as soon as the server listens")
                    .respond("200", "Up", obj(vec![("status", string())], &["status"]))
                    .build(),
            )]),
        )
        .path(
            "/readyz",
            item(vec![(
                Get,
                Op::new("operations", "readyz", "Readiness: the database answers")
                    .respond(
                        "200",
                        "Ready",
                        obj(
                            vec![("status", string()), ("database", boolean())],
                            &["status", "database"],
                        ),
                    )
                    .respond(
                        "503",
                        "Not ready",
                        obj(
                            vec![("status", string()), ("database", boolean())],
                            &["status", "database"],
                        ),
                    )
                    .build(),
            )]),
        )
        .path(
            "/metrics",
            item(vec![(Get, {
                let mut op = Op::new("operations", "metrics", "Prometheus metrics");
                op.builder = op
                    .builder
                    .response("200", text_response("Prometheus text exposition format"));
                op.build()
            })]),
        )
}

fn build() -> OpenApi {
    let info = InfoBuilder::new()
        .title("Causerie")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "A chat backend serving the API of a Django Channels + DRF + djoser + SimpleJWT \
             stack. Lists paginate as `{count, next, previous, results}`; errors are \
             `{\"detail\": …}` or `{\"field\": [messages]}`.",
        ))
        .license(Some(LicenseBuilder::new().name("MIT").build()))
        .build();
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from POST /auth/jwt/create/: `Authorization: Bearer <access>`.",
                ))
                .build(),
        ),
    );
    for (name, schema) in schemas() {
        components = components.schema(name, schema);
    }
    let paths = socket_and_ops_paths(api_paths(account_paths(PathsBuilder::new()))).build();
    let tags = [
        ("accounts", "djoser's user routes"),
        ("tokens", "SimpleJWT's token routes"),
        ("users", "The app's user records"),
        ("chats", "Two-person chats"),
        ("messages", "Chat messages"),
        ("groups", "Group chats"),
        ("realtime", "WebSocket"),
        ("operations", "Health, readiness, metrics"),
    ]
    .into_iter()
    .map(|(name, doc)| TagBuilder::new().name(name).description(Some(doc)).build());
    OpenApiBuilder::new()
        .info(info)
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_openapi_31_with_bearer_scheme() {
        let value = serde_json::to_value(document()).expect("serializes");
        assert!(value["openapi"].as_str().unwrap().starts_with("3.1"));
        assert_eq!(value["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
        assert!(value["paths"]["/ws/chat/{chat_id}/"]["get"]["responses"]["101"].is_object());
    }

    #[test]
    fn every_reference_resolves() {
        let value = serde_json::to_value(document()).expect("serializes");
        let text = value.to_string();
        let schemas = value["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let value = serde_json::to_value(document()).expect("serializes");
        let mut seen = std::collections::HashSet::new();
        for (_, item) in value["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                if let Some(id) = op.get("operationId").and_then(|v| v.as_str()) {
                    assert!(seen.insert(id.to_string()), "duplicate operationId {id}");
                }
            }
        }
    }
}
