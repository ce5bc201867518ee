//! The write-back queue and the durability settings: a leaf that knows
//! nothing of `SmhFs` (the background module, `writeback.rs`, runs its jobs).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::error::FsError;
use super::journal::{Journal, JournalEntry};
use super::memstage::MemBudget;
use super::progress::Tracker;
use super::staging::CacheBudget;

/// Durability settings (`-o write_back`, `cache_size`, ...).
#[derive(Debug, Clone)]
pub struct DurabilityOptions {
    /// `Some(delay)`: close() returns once staged; upload `delay` later.
    pub write_back: Option<Duration>,
    /// Bound on staged bytes in `cache_dir`.
    pub cache_size: u64,
    /// How long a writer waits for room before ENOSPC.
    pub cache_wait: Duration,
    /// Files uploaded at once by the background queue.
    pub jobs: usize,
}

/// Default bound: min(50% of the free space under `dir`, 10 GiB).
pub fn default_cache_size(dir: &std::path::Path) -> u64 {
    const CAP: u64 = 10 << 30;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return CAP;
    };
    // SAFETY: `statvfs` is plain old data (integers only), so all-zero
    // bytes are a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path alive for the call; `s` is a
    // writable struct of the type statvfs fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return CAP;
    }
    let free = s.f_bavail as u64 * s.f_frsize as u64;
    (free / 2).min(CAP)
}

pub(crate) enum Job {
    /// A pending file in the open-file table; `true`: after the
    /// write-back delay (a close), `false`: at once (resumed from the journal).
    Ino(u64, bool),
    /// A journaled upload outside the mounted directory.
    Entry(Box<JournalEntry>),
}

/// The queue of background uploads.
pub struct Queue {
    pub(crate) tx: tokio::sync::mpsc::UnboundedSender<Job>,
    pub(crate) rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Job>>>,
    /// Inodes waiting to start (rewrites within the delay coalesce).
    pub(crate) queued: Mutex<HashSet<u64>>,
    /// Jobs not finished (queued, running or waiting to retry).
    pub(crate) pending: AtomicUsize,
    pub(crate) idle: tokio::sync::Notify,
    pub(crate) draining: AtomicBool,
    pub(crate) drain_start: tokio::sync::Notify,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            queued: Mutex::new(HashSet::new()),
            pending: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            draining: AtomicBool::new(false),
            drain_start: tokio::sync::Notify::new(),
        }
    }
}

impl Queue {
    pub(crate) fn push(&self, job: Job) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(job).is_err() {
            self.finish_one();
        }
    }

    pub(crate) fn finish_one(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, cut short when draining starts.
    pub(crate) async fn sleep(&self, d: Duration) {
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        let start = self.drain_start.notified();
        tokio::pin!(start);
        start.as_mut().enable();
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = start => {}
        }
    }
}

/// Everything durability needs, one field of `SmhFs`.
pub struct Durability {
    pub opts: DurabilityOptions,
    pub journal: Journal,
    pub budget: Arc<CacheBudget>,
    pub tracker: Tracker,
    pub queue: Queue,
    /// Bytes of small files held in memory (`memstage.rs`).
    pub mem: Arc<MemBudget>,
}

impl Durability {
    pub fn new(cache_dir: &std::path::Path, opts: DurabilityOptions) -> Self {
        Self {
            budget: CacheBudget::new(opts.cache_size, opts.cache_wait),
            journal: Journal::new(cache_dir).durable(opts.write_back.is_some()),
            tracker: Tracker::default(),
            queue: Queue::default(),
            mem: Arc::default(),
            opts,
        }
    }

    /// Records a failed upload of `id` in the tracker; the error as the
    /// core reports it, and whether it is permanent (not worth a retry).
    pub fn upload_failed(&self, id: &str, e: crate::smh::SmhError) -> (FsError, bool) {
        let e = FsError::Smh(e);
        let permanent = !transient(&e);
        self.tracker.failed(id, e.to_string(), permanent);
        (e, permanent)
    }
}

/// Worth retrying later: network trouble, 5xx, 429, 401/403 (credentials
/// or ticket), 408.
pub fn transient(e: &FsError) -> bool {
    match e {
        FsError::Smh(s) => s.is_retryable() || matches!(s.status(), Some(401 | 403 | 408)),
        _ => false,
    }
}

pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
