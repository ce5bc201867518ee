//! Reads: download-URL cache, ranged GETs, and a sequential read-ahead: a
//! queue of chunk-sized GETs in flight ahead of the reader, deepening from
//! 1 MiB to 16 MiB while reads stay sequential.
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
/// Memory shared by all read-ahead windows.
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

    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= self.limit).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One ranged GET of the read-ahead queue.
#[derive(Debug)]
struct Chunk {
    offset: u64,
    len: u64,
    state: ChunkState,
}

#[derive(Debug)]
enum ChunkState {
    Fetching(tokio::task::JoinHandle<Result<Bytes, SmhError>>),
    Ready(Bytes),
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.len
    }

    async fn data(&mut self) -> Result<Bytes, SmhError> {
        if let ChunkState::Fetching(task) = &mut self.state {
            let b = match task.await {
                Ok(r) => r?,
                Err(e) => {
                    return Err(SmhError::Network {
                        url: String::new(),
                        message: format!("read-ahead task failed: {e}"),
                    })
                }
            };
            self.state = ChunkState::Ready(b);
        }
        match &self.state {
            ChunkState::Ready(b) => Ok(b.clone()),
            ChunkState::Fetching(_) => unreachable!("awaited above"),
        }
    }
}

/// Sequential read-ahead of one open handle: a queue of chunk-sized ranged
/// GETs in flight ahead of the reader. The queue deepens (1 MiB, then up to
/// MAX_WINDOW / CHUNK chunks) while reads stay sequential and resets on a
/// seek. Reads are slices of the fetched chunks, so no byte is copied
/// between the socket and the reply except where a read straddles two
/// chunks.
#[derive(Debug)]
pub struct ReadAhead {
    budget: Arc<ReadBudget>,
    chunks: std::collections::VecDeque<Chunk>,
    /// Where the next sequential read starts.
    next: u64,
    /// Bytes to keep fetched or in flight ahead of the reader.
    window: u64,
}

impl ReadAhead {
    pub fn new(budget: Arc<ReadBudget>) -> Self {
        Self {
            budget,
            chunks: Default::default(),
            next: 0,
            window: MIN_WINDOW,
        }
    }

    fn clear(&mut self) {
        for c in self.chunks.drain(..) {
            if let ChunkState::Fetching(t) = &c.state {
                t.abort();
            }
            self.budget.give(c.len);
        }
    }

    /// Queues fetches until `window` bytes past `from` are covered (or the
    /// file ends, or the shared budget is spent: then one chunk at most).
    fn fill(
        &mut self,
        client: &SmhClient,
        urls: &Arc<UrlCache>,
        path: &SmhPath,
        from: u64,
        file_size: u64,
    ) {
        loop {
            let end = self.chunks.back().map_or(from, Chunk::end);
            if end >= file_size || end >= from + self.window {
                return;
            }
            let len = CHUNK.min(self.window).min(file_size - end);
            if !self.budget.take(len) {
                if !self.chunks.is_empty() {
                    return;
                }
                // Over budget: still fetch what the reader needs now.
                self.budget.used.fetch_add(len, Ordering::Relaxed);
            }
            let (c, u, p) = (client.clone(), urls.clone(), path.clone());
            let task = tokio::spawn(async move { fetch(&c, &u, &p, end, len).await });
            self.chunks.push_back(Chunk {
                offset: end,
                len,
                state: ChunkState::Fetching(task),
            });
        }
    }

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
        let end = (offset + len).min(file_size);
        let sequential = offset == self.next;
        self.next = end;
        // Keep the queue if the read starts inside it or right at its end.
        let keep = self.chunks.front().is_some_and(|c| {
            c.offset <= offset && offset <= self.chunks.back().map_or(0, Chunk::end)
        });
        // A hit: the bytes were asked for before the reader wanted them.
        if keep {
            metrics::counter!("smhfs_readahead_hits_total").increment(1);
        } else {
            metrics::counter!("smhfs_readahead_misses_total").increment(1);
        }
        if !keep {
            self.clear();
            self.window = MIN_WINDOW.max(len);
        } else if sequential {
            self.window = (self.window * 2).min(MAX_WINDOW).max(len);
        }
        // Drop chunks wholly behind the reader.
        while self.chunks.front().is_some_and(|c| c.end() <= offset) {
            if let Some(c) = self.chunks.pop_front() {
                self.budget.give(c.len);
            }
        }
        self.fill(client, urls, path, offset, file_size);
        match self.gather(offset, end).await {
            Ok(b) if !b.is_empty() => Ok(b),
            r => {
                // A failed or short range: start over at the next read.
                self.clear();
                r
            }
        }
    }

    /// The bytes of [offset, end) from the queue, waiting for fetches.
    async fn gather(&mut self, offset: u64, end: u64) -> Result<Bytes, SmhError> {
        let mut whole: Option<Bytes> = None;
        let mut out: Option<BytesMut> = None;
        let mut at = offset;
        for c in self.chunks.iter_mut() {
            if at >= end {
                break;
            }
            if c.end() <= at {
                continue;
            }
            let data = c.data().await?;
            let from = (at - c.offset) as usize;
            let to = ((end - c.offset) as usize).min(data.len());
            if from >= to {
                break; // short reply from the server
            }
            let piece = data.slice(from..to);
            at += piece.len() as u64;
            match &mut out {
                None if at >= end => {
                    whole = Some(piece);
                    break;
                }
                None => {
                    let mut b = BytesMut::with_capacity((end - offset) as usize);
                    b.extend_from_slice(&piece);
                    out = Some(b);
                }
                Some(b) => b.extend_from_slice(&piece),
            }
            if to < c.len as usize {
                break; // short chunk: never hand out bytes past a gap
            }
        }
        Ok(whole.unwrap_or_else(|| out.map(BytesMut::freeze).unwrap_or_default()))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.clear();
    }
}
