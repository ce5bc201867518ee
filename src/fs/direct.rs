//! Staging a large file written front to back without new page-cache pages.
//!
//! Once a staged file has grown in order past [`THRESHOLD`], its appends are
//! copied into aligned [`CHUNK`] buffers. A full buffer is handed at once
//! to a thread feeding the SHA-256 chain, one feeding the CRC-64 and one of
//! `WRITERS` threads writing it with O_DIRECT (one write at a time leaves
//! the disk idle between writes: the disk, not hashing, was the bound). The
//! FUSE thread only copies, so hashing and disk writes leave the reply path.
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
const BUFFERS: usize = 4;
/// O_DIRECT writes in flight per file.
const WRITERS: usize = 2;
/// Files staged this way at once (each holds up to `BUFFERS` x `CHUNK` of
/// memory and a few threads); more stay with plain writes.
const MAX_ACTIVE: usize = 3;

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

/// Write `buf[..n]`.
type WriteJob = (Arc<Chunk>, usize);
/// Feed a hash `buf[from..len]`.
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
    /// Writer threads, used in turn.
    write_tx: Vec<Sender<WriteJob>>,
    writers: Vec<JoinHandle<()>>,
    next_writer: usize,
    hash_tx: Option<Sender<HashJob>>,
    hasher: Option<JoinHandle<ContentHasher>>,
    crc_tx: Option<Sender<HashJob>>,
    crc: Option<JoinHandle<Crc64>>,
    /// For the unaligned tail written at flush.
    plain: Arc<File>,
    direct: Arc<File>,
    failure: Arc<Failure>,
    _slot: Slot,
    /// Time the caller waited for a free buffer, and the threads' busy
    /// time (logged at finish: which of disk and hashing is the bound).
    waited: Duration,
    busy: Arc<Busy>,
}

#[derive(Default)]
struct Busy {
    write_us: std::sync::atomic::AtomicU64,
    hash_us: std::sync::atomic::AtomicU64,
    crc_us: std::sync::atomic::AtomicU64,
    write_cpu_us: std::sync::atomic::AtomicU64,
    hash_cpu_us: std::sync::atomic::AtomicU64,
    crc_cpu_us: std::sync::atomic::AtomicU64,
}

/// CPU time of the calling thread.
fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

impl Busy {
    fn add(counter: &std::sync::atomic::AtomicU64, since: std::time::Instant) {
        let us = since.elapsed().as_micros() as u64;
        counter.fetch_add(us, std::sync::atomic::Ordering::Relaxed);
    }
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
        let busy = Arc::new(Busy::default());
        let mut write_tx = Vec::new();
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            let (tx, rx) = mpsc::channel::<WriteJob>();
            let (direct, plain, failure, done_tx, busy) = (
                direct.clone(),
                plain.clone(),
                failure.clone(),
                done_tx.clone(),
                busy.clone(),
            );
            writers.push(
                std::thread::Builder::new()
                    .name("smhfs-stage-io".into())
                    .spawn(move || {
                        let _guard = PanicGuard(failure.clone());
                        write_loop(rx, &direct, &plain, &failure, done_tx, &busy)
                    })?,
            );
            write_tx.push(tx);
        }
        let (mut hash_tx, mut hasher_h, mut crc_tx, mut crc_h) = (None, None, None, None);
        if let Some(mut h) = hasher.filter(|h| h.size() == size) {
            let mut crc = h.take_crc();
            let (tx, rx) = mpsc::channel::<HashJob>();
            let (guard, done, b) = (PanicGuard(failure.clone()), done_tx.clone(), busy.clone());
            hasher_h = Some(
                std::thread::Builder::new()
                    .name("smhfs-stage-sha".into())
                    .spawn(move || {
                        let _guard = guard;
                        feed_loop(rx, &done, &b.hash_us, &b.hash_cpu_us, |d| h.update_chain(d));
                        h
                    })?,
            );
            hash_tx = Some(tx);
            let (tx, rx) = mpsc::channel::<HashJob>();
            let (guard, done, b) = (PanicGuard(failure.clone()), done_tx.clone(), busy.clone());
            crc_h = Some(
                std::thread::Builder::new()
                    .name("smhfs-stage-crc".into())
                    .spawn(move || {
                        let _guard = guard;
                        feed_loop(rx, &done, &b.crc_us, &b.crc_cpu_us, |d| crc.update(d));
                        crc
                    })?,
            );
            crc_tx = Some(tx);
        }
        drop(done_tx);
        Ok(Some(Self {
            cur: Some(cur),
            cur_start,
            cur_len: head,
            cur_hashed: head,
            free: Vec::new(),
            allocated: 1,
            in_flight: VecDeque::new(),
            done,
            write_tx,
            writers,
            next_writer: 0,
            hash_tx,
            hasher: hasher_h,
            crc_tx,
            crc: crc_h,
            plain,
            direct,
            failure,
            _slot: slot,
            waited: Duration::ZERO,
            busy,
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

    fn send(&mut self, c: &Arc<Chunk>, write_len: usize, hash_from: usize) -> std::io::Result<()> {
        let gone = || std::io::Error::other("staging thread stopped");
        if hash_from < c.len {
            for tx in [&self.hash_tx, &self.crc_tx].into_iter().flatten() {
                tx.send((c.clone(), hash_from)).map_err(|_| gone())?;
            }
        }
        if write_len > 0 {
            let n = self.write_tx.len();
            let tx = self
                .write_tx
                .get(self.next_writer % n.max(1))
                .ok_or_else(gone)?;
            tx.send((c.clone(), write_len)).map_err(|_| gone())?;
            self.next_writer += 1;
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
        let t = std::time::Instant::now();
        loop {
            // A timeout, not a bare recv: never hang on a lost signal.
            let _ = self.done.recv_timeout(Duration::from_millis(50));
            self.failure.check()?;
            self.reap();
            if let Some(b) = self.free.pop() {
                self.waited += t.elapsed();
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
        let us =
            |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) / 1000;
        tracing::debug!(
            end = last.start + last.len as u64,
            waited_ms = self.waited.as_millis() as u64,
            write_ms = us(&self.busy.write_us),
            hash_ms = us(&self.busy.hash_us),
            crc_ms = us(&self.busy.crc_us),
            write_cpu_ms = us(&self.busy.write_cpu_us),
            hash_cpu_ms = us(&self.busy.hash_cpu_us),
            crc_cpu_ms = us(&self.busy.crc_cpu_us),
            "direct staging finished"
        );
        sent?;
        self.failure.check()?;
        self.plain
            .write_all_at(&last.buf[aligned..last.len], last.start + aligned as u64)?;
        Ok(hasher)
    }

    /// Ends the threads (after their queued work); the hasher if any.
    fn stop(&mut self) -> Option<ContentHasher> {
        self.write_tx.clear();
        self.hash_tx = None;
        self.crc_tx = None;
        for w in self.writers.drain(..) {
            if w.join().is_err() {
                self.failure
                    .set(&std::io::Error::other("staging writer panicked"));
            }
        }
        let h = self.hasher.take().and_then(|h| h.join().ok());
        let crc = self.crc.take().and_then(|c| c.join().ok());
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
    done: Sender<()>,
    busy: &Busy,
) {
    for (c, n) in rx {
        let t = std::time::Instant::now();
        if failure.check().is_ok() {
            if let Err(e) = write_direct_or_plain(direct, plain, &c.buf[..n], c.start) {
                failure.set(&e);
            }
        }
        drop(c);
        Busy::add(&busy.write_us, t);
        let _ = done.send(());
    }
    busy.write_cpu_us
        .fetch_add(thread_cpu_us(), std::sync::atomic::Ordering::Relaxed);
}

/// Feeds `buf[from..len]` of each chunk to `f`, in order.
fn feed_loop(
    rx: Receiver<HashJob>,
    done: &Sender<()>,
    wall: &std::sync::atomic::AtomicU64,
    cpu: &std::sync::atomic::AtomicU64,
    mut f: impl FnMut(&[u8]),
) {
    for (c, from) in rx {
        let t = std::time::Instant::now();
        f(&c.buf[from..c.len]);
        drop(c);
        Busy::add(wall, t);
        let _ = done.send(());
    }
    cpu.store(thread_cpu_us(), std::sync::atomic::Ordering::Relaxed);
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
