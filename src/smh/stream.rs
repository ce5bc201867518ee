//! Streamed uploads: a multipart task begun before the size of the content
//! is known, its parts sent one by one while the content is still being
//! written, and the task completed (tail parts + confirm) at the end.
//!
//! Used for files larger than the local cache: each sent part may leave
//! the cache, so a streamed task can never fall back to "upload the whole
//! content again" — the bytes of its sent parts exist only on the server.

use super::client::SmhClient;
use super::codes;
use super::error::{Result, SmhError};
use super::hash::ContentHashes;
use super::part_source::{SharedSource, Source};
use super::path::SmhPath;
use super::types::{BeginBody, ConflictStrategy, FileMeta, UploadTicket};
use super::upload::{part_count, BeginOutcome, UploadKind, UploadOptions, UploadPlan};

/// A begun streamed task: where it goes and how to send its parts.
#[derive(Debug, Clone)]
pub struct StreamedTask {
    pub path: SmhPath,
    pub confirm_key: String,
    /// Every part but the last is exactly this long.
    pub part_size: u64,
    pub strategy: ConflictStrategy,
    /// The ticket as last renewed.
    pub ticket: UploadTicket,
}

impl StreamedTask {
    /// The plan of the finished content (`size` bytes with `hashes`), for
    /// the last parts and the confirm.
    pub fn plan(&self, hashes: ContentHashes) -> UploadPlan {
        UploadPlan {
            path: self.path.clone(),
            kind_multipart: true,
            confirm_key: self.confirm_key.clone(),
            size: hashes.size,
            part_size: self.part_size,
            part_count: part_count(hashes.size, self.part_size),
            hashes,
            strategy: self.strategy,
        }
    }
}

impl SmhClient {
    /// Begins a multipart task of unknown size (no instant upload: the
    /// content's hashes are not known before it is written).
    pub async fn begin_streamed(
        &self,
        path: &SmhPath,
        part_size: u64,
        opts: &UploadOptions,
    ) -> Result<StreamedTask> {
        let body = BeginBody {
            local_modification_time: opts.local_modification_time.clone(),
            meta: opts.meta.clone(),
            ..Default::default()
        };
        let outcome = self
            .begin_upload(path, UploadKind::Multipart, &body, opts.strategy, None)
            .await?;
        let BeginOutcome::Ticket(ticket) = outcome else {
            return Err(SmhError::Upload(
                "begin without hashes did not return an upload ticket".into(),
            ));
        };
        let confirm_key = ticket
            .confirm_key
            .clone()
            .ok_or_else(|| SmhError::Upload("upload ticket without confirmKey".into()))?;
        Ok(StreamedTask {
            path: path.clone(),
            confirm_key,
            part_size,
            strategy: opts.strategy,
            ticket,
        })
    }

    /// Sends part `n` (from 1): the `part_size` bytes of `source` at
    /// `(n-1) * part_size`. Renewals of the ticket are kept in `task`.
    pub async fn put_streamed_part(
        &self,
        task: &mut StreamedTask,
        n: u32,
        source: SharedSource,
        opts: &UploadOptions,
    ) -> Result<()> {
        // A plan whose content ends with part n: part n is a full part.
        let plan = UploadPlan {
            path: task.path.clone(),
            kind_multipart: true,
            confirm_key: task.confirm_key.clone(),
            size: n as u64 * task.part_size,
            part_size: task.part_size,
            part_count: n,
            hashes: ContentHashes::of(b""),
            strategy: task.strategy,
        };
        let ticket = task.ticket.clone();
        task.ticket = self
            .send_parts(&plan, ticket, Source::Parts(source), vec![n], opts)
            .await?;
        Ok(())
    }

    /// Completes a streamed task: sends the parts the server does not hold
    /// (the tail) from `source` and confirms. Unlike
    /// [`resume_from`](Self::resume_from), a task the server no longer
    /// knows is an error: the content cannot be sent again.
    pub async fn complete_streamed(
        &self,
        plan: &UploadPlan,
        source: SharedSource,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        let status = match self.upload_status(&plan.confirm_key).await {
            Ok(s) => s,
            Err(e)
                if e.code() == Some(codes::UPLOAD_NOT_FOUND)
                    || e.code() == Some(codes::CONFIRM_KEY_NOT_FOUND) =>
            {
                return Err(SmhError::Upload(format!(
                    "the streamed upload task of {} is gone on the server; its sent parts are not held locally",
                    plan.path
                )));
            }
            Err(e) => return Err(e),
        };
        self.resume_with(plan, source, status, opts).await
    }
}
