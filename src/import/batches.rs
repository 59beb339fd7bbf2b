//! A source query's rows handed out a batch at a time, each counted on the progress bar.

use futures_util::stream::{BoxStream, StreamExt};

use super::progress::Progress;
use super::source::{SourceError, SourceRow};
use super::{ImportError, BATCH};

pub(super) struct Batches<'a> {
    rows: BoxStream<'a, Result<SourceRow, sqlx::Error>>,
    progress: Option<Progress>,
    exhausted: bool,
}

impl<'a> Batches<'a> {
    pub(super) fn new(rows: BoxStream<'a, Result<SourceRow, sqlx::Error>>, progress: Progress) -> Batches<'a> {
        Batches {
            rows,
            progress: Some(progress),
            exhausted: false,
        }
    }

    /// Full batches of `BATCH` rows, then the rest once (possibly empty, so a table's last step
    /// always runs), then `None`, which also closes the progress bar.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<SourceRow>>, ImportError> {
        if self.exhausted {
            if let Some(progress) = self.progress.take() {
                progress.finish();
            }
            return Ok(None);
        }
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            match self.rows.next().await {
                Some(row) => batch.push(row.map_err(SourceError::Sql)?),
                None => {
                    self.exhausted = true;
                    break;
                }
            }
        }
        if let Some(progress) = self.progress.as_mut() {
            progress.advance(batch.len() as u64);
        }
        Ok(Some(batch))
    }
}
