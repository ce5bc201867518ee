//! Reads: download-URL cache, ranged GETs, and a sequential read-ahead
//! whose window grows (1 MiB -> 16 MiB) and is fetched in parallel chunks.
//!
//! Memory is bounded per handle (one window) and in total (a shared byte
//! budget; when it is spent, windows fall back to the minimum).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lru::LruCache;
use parking_lot::Mutex;

use crate::smh::{SmhClient, SmhError, SmhPath};

pub const MIN_WINDOW: u64 = 1 << 20;
pub const MAX_WINDOW: u64 = 16 << 20;
/// Size of one ranged GET inside a window.
const CHUNK: u64 = 4 << 20;
/// Object URLs live about 2 h on Tencent Cloud; we stay well below, and
/// refetch on 403 anyway.
const URL_TTL: Duration = Duration::from_secs(20 * 60);

pub struct UrlCache {
    map: Mutex<LruCache<SmhPath, (String, Instant)>>,
}

impl Default for UrlCache {
    fn default() -> Self {
        Self {
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl UrlCache {
    pub async fn get(&self, client: &SmhClient, path: &SmhPath) -> Result<String, SmhError> {
        if let Some((u, t)) = self.map.lock().get(path) {
            if t.elapsed() < URL_TTL {
                return Ok(u.clone());
            }
        }
        let url = client.download_url(path).await?;
        self.map
            .lock()
            .put(path.clone(), (url.clone(), Instant::now()));
        Ok(url)
    }

    pub fn invalidate(&self, path: &SmhPath) {
        self.map.lock().pop(path);
    }
}

/// One ranged GET, refreshing the URL once on 403 (expired signature).
async fn get_range(
    client: &SmhClient,
    urls: &UrlCache,
    path: &SmhPath,
    offset: u64,
    len: u64,
) -> Result<Bytes, SmhError> {
    let url = urls.get(client, path).await?;
    match client.read_range(&url, offset, len).await {
        // 403: the signature expired; 404: the object behind the URL was
        // replaced (the file was overwritten since the URL was issued).
        Err(e) if matches!(e.status(), Some(403) | Some(404)) => {
            tracing::debug!(%path, "download URL stale; fetching a new one");
            urls.invalidate(path);
            let url = urls.get(client, path).await?;
            client.read_range(&url, offset, len).await
        }
        r => r,
    }
}

/// `[offset, offset+len)` fetched as parallel chunks, joined in order.
pub async fn fetch(
    client: &SmhClient,
    urls: &UrlCache,
    path: &SmhPath,
    offset: u64,
    len: u64,
) -> Result<Bytes, SmhError> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if len <= CHUNK {
        return get_range(client, urls, path, offset, len).await;
    }
    let mut parts = Vec::new();
    let mut at = offset;
    while at < offset + len {
        let n = CHUNK.min(offset + len - at);
        parts.push(get_range(client, urls, path, at, n));
        at += n;
    }
    let chunks = futures::future::try_join_all(parts).await?;
    let mut out = BytesMut::with_capacity(len as usize);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    Ok(out.freeze())
}

/// Bytes held by all read-ahead buffers.
#[derive(Debug)]
pub struct ReadBudget {
    used: AtomicU64,
    limit: u64,
}

impl ReadBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicU64::new(0),
            limit,
        })
    }
}

/// A window being fetched in the background: `(start, len, task)`.
type Pending = (u64, u64, tokio::task::JoinHandle<Result<Bytes, SmhError>>);

/// Per-handle read-ahead state: one buffered window plus, for sequential
/// readers, the next window fetched in the background once half of the
/// current one was consumed (so the network overlaps the reader).
#[derive(Debug)]
pub struct ReadAhead {
    budget: Arc<ReadBudget>,
    start: u64,
    buf: Bytes,
    /// Where the next read starts if the reader is sequential.
    next: u64,
    window: u64,
    pending: Option<Pending>,
}

impl ReadAhead {
    pub fn new(budget: Arc<ReadBudget>) -> Self {
        Self {
            budget,
            start: 0,
            buf: Bytes::new(),
            next: 0,
            window: MIN_WINDOW,
            pending: None,
        }
    }

    /// Served from the buffer, if it holds all of it (or up to EOF).
    fn cached(&self, offset: u64, len: u64, file_size: u64) -> Option<Bytes> {
        let end = (offset + len).min(file_size);
        if offset >= self.start && end <= self.start + self.buf.len() as u64 && offset <= end {
            let a = (offset - self.start) as usize;
            let b = (end - self.start) as usize;
            return Some(self.buf.slice(a..b));
        }
        None
    }

    fn set_buf(&mut self, start: u64, buf: Bytes) {
        let old = self.buf.len() as u64;
        self.budget.used.fetch_sub(old, Ordering::Relaxed);
        self.budget
            .used
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.start = start;
        self.buf = buf;
    }

    fn take_pending(&mut self) -> Option<Pending> {
        let p = self.pending.take()?;
        self.budget.used.fetch_sub(p.1, Ordering::Relaxed);
        Some(p)
    }

    /// Starts fetching the window after the buffer when the reader is past
    /// its middle.
    fn maybe_prefetch(
        &mut self,
        client: &SmhClient,
        urls: &Arc<UrlCache>,
        path: &SmhPath,
        file_size: u64,
    ) {
        let end = self.start + self.buf.len() as u64;
        if self.pending.is_some()
            || end >= file_size
            || self.buf.is_empty()
            || self.next < self.start + self.buf.len() as u64 / 2
        {
            return;
        }
        self.window = (self.window * 2).min(MAX_WINDOW);
        let len = self.window.min(file_size - end);
        if self.budget.used.load(Ordering::Relaxed) + len > self.budget.limit {
            return;
        }
        self.budget.used.fetch_add(len, Ordering::Relaxed);
        let (client, urls, path) = (client.clone(), urls.clone(), path.clone());
        let task = tokio::spawn(async move { fetch(&client, &urls, &path, end, len).await });
        self.pending = Some((end, len, task));
    }

    /// Reads `len` bytes at `offset` of a file of `file_size` bytes.
    pub async fn read(
        &mut self,
        client: &SmhClient,
        urls: &Arc<UrlCache>,
        path: &SmhPath,
        offset: u64,
        len: u64,
        file_size: u64,
    ) -> Result<Bytes, SmhError> {
        if offset >= file_size || len == 0 {
            return Ok(Bytes::new());
        }
        let sequential = offset == self.next;
        self.next = offset + len;
        if !sequential {
            self.window = MIN_WINDOW;
        }
        if let Some(b) = self.cached(offset, len, file_size) {
            if sequential {
                self.maybe_prefetch(client, urls, path, file_size);
            }
            return Ok(b);
        }
        // The background window, if it continues the buffer and covers us.
        if let Some((ps, pl, task)) = self.take_pending() {
            let buf_end = self.start + self.buf.len() as u64;
            if ps == buf_end && offset >= self.start && offset < ps + pl {
                if let Ok(Ok(data)) = task.await {
                    let keep_from = offset.min(ps);
                    let mut joined =
                        BytesMut::with_capacity((ps - keep_from) as usize + data.len());
                    joined.extend_from_slice(&self.buf[(keep_from - self.start) as usize..]);
                    joined.extend_from_slice(&data);
                    self.set_buf(keep_from, joined.freeze());
                    if let Some(b) = self.cached(offset, len, file_size) {
                        self.maybe_prefetch(client, urls, path, file_size);
                        return Ok(b);
                    }
                }
            } else {
                task.abort();
            }
        }
        if sequential {
            self.window = (self.window * 2).min(MAX_WINDOW);
        }
        let over_budget =
            self.budget.used.load(Ordering::Relaxed) + self.window > self.budget.limit;
        let window = if over_budget { MIN_WINDOW } else { self.window };
        let fetch_len = window.max(len).min(file_size - offset);
        let data = fetch(client, urls, path, offset, fetch_len).await?;
        self.set_buf(offset, data);
        if sequential {
            self.maybe_prefetch(client, urls, path, file_size);
        }
        // A short reply from the server: hand out what we have, never more
        // than asked.
        Ok(self.cached(offset, len, file_size).unwrap_or_else(|| {
            let n = (len as usize).min(self.buf.len());
            self.buf.slice(..n)
        }))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some((_, _, task)) = self.take_pending() {
            task.abort();
        }
        self.budget
            .used
            .fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
    }
}
