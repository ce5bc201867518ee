//! The flush pipeline: staged file -> hashes -> journal -> `upload_file`
//! (or `resume_upload` of a journaled plan) -> caches.
//!
//! Errors come back to `close()` (EEXIST, ENOSPC, EIO via `errno()`); the
//! staged file and its journal entry are only deleted once the server
//! confirmed the content.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::{format_time, Meta};
use super::core::{OpenFile, SmhFs};
use super::error::{FsError, FsResult};
use super::writeback::transient;
use crate::smh::{SmhPath, UploadOptions, UploadPlan};

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
        let id = st.id();
        of.fresh = false;
        // Write-back acknowledged the data at close: it must be on disk
        // before the upload may fail and leave it to a later mount.
        let sync = self.write_back();
        let hashes = match tokio::task::block_in_place(|| {
            if sync {
                st.sync()?;
            }
            st.hashes()
        }) {
            Ok(h) => h,
            Err(e) => {
                of.upload_failed = true;
                tracing::error!(%path, staged = %st.path().display(), "cannot hash staged file: {e}");
                return Err(FsError::Io(e));
            }
        };
        // A complete entry exists before anything is sent, even if the
        // begin call is where we die.
        if of.journal_id.is_none() || !of.journal_complete {
            let mut e = self.journal_entry(&path, st, None);
            e.complete = true;
            if let Err(err) = self.dur.journal.write(&e) {
                of.upload_failed = true;
                tracing::error!(%path, "cannot write the upload journal: {err}");
                return Err(FsError::Io(err));
            }
            of.journal_id = Some(id.clone());
            of.journal_plan = false;
            of.journal_complete = true;
        }
        let size = hashes.size;
        let sent = self.dur.tracker.start(&id, &path, size, st.path());
        let recorded: Arc<parking_lot::Mutex<Option<UploadPlan>>> = Default::default();
        let on_plan = {
            let journal = self.dur.journal.clone();
            let mut template = self.journal_entry(&path, st, None);
            template.complete = true;
            let recorded = recorded.clone();
            Arc::new(move |plan: &UploadPlan| {
                *recorded.lock() = Some(plan.clone());
                let mut e = template.clone();
                e.plan = Some(plan.clone());
                journal.write(&e)
            })
        };
        let opts = UploadOptions {
            strategy: self.cfg.conflict,
            part_size: self.cfg.part_size,
            concurrency: self.cfg.upload_concurrency,
            local_modification_time: st.mtime.map(format_time),
            on_plan: Some(on_plan),
            on_progress: Some(Arc::new(move |n| {
                sent.fetch_add(n, Ordering::Relaxed);
            })),
        };
        let started = std::time::Instant::now();
        let resume = of
            .plan
            .take()
            .filter(|p| p.size == size && p.path == path && p.hashes == hashes);
        let res = match &resume {
            Some(plan) => {
                tracing::info!(%path, size, "resuming a begun upload");
                self.client.resume_upload(plan, st.path(), &opts).await
            }
            None => {
                self.client
                    .upload_file(&path, st.path(), Some(hashes), &opts)
                    .await
            }
        };
        if let Some(p) = recorded.lock().take() {
            of.journal_plan = true;
            of.journal_complete = true;
            of.plan = Some(p);
        } else if let Some(p) = resume {
            of.plan = Some(p);
        }
        let meta = match res {
            Ok(m) => m,
            Err(e) => {
                of.upload_failed = true;
                let e = FsError::Smh(e);
                let permanent = !transient(&e);
                of.upload_transient = !permanent;
                self.dur.tracker.failed(&id, e.to_string(), permanent);
                if permanent {
                    let mut ent = self.journal_entry(&path, st, of.plan.clone());
                    ent.failed = Some(e.to_string());
                    ent.complete = true;
                    let _ = self.dur.journal.write(&ent);
                    of.journal_plan = true;
                }
                tracing::error!(
                    %path,
                    staged = %st.path().display(),
                    "upload failed: {e}; the data is kept in the staged file{}",
                    if permanent { "" } else { " and the upload is retried" }
                );
                return Err(e);
            }
        };
        of.dirty = false;
        of.remote = true;
        of.upload_failed = false;
        of.upload_transient = false;
        of.plan = None;
        if let Some(jid) = of.journal_id.take() {
            if let Err(e) = self.dur.journal.remove(&jid) {
                tracing::warn!(%path, "cannot remove journal entry {jid}: {e}");
            }
        }
        of.journal_plan = false;
        self.dur.tracker.done(&id);
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
