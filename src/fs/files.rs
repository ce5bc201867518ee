//! `SmhFs` file data: open/create, read, write, flush, release, truncate.
//! The open-file state machine (`openfile.rs`) decides; these methods
//! apply its answers to the staged content, the journal and the caches.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::cache::{Kind, Meta};
use super::caller;
use super::core::{Attr, FileHandle, InodeNo, SmhFs, FILL_CHUNK};
use super::error::{FsError, FsResult};
use super::memstage::Staged;
use super::metastate::AttrChange;
use super::openfile::{FlushStep, OpenFile, ReleaseStep};
use super::posix::PosixMeta;
use super::read::{ReadAhead, Source, Version};
use crate::smh::{ConflictStrategy, SmhError, SmhPath};

fn errno_error(e: i32) -> FsError {
    FsError::Io(std::io::Error::from_raw_os_error(e))
}

impl SmhFs {
    /// Records a staged file's size and mtime after a change.
    pub(crate) fn note_local(&self, ino: u64, st: &Staged) {
        let mut m = Meta::new_file(st.size());
        m.posix = st.posix();
        if let Some(t) = st.mtime() {
            m.mtime = t;
        }
        self.local.lock().insert(ino, m);
    }

    fn new_handle(&self, ino: u64, writer: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(
            fh,
            super::core::Handle {
                ino,
                writer,
                opener: None,
                read_ahead: Arc::new(tokio::sync::Mutex::new(ReadAhead::new(
                    self.budget.clone(),
                    Source::new(self.client.clone(), self.urls.clone()),
                ))),
            },
        );
        fh
    }

    /// The handle's inode, whether it writes, and who opened it.
    fn handle_owner(&self, fh: u64) -> FsResult<(u64, bool, Option<u32>)> {
        self.handles
            .lock()
            .get(&fh)
            .map(|h| (h.ino, h.writer, h.opener))
            .ok_or(FsError::BadHandle)
    }

    fn handle_ino(&self, fh: u64) -> FsResult<(u64, Arc<tokio::sync::Mutex<ReadAhead>>)> {
        self.handles
            .lock()
            .get(&fh)
            .map(|h| (h.ino, h.read_ahead.clone()))
            .ok_or(FsError::BadHandle)
    }

    /// Creates and opens a new file; it reaches the server at close, even
    /// if empty. `posix`: the requested mode (kept by an existing file).
    pub async fn create(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        posix: PosixMeta,
    ) -> FsResult<(Attr, FileHandle)> {
        let parent = parent.0;
        self.writable()?;
        let path = self.child(parent, name)?;
        let existing = self.resolve(&path).await?;
        if let Some(m) = &existing {
            if m.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            if self.cfg.conflict == ConflictStrategy::Ask {
                return Err(FsError::Exists);
            }
        }
        let mut staged = self.new_staged_small()?;
        staged.set_posix(existing.as_ref().map_or(posix, |m| m.posix));
        let ino = self.inodes.lock().lookup(&path, true);
        {
            // Created over a file with no open state here: the server's
            // (a rename or unlink before the upload must reach it).
            let mut of = self.lock_open_file(ino, existing.is_some()).await;
            self.note_local(ino, &staged);
            if let Some(old) = of.recreated(staged) {
                self.journal_forget(&mut of);
                old.remove();
            }
            if let Err(e) = self.journal_dirty(ino, &mut of) {
                if let Some(st) = of.staged.take() {
                    st.remove();
                }
                of.abandoned();
                if of.handles() == 0 {
                    drop(of);
                    self.local.lock().remove(&ino);
                    self.drop_open_state(ino);
                }
                return Err(e);
            }
            of.open_handle(true);
        }
        let mut meta = Meta::new_file(0);
        meta.posix = existing.map_or(posix, |m| m.posix);
        self.note_entry(&path, meta.clone());
        self.parent_changed(&path);
        let fh = self.new_handle(ino, true);
        Ok((
            Attr {
                ino: InodeNo(ino),
                meta,
            },
            FileHandle(fh),
        ))
    }

    /// `create` done in the calling (FUSE) thread when nothing can wait:
    /// the caches know the name is free, nothing about the inode is open,
    /// and the content starts in memory. `None`: take the async path.
    pub fn create_now(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        posix: PosixMeta,
    ) -> Option<FsResult<(Attr, FileHandle)>> {
        let parent = parent.0;
        if self.cfg.read_only {
            return None;
        }
        let path = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if self.resolve_cached(&path)?.is_some() {
            return None;
        }
        let mut staged = self.new_staged_small().ok()?;
        staged.set_posix(posix);
        {
            let mut inodes = self.inodes.lock();
            let ino = inodes.lookup(&path, false);
            let mut files = self.files.lock();
            if files.contains_key(&ino) {
                return None;
            }
            inodes.lookup(&path, true);
            files.insert(
                ino,
                Arc::new(tokio::sync::Mutex::new(OpenFile::created(staged))),
            );
            drop(files);
            drop(inodes);
            let mut meta = Meta::new_file(0);
            meta.posix = posix;
            self.local.lock().insert(ino, meta.clone());
            self.note_entry(&path, meta.clone());
            self.parent_changed(&path);
            let fh = self.new_handle(ino, true);
            Some(Ok((
                Attr {
                    ino: InodeNo(ino),
                    meta,
                },
                FileHandle(fh),
            )))
        }
    }

    /// Opens a file. `write` with `truncate` starts from empty content;
    /// without, the first write fills the staged copy from the server.
    pub async fn open(&self, ino: InodeNo, write: bool, truncate: bool) -> FsResult<FileHandle> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        if write {
            self.writable()?;
        }
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        if meta.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let mut g = self.lock_open_file(ino, true).await;
        if write && g.remote() && self.cfg.conflict == ConflictStrategy::Ask {
            if g.handles() == 0 {
                drop(g);
                self.drop_open_state(ino);
            }
            return Err(FsError::Exists);
        }
        if write && truncate {
            if g.remote() && g.staged.is_none() {
                // Replaced without being read: it started from this version.
                g.base = Version::of_meta(&meta);
            }
            match &g.staged {
                Some(_) => self.staged_truncate(ino, &mut g, 0)?,
                None => {
                    let mut st = self.new_staged_small()?;
                    st.set_posix(meta.posix);
                    g.staged = Some(st);
                }
            }
            if let Some(st) = &g.staged {
                self.note_local(ino, st);
            }
            g.restarted();
            self.journal_dirty(ino, &mut g)?;
        }
        g.open_handle(write);
        drop(g);
        Ok(FileHandle(self.new_handle(ino, write)))
    }

    /// Makes sure the open file has a staged copy holding its full content.
    pub(super) async fn ensure_staged(&self, path: &SmhPath, of: &mut OpenFile) -> FsResult<()> {
        if of.staged.is_some() {
            return Ok(());
        }
        let mut st = self.new_staged()?;
        if of.remote() {
            // One version, start to end (a change meanwhile: ESTALE).
            let meta = self.resolve_remote(path).await?.ok_or(FsError::NotFound)?;
            let src = Source::new(self.client.clone(), self.urls.clone());
            let size = match src.pin(path, Version::of_meta(&meta).as_ref()).await {
                Ok(v) => {
                    let size = v.size;
                    of.base = Some(v);
                    size
                }
                Err(e) => {
                    st.remove();
                    return Err(e);
                }
            };
            if let Err(e) = self.dur.budget.reserve(size, 0).await {
                st.remove();
                return Err(e.into());
            }
            st.add_charged(size);
            st.posix = meta.posix;
            let mut at = 0;
            while at < size {
                let n = FILL_CHUNK.min(size - at);
                let data = super::read::fetch(&src, path, at, n).await;
                let data = match data {
                    Ok(d) if d.len() as u64 == n => d,
                    Ok(_) => {
                        st.remove();
                        return Err(FsError::Smh(SmhError::Upload(format!(
                            "short read while staging {path}"
                        ))));
                    }
                    Err(e) => {
                        st.remove();
                        return Err(e);
                    }
                };
                st.write_at(at, &data)?;
                at += n;
            }
        }
        of.staged = Some(Staged::Disk(st));
        Ok(())
    }

    pub async fn read(&self, fh: FileHandle, offset: u64, size: u32) -> FsResult<Bytes> {
        let fh = fh.0;
        let (ino, ra) = self.handle_ino(fh)?;
        if let Some(of) = self.open_file(ino) {
            let of = of.lock().await;
            if let Some(st) = &of.staged {
                return Ok(Bytes::from(st.read_at(offset, size)?));
            }
        }
        let path = self.path_of(ino)?;
        let mut ra = ra.lock().await;
        // The first read picks the version; later ones need no attributes.
        let expect = if ra.pinned() {
            None
        } else {
            let meta = self.resolve_remote(&path).await?.ok_or(FsError::NotFound)?;
            Version::of_meta(&meta)
        };
        ra.read(&path, offset, size as u64, expect.as_ref()).await
    }

    /// `lseek` `SEEK_DATA` (`data`) / `SEEK_HOLE`: a staged copy answers
    /// with its holes (so `cp`, `tar --sparse` keep them); other content
    /// is all data, its one hole at the end.
    pub async fn seek_data(&self, fh: FileHandle, offset: u64, data: bool) -> FsResult<u64> {
        let (ino, _) = self.handle_ino(fh.0)?;
        let mut size = None;
        if let Some(of) = self.open_file(ino) {
            let of = of.lock().await;
            match &of.staged {
                Some(Staged::Disk(st)) => {
                    let at = tokio::task::block_in_place(|| st.seek(offset, data))?;
                    return at.ok_or_else(|| errno_error(libc::ENXIO));
                }
                Some(m) => size = Some(m.size()),
                None => {}
            }
        }
        let size = match size {
            Some(s) => s,
            None => self.getattr(InodeNo(ino)).await?.meta.size,
        };
        match (offset < size, data) {
            (false, _) => Err(errno_error(libc::ENXIO)),
            (true, true) => Ok(offset),
            (true, false) => Ok(size),
        }
    }

    /// A write to an already staged file whose state is not locked, done
    /// in the calling (FUSE) thread: no copy of the data, no task switch.
    /// `None`: take the async path.
    pub fn write_now(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Option<FsResult<u32>> {
        let fh = fh.0;
        if self.cfg.read_only {
            return None;
        }
        let (ino, _) = self.handle_ino(fh).ok()?;
        let of = self.open_file(ino)?;
        let mut of = of.try_lock().ok()?;
        let of = &mut *of;
        if of.write_error().is_some() {
            return None;
        }
        let journal_open = of.journal_is_open();
        match &mut of.staged {
            Some(Staged::Mem(m)) => {
                // No room in memory: the async path spills.
                if !m.try_write(offset, data) {
                    return None;
                }
            }
            // The journal must be (re)written: the async path does that.
            Some(Staged::Disk(_)) if !journal_open => return None,
            // Parts to send (large files): the async path sends them.
            Some(Staged::Disk(st)) if self.stream_due(st, data.len() as u64) => return None,
            Some(Staged::Disk(st)) => {
                let grow = match st.new_bytes(offset, data.len() as u64) {
                    Ok(n) => n,
                    Err(e) => return Some(Err(self.write_failed(of, e.into()))),
                };
                // No room without waiting: the async path waits (or ENOSPC).
                if grow > 0 && !self.dur.budget.try_reserve(grow, st.charged()) {
                    return None;
                }
                st.add_charged(grow);
                if let Err(e) = st.write_at(offset, data) {
                    return Some(Err(self.write_failed(of, e.into())));
                }
            }
            None => return None,
        }
        self.wrote(ino, of);
        Some(Ok(data.len() as u32))
    }

    pub async fn write(&self, fh: FileHandle, offset: u64, data: &[u8]) -> FsResult<u32> {
        let fh = fh.0;
        self.writable()?;
        let (ino, _) = self.handle_ino(fh)?;
        let path = self.path_of(ino)?;
        let of = self.open_file(ino).ok_or(FsError::BadHandle)?;
        let mut of = of.lock().await;
        if let Some(e) = of.write_error() {
            return Err(errno_error(e));
        }
        let res = async {
            self.ensure_staged(&path, &mut of).await?;
            self.staged_write(ino, &mut of, offset, data).await?;
            self.wrote(ino, &mut of);
            self.journal_dirty(ino, &mut of)?;
            self.stream_parts(ino, &mut of).await
        }
        .await;
        match res {
            Ok(()) => Ok(data.len() as u32),
            Err(e) => Err(self.write_failed(&mut of, e)),
        }
    }

    /// The one transition after a successful write (both write paths).
    fn wrote(&self, ino: u64, of: &mut OpenFile) {
        of.written();
        if let Some(st) = &of.staged {
            self.note_local(ino, st);
        }
    }

    /// The content is now incomplete: it must never be uploaded.
    fn write_failed(&self, of: &mut OpenFile, e: FsError) -> FsError {
        of.write_failed(e.errno());
        e
    }

    /// Records which process opened `fh` (FUSE's request pid), for the
    /// close rules. Call before the open's reply reaches the kernel.
    pub fn note_opener(&self, fh: FileHandle, pid: u32) {
        let fh = fh.0;
        if let Some(h) = self.handles.lock().get_mut(&fh) {
            h.opener = Some(pid);
        }
    }

    /// close() by the opener: uploads a dirty file and reports the upload's error.
    pub async fn flush(&self, fh: FileHandle) -> FsResult<()> {
        let fh = fh.0;
        self.flush_from(FileHandle(fh), None).await
    }

    /// close() of a descriptor by process `pid` (`None`: the opener's last
    /// descriptor). Uploads only by the rules in `openfile.rs`.
    pub async fn flush_from(&self, fh: FileHandle, pid: Option<u32>) -> FsResult<()> {
        let fh = fh.0;
        let (ino, writer, opener) = self.handle_owner(fh)?;
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of.lock().await;
        match of.on_flush(writer) {
            FlushStep::Nothing => return Ok(()),
            FlushStep::Report(e) => return Err(errno_error(e)),
            FlushStep::Upload => {}
        }
        if let (Some(pid), Some(opener)) = (pid, opener) {
            let held = || {
                self.mount_ref()
                    .is_some_and(|m| caller::holds_inode(pid, m, ino))
            };
            if !caller::same_process(pid, opener) || held() {
                // Not the opener's last descriptor: a later flush or the
                // release uploads.
                return Ok(());
            }
        }
        self.close_upload(ino, &mut of, !self.write_back()).await
    }

    /// `flush` answered in the calling (FUSE) thread when there is nothing
    /// to upload (read-only handles, already uploaded). `None`: async path.
    pub fn flush_now(&self, fh: FileHandle) -> Option<FsResult<()>> {
        let fh = fh.0;
        let (ino, writer, _) = self.handle_owner(fh).ok()?;
        let Some(of) = self.open_file(ino) else {
            return Some(Ok(()));
        };
        if !writer {
            return Some(Ok(()));
        }
        let step = of.try_lock().ok()?.on_flush(writer);
        match step {
            FlushStep::Nothing => Some(Ok(())),
            FlushStep::Report(e) => Some(Err(errno_error(e))),
            FlushStep::Upload => None,
        }
    }

    pub async fn fsync(&self, fh: FileHandle) -> FsResult<()> {
        let fh = fh.0;
        let (ino, _) = self.handle_ino(fh)?;
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of.lock().await;
        if let Some(st) = &of.staged {
            st.sync()?;
        }
        match of.on_flush(true) {
            FlushStep::Nothing => Ok(()),
            FlushStep::Report(e) => Err(errno_error(e)),
            // fsync means "on the server", also in write-back mode.
            FlushStep::Upload => self.close_upload(ino, &mut of, true).await,
        }
    }

    /// Sends dirty content at a close: now (`upload`) or, in write-back
    /// mode, durable locally (staged data and journal entry fsynced) and
    /// queued for the background.
    async fn close_upload(&self, ino: u64, of: &mut OpenFile, upload: bool) -> FsResult<()> {
        if upload {
            return self.upload_locked(ino, of).await;
        }
        if of.staged.as_ref().is_some_and(|s| s.is_mem()) {
            // Written, fsynced and journaled as complete.
            self.spill(ino, of, true)?;
        } else if let Some(st) = &of.staged {
            st.sync()?;
        }
        self.journal_closed(ino, of)?;
        self.enqueue_upload(ino, of);
        Ok(())
    }

    pub async fn release(&self, fh: FileHandle) -> FsResult<()> {
        let fh = fh.0;
        let Some(h) = self.handles.lock().remove(&fh) else {
            return Err(FsError::BadHandle);
        };
        let ino = h.ino;
        let Some(of_ref) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of_ref.lock().await;
        let mut result = Ok(());
        match of.release_handle(h.writer) {
            ReleaseStep::Nothing => {}
            ReleaseStep::Discard(e) => {
                // Incomplete content: dropped (the writer was told).
                self.abort_stream(&of).await;
                self.journal_forget(&mut of);
                result = Err(errno_error(e));
            }
            ReleaseStep::Upload if self.write_back() => {
                // Uploaded by the queue; stays visible until then.
                if let Err(e) = self.journal_closed(ino, &mut of) {
                    tracing::error!(ino, "cannot write the upload journal: {e}");
                }
                self.enqueue_upload(ino, &of);
                return Ok(());
            }
            // No flush uploaded it: one try, then keep the data.
            ReleaseStep::Upload => result = self.upload_locked(ino, &mut of).await,
        }
        if of.handles() > 0 {
            return result;
        }
        if of.retry_pending() {
            // Retried in the background; stays visible until then.
            self.enqueue_upload(ino, &of);
            return result;
        }
        if of.is_dirty() {
            if let Some(Staged::Mem(_)) = &of.staged {
                // Only if it could not be written to cache_dir either.
                tracing::error!(ino, "file closed without a successful upload; its data could not be kept in cache_dir");
            }
            if let Some(Staged::Disk(st)) = of.staged.take() {
                let path = self.inodes.lock().path(ino);
                tracing::error!(
                    path = %path.map(|p| p.to_string()).unwrap_or_default(),
                    staged = %st.path().display(),
                    "file closed without a successful upload; its data is kept in the staged file"
                );
                // Leak the handle on purpose: the file stays on disk.
                drop(st);
            }
        } else {
            if of.content() == super::openfile::Content::Unlinked {
                self.abort_stream(&of).await;
            }
            if let Some(st) = of.staged.take() {
                st.remove();
            }
        }
        self.forget_open_file(ino, &of_ref);
        drop(of);
        result
    }

    /// `release` done in the calling (FUSE) thread when it needs no upload
    /// and the file's state is not locked. `None`: take the async path.
    pub fn release_now(&self, fh: FileHandle) -> Option<FsResult<()>> {
        let fh = fh.0;
        let (ino, writer, _) = self.handle_owner(fh).ok()?;
        let Some(of_ref) = self.open_file(ino) else {
            self.handles.lock().remove(&fh);
            return Some(Ok(()));
        };
        let mut of = of_ref.try_lock().ok()?;
        if !of.release_is_trivial(writer) {
            return None;
        }
        self.handles.lock().remove(&fh)?;
        of.release_handle(writer);
        if of.handles() > 0 {
            return Some(Ok(()));
        }
        if let Some(st) = of.staged.take() {
            st.remove();
        }
        self.forget_open_file(ino, &of_ref);
        drop(of);
        Some(Ok(()))
    }

    /// truncate / utimens / chmod / chown.
    pub async fn setattr(
        &self,
        ino: InodeNo,
        size: Option<u64>,
        change: AttrChange,
    ) -> FsResult<Attr> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        if let Some(size) = size {
            self.writable()?;
            let meta = self
                .resolve_ino(ino, &path)
                .await?
                .ok_or(FsError::NotFound)?;
            if meta.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            let mut of = self.lock_open_file(ino, true).await;
            if of.remote() && self.cfg.conflict == ConflictStrategy::Ask {
                if of.handles() == 0 {
                    drop(of);
                    self.drop_open_state(ino);
                }
                return Err(FsError::Exists);
            }
            let res = async {
                if size == 0 && of.staged.is_none() {
                    let mut st = self.new_staged_small()?;
                    st.set_posix(meta.posix);
                    of.staged = Some(st);
                } else {
                    self.ensure_staged(&path, &mut of).await?;
                }
                self.staged_truncate(ino, &mut of, size)?;
                if size == 0 {
                    of.restarted();
                } else {
                    of.written();
                }
                self.journal_dirty(ino, &mut of)?;
                if of.handles() == 0 {
                    // truncate(2) on a path: the content is complete.
                    self.journal_closed(ino, &mut of)?;
                }
                if of.handles() == 0 && !self.write_back() {
                    // truncate(2) on a path: nothing will close it, upload now.
                    self.upload_locked(ino, &mut of).await?;
                }
                Ok::<_, FsError>(())
            }
            .await;
            let retry = of.retry_pending();
            if of.handles() == 0 && of.is_dirty() && (self.write_back() || retry) {
                // Uploaded by the background queue; stays visible meanwhile.
                self.enqueue_upload(ino, &of);
            } else if of.handles() == 0 {
                if !of.is_dirty() {
                    if let Some(st) = of.staged.take() {
                        st.remove();
                    }
                }
                drop(of);
                self.local.lock().remove(&ino);
                self.drop_open_state(ino);
            }
            res?;
        }
        self.set_attrs(ino, &path, change).await?;
        self.getattr(InodeNo(ino)).await
    }

    /// mknod of a regular file: an empty file on the server right away.
    pub async fn mknod_file(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        posix: PosixMeta,
    ) -> FsResult<Attr> {
        let parent = parent.0;
        let (attr, fh) = self.create(InodeNo(parent), name, posix).await?;
        let r = self.flush(fh).await;
        let _ = self.release(fh).await;
        r?;
        self.getattr(attr.ino).await
    }
}
