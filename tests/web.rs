//! The web side: the OpenAPI document, the docs page and the chat client's page and assets.

#[allow(unused_macros)]
mod common;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_openapi_31_and_lists_the_routes() {
    let srv = TestServer::start(Backend::Sqlite).await;
    for path in ["/api/schema/", "/api/schema"] {
        let reply = srv.get(path).await;
        reply.expect_status(200);
        assert!(
            reply
                .header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "content type of {path}"
        );
        let doc: Value = serde_json::from_str(&reply.text).expect("the schema is JSON");
        let version = doc["openapi"].as_str().expect("an openapi version");
        assert!(version.starts_with("3.1"), "openapi {version}");
        let paths = doc["paths"].as_object().expect("paths");
        for expected in [
            "/auth/users/",
            "/auth/users/me/",
            "/auth/jwt/create/",
            "/auth/jwt/refresh/",
            "/api/chat/",
            "/api/createChat/",
            "/api/message/",
            "/api/searchUser/",
            "/ws/chat/{chat_id}/",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(paths.contains_key(expected), "{expected} missing from the schema");
        }
        assert!(paths["/api/createChat/"]["post"]["responses"]["201"].is_object());
        let socket = &paths["/ws/chat/{chat_id}/"]["get"]["responses"];
        assert!(socket["101"].is_object() && socket["403"].is_object());
        assert_eq!(doc["components"]["securitySchemes"]["jwtAuth"]["scheme"], "bearer");
        assert_eq!(
            paths["/api/chat/"]["get"]["security"][0]["jwtAuth"],
            serde_json::json!([])
        );
        assert!(paths["/auth/jwt/create/"]["post"].get("security").is_none());
    }
    srv.finish().await;
}

/// The whole document, so that every change to the API shows as a diff of
/// `tests/snapshots/web__openapi.snap` (`cargo insta review`, or `INSTA_UPDATE=always`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_snapshot() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let doc = srv.get("/api/schema/").await.body;
    insta::assert_json_snapshot!("openapi", doc, { ".info.version" => "[version]" });
    srv.finish().await;
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Asked without credentials, every operation the document lists is served (an answer other
/// than the router's 404 and 405: its own 400, 401, 200…), and every other method on a listed
/// path is 405. The REST routes are registered together with their descriptions, so none can be
/// served undescribed; this checks the rest (handshakes, operations) and the methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_what_the_server_serves() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let doc = srv.get("/api/schema/").await.body;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "{} paths", paths.len());
    for (template, item) in paths {
        // Any uuid will do for the path's ids: without credentials no lookup happens.
        let path = template
            .split('/')
            .map(|part| {
                if part.starts_with('{') {
                    Uuid::new_v4().to_string()
                } else {
                    part.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            let reply = srv.request(method.clone(), &path, None, None).await;
            let status = reply.status.as_u16();
            if documented {
                assert!(
                    status != 404 && status != 405,
                    "{method} {template} is documented but answers {status}: {}",
                    reply.text
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {template} is not documented but answers {status}"
                );
            }
        }
    }
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_and_its_assets_are_served_locally() {
    let srv = TestServer::start(Backend::Sqlite).await;
    for base in ["/documentation/", "/documentation", "/api/docs/"] {
        let reply = srv.get(base).await;
        reply.expect_status(200);
        assert!(reply.text.contains("swagger-ui"), "{base} is the Swagger UI page");
    }
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let reply = srv.get(&format!("/documentation/{asset}")).await;
        reply.expect_status(200);
        if asset == "swagger-initializer.js" {
            assert!(reply.text.contains("/api/schema/"), "the page loads our schema");
        }
    }
    srv.get("/documentation/no-such-file.js").await.expect_status(404);
    srv.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_and_assets() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let chat = "0190e0a4-7b5c-7cc1-9a4e-1f2a3b4c5d6e";
    for path in ["/chat/".to_string(), "/chat".to_string(), format!("/chat/{chat}/")] {
        let reply = srv.get(&path).await;
        reply.expect_status(200);
        assert!(reply.header("content-type").unwrap().starts_with("text/html"));
        let csp = reply.header("content-security-policy").expect("a CSP");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(reply.text.contains("id=\"login-form\""));
        assert!(!reply.text.contains("https://"), "no external assets");
    }
    srv.get("/chat/not-a-uuid/").await.expect_status(404);
    let js = srv.get("/static/web/chat.js").await;
    js.expect_status(200);
    assert!(js.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(!js.text.contains("innerHTML"), "user text goes through textContent");
    srv.get("/static/web/chat.css").await.expect_status(200);
    srv.finish().await;
}
