//! Staging a large file written front to back without new page-cache pages.
//!
//! Once a staged file has grown in order past [`THRESHOLD`], its appends are
//! copied into aligned [`CHUNK`] buffers. A full buffer goes to two threads
//! at once: one feeds the SHA-256 chain, the other the CRC-64 and writes
//! the buffer with O_DIRECT (the chain is the longest job: it gets a thread
//! of its own). The FUSE thread only copies, so hashing and disk writes
//! leave the reply path.
//! Anything other than an append (and sync, truncate, the upload) first
//! flushes: the aligned part of the buffer with O_DIRECT, the tail plainly.
//! Until then reads are served from the buffers ([`DirectWriter::overlay`]).

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::dio::{align_down, open_direct, AlignedBuf, ALIGN};
use crate::smh::hash::Crc64;
use crate::smh::ContentHasher;

/// In-order bytes after which a staged file switches to O_DIRECT.
pub const THRESHOLD: u64 = 8 << 20;
/// Size of one buffer (and of one O_DIRECT write).
pub const CHUNK: usize = 4 << 20;
/// Buffers per file: one filling, the others being hashed and written.
const BUFFERS: usize = 3;
/// Files staged this way at once (each holds up to `BUFFERS` x `CHUNK` of
/// memory and two threads); more stay with plain writes.
const MAX_ACTIVE: usize = 4;

static ACTIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`MAX_ACTIVE`] places, given back on drop.
struct Slot;

impl Slot {
    fn take() -> Option<Self> {
        use std::sync::atomic::Ordering::SeqCst;
        ACTIVE
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_ACTIVE).then_some(n + 1))
            .ok()
            .map(|_| Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct Chunk {
    buf: AlignedBuf,
    /// File offset of `buf[0]` (aligned).
    start: u64,
    /// Valid bytes in `buf`.
    len: usize,
}

/// Error of a background write, reported by the next call.
#[derive(Default)]
struct Failure(parking_lot::Mutex<Option<(std::io::ErrorKind, Option<i32>, String)>>);

impl Failure {
    fn set(&self, e: &std::io::Error) {
        let mut f = self.0.lock();
        if f.is_none() {
            *f = Some((e.kind(), e.raw_os_error(), e.to_string()));
        }
    }

    fn check(&self) -> std::io::Result<()> {
        match &*self.0.lock() {
            None => Ok(()),
            Some((_, Some(code), _)) => Err(std::io::Error::from_raw_os_error(*code)),
            Some((kind, None, msg)) => Err(std::io::Error::new(*kind, msg.clone())),
        }
    }
}

/// Records a panic of a staging thread as a failure (its chunks are
/// released unwritten: nothing may then count as staged).
struct PanicGuard(Arc<Failure>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .set(&std::io::Error::other("staging thread panicked"));
        }
    }
}

/// Write `buf[..write_len]`; feed the CRC-64 `buf[hash_from..len]`.
struct WriteJob {
    chunk: Arc<Chunk>,
    write_len: usize,
    hash_from: usize,
}
/// Feed the chain `buf[hash_from..len]`.
type HashJob = (Arc<Chunk>, usize);

pub struct DirectWriter {
    /// The buffer being filled; `None` only inside `finish`.
    cur: Option<AlignedBuf>,
    cur_start: u64,
    cur_len: usize,
    /// Bytes at the head of `cur` the hasher already saw.
    cur_hashed: usize,
    free: Vec<AlignedBuf>,
    allocated: usize,
    /// Oldest first; each is being written and/or hashed.
    in_flight: VecDeque<Arc<Chunk>>,
    done: Receiver<()>,
    write_tx: Option<Sender<WriteJob>>,
    writer: Option<JoinHandle<Option<Crc64>>>,
    hash_tx: Option<Sender<HashJob>>,
    hasher: Option<JoinHandle<ContentHasher>>,
    /// For the unaligned tail written at flush.
    plain: Arc<File>,
    direct: Arc<File>,
    failure: Arc<Failure>,
    _slot: Slot,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("cur_start", &self.cur_start)
            .field("cur_len", &self.cur_len)
            .finish()
    }
}

impl DirectWriter {
    /// Takes over appends to `file` (at `path`, `size` bytes long), with the
    /// hasher if it has seen all `size` bytes. `Ok(None)`: O_DIRECT is not
    /// available here; `Err`: not now (too many files at once, no thread).
    pub fn start(
        path: &Path,
        file: &File,
        size: u64,
        hasher: Option<ContentHasher>,
    ) -> std::io::Result<Option<Self>> {
        let slot = Slot::take().ok_or_else(|| std::io::Error::other("busy"))?;
        let Some(direct) = open_direct(path, true) else {
            return Ok(None);
        };
        let direct = Arc::new(direct);
        let plain = Arc::new(file.try_clone()?);
        let cur_start = align_down(size);
        let head = (size - cur_start) as usize;
        let mut cur = AlignedBuf::new(CHUNK);
        if head > 0 {
            file.read_exact_at(&mut cur[..head], cur_start)?;
        }
        let (done_tx, done) = mpsc::channel();
        let failure = Arc::new(Failure::default());
        let mut hasher = hasher.filter(|h| h.size() == size);
        let crc = hasher.as_mut().map(|h| h.take_crc());
        let (write_tx, write_rx) = mpsc::channel::<WriteJob>();
        let writer = {
            let (direct, plain, failure, done_tx) = (
                direct.clone(),
                plain.clone(),
                failure.clone(),
                done_tx.clone(),
            );
            std::thread::Builder::new()
                .name("smhfs-stage-io".into())
                .spawn(move || {
                    let _guard = PanicGuard(failure.clone());
                    write_loop(write_rx, &direct, &plain, &failure, crc, done_tx)
                })?
        };
        let (hash_tx, hasher) = match hasher {
            Some(mut h) => {
                let (tx, rx) = mpsc::channel::<HashJob>();
                let guard = PanicGuard(failure.clone());
                let handle = std::thread::Builder::new()
                    .name("smhfs-stage-hash".into())
                    .spawn(move || {
                        let _guard = guard;
                        for (c, from) in rx {
                            h.update_chain(&c.buf[from..c.len]);
                            drop(c);
                            let _ = done_tx.send(());
                        }
                        h
                    })?;
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };
        Ok(Some(Self {
            cur: Some(cur),
            cur_start,
            cur_len: head,
            cur_hashed: head,
            free: Vec::new(),
            allocated: 1,
            in_flight: VecDeque::new(),
            done,
            write_tx: Some(write_tx),
            writer: Some(writer),
            hash_tx,
            hasher,
            plain,
            direct,
            failure,
            _slot: slot,
        }))
    }

    /// Size of the content: everything up to the end of the buffer.
    pub fn size(&self) -> u64 {
        self.cur_start + self.cur_len as u64
    }

    /// Appends at [`Self::size`].
    pub fn append(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        self.failure.check()?;
        while !data.is_empty() {
            let cur = self.cur.as_mut().expect("buffer present");
            let n = (CHUNK - self.cur_len).min(data.len());
            cur[self.cur_len..self.cur_len + n].copy_from_slice(&data[..n]);
            self.cur_len += n;
            data = &data[n..];
            if self.cur_len == CHUNK {
                self.dispatch()?;
            }
        }
        Ok(())
    }

    /// Hands the full buffer to the threads and continues in a free one.
    fn dispatch(&mut self) -> std::io::Result<()> {
        let next = self.take_free()?;
        let buf = self.cur.replace(next).expect("buffer present");
        let c = Arc::new(Chunk {
            buf,
            start: self.cur_start,
            len: self.cur_len,
        });
        self.send(&c, self.cur_len, self.cur_hashed)?;
        self.in_flight.push_back(c);
        self.cur_start += CHUNK as u64;
        self.cur_len = 0;
        self.cur_hashed = 0;
        Ok(())
    }

    fn send(&self, c: &Arc<Chunk>, write_len: usize, hash_from: usize) -> std::io::Result<()> {
        let gone = || std::io::Error::other("staging thread stopped");
        if let Some(tx) = &self.hash_tx {
            if hash_from < c.len {
                tx.send((c.clone(), hash_from)).map_err(|_| gone())?;
            }
        }
        let crc = self.hash_tx.is_some() && hash_from < c.len;
        if write_len > 0 || crc {
            let tx = self.write_tx.as_ref().ok_or_else(gone)?;
            let job = WriteJob {
                chunk: c.clone(),
                write_len,
                hash_from: if crc { hash_from } else { c.len },
            };
            tx.send(job).map_err(|_| gone())?;
        }
        Ok(())
    }

    /// Moves finished chunks (no thread holds them) to `free`.
    fn reap(&mut self) {
        while self
            .in_flight
            .front()
            .is_some_and(|c| Arc::strong_count(c) == 1)
        {
            let c = self.in_flight.pop_front().expect("front present");
            if let Ok(c) = Arc::try_unwrap(c) {
                self.free.push(c.buf);
            }
        }
    }

    fn take_free(&mut self) -> std::io::Result<AlignedBuf> {
        self.reap();
        if let Some(b) = self.free.pop() {
            return Ok(b);
        }
        if self.allocated < BUFFERS {
            self.allocated += 1;
            return Ok(AlignedBuf::new(CHUNK));
        }
        loop {
            // A timeout, not a bare recv: never hang on a lost signal.
            let _ = self.done.recv_timeout(Duration::from_millis(50));
            self.failure.check()?;
            self.reap();
            if let Some(b) = self.free.pop() {
                return Ok(b);
            }
        }
    }

    /// Waits until no chunk is being written or hashed.
    fn drain(&mut self) -> std::io::Result<()> {
        loop {
            self.reap();
            if self.in_flight.is_empty() {
                return self.failure.check();
            }
            let _ = self.done.recv_timeout(Duration::from_millis(50));
        }
    }

    /// Content from here on is (also) held in buffers; the file itself may
    /// still be being written there, so reads must take it from them.
    pub fn buffered_from(&self) -> u64 {
        self.in_flight.front().map_or(self.cur_start, |c| c.start)
    }

    /// Copies the bytes held in buffers over `out` (content at `offset`),
    /// for reads before they reach the disk.
    pub fn overlay(&self, offset: u64, out: &mut [u8]) {
        for c in &self.in_flight {
            copy_overlap(c.start, &c.buf[..c.len], offset, out);
        }
        if let Some(cur) = &self.cur {
            copy_overlap(self.cur_start, &cur[..self.cur_len], offset, out);
        }
    }

    /// Puts every byte on disk (not necessarily durable) and stays active:
    /// the buffer keeps its bytes, later appends continue in it.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        // Idle now (close in write-back mode, fsync): keep one buffer only.
        self.free.clear();
        self.allocated = 1;
        let cur = self.cur.as_ref().expect("buffer present");
        let aligned = self.cur_len / ALIGN * ALIGN;
        write_direct_or_plain(&self.direct, &self.plain, &cur[..aligned], self.cur_start)?;
        self.plain
            .write_all_at(&cur[aligned..self.cur_len], self.cur_start + aligned as u64)
    }

    /// Puts every byte on disk and stops; returns the hasher, if it had one.
    pub fn finish(mut self) -> std::io::Result<Option<ContentHasher>> {
        let buf = self.cur.take().expect("buffer present");
        let last = Arc::new(Chunk {
            buf,
            start: self.cur_start,
            len: self.cur_len,
        });
        let aligned = self.cur_len / ALIGN * ALIGN;
        let sent = self.send(&last, aligned, self.cur_hashed);
        let hasher = self.stop();
        sent?;
        self.failure.check()?;
        self.plain
            .write_all_at(&last.buf[aligned..last.len], last.start + aligned as u64)?;
        Ok(hasher)
    }

    /// Ends the threads (after their queued work); the hasher if any.
    fn stop(&mut self) -> Option<ContentHasher> {
        self.write_tx = None;
        self.hash_tx = None;
        let crc = match self.writer.take().map(|w| w.join()) {
            Some(Ok(crc)) => crc,
            Some(Err(_)) => {
                self.failure
                    .set(&std::io::Error::other("staging writer panicked"));
                None
            }
            None => None,
        };
        let h = self.hasher.take().and_then(|h| h.join().ok());
        self.in_flight.clear();
        let mut h = h?;
        h.put_crc(crc?);
        Some(h)
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop(
    rx: Receiver<WriteJob>,
    direct: &File,
    plain: &File,
    failure: &Failure,
    mut crc: Option<Crc64>,
    done: Sender<()>,
) -> Option<Crc64> {
    for job in rx {
        let c = &job.chunk;
        if let Some(crc) = &mut crc {
            crc.update(&c.buf[job.hash_from..c.len]);
        }
        if failure.check().is_ok() {
            let data = &c.buf[..job.write_len];
            if let Err(e) = write_direct_or_plain(direct, plain, data, c.start) {
                failure.set(&e);
            }
        }
        drop(job);
        let _ = done.send(());
    }
    crc
}

/// An aligned range with O_DIRECT; plainly if the filesystem refuses it.
fn write_direct_or_plain(
    direct: &File,
    plain: &File,
    data: &[u8],
    offset: u64,
) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    match direct.write_all_at(data, offset) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => plain.write_all_at(data, offset),
        r => r,
    }
}

/// Copies the part of `src` (content at `start`) that overlaps `out`
/// (content at `offset`).
fn copy_overlap(start: u64, src: &[u8], offset: u64, out: &mut [u8]) {
    let lo = start.max(offset);
    let hi = (start + src.len() as u64).min(offset + out.len() as u64);
    if lo >= hi {
        return;
    }
    let n = (hi - lo) as usize;
    let s = (lo - start) as usize;
    let o = (lo - offset) as usize;
    out[o..o + n].copy_from_slice(&src[s..s + n]);
}
