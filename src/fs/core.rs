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
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::cache::{AttrCache, DirCache, Kind, Meta};
use super::error::{FsError, FsResult};
pub use super::inode::{FileHandle, InodeNo};
use super::inode::{InodeTable, ROOT_INO};
use super::openfile::{OpenFile, Origin};
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
    /// Listing entries the listing cache keeps at most, over all
    /// directories (`-o dir_cache_entries`).
    pub dir_cache_entries: usize,
    /// Polling of the change feed (`follow.rs`); zero: off.
    pub poll_interval: Duration,
    pub part_size: u64,
    pub upload_concurrency: usize,
    pub permanent_delete: bool,
    /// A file replaced on the server while open here (`lostupdate.rs`).
    pub update_conflict: super::lostupdate::UpdateConflict,
    /// Mode and owner of entries without stored metadata (`attrs.rs`).
    pub look: super::metastate::Presentation,
}

/// Something the kernel cached that is no longer true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// `name` in directory `parent` may name another inode now (or none).
    Entry {
        parent: u64,
        name: std::ffi::OsString,
    },
    /// The attributes and cached pages of an inode are stale.
    Inode(u64),
}

/// An inode number with its attributes.
#[derive(Debug, Clone)]
pub struct Attr {
    pub ino: InodeNo,
    pub meta: Meta,
}

pub use super::dirstream::{DirItem, DirWindow};

/// Space figures for statfs, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct SpaceStats {
    pub total: u64,
    pub free: u64,
}

pub(super) type OpenFileRef = Arc<tokio::sync::Mutex<OpenFile>>;

pub(super) struct Handle {
    pub(super) ino: u64,
    /// Opened for writing: only writers' closes upload (`openfile.rs`).
    pub(super) writer: bool,
    /// The process that opened it (from FUSE); `None`: every flush is
    /// the opener's last close (direct callers of the core).
    pub(super) opener: Option<u32>,
    pub(super) read_ahead: Arc<tokio::sync::Mutex<ReadAhead>>,
}

pub struct SmhFs {
    pub(crate) client: SmhClient,
    pub(crate) cfg: FsConfig,
    pub(crate) inodes: Mutex<InodeTable>,
    pub(crate) attrs: AttrCache,
    pub(crate) dirs: DirCache,
    pub(super) urls: Arc<UrlCache>,
    pub(super) budget: Arc<ReadBudget>,
    pub(crate) files: Mutex<HashMap<u64, OpenFileRef>>,
    /// Attributes of staged files, readable without waiting for the file's
    /// lock (an upload holds it; `ls -l` must not hang meanwhile).
    pub(crate) local: Mutex<HashMap<u64, Meta>>,
    pub(super) handles: Mutex<HashMap<u64, Handle>>,
    /// Open directory handles, each with the pages of its listing it holds.
    pub(super) dir_handles:
        Mutex<HashMap<u64, Arc<tokio::sync::Mutex<super::dirstream::DirStream>>>>,
    pub(super) next_fh: AtomicU64,
    /// Journal, write-back queue, cache bound (`writeback.rs`).
    pub(crate) dur: super::queue::Durability,
    /// Uploads in flight (`wait_idle` at unmount), see `inflight.rs`.
    pub(crate) in_flight: Arc<super::inflight::InFlight>,
    /// What the kernel must forget, sent to the adapter's notifier.
    invalidate: std::sync::OnceLock<std::sync::mpsc::Sender<Invalidation>>,
    /// Server inodes → paths, learned from listings and `?info`, so the
    /// change feed's entries can be placed (`follow.rs`; files bounded).
    pub(crate) remote_inodes: Mutex<super::remoteino::RemoteInodes>,
    /// Feed entries waiting for this mount's change in flight (`own.rs`).
    pub(crate) own: super::own::OwnChanges,
    /// Cache lifetimes: longer while the feed is followed (`freshness.rs`).
    pub(crate) freshness: Arc<super::freshness::Freshness>,
    /// Symlink strings read or written here (`links.rs`).
    pub(crate) links: super::linkstr::LinkCache,
    /// The kernel's id of this mount (`/proc/self/mountinfo`), to find a
    /// process's descriptors of our files at a flush.
    mount: std::sync::OnceLock<super::caller::MountRef>,
    /// Hashes of versions uploaded here, metadata changes (`attrs.rs`).
    pub(crate) known: super::metastate::MetaState,
}

/// Total read-ahead memory across handles.
const READ_BUDGET: u64 = 256 << 20;
/// Fill of an existing file before a partial write: chunk per request.
pub(super) const FILL_CHUNK: u64 = 16 << 20;

/// A name the server can store: UTF-8, at most 255 bytes, and no control
/// characters (the SMH API refuses them, e.g. a newline, with
/// `IllegalFileName`; refused here so it fails at create, not at close).
fn name_str(name: &std::ffi::OsStr) -> FsResult<&str> {
    let s = name.to_str().ok_or(FsError::Invalid)?;
    if s.len() > MAX_NAME_BYTES {
        return Err(FsError::NameTooLong);
    }
    if s.chars().any(char::is_control) {
        return Err(FsError::Invalid);
    }
    Ok(s)
}

impl SmhFs {
    pub fn new(client: SmhClient, cfg: FsConfig) -> Self {
        let fresh = Arc::new(super::freshness::Freshness::new(cfg.poll_interval));
        Self {
            inodes: Mutex::new(InodeTable::new(cfg.root.clone())),
            attrs: AttrCache::new(cfg.attr_timeout, 100_000, fresh.clone()),
            dirs: DirCache::new(cfg.dir_timeout, cfg.dir_cache_entries, fresh.clone()),
            freshness: fresh,
            urls: Arc::new(UrlCache::default()),
            budget: ReadBudget::new(READ_BUDGET),
            files: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dir_handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            dur: super::queue::Durability::new(&cfg.cache_dir, Default::default()),
            in_flight: Default::default(),
            invalidate: Default::default(),
            remote_inodes: Default::default(),
            own: Default::default(),
            links: Default::default(),
            mount: Default::default(),
            known: Default::default(),
            client,
            cfg,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    /// Where to send what the kernel must forget (see `session.rs`).
    pub fn set_invalidator(&self, tx: std::sync::mpsc::Sender<Invalidation>) {
        let _ = self.invalidate.set(tx);
    }

    /// Records the kernel's id of the mount serving this filesystem.
    pub(crate) fn set_mount(&self, m: super::caller::MountRef) {
        let _ = self.mount.set(m);
    }

    pub(crate) fn mount_ref(&self) -> Option<&super::caller::MountRef> {
        self.mount.get()
    }

    /// Tells the kernel that `path` no longer names the inode it cached.
    pub(crate) fn invalidate_entry(&self, path: &SmhPath) {
        let (Some(tx), Some(parent), Some(name)) =
            (self.invalidate.get(), path.parent(), path.name())
        else {
            return;
        };
        let pino = if parent == self.cfg.root {
            Some(ROOT_INO)
        } else {
            self.inodes.lock().ino_of(&parent)
        };
        if let Some(pino) = pino {
            let _ = tx.send(Invalidation::Entry {
                parent: pino,
                name: name.into(),
            });
        }
    }

    /// Tells the kernel that the attributes and pages of the inode at
    /// `path` (if it handed one out) are stale.
    pub(crate) fn invalidate_inode(&self, path: &SmhPath) {
        let Some(tx) = self.invalidate.get() else {
            return;
        };
        let ino = if *path == self.cfg.root {
            Some(ROOT_INO)
        } else {
            self.inodes.lock().ino_of(path)
        };
        if let Some(ino) = ino {
            let _ = tx.send(Invalidation::Inode(ino));
        }
    }

    /// Whether `name` could be created in `parent` (EINVAL for names the
    /// server cannot store).
    pub fn check_name(&self, parent: InodeNo, name: &std::ffi::OsStr) -> FsResult<()> {
        let parent = parent.0;
        self.child(parent, name).map(|_| ())
    }

    pub(crate) fn path_of(&self, ino: u64) -> FsResult<SmhPath> {
        self.inodes.lock().path(ino).ok_or(FsError::NotFound)
    }

    pub(super) fn child(&self, parent: u64, name: &std::ffi::OsStr) -> FsResult<SmhPath> {
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
                Arc::new(tokio::sync::Mutex::new(OpenFile::new(if remote {
                    Origin::Server
                } else {
                    Origin::Local
                })))
            })
            .clone()
    }

    /// Locks the open-file state of `ino`, creating it if needed. A release
    /// may drop the entry from the map while we wait for its lock; then the
    /// state we hold is orphaned and we take the current one instead.
    pub(super) async fn lock_open_file(
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
    pub(super) async fn resolve_remote(&self, path: &SmhPath) -> FsResult<Option<Meta>> {
        if let Some(known) = self.remote_cached(path) {
            return Ok(known);
        }
        match self.client.stat(path).await? {
            Some(info) => {
                let mut m = Meta::from_info(&info);
                if let Some(i) = &info.inode {
                    let dir = m.kind.is_dir();
                    self.remote_inodes
                        .lock()
                        .insert(i.clone(), path.clone(), dir);
                }
                self.link_size(path, &mut m);
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
    pub(super) async fn resolve(&self, path: &SmhPath) -> FsResult<Option<Meta>> {
        let ino = self.inodes.lock().ino_of(path);
        if let Some(m) = ino.and_then(|i| self.local.lock().get(&i).cloned()) {
            return Ok(Some(m));
        }
        self.resolve_remote(path).await
    }

    /// Attributes of the inode `ino` at `path`: its staged content's if
    /// any (also once unlinked, when `path` names nothing), else the
    /// server's.
    pub(super) async fn resolve_ino(&self, ino: u64, path: &SmhPath) -> FsResult<Option<Meta>> {
        if let Some(m) = self.local.lock().get(&ino).cloned() {
            return Ok(Some(m));
        }
        self.resolve_remote(path).await
    }

    /// Attributes known without a network call (local staging, caches),
    /// so the FUSE thread can answer at once; `None`: ask `resolve`.
    pub(super) fn resolve_cached(&self, path: &SmhPath) -> Option<Option<Meta>> {
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
        let found = listing.get(name).map(super::packmeta::PackedMeta::meta);
        match &found {
            Some(m) => self.attrs.put(path.clone(), m.clone()),
            None => self.attrs.put_missing(path.clone()),
        }
        Some(found)
    }

    /// `lookup` answered from the caches, if they know the answer.
    pub fn lookup_cached(&self, parent: InodeNo, name: &std::ffi::OsStr) -> Option<FsResult<Attr>> {
        let parent = parent.0;
        let path = match self.child(parent, name) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        let meta = self.resolve_cached(&path)?;
        Some(meta.ok_or(FsError::NotFound).map(|meta| {
            let ino = self.inodes.lock().lookup(&path, true);
            Attr {
                ino: InodeNo(ino),
                meta,
            }
        }))
    }

    /// `getattr` answered from the caches, if they know the answer.
    pub fn getattr_cached(&self, ino: InodeNo) -> Option<FsResult<Attr>> {
        let ino = ino.0;
        let path = match self.path_of(ino) {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        };
        if let Some(m) = self.local.lock().get(&ino).cloned() {
            return Some(Ok(Attr {
                ino: InodeNo(ino),
                meta: m,
            }));
        }
        let meta = self.resolve_cached(&path)?;
        Some(meta.ok_or(FsError::NotFound).map(|meta| Attr {
            ino: InodeNo(ino),
            meta,
        }))
    }

    pub async fn lookup(&self, parent: InodeNo, name: &std::ffi::OsStr) -> FsResult<Attr> {
        let parent = parent.0;
        let path = self.child(parent, name)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        let ino = self.inodes.lock().lookup(&path, true);
        Ok(Attr {
            ino: InodeNo(ino),
            meta,
        })
    }

    pub async fn getattr(&self, ino: InodeNo) -> FsResult<Attr> {
        let ino = ino.0;
        let path = self.path_of(ino)?;
        let meta = self
            .resolve_ino(ino, &path)
            .await?
            .ok_or(FsError::NotFound)?;
        Ok(Attr {
            ino: InodeNo(ino),
            meta,
        })
    }

    pub fn forget(&self, ino: InodeNo, n: u64) {
        self.unpin(ino.0, n);
    }

    /// Drops `n` kernel lookups of `ino` (0: its open state just left the
    /// table); the inode goes when nothing holds it any more. The open-file
    /// table is read under the inode table's lock (the order `create_now`
    /// takes them in), so a file opened meanwhile keeps its inode.
    pub(crate) fn unpin(&self, ino: u64, n: u64) {
        let mut inodes = self.inodes.lock();
        let pinned = self.files.lock().contains_key(&ino);
        inodes.forget(ino, n, pinned);
    }

    // ---- directories: `dirs.rs` (listings, readdir) --------------------

    pub(super) fn writable(&self) -> FsResult<()> {
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
    pub(super) fn note_gone(&self, path: &SmhPath, kind: Kind) {
        if let (Some(parent), Some(name)) = (path.parent(), path.name()) {
            self.dirs.remove_entry(&parent, name);
        }
        if kind == Kind::Dir {
            // A chmod kept for the session (`attrs.rs`) goes with it.
            let ino = self.inodes.lock().ino_of(path);
            ino.map(|i| self.local.lock().remove(&i));
            self.attrs.remove_tree(path);
            self.dirs.remove_tree(path);
        }
        self.attrs.put_missing(path.clone());
        self.urls.invalidate(path);
        self.links.gone(path);
        self.parent_changed(path);
    }

    async fn is_empty_dir(&self, path: &SmhPath) -> FsResult<bool> {
        let page = self.client.list_page(path, None, 1).await?;
        Ok(page.contents.is_empty())
    }

    pub async fn rmdir(&self, parent: InodeNo, name: &std::ffi::OsStr) -> FsResult<()> {
        let parent = parent.0;
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

    pub async fn unlink(&self, parent: InodeNo, name: &std::ffi::OsStr) -> FsResult<()> {
        let parent = parent.0;
        self.writable()?;
        let path = self.child(parent, name)?;
        let meta = self.resolve(&path).await?.ok_or(FsError::NotFound)?;
        if meta.kind == Kind::Dir {
            return Err(FsError::IsDir);
        }
        let ino = self.inodes.lock().ino_of(&path);
        self.settle_now(ino).await;
        // Held throughout: no upload may put the file back meanwhile.
        let mut held = self.lock_if_open(ino).await;
        let remote = match &mut held {
            Some(h) => self.before_unlink(h, &path).await,
            None => true,
        };
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
        if let Some(h) = held {
            self.unlinked(h);
        }
        self.note_gone(&path, Kind::File);
        Ok(())
    }

    pub async fn rename(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        newparent: InodeNo,
        newname: &std::ffi::OsStr,
        noreplace: bool,
    ) -> FsResult<()> {
        let newparent = newparent.0;
        let parent = parent.0;
        self.writable()?;
        let from = self.child(parent, name)?;
        let to = self.child(newparent, newname)?;
        // The source must exist even for rename(x, x) (POSIX: ENOENT).
        let src = self.resolve(&from).await?.ok_or(FsError::NotFound)?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(&from) {
            return Err(FsError::Invalid);
        }
        let dst = self.resolve(&to).await?;
        let noreplace = noreplace || self.cfg.conflict == ConflictStrategy::Ask;
        // A file the rename replaces: unlinked like by unlink(2).
        let mut replaced = None;
        if let Some(d) = &dst {
            if noreplace {
                return Err(FsError::Exists);
            }
            // Links and special files are SMH files to a rename.
            match (src.kind.is_dir(), d.kind.is_dir()) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) => {
                    if !self.is_empty_dir(&to).await? {
                        return Err(FsError::NotEmpty);
                    }
                    self.client.delete_dir(&to, true).await?;
                    self.note_gone(&to, Kind::Dir);
                }
                (false, false) => replaced = self.inodes.lock().ino_of(&to),
            }
        }
        // Both files' open states are held until the inode table agrees
        // with the server: a background upload meanwhile would go to the
        // old name.
        let moved = match src.kind {
            Kind::Dir => None,
            _ => self.inodes.lock().ino_of(&from),
        };
        // Changes still settling (`attrs.rs`) go first; for a directory, all.
        let dir = src.kind == Kind::Dir;
        for i in [moved, replaced].into_iter().filter(|i| i.is_some() || dir) {
            self.settle_now(i).await;
        }
        let keep = self.link_string_to_keep(&from, &to, &src).await;
        let (mut moved, mut replaced) = self.lock_pair(moved, replaced).await;
        let target_remote = match &mut replaced {
            Some(h) => self.before_unlink(h, &to).await,
            None => dst.is_some(),
        };
        let final_path = match src.kind {
            Kind::Dir => {
                self.client
                    .move_dir(&from, &to, ConflictStrategy::Ask)
                    .await?
            }
            _ => {
                let strategy = match self.cfg.conflict {
                    ConflictStrategy::Rename => ConflictStrategy::Rename,
                    _ if noreplace => ConflictStrategy::Ask,
                    _ => ConflictStrategy::Overwrite,
                };
                let of = moved.as_ref().map(|h| &*h.guard);
                self.rename_file(&from, &to, of, strategy, target_remote)
                    .await?
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
        if let Some(h) = &mut moved {
            self.journal_renamed(h.ino, &mut h.guard);
        }
        drop(moved);
        if let Some(h) = replaced.filter(|_| final_path == to) {
            self.unlinked(h);
        }
        self.note_gone(&from, src.kind);
        if src.kind == Kind::Dir {
            self.attrs.remove_tree(&to);
            self.dirs.remove_tree(&to);
        }
        self.note_entry(&final_path, src);
        self.parent_changed(&final_path);
        self.keep_link_string(&final_path, keep).await
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
}
