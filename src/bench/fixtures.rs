//! Users, chats and history written straight into the server's database (the schema is the
//! server's: the bench never migrates), and tokens minted with the server's signing key.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{stream, StreamExt, TryStreamExt};

use super::net::Target;
use crate::auth::jwt::TokenIssuer;
use crate::config::Config;
use crate::ids::{ChatId, UserId};
use crate::store::{self, chats, messages, Db};

/// Users inserted per transaction.
const USER_BATCH: usize = 500;

#[derive(Clone, Debug)]
pub struct BenchUser {
    pub id: UserId,
    pub email: String,
    pub token: String,
    /// A refresh token, for scenarios that refresh the access token through the API.
    pub refresh: String,
}

pub struct Fixtures {
    pub db: Db,
    pub tokens: TokenIssuer,
    pub run_id: String,
    /// Every bench user's password (one argon2 hash shared by all of them).
    pub password: String,
    hash: String,
    next_user: usize,
}

/// The server's signing key: `secret_key`, or the file the server generated at its first start.
pub fn server_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = &config.secret_key {
        return Ok(key.as_bytes().to_vec());
    }
    let path = crate::app::secret_key_path(config);
    let key = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading the server's signing key {} (start the server first, from the same directory \
             and with the same CAUSERIE_DATABASE_URL, or set CAUSERIE_SECRET_KEY for both)",
            path.display()
        )
    })?;
    Ok(key.trim().as_bytes().to_vec())
}

impl Fixtures {
    /// Connects to the server's database and prepares the shared password hash.
    pub async fn open(config: &Config, run_id: String) -> anyhow::Result<Fixtures> {
        let secret = server_secret(config)?;
        let tokens = TokenIssuer::new(
            &secret,
            Duration::from_secs(config.access_token_lifetime_secs),
            Duration::from_secs(config.refresh_token_lifetime_secs),
        );
        let db = Db::connect(&config.database_url, config.database_max_connections.max(4))
            .await
            .context("connecting to the server's database (setting `database_url`)")?;
        let password = format!("Bench-{run_id}-Lantern-42");
        let for_hash = password.clone();
        let hash = tokio::task::spawn_blocking(move || crate::auth::password::hash_now(&for_hash)).await??;
        Ok(Fixtures {
            db,
            tokens,
            run_id,
            password,
            hash,
            next_user: 0,
        })
    }

    /// Creates `n` active users named `bench-<run id>-<n>@bench.invalid`, with access tokens.
    pub async fn users(&mut self, n: usize) -> anyhow::Result<Vec<BenchUser>> {
        let started = Instant::now();
        let first = self.next_user;
        self.next_user += n;
        let mut out = Vec::with_capacity(n);
        let mut start = first;
        while start < first + n {
            let end = (start + USER_BATCH).min(first + n);
            let batch: Vec<(UserId, String)> = (start..end)
                .map(|i| (UserId::new(), format!("bench-{}-{i}@bench.invalid", self.run_id)))
                .collect();
            insert_users(&self.db, &batch, &self.hash).await?;
            out.extend(batch.into_iter().map(|(id, email)| BenchUser {
                token: self.tokens.access(id),
                refresh: self.tokens.refresh(id),
                id,
                email,
            }));
            start = end;
        }
        eprintln!("bench: {n} users created in {:.1} s", started.elapsed().as_secs_f64());
        Ok(out)
    }

    /// One two-person chat per pair, created through the store.
    pub async fn pair_chats(&self, pairs: &[(UserId, UserId)]) -> anyhow::Result<Vec<ChatId>> {
        let started = Instant::now();
        let ids: Vec<ChatId> = stream::iter(pairs.iter().copied())
            .map(|(a, b)| {
                let db = self.db.clone();
                async move { chats::find_or_create_pair(&db, a, b).await.map(|(c, _)| c.id) }
            })
            .buffered(8)
            .try_collect()
            .await
            .context("creating chats")?;
        eprintln!(
            "bench: {} chats created in {:.1} s",
            ids.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(ids)
    }

    /// One two-person chat per pair, many per transaction (for tens of thousands of chats).
    pub async fn many_pair_chats(&self, pairs: &[(UserId, UserId)]) -> anyhow::Result<Vec<ChatId>> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(pairs.len());
        for batch in pairs.chunks(USER_BATCH) {
            ids.extend(chats::insert_pairs(&self.db, batch).await.context("creating chats")?);
        }
        eprintln!(
            "bench: {} chats created in {:.1} s",
            ids.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(ids)
    }

    /// One message in each chat, written by the given author (a chat's last message).
    pub async fn one_message_each(&self, chats: &[(ChatId, UserId)]) -> anyhow::Result<()> {
        let started = Instant::now();
        for batch in chats.chunks(500) {
            let batch: Vec<messages::NewMessage> = batch
                .iter()
                .map(|&(chat_id, author)| messages::NewMessage {
                    chat_id,
                    author,
                    client_id: None,
                    body: "hello there: the quick brown fox jumps over the lazy dog".into(),
                    kind: 0,
                    extra_data: Some(String::new()),
                })
                .collect();
            crate::store::message_batch::insert_batch(&self.db, &batch)
                .await
                .context("storing last messages")?
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .context("storing last messages")?;
        }
        eprintln!(
            "bench: a message in each of {} chats in {:.1} s",
            chats.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// A group chat with `admin` and `members`, through the store.
    pub async fn group(&self, admin: UserId, members: &[UserId]) -> anyhow::Result<ChatId> {
        let title = format!("bench-{}", self.run_id);
        let started = Instant::now();
        // One transaction for all members (add_member would commit once per member).
        let chat = chats::create_group(&self.db, &title, admin, members)
            .await
            .context("creating the group")?;
        eprintln!(
            "bench: group of {} members created in {:.1} s",
            chats::members(&self.db, chat.id).await?.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(chat.id)
    }

    /// Stores `count` messages in `chat` (group commits of 500), alternating two authors.
    pub async fn prefill(&self, chat: ChatId, authors: [UserId; 2], count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut done = 0;
        while done < count {
            let n = (count - done).min(500);
            let batch: Vec<messages::NewMessage> = (done..done + n)
                .map(|i| messages::NewMessage {
                    chat_id: chat,
                    author: authors[i % 2],
                    client_id: None,
                    body: format!("history message {i}: the quick brown fox jumps over the lazy dog"),
                    kind: 0,
                    extra_data: Some(String::new()),
                })
                .collect();
            crate::store::message_batch::insert_batch(&self.db, &batch)
                .await
                .context("prefilling messages")?
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .context("prefilling messages")?;
            done += n;
        }
        eprintln!(
            "bench: {count} messages stored in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Marks the end of the fixtures, before any load: a bulk load leaves PostgreSQL without
    /// statistics until autovacuum comes by (up to a minute later), and meanwhile it plans the
    /// chat list as a sequential scan of `chats`. Measured with 80,000 chats: 29.6 ms a list
    /// before ANALYZE, 0.66 ms after, and an app ramp that timed out at 1,000 users.
    pub async fn seeded(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.db
            .refresh_planner_statistics()
            .await
            .context("refreshing the planner's statistics after the fixtures")?;
        if self.db.is_postgres() {
            eprintln!(
                "bench: planner statistics refreshed in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    pub async fn last_seq(&self, chat: ChatId) -> anyhow::Result<i64> {
        Ok(chats::by_id(&self.db, chat).await?.map(|c| c.last_seq).unwrap_or(0))
    }
}

/// Inserts users in one transaction, with the columns `store::users::insert` writes.
async fn insert_users(db: &Db, batch: &[(UserId, String)], hash: &str) -> anyhow::Result<()> {
    let at = store::now();
    let sql = "INSERT INTO users (id, email, password, first_name, last_name, is_active, is_staff, is_superuser, \
               date_joined, online, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, TRUE, FALSE, FALSE, $6, FALSE, $6, $6)";
    crate::with_db_write!(db, pool => {
        let mut tx = store::begin_write(pool).await?;
        for (n, (id, email)) in batch.iter().enumerate() {
            sqlx::query(sql)
                .bind(id)
                .bind(email)
                .bind(hash)
                .bind("Bench")
                .bind(format!("User {n}"))
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    })
    .context("creating users")?;
    Ok(())
}

/// Checks, before any load, that the server is up and accepts a bench token: it shares the
/// bench's database and signing key.
pub async fn preflight(target: &Target, user: &BenchUser) -> anyhow::Result<()> {
    let client = super::net::http_client(0)?;
    let response = client
        .get(format!("{}/auth/users/me/", target.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .with_context(|| format!("no server answers at {}", target.base))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!(
            "the server refused a bench token (HTTP {status}: {body}); run the bench with the \
             server's configuration (same CAUSERIE_DATABASE_URL, working directory and secret key)"
        );
    }
    Ok(())
}
