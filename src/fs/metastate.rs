//! Mode/owner presentation, setattr changes, and the mount's memory for
//! metadata changes (hashes and small contents of versions uploaded here,
//! changes of closed files settling): the leaf state behind `attrs.rs`.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use super::cache::{Kind, Meta};
use super::posix::PosixMeta;
use crate::smh::hash::INSTANT_UPLOAD_MIN_SIZE;
use crate::smh::types::FileMeta;
use crate::smh::ContentHashes;

/// How attributes without stored metadata are presented (`-o uid,gid,umask`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presentation {
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
    /// `umask` also masks the modes new entries are made with (it was given
    /// explicitly); otherwise they get the mode asked for, as locally.
    pub mask_new: bool,
    /// New entries belong to the process that made them (stored `uid` and
    /// `gid`), as on a local file system: set for `allow_other` mounts,
    /// where other users' permission checks depend on it. A single-user
    /// mount shows everything as `uid`/`gid` until a chown, as rclone does.
    pub creators_own: bool,
}

impl Presentation {
    /// The owner stored with a new entry made by `creator` (uid, gid).
    pub fn owner_of_new(&self, creator: (u32, u32)) -> Option<(u32, u32)> {
        self.creators_own.then_some(creator)
    }

    /// Permission bits (with set-id and sticky bits) as shown.
    pub fn perm(&self, kind: Kind, p: &PosixMeta) -> u32 {
        // Links are 0777 on Linux, where their mode is never checked.
        if kind == Kind::Symlink {
            return 0o777;
        }
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
    pub(crate) fn same(&self, kind: Kind, a: &PosixMeta, b: &PosixMeta) -> bool {
        self.perm(kind, a) == self.perm(kind, b)
            && self.uid(a) == self.uid(b)
            && self.gid(a) == self.gid(b)
    }

    /// The metadata of a new file or directory: the requested mode (the
    /// caller's umask applied), minus the mount's `umask` if one was given
    /// (`mask_new`; a chmod may set any mode). The
    /// owner is `creator` where creators own what they make
    /// (`creators_own`), else the mount's (`-o uid,gid`) until a chown.
    pub fn for_new(&self, kind: Kind, mode: u32, creator: (u32, u32)) -> PosixMeta {
        let mode = if self.mask_new {
            mode & !self.umask
        } else {
            mode
        };
        let ty = match kind {
            Kind::Dir => libc::S_IFDIR,
            _ => libc::S_IFREG,
        };
        let owner = self.owner_of_new(creator);
        PosixMeta {
            mode: Some(ty | (mode & 0o7777)),
            uid: owner.map(|o| o.0),
            gid: owner.map(|o| o.1),
            ..PosixMeta::default()
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

/// How long a metadata change of a closed file waits for more changes
/// (`rsync` sets times, then the mode, then renames: one update).
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

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
    /// To the task that sends them once settled (started with the
    /// background tasks; without it changes are sent at once).
    settle: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<u64>>,
}

impl Default for MetaState {
    fn default() -> Self {
        Self {
            known: Mutex::new(LruCache::new(NonZeroUsize::new(4096).unwrap())),
            small: Mutex::new((LruCache::unbounded(), 0)),
            pending: Default::default(),
            settle: Default::default(),
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

    pub(crate) fn small(&self, etag: &str) -> Option<bytes::Bytes> {
        self.small.lock().0.get(etag).cloned()
    }

    pub(crate) fn hashes(&self, etag: &str) -> Option<ContentHashes> {
        self.known.lock().get(etag).cloned()
    }

    /// The inodes whose changes settled go to the receiver (`None`:
    /// already started).
    pub(crate) fn start(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<u64>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.settle.set(tx).ok().map(|_| rx)
    }

    /// Lets the change `ch` of `ino` settle; `before`: the server's
    /// attributes (kept from the first change). False: nothing would send
    /// it, store it now.
    pub(crate) fn defer(&self, ino: u64, before: Meta, ch: AttrChange) -> bool {
        let Some(tx) = self.settle.get() else {
            return false;
        };
        let mut p = self.pending.lock();
        let first = !p.contains_key(&ino);
        let e = p.entry(ino).or_insert((before, AttrChange::default()));
        e.1 = e.1.then(ch);
        if first {
            let _ = tx.send(ino);
        }
        true
    }

    /// Inodes with a change waiting.
    pub(crate) fn pending(&self) -> Vec<u64> {
        self.pending.lock().keys().copied().collect()
    }

    pub(crate) fn is_pending(&self, ino: u64) -> bool {
        self.pending.lock().contains_key(&ino)
    }

    /// The settled change of `ino`, if any.
    pub(crate) fn take(&self, ino: u64) -> Option<(Meta, AttrChange)> {
        self.pending.lock().remove(&ino)
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
            mask_new: true,
            creators_own: false,
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
        let n = look.for_new(Kind::File, 0o777, (5, 6));
        assert_eq!((n.mode, n.uid, n.gid), (Some(0o100755), None, None));
    }
}
