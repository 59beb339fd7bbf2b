#[macro_use]
mod common;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_midway() {
    let srv = common::TestServer::start(common::Backend::Postgres).await;
    srv.quick_user("x@example.com", common::PASSWORD).await;
    eprintln!("db: {}", srv.database_url);
    panic!("deliberate");
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_without_finish() {
    let srv = common::TestServer::start(common::Backend::Postgres).await;
    srv.quick_user("x@example.com", common::PASSWORD).await;
    srv.get("/healthz").await.expect_status(200);
}
