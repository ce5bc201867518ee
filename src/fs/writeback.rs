//! Background uploads: the write-back queue, resume of journaled uploads at
//! mount, progress for `smhfs status`, and draining at unmount.
//!
//! * With `-o write_back[=DELAY]`, `close()` returns once the staged file
//!   is fsynced and journaled; the upload runs here, `DELAY` seconds later
//!   (rewrites within the delay are sent once), with at most
//!   [`DurabilityOptions::jobs`] files at a time.
//! * Without it, `close()` uploads and reports the error as before; but a
//!   file whose upload failed with a transient error (network, 5xx, 429,
//!   expired credentials) is handed to this queue at release instead of
//!   being left behind.
//! * Transient failures are retried with exponential backoff (1 s .. 60 s)
//!   until they succeed. Permanent ones (EEXIST with `conflict=ask`, a
//!   rejected CRC-64, a local read error) are logged at ERROR with the path
//!   and the staged file; the staged file and its journal entry (marked
//!   failed) stay under `cache_dir`.
//! * Pending files stay in the open-file table, so reads, listings, stat
//!   and rename see them until the server has them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::core::SmhFs;
use super::error::{FsError, FsResult};
use super::inflight::OpGuard;
use super::journal::JournalEntry;
use super::memstage::{MemStaged, Staged};
use super::openfile::{Content, JournalState, OpenFile};
pub use super::progress::{journal_status, StatusReport, Tracker, UploadInfo, UploadState};
pub use super::queue::{default_cache_size, transient, Durability, DurabilityOptions, Queue};
use super::queue::{Job, MAX_BACKOFF};
use super::staging::StagedFile;
use super::uploader::{Body, Outgoing};
use crate::smh::SmhPath;

impl SmhFs {
    /// Applies durability options; call before the filesystem is shared.
    pub fn set_durability(&mut self, opts: DurabilityOptions) {
        self.dur = Durability::new(&self.cfg.cache_dir, opts);
    }

    pub fn write_back(&self) -> bool {
        self.dur.opts.write_back.is_some()
    }

    /// A new staged file counted against the cache bound.
    pub(crate) fn new_staged(&self) -> FsResult<StagedFile> {
        let mut st = StagedFile::create(&self.cfg.cache_dir)?;
        st.set_budget(Some(self.dur.budget.clone()));
        Ok(st)
    }

    /// Local content for a file that starts empty: in memory (moved to a
    /// staged file when it must be durable or large, see `memstage.rs`).
    pub(crate) fn new_staged_small(&self) -> FsResult<Staged> {
        Ok(Staged::Mem(MemStaged::new(
            self.dur.budget.clone(),
            self.dur.mem.clone(),
        )))
    }

    /// Moves an in-memory file's content to a staged file with a journal
    /// entry (`complete`: as of a close). No-op for a staged file.
    pub(crate) fn spill(&self, ino: u64, of: &mut OpenFile, complete: bool) -> FsResult<()> {
        let Some(Staged::Mem(m)) = &of.staged else {
            return Ok(());
        };
        let mut st = self.new_staged()?;
        let res = (|| {
            st.write_at(0, m.data())?;
            if self.write_back() {
                st.sync()?;
            }
            Ok::<_, std::io::Error>(())
        })();
        if let Err(e) = res {
            st.remove();
            return Err(e.into());
        }
        st.mtime = m.mtime;
        st.posix = m.posix;
        // Dropping the memory copy gives its room back.
        of.staged = Some(Staged::Disk(st));
        if let Err(e) = self.journal_write(ino, of, complete) {
            // Back to memory: nothing refers to the staged file.
            if let Some(Staged::Disk(st)) = of.staged.take() {
                let mut back = MemStaged::new(self.dur.budget.clone(), self.dur.mem.clone());
                let data = st.read_at(0, st.size() as u32).unwrap_or_default();
                if back.try_write(0, &data) {
                    back.mtime = st.mtime;
                    back.posix = st.posix;
                    st.remove();
                    of.staged = Some(Staged::Mem(back));
                } else {
                    of.staged = Some(Staged::Disk(st));
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Writes into the open file's local content, spilling from memory to
    /// a staged file when memory is not the place (any more).
    pub(crate) async fn staged_write(
        &self,
        ino: u64,
        of: &mut OpenFile,
        offset: u64,
        data: &[u8],
    ) -> FsResult<()> {
        if let Some(Staged::Mem(m)) = &mut of.staged {
            if m.try_write(offset, data) {
                if let Some(st) = &of.staged {
                    self.note_local(ino, st);
                }
                return Ok(());
            }
            self.spill(ino, of, false)?;
        }
        let Some(Staged::Disk(st)) = of.staged.as_mut() else {
            return Err(FsError::BadHandle);
        };
        // Room for what lands on disk: growth, and holes filled.
        let grow = st.new_bytes(offset, data.len() as u64)?;
        if grow > 0 {
            self.dur.budget.reserve(grow, st.charged()).await?;
            st.add_charged(grow);
        }
        st.write_at(offset, data)?;
        if let Some(st) = &of.staged {
            self.note_local(ino, st);
        }
        Ok(())
    }

    /// Truncates (or extends) the open file's local content.
    pub(crate) fn staged_truncate(&self, ino: u64, of: &mut OpenFile, size: u64) -> FsResult<()> {
        if let Some(Staged::Mem(m)) = &mut of.staged {
            if !m.try_truncate(size) {
                self.spill(ino, of, false)?;
            }
        }
        if let Some(Staged::Disk(st)) = of.staged.as_mut() {
            st.truncate(size)?;
        }
        if let Some(st) = &of.staged {
            self.note_local(ino, st);
        }
        Ok(())
    }

    pub(crate) fn journal_entry(
        &self,
        path: &SmhPath,
        st: &StagedFile,
        plan: Option<crate::smh::UploadPlan>,
        strategy: crate::smh::ConflictStrategy,
    ) -> JournalEntry {
        let cc = self.client.config();
        JournalEntry {
            id: st.id(),
            library: cc.library.clone(),
            space: cc.space.clone(),
            path: path.clone(),
            staged: st.path().to_path_buf(),
            strategy,
            mtime: st.mtime,
            meta: st.posix.to_meta_data(),
            complete: plan.is_some(),
            plan,
            failed: None,
            stream: st.stream().map(|s| super::journal::StreamRecord {
                confirm_key: s.task.confirm_key.clone(),
                part_size: s.task.part_size,
                parts_sent: s.parts,
            }),
        }
    }

    /// The open file's content changed: make sure a journal entry (without
    /// a plan: a begun upload of older content must not be resumed) exists.
    pub(crate) fn journal_dirty(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        of.plan = None;
        if of.journal_is_open() {
            return Ok(());
        }
        self.journal_write(ino, of, false)
    }

    /// The content is complete (close, truncate(2)): say so in the journal,
    /// so that it is uploaded after a crash.
    pub(crate) fn journal_closed(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        if self.write_back() {
            // Acknowledged before the upload: must survive a crash.
            self.spill(ino, of, true)?;
        }
        if of.journal.as_ref().is_some_and(|j| j.complete) {
            return Ok(());
        }
        self.journal_write(ino, of, true)
    }

    /// Writes the open file's entry (without a plan).
    fn journal_write(&self, ino: u64, of: &mut OpenFile, complete: bool) -> FsResult<()> {
        if of.content() == Content::Unlinked {
            // Never uploaded, so never journaled (`rm -rf` while writing).
            return Ok(());
        }
        let strategy = of.strategy(self.cfg.conflict);
        // In memory: journaled when spilled.
        let Some(Staged::Disk(st)) = of.staged.as_mut() else {
            return Ok(());
        };
        let path = self.path_of(ino)?;
        // A closed streamed file: its plan (hashes of the whole content)
        // lets a later run finish it without the sent bytes.
        let plan = match st.stream() {
            Some(_) if complete => {
                let h = st.hashes()?;
                st.stream().map(|s| s.task.plan(h))
            }
            _ => None,
        };
        let mut e = self.journal_entry(&path, st, plan, strategy);
        e.complete = complete;
        self.dur.journal.write(&e)?;
        of.journal = Some(JournalState {
            id: e.id,
            plan: false,
            complete,
        });
        of.plan = None;
        Ok(())
    }

    /// The file was renamed: its pending upload goes to the new path.
    pub(crate) fn journal_renamed(&self, ino: u64, of: &mut OpenFile) {
        let Some(complete) = of.journal.as_ref().map(|j| j.complete) else {
            return;
        };
        if let Err(e) = self.journal_write(ino, of, complete) {
            tracing::error!(ino, "cannot update the journal after a rename: {e}");
        }
    }

    /// The file is gone (unlink): forget its journal entry.
    pub(crate) fn journal_forget(&self, of: &mut OpenFile) {
        if let Some(JournalState { id, .. }) = of.journal.take() {
            if let Err(e) = self.dur.journal.remove(&id) {
                tracing::warn!(id, "cannot remove journal entry: {e}");
            }
            self.dur.tracker.done(&id);
        }
        of.plan = None;
    }

    /// Queues a background upload of `ino` (write-back, or a retry).
    pub(crate) fn enqueue_upload(&self, ino: u64, of: &OpenFile) {
        // Only new content waits for the write-back delay.
        self.enqueue(ino, of, of.is_fresh())
    }

    fn enqueue(&self, ino: u64, of: &OpenFile, delayed: bool) {
        if let (Some(st), Ok(path)) = (of.staged.as_ref(), self.path_of(ino)) {
            self.dur
                .tracker
                .queued(&st.id(), &path, st.size(), st.path());
        }
        if self.dur.queue.queued.lock().insert(ino) {
            self.dur.queue.push(Job::Ino(ino, delayed));
        }
    }

    /// Uploads still queued or running.
    pub fn pending_uploads(&self) -> usize {
        self.dur.queue.pending()
    }

    /// At unmount: starts pending uploads at once (no write-back delay) and
    /// waits until none is left or `timeout` passed. Returns how many are
    /// left (they stay journaled for the next mount or `smhfs resume`).
    pub async fn drain_uploads(&self, timeout: Duration) -> usize {
        let q = &self.dur.queue;
        q.draining.store(true, Ordering::SeqCst);
        q.drain_start.notify_waiters();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = q.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if q.pending() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                let left = q.pending();
                if left > 0 {
                    tracing::warn!(
                        left,
                        "uploads not finished at unmount; they stay journaled in the cache directory and resume at the next mount (or `smhfs resume`)"
                    );
                }
                return left;
            }
        }
    }

    /// Starts the background queue. Call once.
    pub fn start_background(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        self.start_settling(rt);
        let Some(mut rx) = self.dur.queue.rx.lock().take() else {
            return;
        };
        let fs = self.clone();
        let sem = Arc::new(tokio::sync::Semaphore::new(self.dur.opts.jobs.max(1)));
        rt.spawn(async move {
            while let Some(job) = rx.recv().await {
                let fs = fs.clone();
                let sem = sem.clone();
                tokio::spawn(async move {
                    fs.run_job(job, sem).await;
                    fs.dur.queue.finish_one();
                });
            }
        });
    }

    async fn run_job(&self, job: Job, sem: Arc<tokio::sync::Semaphore>) {
        if let Job::Ino(_, true) = &job {
            if let Some(d) = self.dur.opts.write_back.filter(|d| !d.is_zero()) {
                self.dur.queue.sleep(d).await;
            }
        }
        let Ok(_permit) = sem.acquire().await else {
            return;
        };
        if let Job::Ino(ino, _) = &job {
            self.dur.queue.queued.lock().remove(ino);
        }
        let mut attempt = 0u32;
        loop {
            let r = match &job {
                Job::Ino(ino, _) => self.upload_background(*ino).await,
                Job::Entry(e) => self.upload_entry(e).await,
            };
            match r {
                Ok(()) => return,
                Err(e) if transient(&e) => {
                    let d = Duration::from_secs(1u64 << attempt.min(6)).min(MAX_BACKOFF);
                    attempt += 1;
                    tracing::warn!(attempt, retry_in = ?d, "background upload failed: {e}; retrying");
                    if self.dur.queue.draining.load(Ordering::SeqCst) {
                        tokio::time::sleep(d.min(Duration::from_secs(2))).await;
                    } else {
                        self.dur.queue.sleep(d).await;
                    }
                }
                Err(_) => return, // permanent: logged and kept by the upload
            }
        }
    }

    /// Uploads a pending file if it is still dirty; drops it from the
    /// open-file table once uploaded and closed.
    async fn upload_background(&self, ino: u64) -> FsResult<()> {
        let Some(of_ref) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of_ref.lock().await;
        if of.handles() > 0 {
            // Still open (or reopened): its close queues it again.
            return Ok(());
        }
        let mut result = Ok(());
        if of.is_dirty() {
            result = self.upload_locked(ino, &mut of).await;
            if let Err(e) = &result {
                if !transient(e) && of.handles() == 0 {
                    // Kept on disk (journal marked failed); no longer shown.
                    if let Some(st) = of.staged.take() {
                        drop(st);
                    }
                    of.abandoned();
                    self.forget_open_file(ino, &of_ref);
                    drop(of);
                    return result;
                }
            }
        }
        if of.handles() == 0 && !of.is_dirty() {
            if let Some(st) = of.staged.take() {
                st.remove();
            }
            self.forget_open_file(ino, &of_ref);
            drop(of);
        }
        result
    }

    /// Removes `ino` from the open-file table if `of_ref` is still its state.
    /// Call it with `of_ref` locked: an open waiting for that lock then sees
    /// the state is gone and makes a new one (`lock_open_file`) instead of
    /// adopting this one just before it leaves the table (its writes would
    /// get EBADF).
    pub(crate) fn forget_open_file(&self, ino: u64, of_ref: &Arc<tokio::sync::Mutex<OpenFile>>) {
        let mut files = self.files.lock();
        if files.get(&ino).is_some_and(|c| Arc::ptr_eq(c, of_ref)) {
            files.remove(&ino);
            self.local.lock().remove(&ino);
            drop(files);
            self.unpin(ino, 0);
        }
    }

    /// Drops `ino`'s open state whatever it is (a failed create or open
    /// that nobody holds), and the inode with it if nothing else holds it.
    pub(crate) fn drop_open_state(&self, ino: u64) {
        self.files.lock().remove(&ino);
        self.unpin(ino, 0);
    }

    /// Uploads a journaled file that is not in the open-file table.
    async fn upload_entry(&self, e: &JournalEntry) -> FsResult<()> {
        // A retry resumes the plan an earlier attempt journaled.
        let e = &self.dur.journal.get(&e.id).unwrap_or_else(|| e.clone());
        if e.stream.is_some() {
            return self.upload_streamed_entry(e).await;
        }
        let mut st = StagedFile::open_existing(&e.staged, None)?;
        st.mtime = e.mtime;
        st.posix = super::posix::PosixMeta::from_meta_data(Some(&e.meta));
        let size = st.size();
        let sent = self.dur.tracker.start(&e.id, &e.path, size, &e.staged);
        let resume = e.plan.as_ref().filter(|plan| plan.size == size);
        let res = self
            .uploader()
            .send(Outgoing {
                to: &e.path,
                body: Body::File {
                    path: &e.staged,
                    hashes: None,
                    resume,
                },
                strategy: e.strategy,
                mtime: e.mtime,
                posix: st.posix,
                journal: Some((self.dur.journal.clone(), e.clone())),
                sent,
                before_confirm: None,
            })
            .await
            .result;
        match res {
            Ok(_) => {
                tracing::info!(path = %e.path, size, "journaled upload completed");
                self.dur.journal.remove(&e.id)?;
                self.dur.tracker.done(&e.id);
                st.remove();
                Ok(())
            }
            Err(err) => {
                let (err, permanent) = self.dur.upload_failed(&e.id, err);
                if permanent {
                    tracing::error!(path = %e.path, staged = %e.staged.display(), "upload failed for good: {err}; the data is kept in the staged file");
                    let mut ent = e.clone();
                    ent.failed = Some(err.to_string());
                    let _ = self.dur.journal.write(&ent);
                }
                Err(err)
            }
        }
    }

    /// Continues every journaled upload of this library and space. Entries
    /// inside the mounted directory become pending files (visible in the
    /// mount); others are uploaded without being shown.
    pub fn resume_journal(&self, retry_failed: bool) {
        let entries = self.dur.journal.load();
        if entries.is_empty() {
            return;
        }
        let cc = self.client.config();
        let mut resumed = 0;
        for mut e in entries {
            if e.library != cc.library || e.space != cc.space {
                tracing::warn!(
                    id = e.id,
                    library = e.library,
                    space = e.space,
                    "journal entry of another library/space; left alone"
                );
                continue;
            }
            if let Some(err) = &e.failed {
                if !retry_failed {
                    let size = std::fs::metadata(&e.staged).map(|m| m.len()).unwrap_or(0);
                    self.dur.tracker.queued(&e.id, &e.path, size, &e.staged);
                    self.dur.tracker.failed(&e.id, err.clone(), true);
                    tracing::error!(path = %e.path, staged = %e.staged.display(), "upload failed earlier ({err}); not retried (smhfs resume --retry-failed)");
                    continue;
                }
                e.failed = None;
            }
            if e.stream.is_some() {
                // Completed or aborted, never uploaded from its holes.
                self.dur.queue.push(Job::Entry(Box::new(e)));
                continue;
            }
            if !e.complete && e.plan.is_none() && !retry_failed {
                let size = std::fs::metadata(&e.staged).map(|m| m.len()).unwrap_or(0);
                let why = "incomplete: the file was still being written when smhfs stopped";
                self.dur.tracker.queued(&e.id, &e.path, size, &e.staged);
                self.dur.tracker.failed(&e.id, why.into(), true);
                tracing::error!(path = %e.path, staged = %e.staged.display(), "{why}; its partial content is kept and not uploaded (smhfs resume --retry-failed uploads it)");
                continue;
            }
            if !e.staged.is_file() {
                tracing::error!(path = %e.path, staged = %e.staged.display(), "journaled staged file is missing; nothing to upload");
                let _ = self.dur.journal.remove(&e.id);
                continue;
            }
            resumed += 1;
            let inside = e.path.starts_with(&self.cfg.root) && e.path != self.cfg.root;
            if inside && self.adopt_as_open_file(&e) {
                continue;
            }
            self.dur.queue.push(Job::Entry(Box::new(e)));
        }
        if resumed > 0 {
            tracing::info!(
                count = resumed,
                "resuming journaled uploads in the background"
            );
        }
    }

    fn adopt_as_open_file(&self, e: &JournalEntry) -> bool {
        let mut st = match StagedFile::open_existing(&e.staged, Some(self.dur.budget.clone())) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(staged = %e.staged.display(), "cannot open staged file: {err}");
                return false;
            }
        };
        st.mtime = e.mtime;
        st.posix = super::posix::PosixMeta::from_meta_data(Some(&e.meta));
        let ino = self.inodes.lock().lookup(&e.path, false);
        let of = OpenFile::resumed(
            Staged::Disk(st),
            JournalState {
                id: e.id.clone(),
                plan: e.plan.is_some(),
                complete: true,
            },
            e.plan.clone(),
        );
        {
            let mut files = self.files.lock();
            if files.contains_key(&ino) {
                drop(files);
                // Opened meanwhile: upload the journaled copy on its own.
                if let Some(Staged::Disk(st)) = of.staged {
                    if let Some(b) = st.budget() {
                        b.release(st.charged());
                    }
                }
                return false;
            }
            files.insert(ino, Arc::new(tokio::sync::Mutex::new(of)));
        }
        if let Some(of) = self.open_file(ino) {
            if let Ok(g) = of.try_lock() {
                if let Some(st) = &g.staged {
                    self.note_local(ino, st);
                }
                self.enqueue(ino, &g, false);
                return true;
            }
        }
        true
    }

    /// What `smhfs status MOUNTPOINT` shows (also the root's
    /// `user.smhfs.status` attribute with `-o xattr`).
    pub fn status_report(&self) -> StatusReport {
        StatusReport {
            pending: self.pending_uploads(),
            write_back: self.write_back(),
            cache_used: self.dur.budget.used(),
            cache_size: self.dur.budget.limit(),
            cache_dir: self.cfg.cache_dir.display().to_string(),
            uploads: self.dur.tracker.all(),
            conflicts: self.dur.tracker.conflicts(),
            metrics: None,
            memory: self.memory_report(),
        }
    }

    /// Inodes and cached listing entries held now.
    pub fn memory_report(&self) -> super::progress::MemoryReport {
        let (listing_dirs, listing_entries) = self.dirs.size();
        super::progress::MemoryReport {
            known_inodes: self.inodes.lock().count() as u64,
            listing_dirs,
            listing_entries,
            attr_entries: self.attrs.len() as u64,
            server_inodes: self.remote_inodes.lock().count() as u64,
        }
    }

    /// JSON for the `user.smhfs.upload` (a file) or `user.smhfs.status`
    /// (the root) extended attribute (mounts with `-o xattr`).
    pub async fn upload_xattr(&self, ino: super::inode::InodeNo, name: &str) -> Option<Vec<u8>> {
        let ino = ino.0;
        match name {
            "user.smhfs.status" => serde_json::to_vec(&self.status_report()).ok(),
            "user.smhfs.upload" => {
                let of = self.open_file(ino)?;
                let id = {
                    let g = of.lock().await;
                    g.staged.as_ref()?.id()
                };
                let info = self.dur.tracker.get(&id)?;
                serde_json::to_vec(&info).ok()
            }
            _ => None,
        }
    }
}

/// The daemon's end of life (see `inflight.rs`).
impl SmhFs {
    /// Uploads running right now.
    pub fn uploads_in_flight(&self) -> usize {
        self.in_flight.uploads.load(Ordering::SeqCst)
    }

    /// Marks a kernel request as being served until the guard drops.
    pub fn op_guard(&self) -> OpGuard {
        self.in_flight.ops.fetch_add(1, Ordering::SeqCst);
        OpGuard(self.in_flight.clone())
    }

    /// At exit, after the write-back queue drained, for files the kernel
    /// never released (a lazy unmount can drop the last RELEASE): staged
    /// copies the server confirmed are removed, unconfirmed ones are kept
    /// and named (path and staged file) in the log, as are uploads the
    /// drain left running or waiting.
    pub fn discard_confirmed_staged(&self) {
        let mut named = std::collections::HashSet::new();
        let files: Vec<_> = self
            .files
            .lock()
            .iter()
            .map(|(i, f)| (*i, f.clone()))
            .collect();
        for (ino, f) in files {
            let Ok(mut of) = f.try_lock() else {
                continue;
            };
            if of.is_dirty() {
                // Still open: kept like any file being written at a crash.
                if let Err(e) = self.spill(ino, &mut of, false) {
                    tracing::error!(ino, "cannot keep a file held in memory: {e}");
                }
                if let Some(st) = &of.staged {
                    let path = self.inodes.lock().path(ino);
                    let path = path.map_or_else(|| format!("inode {ino}"), |p| p.to_string());
                    let staged = st.path().display().to_string();
                    unconfirmed_at_exit(&path, &staged, "open");
                    named.insert(staged);
                }
                continue;
            }
            if let Some(st) = of.staged.take() {
                st.remove();
            }
        }
        for u in self.dur.tracker.all() {
            if !named.contains(&u.staged) {
                unconfirmed_at_exit(&u.path, &u.staged, &u.state.to_string());
            }
        }
    }

    /// Waits until no upload (and no request) is in flight; false if
    /// `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a wake-up between the two is not lost.
            idle.as_mut().enable();
            if self.in_flight.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight.count() == 0;
            }
        }
    }
}

/// The one warning for data the server has not confirmed when the daemon
/// exits (kept staged and journaled; resumed at the next mount).
fn unconfirmed_at_exit(path: &str, staged: &str, state: &str) {
    tracing::warn!(
        %path,
        %staged,
        %state,
        "unmounted with an unconfirmed upload; its data is kept in the staged file"
    );
}
