//! The group-commit write path (`store::messages::insert_batch`) on each database: one batch
//! spanning several chats, retries of earlier clientIds, repeats inside the batch, authors who
//! are not (or no longer) members, a chat that vanished, and two batches racing on the same
//! chats.

#[macro_use]
mod common;

use causerie::ids::{ChatId, UserId};
use causerie::testing::store::messages::{self, NewMessage, NotAMember, Outcomes, Stored};
use causerie::testing::store::{chats, Db};
use common::{Backend, TestServer};

backend_tests!(
    a_batch_over_several_chats_numbers_each_chat_without_gaps,
    retries_and_repeats_are_stored_once,
    a_non_member_is_refused_alone,
    a_vanished_chat_refuses_its_messages_alone,
    concurrent_batches_on_shared_chats_keep_every_sequence_whole
);

fn message(chat: ChatId, author: UserId, client_id: Option<&str>, body: &str) -> NewMessage {
    NewMessage {
        chat_id: chat,
        author,
        client_id: client_id.map(str::to_string),
        body: body.to_string(),
        kind: 0,
        extra_data: None,
    }
}

/// Every outcome, which must be stored.
fn all_stored(outcomes: Outcomes) -> Vec<Stored> {
    outcomes
        .into_iter()
        .map(|o| o.expect("every author is a member"))
        .collect()
}

/// `n` users and the two-person chats between user 0 and each other user.
async fn users_and_chats(server: &TestServer, n: usize) -> (Vec<UserId>, Vec<ChatId>) {
    let users: Vec<UserId> = server.quick_users(n).await.iter().map(|u| u.user_id()).collect();
    let mut chat_ids = Vec::new();
    for other in &users[1..] {
        let (chat, _) = chats::find_or_create_pair(server.db(), users[0], *other).await.unwrap();
        chat_ids.push(chat.id);
    }
    (users, chat_ids)
}

async fn seqs_in(db: &Db, chat: ChatId) -> Vec<i64> {
    messages::since(db, chat, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect()
}

async fn a_batch_over_several_chats_numbers_each_chat_without_gaps(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (users, chat_ids) = users_and_chats(&server, 4).await;
    // Interleaved chats, some with clientIds and some without.
    let mut batch = Vec::new();
    for i in 0..30 {
        let chat = chat_ids[i % 3];
        let client = format!("c{i}");
        let client = (i % 2 == 0).then_some(client.as_str());
        batch.push(message(chat, users[0], client, &format!("m{i}")));
    }
    let stored = all_stored(messages::insert_batch(server.db(), &batch).await.unwrap());
    assert_eq!(stored.len(), 30);
    assert!(stored.iter().all(|s| s.created));
    for (i, s) in stored.iter().enumerate() {
        assert_eq!(s.row.chat_id, chat_ids[i % 3]);
        assert_eq!(s.row.body, format!("m{i}"));
        // Each chat's messages take 1, 2, 3 … in input order.
        assert_eq!(s.row.seq, (i / 3) as i64 + 1, "message {i}");
    }
    for chat in &chat_ids {
        assert_eq!(seqs_in(server.db(), *chat).await, (1..=10).collect::<Vec<_>>());
        assert_eq!(chats::by_id(server.db(), *chat).await.unwrap().unwrap().last_seq, 10);
    }
    // A second batch goes on from there.
    let more = all_stored(
        messages::insert_batch(server.db(), &[message(chat_ids[1], users[2], None, "next")])
            .await
            .unwrap(),
    );
    assert_eq!(more[0].row.seq, 11);
    server.finish().await;
}

async fn retries_and_repeats_are_stored_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (users, chat_ids) = users_and_chats(&server, 3).await;
    let (alice, bob) = (users[0], users[1]);
    let first = all_stored(
        messages::insert_batch(server.db(), &[message(chat_ids[0], alice, Some("same"), "first")])
            .await
            .unwrap(),
    );
    let batch = vec![
        // A retry of a stored message: answered with it, body and all.
        message(chat_ids[0], alice, Some("same"), "retried"),
        // The same clientId from someone else, or in another chat, is another message.
        message(chat_ids[0], bob, Some("same"), "bob's"),
        message(chat_ids[1], alice, Some("same"), "other chat"),
        // A repeat inside the batch.
        message(chat_ids[1], alice, Some("twice"), "once"),
        message(chat_ids[1], alice, Some("twice"), "twice"),
    ];
    let stored = all_stored(messages::insert_batch(server.db(), &batch).await.unwrap());
    let created: Vec<bool> = stored.iter().map(|s| s.created).collect();
    assert_eq!(created, vec![false, true, true, true, false]);
    assert_eq!(stored[0].row.id, first[0].row.id);
    assert_eq!(stored[0].row.body, "first");
    assert_eq!(stored[1].row.seq, 2);
    assert_eq!(stored[4].row.id, stored[3].row.id);
    assert_eq!(stored[4].row.body, "once");
    assert_eq!(seqs_in(server.db(), chat_ids[0]).await, vec![1, 2]);
    assert_eq!(seqs_in(server.db(), chat_ids[1]).await, vec![1, 2]);
    assert_eq!(messages::count(server.db()).await.unwrap(), 4);
    server.finish().await;
}

async fn a_non_member_is_refused_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (users, chat_ids) = users_and_chats(&server, 3).await;
    // chat_ids[0] is between users 0 and 1: user 2 is no member of it.
    let batch = vec![
        message(chat_ids[0], users[0], Some("a"), "member"),
        message(chat_ids[0], users[2], Some("b"), "intruder"),
        message(chat_ids[0], users[1], None, "member too"),
    ];
    let outcomes = messages::insert_batch(server.db(), &batch).await.unwrap();
    assert_eq!(outcomes[1].as_ref().err(), Some(&NotAMember));
    let seqs: Vec<i64> = [&outcomes[0], &outcomes[2]]
        .iter()
        .map(|o| o.as_ref().unwrap().row.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2], "the refused message took no number");
    assert_eq!(seqs_in(server.db(), chat_ids[0]).await, vec![1, 2]);
    assert_eq!(messages::count(server.db()).await.unwrap(), 2);
    // Removed since: refused from then on, with the same clientId or another.
    assert!(chats::remove_member(server.db(), chat_ids[0], users[1]).await.unwrap());
    let outcomes = messages::insert_batch(
        server.db(),
        &[
            message(chat_ids[0], users[1], Some("c"), "after removal"),
            message(chat_ids[0], users[0], Some("a"), "retry"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(outcomes[0].as_ref().err(), Some(&NotAMember));
    assert!(
        !outcomes[1].as_ref().unwrap().created,
        "a member's retry is answered as before"
    );
    assert_eq!(messages::count(server.db()).await.unwrap(), 2);
    assert_eq!(
        chats::by_id(server.db(), chat_ids[0]).await.unwrap().unwrap().last_seq,
        2
    );
    server.finish().await;
}

async fn a_vanished_chat_refuses_its_messages_alone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (users, chat_ids) = users_and_chats(&server, 3).await;
    chats::delete(server.db(), chat_ids[1]).await.unwrap();
    let batch = vec![
        message(chat_ids[0], users[0], Some("a"), "kept"),
        message(chat_ids[1], users[0], Some("b"), "gone"),
    ];
    // A deleted chat has no members left: its message is refused, its neighbour stored.
    let outcomes = messages::insert_batch(server.db(), &batch).await.unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap().row.seq, 1);
    assert_eq!(outcomes[1].as_ref().err(), Some(&NotAMember));
    assert_eq!(messages::count(server.db()).await.unwrap(), 1);
    server.finish().await;
}

async fn concurrent_batches_on_shared_chats_keep_every_sequence_whole(backend: Backend) {
    // Several writers at once, as several instances sharing one database are: every batch
    // touches the same chats in a different order.
    let server = TestServer::start(backend).await;
    let (users, chat_ids) = users_and_chats(&server, 6).await;
    let mut writers = Vec::new();
    for w in 0..4usize {
        let db = server.db().clone();
        let chat_ids = chat_ids.clone();
        let author = users[0];
        writers.push(tokio::spawn(async move {
            for round in 0..10usize {
                let mut order = chat_ids.clone();
                let turn = (w + round) % order.len();
                order.rotate_left(turn);
                if w % 2 == 1 {
                    order.reverse();
                }
                let batch: Vec<NewMessage> = order
                    .iter()
                    .flat_map(|chat| {
                        (0..3).map(move |k| message(*chat, author, Some(&format!("w{w}-r{round}-{k}")), "x"))
                    })
                    .collect();
                messages::insert_batch(&db, &batch).await.expect("a batch");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for chat in &chat_ids {
        assert_eq!(seqs_in(server.db(), *chat).await, (1..=120).collect::<Vec<_>>());
    }
    server.finish().await;
}
