//! Accounts (djoser) and tokens (SimpleJWT): every row of contract sections 2 and 3, with the
//! exact status and body, on every configured backend.

#[macro_use]
mod common;

use causerie::testing::store::users;
use common::ordered::Ordered;
use common::{bad_access_token, blacklisted, djoser_user, jwt_claims, token_not_valid, Backend, TestServer, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
const NO_ACCOUNT: &str = "No active account found with the given credentials";
const REQUIRED: &str = "This field is required.";
const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const TOO_COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";

/// The `uid` and `token` of the reset link in a password reset email.
fn reset_link_parts(body: &str) -> (String, String) {
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/password/reset/confirm/"))
        .unwrap_or_else(|| panic!("no reset link in the email:\n{body}"));
    let rest = link.split("/password/reset/confirm/").nth(1).unwrap();
    let mut parts = rest.trim_end_matches('/').split('/');
    let uid = parts.next().expect("uid in the link").to_string();
    let token = parts.next().expect("token in the link").to_string();
    assert!(parts.next().is_none(), "unexpected link shape: {link}");
    (uid, token)
}

backend_tests!(
    register_returns_email_and_id,
    register_with_names_and_unknown_fields,
    register_duplicate_email_any_case,
    register_password_rules,
    register_invalid_email_and_missing_fields,
    register_overlong_names,
    me_requires_authentication,
    me_get_put_patch,
    me_delete,
    users_list_self_or_all_for_staff,
    user_detail_self_other_staff,
    set_password_flow,
    reset_password_request,
    reset_password_confirm_flow,
    jwt_create_ok_and_claims,
    jwt_create_errors,
    jwt_refresh_and_verify,
    refresh_token_is_not_an_access_token,
    authorization_header_variants,
    expired_access_token,
    rotation_and_blacklist_after_rotation,
    blacklist_endpoint_logs_out,
    django_hash_is_accepted_and_upgraded,
    inactive_user,
    deleted_user_token,
    malformed_bodies,
    body_too_large,
    paths_without_trailing_slash,
    login_rate_limit,
    register_rate_limit,
    health_and_fallbacks,
);

// ---- key order -------------------------------------------------------------------------------

/// The keys come out in the order djoser's, SimpleJWT's and DRF's serializers write them (see
/// `accounts::view` for what each order is based on). Read from the raw text: a parsed `Value`
/// sorts its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_keep_the_serializers_key_order() {
    let srv = TestServer::start_with(Backend::Sqlite, |c| c.rotate_refresh_tokens = true).await;
    let created = srv
        .post_json(
            "/auth/users/",
            &json!({ "email": "order@example.com", "password": PASSWORD, "first_name": "Ada" }),
        )
        .await;
    created.expect_status(201);
    // UserCreateSerializer: REQUIRED_FIELDS, then LOGIN_FIELD, USER_ID_FIELD.
    assert_eq!(
        Ordered::parse(&created.text).keys(),
        ["first_name", "last_name", "email", "id"]
    );

    let login = srv
        .post_json(
            "/auth/jwt/create/",
            &json!({ "email": "order@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(Ordered::parse(&login.text).keys(), ["refresh", "access"]);
    let access = login.body["access"].as_str().unwrap().to_string();
    let refresh = login.body["refresh"].as_str().unwrap().to_string();

    let refreshed = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": refresh }))
        .await;
    refreshed.expect_status(200);
    assert_eq!(Ordered::parse(&refreshed.text).keys(), ["access", "refresh"]);

    // UserSerializer: REQUIRED_FIELDS, then USER_ID_FIELD, LOGIN_FIELD.
    let me = srv.get_auth("/auth/users/me/", &access).await;
    assert_eq!(
        Ordered::parse(&me.text).keys(),
        ["first_name", "last_name", "id", "email"]
    );
    let list = Ordered::parse(&srv.get_auth("/auth/users/", &access).await.text);
    assert_eq!(list.keys(), ["count", "next", "previous", "results"]);
    assert_eq!(
        list.get("results").at(0).keys(),
        ["first_name", "last_name", "id", "email"]
    );

    // SimpleJWT's error: detail, code, then messages.
    let refused = Ordered::parse(&srv.get_auth("/auth/users/me/", "garbage").await.text);
    assert_eq!(refused.keys(), ["detail", "code", "messages"]);
    assert_eq!(
        refused.get("messages").at(0).keys(),
        ["token_class", "token_type", "message"]
    );
    // Field errors in the serializer's field order (SetPasswordSerializer: new, then current).
    let errors = srv
        .post_json_auth("/auth/users/set_password/", &access, &json!({}))
        .await;
    assert_eq!(
        Ordered::parse(&errors.text).keys(),
        ["new_password", "current_password"]
    );
    srv.finish().await;
}

// ---- registration ----------------------------------------------------------------------------

async fn register_returns_email_and_id(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let reply = srv
        .post_json(
            "/auth/users/",
            &json!({ "email": "alice@example.com", "password": PASSWORD }),
        )
        .await;
    reply.expect_status(201);
    let id = reply.body["id"].as_str().expect("id is a string").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "id {id} is a uuid");
    reply.expect(201, djoser_user(&id, "alice@example.com", "", ""));
    // The password is stored hashed, never in clear, and never returned.
    let row = srv.user_row(&id).await.expect("user stored");
    assert!(row.password.starts_with("$argon2id$"), "stored hash: {}", row.password);
    assert!(!reply.text.contains(PASSWORD));
    assert!(row.is_active && !row.is_staff && !row.is_superuser);
    // The new account can log in at once.
    srv.login("alice@example.com", PASSWORD).await;
    srv.finish().await;
}

async fn register_with_names_and_unknown_fields(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let reply = srv
        .post_json(
            "/auth/users/",
            &json!({
                "email": "jean@example.com",
                "password": PASSWORD,
                "first_name": "Jean",
                "last_name": "Dupont",
                "is_staff": true,
                "is_superuser": true,
                "favourite_colour": "blue"
            }),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap_or_default().to_string();
    reply.expect(201, djoser_user(&id, "jean@example.com", "Jean", "Dupont"));
    // Unknown (and privileged) fields are ignored, as a DRF serializer ignores them.
    let row = srv.user_row(&id).await.unwrap();
    assert!(!row.is_staff && !row.is_superuser);
    srv.finish().await;
}

async fn register_duplicate_email_any_case(backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.register("Bob@Example.com", PASSWORD).await;
    for email in ["bob@example.com", "BOB@EXAMPLE.COM", "bob@example.COM"] {
        srv.post_json("/auth/users/", &json!({ "email": email, "password": PASSWORD }))
            .await
            .expect(
                400,
                json!({ "email": ["user with this email address already exists."] }),
            );
    }
    // Login is case-insensitive too.
    srv.login("BOB@example.com", PASSWORD).await;
    assert_eq!(users::count(srv.db()).await.unwrap(), 1);
    srv.finish().await;
}

async fn register_password_rules(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({ "email": "p1@example.com", "password": "Xq9#z" }),
            vec![TOO_SHORT],
        ),
        (
            json!({ "email": "p2@example.com", "password": "password" }),
            vec![TOO_COMMON],
        ),
        (
            json!({ "email": "p3@example.com", "password": "qwertyuiop" }),
            vec![TOO_COMMON],
        ),
        (
            json!({ "email": "p4@example.com", "password": "83920174615" }),
            vec![NUMERIC],
        ),
        (
            json!({ "email": "p5@example.com", "password": "12345678" }),
            vec![TOO_COMMON, NUMERIC],
        ),
        (
            json!({ "email": "p6@example.com", "password": "1234" }),
            vec![TOO_SHORT, TOO_COMMON, NUMERIC],
        ),
        (
            json!({ "email": "jean.dupont@example.com", "password": "jeandupont" }),
            vec!["The password is too similar to the email address."],
        ),
        (
            json!({ "email": "p7@example.com", "password": "Marguerite1", "first_name": "Marguerite" }),
            vec!["The password is too similar to the first name."],
        ),
        (
            json!({ "email": "p8@example.com", "password": "Vandenberghe", "last_name": "Vandenberghe" }),
            vec!["The password is too similar to the last name."],
        ),
        // Similar to both the last name and the email: Django checks names before the email.
        (
            json!({ "email": "dupont@example.com", "password": "Dupont1234", "last_name": "Dupont" }),
            vec!["The password is too similar to the last name."],
        ),
    ];
    for (body, messages) in cases {
        srv.post_json("/auth/users/", &body)
            .await
            .expect(400, json!({ "password": messages }));
    }
    // None of them was created.
    assert_eq!(users::count(srv.db()).await.unwrap(), 0);
    srv.finish().await;
}

async fn register_invalid_email_and_missing_fields(backend: Backend) {
    let srv = TestServer::start(backend).await;
    for bad in ["not-an-email", "a@b", "a b@example.com", "@example.com", "alice@"] {
        srv.post_json("/auth/users/", &json!({ "email": bad, "password": PASSWORD }))
            .await
            .expect(400, json!({ "email": ["Enter a valid email address."] }));
    }
    srv.post_json("/auth/users/", &json!({}))
        .await
        .expect(400, json!({ "email": [REQUIRED], "password": [REQUIRED] }));
    srv.post_json("/auth/users/", &json!({ "email": "x@example.com" }))
        .await
        .expect(400, json!({ "password": [REQUIRED] }));
    srv.post_json("/auth/users/", &json!({ "password": PASSWORD }))
        .await
        .expect(400, json!({ "email": [REQUIRED] }));
    // Every field's errors at once, as a DRF serializer reports them.
    srv.post_json("/auth/users/", &json!({ "email": "nope", "password": "short" }))
        .await
        .expect(400, json!({ "email": ["Enter a valid email address."] }));
    srv.post_json("/auth/users/", &json!({ "email": "", "password": PASSWORD }))
        .await
        .expect(400, json!({ "email": ["This field may not be blank."] }));
    assert_eq!(users::count(srv.db()).await.unwrap(), 0);
    srv.finish().await;
}

async fn register_overlong_names(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let long = "n".repeat(151);
    srv.post_json(
        "/auth/users/",
        &json!({ "email": "long@example.com", "password": PASSWORD, "first_name": long }),
    )
    .await
    .expect(
        400,
        json!({ "first_name": ["Ensure this field has no more than 150 characters."] }),
    );
    srv.post_json(
        "/auth/users/",
        &json!({ "email": "long@example.com", "password": PASSWORD, "last_name": long }),
    )
    .await
    .expect(
        400,
        json!({ "last_name": ["Ensure this field has no more than 150 characters."] }),
    );
    // 150 is fine.
    let ok = "n".repeat(150);
    let reply = srv
        .post_json(
            "/auth/users/",
            &json!({ "email": "long@example.com", "password": PASSWORD, "first_name": ok }),
        )
        .await;
    let id = reply.body["id"].as_str().unwrap_or_default().to_string();
    reply.expect(201, djoser_user(&id, "long@example.com", &ok, ""));
    srv.finish().await;
}

// ---- /auth/users/me/ -------------------------------------------------------------------------

async fn me_requires_authentication(backend: Backend) {
    let srv = TestServer::start(backend).await;
    for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        srv.request(method, "/auth/users/me/", None, Some(&json!({ "first_name": "x" })))
            .await
            .expect(401, json!({ "detail": NOT_PROVIDED }))
            .expect_bearer_challenge();
    }
    srv.get("/auth/users/")
        .await
        .expect(401, json!({ "detail": NOT_PROVIDED }))
        .expect_bearer_challenge();
    srv.post_json(
        "/auth/users/set_password/",
        &json!({ "new_password": PASSWORD, "current_password": PASSWORD }),
    )
    .await
    .expect(401, json!({ "detail": NOT_PROVIDED }));
    srv.finish().await;
}

async fn me_get_put_patch(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("me@example.com", PASSWORD).await;
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(200, djoser_user(&u.id, "me@example.com", "", ""));

    srv.patch_json_auth("/auth/users/me/", &u.access, &json!({ "first_name": "Ada" }))
        .await
        .expect(200, djoser_user(&u.id, "me@example.com", "Ada", ""));
    srv.put_json_auth(
        "/auth/users/me/",
        &u.access,
        &json!({ "first_name": "Grace", "last_name": "Hopper" }),
    )
    .await
    .expect(200, djoser_user(&u.id, "me@example.com", "Grace", "Hopper"));
    // PATCH leaves other fields alone.
    srv.patch_json_auth("/auth/users/me/", &u.access, &json!({ "last_name": "Murray" }))
        .await
        .expect(200, djoser_user(&u.id, "me@example.com", "Grace", "Murray"));
    // The email is the read-only login field; privileges and unknown fields are ignored.
    srv.patch_json_auth(
        "/auth/users/me/",
        &u.access,
        &json!({ "email": "other@example.com", "is_staff": true, "id": "00000000-0000-0000-0000-000000000000" }),
    )
    .await
    .expect(200, djoser_user(&u.id, "me@example.com", "Grace", "Murray"));
    let row = srv.user_row(&u.id).await.unwrap();
    assert_eq!(row.email, "me@example.com");
    assert!(!row.is_staff);
    // 400 on bad values, nothing changed.
    srv.patch_json_auth("/auth/users/me/", &u.access, &json!({ "first_name": "x".repeat(151) }))
        .await
        .expect(
            400,
            json!({ "first_name": ["Ensure this field has no more than 150 characters."] }),
        );
    srv.put_json_auth(
        "/auth/users/me/",
        &u.access,
        &json!({ "first_name": null, "last_name": ["a"] }),
    )
    .await
    .expect(
        400,
        json!({ "first_name": ["This field may not be null."], "last_name": ["Not a valid string."] }),
    );
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(200, djoser_user(&u.id, "me@example.com", "Grace", "Murray"));
    srv.finish().await;
}

async fn me_delete(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("leaver@example.com", PASSWORD).await;
    srv.delete_auth(
        "/auth/users/me/",
        &u.access,
        Some(&json!({ "current_password": "wrong-password-1" })),
    )
    .await
    .expect(400, json!({ "current_password": ["Invalid password."] }));
    srv.delete_auth("/auth/users/me/", &u.access, None)
        .await
        .expect(400, json!({ "current_password": [REQUIRED] }));
    srv.delete_auth("/auth/users/me/", &u.access, Some(&json!({})))
        .await
        .expect(400, json!({ "current_password": [REQUIRED] }));
    assert!(srv.user_row(&u.id).await.is_some(), "still there after failed deletes");

    let reply = srv
        .delete_auth(
            "/auth/users/me/",
            &u.access,
            Some(&json!({ "current_password": PASSWORD })),
        )
        .await;
    reply.expect(204, Value::Null);
    assert!(srv.user_row(&u.id).await.is_none(), "deleted");
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "leaver@example.com", "password": PASSWORD }),
    )
    .await
    .expect(401, json!({ "detail": NO_ACCOUNT }));
    // The email is free again.
    srv.register("leaver@example.com", PASSWORD).await;
    srv.finish().await;
}

// ---- /auth/users/ and /auth/users/{id}/ ------------------------------------------------------

async fn users_list_self_or_all_for_staff(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let a = srv.quick_user_named("a@example.com", PASSWORD, "Ann", "A").await;
    let b = srv.quick_user("b@example.com", PASSWORD).await;
    let c = srv.quick_user("c@example.com", PASSWORD).await;

    srv.get_auth("/auth/users/", &b.access).await.expect(
        200,
        json!({ "count": 1, "next": null, "previous": null, "results": [djoser_user(&b.id, "b@example.com", "", "")] }),
    );

    users::set_staff(srv.db(), c.user_id(), true, false).await.unwrap();
    let all = json!([
        djoser_user(&a.id, "a@example.com", "Ann", "A"),
        djoser_user(&b.id, "b@example.com", "", ""),
        djoser_user(&c.id, "c@example.com", "", ""),
    ]);
    srv.get_auth("/auth/users/", &c.access).await.expect(
        200,
        json!({ "count": 3, "next": null, "previous": null, "results": all }),
    );

    // Paginated like DRF.
    let page1 = srv.get_auth("/auth/users/?page_size=2", &c.access).await;
    page1.expect_status(200);
    assert_eq!(page1.body["count"], 3);
    assert_eq!(page1.body["results"], json!([all[0], all[1]]));
    assert_eq!(page1.body["previous"], Value::Null);
    let next = page1.body["next"].as_str().expect("next link");
    assert!(next.ends_with("/auth/users/?page_size=2&page=2"), "next: {next}");
    let page2 = srv.get_auth("/auth/users/?page_size=2&page=2", &c.access).await;
    page2.expect_status(200);
    assert_eq!(page2.body["results"], json!([all[2]]));
    assert_eq!(page2.body["next"], Value::Null);
    assert!(page2.body["previous"]
        .as_str()
        .expect("previous link")
        .ends_with("/auth/users/?page_size=2"));
    srv.get_auth("/auth/users/?page=9", &c.access)
        .await
        .expect(404, json!({ "detail": "Invalid page." }));
    srv.finish().await;
}

async fn user_detail_self_other_staff(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let a = srv.quick_user("a@example.com", PASSWORD).await;
    let b = srv.quick_user("b@example.com", PASSWORD).await;
    let staff = srv.quick_user("staff@example.com", PASSWORD).await;
    users::set_staff(srv.db(), staff.user_id(), true, false).await.unwrap();

    srv.get_auth(&format!("/auth/users/{}/", a.id), &a.access)
        .await
        .expect(200, djoser_user(&a.id, "a@example.com", "", ""));
    srv.get_auth(&format!("/auth/users/{}/", b.id), &a.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get_auth(&format!("/auth/users/{}/", uuid::Uuid::new_v4()), &a.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get_auth("/auth/users/not-a-uuid/", &a.access)
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get(&format!("/auth/users/{}/", a.id))
        .await
        .expect(401, json!({ "detail": NOT_PROVIDED }));
    // A non-staff user cannot change another either.
    srv.patch_json_auth(
        &format!("/auth/users/{}/", b.id),
        &a.access,
        &json!({ "first_name": "Mallory" }),
    )
    .await
    .expect(404, json!({ "detail": "Not found." }));
    assert_eq!(srv.user_row(&b.id).await.unwrap().first_name, "");

    srv.get_auth(&format!("/auth/users/{}/", b.id), &staff.access)
        .await
        .expect(200, djoser_user(&b.id, "b@example.com", "", ""));
    srv.patch_json_auth(
        &format!("/auth/users/{}/", a.id),
        &a.access,
        &json!({ "first_name": "Ann" }),
    )
    .await
    .expect(200, djoser_user(&a.id, "a@example.com", "Ann", ""));
    srv.finish().await;
}

// ---- passwords -------------------------------------------------------------------------------

async fn set_password_flow(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("pw@example.com", PASSWORD).await;
    let new = "Another-Quiet-Harbour-7";

    srv.post_json_auth("/auth/users/set_password/", &u.access, &json!({}))
        .await
        .expect(
            400,
            json!({ "new_password": [REQUIRED], "current_password": [REQUIRED] }),
        );
    srv.post_json_auth(
        "/auth/users/set_password/",
        &u.access,
        &json!({ "new_password": new, "current_password": "not-my-password" }),
    )
    .await
    .expect(400, json!({ "current_password": ["Invalid password."] }));
    srv.post_json_auth(
        "/auth/users/set_password/",
        &u.access,
        &json!({ "new_password": "short", "current_password": PASSWORD }),
    )
    .await
    .expect(400, json!({ "new_password": [TOO_SHORT] }));
    srv.post_json_auth(
        "/auth/users/set_password/",
        &u.access,
        &json!({ "new_password": "pw@example.com", "current_password": PASSWORD }),
    )
    .await
    .expect(
        400,
        json!({ "new_password": ["The password is too similar to the email address."] }),
    );
    // Nothing changed so far.
    srv.login("pw@example.com", PASSWORD).await;

    srv.post_json_auth(
        "/auth/users/set_password/",
        &u.access,
        &json!({ "new_password": new, "current_password": PASSWORD }),
    )
    .await
    .expect(204, Value::Null);
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "pw@example.com", "password": PASSWORD }),
    )
    .await
    .expect(401, json!({ "detail": NO_ACCOUNT }))
    .expect_bearer_challenge();
    srv.login("pw@example.com", new).await;
    srv.finish().await;
}

async fn reset_password_request(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("forgot@example.com", PASSWORD).await;

    srv.post_json("/auth/users/reset_password/", &json!({ "email": "nobody@example.com" }))
        .await
        .expect(204, Value::Null);
    assert!(srv.outbox().is_empty(), "no mail for an unknown address");

    srv.post_json("/auth/users/reset_password/", &json!({ "email": "Forgot@Example.com" }))
        .await
        .expect(204, Value::Null);
    let outbox = srv.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].to, "forgot@example.com");
    let (uid, token) = reset_link_parts(&outbox[0].body);
    assert_eq!(
        causerie::testing::decode_reset_uid(&uid),
        Some(u.user_id()),
        "uid names the user"
    );
    assert!(!token.is_empty());
    assert!(
        outbox[0]
            .body
            .contains(&format!("http://127.0.0.1:8000/#/password/reset/confirm/{uid}/{token}")),
        "link built from public_url and password_reset_confirm_url:\n{}",
        outbox[0].body
    );

    srv.post_json("/auth/users/reset_password/", &json!({ "email": "not-an-email" }))
        .await
        .expect(400, json!({ "email": ["Enter a valid email address."] }));
    srv.post_json("/auth/users/reset_password/", &json!({}))
        .await
        .expect(400, json!({ "email": [REQUIRED] }));
    // An inactive account gets no mail (but the answer is the same).
    users::set_active(srv.db(), u.user_id(), false).await.unwrap();
    srv.post_json("/auth/users/reset_password/", &json!({ "email": "forgot@example.com" }))
        .await
        .expect(204, Value::Null);
    assert_eq!(srv.outbox().len(), 1);
    srv.finish().await;
}

async fn reset_password_confirm_flow(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("forgot@example.com", PASSWORD).await;
    srv.post_json("/auth/users/reset_password/", &json!({ "email": "forgot@example.com" }))
        .await
        .expect(204, Value::Null);
    let (uid, token) = reset_link_parts(&srv.outbox()[0].body);
    let new = "Brand-New-Secret-Phrase-3";

    srv.post_json("/auth/users/reset_password_confirm/", &json!({}))
        .await
        .expect(
            400,
            json!({ "uid": [REQUIRED], "token": [REQUIRED], "new_password": [REQUIRED] }),
        );
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": "garbage", "token": token, "new_password": new }),
    )
    .await
    .expect(400, json!({ "uid": ["Invalid user id or user doesn't exist."] }));
    let stranger = causerie::testing::encode_reset_uid(causerie::ids::UserId::new());
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": stranger, "token": token, "new_password": new }),
    )
    .await
    .expect(400, json!({ "uid": ["Invalid user id or user doesn't exist."] }));
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": uid, "token": "1-deadbeef", "new_password": new }),
    )
    .await
    .expect(400, json!({ "token": ["Invalid token for given user."] }));
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": uid, "token": token, "new_password": "12345678" }),
    )
    .await
    .expect(400, json!({ "new_password": [TOO_COMMON, NUMERIC] }));

    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": uid, "token": token, "new_password": new }),
    )
    .await
    .expect(204, Value::Null);
    srv.post_json("/auth/jwt/create/", &json!({ "email": u.email, "password": PASSWORD }))
        .await
        .expect(401, json!({ "detail": NO_ACCOUNT }));
    srv.login(&u.email, new).await;

    // Single use: the password (and last login) changed, so the token is dead.
    srv.post_json(
        "/auth/users/reset_password_confirm/",
        &json!({ "uid": uid, "token": token, "new_password": "Yet-Another-Phrase-99" }),
    )
    .await
    .expect(400, json!({ "token": ["Invalid token for given user."] }));
    srv.login(&u.email, new).await;
    srv.finish().await;
}

// ---- tokens ----------------------------------------------------------------------------------

async fn jwt_create_ok_and_claims(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let id = srv.register("tok@example.com", PASSWORD).await;
    let reply = srv
        .post_json(
            "/auth/jwt/create/",
            &json!({ "email": "tok@example.com", "password": PASSWORD }),
        )
        .await;
    reply.expect_status(200);
    let body = reply.body.as_object().expect("object");
    let mut keys: Vec<&str> = body.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access", "refresh"]);

    let access = jwt_claims(body["access"].as_str().unwrap());
    let refresh = jwt_claims(body["refresh"].as_str().unwrap());
    for (claims, kind, lifetime) in [(&access, "access", 30 * 60), (&refresh, "refresh", 180 * 24 * 3600)] {
        assert_eq!(claims["token_type"], kind);
        assert_eq!(claims["user_id"], id.as_str());
        let jti = claims["jti"].as_str().expect("jti");
        assert_eq!(jti.len(), 32);
        assert!(jti.chars().all(|c| c.is_ascii_hexdigit()), "jti {jti}");
        let (exp, iat) = (claims["exp"].as_i64().unwrap(), claims["iat"].as_i64().unwrap());
        assert_eq!(exp - iat, lifetime, "{kind} lifetime");
    }
    assert_ne!(access["jti"], refresh["jti"]);
    let header = jwt_claims(&format!(
        "x.{}",
        body["access"].as_str().unwrap().split('.').next().unwrap()
    ));
    assert_eq!(header["alg"], "HS256");

    // The access token works; login recorded last_login.
    srv.get_auth("/auth/users/me/", body["access"].as_str().unwrap())
        .await
        .expect(200, djoser_user(&id, "tok@example.com", "", ""));
    assert!(srv.user_row(&id).await.unwrap().last_login.is_some());
    srv.finish().await;
}

async fn jwt_create_errors(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("real@example.com", PASSWORD).await;
    for (email, password) in [
        ("real@example.com", "wrong-password-123"),
        ("ghost@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        srv.post_json("/auth/jwt/create/", &json!({ "email": email, "password": password }))
            .await
            .expect(401, json!({ "detail": NO_ACCOUNT }))
            .expect_bearer_challenge();
    }
    srv.post_json("/auth/jwt/create/", &json!({ "email": "real@example.com" }))
        .await
        .expect(400, json!({ "password": [REQUIRED] }));
    srv.post_json("/auth/jwt/create/", &json!({ "password": PASSWORD }))
        .await
        .expect(400, json!({ "email": [REQUIRED] }));
    srv.post_json("/auth/jwt/create/", &json!({}))
        .await
        .expect(400, json!({ "email": [REQUIRED], "password": [REQUIRED] }));
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "real@example.com", "password": "" }),
    )
    .await
    .expect(400, json!({ "password": ["This field may not be blank."] }));
    // Inactive: the same answer as bad credentials.
    users::set_active(srv.db(), u.user_id(), false).await.unwrap();
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": "real@example.com", "password": PASSWORD }),
    )
    .await
    .expect(401, json!({ "detail": NO_ACCOUNT }));
    srv.finish().await;
}

async fn jwt_refresh_and_verify(backend: Backend) {
    // Rotation is on by default (the series' settings); this is the mode without it.
    let srv = TestServer::start_with(backend, |c| {
        c.rotate_refresh_tokens = false;
        c.blacklist_after_rotation = false;
    })
    .await;
    let u = srv.create_user_and_login("r@example.com", PASSWORD).await;

    let reply = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await;
    reply.expect_status(200);
    let obj = reply.body.as_object().unwrap();
    assert_eq!(obj.len(), 1, "only access without rotation: {}", reply.text);
    let access = obj["access"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["token_type"], "access");
    assert_eq!(jwt_claims(access)["user_id"], u.id.as_str());
    srv.get_auth("/auth/users/me/", access)
        .await
        .expect(200, djoser_user(&u.id, "r@example.com", "", ""));
    // Without rotation the refresh token keeps working.
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect_status(200);

    for bad in ["garbage", "a.b.c", u.access.as_str()] {
        srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": bad }))
            .await
            .expect(401, token_not_valid())
            .expect_bearer_challenge();
    }
    // Signed with another key.
    let (foreign_access, foreign_refresh) =
        causerie::testing::foreign_tokens(b"another-key-another-key-another-key", u.user_id());
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": foreign_refresh }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/refresh/", &json!({}))
        .await
        .expect(400, json!({ "refresh": [REQUIRED] }));

    srv.post_json("/auth/jwt/verify/", &json!({ "token": u.access }))
        .await
        .expect(200, json!({}));
    srv.post_json("/auth/jwt/verify/", &json!({ "token": u.refresh }))
        .await
        .expect(200, json!({}));
    srv.post_json("/auth/jwt/verify/", &json!({ "token": "garbage" }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/verify/", &json!({ "token": foreign_access }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/verify/", &json!({}))
        .await
        .expect(400, json!({ "token": [REQUIRED] }));
    srv.finish().await;
}

async fn refresh_token_is_not_an_access_token(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("r@example.com", PASSWORD).await;
    srv.get_auth("/auth/users/me/", &u.refresh)
        .await
        .expect(401, bad_access_token())
        .expect_bearer_challenge();
    srv.get_auth("/auth/users/me/", "garbage")
        .await
        .expect(401, bad_access_token())
        .expect_bearer_challenge();
    let tampered = format!("{}x", u.access);
    srv.get_auth("/auth/users/me/", &tampered)
        .await
        .expect(401, bad_access_token());
    srv.finish().await;
}

async fn authorization_header_variants(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("h@example.com", PASSWORD).await;
    let me = djoser_user(&u.id, "h@example.com", "", "");
    let raw = |value: String| {
        let srv = &srv;
        async move {
            srv.request_raw(
                Method::GET,
                "/auth/users/me/",
                None,
                Vec::new(),
                &[("authorization", value.as_str())],
            )
            .await
        }
    };
    raw(format!("Bearer {}", u.access)).await.expect(200, me);
    // Another scheme is "not provided", as in SimpleJWT.
    raw(format!("Token {}", u.access))
        .await
        .expect(401, json!({ "detail": NOT_PROVIDED }))
        .expect_bearer_challenge();
    raw(String::new()).await.expect(401, json!({ "detail": NOT_PROVIDED }));
    // "Bearer" with no token, or with extra parts.
    let bad_header = json!({
        "detail": "Authorization header must contain two space-delimited values",
        "code": "bad_authorization_header"
    });
    raw("Bearer".into())
        .await
        .expect(401, bad_header.clone())
        .expect_bearer_challenge();
    raw(format!("Bearer {} extra", u.access)).await.expect(401, bad_header);
    srv.finish().await;
}

async fn expired_access_token(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.access_token_lifetime_secs = 1).await;
    let u = srv.create_user_and_login("exp@example.com", PASSWORD).await;
    assert_eq!(
        jwt_claims(&u.access)["exp"].as_i64().unwrap() - jwt_claims(&u.access)["iat"].as_i64().unwrap(),
        1
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(401, bad_access_token())
        .expect_bearer_challenge();
    srv.post_json("/auth/jwt/verify/", &json!({ "token": u.access }))
        .await
        .expect(401, token_not_valid());
    // The refresh token outlives it and mints a fresh one.
    let reply = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await;
    reply.expect_status(200);
    let fresh = reply.body["access"].as_str().unwrap();
    srv.get_auth("/auth/users/me/", fresh)
        .await
        .expect(200, djoser_user(&u.id, "exp@example.com", "", ""));
    srv.finish().await;
}

async fn rotation_and_blacklist_after_rotation(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.rotate_refresh_tokens = true;
        c.blacklist_after_rotation = true;
    })
    .await;
    let u = srv.create_user_and_login("rot@example.com", PASSWORD).await;
    let reply = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await;
    reply.expect_status(200);
    let obj = reply.body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access", "refresh"]);
    let new_refresh = obj["refresh"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, u.refresh);
    assert_eq!(jwt_claims(&new_refresh)["token_type"], "refresh");
    assert_eq!(jwt_claims(&new_refresh)["user_id"], u.id.as_str());

    // The new one works, once.
    let again = srv
        .post_json("/auth/jwt/refresh/", &json!({ "refresh": new_refresh }))
        .await;
    again.expect_status(200);
    assert!(again.body["refresh"].is_string());
    // The old one is spent. Presenting it again means someone holds a copy, which also ends
    // every session of the user (tests/hardening.rs shows the rest of that).
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect(401, blacklisted())
        .expect_bearer_challenge();
    srv.post_json("/auth/jwt/verify/", &json!({ "token": u.refresh }))
        .await
        .expect(401, blacklisted());
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": new_refresh }))
        .await
        .expect(401, blacklisted());
    srv.finish().await;
}

async fn blacklist_endpoint_logs_out(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("out@example.com", PASSWORD).await;
    srv.post_json("/auth/jwt/blacklist/", &json!({ "refresh": u.refresh }))
        .await
        .expect(200, json!({}));
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect(401, blacklisted());
    srv.post_json("/auth/jwt/verify/", &json!({ "token": u.refresh }))
        .await
        .expect(401, blacklisted());
    // Blacklisting twice is harmless; an access token or garbage is refused.
    srv.post_json("/auth/jwt/blacklist/", &json!({ "refresh": u.refresh }))
        .await
        .expect(200, json!({}));
    srv.post_json("/auth/jwt/blacklist/", &json!({ "refresh": u.access }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/blacklist/", &json!({ "refresh": "garbage" }))
        .await
        .expect(401, token_not_valid());
    srv.post_json("/auth/jwt/blacklist/", &json!({}))
        .await
        .expect(400, json!({ "refresh": [REQUIRED] }));
    // Other sessions are untouched.
    let (_, other_refresh) = srv.login("out@example.com", PASSWORD).await;
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": other_refresh }))
        .await
        .expect_status(200);
    srv.finish().await;
}

async fn django_hash_is_accepted_and_upgraded(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("legacy@example.com", "placeholder-Pass-1").await;
    let django = causerie::testing::django_password_hash("Imported-Secret-55", "s4ltS4ltS4lt", 1000);
    assert!(django.starts_with("pbkdf2_sha256$1000$s4ltS4ltS4lt$"));
    users::set_password(srv.db(), u.user_id(), &django).await.unwrap();

    // A wrong password leaves the Django hash as it is.
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": u.email, "password": "Not-The-Secret-55" }),
    )
    .await
    .expect(401, json!({ "detail": NO_ACCOUNT }));
    assert_eq!(srv.user_row(&u.id).await.unwrap().password, django);

    let (access, _) = srv.login(&u.email, "Imported-Secret-55").await;
    let upgraded = srv.user_row(&u.id).await.unwrap().password;
    assert!(upgraded.starts_with("$argon2id$"), "re-hashed on login: {upgraded}");
    srv.get_auth("/auth/users/me/", &access)
        .await
        .expect(200, djoser_user(&u.id, "legacy@example.com", "", ""));
    // And the same password still works against the new hash.
    srv.login(&u.email, "Imported-Secret-55").await;
    assert_eq!(
        srv.user_row(&u.id).await.unwrap().password,
        upgraded,
        "no second re-hash"
    );
    srv.finish().await;
}

async fn inactive_user(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.create_user_and_login("idle@example.com", PASSWORD).await;
    assert!(users::set_active(srv.db(), u.user_id(), false).await.unwrap());
    srv.post_json("/auth/jwt/create/", &json!({ "email": u.email, "password": PASSWORD }))
        .await
        .expect(401, json!({ "detail": NO_ACCOUNT }));
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(401, json!({ "detail": "User is inactive", "code": "user_inactive" }))
        .expect_bearer_challenge();
    // SimpleJWT's refresh refuses a token whose user is no longer active.
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect(401, json!({ "detail": NO_ACCOUNT }));
    // Reactivated: the account works again, but the deactivation revoked the tokens issued
    // before it, and they stay revoked.
    users::set_active(srv.db(), u.user_id(), true).await.unwrap();
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(401, bad_access_token());
    let (access, _) = srv.login(&u.email, PASSWORD).await;
    srv.get_auth("/auth/users/me/", &access)
        .await
        .expect(200, djoser_user(&u.id, "idle@example.com", "", ""));
    srv.finish().await;
}

async fn deleted_user_token(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let u = srv.quick_user("gone@example.com", PASSWORD).await;
    users::delete(srv.db(), u.user_id()).await.unwrap();
    srv.get_auth("/auth/users/me/", &u.access)
        .await
        .expect(401, json!({ "detail": "User not found", "code": "user_not_found" }))
        .expect_bearer_challenge();
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect(401, json!({ "detail": NO_ACCOUNT }));
    srv.finish().await;
}

// ---- bad input and plumbing ------------------------------------------------------------------

async fn malformed_bodies(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let json_ct = Some("application/json");

    let reply = srv
        .request_raw(Method::POST, "/auth/jwt/create/", json_ct, "{\"email\": ", &[])
        .await;
    reply.expect_status(400);
    let detail = reply.body["detail"].as_str().expect("detail");
    assert!(detail.starts_with("JSON parse error - "), "detail: {detail}");
    assert_eq!(reply.body.as_object().unwrap().len(), 1);

    srv.request_raw(Method::POST, "/auth/users/", Some("text/plain"), "email=a@b.io", &[])
        .await
        .expect(
            415,
            json!({ "detail": "Unsupported media type \"text/plain\" in request." }),
        );
    srv.request_raw(Method::POST, "/auth/users/", None, "{\"email\":\"a@example.com\"}", &[])
        .await
        .expect_status(415);

    srv.request_raw(Method::POST, "/auth/jwt/create/", json_ct, "[1, 2]", &[])
        .await
        .expect(
            400,
            json!({ "non_field_errors": ["Invalid data. Expected a dictionary, but got list."] }),
        );
    srv.request_raw(Method::POST, "/auth/jwt/create/", json_ct, "\"text\"", &[])
        .await
        .expect(
            400,
            json!({ "non_field_errors": ["Invalid data. Expected a dictionary, but got str."] }),
        );
    // An empty body is an empty object: every field is missing.
    srv.request_raw(Method::POST, "/auth/jwt/create/", json_ct, "", &[])
        .await
        .expect(400, json!({ "email": [REQUIRED], "password": [REQUIRED] }));
    // Wrong JSON types are field errors.
    srv.post_json(
        "/auth/users/",
        &json!({ "email": ["a@example.com"], "password": {"x": 1} }),
    )
    .await
    .expect(
        400,
        json!({ "email": ["Not a valid string."], "password": ["Not a valid string."] }),
    );

    // Form data is accepted, as DRF's FormParser does.
    let id = {
        let reply = srv
            .request_raw(
                Method::POST,
                "/auth/users/",
                Some("application/x-www-form-urlencoded"),
                format!("email=form%40example.com&password={PASSWORD}"),
                &[],
            )
            .await;
        reply.expect_status(201);
        reply.body["id"].as_str().unwrap().to_string()
    };
    assert_eq!(srv.user_row(&id).await.unwrap().email, "form@example.com");
    srv.finish().await;
}

async fn body_too_large(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.max_body_bytes = 1024).await;
    let big = json!({ "email": "big@example.com", "password": "p".repeat(2048) }).to_string();
    srv.request_raw(Method::POST, "/auth/users/", Some("application/json"), big, &[])
        .await
        .expect(413, json!({ "detail": "Request body is too large." }));
    // Just under the limit is fine.
    let small = json!({ "email": "big@example.com", "password": PASSWORD, "first_name": "x".repeat(100) }).to_string();
    assert!(small.len() < 1024);
    srv.request_raw(Method::POST, "/auth/users/", Some("application/json"), small, &[])
        .await
        .expect_status(201);
    srv.finish().await;
}

async fn paths_without_trailing_slash(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let reply = srv
        .post_json(
            "/auth/users",
            &json!({ "email": "slash@example.com", "password": PASSWORD }),
        )
        .await;
    reply.expect_status(201);
    let id = reply.body["id"].as_str().unwrap().to_string();
    let reply = srv
        .post_json(
            "/auth/jwt/create",
            &json!({ "email": "slash@example.com", "password": PASSWORD }),
        )
        .await;
    reply.expect_status(200);
    let access = reply.body["access"].as_str().unwrap().to_string();
    let refresh = reply.body["refresh"].as_str().unwrap().to_string();
    srv.post_json("/auth/jwt/refresh", &json!({ "refresh": refresh }))
        .await
        .expect_status(200);
    srv.post_json("/auth/jwt/verify", &json!({ "token": access }))
        .await
        .expect(200, json!({}));
    let me = djoser_user(&id, "slash@example.com", "", "");
    srv.get_auth("/auth/users/me", &access).await.expect(200, me.clone());
    srv.get_auth(&format!("/auth/users/{id}"), &access)
        .await
        .expect(200, me);
    // The query string survives.
    srv.get_auth("/auth/users?page=1", &access).await.expect_status(200);
    srv.finish().await;
}

/// Parses "Request was throttled. Expected available in N second(s)." and returns N.
fn throttle_wait(reply: &common::Reply) -> u64 {
    reply.expect_status(429);
    let obj = reply.body.as_object().expect("object body");
    assert_eq!(obj.len(), 1, "only detail: {}", reply.text);
    let detail = obj["detail"].as_str().expect("detail");
    let prefix = "Request was throttled. Expected available in ";
    assert!(detail.starts_with(prefix), "detail: {detail}");
    let rest = &detail[prefix.len()..];
    let (n, unit) = rest.split_once(' ').expect("number then unit");
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("a whole number of seconds: {detail}"));
    assert_eq!(unit, if n == 1 { "second." } else { "seconds." }, "detail: {detail}");
    assert_eq!(
        reply.header("retry-after"),
        Some(n.to_string().as_str()),
        "Retry-After matches the body"
    );
    n
}

async fn login_rate_limit(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| c.rate_login_per_minute = 2).await;
    let u = srv.quick_user("busy@example.com", PASSWORD).await;
    let creds = json!({ "email": u.email, "password": PASSWORD });
    srv.post_json("/auth/jwt/create/", &creds).await.expect_status(200);
    srv.post_json(
        "/auth/jwt/create/",
        &json!({ "email": u.email, "password": "wrong-password-1" }),
    )
    .await
    .expect(401, json!({ "detail": NO_ACCOUNT }));
    let wait = throttle_wait(&srv.post_json("/auth/jwt/create/", &creds).await);
    assert!((1..=60).contains(&wait), "wait {wait}");
    // Other endpoints are not throttled by the login limit.
    srv.get_auth("/auth/users/me/", &u.access).await.expect_status(200);
    srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
        .await
        .expect_status(200);
    srv.finish().await;
}

async fn register_rate_limit(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.rate_register_per_hour = 1;
        c.rate_password_reset_per_hour = 1;
    })
    .await;
    srv.register("first@example.com", PASSWORD).await;
    let wait = throttle_wait(
        &srv.post_json(
            "/auth/users/",
            &json!({ "email": "second@example.com", "password": PASSWORD }),
        )
        .await,
    );
    assert!((1..=3600).contains(&wait), "wait {wait}");
    assert!(users::by_email(srv.db(), "second@example.com").await.unwrap().is_none());

    srv.post_json("/auth/users/reset_password/", &json!({ "email": "first@example.com" }))
        .await
        .expect_status(204);
    throttle_wait(
        &srv.post_json("/auth/users/reset_password/", &json!({ "email": "first@example.com" }))
            .await,
    );
    srv.finish().await;
}

async fn health_and_fallbacks(backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.get("/healthz").await.expect(200, json!({ "status": "ok" }));
    // Ready once the database answers; `redis` is reported only when Redis is configured.
    let ready = srv.get("/readyz").await;
    ready.expect_status(200);
    assert_eq!(ready.body["status"], "ready", "{}", ready.text);
    assert_eq!(ready.body["database"], true, "{}", ready.text);
    assert!(
        matches!(ready.body.get("redis"), None | Some(Value::Null)),
        "{}",
        ready.text
    );
    srv.get("/nope").await.expect(404, json!({ "detail": "Not found." }));
    srv.get("/auth/nope/")
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.post_json("/auth/nope", &json!({}))
        .await
        .expect(404, json!({ "detail": "Not found." }));
    srv.get("/auth/jwt/create/")
        .await
        .expect(405, json!({ "detail": "Method \"GET\" not allowed." }));
    srv.get("/auth/jwt/create")
        .await
        .expect(405, json!({ "detail": "Method \"GET\" not allowed." }));
    srv.request(Method::DELETE, "/auth/users/set_password/", None, None)
        .await
        .expect(405, json!({ "detail": "Method \"DELETE\" not allowed." }));
    srv.finish().await;
}

/// The `for_each_backend` form of the harness, exercised once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_registers_and_logs_in() {
    common::for_each_backend(|srv| async move {
        let u = srv.create_user_and_login("each@example.com", PASSWORD).await;
        srv.get_auth("/auth/users/me/", &u.access)
            .await
            .expect(200, djoser_user(&u.id, "each@example.com", "", ""));
        srv.finish().await;
    })
    .await;
}
