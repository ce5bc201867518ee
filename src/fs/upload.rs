//! The flush pipeline: staged file -> hashes -> journal -> `upload_file`
//! (or `resume_upload` of a journaled plan) -> caches.
//!
//! Errors come back to `close()` (EEXIST, ENOSPC, EIO via `errno()`); the
//! staged file and its journal entry are only deleted once the server
//! confirmed the content.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::cache::Meta;
use super::core::SmhFs;
use super::error::{FsError, FsResult};
use super::lostupdate::{
    before_confirm, changed_since, conflict_name, strategy_for, Target, UpdateConflict,
};
use super::memstage::Staged;
use super::openfile::{JournalState, OpenFile};
use super::queue::transient;
use super::read::Version;
use super::uploader::{Body, Outgoing, Uploader};
use crate::smh::types::FileMeta;
use crate::smh::{SmhPath, UploadPlan};

impl SmhFs {
    /// The uploader with this mount's part settings.
    pub(crate) fn uploader(&self) -> Uploader<'_> {
        Uploader {
            client: &self.client,
            part_size: self.cfg.part_size,
            concurrency: self.cfg.upload_concurrency,
        }
    }

    /// Uploads the open file's staged content to its current path. The
    /// caller holds the file's lock, so writes wait for the upload.
    pub(crate) async fn upload_locked(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        // Unmount waits for this (`SmhFs::wait_idle`).
        let _in_flight = self.in_flight.begin();
        let path = self.path_of(ino)?;
        // The feed's echo of this upload waits for its reply (`own.rs`).
        let _own = self.own_change(&path);
        if let Some(st) = &of.staged {
            // In memory only for one simple upload whose outcome close() reports.
            if st.is_mem() && (self.write_back() || st.size() > self.cfg.part_size) {
                self.spill(ino, of, true)
                    .inspect_err(|_| of.upload_failed(false))?;
            }
        }
        match of.staged.as_mut() {
            None => {
                of.upload_confirmed();
                return Ok(());
            }
            Some(Staged::Mem(_)) => return self.upload_mem(ino, &path, of).await,
            Some(Staged::Disk(_)) => {}
        }
        let strategy = of.strategy(self.cfg.conflict);
        let target = match self.check_base(&path, of).await {
            Ok(t) => t,
            Err(e) => return Err(self.check_failed(&path, of, e, strategy)),
        };
        let to = target_path(&target, &path);
        let strategy_now = strategy_for(&target, strategy);
        of.upload_started();
        let Some(Staged::Disk(st)) = of.staged.as_mut() else {
            return Ok(());
        };
        let id = st.id();
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
                tracing::error!(%path, staged = %st.path().display(), "cannot hash staged file: {e}");
                of.upload_failed(false);
                return Err(FsError::Io(e));
            }
        };
        if st.stream().is_some() {
            return self
                .finish_stream(&path, of, &target, strategy, hashes)
                .await;
        }
        // A complete entry exists before anything is sent, even if the
        // begin call is where we die.
        if !of.journal.as_ref().is_some_and(|j| j.complete) {
            let mut e = self.journal_entry(&path, st, None, strategy);
            e.complete = true;
            if let Err(err) = self.dur.journal.write(&e) {
                of.upload_failed(false);
                tracing::error!(%path, "cannot write the upload journal: {err}");
                return Err(FsError::Io(err));
            }
            of.journal = Some(JournalState {
                id: id.clone(),
                plan: false,
                complete: true,
            });
        }
        let size = hashes.size;
        let sent = self.dur.tracker.start(&id, &path, size, st.path());
        let mut template = self.journal_entry(&path, st, None, strategy);
        template.complete = true;
        let started = std::time::Instant::now();
        let resume = of
            .plan
            .take()
            .filter(|p| p.size == size && p.path == to && p.hashes == hashes);
        if resume.is_some() {
            tracing::info!(%path, size, "resuming a begun upload");
        }
        let switched = Arc::new(AtomicBool::new(false));
        let sent_now = self
            .uploader()
            .send(Outgoing {
                to: &to,
                body: Body::File {
                    path: st.path(),
                    hashes: Some(hashes.clone()),
                    resume: resume.as_ref(),
                },
                strategy: strategy_now,
                mtime: st.mtime,
                posix: st.posix,
                journal: Some((self.dur.journal.clone(), template)),
                sent,
                before_confirm: self.confirm_check(&target, of.base.as_ref(), &switched),
            })
            .await;
        let res = sent_now.result;
        if let Some(p) = sent_now.plan {
            of.journal = Some(JournalState {
                id: id.clone(),
                plan: true,
                complete: true,
            });
            of.plan = Some(p);
        } else if let Some(p) = resume {
            of.plan = Some(p);
        }
        let meta = match res {
            Ok(m) => m,
            Err(e) => {
                let (e, permanent) = self.dur.upload_failed(&id, e);
                of.upload_failed(!permanent);
                let plan = of.plan.clone();
                let Some(Staged::Disk(st)) = of.staged.as_ref() else {
                    return Err(e);
                };
                if self.keep_failed(&path, st, plan, &e, permanent, strategy) {
                    if let Some(j) = of.journal.as_mut() {
                        j.plan = true;
                    }
                }
                return Err(e);
            }
        };
        tracing::debug!(%path, size, elapsed = ?started.elapsed(), "uploaded");
        let local_mtime = st.mtime;
        self.note_conflict(&path, &target, &switched, &meta);
        let posix = st.posix;
        self.known.remember(&meta, &hashes);
        self.upload_done(&path, of, &id, &meta, (local_mtime, posix));
        Ok(())
    }

    /// Uploads an in-memory file in one request. No journal entry: close()
    /// reports the outcome. A failed upload spills to a staged file with a
    /// journal entry, so it is retried or reported like any other.
    async fn upload_mem(&self, ino: u64, path: &SmhPath, of: &mut OpenFile) -> FsResult<()> {
        let strategy = of.strategy(self.cfg.conflict);
        let target = match self.check_base(path, of).await {
            Ok(t) => t,
            Err(e) => {
                if self.spill(ino, of, true).is_err() {
                    of.upload_failed(true);
                    return Err(e);
                }
                return Err(self.check_failed(path, of, e, strategy));
            }
        };
        let to = target_path(&target, path);
        of.upload_started();
        let Some(Staged::Mem(m)) = of.staged.as_mut() else {
            return Ok(());
        };
        let hashes = m.hashes();
        let body = m.bytes();
        let local_mtime = m.mtime;
        let posix = m.posix;
        let size = hashes.size;
        let id = of.staged.as_ref().map(|s| s.id()).unwrap_or_default();
        let mem_path = of
            .staged
            .as_ref()
            .map(|s| s.path().to_path_buf())
            .unwrap_or_default();
        let sent = self.dur.tracker.start(&id, path, size, &mem_path);
        let switched = Arc::new(AtomicBool::new(false));
        let res = self
            .uploader()
            .send(Outgoing {
                to: &to,
                body: Body::Bytes {
                    data: body.clone(),
                    hashes: hashes.clone(),
                },
                strategy: strategy_for(&target, strategy),
                mtime: local_mtime,
                posix,
                journal: None,
                sent,
                before_confirm: self.confirm_check(&target, of.base.as_ref(), &switched),
            })
            .await
            .result;
        let e = match res {
            Ok(meta) => {
                self.note_conflict(path, &target, &switched, &meta);
                self.known.remember(&meta, &hashes);
                self.known.remember_small(&meta, &body);
                self.upload_done(path, of, &id, &meta, (local_mtime, posix));
                return Ok(());
            }
            Err(e) => FsError::Smh(e),
        };
        let permanent = !transient(&e);
        of.upload_failed(!permanent);
        self.dur.tracker.done(&id);
        if let Err(se) = self.spill(ino, of, true) {
            // Still in memory: retried in the background while we run.
            of.upload_failed(true);
            tracing::error!(%path, "upload failed: {e}; cannot keep the data in cache_dir ({se}); it stays in memory and the upload is retried");
            return Err(e);
        }
        if let Some(Staged::Disk(st)) = &of.staged {
            let sid = st.id();
            self.dur.tracker.queued(&sid, path, size, st.path());
            self.dur.tracker.failed(&sid, e.to_string(), permanent);
            if self.keep_failed(path, st, None, &e, permanent, strategy) {
                if let Some(j) = of.journal.as_mut() {
                    j.plan = true;
                }
            }
        }
        Err(e)
    }

    /// The server confirmed the content of `of` as `meta`: the journal
    /// entry goes, the caches learn the file (maybe under another name).
    pub(super) fn upload_done(
        &self,
        path: &SmhPath,
        of: &mut OpenFile,
        id: &str,
        meta: &FileMeta,
        (local_mtime, posix): (Option<std::time::SystemTime>, super::posix::PosixMeta),
    ) {
        of.upload_confirmed();
        // Later uploads of this open file replace this version.
        of.base = Some(Version::of_file_meta(meta));
        if let Some(j) = of.journal.take() {
            if let Err(e) = self.dur.journal.remove(&j.id) {
                tracing::warn!(%path, "cannot remove journal entry {}: {e}", j.id);
            }
        }
        self.dur.tracker.done(id);
        let final_path = meta
            .path
            .clone()
            .and_then(|segs| SmhPath::from_segments(segs).ok())
            .filter(|p| !p.is_root())
            .unwrap_or_else(|| path.clone());
        if final_path != *path {
            tracing::info!(requested = %path, stored = %final_path, "upload stored under another name (conflict=rename)");
            self.inodes.lock().rename(path, &final_path);
            // The kernel's entry for the requested name still points at
            // the moved inode: the next `cp x a.txt` would write to it.
            self.invalidate_entry(path);
            self.attrs.remove(path);
            if let Some(parent) = path.parent() {
                // The requested name still holds the older file on the server.
                self.dirs.remove_tree(&parent);
            }
        }
        let mut m = Meta::from_file_meta(meta, local_mtime);
        m.posix = posix;
        self.note_entry(&final_path, m);
    }

    /// The version check before an upload failed: `Stale` (update_conflict
    /// = fail) is a permanent failure that keeps the data, anything else a
    /// failed upload to retry.
    fn check_failed(
        &self,
        path: &SmhPath,
        of: &mut OpenFile,
        e: FsError,
        strategy: crate::smh::ConflictStrategy,
    ) -> FsError {
        let permanent = matches!(e, FsError::Stale) || !transient(&e);
        of.upload_failed(!permanent);
        if let Some(Staged::Disk(st)) = of.staged.as_ref() {
            if self.keep_failed(path, st, None, &e, permanent, strategy) {
                if let Some(j) = of.journal.as_mut() {
                    j.plan = true;
                }
            }
        }
        e
    }

    /// A failed upload keeps its data in the staged file; a permanent
    /// failure is journaled as failed (shown by `smhfs status`, never retried
    /// on its own), a transient one is retried. True: the entry now holds
    /// the failure (and the plan).
    fn keep_failed(
        &self,
        path: &SmhPath,
        st: &crate::fs::staging::StagedFile,
        plan: Option<UploadPlan>,
        e: &FsError,
        permanent: bool,
        strategy: crate::smh::ConflictStrategy,
    ) -> bool {
        if permanent {
            let mut ent = self.journal_entry(path, st, plan, strategy);
            ent.failed = Some(e.to_string());
            ent.complete = true;
            let _ = self.dur.journal.write(&ent);
        }
        tracing::error!(
            %path,
            staged = %st.path().display(),
            "upload failed: {e}; the data is kept in the staged file{}",
            if permanent { "" } else { " and the upload is retried" }
        );
        permanent
    }

    /// The lost-update check an upload to `target` of content based on
    /// `base` runs before its confirm (`lostupdate.rs`); `switched` records
    /// a move to the conflict copy.
    fn confirm_check(
        &self,
        target: &Target,
        base: Option<&super::read::Version>,
        switched: &Arc<AtomicBool>,
    ) -> Option<crate::smh::upload::ConfirmHook> {
        before_confirm(
            &self.client,
            target,
            base,
            self.cfg.update_conflict,
            switched,
        )
    }
}

impl SmhFs {
    /// Remembers a conflict copy for `smhfs status`: the upload of `path`
    /// went to one (first check) or was switched to one (second check).
    fn note_conflict(
        &self,
        path: &SmhPath,
        target: &Target,
        switched: &AtomicBool,
        meta: &FileMeta,
    ) {
        if matches!(target, Target::Same) && !switched.load(Ordering::Relaxed) {
            return;
        }
        let stored = meta
            .path
            .clone()
            .and_then(|s| SmhPath::from_segments(s).ok())
            .unwrap_or_else(|| target_path(target, path));
        self.dur.tracker.conflict(path, &stored);
    }
}

/// The path an upload goes to.
fn target_path(target: &Target, path: &SmhPath) -> SmhPath {
    match target {
        Target::Same => path.clone(),
        Target::Copy(c) => c.clone(),
    }
}

impl SmhFs {
    /// Checks the server's version of `path` against the one `of` started
    /// from; `Err(Stale)` in `fail` mode.
    pub(crate) async fn check_base(&self, path: &SmhPath, of: &OpenFile) -> FsResult<Target> {
        let Some(base) = of.base.as_ref() else {
            return Ok(Target::Same);
        };
        if self.cfg.update_conflict == UpdateConflict::Overwrite {
            return Ok(Target::Same);
        }
        if !changed_since(&self.client, path, base).await? {
            return Ok(Target::Same);
        }
        match self.cfg.update_conflict {
            UpdateConflict::Fail => {
                tracing::warn!(%path, "changed on the server since it was opened here; not overwriting it (update_conflict=fail): ESTALE, the data stays in cache_dir");
                Err(FsError::Stale)
            }
            _ => {
                let copy = conflict_name(path, chrono::Utc::now()).ok_or(FsError::Invalid)?;
                tracing::warn!(%path, conflict_copy = %copy, "changed on the server since it was opened here; keeping both: ours is stored as the conflict copy");
                Ok(Target::Copy(copy))
            }
        }
    }
}
