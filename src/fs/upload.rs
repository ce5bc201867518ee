//! The flush pipeline: staged file -> hashes -> `upload_file` -> caches.
//!
//! Errors come back to `close()` (EEXIST, ENOSPC, EIO via `errno()`); the
//! staged file is only deleted once the server confirmed the content.

use super::cache::{format_time, Meta};
use super::core::{OpenFile, SmhFs};
use super::error::{FsError, FsResult};
use crate::smh::{SmhPath, UploadOptions};

impl SmhFs {
    /// Uploads the open file's staged content to its current path. The
    /// caller holds the file's lock, so writes wait for the upload.
    pub(crate) async fn upload_locked(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        // Unmount waits for this (`SmhFs::wait_idle`).
        let _in_flight = self.in_flight.begin();
        let path = self.path_of(ino)?;
        let Some(st) = of.staged.as_mut() else {
            of.dirty = false;
            return Ok(());
        };
        let hashes = match tokio::task::block_in_place(|| st.hashes()) {
            Ok(h) => h,
            Err(e) => {
                of.upload_failed = true;
                tracing::error!(%path, staged = %st.path().display(), "cannot hash staged file: {e}");
                return Err(FsError::Io(e));
            }
        };
        let opts = UploadOptions {
            strategy: self.cfg.conflict,
            part_size: self.cfg.part_size,
            concurrency: self.cfg.upload_concurrency,
            local_modification_time: st.mtime.map(format_time),
            on_plan: None,
        };
        let size = hashes.size;
        let started = std::time::Instant::now();
        let res = self
            .client
            .upload_file(&path, st.path(), Some(hashes), &opts)
            .await;
        let meta = match res {
            Ok(m) => m,
            Err(e) => {
                of.upload_failed = true;
                tracing::error!(
                    %path,
                    staged = %st.path().display(),
                    "upload failed: {e}; the data is kept in the staged file"
                );
                return Err(FsError::Smh(e));
            }
        };
        of.dirty = false;
        of.remote = true;
        of.upload_failed = false;
        let final_path = meta
            .path
            .clone()
            .and_then(|segs| SmhPath::from_segments(segs).ok())
            .filter(|p| !p.is_root())
            .unwrap_or_else(|| path.clone());
        tracing::debug!(%final_path, size, elapsed = ?started.elapsed(), "uploaded");
        let local_mtime = st.mtime;
        if final_path != path {
            tracing::info!(requested = %path, stored = %final_path, "upload stored under another name (conflict=rename)");
            self.inodes.lock().rename(&path, &final_path);
            self.attrs.remove(&path);
            if let Some(parent) = path.parent() {
                // The requested name still holds the older file on the server.
                self.dirs.remove_tree(&parent);
            }
        }
        self.note_entry(&final_path, Meta::from_file_meta(&meta, local_mtime));
        Ok(())
    }
}
