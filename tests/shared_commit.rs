//! The app's small writes (refresh rotation, presence, read marks) arriving together: on SQLite
//! they share one commit (`store::shared_commit`), on PostgreSQL each commits alone. Either way
//! each is answered with its own outcome, only once it is stored, and one that fails takes
//! nothing else with it.

#[macro_use]
mod common;

use causerie::testing::store::{messages, presence, tokens};
use causerie::testing::ChatId;
use chrono::{Duration, Utc};
use common::{blacklisted, Backend, TestServer};
use futures_util::future::join_all;
use serde_json::{json, Value};

backend_tests!(
    writes_arriving_together_each_get_their_own_answer,
    concurrent_rotations_each_work_once,
    concurrent_read_marks_and_presence_are_all_stored
);

async fn writes_arriving_together_each_get_their_own_answer(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let user = srv.quick_user("burst@example.com", common::PASSWORD).await.user_id();
    // The server's own storage, so these writes queue with whatever the server writes.
    let db = srv.state.db();
    let expires = Utc::now() + Duration::days(1);
    let jtis: Vec<String> = (0..24).map(|i| format!("burst-{i}")).collect();

    // Every write is asked for before any is answered: the jti `twin` twice, and a read mark
    // for a chat the user is not in (no membership row: that write fails).
    let listed = join_all(jtis.iter().map(|jti| tokens::blacklist(&db, jti, user, expires, true)));
    let twins = join_all((0..2).map(|_| tokens::blacklist(&db, "twin", user, expires, true)));
    let failing = messages::mark_read_upto(&db, ChatId(uuid::Uuid::new_v4()), user, 5, true);
    let (listed, twins, failing) = tokio::join!(listed, twins, failing);

    for (jti, outcome) in jtis.iter().zip(&listed) {
        assert!(matches!(outcome, Ok(true)), "{jti}: {outcome:?}");
    }
    let firsts: Vec<bool> = twins.into_iter().map(|t| t.expect("blacklisting twin")).collect();
    assert_eq!(
        firsts.iter().filter(|first| **first).count(),
        1,
        "exactly one use of twin is the first: {firsts:?}"
    );
    assert!(
        matches!(failing, Err(sqlx::Error::RowNotFound)),
        "the read mark of a non-member fails with its own error: {failing:?}"
    );

    // What was answered as stored is stored.
    for jti in jtis.iter().map(String::as_str).chain(["twin"]) {
        assert_eq!(
            tokens::is_blacklisted(&db, jti).await.unwrap(),
            tokens::Listed::Rotated,
            "{jti}"
        );
    }
    assert_eq!(tokens::is_blacklisted(&db, "never").await.unwrap(), tokens::Listed::No);
    srv.finish().await;
}

async fn concurrent_rotations_each_work_once(backend: Backend) {
    let srv = TestServer::start_with(backend, |c| {
        c.rotate_refresh_tokens = true;
        c.blacklist_after_rotation = true;
    })
    .await;
    let users = srv.quick_users(12).await;
    let twice = &users[0];

    // Every user rotates at once; the first presents its token twice in the same burst.
    let presented: Vec<&str> = users
        .iter()
        .map(|u| u.refresh.as_str())
        .chain([twice.refresh.as_str()])
        .collect();
    let bodies: Vec<Value> = presented.iter().map(|refresh| json!({ "refresh": refresh })).collect();
    let replies = join_all(bodies.iter().map(|body| srv.post_json("/auth/jwt/refresh/", body))).await;

    for (i, reply) in replies.iter().enumerate().skip(1).take(users.len() - 1) {
        reply.expect_status(200);
        let fresh = reply.body["refresh"].as_str().expect("a rotated refresh token");
        assert_ne!(fresh, users[i].refresh);
    }
    let twin_statuses: Vec<u16> = [&replies[0], &replies[users.len()]]
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(
        twin_statuses.iter().filter(|s| **s == 200).count(),
        1,
        "a refresh token presented twice at once works once: {twin_statuses:?}"
    );
    assert!(twin_statuses.contains(&401), "{twin_statuses:?}");

    // Each old token is spent.
    for u in &users[1..] {
        srv.post_json("/auth/jwt/refresh/", &json!({ "refresh": u.refresh }))
            .await
            .expect(401, blacklisted());
    }
    srv.finish().await;
}

async fn concurrent_read_marks_and_presence_are_all_stored(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let users = srv.quick_users(10).await;
    let (writers, readers) = users.split_at(5);

    // Each writer sends one message to its reader.
    let mut sent = Vec::new();
    for (writer, reader) in writers.iter().zip(readers) {
        let chat = srv.open_chat(writer, reader).await["id"].as_str().unwrap().to_string();
        let reply = srv
            .post_json_auth(
                "/api/message/",
                &writer.access,
                &json!({ "refChat": chat, "message": "read me", "type": 0, "extraData": "" }),
            )
            .await;
        reply.expect_status(201);
        sent.push(reply.body["id"].as_str().unwrap().to_string());
    }

    // All readers mark at once while the writers come online and the readers declare
    // themselves online, and then mark again (nothing left to change).
    let db = srv.state.db();
    let bodies: Vec<Value> = sent.iter().map(|id| json!({ "messageIds": [id] })).collect();
    let marks = join_all(
        readers
            .iter()
            .zip(&bodies)
            .map(|(reader, body)| srv.post_json_auth("/api/updateMessagesStatus/", &reader.access, body)),
    );
    let writer_ids: Vec<_> = writers.iter().map(|w| w.user_id()).collect();
    let opened = presence::sockets_opened(&db, &writer_ids);
    let declared = join_all(readers.iter().map(|r| presence::declare(&db, r.user_id(), true)));
    let (marks, opened, declared) = tokio::join!(marks, opened, declared);
    for reply in &marks {
        reply.expect(200, json!({ "status": "OK" }));
    }
    let (mut changed, _) = opened.expect("storing the sockets opened");
    changed.sort_unstable();
    let mut expected = writer_ids.clone();
    expected.sort_unstable();
    assert_eq!(changed, expected, "every writer came online");
    for outcome in declared {
        assert!(outcome.expect("declaring").is_some(), "every reader changed to online");
    }

    for ((writer, reader), id) in writers.iter().zip(readers).zip(&sent) {
        let reply = srv.get_auth(&format!("/api/message/{id}/"), &writer.access).await;
        reply.expect_status(200);
        assert_eq!(reply.body["isRead"], Value::Bool(true), "{id}");
        assert_eq!(
            presence::shown(&db, writer.user_id()).await.unwrap().map(|(on, _)| on),
            Some(true)
        );
        assert_eq!(
            presence::shown(&db, reader.user_id()).await.unwrap().map(|(on, _)| on),
            Some(true)
        );
    }

    // Their sockets gone: the writers go offline, the readers stay online by declaration.
    let gone = join_all(users.iter().map(|u| presence::sockets_gone(&db, u.user_id()))).await;
    for (u, outcome) in users.iter().zip(gone) {
        let went_offline = outcome.expect("storing a socket gone").is_some();
        assert_eq!(went_offline, writers.iter().any(|w| w.id == u.id), "{}", u.email);
    }
    srv.finish().await;
}
