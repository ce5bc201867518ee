//! Direct (O_DIRECT) file I/O helpers: aligned buffers, a small buffer
//! pool, and reads that take cached pages when present and go around the
//! page cache otherwise.
//!
//! Why: on the VMs smhfs targets, putting a byte into a *new* page-cache
//! page costs several times moving it with O_DIRECT, so large staged files
//! are written and read back without filling the page cache.

use std::alloc::Layout;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

use bytes::Bytes;

use crate::smh::{PartSource, SharedSource};

/// Alignment of O_DIRECT offsets, lengths and buffers (the page size; a
/// multiple of every common logical block size).
pub const ALIGN: usize = 4096;

pub fn align_down(n: u64) -> u64 {
    n / ALIGN as u64 * ALIGN as u64
}

/// A zeroed buffer aligned to [`ALIGN`], mapped on its own: freeing it
/// returns the memory at once (large malloc'd blocks linger in per-thread
/// arenas and grew the daemon's RSS with every large upload).
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by one `AlignedBuf` (no aliasing pointer
// escapes), and munmap may run on any thread.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` only gives `&[u8]` (`Deref`); mutation needs
// `&mut`, so shared references never race.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// `len` must be a non-zero multiple of [`ALIGN`].
    pub fn new(len: usize) -> Self {
        assert!(len > 0 && len % ALIGN == 0, "bad aligned buffer size {len}");
        // SAFETY: asks for a new private anonymous mapping (no fd, no fixed
        // address), which cannot alias any Rust object; failure is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(Layout::from_size_align(len, ALIGN).expect("layout"));
        }
        let ptr = NonNull::new(p.cast()).expect("mmap returned null");
        Self { ptr, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes (anonymous maps are
        // zero-filled, so initialized), owned by self for the borrow's life.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, and `&mut self` makes this the only
        // reference to the bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, and no
        // slice of it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({})", self.len)
    }
}

/// Size of the pooled read buffers.
pub const POOL_BUF: usize = 1 << 20;
/// Buffers kept for reuse (memory already touched costs nothing new).
const POOL_KEEP: usize = 8;

static POOL: parking_lot::Mutex<Vec<AlignedBuf>> = parking_lot::Mutex::new(Vec::new());

/// A [`POOL_BUF`] buffer from the pool; it goes back when dropped.
pub struct PooledBuf {
    buf: Option<AlignedBuf>,
    len: usize,
}

impl PooledBuf {
    pub fn take() -> Self {
        let buf = POOL
            .lock()
            .pop()
            .unwrap_or_else(|| AlignedBuf::new(POOL_BUF));
        Self {
            buf: Some(buf),
            len: POOL_BUF,
        }
    }

    fn full(&mut self) -> &mut [u8] {
        self.buf.as_deref_mut().expect("pooled buffer present")
    }

    /// The valid bytes end at `len`.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(POOL_BUF);
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf.as_deref().expect("pooled buffer present")[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            let mut pool = POOL.lock();
            if pool.len() < POOL_KEEP {
                pool.push(b);
            }
        }
    }
}

/// Opens `path` for O_DIRECT reads (`write` too if asked); `None` where
/// the filesystem does not support it (tmpfs on older kernels, ...).
pub fn open_direct(path: &Path, write: bool) -> Option<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

/// One stretch of a file: bytes on disk, or a hole (reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: u64,
    pub end: u64,
    pub data: bool,
}

/// `lseek(2)` with `SEEK_DATA`/`SEEK_HOLE`; `None` for ENXIO (no data
/// at or after `offset`, or `offset` at or past the end).
fn seek(f: &File, offset: u64, whence: libc::c_int) -> std::io::Result<Option<u64>> {
    // SAFETY: a plain syscall on a descriptor `f` keeps open; the file
    // position it moves is not used (all I/O here is positioned).
    let r = unsafe { libc::lseek(f.as_raw_fd(), offset as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(e),
    }
}

/// The data and holes of `[from, to)` in order, from `SEEK_DATA` and
/// `SEEK_HOLE` (a filesystem without them reports one data extent). Why:
/// a sparse staged file (`truncate -s`, writes past the end) is neither
/// charged to the cache for its holes nor read from disk there.
pub fn extents(f: &File, from: u64, to: u64) -> std::io::Result<Vec<Extent>> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let data = match seek(f, at, libc::SEEK_DATA) {
            Ok(d) => d.unwrap_or(to).min(to),
            // No SEEK_DATA here: all of it is data.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => at,
            Err(e) => return Err(e),
        };
        if data > at {
            out.push(Extent {
                start: at,
                end: data,
                data: false,
            });
            at = data;
        }
        if at >= to {
            break;
        }
        let hole = match seek(f, at, libc::SEEK_HOLE) {
            Ok(h) => h.unwrap_or(to).clamp(at + 1, to),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => to,
            Err(e) => return Err(e),
        };
        out.push(Extent {
            start: at,
            end: hole,
            data: true,
        });
        at = hole;
    }
    Ok(out)
}

/// `lseek` `SEEK_DATA` (`data`) or `SEEK_HOLE` from `from` in a file of
/// `size` bytes; `None`: no data at or after `from` (ENXIO).
pub fn seek_in(f: &File, from: u64, size: u64, data: bool) -> std::io::Result<Option<u64>> {
    if from >= size {
        return Ok(None);
    }
    let whence = if data {
        libc::SEEK_DATA
    } else {
        libc::SEEK_HOLE
    };
    Ok(match seek(f, from, whence) {
        Ok(Some(at)) if at < size => Some(at),
        Ok(_) => (!data).then_some(size),
        // No SEEK_DATA here: all data, the only hole at the end.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(if data { from } else { size }),
        Err(e) => return Err(e),
    })
}

/// Bytes of `[from, to)` on disk (not in holes).
pub fn data_in(f: &File, from: u64, to: u64) -> std::io::Result<u64> {
    Ok(extents(f, from, to)?
        .iter()
        .filter(|e| e.data)
        .map(|e| e.end - e.start)
        .sum())
}

/// Whether `[from, to)` is all hole (the file reads zeros there).
fn all_hole(f: &File, from: u64, to: u64) -> std::io::Result<bool> {
    Ok(match seek(f, from, libc::SEEK_DATA) {
        Ok(d) => d.is_none_or(|d| d >= to),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => return Err(e),
    })
}

/// Zeros served for holes without reading or filling memory: an anonymous
/// mapping never written, so its pages are the kernel's shared zero page.
static ZEROS: std::sync::LazyLock<AlignedBuf> =
    std::sync::LazyLock::new(|| AlignedBuf::new(POOL_BUF));

/// `len` (at most [`POOL_BUF`]) zero bytes, shared.
pub fn zeros(len: usize) -> &'static [u8] {
    &ZEROS[..len]
}

/// Reads a file's bytes without filling the page cache where possible.
#[derive(Debug)]
pub struct DirectReader {
    plain: File,
    direct: Option<File>,
}

impl DirectReader {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let plain = File::open(path)?;
        let direct = open_direct(path, false);
        Ok(Self { plain, direct })
    }

    pub fn file(&self) -> &File {
        &self.plain
    }

    /// Fills `buf` from `offset`, short only at the end of the file. Bytes
    /// all in the page cache are copied from it; others are read with
    /// O_DIRECT where aligned (the kernel writes dirty cached pages of the
    /// range first, so both paths see the same bytes), the rest plainly.
    /// Holes are filled with zeros, not read.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let end = offset + buf.len() as u64;
        let ext = extents(&self.plain, offset, end)?;
        if ext.iter().all(|e| e.data) {
            return self.read_data_at(buf, offset);
        }
        for e in ext {
            let part = &mut buf[(e.start - offset) as usize..(e.end - offset) as usize];
            if e.data {
                let n = self.read_data_at(part, e.start)?;
                if n < part.len() {
                    // The file shrank meanwhile: short here.
                    return Ok((e.start - offset) as usize + n);
                }
            } else {
                part.fill(0);
            }
        }
        // Holes run to the end of the file at most: short past it.
        let size = self.plain.metadata()?.len();
        Ok(size.saturating_sub(offset).min(buf.len() as u64) as usize)
    }

    /// `read_at` of bytes on disk (no hole lookup).
    fn read_data_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if let Some(n) = read_cached(&self.plain, buf, offset) {
            return Ok(n);
        }
        let mut done = 0;
        if let Some(d) = &self.direct {
            if offset % ALIGN as u64 == 0 && buf.as_ptr() as usize % ALIGN == 0 {
                let aligned = buf.len() / ALIGN * ALIGN;
                match read_direct(d, &mut buf[..aligned], offset) {
                    Ok(n) if n < aligned => return Ok(n),
                    Ok(n) => done = n,
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done + read_full(&self.plain, &mut buf[done..], offset + done as u64)?)
    }

    /// Reads up to a pooled buffer's size at `offset`; empty at the end.
    pub fn read_pooled_into<'a>(
        &self,
        b: &'a mut PooledBuf,
        offset: u64,
    ) -> std::io::Result<&'a [u8]> {
        let n = self.read_at(b.full(), offset)?;
        Ok(&b.full()[..n])
    }

    /// Reads `len` bytes at `offset` into a pooled buffer (`len` <= [`POOL_BUF`]).
    pub fn read_pooled(&self, offset: u64, len: usize) -> std::io::Result<PooledBuf> {
        let mut b = PooledBuf::take();
        let len = len.min(POOL_BUF);
        let n = self.read_at(&mut b.full()[..len], offset)?;
        if n < len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        b.set_len(len);
        Ok(b)
    }
}

/// Upload part bodies of a staged file: small ones read plainly, streamed
/// ones a pooled buffer at a time around the page cache (a large staged
/// file was written with O_DIRECT; its bytes are mostly not cached).
impl PartSource for DirectReader {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.plain.metadata()?.len())
    }

    fn read_small(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.plain.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    /// A chunk all in a hole is static zeros: not read, not copied.
    fn read_chunk(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let len = len.min(POOL_BUF);
        let end = offset + len as u64;
        // The hole check first: one lseek; the size (an fstat) matters only
        // for a chunk that looks all hole (or lies past the end).
        if all_hole(&self.plain, offset, end)? && end <= self.size()? {
            return Ok(Bytes::from_static(zeros(len)));
        }
        Ok(Bytes::from_owner(self.read_pooled(offset, len)?))
    }

    fn chunk_len(&self) -> usize {
        POOL_BUF
    }
}

impl DirectReader {
    /// Opens `path` as an upload source.
    pub fn shared(path: &Path) -> std::io::Result<SharedSource> {
        Ok(Arc::new(Self::open(path)?))
    }
}

/// `cachestat(2)` (Linux 6.5; the same number on every architecture).
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of the range is in the page cache. Asked with
/// `cachestat(2)`, which (unlike a `RWF_NOWAIT` read) starts no readahead
/// into new pages; `false` where the kernel lacks it.
fn all_cached(f: &File, offset: u64, len: usize) -> bool {
    let first = align_down(offset);
    let end = (offset + len as u64).div_ceil(ALIGN as u64) * ALIGN as u64;
    let range = CachestatRange {
        off: first,
        len: end - first,
    };
    let mut cs = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `cs`, both live `repr(C)`
    // structs laid out as the kernel's; the fd is open for the call. An
    // unknown syscall only returns ENOSYS.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            f.as_raw_fd(),
            &range as *const CachestatRange,
            &mut cs as *mut Cachestat,
            0u32,
        )
    };
    r == 0 && cs.nr_cache >= (end - first) / ALIGN as u64
}

/// The whole range if it is all in the page cache, else `None`.
fn read_cached(f: &File, buf: &mut [u8], offset: u64) -> Option<usize> {
    if !all_cached(f, offset, buf.len()) {
        return None;
    }
    read_full(f, buf, offset).ok()
}

/// O_DIRECT read of an aligned range; short at the end of the file.
fn read_direct(d: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = d.read_at(&mut buf[done..], offset + done as u64)?;
        done += n;
        if n == 0 || done % ALIGN != 0 {
            break; // the end of the file
        }
    }
    Ok(done)
}

/// `read_at` until `buf` is full or the end of the file.
pub fn read_full(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = f.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_reader_sees_cached_dirty_and_uncached_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * POOL_BUF + 4099).map(|i| (i % 253) as u8).collect();
        // Uncached: written around the page cache where possible.
        std::fs::write(&path, &data).unwrap();
        if let Some(d) = open_direct(&path, true) {
            let mut b = AlignedBuf::new(POOL_BUF);
            b.copy_from_slice(&data[POOL_BUF..2 * POOL_BUF]);
            d.write_all_at(&b, POOL_BUF as u64).unwrap();
        }
        // Dirty cached bytes in the middle of an uncached range.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut data = data;
        data[POOL_BUF + 10..POOL_BUF + 20].copy_from_slice(&[7; 10]);
        f.write_all_at(&[7; 10], POOL_BUF as u64 + 10).unwrap();
        let r = DirectReader::open(&path).unwrap();
        let mut off = 0;
        let mut buf = PooledBuf::take();
        while off < data.len() {
            let got = r.read_pooled_into(&mut buf, off as u64).unwrap();
            assert!(!got.is_empty());
            assert!(got == &data[off..off + got.len()], "at {off}");
            off += got.len();
        }
        assert!(r.read_pooled_into(&mut buf, off as u64).unwrap().is_empty());
        let p = r.read_pooled(POOL_BUF as u64, 4097).unwrap();
        assert!(p.as_ref() == &data[POOL_BUF..POOL_BUF + 4097]);
        assert!(r.read_pooled(data.len() as u64 - 3, 4).is_err());
    }
}

#[cfg(test)]
mod hole_tests {
    use super::*;

    #[test]
    fn holes_are_found_and_read_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = std::fs::File::create(&path).unwrap();
        let mib = POOL_BUF as u64;
        f.write_all_at(&[5; 4096], 0).unwrap();
        f.write_all_at(&[6; 10], 8 * mib).unwrap();
        f.set_len(16 * mib).unwrap();
        let ext = extents(&f, 0, 16 * mib).unwrap();
        assert!(ext.len() >= 3, "{ext:?}");
        assert!(ext[0].data && ext[0].start == 0 && ext[0].end >= 4096);
        assert!(!ext[1].data);
        assert!(!ext.last().unwrap().data);
        assert_eq!(data_in(&f, 0, 16 * mib).unwrap() % 4096, 0);
        assert!(data_in(&f, 0, 16 * mib).unwrap() <= 8 * 4096);
        let r = DirectReader::open(&path).unwrap();
        // A chunk all in a hole is the shared zeros, not a read.
        let z = r.read_chunk(2 * mib, POOL_BUF).unwrap();
        assert!(z.iter().all(|&b| b == 0));
        assert_eq!(z.as_ptr(), zeros(1).as_ptr());
        // Mixed chunks: data where written, zeros elsewhere.
        let c = r.read_chunk(8 * mib - 4096, POOL_BUF).unwrap();
        assert!(c[..4096].iter().all(|&b| b == 0));
        assert_eq!(&c[4096..4106], &[6; 10]);
        assert!(c[4106..].iter().all(|&b| b == 0));
        let c = r.read_chunk(0, 8192).unwrap();
        assert!(c[..4096].iter().all(|&b| b == 5) && c[4096..].iter().all(|&b| b == 0));
        // Past the end: short, as before.
        let mut buf = vec![1u8; 8192];
        assert_eq!(r.read_at(&mut buf, 16 * mib - 100).unwrap(), 100);
        assert!(buf[..100].iter().all(|&b| b == 0));
        assert!(r.read_chunk(16 * mib - 100, 200).is_err());
    }
}
