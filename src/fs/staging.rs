//! `StagedFile`: the local copy of a file being written.
//!
//! Writes go to a file in the cache directory. Writes that arrive in order
//! at the end feed the SMH hashes as they come, so closing a file written
//! front to back needs no second read; any other write marks the hashes
//! stale and they are recomputed at flush. The file is created with
//! `keep()` semantics: it outlives a crash or a failed upload, and is only
//! removed once the server confirmed the content.
//!
//! A file that grows in order past [`direct::THRESHOLD`] is staged through
//! a [`DirectWriter`] (O_DIRECT, hashing on its own thread); reads see its
//! buffered bytes, and every other operation flushes it first.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use super::budget::CacheBudget;
use super::direct::{self, DirectWriter};
use crate::smh::{ContentHasher, ContentHashes};

#[derive(Debug)]
pub struct StagedFile {
    file: File,
    path: PathBuf,
    size: u64,
    /// `None` once a write broke the in-order sequence.
    hasher: Option<ContentHasher>,
    /// Set by utimens; sent as `localModificationTime`.
    pub mtime: Option<SystemTime>,
    /// Mode/owner sent with the upload (`fs::posix`).
    pub posix: super::posix::PosixMeta,
    /// The cache bound this file's bytes count against.
    budget: Option<Arc<CacheBudget>>,
    /// Bytes of this file counted in `budget`.
    charged: u64,
    /// Bytes of the content on disk in the cache: not holes (`truncate
    /// -s`, writes past the end), not sent parts. What the budget charges.
    held: u64,
    /// Active while the file grows in order past the threshold; it holds
    /// the hasher then. A lock only so `&self` methods (sync) can flush.
    direct: parking_lot::Mutex<Option<DirectWriter>>,
    /// Bytes appended in order since the last other write.
    seq_run: u64,
    /// O_DIRECT is not available for this file.
    no_direct: bool,
    /// Bytes `[0, streamed)` were sent to the server by a streamed upload
    /// and punched out of the staged file: they are not in the cache.
    streamed: u64,
    /// The streamed upload of this content, once begun (`fs::stream`).
    stream: Option<Stream>,
    /// The content was not written front to back when it reached the
    /// streaming threshold: it is never streamed (until truncated to 0).
    stream_refused: bool,
}

/// A streamed upload in progress: the task and the hashes of the bytes it
/// already sent (they are no longer on disk to be hashed at the close).
#[derive(Debug)]
pub struct Stream {
    pub task: crate::smh::stream::StreamedTask,
    /// Hashes of `[0, streamed)`.
    prefix: ContentHasher,
    /// Parts sent: `streamed / task.part_size`.
    pub parts: u32,
}

/// The errno of an access to bytes a streamed upload already sent and
/// dropped from the cache (SEMANTICS.md "Files larger than the cache").
pub const SENT_ERRNO: i32 = libc::ESPIPE;

fn sent_error() -> std::io::Error {
    std::io::Error::from_raw_os_error(SENT_ERRNO)
}

impl StagedFile {
    /// A new empty staged file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let (file, path) = tempfile::Builder::new()
            .prefix("staged-")
            .tempfile_in(dir)?
            .keep()
            .map_err(|e| e.error)?;
        Ok(Self {
            file,
            path,
            size: 0,
            hasher: Some(ContentHasher::new()),
            mtime: None,
            posix: Default::default(),
            budget: None,
            charged: 0,
            held: 0,
            direct: Default::default(),
            seq_run: 0,
            no_direct: false,
            streamed: 0,
            stream: None,
            stream_refused: false,
        })
    }

    /// A staged file left by an earlier run (named in the journal); its
    /// bytes are counted in `budget` at once.
    pub fn open_existing(path: &Path, budget: Option<Arc<CacheBudget>>) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a symlink (see `cachedir.rs`).
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let size = file.metadata()?.len();
        let held = crate::dio::data_in(&file, 0, size)?;
        let mut s = Self {
            file,
            path: path.to_path_buf(),
            size,
            hasher: None,
            mtime: None,
            posix: Default::default(),
            budget: None,
            charged: 0,
            held,
            direct: Default::default(),
            seq_run: 0,
            no_direct: false,
            streamed: 0,
            stream: None,
            stream_refused: false,
        };
        s.set_budget(budget);
        Ok(s)
    }

    /// Counts this file's bytes on disk against `budget` from now on.
    pub fn set_budget(&mut self, budget: Option<Arc<CacheBudget>>) {
        if let Some(b) = &budget {
            b.force(self.held);
        }
        self.charged = if budget.is_some() { self.held } else { 0 };
        self.budget = budget;
    }

    pub fn budget(&self) -> Option<&Arc<CacheBudget>> {
        self.budget.as_ref()
    }

    /// Bytes of room this file holds in the cache bound.
    pub fn charged(&self) -> u64 {
        self.charged
    }

    /// Records `n` bytes taken with [`CacheBudget::reserve`] for a write.
    pub fn add_charged(&mut self, n: u64) {
        self.charged += n;
    }

    /// Brings the charge in line with the bytes held (after a write, a
    /// truncate or a sent part).
    fn settle(&mut self) {
        let Some(b) = &self.budget else { return };
        let held = self.held;
        if held > self.charged {
            b.force(held - self.charged);
        } else {
            b.release(self.charged - held);
        }
        self.charged = held;
    }

    /// Bytes of the content not yet streamed out (holes included).
    pub fn live(&self) -> u64 {
        self.size - self.streamed
    }

    /// Bytes of the content on disk in the cache (what it is charged).
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Bytes a write of `len` at `offset` adds on disk: what lies past the
    /// end, and the holes it fills (whole blocks: a block is allocated
    /// whole). The room to reserve before [`write_at`](Self::write_at).
    pub fn new_bytes(&mut self, offset: u64, len: u64) -> std::io::Result<u64> {
        let end = offset + len;
        if offset >= self.size || len == 0 {
            return Ok(len);
        }
        let past = end.saturating_sub(self.size);
        if self.held >= self.live() {
            // No holes (the usual file): only growth costs.
            return Ok(past);
        }
        // The write ends direct staging anyway; the holes are on disk then.
        self.end_direct()?;
        let block = crate::dio::ALIGN as u64;
        let from = crate::dio::align_down(offset).max(self.streamed);
        let to = end.div_ceil(block).saturating_mul(block).min(self.size);
        let data = crate::dio::data_in(&self.file, from, to)?;
        Ok(past + (to - from - data))
    }

    pub fn streamed(&self) -> u64 {
        self.streamed
    }

    pub fn stream(&self) -> Option<&Stream> {
        self.stream.as_ref()
    }

    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.stream.as_mut()
    }

    /// Whether a streamed upload may begin: the content was written front
    /// to back so far (a later check is not repeated once it said no).
    pub fn streamable(&mut self) -> std::io::Result<bool> {
        if self.stream.is_some() {
            return Ok(true);
        }
        if self.stream_refused {
            return Ok(false);
        }
        self.end_direct()?;
        let ok = self.hasher.as_ref().is_some_and(|h| h.size() == self.size);
        self.stream_refused = !ok;
        Ok(ok)
    }

    /// Whether the streaming threshold was looked at and refused.
    pub fn stream_refused(&self) -> bool {
        self.stream_refused
    }

    /// From now on complete parts of this content are sent as they are
    /// written (`fs::stream`); writes go through the page cache.
    pub fn start_stream(&mut self, task: crate::smh::stream::StreamedTask) -> std::io::Result<()> {
        self.end_direct()?;
        self.no_direct = true;
        self.hasher = None;
        self.stream = Some(Stream {
            task,
            prefix: ContentHasher::new(),
            parts: 0,
        });
        Ok(())
    }

    /// The next complete part not sent yet, if any: (number, length).
    pub fn next_part(&self) -> Option<(u32, u64)> {
        let s = self.stream.as_ref()?;
        let p = s.task.part_size;
        (self.live() >= p).then_some((s.parts + 1, p))
    }

    /// The next part was accepted by the server: its bytes are hashed and
    /// dropped from the cache (a hole punched), and their room given back.
    pub fn part_sent(&mut self) -> std::io::Result<()> {
        let Some((_, len)) = self.next_part() else {
            return Ok(());
        };
        let at = self.streamed;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = at;
        let s = self.stream.as_mut().expect("streaming");
        while off < at + len {
            let n = (at + len - off).min(buf.len() as u64) as usize;
            self.file.read_exact_at(&mut buf[..n], off)?;
            s.prefix.update(&buf[..n]);
            off += n as u64;
        }
        s.parts += 1;
        let on_disk = crate::dio::data_in(&self.file, at, at + len)?;
        punch_hole(&self.file, at, len)?;
        self.streamed += len;
        self.held = self.held.saturating_sub(on_disk);
        self.settle();
        Ok(())
    }

    /// Journal id: the file name.
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// `lseek` `SEEK_DATA` (`data`) / `SEEK_HOLE` from `offset`; `None`:
    /// ENXIO. Sent parts are data: content, only no longer local.
    pub fn seek(&self, offset: u64, data: bool) -> std::io::Result<Option<u64>> {
        if let Some(w) = self.direct.lock().as_mut() {
            w.flush()?;
        }
        if data && offset < self.streamed.min(self.size) {
            return Ok(Some(offset));
        }
        crate::dio::seek_in(&self.file, offset.max(self.streamed), self.size, data)
    }

    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        if offset < self.streamed {
            return Err(sent_error());
        }
        let append = offset == self.size;
        if append && data.is_empty() {
            return Ok(());
        }
        let added = self.new_bytes(offset, data.len() as u64)?;
        self.seq_run = if append {
            self.seq_run + data.len() as u64
        } else {
            0
        };
        if append && self.direct_ready() {
            if let Some(w) = self.direct.get_mut() {
                w.append(data)?;
                self.size += data.len() as u64;
                self.held += added;
                self.settle();
                return Ok(());
            }
        }
        self.end_direct()?;
        self.file.write_all_at(data, offset)?;
        let end = offset + data.len() as u64;
        match &mut self.hasher {
            Some(h) if offset == self.size && h.size() == self.size => h.update(data),
            _ => self.hasher = None,
        }
        self.size = self.size.max(end);
        self.held = (self.held + added).min(self.live());
        self.settle();
        Ok(())
    }

    /// Whether appends go to the direct writer, starting it once the file
    /// grew in order past the threshold.
    fn direct_ready(&mut self) -> bool {
        if self.direct.get_mut().is_some() {
            return true;
        }
        if self.no_direct || self.seq_run < direct::THRESHOLD {
            return false;
        }
        let hasher = self.hasher.take();
        match DirectWriter::start(&self.path, &self.file, self.size, hasher.clone()) {
            Ok(Some(w)) => {
                *self.direct.get_mut() = Some(w);
                true
            }
            Ok(None) => {
                self.no_direct = true;
                self.hasher = hasher;
                false
            }
            Err(e) => {
                // Plain writes work as well, only slower.
                tracing::debug!(path = %self.path.display(), "no direct staging: {e}");
                self.hasher = hasher;
                false
            }
        }
    }

    /// Puts the direct writer's bytes on disk and takes its hasher back.
    fn end_direct(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.direct.get_mut().take() {
            self.hasher = w.finish()?;
        }
        Ok(())
    }

    /// Bytes in `[offset, offset+len)`, short at the end of the file.
    pub fn read_at(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        if offset < self.streamed {
            return Err(sent_error());
        }
        let len = (len as u64).min(self.size - offset) as usize;
        let mut buf = vec![0u8; len];
        let direct = self.direct.lock();
        match &*direct {
            Some(w) => {
                // The file is read only where no buffer holds the bytes
                // (there it may be being written).
                let disk = w.buffered_from().saturating_sub(offset).min(len as u64);
                crate::dio::read_full(&self.file, &mut buf[..disk as usize], offset)?;
                w.overlay(offset, &mut buf);
            }
            None => {
                let done = crate::dio::read_full(&self.file, &mut buf, offset)?;
                buf.truncate(done);
            }
        }
        Ok(buf)
    }

    pub fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        if size == self.size {
            return Ok(());
        }
        if size < self.streamed {
            return Err(sent_error());
        }
        self.end_direct()?;
        self.seq_run = 0;
        if size == 0 {
            self.stream_refused = false;
        }
        let dropped = if size < self.size {
            crate::dio::data_in(&self.file, size, self.size)?
        } else {
            0 // Growing makes a hole: nothing on disk.
        };
        self.file.set_len(size)?;
        self.held = self.held.saturating_sub(dropped);
        match &mut self.hasher {
            // Growing with zeros keeps the hashes in order.
            Some(h) if size > self.size && h.size() == self.size => {
                let mut left = size - self.size;
                while left > 0 {
                    let n = left.min(crate::dio::POOL_BUF as u64) as usize;
                    h.update(crate::dio::zeros(n));
                    left -= n as u64;
                }
            }
            Some(_) if size == 0 => self.hasher = Some(ContentHasher::new()),
            _ => self.hasher = None,
        }
        self.size = size;
        self.settle();
        Ok(())
    }

    /// The hashes of the current content, recomputed from disk if stale.
    pub fn hashes(&mut self) -> std::io::Result<ContentHashes> {
        self.end_direct()?;
        if let Some(h) = &self.hasher {
            if h.size() == self.size {
                return Ok(h.clone().finish());
            }
        }
        if let Some(s) = &self.stream {
            // The sent bytes are only in the prefix's hashes.
            let mut h = s.prefix.clone();
            let mut buf = vec![0u8; 1 << 20];
            let mut off = self.streamed;
            while off < self.size {
                let n = (self.size - off).min(buf.len() as u64) as usize;
                self.file.read_exact_at(&mut buf[..n], off)?;
                h.update(&buf[..n]);
                off += n as u64;
            }
            return Ok(h.finish());
        }
        let mut h = ContentHasher::new();
        // Around the page cache: a large file staged with O_DIRECT is not
        // in it, and reading it back would fill it. Holes are not read.
        use crate::smh::PartSource;
        let f = crate::dio::DirectReader::open(&self.path)?;
        let mut off = 0u64;
        while off < self.size {
            let n = (self.size - off).min(f.chunk_len() as u64);
            let b = f.read_chunk(off, n as usize).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("staged file {}: {e}", self.path.display()),
                )
            })?;
            h.update(&b);
            off += n;
        }
        self.hasher = Some(h.clone());
        Ok(h.finish())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        if let Some(w) = self.direct.lock().as_mut() {
            w.flush()?;
        }
        self.file.sync_data()
    }

    /// The server has the content: the local copy can go.
    pub fn remove(mut self) {
        // Its buffered bytes are not wanted: no last write.
        drop(self.direct.get_mut().take());
        if let Some(b) = &self.budget {
            b.release(self.charged);
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove staged file: {e}");
        }
    }
}

/// Frees the disk blocks of `[offset, offset+len)`; they read as zeros.
fn punch_hole(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we own.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for StagedFile {
    /// A staged file dropped while open (a failed upload keeps its data):
    /// buffered bytes must reach the disk.
    fn drop(&mut self) {
        if let Err(e) = self.end_direct() {
            tracing::error!(path = %self.path.display(), "cannot write staged data: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_hashes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut a = StagedFile::create(dir.path()).unwrap();
        for c in data.chunks(100_000) {
            let off = a.size();
            a.write_at(off, c).unwrap();
        }
        assert!(a.hasher.is_some());
        assert_eq!(a.hashes().unwrap(), ContentHashes::of(&data));

        let mut b = StagedFile::create(dir.path()).unwrap();
        b.write_at(2_000_000, &data[2_000_000..]).unwrap();
        b.write_at(0, &data[..2_000_000]).unwrap();
        assert!(b.hasher.is_none());
        assert_eq!(b.hashes().unwrap(), ContentHashes::of(&data));
        assert_eq!(b.read_at(2_999_990, 100).unwrap(), &data[2_999_990..]);
        a.remove();
        b.remove();
    }

    #[test]
    fn holes_are_not_charged_and_hash_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let budget = CacheBudget::new(8 << 20, std::time::Duration::ZERO);
        let mut s = StagedFile::create(dir.path()).unwrap();
        s.set_budget(Some(budget.clone()));
        let big = 64u64 << 20;
        s.truncate(big).unwrap();
        assert_eq!((s.held(), budget.used()), (0, 0), "a hole costs nothing");
        // A write into the hole charges the block it allocates.
        assert_eq!(s.new_bytes(big / 2 + 10, 100).unwrap(), 4096);
        s.write_at(big / 2 + 10, &[1; 100]).unwrap();
        assert_eq!(budget.used(), 4096);
        // Over bytes already on disk: nothing more.
        assert_eq!(s.new_bytes(big / 2, 4096).unwrap(), 0);
        s.write_at(0, &[2; 5000]).unwrap();
        assert_eq!(budget.used(), 4096 + 8192);
        // Past the end: what is written.
        s.write_at(big + 10, b"tail").unwrap();
        assert_eq!(budget.used(), 4096 + 8192 + 4);
        let mut model = vec![0u8; big as usize + 14];
        model[..5000].fill(2);
        model[big as usize / 2 + 10..big as usize / 2 + 110].fill(1);
        model[big as usize + 10..].copy_from_slice(b"tail");
        s.hasher = None;
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(&model));
        // A reopened sparse file is charged its data only.
        let path = s.path().to_path_buf();
        drop(s);
        let b2 = CacheBudget::new(64 << 20, std::time::Duration::ZERO);
        let mut again = StagedFile::open_existing(&path, Some(b2.clone())).unwrap();
        assert!(b2.used() <= 4 * 4096, "reopened: {}", b2.used());
        // Truncating below the data gives its room back.
        again.truncate(4096).unwrap();
        assert_eq!(b2.used(), 4096);
        again.remove();
        assert_eq!(b2.used(), 0);
    }

    #[test]
    fn truncate_up_and_down() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StagedFile::create(dir.path()).unwrap();
        s.write_at(0, b"hello").unwrap();
        s.truncate(8).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b"hello\0\0\0"));
        s.truncate(2).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b"he"));
        assert_eq!(s.read_at(0, 10).unwrap(), b"he");
        s.truncate(0).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b""));
    }
}

#[cfg(test)]
mod direct_tests {
    use super::direct::THRESHOLD;
    use super::*;

    const T: usize = THRESHOLD as usize;

    /// Direct staging is bounded per process: these tests take turns so
    /// each gets its writer.
    static SERIAL: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    fn bytes(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Appends `data` in 1 MiB writes, as `cp` does.
    fn append(s: &mut StagedFile, data: &[u8]) {
        for c in data.chunks(1 << 20) {
            let off = s.size();
            s.write_at(off, c).unwrap();
        }
    }

    /// Everything a reader can see agrees with `model`.
    fn check(s: &mut StagedFile, model: &[u8]) {
        assert_eq!(s.size(), model.len() as u64);
        let mut at = 0;
        while at < model.len() {
            let n = (3 * 1024 * 1024 + 7).min(model.len() - at);
            assert!(s.read_at(at as u64, n as u32).unwrap() == model[at..at + n]);
            at += n;
        }
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(model));
        // After hashes() every byte is in the file itself.
        assert!(std::fs::read(s.path()).unwrap() == model);
    }

    #[test]
    fn sizes_around_alignment_and_threshold() {
        let _turn = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            4095,
            4096,
            4097,
            T - 1,
            T,
            T + 1,
            T + 3,
            T + 4096,
            20 * 1024 * 1024 + 5,
        ] {
            let data = bytes(size, size as u32);
            // cp-like 1 MiB writes and odd-sized ones.
            for step in [1 << 20, 100_003] {
                let mut s = StagedFile::create(dir.path()).unwrap();
                for c in data.chunks(step) {
                    let off = s.size();
                    s.write_at(off, c).unwrap();
                }
                if size > T {
                    assert!(s.direct.lock().is_some(), "size {size}: direct mode");
                }
                check(&mut s, &data);
                s.remove();
            }
        }
    }

    #[test]
    fn reads_while_writing_see_buffered_bytes() {
        let _turn = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        let data = bytes(30 * 1024 * 1024 + 123, 7);
        let mut s = StagedFile::create(dir.path()).unwrap();
        let mut at = 0;
        for (i, c) in data.chunks(777_777).enumerate() {
            s.write_at(at as u64, c).unwrap();
            at += c.len();
            // The last bytes, a range across the head, and past the end.
            let from = at.saturating_sub(5_000_000 + i);
            let got = s.read_at(from as u64, 6_000_000).unwrap();
            assert!(got == data[from..at], "read at {from} after {at}");
        }
        check(&mut s, &data);
        s.remove();
    }

    #[test]
    fn random_and_overlapping_writes_into_a_large_file() {
        let _turn = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        let mut model = bytes(T + 5 * 1024 * 1024 + 11, 3);
        let mut s = StagedFile::create(dir.path()).unwrap();
        append(&mut s, &model);
        let mut x = 12345u64;
        for i in 0..40 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (x >> 40) as usize % 300_000 + 1;
            let off = (x >> 8) as usize % (model.len() + 1000);
            let patch = bytes(len, i);
            s.write_at(off as u64, &patch).unwrap();
            if model.len() < off + len {
                model.resize(off + len, 0);
            }
            model[off..off + len].copy_from_slice(&patch);
            if i % 10 == 0 {
                // Back to appending: direct mode again after the threshold.
                let more = bytes(T + 3, i + 100);
                append(&mut s, &more);
                model.extend_from_slice(&more);
            }
        }
        check(&mut s, &model);
        s.remove();
    }

    #[test]
    fn truncate_sync_and_drop_in_direct_mode() {
        let _turn = SERIAL.lock();
        let dir = tempfile::tempdir().unwrap();
        let mut model = bytes(T + 3 * 1024 * 1024 + 5, 9);
        let mut s = StagedFile::create(dir.path()).unwrap();
        append(&mut s, &model);
        // sync: every byte on disk, appends go on in the same mode.
        s.sync().unwrap();
        assert!(std::fs::read(s.path()).unwrap() == model);
        let more = bytes(5 * 1024 * 1024 + 1, 10);
        let off = s.size();
        s.write_at(off, &more).unwrap();
        model.extend_from_slice(&more);
        assert!(s.direct.lock().is_some());
        // Truncate down, then up (zeros), then append again.
        s.truncate(T as u64 + 4097).unwrap();
        model.truncate(T + 4097);
        s.truncate(T as u64 + 9000).unwrap();
        model.resize(T + 9000, 0);
        for c in bytes(9 * 1024 * 1024, 11).chunks(65536) {
            let off = s.size();
            s.write_at(off, c).unwrap();
            model.extend_from_slice(c);
        }
        check(&mut s, &model);
        // Dropped without remove (a failed upload keeps its data): the
        // buffered bytes reach the file.
        let tail = bytes(6 * 1024 * 1024 + 3, 12);
        let off = s.size();
        s.write_at(off, &tail).unwrap();
        model.extend_from_slice(&tail);
        let path = s.path().to_path_buf();
        drop(s);
        assert!(std::fs::read(&path).unwrap() == model);
        let mut again = StagedFile::open_existing(&path, None).unwrap();
        assert_eq!(again.hashes().unwrap(), ContentHashes::of(&model));
        again.remove();
    }
}
