//! Where attachment files live: a local directory (`media_root`) or an S3 bucket, both behind
//! `object_store`, so every instance of a cluster on S3 serves every file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use super::Variant;
use crate::config::Config;
use crate::ids::AttachmentId;

/// Where the files are: the store, and the path under which its keys start.
pub(super) struct Objects {
    pub store: Arc<dyn ObjectStore>,
    root: Path,
}

impl Objects {
    /// The object key of one of an attachment's files.
    pub(super) fn key(&self, id: AttachmentId, variant: Variant) -> Path {
        let name = match variant {
            Variant::Original => format!("{id}"),
            Variant::Thumbnail => format!("{id}.thumb"),
        };
        self.prefix().child(name)
    }

    /// Where every attachment's files are.
    pub(super) fn prefix(&self) -> Path {
        self.root.child("attachments")
    }
}

/// The directory used when no bucket is set: `media_root`, else `media` beside the SQLite
/// file (the working directory for PostgreSQL).
pub(crate) fn media_root(config: &Config) -> PathBuf {
    config.media_root.clone().unwrap_or_else(|| {
        crate::store::sqlite_path(&config.database_url)
            .and_then(|db| db.parent())
            .map(|dir| dir.join("media"))
            .unwrap_or_else(|| PathBuf::from("media"))
    })
}

pub(super) fn from_config(config: &Config) -> anyhow::Result<Objects> {
    if let Some(bucket) = &config.media_s3_bucket {
        // Credentials and anything not set here come from the usual AWS_* variables.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = &config.media_s3_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &config.media_s3_region {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .with_context(|| format!("opening S3 bucket {bucket} (setting `media_s3_bucket`)"))?;
        return Ok(Objects {
            store: Arc::new(store),
            root: Path::default(),
        });
    }
    // Keys are absolute paths under the directory, which is made when the first file is
    // written (a command that stores nothing leaves no directory behind).
    let dir = media_root(config);
    let absolute = std::path::absolute(&dir)
        .with_context(|| format!("the media directory {} (setting `media_root`)", dir.display()))?;
    let root = Path::from_absolute_path(&absolute)
        .with_context(|| format!("the media directory {} (setting `media_root`)", dir.display()))?;
    Ok(Objects {
        store: Arc::new(LocalFileSystem::new()),
        root,
    })
}
