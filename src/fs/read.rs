//! Reads: versioned download URLs, ranged GETs, and a sequential
//! read-ahead: a queue of chunk-sized GETs in flight ahead of the reader,
//! deepening from 1 MiB to 16 MiB while reads stay sequential.
//!
//! An open handle reads one version of a file ([`Version`]: eTag, CRC-64,
//! size), the one its first read found; its [`Source`] keeps that version's
//! URL. Object URLs name one immutable content, so a URL never mixes
//! versions; when it stops working (403 expired, 404 the content is gone)
//! the server is asked again, and if the file is another version by then
//! the read fails with `ESTALE`: never bytes of two versions, never old
//! bytes under a new size.
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

use super::cache::Meta;
use super::error::{FsError, FsResult};
use crate::smh::types::FileInfo;
use crate::smh::{SmhClient, SmhError, SmhPath};

pub const MIN_WINDOW: u64 = 1 << 20;
pub const MAX_WINDOW: u64 = 16 << 20;
/// Size of one ranged GET inside a window.
const CHUNK: u64 = 4 << 20;
/// Object URLs live about 2 h on Tencent Cloud; we stay well below, and
/// refetch on 403 anyway.
const URL_TTL: Duration = Duration::from_secs(20 * 60);

/// One content of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub etag: Option<String>,
    pub crc64: Option<String>,
    pub size: u64,
}

impl Version {
    fn of_info(i: &FileInfo) -> Self {
        Self {
            etag: i.e_tag.clone(),
            crc64: i.crc64.clone(),
            size: i.size.parse().unwrap_or(0),
        }
    }

    /// The version a confirmed upload stored.
    pub fn of_file_meta(m: &crate::smh::types::FileMeta) -> Self {
        Self {
            etag: m.e_tag.clone(),
            crc64: m.crc64.clone(),
            size: m.size.parse().unwrap_or(0),
        }
    }

    /// The version the attribute cache knows of (`None` without an eTag:
    /// nothing to tell versions of one size apart).
    pub fn of_meta(m: &Meta) -> Option<Self> {
        m.etag.as_ref().map(|e| Self {
            etag: Some(e.clone()),
            crc64: None,
            size: m.size,
        })
    }

    /// The same content: sizes agree, and eTags (or else CRC-64s) where
    /// both sides have one.
    pub fn same(&self, o: &Version) -> bool {
        if self.size != o.size {
            return false;
        }
        if let (Some(a), Some(b)) = (&self.etag, &o.etag) {
            return a == b;
        }
        match (&self.crc64, &o.crc64) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// A download URL and the version it serves.
#[derive(Debug, Clone)]
struct Ticket {
    url: String,
    version: Version,
    fetched: Instant,
}

/// Download URLs by path, each valid for the version it was issued for
/// only: a lookup names the version it wants.
pub struct UrlCache {
    map: Mutex<LruCache<SmhPath, Ticket>>,
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
    /// A fresh URL of exactly `want` at `path`.
    fn get(&self, path: &SmhPath, want: &Version) -> Option<Ticket> {
        let mut m = self.map.lock();
        let t = m.get(path)?;
        (t.fetched.elapsed() < URL_TTL && t.version.same(want)).then(|| t.clone())
    }

    fn put(&self, path: &SmhPath, t: &Ticket) {
        self.map.lock().put(path.clone(), t.clone());
    }

    pub fn invalidate(&self, path: &SmhPath) {
        self.map.lock().pop(path);
    }
}

/// The version a source reads. Until a byte of it was handed out the
/// choice may still change (a version taken from the attribute cache that
/// turns out to be gone is replaced by the server's current one); after
/// that, never.
#[derive(Debug, Clone)]
struct Pinned {
    ticket: Ticket,
    served: bool,
}

/// Where one handle's bytes come from: the version it reads and its URL.
pub struct Source {
    client: SmhClient,
    urls: Arc<UrlCache>,
    pinned: Mutex<Option<Pinned>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.version();
        f.debug_struct("Source").field("version", &v).finish()
    }
}

impl Source {
    pub fn new(client: SmhClient, urls: Arc<UrlCache>) -> Arc<Self> {
        Arc::new(Self {
            client,
            urls,
            pinned: Mutex::new(None),
        })
    }

    /// The version this source reads, once pinned.
    pub fn version(&self) -> Option<Version> {
        self.pinned
            .lock()
            .as_ref()
            .map(|p| p.ticket.version.clone())
    }

    /// The version this source reads, pinned at the first call: `expect`
    /// when the URL cache holds it (no request), else the server's current
    /// one.
    pub async fn pin(&self, path: &SmhPath, expect: Option<&Version>) -> FsResult<Version> {
        if let Some(v) = self.version() {
            return Ok(v);
        }
        let t = match expect.and_then(|v| self.urls.get(path, v)) {
            Some(t) => t,
            None => self.ticket(path).await?,
        };
        let mut p = self.pinned.lock();
        let p = p.get_or_insert(Pinned {
            ticket: t,
            served: false,
        });
        Ok(p.ticket.version.clone())
    }

    /// A new URL from the server, with the version it serves now.
    async fn ticket(&self, path: &SmhPath) -> FsResult<Ticket> {
        let info = self.client.file_info(path).await?;
        let raw = info.cos_url.as_deref().ok_or_else(|| SmhError::Malformed {
            url: path.to_string(),
            message: "file info without cosUrl".into(),
        })?;
        let url = self
            .client
            .config()
            .endpoint
            .join(raw)
            .map_err(|e| SmhError::Malformed {
                url: path.to_string(),
                message: format!("bad cosUrl: {e}"),
            })?
            .to_string();
        let t = Ticket {
            url,
            version: Version::of_info(&info),
            fetched: Instant::now(),
        };
        self.urls.put(path, &t);
        Ok(t)
    }

    /// One ranged GET of the pinned version (pinning first if needed). A
    /// URL that stopped working (403 expired, 404 content gone) is renewed
    /// if the server still has this version; otherwise the source re-pins
    /// if it has served nothing yet, and fails with `Stale` if it has.
    async fn get_range(&self, path: &SmhPath, offset: u64, len: u64) -> FsResult<Bytes> {
        self.pin(path, None).await?;
        for _ in 0..4 {
            let Some(t) = self.pinned.lock().as_ref().map(|p| p.ticket.clone()) else {
                return Err(FsError::Stale);
            };
            let failed = match self.client.read_range(&t.url, offset, len).await {
                Ok(b) => {
                    let mut p = self.pinned.lock();
                    match p.as_mut() {
                        Some(p) if p.ticket.version.same(&t.version) => {
                            p.served = true;
                            return Ok(b);
                        }
                        // Re-pinned meanwhile: these bytes are of the old one.
                        _ => continue,
                    }
                }
                Err(e) if matches!(e.status(), Some(403) | Some(404)) => e,
                Err(e) => return Err(e.into()),
            };
            tracing::debug!(%path, error = %failed, "download URL stopped working; asking again");
            let fresh = match self.ticket(path).await {
                Ok(f) => f,
                Err(FsError::Smh(e)) if e.is_not_found() => return Err(FsError::Stale),
                Err(e) => return Err(e),
            };
            let mut p = self.pinned.lock();
            let Some(p) = p.as_mut() else {
                return Err(FsError::Stale);
            };
            if fresh.version.same(&p.ticket.version) {
                p.ticket = fresh;
            } else if p.served {
                tracing::info!(%path, "file replaced on the server while open: ESTALE");
                return Err(FsError::Stale);
            } else if p.ticket.version.same(&t.version) {
                tracing::debug!(%path, "version gone before its first byte; reading the current one");
                p.ticket = fresh;
            }
        }
        Err(FsError::Stale)
    }
}

/// `[offset, offset+len)` of the source's version, fetched as parallel
/// chunks, joined in order.
pub async fn fetch(src: &Source, path: &SmhPath, offset: u64, len: u64) -> FsResult<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if len <= CHUNK {
        return src.get_range(path, offset, len).await;
    }
    let mut parts = Vec::new();
    let mut at = offset;
    while at < offset + len {
        let n = CHUNK.min(offset + len - at);
        parts.push(src.get_range(path, at, n));
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
    Fetching(tokio::task::JoinHandle<FsResult<Bytes>>),
    Ready(Bytes),
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.len
    }

    async fn data(&mut self) -> FsResult<Bytes> {
        if let ChunkState::Fetching(task) = &mut self.state {
            let b = match task.await {
                Ok(r) => r?,
                Err(e) => {
                    return Err(SmhError::Network {
                        url: String::new(),
                        message: format!("read-ahead task failed: {e}"),
                    }
                    .into())
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
    src: Arc<Source>,
    chunks: std::collections::VecDeque<Chunk>,
    /// Where the next sequential read starts.
    next: u64,
    /// Bytes to keep fetched or in flight ahead of the reader.
    window: u64,
}

impl ReadAhead {
    pub fn new(budget: Arc<ReadBudget>, src: Arc<Source>) -> Self {
        Self {
            budget,
            src,
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
    fn fill(&mut self, path: &SmhPath, from: u64, file_size: u64) {
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
            let (src, p) = (self.src.clone(), path.clone());
            let task = tokio::spawn(async move { fetch(&src, &p, end, len).await });
            self.chunks.push_back(Chunk {
                offset: end,
                len,
                state: ChunkState::Fetching(task),
            });
        }
    }

    /// Whether the handle has chosen its version (later reads need no
    /// attributes: the version fixes the size).
    pub fn pinned(&self) -> bool {
        self.src.version().is_some()
    }

    /// `len` bytes at `offset` of the handle's version; the first read
    /// pins it (`expect`: the version the attribute cache knows of).
    pub async fn read(
        &mut self,
        path: &SmhPath,
        offset: u64,
        len: u64,
        expect: Option<&Version>,
    ) -> FsResult<Bytes> {
        let version = self.src.pin(path, expect).await?;
        let out = self.read_sized(path, offset, len, version.size).await;
        if self.src.version().as_ref() == Some(&version) {
            return out;
        }
        // The source re-pinned before serving a byte (the expected version
        // was gone): read again at the current version's size.
        self.clear();
        let version = self.src.pin(path, None).await?;
        let out = self.read_sized(path, offset, len, version.size).await?;
        if self.src.version().as_ref() != Some(&version) {
            return Err(FsError::Stale);
        }
        Ok(out)
    }

    async fn read_sized(
        &mut self,
        path: &SmhPath,
        offset: u64,
        len: u64,
        file_size: u64,
    ) -> FsResult<Bytes> {
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
        self.fill(path, offset, file_size);
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
    async fn gather(&mut self, offset: u64, end: u64) -> FsResult<Bytes> {
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

#[cfg(test)]
mod tests {
    use super::Version;

    fn v(etag: Option<&str>, crc: Option<&str>, size: u64) -> Version {
        Version {
            etag: etag.map(String::from),
            crc64: crc.map(String::from),
            size,
        }
    }

    #[test]
    fn versions_compare_by_etag_then_crc_and_always_size() {
        assert!(v(Some("a"), None, 1).same(&v(Some("a"), Some("9"), 1)));
        assert!(!v(Some("a"), None, 1).same(&v(Some("b"), None, 1)));
        assert!(!v(Some("a"), None, 1).same(&v(Some("a"), None, 2)));
        assert!(v(None, Some("7"), 1).same(&v(Some("a"), Some("7"), 1)));
        assert!(!v(None, Some("7"), 1).same(&v(Some("a"), Some("8"), 1)));
        assert!(v(None, None, 3).same(&v(Some("a"), Some("8"), 3)));
    }
}
