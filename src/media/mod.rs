//! Media: uploaded files (attachments), their storage (a local directory or S3 through
//! `object_store`), signed download URLs, thumbnails, quotas and the sweeper. Who may read an
//! attachment (the owner, or members of the chat it was posted in) is decided by `chats`,
//! which uses this service; media itself knows nothing of chats' rules.

pub(crate) mod avatars;
pub(crate) mod error;
pub(crate) mod process;
pub(crate) mod refs;
pub(crate) mod signing;
mod storage;
pub(crate) mod view;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use futures_util::stream::BoxStream;
use object_store::ObjectStore;

pub(crate) use self::error::{MediaError, MediaResult};
pub(crate) use self::signing::{UrlSigner, Variant};
use crate::config::Config;
use crate::ids::{AttachmentId, ChatId, UserId};
use crate::store::attachments::{self, AttachmentRow};
use crate::store::{now, Db};

/// How long an upload may wait for a message to carry it before the sweeper removes it.
fn unattached_lifetime() -> chrono::Duration {
    chrono::Duration::hours(24)
}

struct Inner {
    db: Db,
    objects: storage::Objects,
    signer: UrlSigner,
    max_bytes: u64,
    allowed: Vec<String>,
    quota_per_day: u64,
    max_pixels: u64,
}

/// The media service: one per server, cheap to clone.
#[derive(Clone)]
pub(crate) struct Media(Arc<Inner>);

/// A file's bytes as read from storage, possibly one range of them.
pub(crate) struct Opened {
    pub body: BoxStream<'static, Result<Bytes, object_store::Error>>,
    /// The whole file's length.
    pub total: u64,
}

impl Media {
    pub(crate) fn from_config(db: Db, secret: &[u8], config: &Config) -> anyhow::Result<Media> {
        Ok(Media(Arc::new(Inner {
            db,
            objects: storage::from_config(config)?,
            signer: UrlSigner::new(secret, &config.public_url, config.media_url_ttl_secs),
            max_bytes: config.media_max_bytes,
            allowed: config.media_allowed_types.clone(),
            quota_per_day: config.media_quota_bytes_per_day,
            max_pixels: config.media_max_pixels,
        })))
    }

    pub(crate) fn signer(&self) -> &UrlSigner {
        &self.0.signer
    }

    /// The largest upload accepted.
    pub(crate) fn max_bytes(&self) -> u64 {
        self.0.max_bytes
    }

    /// Counts a refused upload under its cause (`/metrics`).
    pub(crate) fn count_refusal(err: &MediaError) {
        if let Some(cause) = err.refusal_cause() {
            metrics::counter!("causerie_media_uploads_refused_total", "cause" => cause).increment(1);
        }
    }

    /// Checks and stores an upload of `owner`'s; `chat` is the chat it is meant for, if said.
    /// Nothing is stored unless every check passed.
    pub(crate) async fn store(
        &self,
        owner: UserId,
        chat: Option<ChatId>,
        name: &str,
        bytes: Vec<u8>,
    ) -> MediaResult<AttachmentRow> {
        let stored = self.store_checked(owner, chat, name, bytes, true).await;
        if let Err(err) = &stored {
            Media::count_refusal(err);
        }
        stored
    }

    async fn store_checked(
        &self,
        owner: UserId,
        chat: Option<ChatId>,
        name: &str,
        bytes: Vec<u8>,
        metered: bool,
    ) -> MediaResult<AttachmentRow> {
        if bytes.len() as u64 > self.0.max_bytes {
            return Err(MediaError::TooLarge { max: self.0.max_bytes });
        }
        let content_type = match process::sniff(&bytes) {
            Some(found) if self.0.allowed.iter().any(|t| t.eq_ignore_ascii_case(found)) => found,
            Some(found) => return Err(MediaError::TypeRefused(found.to_string())),
            None => return Err(MediaError::TypeRefused("application/octet-stream".into())),
        };
        if metered {
            self.check_quota(owner, bytes.len() as u64).await?;
        }
        let max_pixels = self.0.max_pixels;
        let processed = tokio::task::spawn_blocking(move || process::process(bytes, content_type, max_pixels))
            .await
            .map_err(|e| MediaError::Internal(anyhow::anyhow!("image processing stopped: {e}")))??;
        let id = AttachmentId::new();
        let row = AttachmentRow {
            id,
            owner: Some(owner),
            chat_id: chat,
            content_type: processed.content_type,
            name: clean_name(name, content_type),
            size: processed.bytes.len() as i64,
            width: processed.width.map(|w| w as i32),
            height: processed.height.map(|h| h as i32),
            thumb_type: processed.thumbnail.as_ref().map(|(_, t)| t.to_string()),
            thumb_size: processed.thumbnail.as_ref().map(|(b, _)| b.len() as i64),
            created_at: now(),
            attached_at: None,
            avatar_of: None,
        };
        let objects = &self.0.objects.store;
        objects
            .put(&self.0.objects.key(id, Variant::Original), processed.bytes.into())
            .await?;
        if let Some((thumb, _)) = processed.thumbnail {
            objects
                .put(&self.0.objects.key(id, Variant::Thumbnail), thumb.into())
                .await?;
        }
        if let Err(err) = attachments::insert(&self.0.db, &row).await {
            self.remove_objects(id).await;
            return Err(err.into());
        }
        metrics::counter!("causerie_media_uploads_total").increment(1);
        metrics::gauge!("causerie_media_bytes_stored").increment(stored_bytes(&row) as f64);
        Ok(row)
    }

    async fn check_quota(&self, owner: UserId, adding: u64) -> MediaResult<()> {
        let quota = self.0.quota_per_day;
        if quota == 0 {
            return Ok(());
        }
        let since = now() - chrono::Duration::hours(24);
        let used = attachments::bytes_since(&self.0.db, owner, since).await?.max(0) as u64;
        if used.saturating_add(adding) <= quota {
            return Ok(());
        }
        let oldest = attachments::oldest_since(&self.0.db, owner, since).await?;
        let retry_after = oldest
            .map(|at| (at + chrono::Duration::hours(24) - Utc::now()).num_seconds().max(1) as u64)
            .unwrap_or(24 * 3600);
        Err(MediaError::QuotaExceeded { retry_after })
    }

    /// Stores the photo of a `data:` URL (what the finished app puts in `extraData`), checked
    /// like an upload.
    pub(crate) async fn store_data_url(&self, owner: UserId, chat: ChatId, url: &str) -> MediaResult<AttachmentRow> {
        let decoded = refs::decode_data_url(url, self.0.max_bytes);
        match decoded {
            Ok(bytes) => self.store(owner, Some(chat), "photo", bytes).await,
            Err(err) => {
                Media::count_refusal(&err);
                Err(err)
            }
        }
    }

    /// Stores the photo of a `data:` URL from history being converted: checked like an upload
    /// but outside the daily quota (it was sent long ago).
    pub(crate) async fn store_old_data_url(
        &self,
        owner: UserId,
        chat: ChatId,
        url: &str,
    ) -> MediaResult<AttachmentRow> {
        let bytes = refs::decode_data_url(url, self.0.max_bytes)?;
        self.store_checked(owner, Some(chat), "photo", bytes, false).await
    }

    pub(crate) async fn get(&self, id: AttachmentId) -> MediaResult<AttachmentRow> {
        attachments::by_id(&self.0.db, id).await?.ok_or(MediaError::NotFound)
    }

    /// One page of the attachments `filter` selects, newest first, and the total (the admin
    /// site).
    pub(crate) async fn find(
        &self,
        filter: &attachments::AttachmentFilter,
        limit: i64,
        offset: i64,
    ) -> MediaResult<(i64, Vec<AttachmentRow>)> {
        Ok(attachments::filtered(&self.0.db, filter, limit, offset).await?)
    }

    /// How many attachments are stored and their bytes, thumbnails included (the dashboard).
    pub(crate) async fn totals(&self) -> MediaResult<(i64, i64)> {
        let count = attachments::count(&self.0.db).await?;
        let bytes = attachments::total_bytes(&self.0.db).await?;
        Ok((count, bytes))
    }

    /// Records that a message in `chat` carries these attachments of `owner`'s. An attachment
    /// of someone else's, or one uploaded for or posted in another chat, is refused.
    pub(crate) async fn attach(
        &self,
        owner: UserId,
        chat: ChatId,
        ids: &[AttachmentId],
    ) -> MediaResult<Vec<AttachmentRow>> {
        let mut rows = Vec::with_capacity(ids.len());
        for &id in ids {
            let row = match attachments::by_id(&self.0.db, id).await? {
                Some(row)
                    if row.owner == Some(owner) && row.avatar_of.is_none() && row.chat_id.is_none_or(|c| c == chat) =>
                {
                    row
                }
                _ => return Err(MediaError::NotYours(id.to_string())),
            };
            rows.push(row);
        }
        for row in &mut rows {
            attachments::mark_attached(&self.0.db, row.id, chat).await?;
            row.chat_id = Some(chat);
            row.attached_at.get_or_insert_with(now);
        }
        Ok(rows)
    }

    /// Reads a variant of an attachment, or one `range` of its bytes (already checked to lie
    /// within the file).
    pub(crate) async fn open(
        &self,
        row: &AttachmentRow,
        variant: Variant,
        range: Option<Range<u64>>,
    ) -> MediaResult<Opened> {
        let (total, _) = Media::file_of(row, variant)?;
        let options = object_store::GetOptions {
            range: range.map(object_store::GetRange::Bounded),
            ..Default::default()
        };
        let found = self
            .0
            .objects
            .store
            .get_opts(&self.0.objects.key(row.id, variant), options)
            .await?;
        Ok(Opened {
            body: found.into_stream(),
            total,
        })
    }

    /// The length and type of one of an attachment's files (not found: no thumbnail).
    pub(crate) fn file_of(row: &AttachmentRow, variant: Variant) -> MediaResult<(u64, &str)> {
        match variant {
            Variant::Original => Ok((row.size.max(0) as u64, &row.content_type)),
            Variant::Thumbnail => match (row.thumb_size, &row.thumb_type) {
                (Some(size), Some(kind)) => Ok((size.max(0) as u64, kind)),
                _ => Err(MediaError::NotFound),
            },
        }
    }

    /// Removes attachments and their files (a deleted message's).
    pub(crate) async fn remove(&self, ids: &[AttachmentId]) -> MediaResult<()> {
        for &id in ids {
            if let Some(row) = attachments::by_id(&self.0.db, id).await? {
                self.remove_row(&row).await?;
            }
        }
        Ok(())
    }

    async fn remove_row(&self, row: &AttachmentRow) -> MediaResult<()> {
        self.remove_objects(row.id).await;
        if attachments::delete(&self.0.db, row.id).await? {
            metrics::gauge!("causerie_media_bytes_stored").decrement(stored_bytes(row) as f64);
        }
        Ok(())
    }

    async fn remove_objects(&self, id: AttachmentId) {
        for variant in [Variant::Original, Variant::Thumbnail] {
            match self.0.objects.store.delete(&self.0.objects.key(id, variant)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => tracing::warn!(%id, error = %err, "could not remove an attachment's file"),
            }
        }
    }

    /// How many files the store holds under its attachments' prefix.
    pub(crate) async fn object_count(&self) -> MediaResult<usize> {
        use futures_util::TryStreamExt;
        let objects = &self.0.objects;
        let listed: Vec<_> = objects.store.list(Some(&objects.prefix())).try_collect().await?;
        Ok(listed.len())
    }

    /// Removes uploads no message carried within a day of `now`, and those of
    /// deleted chats; returns how many. Also sets the stored-bytes gauge from the table.
    pub(crate) async fn sweep(&self, now: chrono::DateTime<Utc>) -> MediaResult<usize> {
        let cutoff = now - unattached_lifetime();
        let mut removed = 0;
        loop {
            let batch = attachments::abandoned(&self.0.db, cutoff, 500).await?;
            if batch.is_empty() {
                break;
            }
            for row in &batch {
                self.remove_row(row).await?;
            }
            removed += batch.len();
        }
        let total = attachments::total_bytes(&self.0.db).await?;
        metrics::gauge!("causerie_media_bytes_stored").set(total as f64);
        Ok(removed)
    }

    /// The sweeper's periodic run (errors are logged: the next run tries again).
    pub(crate) async fn sweep_now(&self) {
        match self.sweep(Utc::now()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed attachments no message carries"),
            Err(err) => tracing::warn!(error = %err, "attachment sweep failed"),
        }
    }
}

fn stored_bytes(row: &AttachmentRow) -> i64 {
    row.size + row.thumb_size.unwrap_or(0)
}

/// A file name safe to keep and to send back in `Content-Disposition`: the last path part of
/// what the client said, without control characters, at most 200 characters; a plain name
/// with the type's extension when nothing is left.
pub(crate) fn clean_name(name: &str, content_type: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if !cleaned.is_empty() && cleaned.contains('.') {
        return cleaned;
    }
    let stem = if cleaned.is_empty() {
        "file".to_string()
    } else {
        cleaned
    };
    let ext = match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "application/pdf" => "pdf",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "audio/x-wav" => "wav",
        "audio/m4a" => "m4a",
        "audio/aac" => "aac",
        "audio/x-flac" => "flac",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => return stem,
    };
    format!("{stem}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::clean_name;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("../../etc/passwd.png", "image/png"), "passwd.png");
        assert_eq!(clean_name("C:\\photos\\cat.jpg", "image/jpeg"), "cat.jpg");
        assert_eq!(clean_name("bad\"\r\nname.pdf", "application/pdf"), "badname.pdf");
        assert_eq!(clean_name("", "image/png"), "file.png");
        assert_eq!(clean_name("photo", "image/jpeg"), "photo.jpg");
        assert_eq!(clean_name(".hidden", "image/gif"), "hidden.gif");
    }
}
