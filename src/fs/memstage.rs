//! `MemStaged`: a small new file held in memory while it is written, and
//! [`Staged`], the open file's content either in memory or in a
//! [`StagedFile`].
//!
//! In close-synchronous mode close() reports the upload's outcome, so a
//! small file needs no cache file and no journal entry unless something goes
//! wrong; creating, renaming and unlinking those files cost more than
//! uploading 4 KiB (ext4 inode allocation). The content moves to a staged
//! file with a journal entry ("spills") when it grows past
//! [`MEM_FILE_MAX`], when all in-memory files together would pass
//! [`MEM_TOTAL_MAX`] or the cache bound, when its upload fails (so it is
//! retried or reported, never lost), and at close in write-back mode
//! (close acknowledges it: it must be durable; this still saves the journal
//! entry, and its fsyncs, at the first write). A daemon crash before close
//! loses only content whose close() had not succeeded: the writer learns of
//! it from that close().

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::staging::{CacheBudget, StagedFile};
use crate::smh::{ContentHasher, ContentHashes};

/// Largest file kept in memory (one simple upload, one hash block).
pub const MEM_FILE_MAX: u64 = 1 << 20;
/// Bound on the bytes of all in-memory files together.
pub const MEM_TOTAL_MAX: u64 = 8 << 20;

/// Shown as the staged path of an in-memory file (`smhfs status`).
const MEM_PATH: &str = "(in memory)";

/// Bytes held by all in-memory files.
#[derive(Debug, Default)]
pub struct MemBudget {
    used: AtomicU64,
}

impl MemBudget {
    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= MEM_TOTAL_MAX)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
enum Buf {
    Mut(BytesMut),
    /// Handed to an upload (no copy); turned back on the next change.
    Frozen(Bytes),
}

impl Buf {
    fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Mut(b) => b,
            Buf::Frozen(b) => b,
        }
    }

    fn as_mut(&mut self) -> &mut BytesMut {
        if let Buf::Frozen(b) = self {
            let b = std::mem::take(b);
            let m = b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..]));
            *self = Buf::Mut(m);
        }
        match self {
            Buf::Mut(m) => m,
            Buf::Frozen(_) => unreachable!("just thawed"),
        }
    }
}

/// A new file's content in memory, counted in the cache bound and in the
/// in-memory bound.
#[derive(Debug)]
pub struct MemStaged {
    data: Buf,
    /// `None` once a write broke the in-order sequence.
    hasher: Option<ContentHasher>,
    pub mtime: Option<SystemTime>,
    /// Mode/owner sent with the upload (`fs::posix`).
    pub posix: super::posix::PosixMeta,
    id: String,
    budget: Arc<CacheBudget>,
    mem: Arc<MemBudget>,
    /// Bytes counted in both bounds.
    charged: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl MemStaged {
    pub fn new(budget: Arc<CacheBudget>, mem: Arc<MemBudget>) -> Self {
        Self {
            data: Buf::Mut(BytesMut::new()),
            hasher: Some(ContentHasher::new()),
            mtime: None,
            posix: Default::default(),
            id: format!("mem-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            budget,
            mem,
            charged: 0,
        }
    }

    pub fn size(&self) -> u64 {
        self.data.as_slice().len() as u64
    }

    pub fn data(&self) -> &[u8] {
        self.data.as_slice()
    }

    /// Room for `end` bytes in total, without waiting; false: spill.
    fn make_room(&mut self, end: u64) -> bool {
        if end > MEM_FILE_MAX {
            return false;
        }
        let grow = end.saturating_sub(self.charged);
        if grow == 0 {
            return true;
        }
        if !self.mem.try_take(grow) {
            return false;
        }
        if !self.budget.try_reserve(grow, self.charged) {
            self.mem.release(grow);
            return false;
        }
        self.charged += grow;
        true
    }

    /// Gives back what the content no longer needs.
    fn settle(&mut self) {
        let size = self.size();
        if self.charged > size {
            let n = self.charged - size;
            self.mem.release(n);
            self.budget.release(n);
            self.charged = size;
        }
    }

    /// Writes if the result stays within the bounds; false: nothing was
    /// written, the caller spills to a staged file.
    #[must_use]
    pub fn try_write(&mut self, offset: u64, data: &[u8]) -> bool {
        let end = offset + data.len() as u64;
        if !self.make_room(end.max(self.size())) {
            return false;
        }
        let size = self.size();
        match &mut self.hasher {
            Some(h) if offset == size && h.size() == size => h.update(data),
            _ => self.hasher = None,
        }
        let (off, end) = (offset as usize, end as usize);
        let buf = self.data.as_mut();
        if buf.capacity() < end {
            // Most files are written once, front to back: grow in big
            // steps, within the bound.
            let want = if end >= 64 << 10 {
                MEM_FILE_MAX as usize
            } else {
                (end * 2).max(16 << 10)
            }
            .max(end);
            buf.reserve(want - buf.len());
        }
        if off > buf.len() {
            buf.resize(off, 0);
        }
        // Overwrite what exists, append the rest (no zero-fill first).
        let inside = (buf.len() - off).min(data.len());
        buf[off..off + inside].copy_from_slice(&data[..inside]);
        buf.extend_from_slice(&data[inside..]);
        true
    }

    /// Truncates or extends with zeros; false (unchanged): spill.
    #[must_use]
    pub fn try_truncate(&mut self, size: u64) -> bool {
        let old = self.size();
        if size == old {
            return true;
        }
        if !self.make_room(size) {
            return false;
        }
        match &mut self.hasher {
            Some(h) if size > old && h.size() == old => {
                h.update(&vec![0u8; (size - old) as usize]);
            }
            _ if size == 0 => self.hasher = Some(ContentHasher::new()),
            _ => self.hasher = None,
        }
        self.data.as_mut().resize(size as usize, 0);
        self.settle();
        true
    }

    pub fn read_at(&self, offset: u64, len: u32) -> Vec<u8> {
        let d = self.data.as_slice();
        let start = (offset.min(d.len() as u64)) as usize;
        let end = (start + len as usize).min(d.len());
        d[start..end].to_vec()
    }

    pub fn hashes(&mut self) -> ContentHashes {
        match &self.hasher {
            Some(h) if h.size() == self.size() => h.clone().finish(),
            _ => {
                let mut h = ContentHasher::new();
                h.update(self.data.as_slice());
                self.hasher = Some(h.clone());
                h.finish()
            }
        }
    }

    /// The content as a shared buffer for an upload body (no copy).
    pub fn bytes(&mut self) -> Bytes {
        if let Buf::Mut(m) = &mut self.data {
            let b = std::mem::take(m).freeze();
            self.data = Buf::Frozen(b);
        }
        match &self.data {
            Buf::Frozen(b) => b.clone(),
            Buf::Mut(_) => unreachable!("just frozen"),
        }
    }
}

impl Drop for MemStaged {
    fn drop(&mut self) {
        self.mem.release(self.charged);
        self.budget.release(self.charged);
    }
}

/// An open file's local content.
// One per open file: the few hundred bytes between the variants do not
// matter, and a Box would cost an allocation per large file for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Staged {
    Mem(MemStaged),
    Disk(StagedFile),
}

impl Staged {
    pub fn id(&self) -> String {
        match self {
            Staged::Mem(m) => m.id.clone(),
            Staged::Disk(d) => d.id(),
        }
    }

    /// The staged file, or a marker for an in-memory file.
    pub fn path(&self) -> &Path {
        match self {
            Staged::Mem(_) => Path::new(MEM_PATH),
            Staged::Disk(d) => d.path(),
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            Staged::Mem(m) => m.size(),
            Staged::Disk(d) => d.size(),
        }
    }

    pub fn mtime(&self) -> Option<SystemTime> {
        match self {
            Staged::Mem(m) => m.mtime,
            Staged::Disk(d) => d.mtime,
        }
    }

    pub fn posix(&self) -> super::posix::PosixMeta {
        match self {
            Staged::Mem(m) => m.posix,
            Staged::Disk(d) => d.posix,
        }
    }

    pub fn set_posix(&mut self, p: super::posix::PosixMeta) {
        match self {
            Staged::Mem(m) => m.posix = p,
            Staged::Disk(d) => d.posix = p,
        }
    }

    pub fn set_mtime(&mut self, t: Option<SystemTime>) {
        match self {
            Staged::Mem(m) => m.mtime = t,
            Staged::Disk(d) => d.mtime = t,
        }
    }

    pub fn is_mem(&self) -> bool {
        matches!(self, Staged::Mem(_))
    }

    pub fn disk(&self) -> Option<&StagedFile> {
        match self {
            Staged::Disk(d) => Some(d),
            Staged::Mem(_) => None,
        }
    }

    pub fn read_at(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        match self {
            Staged::Mem(m) => Ok(m.read_at(offset, len)),
            Staged::Disk(d) => d.read_at(offset, len),
        }
    }

    /// Local durability: nothing to do for memory (spilled when it matters).
    pub fn sync(&self) -> std::io::Result<()> {
        match self {
            Staged::Mem(_) => Ok(()),
            Staged::Disk(d) => d.sync(),
        }
    }

    /// The server has the content (or it is unwanted): drop the local copy.
    pub fn remove(self) {
        match self {
            Staged::Mem(m) => drop(m),
            Staged::Disk(d) => d.remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> (MemStaged, Arc<CacheBudget>, Arc<MemBudget>) {
        let b = CacheBudget::new(1 << 30, std::time::Duration::ZERO);
        let m = Arc::new(MemBudget::default());
        (MemStaged::new(b.clone(), m.clone()), b, m)
    }

    #[test]
    fn writes_hash_and_count_in_both_bounds() {
        let (mut f, b, m) = mem();
        assert!(f.try_write(0, b"hello "));
        assert!(f.try_write(6, b"world"));
        assert_eq!(f.hashes(), ContentHashes::of(b"hello world"));
        assert_eq!((b.used(), m.used()), (11, 11));
        // Out of order: recomputed.
        assert!(f.try_write(0, b"J"));
        assert_eq!(f.hashes(), ContentHashes::of(b"Jello world"));
        let body = f.bytes();
        assert_eq!(&body[..], b"Jello world");
        // A write after an upload took the buffer works on a copy if needed.
        assert!(f.try_write(11, b"!"));
        assert_eq!(f.read_at(0, 100), b"Jello world!");
        assert_eq!(&body[..], b"Jello world");
        assert!(f.try_truncate(3));
        assert_eq!(f.hashes(), ContentHashes::of(b"Jel"));
        assert_eq!((b.used(), m.used()), (3, 3));
        drop(f);
        assert_eq!((b.used(), m.used()), (0, 0));
    }

    #[test]
    fn too_big_or_no_room_asks_for_a_spill() {
        let (mut f, b, m) = mem();
        assert!(!f.try_write(MEM_FILE_MAX, b"x"));
        assert!(!f.try_truncate(MEM_FILE_MAX + 1));
        assert_eq!(f.size(), 0);
        assert!(f.try_write(0, &vec![1u8; MEM_FILE_MAX as usize]));
        // The in-memory bound is shared by all files.
        let mut others: Vec<MemStaged> = (0..(MEM_TOTAL_MAX / MEM_FILE_MAX - 1))
            .map(|_| {
                let mut o = MemStaged::new(b.clone(), m.clone());
                assert!(o.try_write(0, &vec![2u8; MEM_FILE_MAX as usize]));
                o
            })
            .collect();
        let mut last = MemStaged::new(b.clone(), m.clone());
        assert!(!last.try_write(0, b"no room"));
        others.pop();
        assert!(last.try_write(0, b"room"));
        // The cache bound too.
        let tight = CacheBudget::new(10, std::time::Duration::ZERO);
        let mut t = MemStaged::new(tight.clone(), m.clone());
        assert!(!t.try_write(0, &[0u8; 11]));
        assert!(t.try_write(0, &[0u8; 10]));
        assert_eq!(tight.used(), 10);
    }
}
