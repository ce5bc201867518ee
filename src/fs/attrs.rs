//! Modes, owners and times that outlive the mount (issue 14).
//!
//! * A file's mode/uid/gid travel with its content as custom metadata
//!   (`fs::posix`), its mtime as `localModificationTime` plus `mtime`
//!   (nanoseconds, see [`precise_mtime`]). An open file with staged content
//!   carries a chmod/chown/utimens into its upload.
//! * SMH has no metadata-only update: on a closed file the change is a
//!   begin of the same content with the new metadata, answered by instant
//!   upload (§4.12) when the mount knows the content's hashes (of what it
//!   uploaded itself, [`KnownHashes`]). Otherwise the content is read once:
//!   hashed for instant upload, or (< 1 MiB, no instant upload there) sent
//!   again. A change that shows nothing new costs nothing (rsync's chmod to
//!   the mode a file already has).
//! * Directories: SMH cannot update an existing directory's metadata, so a
//!   chmod/chown/utimens of one is kept in this mount's memory for the
//!   session; `mkdir` stores the requested mode with the directory.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use super::cache::{Kind, Meta};
use super::core::{Attr, InodeNo, SmhFs};
use super::error::{FsError, FsResult};
use super::posix::PosixMeta;
use super::read::{Source, Version};
use super::uploader::{Body, Outgoing};
use crate::smh::hash::INSTANT_UPLOAD_MIN_SIZE;
use crate::smh::types::{FileMeta, MetaData};
use crate::smh::{ConflictStrategy, ContentHasher, ContentHashes, SmhPath};

/// How attributes without stored metadata are presented (`-o uid,gid,umask`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presentation {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
}

impl Presentation {
    /// Permission bits (with set-id and sticky bits) as shown.
    pub fn perm(&self, kind: Kind, p: &PosixMeta) -> u32 {
        p.mode.map(|m| m & 0o7777).unwrap_or(match kind {
            Kind::Dir => 0o755 & !self.umask,
            _ => 0o644 & !self.umask,
        })
    }

    pub fn uid(&self, p: &PosixMeta) -> u32 {
        p.uid.unwrap_or(self.uid)
    }

    pub fn gid(&self, p: &PosixMeta) -> u32 {
        p.gid.unwrap_or(self.gid)
    }

    /// Whether `a` and `b` look the same to `stat`.
    fn same(&self, kind: Kind, a: &PosixMeta, b: &PosixMeta) -> bool {
        self.perm(kind, a) == self.perm(kind, b)
            && self.uid(a) == self.uid(b)
            && self.gid(a) == self.gid(b)
    }

    /// The metadata of a new file or directory: the requested mode, and
    /// the creator as owner where it differs from the mount's default.
    pub fn for_new(&self, kind: Kind, mode: u32, uid: u32, gid: u32) -> PosixMeta {
        let ty = match kind {
            Kind::Dir => libc::S_IFDIR,
            _ => libc::S_IFREG,
        };
        PosixMeta {
            mode: Some(ty | (mode & 0o7777)),
            uid: (uid != self.uid).then_some(uid),
            gid: (gid != self.gid).then_some(gid),
            rdev: None,
        }
    }
}

/// What a setattr asks besides a size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttrChange {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
}

impl AttrChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `p` with this change applied (the file type bits are kept).
    pub fn apply(&self, kind: Kind, p: PosixMeta) -> PosixMeta {
        let ty = p.file_type().unwrap_or(match kind {
            Kind::Dir => libc::S_IFDIR,
            _ => libc::S_IFREG,
        });
        PosixMeta {
            mode: self.mode.map(|m| ty | (m & 0o7777)).or(p.mode),
            uid: self.uid.or(p.uid),
            gid: self.gid.or(p.gid),
            rdev: p.rdev,
        }
    }
}

/// Metadata name of the exact mtime in nanoseconds since the epoch
/// (`localModificationTime` has milliseconds; `rsync` compares nanoseconds).
const MTIME_NS: &str = "mtime";

/// The metadata that records `t` exactly.
pub(crate) fn mtime_meta(t: SystemTime, m: &mut MetaData) {
    if let Ok(d) = t.duration_since(SystemTime::UNIX_EPOCH) {
        m.insert(MTIME_NS.into(), d.as_nanos().to_string());
    }
}

/// The stored exact mtime if it agrees with `coarse` (the server's
/// `localModificationTime`, which another client may have changed since:
/// then `coarse` wins).
pub(crate) fn precise_mtime(m: Option<&MetaData>, coarse: SystemTime) -> SystemTime {
    let exact = m
        .and_then(|m| m.get(MTIME_NS))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns));
    match exact {
        Some(t) if within_ms(t, coarse) => t,
        _ => coarse,
    }
}

fn within_ms(a: SystemTime, b: SystemTime) -> bool {
    let d = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default();
    d < Duration::from_millis(1)
}

/// How long a metadata change of a closed file waits for more changes
/// (`rsync` sets times, then the mode, then renames: one update).
const SETTLE: Duration = Duration::from_millis(100);

/// Memory for [`MetaState::small`].
const SMALL_BYTES: usize = 16 << 20;

/// The mount's metadata bookkeeping.
pub(crate) struct MetaState {
    /// Content hashes of versions this mount uploaded, by eTag (bounded),
    /// so a metadata change can be sent as an instant upload.
    known: Mutex<LruCache<String, ContentHashes>>,
    /// Small contents (< 1 MiB, no instant upload there) uploaded here
    /// from memory, by eTag, at most [`SMALL_BYTES`] in all: a metadata
    /// change sends them again without downloading them first.
    small: Mutex<(LruCache<String, bytes::Bytes>, usize)>,
    /// Changes of closed files waiting [`SETTLE`], by inode (the path is
    /// looked up when sent, so a rename meanwhile is followed).
    /// With the server's attributes before the first of them.
    pending: Mutex<std::collections::HashMap<u64, (Meta, AttrChange)>>,
    /// The filesystem itself, for the task that sends them (set when the
    /// background tasks start; without it changes are sent at once).
    this: std::sync::OnceLock<std::sync::Weak<SmhFs>>,
}

impl Default for MetaState {
    fn default() -> Self {
        Self {
            known: Mutex::new(LruCache::new(NonZeroUsize::new(4096).unwrap())),
            small: Mutex::new((LruCache::unbounded(), 0)),
            pending: Default::default(),
            this: Default::default(),
        }
    }
}

impl MetaState {
    pub(crate) fn remember(&self, meta: &FileMeta, hashes: &ContentHashes) {
        if let Some(e) = &meta.e_tag {
            self.known.lock().put(e.clone(), hashes.clone());
        }
    }

    /// Keeps the small content `data` of the version `meta`.
    pub(crate) fn remember_small(&self, meta: &FileMeta, data: &bytes::Bytes) {
        let Some(e) = &meta.e_tag else { return };
        if data.len() as u64 >= INSTANT_UPLOAD_MIN_SIZE {
            return;
        }
        let mut g = self.small.lock();
        let (lru, total) = &mut *g;
        if let Some(old) = lru.put(e.clone(), data.clone()) {
            *total -= old.len();
        }
        *total += data.len();
        while *total > SMALL_BYTES {
            match lru.pop_lru() {
                Some((_, d)) => *total -= d.len(),
                None => break,
            }
        }
    }

    fn small(&self, etag: &str) -> Option<bytes::Bytes> {
        self.small.lock().0.get(etag).cloned()
    }

    fn get(&self, etag: &str) -> Option<ContentHashes> {
        self.known.lock().get(etag).cloned()
    }

    pub(crate) fn set_fs(&self, fs: &Arc<SmhFs>) {
        let _ = self.this.set(Arc::downgrade(fs));
    }
}

impl AttrChange {
    /// `later` on top of this change.
    fn then(self, later: AttrChange) -> AttrChange {
        AttrChange {
            mode: later.mode.or(self.mode),
            uid: later.uid.or(self.uid),
            gid: later.gid.or(self.gid),
            mtime: later.mtime.or(self.mtime),
        }
    }
}

impl SmhFs {
    /// `posix`: the requested mode (and owner), stored with the directory.
    pub async fn mkdir(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        posix: PosixMeta,
    ) -> FsResult<Attr> {
        let parent = parent.0;
        self.writable()?;
        let path = self.child(parent, name)?;
        let (ask, meta_data) = (ConflictStrategy::Ask, posix.to_meta_data());
        let made = self.client.create_dir_with_meta(&path, ask, &meta_data);
        let made = made.await?;
        let made = if made.is_root() { path } else { made };
        let mut meta = Meta::new_dir();
        meta.posix = posix;
        self.note_entry(&made, meta.clone());
        self.dirs.put(made.clone(), Arc::new(Vec::new()));
        let ino = self.inodes.lock().lookup(&made, true);
        Ok(Attr {
            ino: InodeNo(ino),
            meta,
        })
    }

    /// chmod / chown / utimens of `ino` (at `path`), after any truncate.
    pub(super) async fn set_attrs(&self, ino: u64, path: &SmhPath, ch: AttrChange) -> FsResult<()> {
        if let Some(fs) = self.apply_attrs(ino, path, ch, None).await? {
            let op = self.op_guard();
            tokio::spawn(async move {
                tokio::time::sleep(SETTLE).await;
                fs.send_pending_attrs(ino).await;
                drop(op);
            });
        }
        Ok(())
    }

    /// A closed file's change may wait [`SETTLE`] for more (`Some`: the
    /// first such change, to be sent by a task of `fs`), unless it is that
    /// settled change, sent with `before` (the server's attributes then).
    async fn apply_attrs(
        &self,
        ino: u64,
        path: &SmhPath,
        ch: AttrChange,
        before: Option<Meta>,
    ) -> FsResult<Option<Arc<SmhFs>>> {
        if ch.is_empty() {
            return Ok(None);
        }
        if let Some(of) = self.open_file(ino) {
            let mut of = of.lock().await;
            if let Some(st) = of.staged.as_mut() {
                // Staged content: its upload carries the change.
                if ch.mtime.is_some() {
                    st.set_mtime(ch.mtime);
                }
                st.set_posix(ch.apply(Kind::File, st.posix()));
                self.note_local(ino, st);
                if of.meta_changed() && of.handles() == 0 {
                    // Nothing will close it: send now (or queue it).
                    if self.write_back() {
                        self.enqueue_upload(ino, &of);
                    } else {
                        self.upload_locked(ino, &mut of).await?;
                    }
                }
                return Ok(None);
            }
        }
        let mut meta = self.resolve_remote(path).await?.ok_or(FsError::NotFound)?;
        let settle = before.is_none();
        if let Some(b) = before.filter(|b| b.etag.is_some() && b.etag == meta.etag) {
            // Same content: the caches show the change already.
            meta = b;
        }
        if meta.kind == Kind::Dir {
            self.set_dir_attrs(ino, meta, ch);
            return Ok(None);
        }
        let posix = ch.apply(meta.kind, meta.posix);
        let mtime = ch.mtime.unwrap_or(meta.mtime);
        if self.cfg.look.same(meta.kind, &posix, &meta.posix) && mtime == meta.mtime {
            return Ok(None);
        }
        self.writable()?;
        let this = self.known.this.get().and_then(|w| w.upgrade());
        match this {
            Some(fs) if settle => {
                // Shown at once, sent once the burst is over. A crash in
                // between loses only the change (the content is stored).
                let mut shown = meta.clone();
                (shown.posix, shown.mtime) = (posix, mtime);
                shown.ctime = SystemTime::now();
                self.note_entry(path, shown);
                let mut p = self.known.pending.lock();
                let first = !p.contains_key(&ino);
                let e = p.entry(ino).or_insert((meta, AttrChange::default()));
                e.1 = e.1.then(ch);
                Ok(first.then_some(fs))
            }
            _ => self
                .store_meta(path, &meta, posix, mtime)
                .await
                .map(|_| None),
        }
    }

    /// Sends the settled change of `ino` (to wherever it is now).
    async fn send_pending_attrs(&self, ino: u64) {
        let Some((before, ch)) = self.known.pending.lock().remove(&ino) else {
            return;
        };
        let Ok(path) = self.path_of(ino) else {
            return;
        };
        match self
            .apply_attrs(ino, &path, ch, Some(before))
            .await
            .map(drop)
        {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => {
                tracing::error!(%path, "chmod/chown/utimens not stored on the server: {e}")
            }
        }
    }

    /// A directory's change, kept for the session (see the module doc).
    fn set_dir_attrs(&self, ino: u64, mut meta: Meta, ch: AttrChange) {
        meta.posix = ch.apply(Kind::Dir, meta.posix);
        if let Some(t) = ch.mtime {
            meta.mtime = t;
        }
        meta.ctime = SystemTime::now();
        self.local.lock().insert(ino, meta);
    }

    /// Stores new metadata for the unchanged content of the closed file
    /// `path` (the server's version `meta`).
    async fn store_meta(
        &self,
        path: &SmhPath,
        meta: &Meta,
        posix: PosixMeta,
        mtime: SystemTime,
    ) -> FsResult<()> {
        let _in_flight = self.in_flight.begin();
        let started = std::time::Instant::now();
        let known = meta.etag.as_deref().and_then(|e| self.known.get(e));
        let known = known.filter(|h| h.size == meta.size);
        let small = meta.etag.as_deref().and_then(|e| self.known.small(e));
        let body = match (known, small) {
            (Some(hashes), _) if hashes.size >= INSTANT_UPLOAD_MIN_SIZE => Body::Known { hashes },
            (Some(hashes), Some(data)) if data.len() as u64 == hashes.size => {
                Body::Bytes { data, hashes }
            }
            _ => self.read_for_meta(path, meta).await?,
        };
        let (how, hashes, data) = match &body {
            Body::Known { hashes } => ("instant upload", hashes.clone(), None),
            Body::Bytes { hashes, data } => ("sent again", hashes.clone(), Some(data.clone())),
            Body::File { .. } => ("staged", ContentHashes::of(&[]), None),
        };
        let fm = self
            .uploader()
            .send(Outgoing {
                to: path,
                body,
                strategy: ConflictStrategy::Overwrite,
                mtime: Some(mtime),
                posix,
                journal: None,
                sent: Default::default(),
            })
            .await
            .result?;
        tracing::debug!(%path, how, elapsed = ?started.elapsed(), "metadata stored");
        self.known.remember(&fm, &hashes);
        if let Some(d) = &data {
            self.known.remember_small(&fm, d);
        }
        let mut m = Meta::from_file_meta(&fm, Some(mtime));
        m.posix = posix;
        self.note_entry(path, m);
        Ok(())
    }

    /// The content of `path` read once (one version): its bytes if small,
    /// else only its hashes (the server has it: instant upload).
    async fn read_for_meta(&self, path: &SmhPath, meta: &Meta) -> FsResult<Body<'static>> {
        let src = Source::new(self.client.clone(), self.urls.clone());
        let size = src.pin(path, Version::of_meta(meta).as_ref()).await?.size;
        if size < INSTANT_UPLOAD_MIN_SIZE {
            let data = super::read::fetch(&src, path, 0, size).await?;
            let hashes = ContentHashes::of(&data);
            return Ok(Body::Bytes { data, hashes });
        }
        let mut h = ContentHasher::new();
        let mut at = 0;
        while at < size {
            let n = super::core::FILL_CHUNK.min(size - at);
            let data = super::read::fetch(&src, path, at, n).await?;
            if data.is_empty() {
                return Err(FsError::Stale);
            }
            h.update(&data);
            at += data.len() as u64;
        }
        Ok(Body::Known { hashes: h.finish() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_keeps_type_and_unchanged_fields() {
        let p = PosixMeta {
            mode: Some(libc::S_IFREG | 0o644),
            uid: Some(7),
            ..Default::default()
        };
        let ch = AttrChange {
            mode: Some(0o100750),
            ..Default::default()
        };
        let q = ch.apply(Kind::File, p);
        assert_eq!(q.mode, Some(libc::S_IFREG | 0o750));
        assert_eq!(q.uid, Some(7));
        let d = ch.apply(Kind::Dir, PosixMeta::default());
        assert_eq!(d.mode, Some(libc::S_IFDIR | 0o750));
    }

    #[test]
    fn defaults_and_no_op_detection() {
        let look = Presentation {
            uid: 1000,
            gid: 100,
            umask: 0o022,
        };
        let none = PosixMeta::default();
        assert_eq!(look.perm(Kind::File, &none), 0o644);
        assert_eq!(look.perm(Kind::Dir, &none), 0o755);
        assert_eq!(look.uid(&none), 1000);
        let same = AttrChange {
            mode: Some(0o644),
            uid: Some(1000),
            ..Default::default()
        }
        .apply(Kind::File, none);
        assert!(look.same(Kind::File, &same, &none), "nothing new to store");
        let n = look.for_new(Kind::File, 0o755, 1000, 5);
        assert_eq!((n.mode, n.uid, n.gid), (Some(0o100755), None, Some(5)));
    }

    #[test]
    fn exact_mtime_only_when_it_agrees() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(978_307_200, 123_456_789);
        let mut m = MetaData::new();
        mtime_meta(t, &mut m);
        let coarse = SystemTime::UNIX_EPOCH + Duration::from_millis(978_307_200_123);
        assert_eq!(precise_mtime(Some(&m), coarse), t);
        let other = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(precise_mtime(Some(&m), other), other);
        assert_eq!(precise_mtime(None, coarse), coarse);
    }
}
