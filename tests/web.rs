//! The web side: the OpenAPI document, the docs page and the chat client's page and assets.

#[allow(unused_macros)]
mod common;

use std::collections::BTreeSet;

use common::{Backend, TestServer};
use serde_json::Value;

/// Every path the routers declare, read from their source (`.route("…"` / `Router::new().route(`),
/// so a route added without its OpenAPI description fails here.
fn declared_paths() -> BTreeSet<String> {
    let sources = [
        include_str!("../src/accounts/routes.rs"),
        include_str!("../src/chats/routes.rs"),
        include_str!("../src/realtime/routes.rs"),
        include_str!("../src/app/mod.rs"),
    ];
    let mut paths = BTreeSet::new();
    for source in sources {
        for piece in source.split(".route(").skip(1) {
            let piece = piece.trim_start();
            if let Some(rest) = piece.strip_prefix('"') {
                if let Some(end) = rest.find('"') {
                    paths.insert(rest[..end].to_string());
                }
            }
        }
    }
    paths
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_describes_every_declared_route() {
    let srv = TestServer::start(Backend::Sqlite).await;
    let doc = srv.get("/api/schema/").await.body;
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let missing: Vec<String> = declared_paths()
        .into_iter()
        .filter(|p| !documented.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from src/web/openapi.rs: {missing:?}"
    );
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
