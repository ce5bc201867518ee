//! The last step of an upload: the confirm, and the caller's last word
//! before it ([`ConfirmHook`]): once the data is sent, the caller may check
//! the server again and store the content elsewhere, or not at all
//! ([`ConfirmAs`]).
//!
//! SMH's confirm takes no precondition ("only if the file is still version
//! X"), so this check narrows the window for a lost update to one round
//! trip; it cannot close it.

use super::client::SmhClient;
use super::codes;
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::types::{ConfirmBody, ConflictStrategy, FileMeta};
use super::upload::{ConfirmAs, UploadOptions, UploadPlan};

impl SmhClient {
    /// Asks the hook, then confirms with the CRC-64; tolerates a confirm
    /// that already landed.
    pub(super) async fn finish(
        &self,
        confirm_key: &str,
        plan: &UploadPlan,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        let target = match &opts.before_confirm {
            Some(hook) => hook(plan.clone()).await?,
            None => ConfirmAs::Planned,
        };
        match target {
            ConfirmAs::Planned => {
                self.confirm_as(confirm_key, plan, opts, plan.strategy)
                    .await
            }
            ConfirmAs::Refused(why) => {
                if let Err(e) = self.abort_upload(confirm_key).await {
                    tracing::debug!(path = %plan.path, "cannot abort the refused upload: {e}");
                }
                Err(SmhError::Superseded(why))
            }
            ConfirmAs::Elsewhere(to) => {
                let mut meta = self
                    .confirm_as(confirm_key, plan, opts, ConflictStrategy::Rename)
                    .await?;
                let stored = meta
                    .path
                    .clone()
                    .and_then(|s| SmhPath::from_segments(s).ok())
                    .unwrap_or_else(|| plan.path.clone());
                if stored == plan.path || stored == to {
                    return Ok(meta);
                }
                let moved = self
                    .move_file(&stored, &to, ConflictStrategy::Rename)
                    .await?;
                if let Some(n) = moved.name() {
                    meta.name = n.to_string();
                }
                meta.path = Some(moved.segments().to_vec());
                Ok(meta)
            }
        }
    }

    async fn confirm_as(
        &self,
        confirm_key: &str,
        plan: &UploadPlan,
        opts: &UploadOptions,
        strategy: ConflictStrategy,
    ) -> Result<FileMeta> {
        let body = ConfirmBody {
            crc64: Some(plan.hashes.crc64_string()),
            local_modification_time: opts.local_modification_time.clone(),
            ..Default::default()
        };
        match self
            .confirm_upload(confirm_key, &body, Some(strategy))
            .await
        {
            Ok(meta) => Ok(meta),
            Err(e) if e.code() == Some(codes::UPLOAD_COMPLETE) => {
                self.confirmed_meta(confirm_key, plan).await
            }
            Err(e) => Err(e),
        }
    }

    /// File metadata of a task the server already confirmed (a retried
    /// confirm whose first attempt did land).
    pub(super) async fn confirmed_meta(
        &self,
        confirm_key: &str,
        plan: &UploadPlan,
    ) -> Result<FileMeta> {
        let status = self.upload_status(confirm_key).await?;
        let path = match status.path {
            Some(p) => SmhPath::from_segments(p)?,
            None => plan.path.clone(),
        };
        let info = self.stat(&path).await?.ok_or_else(|| {
            SmhError::Upload(format!("confirmed upload of {path} is not on the server"))
        })?;
        Ok(FileMeta {
            path: Some(path.segments().to_vec()),
            name: info.name,
            kind: info.kind,
            inode: info.inode,
            creation_time: info.creation_time,
            modification_time: info.modification_time,
            content_type: info.content_type,
            size: info.size.unwrap_or_else(|| plan.size.to_string()),
            e_tag: info.e_tag,
            crc64: info.crc64,
            meta_data: info.meta_data,
            is_overwritten: false,
        })
    }
}
