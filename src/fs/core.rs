//! `SmhFs`: the filesystem as async operations on inode numbers, with no
//! FUSE types. The adapter in [`super::fuse`] only translates.
//!
//! Conflict modes (`-o conflict=`), for uploads at close and for rename(2):
//! * `overwrite`: replace an existing file (POSIX-like).
//! * `rename`: keep both; the server gives the new content a free name
//!   (`a (1).txt`) and that returned path becomes the file's path.
//! * `ask`: never replace. Uploads onto an existing name fail with EEXIST,
//!   rename(2) onto an existing name fails with EEXIST, and opening (or
//!   truncating) an existing file for writing is refused with **EEXIST**
//!   (chosen over EACCES because the reason is the existing name, not a
//!   permission; `cp` then reports "File exists").

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;

use super::cache::{AttrCache, DirCache, Kind, Listing, Meta};
use super::error::{FsError, FsResult};
use super::inode::{InodeTable, ROOT_INO};
use super::memstage::Staged;
use super::read::{ReadAhead, ReadBudget, UrlCache};
use crate::smh::path::MAX_NAME_BYTES;
use crate::smh::{ConflictStrategy, SmhClient, SmhError, SmhPath};

/// What the core needs from the mount options (`Default` only as the
/// blank the option table fills: see `cmd::options`).
#[derive(Debug, Clone, Default)]
pub struct FsConfig {
    /// The mounted directory inside the space (root for a whole space).
    pub root: SmhPath,
    pub conflict: ConflictStrategy,
    pub cache_dir: PathBuf,
    pub read_only: bool,
    pub attr_timeout: Duration,
    pub dir_timeout: Duration,
    pub part_size: u64,
    pub upload_concurrency: usize,
    pub permanent_delete: bool,
}

/// An inode number with its attributes.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: u64,
    pub meta: Meta,
}

/// One directory entry for readdir.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub ino: u64,
    pub name: String,
    pub kind: Kind,
    /// Attributes for readdirplus (from the same listing).
    pub meta: Meta,
}

/// Space figures for statfs, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct SpaceStats {
    pub total: u64,
    pub free: u64,
}

/// Per-inode state while the file is open (shared by all its handles).
#[derive(Debug, Default)]
pub(crate) struct OpenFile {
    pub(crate) staged: Option<Staged>,
    /// Local content differs from the server's.
    pub(crate) dirty: bool,
    /// The server has a version of this file (false for files created here
    /// and not uploaded yet).
    pub(crate) remote: bool,
    pub(crate) unlinked: bool,
    pub(crate) handles: u32,
    /// The last upload failed; release does not try again.
    pub(crate) upload_failed: bool,
    /// ... with an error worth retrying in the background.
    pub(crate) upload_transient: bool,
    /// Journal entry of the staged file (see `journal.rs`).
    pub(crate) journal_id: Option<String>,
    /// The journal entry holds an upload plan.
    pub(crate) journal_plan: bool,
    /// The journal entry says the content is complete (as of a close).
    pub(crate) journal_complete: bool,
    /// A begun upload of the current content, to resume.
    pub(crate) plan: Option<crate::smh::UploadPlan>,
    /// A write failed (ENOSPC, ...): the content is incomplete and is
    /// never uploaded; close() reports this errno.
    pub(crate) write_error: Option<i32>,
    /// Written since its last upload began (write-back waits its delay).
    pub(crate) fresh: bool,
}

type OpenFileRef = Arc<tokio::sync::Mutex<OpenFile>>;

struct Handle {
    ino: u64,
    read_ahead: Arc<tokio::sync::Mutex<ReadAhead>>,
}

pub struct SmhFs {
    pub(crate) client: SmhClient,
    pub(crate) cfg: FsConfig,
    pub(crate) inodes: Mutex<InodeTable>,
    pub(crate) attrs: AttrCache,
    pub(crate) dirs: DirCache,
    urls: Arc<UrlCache>,
    budget: Arc<ReadBudget>,
    pub(crate) files: Mutex<HashMap<u64, OpenFileRef>>,
    /// Attributes of staged files, readable without waiting for the file's
    /// lock (an upload holds it; `ls -l` must not hang meanwhile).
    pub(crate) local: Mutex<HashMap<u64, Meta>>,
    handles: Mutex<HashMap<u64, Handle>>,
    dir_handles: Mutex<HashMap<u64, Option<Arc<Vec<DirItem>>>>>,
    next_fh: AtomicU64,
    /// Journal, write-back queue, cache bound (`writeback.rs`).
    pub(crate) dur: super::writeback::Durability,
    /// Uploads in flight (`wait_idle` at unmount), see `lifecycle.rs`.
    pub(crate) in_flight: super::lifecycle::InFlight,
}

/// Total read-ahead memory across handles.
const READ_BUDGET: u64 = 256 << 20;
/// Fill of an existing file before a partial write: chunk per request.
const FILL_CHUNK: u64 = 16 << 20;

fn name_str(name: &std::ffi::OsStr) -> FsResult<&str> {
    let s = name.to_str().ok_or(FsError::Invalid)?;
    if s.len() > MAX_NAME_BYTES {
        return Err(FsError::NameTooLong);
    }
    Ok(s)
}

impl SmhFs {
    pub fn new(client: SmhClient, cfg: FsConfig) -> Self {
        Self {
            inodes: Mutex::new(InodeTable::new(cfg.root.clone())),
            attrs: AttrCache::new(cfg.attr_timeout, 100_000),
            dirs: DirCache::new(cfg.dir_timeout, 256),
            urls: Arc::new(UrlCache::default()),
            budget: ReadBudget::new(READ_BUDGET),
            files: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dir_handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            dur: super::writeback::Durability::new(&cfg.cache_dir, Default::default()),
            in_flight: Default::default(),
            client,
            cfg,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    pub(crate) fn path_of(&self, ino: u64) -> FsResult<SmhPath> {
        self.inodes.lock().path(ino).ok_or(FsError::NotFound)
    }

    fn child(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<SmhPath> {
        let name = name_str(name)?;
        let dir = self.path_of(parent)?;
        dir.join(name).map_err(|e| match e {
            SmhError::NameTooLong(_) => FsError::NameTooLong,
            _ => FsError::Invalid,
        })
    }

    pub(crate) fn open_file(&self, ino: u64) -> Option<OpenFileRef> {
        self.files.lock().get(&ino).cloned()
    }

    fn open_file_or_insert(&self, ino: u64, remote: bool) -> OpenFileRef {
        self.files
            .lock()
            .entry(ino)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(OpenFile {
                    remote,
                    ..Default::default()
                }))
            })
            .clone()
    }

    /// Locks the open-file state of `ino`, creating it if needed. A release
    /// may drop the entry from the map while we wait for its lock; then the
    /// state we hold is orphaned and we take the current one instead.
    async fn lock_open_file(
        &self,
        ino: u64,
        remote: bool,
    ) -> tokio::sync::OwnedMutexGuard<OpenFile> {
        loop {
            let of = self.open_file_or_insert(ino, remote);
            let guard = of.clone().lock_owned().await;
            let current = self
                .files
                .lock()
                .get(&ino)
                .is_some_and(|c| Arc::ptr_eq(c, &of));
            if current {
                return guard;
            }
        }
    }

    // ---- attributes ----------------------------------------------------

    /// Attributes from the caches or the server, ignoring local staging.
    async fn resolve_remote(&self, path: &SmhPath) -> FsResult<Option<Meta>> {
        if let Some(known) = self.remote_cached(path) {
            return Ok(known);
        }
        match self.client.stat(path).await? {
            Some(info) => {
                let m = Meta::from_info(&info);
                self.attrs.put(path.clone(), m.clone());
                Ok(Some(m))
            }
            None => {
                self.attrs.put_missing(path.clone());
                Ok(None)
            }
        }
    }

    /// Attributes as the kernel should see them: a staged file's local size
    /// wins over the server's.
    async fn resolve(&self, path: &SmhPath) -> FsResult<Option<Meta>> {
        let ino = self.inodes.lock().ino_of(path);
        if let Some(m) = ino.and_then(|i| self.local.lock().get(&i).cloned()) {
            return Ok(Some(m));
        }
        self.resolve_remote(path).await
    }

    /// Attributes known without a network call (local staging, caches),
    /// so the FUSE thread can answer at once; `None`: ask `resolve`.
    fn resolve_cached(&self, path: &SmhPath) -> Option<Option<Meta>> {
        let ino = self.inodes.lock().ino_of(path);
        if let Some(m) = ino.and_then(|i| self.local.lock().get(&i).cloned()) {
            return Some(Some(m));
        }
        self.remote_cached(path)
    }

    /// The server's attributes as the caches know them (the root, the
    /// attribute cache, the parent's listing); `None`: ask the server.
    fn remote_cached(&self, path: &SmhPath) -> Option<Option<Meta>> {
        if *path == self.cfg.root {
            return Some(Some(Meta::new_dir()));
        }
        if let Some(hit) = self.attrs.get(path) {
            return Some(hit);
        }
        let (parent, name) = (path.parent()?, path.name()?);
        let listing = self.dirs.get(&parent)?;
        let found = listing
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone());
        match &found {
            Some(m) => self.attrs.put(path.clone(), m.clone()),
            None => self.attrs.put_missing(path.clone()),
        }
        Some(found)
    }

    /// `lookup` answered from the caches, if they know the answer.
    pub fn lookup_cached(&self, parent: u64, name: &std::ffi::OsStr) -> Option<FsResult<Attr>> {
        let path = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let meta = self.resolve_cached(&path)?;
        Some(meta.ok_or(FsError::NotFound).map(|meta| {
            let ino = self.inodes.lock().lookup(&path, true);
            Attr { ino, meta }
        }))
    }

    /// `getattr` answered from the caches, if they know the answer.
    pub fn getattr_cached(&self, ino: u64) -> Option<FsResult<Attr>> {
        let path = match self.path_of(ino) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let meta = self.resolve_cached(&path)?;
        Some(meta.ok_or(FsError::NotFound).map(|meta| Attr { ino, meta }))
    }

    pub async fn lookup(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Attr> {
        let path = self.child(parent, name)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        let ino = self.inodes.lock().lookup(&path, true);
        Ok(Attr { ino, meta })
    }

    pub async fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let path = self.path_of(ino)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        Ok(Attr { ino, meta })
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let pinned = self.files.lock().contains_key(&ino);
        self.inodes.lock().forget(ino, n, pinned);
    }

    // ---- directories ---------------------------------------------------

    /// The whole listing of `dir`, 1000 entries per request, filling the
    /// attribute cache from the same replies.
    async fn list(&self, dir: &SmhPath) -> FsResult<Listing> {
        if let Some(l) = self.dirs.get(dir) {
            return Ok(l);
        }
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.client.list_page(dir, marker.as_deref(), 1000).await?;
            for e in &page.contents {
                if crate::smh::path::validate_name(&e.name).is_err() {
                    tracing::warn!(dir = %dir, name = ?e.name, "skipping entry with an invalid name");
                    continue;
                }
                let m = Meta::from_entry(e);
                if let Ok(p) = dir.join(&e.name) {
                    self.attrs.put(p, m.clone());
                }
                out.push((e.name.clone(), m));
            }
            match page.next_marker {
                Some(m) if !m.is_empty() && !page.contents.is_empty() => marker = Some(m),
                _ => break,
            }
        }
        let listing = Arc::new(out);
        self.dirs.put(dir.clone(), listing.clone());
        Ok(listing)
    }

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        self.path_of(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dir_handles.lock().insert(fh, None);
        Ok(fh)
    }

    /// Entries of the directory from `offset` (0 = start), as a snapshot
    /// taken at the first call on this handle.
    pub async fn readdir(&self, ino: u64, fh: u64, offset: u64) -> FsResult<Arc<Vec<DirItem>>> {
        let snap = self.dir_handles.lock().get(&fh).cloned().flatten();
        if let (Some(s), true) = (snap, offset > 0) {
            return Ok(s);
        }
        let dir = self.path_of(ino)?;
        let listing = self.list(&dir).await?;
        let mut items = Vec::with_capacity(listing.len() + 2);
        let parent_ino = dir
            .parent()
            .filter(|_| dir != self.cfg.root)
            .and_then(|p| self.inodes.lock().ino_of(&p))
            .unwrap_or(ROOT_INO);
        items.push(DirItem {
            ino,
            name: ".".into(),
            kind: Kind::Dir,
            meta: Meta::new_dir(),
        });
        items.push(DirItem {
            ino: parent_ino,
            name: "..".into(),
            kind: Kind::Dir,
            meta: Meta::new_dir(),
        });
        let mut seen = std::collections::HashSet::new();
        {
            let mut inodes = self.inodes.lock();
            for (name, m) in listing.iter() {
                if let Ok(p) = dir.join(name) {
                    seen.insert(name.clone());
                    items.push(DirItem {
                        ino: inodes.lookup(&p, false),
                        name: name.clone(),
                        kind: m.kind,
                        meta: m.clone(),
                    });
                }
            }
        }
        {
            // A staged file's local size wins, as in `resolve`.
            let local = self.local.lock();
            if !local.is_empty() {
                for it in items.iter_mut().skip(2) {
                    if let Some(m) = local.get(&it.ino) {
                        it.meta = m.clone();
                    }
                }
            }
        }
        // Files created here and not uploaded yet are not on the server.
        let local: Vec<u64> = self.files.lock().keys().copied().collect();
        for fino in local {
            let Some(p) = self.inodes.lock().path(fino) else {
                continue;
            };
            if p.parent().as_ref() == Some(&dir) {
                if let Some(name) = p.name() {
                    if !seen.contains(name) {
                        let meta = self
                            .local
                            .lock()
                            .get(&fino)
                            .cloned()
                            .unwrap_or_else(|| Meta::new_file(0));
                        items.push(DirItem {
                            ino: fino,
                            name: name.to_string(),
                            kind: Kind::File,
                            meta,
                        });
                    }
                }
            }
        }
        let items = Arc::new(items);
        self.dir_handles.lock().insert(fh, Some(items.clone()));
        Ok(items)
    }

    /// The inode of `dir/name` handed to the kernel by readdirplus, counted
    /// as one lookup (undo with `forget` if the entry did not fit).
    pub fn readdirplus_ino(&self, dir: &SmhPath, name: &str) -> Option<u64> {
        let p = dir.join(name).ok()?;
        Some(self.inodes.lock().lookup(&p, true))
    }

    pub fn releasedir(&self, fh: u64) {
        self.dir_handles.lock().remove(&fh);
    }

    fn writable(&self) -> FsResult<()> {
        if self.cfg.read_only {
            Err(FsError::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Records our own new or changed entry in both caches.
    pub(crate) fn note_entry(&self, path: &SmhPath, meta: Meta) {
        self.urls.invalidate(path);
        if let (Some(parent), Some(name)) = (path.parent(), path.name()) {
            self.dirs.upsert(&parent, name, meta.clone());
        }
        self.attrs.put(path.clone(), meta);
    }

    /// Records that `path` is gone (with everything below it for a
    /// directory; files skip the cache walk).
    fn note_gone(&self, path: &SmhPath, kind: Kind) {
        if let (Some(parent), Some(name)) = (path.parent(), path.name()) {
            self.dirs.remove_entry(&parent, name);
        }
        if kind == Kind::Dir {
            self.attrs.remove_tree(path);
            self.dirs.remove_tree(path);
        }
        self.attrs.put_missing(path.clone());
        self.urls.invalidate(path);
    }

    pub async fn mkdir(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Attr> {
        self.writable()?;
        let path = self.child(parent, name)?;
        let made = self.client.create_dir(&path, ConflictStrategy::Ask).await?;
        let made = if made.is_root() { path } else { made };
        let meta = Meta::new_dir();
        self.note_entry(&made, meta.clone());
        self.dirs.put(made.clone(), Arc::new(Vec::new()));
        let ino = self.inodes.lock().lookup(&made, true);
        Ok(Attr { ino, meta })
    }

    async fn is_empty_dir(&self, path: &SmhPath) -> FsResult<bool> {
        let page = self.client.list_page(path, None, 1).await?;
        Ok(page.contents.is_empty())
    }

    pub async fn rmdir(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<()> {
        self.writable()?;
        let path = self.child(parent, name)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        if meta.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        // SMH deletes recursively; POSIX rmdir must not.
        if !self.is_empty_dir(&path).await? {
            return Err(FsError::NotEmpty);
        }
        self.client
            .delete_dir(&path, self.cfg.permanent_delete)
            .await?;
        self.inodes.lock().unlink(&path);
        self.note_gone(&path, Kind::Dir);
        Ok(())
    }

    pub async fn unlink(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<()> {
        self.writable()?;
        let path = self.child(parent, name)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        if meta.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let ino = self.inodes.lock().ino_of(&path);
        let mut remote = true;
        if let Some(of) = ino.and_then(|i| self.open_file(i)) {
            let mut g = of.lock().await;
            g.unlinked = true;
            g.dirty = false;
            remote = g.remote;
            self.journal_forget(&mut g);
            if g.handles == 0 {
                // A pending (write-back) file nobody has open.
                if let Some(st) = g.staged.take() {
                    st.remove();
                }
                self.forget_open_file(ino.unwrap_or_default(), &of);
                drop(g);
            }
        }
        if remote {
            match self
                .client
                .delete_file(&path, self.cfg.permanent_delete)
                .await
            {
                Err(e) if e.is_not_found() => {}
                r => r?,
            }
        }
        self.inodes.lock().unlink(&path);
        self.note_gone(&path, Kind::File);
        Ok(())
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &std::ffi::OsStr,
        newparent: u64,
        newname: &std::ffi::OsStr,
        noreplace: bool,
    ) -> FsResult<()> {
        self.writable()?;
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(&from) {
            return Err(FsError::Invalid);
        }
        let src = self.resolve(&from).await?.ok_or(FsError::NotFound)?;
        let dst = self.resolve(&to).await?;
        let noreplace = noreplace || self.cfg.conflict == ConflictStrategy::Ask;
        if let Some(d) = &dst {
            if noreplace {
                return Err(FsError::Exists);
            }
            match (src.kind, d.kind) {
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::Dir) => {
                    if !self.is_empty_dir(&to).await? {
                        return Err(FsError::NotEmpty);
                    }
                    self.client.delete_dir(&to, true).await?;
                    self.note_gone(&to, Kind::Dir);
                }
                (Kind::File, Kind::File) => {}
            }
        }
        let final_path = match src.kind {
            Kind::Dir => {
                self.client
                    .move_dir(&from, &to, ConflictStrategy::Ask)
                    .await?
            }
            Kind::File => {
                let ino = self.inodes.lock().ino_of(&from);
                let local_only = match ino.and_then(|i| self.open_file(i)) {
                    Some(of) => !of.lock().await.remote,
                    None => false,
                };
                if local_only {
                    // Not on the server yet: the upload at close goes to the new name.
                    to.clone()
                } else {
                    let strategy = match self.cfg.conflict {
                        ConflictStrategy::Rename => ConflictStrategy::Rename,
                        _ if noreplace => ConflictStrategy::Ask,
                        _ => ConflictStrategy::Overwrite,
                    };
                    self.client.move_file(&from, &to, strategy).await?
                }
            }
        };
        let final_path = if final_path.is_root() {
            to.clone()
        } else {
            final_path
        };
        if final_path != to {
            tracing::info!(from = %from, to = %to, actual = %final_path, "rename: the server chose another name");
        }
        self.inodes.lock().rename(&from, &final_path);
        if src.kind == Kind::File {
            let ino = self.inodes.lock().ino_of(&final_path);
            if let Some((ino, of)) = ino.and_then(|i| self.open_file(i).map(|o| (i, o))) {
                self.journal_renamed(ino, &mut *of.lock().await);
            }
        }
        self.note_gone(&from, src.kind);
        if src.kind == Kind::Dir {
            self.attrs.remove_tree(&to);
            self.dirs.remove_tree(&to);
        }
        self.note_entry(&final_path, src);
        Ok(())
    }

    pub async fn statfs(&self) -> FsResult<SpaceStats> {
        let u = self.client.usage().await?;
        // Without a quota, report a large synthetic size so tools see space.
        let total = u.capacity.unwrap_or(1 << 50).max(u.used);
        let free = u
            .available
            .unwrap_or_else(|| total.saturating_sub(u.used))
            .min(total);
        Ok(SpaceStats { total, free })
    }

    // ---- files ---------------------------------------------------------

    /// Records a staged file's size and mtime after a change.
    pub(crate) fn note_local(&self, ino: u64, st: &Staged) {
        let mut m = Meta::new_file(st.size());
        if let Some(t) = st.mtime() {
            m.mtime = t;
        }
        self.local.lock().insert(ino, m);
    }

    fn new_handle(&self, ino: u64) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(
            fh,
            Handle {
                ino,
                read_ahead: Arc::new(tokio::sync::Mutex::new(ReadAhead::new(self.budget.clone()))),
            },
        );
        fh
    }

    fn handle_ino(&self, fh: u64) -> FsResult<(u64, Arc<tokio::sync::Mutex<ReadAhead>>)> {
        self.handles
            .lock()
            .get(&fh)
            .map(|h| (h.ino, h.read_ahead.clone()))
            .ok_or(FsError::BadHandle)
    }

    /// Creates and opens a new file; it reaches the server at close, even
    /// if empty.
    pub async fn create(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<(Attr, u64)> {
        self.writable()?;
        let path = self.child(parent, name)?;
        if let Some(m) = self.resolve(&path).await? {
            if m.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            if self.cfg.conflict == ConflictStrategy::Ask {
                return Err(FsError::Exists);
            }
        }
        let staged = self.new_staged_small()?;
        let ino = self.inodes.lock().lookup(&path, true);
        {
            let mut of = self.lock_open_file(ino, false).await;
            if let Some(old) = of.staged.take() {
                self.journal_forget(&mut of);
                old.remove();
            }
            self.note_local(ino, &staged);
            of.staged = Some(staged);
            of.dirty = true;
            of.unlinked = false;
            of.write_error = None;
            if let Err(e) = self.journal_dirty(ino, &mut of) {
                if let Some(st) = of.staged.take() {
                    st.remove();
                }
                of.dirty = false;
                if of.handles == 0 {
                    drop(of);
                    self.local.lock().remove(&ino);
                    self.files.lock().remove(&ino);
                }
                return Err(e);
            }
            of.handles += 1;
        }
        let meta = Meta::new_file(0);
        self.note_entry(&path, meta.clone());
        let fh = self.new_handle(ino);
        Ok((Attr { ino, meta }, fh))
    }

    /// `create` done in the calling (FUSE) thread when nothing can wait:
    /// the caches know the name is free, nothing about the inode is open,
    /// and the content starts in memory. `None`: take the async path.
    pub fn create_now(&self, parent: u64, name: &std::ffi::OsStr) -> Option<FsResult<(Attr, u64)>> {
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
        let staged = self.new_staged_small().ok()?;
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
                Arc::new(tokio::sync::Mutex::new(OpenFile {
                    staged: Some(staged),
                    dirty: true,
                    handles: 1,
                    fresh: true,
                    ..Default::default()
                })),
            );
            drop(files);
            drop(inodes);
            let meta = Meta::new_file(0);
            self.local.lock().insert(ino, meta.clone());
            self.note_entry(&path, meta.clone());
            let fh = self.new_handle(ino);
            Some(Ok((Attr { ino, meta }, fh)))
        }
    }

    /// Opens a file. `write` with `truncate` starts from empty content;
    /// without, the first write fills the staged copy from the server.
    pub async fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        let path = self.path_of(ino)?;
        if write {
            self.writable()?;
        }
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        if meta.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let mut g = self.lock_open_file(ino, true).await;
        if write && g.remote && self.cfg.conflict == ConflictStrategy::Ask {
            if g.handles == 0 {
                drop(g);
                self.files.lock().remove(&ino);
            }
            return Err(FsError::Exists);
        }
        if write && truncate {
            match &g.staged {
                Some(_) => self.staged_truncate(ino, &mut g, 0)?,
                None => g.staged = Some(self.new_staged_small()?),
            }
            if let Some(st) = &g.staged {
                self.note_local(ino, st);
            }
            g.dirty = true;
            g.write_error = None;
            self.journal_dirty(ino, &mut g)?;
        }
        g.handles += 1;
        drop(g);
        Ok(self.new_handle(ino))
    }

    /// Makes sure the open file has a staged copy holding its full content.
    async fn ensure_staged(&self, path: &SmhPath, of: &mut OpenFile) -> FsResult<()> {
        if of.staged.is_some() {
            return Ok(());
        }
        let mut st = self.new_staged()?;
        if of.remote {
            let size = self
                .resolve_remote(path)
                .await?
                .ok_or(FsError::NotFound)?
                .size;
            if let Err(e) = self.dur.budget.reserve(size, 0).await {
                st.remove();
                return Err(e.into());
            }
            st.add_charged(size);
            let mut at = 0;
            while at < size {
                let n = FILL_CHUNK.min(size - at);
                let data = super::read::fetch(&self.client, &self.urls, path, at, n).await;
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
                        return Err(e.into());
                    }
                };
                st.write_at(at, &data)?;
                at += n;
            }
        }
        of.staged = Some(Staged::Disk(st));
        Ok(())
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        let (ino, ra) = self.handle_ino(fh)?;
        if let Some(of) = self.open_file(ino) {
            let of = of.lock().await;
            if let Some(st) = &of.staged {
                return Ok(Bytes::from(st.read_at(offset, size)?));
            }
        }
        let path = self.path_of(ino)?;
        let meta = self.resolve_remote(&path).await?.ok_or(FsError::NotFound)?;
        let mut ra = ra.lock().await;
        Ok(ra
            .read(
                &self.client,
                &self.urls,
                &path,
                offset,
                size as u64,
                meta.size,
            )
            .await?)
    }

    /// A write to an already staged file whose state is not locked, done
    /// in the calling (FUSE) thread: no copy of the data, no task switch.
    /// `None`: take the async path.
    pub fn write_now(&self, fh: u64, offset: u64, data: &[u8]) -> Option<FsResult<u32>> {
        if self.cfg.read_only {
            return None;
        }
        let (ino, _) = self.handle_ino(fh).ok()?;
        let of = self.open_file(ino)?;
        let mut of = of.try_lock().ok()?;
        let of = &mut *of;
        if of.write_error.is_some() {
            return None;
        }
        if let Some(Staged::Mem(m)) = &mut of.staged {
            // No room in memory: the async path spills.
            if !m.try_write(offset, data) {
                return None;
            }
            let st = of.staged.as_ref()?;
            self.note_local(ino, st);
            of.dirty = true;
            of.plan = None;
            of.fresh = true;
            return Some(Ok(data.len() as u32));
        }
        // The journal must be (re)written: the async path does that.
        if of.journal_id.is_none() || of.journal_plan || of.journal_complete {
            return None;
        }
        let Some(Staged::Disk(st)) = of.staged.as_mut() else {
            return None;
        };
        let grow = (offset + data.len() as u64).saturating_sub(st.size());
        if grow > 0 {
            // No room without waiting: the async path waits (or ENOSPC).
            if !self.dur.budget.try_reserve(grow, st.charged()) {
                return None;
            }
            st.add_charged(grow);
        }
        if let Err(e) = st.write_at(offset, data) {
            let e = FsError::from(e);
            // The content is now incomplete: it must never be uploaded.
            of.write_error = Some(e.errno());
            return Some(Err(e));
        }
        let st = of.staged.as_ref()?;
        self.note_local(ino, st);
        of.dirty = true;
        of.plan = None;
        of.fresh = true;
        Some(Ok(data.len() as u32))
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.writable()?;
        let (ino, _) = self.handle_ino(fh)?;
        let path = self.path_of(ino)?;
        let of = self.open_file(ino).ok_or(FsError::BadHandle)?;
        let mut of = of.lock().await;
        if let Some(e) = of.write_error {
            return Err(FsError::Io(std::io::Error::from_raw_os_error(e)));
        }
        let res = self.write_locked(ino, &path, &mut of, offset, data).await;
        if let Err(e) = &res {
            // The content is now incomplete: it must never be uploaded.
            of.write_error = Some(e.errno());
        }
        res
    }

    async fn write_locked(
        &self,
        ino: u64,
        path: &SmhPath,
        of: &mut OpenFile,
        offset: u64,
        data: &[u8],
    ) -> FsResult<u32> {
        self.ensure_staged(path, of).await?;
        self.staged_write(ino, of, offset, data).await?;
        of.dirty = true;
        self.journal_dirty(ino, of)?;
        Ok(data.len() as u32)
    }

    /// close(): uploads a dirty file and reports the upload's error.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let (ino, _) = self.handle_ino(fh)?;
        self.flush_ino(ino).await
    }

    /// `flush` answered in the calling (FUSE) thread when there is nothing
    /// to upload (read-only opens, already uploaded). `None`: async path.
    pub fn flush_now(&self, fh: u64) -> Option<FsResult<()>> {
        let ino = self.handles.lock().get(&fh)?.ino;
        let Some(of) = self.open_file(ino) else {
            return Some(Ok(()));
        };
        let of = of.try_lock().ok()?;
        if let Some(e) = of.write_error {
            return Some(Err(FsError::Io(std::io::Error::from_raw_os_error(e))));
        }
        if !of.dirty || of.unlinked {
            return Some(Ok(()));
        }
        None
    }

    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        let (ino, _) = self.handle_ino(fh)?;
        if let Some(of) = self.open_file(ino) {
            if let Some(st) = &of.lock().await.staged {
                st.sync()?;
            }
        }
        // fsync means "on the server", also in write-back mode.
        self.flush_ino_now(ino, true).await
    }

    async fn flush_ino(&self, ino: u64) -> FsResult<()> {
        self.flush_ino_now(ino, !self.write_back()).await
    }

    async fn flush_ino_now(&self, ino: u64, upload: bool) -> FsResult<()> {
        let Some(of) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of.lock().await;
        if let Some(e) = of.write_error {
            return Err(FsError::Io(std::io::Error::from_raw_os_error(e)));
        }
        if !of.dirty || of.unlinked {
            return Ok(());
        }
        if !upload {
            // Write-back: durable locally (staged data and journal entry
            // fsynced), uploaded in the background.
            if of.staged.as_ref().is_some_and(|s| s.is_mem()) {
                // Written, fsynced and journaled as complete.
                self.spill(ino, &mut of, true)?;
            } else if let Some(st) = &of.staged {
                st.sync()?;
            }
            self.journal_closed(ino, &mut of)?;
            self.enqueue_upload(ino, &of);
            return Ok(());
        }
        self.upload_locked(ino, &mut of).await
    }

    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let Some(h) = self.handles.lock().remove(&fh) else {
            return Err(FsError::BadHandle);
        };
        let ino = h.ino;
        let Some(of_ref) = self.open_file(ino) else {
            return Ok(());
        };
        let mut of = of_ref.lock().await;
        of.handles = of.handles.saturating_sub(1);
        if of.handles > 0 {
            return Ok(());
        }
        let mut result = Ok(());
        if let Some(e) = of.write_error {
            // Incomplete content: drop it (the writer was told).
            of.dirty = false;
            self.journal_forget(&mut of);
            result = Err(FsError::Io(std::io::Error::from_raw_os_error(e)));
        }
        if of.dirty && !of.unlinked && self.write_back() {
            // Uploaded by the queue; stays visible until then.
            if let Err(e) = self.journal_closed(ino, &mut of) {
                tracing::error!(ino, "cannot write the upload journal: {e}");
            }
            self.enqueue_upload(ino, &of);
            return Ok(());
        }
        if of.dirty && !of.unlinked && !of.upload_failed {
            // No flush reached us: one try, then keep the data.
            result = self.upload_locked(ino, &mut of).await;
        }
        if of.dirty && !of.unlinked && of.upload_failed && of.upload_transient {
            // Retried in the background; stays visible until then.
            self.enqueue_upload(ino, &of);
            return result;
        }
        if of.dirty && !of.unlinked {
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
        } else if let Some(st) = of.staged.take() {
            st.remove();
        }
        self.forget_open_file(ino, &of_ref);
        drop(of);
        result
    }

    /// `release` done in the calling (FUSE) thread when it needs no upload
    /// and the file's state is not locked. `None`: take the async path.
    pub fn release_now(&self, fh: u64) -> Option<FsResult<()>> {
        let ino = self.handles.lock().get(&fh)?.ino;
        let Some(of_ref) = self.open_file(ino) else {
            self.handles.lock().remove(&fh);
            return Some(Ok(()));
        };
        let mut of = of_ref.try_lock().ok()?;
        let last = of.handles <= 1;
        if last && (of.write_error.is_some() || (of.dirty && !of.unlinked)) {
            return None;
        }
        self.handles.lock().remove(&fh)?;
        of.handles = of.handles.saturating_sub(1);
        if !last {
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
        ino: u64,
        size: Option<u64>,
        mtime: Option<SystemTime>,
    ) -> FsResult<Attr> {
        let path = self.path_of(ino)?;
        if let Some(size) = size {
            self.writable()?;
            let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
            if meta.kind == Kind::Dir {
                return Err(FsError::IsDir);
            }
            let mut of = self.lock_open_file(ino, true).await;
            if of.remote && self.cfg.conflict == ConflictStrategy::Ask {
                if of.handles == 0 {
                    drop(of);
                    self.files.lock().remove(&ino);
                }
                return Err(FsError::Exists);
            }
            let res = async {
                if size == 0 && of.staged.is_none() {
                    of.staged = Some(self.new_staged_small()?);
                } else {
                    self.ensure_staged(&path, &mut of).await?;
                }
                self.staged_truncate(ino, &mut of, size)?;
                of.dirty = true;
                if size == 0 {
                    of.write_error = None;
                }
                self.journal_dirty(ino, &mut of)?;
                if of.handles == 0 {
                    // truncate(2) on a path: the content is complete.
                    self.journal_closed(ino, &mut of)?;
                }
                if of.handles == 0 && !self.write_back() {
                    // truncate(2) on a path: nothing will close it, upload now.
                    self.upload_locked(ino, &mut of).await?;
                }
                Ok::<_, FsError>(())
            }
            .await;
            let retry = of.dirty && of.upload_failed && of.upload_transient;
            if of.handles == 0 && of.dirty && (self.write_back() || retry) {
                // Uploaded by the background queue; stays visible meanwhile.
                self.enqueue_upload(ino, &of);
            } else if of.handles == 0 {
                if !of.dirty {
                    if let Some(st) = of.staged.take() {
                        st.remove();
                    }
                }
                drop(of);
                self.local.lock().remove(&ino);
                self.files.lock().remove(&ino);
            }
            res?;
        }
        if let Some(t) = mtime {
            let mut stored = false;
            if let Some(of) = self.open_file(ino) {
                if let Some(st) = of.lock().await.staged.as_mut() {
                    st.set_mtime(Some(t));
                    self.note_local(ino, st);
                    stored = true;
                }
            }
            if !stored {
                // Already uploaded: accepted, shown until the cache expires.
                if let Some(Some(mut m)) = self.attrs.get(&path) {
                    m.mtime = t;
                    self.attrs.put(path.clone(), m);
                }
            }
        }
        self.getattr(ino).await
    }

    /// mknod of a regular file: an empty file on the server right away.
    pub async fn mknod_file(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<Attr> {
        let (attr, fh) = self.create(parent, name).await?;
        let r = self.flush(fh).await;
        let _ = self.release(fh).await;
        r?;
        self.getattr(attr.ino).await
    }
}
